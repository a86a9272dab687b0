"""The faster Meta-World env classes give bit-identical observations, rewards and infos."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from meta_rl.envs.metaworld import MetaWorldBenchmark
from meta_rl.envs.metaworld_fast import fast_class, quat_from_matrix, tolerance


@pytest.fixture(scope="module")
def ml10():
    return MetaWorldBenchmark("ML10", meta_batch_size=10, benchmark_seed=0)


def test_quat_from_matrix_is_scipys():
    matrices = Rotation.random(2000, rng=0).as_matrix()
    for m in matrices:
        np.testing.assert_array_equal(quat_from_matrix(m), Rotation.from_matrix(m).as_quat())
    # Not orthogonal within 1e-12: scipy orthogonalises first; so do we (by calling it).
    skewed = matrices[0].copy()
    skewed[0, 1] += 1e-9
    np.testing.assert_array_equal(quat_from_matrix(skewed), Rotation.from_matrix(skewed).as_quat())
    # Near the 1e-12 bound of our test, on either side (the fast path or scipy's), and mirror images.
    rng = np.random.default_rng(0)
    for scale in (1e-14, 1e-13, 5e-13, 2e-12, 1e-11):
        for m in matrices[:200]:
            near = m + rng.normal(0, scale, (3, 3))
            np.testing.assert_array_equal(quat_from_matrix(near), Rotation.from_matrix(near).as_quat())
    for mirror in (-np.eye(3), np.diag([1.0, 1.0, -1.0]), -matrices[1]):
        with pytest.raises(ValueError, match="determinant"):
            quat_from_matrix(mirror)


@pytest.mark.parametrize("split", ["train", "test"])
def test_fast_classes_step_exactly_like_metaworld(ml10, split):
    """A full episode of every class, driven by Meta-World's scripted policy (which grasps and
    pushes the objects, so contacts happen) with added noise, then a reset and a random episode."""
    from metaworld.policies import ENV_POLICY_MAP

    # The classes whose reward uses the grasp test (touching_object), which must be exercised.
    grasping = {"train": ["push-v3", "pick-place-v3", "sweep-v3"], "test": ["shelf-place-v3", "sweep-into-v3"]}
    rng = np.random.default_rng(0)
    touched = {}
    for name in ml10.class_names(split):
        task = ml10._tasks[split][name][3]
        cls = ml10._classes[split][name]
        envs = [cls(reward_function_version="v2"), fast_class(cls)(reward_function_version="v2")]
        assert type(envs[1]).__mro__[1] is cls
        policy = ENV_POLICY_MAP[name]()
        touched[name] = 0
        for env in envs:
            env.set_task(task)
        for episode in range(2):
            obs = [env.reset()[0] for env in envs]
            np.testing.assert_array_equal(obs[0], obs[1])
            for _ in range(500 if episode == 0 else 100):
                if episode == 0:
                    a = np.clip(policy.get_action(obs[0]) + rng.normal(0, 0.1, 4), -1, 1).astype(np.float32)
                else:
                    a = rng.uniform(-1, 1, 4).astype(np.float32)
                out = [env.step(a) for env in envs]
                obs = [o[0] for o in out]
                np.testing.assert_array_equal(obs[0], obs[1])
                assert out[0][1] == out[1][1], name
                assert out[0][4] == out[1][4], name
                if name in grasping[split]:
                    touching = [env.touching_main_object for env in envs]
                    assert touching[0] == touching[1], name
                    touched[name] += touching[0]
    assert all(touched[name] > 0 for name in grasping[split]), touched


def test_tolerance_is_metaworlds():
    from metaworld.utils import reward_utils

    rng = np.random.default_rng(0)
    for sigmoid in ("long_tail", "gaussian"):
        for i in range(20000):
            x = rng.normal() * rng.choice([0.01, 0.1, 1.0, 10.0])
            x = np.float64(x) if i % 2 else float(x)  # both kinds of scalar Meta-World passes
            lower = rng.normal() * 0.1
            bounds = (lower, lower + abs(rng.normal()) * rng.choice([0.0, 0.1]))
            margin = abs(rng.normal()) * rng.choice([0.0, 0.01, 1.0])
            at_margin = rng.choice([0.1, 0.5, 0.01])
            ours, theirs = (f(x, bounds, margin, sigmoid, at_margin) for f in (tolerance, reward_utils.tolerance))
            assert type(ours) is type(theirs) and ours == theirs, (x, bounds, margin, sigmoid, at_margin)
    assert np.isnan(tolerance(np.float64("nan"), (0.0, 1.0), 0.5, "long_tail"))
    # Arrays and other sigmoids are Meta-World's own computation.
    xs = np.linspace(-1, 1, 11)
    np.testing.assert_array_equal(tolerance(xs, (0.0, 0.1), 0.5, "long_tail"),
                                  reward_utils.tolerance(xs, (0.0, 0.1), 0.5, "long_tail"))
    assert tolerance(0.7, (0.0, 0.1), 0.5, "hyperbolic") == reward_utils.tolerance(0.7, (0.0, 0.1), 0.5, "hyperbolic")
    with pytest.raises(ValueError, match="Lower bound"):
        tolerance(0.5, (1.0, 0.0), 0.5, "long_tail")
    with pytest.raises(ValueError, match="non-negative"):
        tolerance(0.5, (0.0, 0.1), -1.0, "long_tail")


def test_fast_classes_of_all_50_tasks_step_exactly_like_metaworld():
    """Every Meta-World v3 class (ML45 and MT50 use them all; some have two objects in the
    observation), one goal each, a reset and random actions."""
    import metaworld
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT50_V3_ARGS_KWARGS

    rng = np.random.default_rng(0)
    np.random.seed(0)  # Meta-World draws goals from numpy's global generator
    for name, cls in ALL_V3_ENVIRONMENTS.items():
        kwargs = {k: v for k, v in MT50_V3_ARGS_KWARGS[name]["kwargs"].items() if k != "task_id"}
        goal_env = cls()  # one goal, the way Meta-World's benchmarks draw them
        goal_env._freeze_rand_vec, goal_env._set_task_called = False, True
        goal_env._set_task_inner(**kwargs)
        goal_env.reset()
        task = metaworld._encode_task(name, {**kwargs, "rand_vec": goal_env._last_rand_vec, "env_cls": cls,
                                                "partially_observable": True})
        envs = [goal_env, fast_class(cls)()]  # set_task freezes the goal_env's goal again
        for env in envs:
            env.set_task(task)
        obs = [env.reset()[0] for env in envs]
        np.testing.assert_array_equal(obs[0], obs[1])
        for _ in range(50):
            a = rng.uniform(-1, 1, 4).astype(np.float32)
            out = [env.step(a) for env in envs]
            np.testing.assert_array_equal(out[0][0], out[1][0])
            assert out[0][1] == out[1][1] and out[0][4] == out[1][4], name
        for env in envs:
            env.close()


def test_fast_classes_use_the_fast_pieces(ml10):
    """The speed-ups are wired in: the caging reward reads our tolerance, the observation is ours."""
    from meta_rl.envs import metaworld_fast

    cls = fast_class(ml10._classes["test"]["sweep-into-v3"])
    assert cls._gripper_caging_reward.__globals__["reward_utils"].tolerance is tolerance
    assert cls._get_curr_obs_combined_no_goal is metaworld_fast._get_curr_obs_combined_no_goal
    assert cls.touching_object is metaworld_fast.touching_object
