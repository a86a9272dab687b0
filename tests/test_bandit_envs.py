"""The Bernoulli-bandit and random tabular-MDP benchmarks and their trial environments."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from meta_rl.envs.bandit import BanditTrialEnv, BernoulliBandit
from meta_rl.envs.tabular_mdp import MDPTask, RandomTabularMDP, TabularMDPTrialEnv

BENCHMARK_ATTRS = (
    "name",
    "observation_space",
    "action_space",
    "episode_length",
    "episodes_per_trial",
    "meta_batch_size",
    "reward_scale",
)


# ----------------------------------------------------------------------------- bandit


def test_bandit_benchmark_attributes():
    bench = BernoulliBandit(arms=7, pulls=12, meta_batch_size=32, reward_scale=0.5)
    for attr in BENCHMARK_ATTRS:
        assert hasattr(bench, attr)
    assert bench.name == "bandit"
    assert bench.episode_length == 1 and bench.episodes_per_trial == 12
    assert bench.meta_batch_size == 32 and bench.reward_scale == 0.5
    assert isinstance(bench.action_space, gym.spaces.Discrete) and bench.action_space.n == 7
    assert bench.observation_space.shape == (1,) and bench.observation_space.dtype == np.float32
    assert bench.class_names("train") == bench.class_names("test") == ["bandit"]


@pytest.mark.parametrize(
    "kwargs", [{"arms": 1}, {"pulls": 0}, {"arms": 2.5}, {"meta_batch_size": 0}, {"reward_scale": 0.0}]
)
def test_bandit_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        BernoulliBandit(**kwargs)


def test_bandit_tasks():
    bench = BernoulliBandit(arms=4)
    tasks = bench.sample_tasks("train", 50, np.random.default_rng(3))
    assert len(tasks) == 50 and all(t.shape == (4,) for t in tasks)
    assert all(((t >= 0) & (t <= 1)).all() for t in tasks)
    again = bench.sample_tasks("train", 50, np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(tasks, again))
    assert bench.task_class(tasks[0]) == "bandit"
    # all_tasks: a fixed list, the same on every call, different between the splits.
    train, test = bench.all_tasks("train"), bench.all_tasks("test")
    assert len(train) == len(test) == 1000
    assert np.array_equal(np.stack(train), np.stack(BernoulliBandit(arms=4).all_tasks("train")))
    assert not np.array_equal(np.stack(train), np.stack(test))
    # Uniform[0, 1] probabilities: mean 1/2, variance 1/12.
    p = np.stack(train)
    assert abs(p.mean() - 0.5) < 0.02 and abs(p.var() - 1 / 12) < 0.005
    with pytest.raises(ValueError):
        bench.sample_tasks("val", 1, np.random.default_rng(0))


def test_bandit_env_shapes_and_dtypes():
    bench = BernoulliBandit(arms=3)
    env = bench.make_env(5, seed=0)
    assert isinstance(env, BanditTrialEnv) and env.num_envs == 5
    env.set_tasks(bench.sample_tasks("test", 5, np.random.default_rng(0)))
    obs = env.reset()
    assert obs.shape == (5, 1) and obs.dtype == np.float32
    obs, reward, success = env.step(np.array([0, 1, 2, 0, 1], np.int64))
    assert obs.shape == (5, 1) and obs.dtype == np.float32 and not obs.any()
    assert reward.shape == (5,) and reward.dtype == np.float32 and set(reward) <= {0.0, 1.0}
    assert success.shape == (5,) and success.dtype == bool and not success.any()


def test_bandit_env_rewards_follow_arm_probabilities():
    # 20000 envs pull arm a of the same task: the mean reward must be p[a] within 5 standard errors.
    p = np.array([0.1, 0.5, 0.85])
    n = 20_000
    env = BernoulliBandit(arms=3).make_env(n, seed=1)
    env.set_tasks([p] * n)
    for a in range(3):
        _, reward, _ = env.step(np.full(n, a))
        assert abs(reward.mean() - p[a]) < 5 * np.sqrt(p[a] * (1 - p[a]) / n)
    # Deterministic arms stay deterministic, and each env uses its own task.
    env = BernoulliBandit(arms=2).make_env(4, seed=2)
    env.set_tasks([np.array([0.0, 1.0]), np.array([1.0, 0.0])] * 2)
    _, reward, _ = env.step(np.array([1, 1, 0, 0]))
    assert reward.tolist() == [1.0, 0.0, 0.0, 1.0]


def test_bandit_env_seeding():
    bench = BernoulliBandit(arms=5)
    tasks = bench.sample_tasks("test", 64, np.random.default_rng(0))
    actions = np.random.default_rng(1).integers(5, size=(20, 64))

    def rewards(seed):
        env = bench.make_env(64, seed=seed)
        env.set_tasks(tasks)
        return np.stack([env.step(a)[1] for a in actions])

    assert np.array_equal(rewards(7), rewards(7))
    assert not np.array_equal(rewards(7), rewards(8))
    # reseed() restarts the outcome stream exactly as a fresh env with that seed.
    env = bench.make_env(64, seed=0)
    env.set_tasks(tasks)
    [env.step(a) for a in actions]
    env.reseed(7)
    assert np.array_equal(np.stack([env.step(a)[1] for a in actions]), rewards(7))


def test_bandit_env_errors():
    env = BernoulliBandit(arms=3).make_env(2)
    with pytest.raises(RuntimeError):
        env.step(np.array([0, 0]))
    with pytest.raises(ValueError):
        env.set_tasks([np.full(3, 0.5)])  # one task for two envs
    env.set_tasks([np.full(3, 0.5)] * 2)
    for bad in (np.array([0, 3]), np.array([-1, 0]), np.array([0, 1, 2])):
        with pytest.raises(ValueError):
            env.step(bad)


# ----------------------------------------------------------------------- tabular MDP


def test_mdp_benchmark_attributes():
    bench = RandomTabularMDP(states=6, actions=3, horizon=4, episodes=7, meta_batch_size=8)
    for attr in BENCHMARK_ATTRS:
        assert hasattr(bench, attr)
    assert bench.name == "tabular_mdp"
    assert bench.episode_length == 4 and bench.episodes_per_trial == 7
    assert bench.observation_space.shape == (6,) and bench.observation_space.dtype == np.float32
    assert isinstance(bench.action_space, gym.spaces.Discrete) and bench.action_space.n == 3
    assert bench.class_names("test") == ["tabular_mdp"]
    for kwargs in ({"states": 0}, {"horizon": 0}, {"episodes": -1}, {"reward_scale": -1.0}):
        with pytest.raises(ValueError):
            RandomTabularMDP(**kwargs)


def test_mdp_tasks_follow_the_prior():
    bench = RandomTabularMDP()
    tasks = bench.sample_tasks("train", 400, np.random.default_rng(0))
    assert all(isinstance(t, MDPTask) for t in tasks)
    p = np.stack([t.transitions for t in tasks])
    mu = np.stack([t.reward_means for t in tasks])
    assert p.shape == (400, 10, 5, 10) and mu.shape == (400, 10, 5)
    # Row-stochastic transitions.
    assert (p >= 0).all() and np.allclose(p.sum(-1), 1.0)
    # Flat Dirichlet over 10 states: each entry has mean 1/10 and variance (1/10)(9/10)/11.
    assert abs(p.mean() - 0.1) < 1e-9 and abs(p.var() - 0.9 / 110) < 5e-4
    # Reward means ~ Normal(1, 1).
    assert abs(mu.mean() - 1.0) < 0.02 and abs(mu.std() - 1.0) < 0.02
    again = bench.sample_tasks("train", 400, np.random.default_rng(0))
    assert np.array_equal(p, np.stack([t.transitions for t in again]))
    train, test = bench.all_tasks("train"), bench.all_tasks("test")
    assert len(train) == len(test) == 1000
    assert train[0].transitions is bench.all_tasks("train")[0].transitions  # cached, fixed
    assert not np.array_equal(train[0].transitions, test[0].transitions)


def _one_task(states=3, actions=2, seed=0) -> MDPTask:
    bench = RandomTabularMDP(states=states, actions=actions)
    return bench.sample_tasks("test", 1, np.random.default_rng(seed))[0]


def test_mdp_env_one_hot_observations_and_initial_state():
    bench = RandomTabularMDP(states=4, actions=3)
    env = bench.make_env(6, seed=0)
    assert isinstance(env, TabularMDPTrialEnv)
    env.set_tasks(bench.sample_tasks("test", 6, np.random.default_rng(1)))
    for _ in range(2):  # every episode starts in state 0
        obs = env.reset()
        assert obs.shape == (6, 4) and obs.dtype == np.float32
        assert (obs[:, 0] == 1).all() and obs.sum() == 6
        for _ in range(5):
            obs, reward, success = env.step(np.random.default_rng(0).integers(3, size=6))
            assert obs.shape == (6, 4) and obs.dtype == np.float32
            assert set(np.unique(obs)) <= {0.0, 1.0} and (obs.sum(1) == 1).all()
            assert np.array_equal(obs.argmax(1), env.state)
            assert reward.shape == (6,) and reward.dtype == np.float32
            assert success.dtype == bool and not success.any()


def test_mdp_env_transition_and_reward_statistics():
    task = _one_task(states=3, actions=2, seed=4)
    n = 40_000
    env = RandomTabularMDP(states=3, actions=2).make_env(n, seed=5)
    env.set_tasks([task] * n)
    for a in range(2):
        env.reset()
        obs, reward, _ = env.step(np.full(n, a))
        freq = obs.mean(0)
        p = task.transitions[0, a]
        assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-12)
        # Reward ~ Normal(mu(0, a), 1).
        assert abs(reward.mean() - task.reward_means[0, a]) < 5 / np.sqrt(n)
        assert abs(reward.std() - 1.0) < 0.02


def test_mdp_env_uses_each_envs_own_task():
    # Deterministic MDPs: from every state, action a moves to state (s + a + i) mod S in env i.
    S, A, n = 4, 2, 3
    tasks = []
    for i in range(n):
        p = np.zeros((S, A, S))
        for s in range(S):
            for a in range(A):
                p[s, a, (s + a + i) % S] = 1.0
        tasks.append(MDPTask(p, np.full((S, A), float(i))))
    env = RandomTabularMDP(states=S, actions=A).make_env(n, seed=0)
    env.set_tasks(tasks)
    env.reset()
    state = np.zeros(n, np.int64)
    for a in (1, 0, 1, 1):
        obs, reward, _ = env.step(np.full(n, a))
        state = (state + a + np.arange(n)) % S
        assert np.array_equal(obs.argmax(1), state)
        assert np.all(np.abs(reward - np.arange(n)) < 6)  # unit-variance noise around mean i


def test_mdp_env_seeding_and_errors():
    bench = RandomTabularMDP(states=5, actions=3)
    tasks = bench.sample_tasks("test", 16, np.random.default_rng(0))
    actions = np.random.default_rng(1).integers(3, size=(12, 16))

    def run(seed):
        env = bench.make_env(16, seed=seed)
        env.set_tasks(tasks)
        env.reset()
        out = [env.step(a) for a in actions]
        return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])

    (o1, r1), (o2, r2), (o3, r3) = run(3), run(3), run(4)
    assert np.array_equal(o1, o2) and np.array_equal(r1, r2)
    assert not np.array_equal(r1, r3)
    env = bench.make_env(16, seed=0)
    env.set_tasks(tasks)
    env.reset()
    env.step(actions[0])
    env.reseed(3)
    env.reset()
    assert np.array_equal(np.stack([env.step(a)[1] for a in actions]), r1)

    env = bench.make_env(2)
    with pytest.raises(RuntimeError):
        env.reset()  # no tasks yet
    env.set_tasks(tasks[:2])
    with pytest.raises(RuntimeError):
        env.step(np.array([0, 0]))  # no reset yet
    env.reset()
    with pytest.raises(ValueError):
        env.step(np.array([0, 3]))
    with pytest.raises(ValueError):
        env.set_tasks(tasks[:3])


def _collect(bench, tasks, seed=0):
    """One trial per task with an untrained RL² policy (sampled actions)."""
    from meta_rl.models import GRUActorCritic
    from meta_rl.rl2 import input_dim
    from meta_rl.rollout import TrialCollector

    torch.manual_seed(seed)
    model = GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=8)
    env = bench.make_env(len(tasks), seed=seed)
    col = TrialCollector(env, model, bench.observation_space.shape[0], bench.action_space, bench.episode_length,
                         bench.episodes_per_trial, bench.reward_scale, generator=torch.Generator().manual_seed(seed))
    return col.collect(tasks)


def test_bandit_trial_task_features_are_each_arms_success_rate_in_the_trial():
    bench = BernoulliBandit(arms=4, pulls=6)
    tasks = bench.sample_tasks("train", 8, np.random.default_rng(0))
    batch = _collect(bench, tasks)
    features, mask = bench.trial_task_features(batch.inputs, batch.actions, batch.rewards)
    assert features.shape == mask.shape == (8, 4) and mask.dtype == torch.bool
    arms, outcomes = batch.actions.numpy(), batch.rewards.numpy()
    assert 0 < mask.sum() < mask.numel()  # 6 pulls of 4 arms: some trials leave an arm untried
    for b in range(8):
        for k in range(4):
            pulled = arms[:, b] == k
            assert bool(mask[b, k]) == pulled.any()
            if pulled.any():  # standardised as the hidden features: (p - 0.5) * sqrt(12)
                rate = outcomes[pulled, b].mean()
                assert float(features[b, k]) == pytest.approx((rate - 0.5) * np.sqrt(12.0), abs=1e-5)


def test_mdp_trial_task_features_are_each_pairs_mean_reward_in_the_trial():
    bench = RandomTabularMDP(states=3, actions=2, horizon=4, episodes=3)
    tasks = bench.sample_tasks("train", 5, np.random.default_rng(0))
    batch = _collect(bench, tasks)
    features, mask = bench.trial_task_features(batch.inputs, batch.actions, batch.rewards)
    assert features.shape == mask.shape == (5, 6)
    states = batch.inputs[..., :3].argmax(-1).numpy()
    assert (states[0] == 0).all() and (states[4] == 0).all()  # each episode starts in the initial state
    actions, rewards = batch.actions.numpy(), batch.rewards.numpy()
    for b in range(5):
        for s in range(3):
            for a in range(2):
                took = (states[:, b] == s) & (actions[:, b] == a)
                assert bool(mask[b, s * 2 + a]) == took.any()
                if took.any():  # as the hidden features: the mean reward minus the prior mean 1
                    assert float(features[b, s * 2 + a]) == pytest.approx(rewards[took, b].mean() - 1.0, abs=1e-5)

def test_bandit_trial_task_posterior_is_each_arms_beta_posterior_mean():
    bench = BernoulliBandit(arms=4, pulls=6)
    tasks = bench.sample_tasks("train", 8, np.random.default_rng(0))
    batch = _collect(bench, tasks)
    features = bench.trial_task_posterior(batch.inputs, batch.actions, batch.rewards)
    assert features.shape == (8, 4) and features.dtype == torch.float32
    arms, outcomes = batch.actions.numpy(), batch.rewards.numpy()
    untried = 0
    for b in range(8):
        for k in range(4):
            pulled = arms[:, b] == k
            untried += not pulled.any()  # Beta(1, 1) prior: (1 + wins) / (2 + pulls), standardised
            p = (1 + outcomes[pulled, b].sum()) / (2 + pulled.sum())
            assert float(features[b, k]) == pytest.approx((p - 0.5) * np.sqrt(12.0), abs=1e-5)
    assert untried > 0  # an untried arm's feature is the prior mean, 0


def test_mdp_trial_task_posterior_is_each_pairs_normal_and_dirichlet_posterior_mean():
    """algo.aux_task_target=posterior: mean rewards under Normal(1, 1) with unit noise, next-state
    distributions under the flat Dirichlet, every pair (the prior where the trial has no data)."""
    bench = RandomTabularMDP(states=3, actions=2, horizon=4, episodes=3, task_features="rewards_transitions")
    plain = RandomTabularMDP(states=3, actions=2, horizon=4, episodes=3)
    tasks = bench.sample_tasks("train", 6, np.random.default_rng(1))
    batch = _collect(bench, tasks)
    features = bench.trial_task_posterior(batch.inputs, batch.actions, batch.rewards)
    assert features.shape == (6, 6 + 18)
    assert torch.equal(features[:, :6], plain.trial_task_posterior(batch.inputs, batch.actions, batch.rewards))
    hidden = bench.task_features(tasks[:1])[0, 6:].reshape(6, 3)
    scale = hidden[0, 0] / (tasks[0].transitions[0, 0, 0] - 1 / 3)
    states, actions, rewards = batch.inputs[..., :3].argmax(-1).numpy(), batch.actions.numpy(), batch.rewards.numpy()
    rows = features[:, 6:].reshape(6, 6, 3).numpy()
    untried = 0
    for b in range(6):
        sums, counts, successors = np.zeros(6), np.zeros(6), np.zeros((6, 3))
        for t in range(12):
            p = states[t, b] * 2 + actions[t, b]
            sums[p] += rewards[t, b]
            counts[p] += 1
            if t % 4 != 3:  # an episode's last step: its next state is not observed
                successors[p, states[t + 1, b]] += 1
        np.testing.assert_allclose(features[b, :6].numpy(), (1 + sums) / (1 + counts) - 1, atol=1e-5)
        posterior = (successors + 1) / (successors.sum(1, keepdims=True) + 3)
        np.testing.assert_allclose(rows[b], (posterior - 1 / 3) * scale, atol=1e-4)
        untried += int((counts == 0).sum())
        assert (features[b, :6].numpy()[counts == 0] == 0).all()  # an untried pair: the prior mean
    assert untried > 0


def test_mdp_task_features_with_transitions_append_each_pairs_standardised_next_state_distribution():
    """env.task_features=rewards_transitions: the mean-reward block unchanged, then each pair's
    P(.|s, a) centred on 1/S and scaled so that a row has prior variance 1, as a mean reward has."""
    plain = RandomTabularMDP(states=4, actions=3)
    bench = RandomTabularMDP(states=4, actions=3, task_features="rewards_transitions")
    assert (plain.task_feature_dim, bench.task_feature_dim) == (12, 12 + 48)
    tasks = bench.all_tasks("train")
    features = bench.task_features(tasks)
    assert features.shape == (1000, 60) and features.dtype == np.float32
    np.testing.assert_array_equal(features[:, :12], plain.task_features(tasks))
    rows = features[:, 12:].reshape(1000, 12, 4)
    probabilities = np.stack([t.transitions for t in tasks]).reshape(1000, 12, 4)
    scale = rows[0, 0, 0] / (probabilities[0, 0, 0] - 0.25)
    np.testing.assert_allclose(rows, (probabilities - 0.25) * scale, atol=1e-5)
    np.testing.assert_allclose(rows.sum(-1), 0.0, atol=1e-5)  # a row of probabilities sums to 1
    # Prior variance of a row: S Var(p) scale^2 = 1 (1000 tasks x 12 pairs: within 5%).
    assert (rows**2).sum(-1).mean() == pytest.approx(1.0, rel=0.05)
    assert features[:, :12].var() == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="env.task_features='dynamics' is unknown"):
        RandomTabularMDP(task_features="dynamics")


def test_mdp_trial_transition_features_are_each_pairs_next_state_frequencies_within_episodes():
    bench = RandomTabularMDP(states=3, actions=2, horizon=4, episodes=3, task_features="rewards_transitions")
    plain = RandomTabularMDP(states=3, actions=2, horizon=4, episodes=3)
    tasks = bench.sample_tasks("train", 6, np.random.default_rng(1))
    batch = _collect(bench, tasks)
    features, mask = bench.trial_task_features(batch.inputs, batch.actions, batch.rewards)
    assert features.shape == mask.shape == (6, 6 + 18)
    reward_features, reward_mask = plain.trial_task_features(batch.inputs, batch.actions, batch.rewards)
    assert torch.equal(features[:, :6], reward_features) and torch.equal(mask[:, :6], reward_mask)
    # The hidden transition features' scale, read off one task (tested above).
    hidden = bench.task_features(tasks[:1])[0, 6:].reshape(6, 3)
    scale = hidden[0, 0] / (tasks[0].transitions[0, 0, 0] - 1 / 3)
    states, actions = batch.inputs[..., :3].argmax(-1).numpy(), batch.actions.numpy()
    rows, seen = features[:, 6:].reshape(6, 6, 3).numpy(), mask[:, 6:].reshape(6, 6, 3).numpy()
    assert 0 < seen.sum() < seen.size
    for b in range(6):
        counts = np.zeros((6, 3))
        for t in range(11):
            if t % 4 != 3:  # an episode's last step: its next state is not observed (the next episode starts in 0)
                counts[states[t, b] * 2 + actions[t, b], states[t + 1, b]] += 1
        for pair in range(6):
            visits = counts[pair].sum()
            assert (seen[b, pair] == (visits > 0)).all()
            if visits:
                np.testing.assert_allclose(rows[b, pair], (counts[pair] / visits - 1 / 3) * scale, atol=1e-5)
