"""Our Meta-World trial env against Meta-World's own env, and task sampling."""

import pickle

import numpy as np
import pytest

from meta_rl.envs.metaworld import MetaWorldBenchmark


@pytest.fixture(scope="module")
def ml10():
    return MetaWorldBenchmark("ML10", meta_batch_size=20, benchmark_seed=0)


def test_splits_are_the_ml10_classes(ml10):
    assert [c[:-3] for c in ml10.class_names("train")] == [
        "reach", "push", "pick-place", "door-open", "drawer-close", "button-press-topdown",
        "peg-insert-side", "window-open", "sweep", "basketball"]
    assert [c[:-3] for c in ml10.class_names("test")] == [
        "drawer-open", "door-close", "shelf-place", "sweep-into", "lever-pull"]
    assert len(ml10.all_tasks("test")) == 5 * 50


def test_sample_tasks_spread_evenly_and_reproducible(ml10):
    tasks = ml10.sample_tasks("train", 20, np.random.default_rng(1))
    names = [ml10.task_class(t) for t in tasks]
    assert all(names.count(c) == 2 for c in ml10.class_names("train"))
    again = ml10.sample_tasks("train", 20, np.random.default_rng(1))
    assert [t.data for t in tasks] == [t.data for t in again]
    other = ml10.sample_tasks("train", 20, np.random.default_rng(2))
    assert [t.data for t in tasks] != [t.data for t in other]


def test_trial_env_matches_plain_metaworld_env(ml10):
    tasks = ml10.sample_tasks("test", 5, np.random.default_rng(0))
    env = ml10.make_env(5)
    env.set_tasks(tasks)
    ref = []
    for t in tasks:
        e = ml10._classes["test"][t.env_name](reward_function_version="v2")
        e.set_task(t)
        ref.append(e)
    rng = np.random.default_rng(0)
    for episode in range(2):  # the second episode starts from an identical reset
        obs = env.reset()
        np.testing.assert_array_equal(obs, np.stack([e.reset()[0] for e in ref]).astype(np.float32))
        for _ in range(30):
            a = rng.uniform(-1, 1, (5, 4)).astype(np.float32)
            obs, rew, succ = env.step(a)
            out = [e.step(a[i]) for i, e in enumerate(ref)]
            np.testing.assert_array_equal(obs, np.stack([o[0] for o in out]).astype(np.float32))
            np.testing.assert_array_equal(rew, np.array([o[1] for o in out], np.float32))
            np.testing.assert_array_equal(succ, [bool(o[4]["success"]) for o in out])
    env.close()


def test_full_length_episode_runs_without_termination(ml10):
    env = ml10.make_env(1)
    env.set_tasks(ml10.sample_tasks("train", 10, np.random.default_rng(0))[:1])
    for _ in range(2):
        env.reset()
        for _ in range(500):
            env.step(np.zeros((1, 4), np.float32))
    env.close()


def test_goal_observable_puts_the_goal_into_the_observation():
    hidden = MetaWorldBenchmark("ML1", task="reach-v3", meta_batch_size=2, benchmark_seed=0, num_workers=0)
    shown = MetaWorldBenchmark("ML1", task="reach-v3", meta_batch_size=2, benchmark_seed=0, num_workers=0,
                               goal_observable=True)
    tasks = {b: b.sample_tasks("test", 2, np.random.default_rng(0)) for b in (hidden, shown)}
    obs = {}
    for bench in (hidden, shown):
        env = bench.make_env(2)
        env.set_tasks(tasks[bench])
        first = env.reset()
        after, _, _ = env.step(np.zeros((2, 4), np.float32))
        obs[bench] = (first, after, [e._target_pos.copy() for e in env._envs])
        env.close()
    np.testing.assert_array_equal(obs[hidden][0][:, 36:], 0.0)
    goals = np.stack(obs[shown][2]).astype(np.float32)
    assert np.all(np.abs(goals) > 0) and not np.allclose(goals[0], goals[1])
    for i in (0, 1):  # the goal in both the reset and the step observation; the rest unchanged
        np.testing.assert_array_equal(obs[shown][i][:, 36:], goals)
        np.testing.assert_array_equal(obs[shown][i][:, :36], obs[hidden][i][:, :36])


def test_train_goal_sets_adds_distinct_training_goals_and_keeps_the_test_split():
    one = MetaWorldBenchmark("ML1", task="reach-v3", meta_batch_size=2, benchmark_seed=0, num_workers=0)
    three = MetaWorldBenchmark("ML1", task="reach-v3", meta_batch_size=2, benchmark_seed=0, num_workers=0,
                               train_goal_sets=3)
    goals = lambda tasks: np.stack([pickle.loads(t.data)["rand_vec"] for t in tasks])  # noqa: E731
    train1, train3, test = goals(one.all_tasks("train")), goals(three.all_tasks("train")), goals(one.all_tasks("test"))
    assert train3.shape == (150, 6) and len(np.unique(train3, axis=0)) == 150
    np.testing.assert_array_equal(train3[:50], train1)  # the benchmark's own goals come first
    np.testing.assert_array_equal(goals(three.all_tasks("test")), test)
    # Meta-World draws seed 0's test goals with seed 1, so the added sets must skip it
    assert np.abs(train3[:, None] - test[None]).max(-1).min() > 1e-6
    # every training task still runs
    env = three.make_env(2)
    env.set_tasks(three.all_tasks("train")[-2:])
    obs = env.reset()
    assert obs.shape == (2, 39) and np.all(obs[:, 36:] == 0)
    env.close()
