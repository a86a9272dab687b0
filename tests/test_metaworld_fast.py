"""The faster Meta-World env classes give bit-identical observations, rewards and infos."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from meta_rl.envs.metaworld import MetaWorldBenchmark
from meta_rl.envs.metaworld_fast import fast_class, quat_from_matrix


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
    with pytest.raises(ValueError, match="determinant"):
        quat_from_matrix(-np.eye(3))


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
