"""RL² semantics: policy inputs at episode/trial boundaries, hidden-state carry, batched = step-by-step,
collection in the env workers = collection driven from the main process."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from meta_rl.envs.metaworld import MetaWorldBenchmark
from meta_rl.models import GRUActorCritic
from meta_rl.rl2 import RL2Inputs, input_dim, normalized_dims, reward_index
from meta_rl.rollout import TrialCollector


def _collector(bench, hidden=8, seed=0, cell="gru"):
    torch.manual_seed(seed)
    model = GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=hidden,
                           init_log_std=0.5, cell=cell)
    env = bench.make_env(bench.meta_batch_size)
    col = TrialCollector(env, model, 3, bench.action_space, bench.episode_length, bench.episodes_per_trial,
                         bench.reward_scale, chunk_length=bench.episode_length,
                         generator=torch.Generator().manual_seed(seed))
    return model, env, col


def test_first_step_of_trial_has_zero_history(scripted):
    _, _, col = _collector(scripted)
    batch = col.collect([0, 1])
    x0 = batch.inputs[0].numpy()
    assert np.all(x0[:, 3:] == 0.0), "prev action, reward and done must be zero at trial start"
    np.testing.assert_array_equal(x0[:, 1], [0, 1])  # the observation is there


def test_first_step_of_episode_two_sees_done_and_last_reward(scripted):
    _, env, col = _collector(scripted)
    batch = col.collect([0, 1])
    H = scripted.episode_length
    x = batch.inputs.numpy()  # [T, B, obs 3 + act 2 + r + d]
    # within an episode: done = 0
    assert np.all(x[1:H, :, -1] == 0.0)
    # first step of episode 2 and 3: done = 1 and the scaled last reward of the previous episode
    last_reward = (0.1 * H + np.arange(2)) * scripted.reward_scale
    for start in (H, 2 * H):
        np.testing.assert_array_equal(x[start, :, -1], [1.0, 1.0])
        np.testing.assert_allclose(x[start, :, -2], last_reward, rtol=1e-6)
        # the previous action is the one the env executed (clipped to the box)
        np.testing.assert_allclose(x[start, :, 3:5], env.actions[start - 1], rtol=1e-6)
        assert x[start, 0, 0] == 0.0  # observation is the reset observation
    # the stored actions are the sampled ones (log-probs belong to them), the env got them clipped
    sampled = batch.actions.numpy()
    assert np.abs(sampled).max() > 1.0, "init_log_std=0.5 should produce some out-of-box samples"
    np.testing.assert_allclose(np.stack(env.actions), np.clip(sampled, -1, 1), rtol=1e-6)


def test_rl2inputs_discrete_actions_are_one_hot():
    rl2 = RL2Inputs(2, 1, gym.spaces.Discrete(3), reward_scale=1.0)
    rl2.record(np.array([2, 0]), np.array([1.0, 0.0], np.float32), True)
    x = rl2.build(np.zeros((2, 1), np.float32))
    np.testing.assert_array_equal(x, [[0, 0, 0, 1, 1, 1], [0, 1, 0, 0, 0, 1]])
    rl2.start_trial()
    assert np.all(rl2.build(np.ones((2, 1), np.float32))[:, 1:] == 0)


@pytest.mark.parametrize("action_space", [gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(3)], ids=["box", "discrete"])
def test_reward_index_is_where_the_inputs_put_the_previous_reward(action_space):
    obs_space = gym.spaces.Box(-1, 1, (5,))
    rl2 = RL2Inputs(1, 5, action_space, reward_scale=0.5)
    rl2.record(np.array([action_space.sample()]), np.array([3.0], np.float32), False)
    x = rl2.build(np.zeros((1, 5), np.float32))
    i = reward_index(obs_space, action_space)
    assert x[0, i] == 1.5
    assert np.count_nonzero(x[0] == 1.5) == 1  # no other input carries it


def test_previous_observation_input_carries_the_last_transition(scripted):
    torch.manual_seed(0)
    obs_space, act_space = scripted.observation_space, scripted.action_space
    assert input_dim(obs_space, act_space, previous_obs=True) == input_dim(obs_space, act_space) + 3
    mask = normalized_dims(obs_space, act_space, previous_obs=True)
    assert mask.tolist() == [True] * 3 + [False, False, True, False] + [True] * 3
    model = GRUActorCritic(input_dim(obs_space, act_space, True), act_space, hidden=8, previous_obs=True)
    env = scripted.make_env(scripted.meta_batch_size)
    col = TrialCollector(env, model, 3, act_space, scripted.episode_length, scripted.episodes_per_trial,
                         scripted.reward_scale, generator=torch.Generator().manual_seed(0))
    x = col.collect([0, 1]).inputs.numpy()  # [T, B, obs 3 + act 2 + r + d + previous obs 3]
    H = scripted.episode_length
    assert np.all(x[0, :, 3:] == 0.0), "nothing before the first step of a trial"
    # every later step sees the observation of the step before, across episode boundaries too
    np.testing.assert_array_equal(x[1:, :, 7:], x[:-1, :, :3])
    assert x[H, 0, 0] == 0.0 and x[H, 0, 7] == H - 1  # episode 2 starts: reset obs, last obs of episode 1
    np.testing.assert_array_equal(x[H, :, 6], [1.0, 1.0])  # with the done flag
    # the same collection in a fresh trial starts from zeros again
    np.testing.assert_array_equal(col.collect([1, 0]).inputs.numpy()[0, :, 3:], 0.0)


def test_previous_observation_option_builds_the_wider_model(make_cfg):
    from meta_rl.experiment import build_benchmark, build_model

    for prev, width in (("false", 10 + 5 + 2), ("true", 10 + 5 + 2 + 10)):
        cfg = make_cfg("env=tabular_mdp", "model.hidden=8", f"model.previous_obs={prev}")
        model = build_model(cfg, build_benchmark(cfg))
        assert model.gru.input_size == width and model.previous_obs == (prev == "true")


def test_trial_time_input_counts_the_steps_of_the_trial(scripted):
    obs_space, act_space = scripted.observation_space, scripted.action_space
    base = input_dim(obs_space, act_space)
    assert input_dim(obs_space, act_space, trial_time=True) == base + 1
    assert input_dim(obs_space, act_space, True, True) == base + 3 + 1
    # the clock is bounded: input normalisation leaves it alone, and the previous observation
    # keeps its place before it
    assert normalized_dims(obs_space, act_space, trial_time=True).tolist() == normalized_dims(obs_space, act_space).tolist() + [False]
    assert normalized_dims(obs_space, act_space, True, True).tolist() == [True] * 3 + [False, False, True, False] + [True] * 3 + [False]
    torch.manual_seed(0)
    model = GRUActorCritic(input_dim(obs_space, act_space, True, True), act_space, hidden=8, previous_obs=True,
                           trial_time=True)
    env = scripted.make_env(scripted.meta_batch_size)
    col = TrialCollector(env, model, 3, act_space, scripted.episode_length, scripted.episodes_per_trial,
                         scripted.reward_scale, generator=torch.Generator().manual_seed(0))
    T = scripted.episode_length * scripted.episodes_per_trial
    x = col.collect([0, 1]).inputs.numpy()  # [T, B, obs 3 + act 2 + r + d + previous obs 3 + t/T]
    np.testing.assert_allclose(x[:, :, -1], np.repeat(np.arange(T)[:, None] / T, 2, axis=1), rtol=1e-6)
    np.testing.assert_array_equal(x[1:, :, 7:10], x[:-1, :, :3])  # the previous observation is unmoved
    assert np.all(x[0, :, 3:] == 0.0)
    # a new trial restarts the clock
    np.testing.assert_allclose(col.collect([1, 0]).inputs.numpy()[:3, 0, -1], np.arange(3) / T, rtol=1e-6)
    with pytest.raises(ValueError, match="trial_length"):
        RL2Inputs(1, 3, act_space, 1.0, trial_length=0)


def test_trial_time_option_builds_the_wider_model_and_checkpoints_name_it(make_cfg, tmp_path):
    from meta_rl.checkpoint import load_weights
    from meta_rl.errors import CheckpointError
    from meta_rl.experiment import build_benchmark, build_model

    models = {}
    for clock, width in (("false", 1 + 5 + 2), ("true", 1 + 5 + 2 + 1)):  # obs, 5 arms one-hot, reward, done
        cfg = make_cfg("env=bandit", "model.hidden=8", f"model.trial_time={clock}")
        models[clock] = build_model(cfg, build_benchmark(cfg))
        assert models[clock].gru.input_size == width and models[clock].trial_time == (clock == "true")
    torch.save(models["false"].state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="model.trial_time"):
        load_weights(models["true"], tmp_path / "w.pt")


def test_masked_inputs_never_reach_the_gru(make_cfg):
    from meta_rl.errors import ConfigError
    from meta_rl.experiment import build_benchmark, build_model

    cfg = make_cfg("env=tabular_mdp", "model.hidden=8", "model.masked_inputs=[1,3]")
    bench = build_benchmark(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, bench)
    x = torch.randn(6, 2, model.gru.input_size)
    model.update_input_stats(torch.randn(50, 4, model.gru.input_size) * 3 + 1)  # standardised, then masked
    h0 = model.initial_state(2)
    out, value, _ = model(x, h0)
    changed = x.clone()
    changed[..., [1, 3]] = torch.randn(6, 2, 2) * 5
    torch.testing.assert_close(model(changed, h0)[:2], (out, value), rtol=0, atol=0)
    changed[..., 2] += 1.0  # a dim that is not masked does reach it
    assert not torch.allclose(model(changed, h0)[1], value)
    # the mask is config, not state: a checkpoint of a model without it loads, and no key is added
    assert "input_keep" not in model.state_dict()
    with pytest.raises(ConfigError, match=r"model.masked_inputs=\[17\]: env .* has 17 RL² input dims"):
        build_model(make_cfg("env=tabular_mdp", "model.hidden=8", "model.masked_inputs=[0,17]"), bench)


def test_masking_a_built_model_adds_to_its_mask_and_matches_the_config_option(make_cfg):
    """mask_inputs on a built model (the reward ablations in docs/results/) acts as
    model.masked_inputs does from the start, and keeps the dims already masked."""
    from meta_rl.experiment import build_benchmark, build_model

    bench = build_benchmark(make_cfg("env=tabular_mdp", "model.hidden=8"))
    both = build_model(make_cfg("env=tabular_mdp", "model.hidden=8", "model.masked_inputs=[1,3]"), bench)
    later = build_model(make_cfg("env=tabular_mdp", "model.hidden=8", "model.masked_inputs=[1]"), bench)
    later.load_state_dict(both.state_dict())
    stats = torch.randn(50, 4, both.gru.input_size) * 3 + 1
    both.update_input_stats(stats)
    later.update_input_stats(stats)
    x, h0 = torch.randn(6, 2, both.gru.input_size), both.initial_state(2)
    assert not torch.equal(later(x, h0)[1], both(x, h0)[1])
    later.mask_inputs([3])
    torch.testing.assert_close(later(x, h0)[:2], both(x, h0)[:2], rtol=0, atol=0)
    assert later.input_keep[1] == 0 and later.input_keep[3] == 0 and later.input_keep.sum() == both.gru.input_size - 2
    with pytest.raises(ValueError, match="outside the"):
        later.mask_inputs([both.gru.input_size])


def test_borrowed_inputs_come_from_the_next_sequence_of_the_batch(make_cfg):
    """borrow_inputs (the other-goal reward control in docs/results/reward_ablation.py): each
    sequence reads the chosen dims from the next one in the batch, cyclically, and everything
    else from itself; it survives the deepcopy that sends a policy to env workers."""
    import copy

    from meta_rl.experiment import build_benchmark, build_model

    bench = build_benchmark(make_cfg("env=tabular_mdp", "model.hidden=8"))
    model = build_model(make_cfg("env=tabular_mdp", "model.hidden=8"), bench)
    D = model.gru.input_size
    x, h0 = torch.randn(5, 3, D), model.initial_state(3)
    manual = x.clone()
    manual[..., [2, D - 2]] = x[:, [1, 2, 0]][..., [2, D - 2]]
    expected = model(manual, h0)
    assert not torch.equal(expected[1], model(x, h0)[1])
    model.borrow_inputs([D - 2, 2])
    for m in (model, copy.deepcopy(model)):
        torch.testing.assert_close(m(x, h0), expected, rtol=0, atol=0)
    assert "input_borrowed" not in model.state_dict()
    model.borrow_inputs([])
    torch.testing.assert_close(model(manual, h0), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="outside the"):
        model.borrow_inputs([D])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_hidden_state_kept_across_episodes_and_reset_at_trial_start(scripted, cell):
    """Replaying the stored inputs through the GRU (or LSTM) with one continuous state reproduces
    the rollout's values: the state was carried over episode ends. The stored chunk-start states
    (an LSTM's output and cell state) equal the replayed ones, and the first is the initial state."""
    model, _, col = _collector(scripted, cell=cell)
    batch = col.collect([0, 1])
    assert batch.hidden.shape[-1] == model.state_size == (16 if cell == "lstm" else 8)
    with torch.no_grad():
        _, values, _ = model(batch.inputs, model.initial_state(2))
        np.testing.assert_allclose(values.numpy(), batch.values.numpy(), rtol=1e-5, atol=1e-6)
        H = scripted.episode_length
        assert torch.equal(batch.hidden[0], torch.zeros_like(batch.hidden[0]))
        _, _, h_after_ep1 = model(batch.inputs[:H], model.initial_state(2))
        np.testing.assert_allclose(batch.hidden[1].numpy(), h_after_ep1[0].numpy(), rtol=1e-5, atol=1e-6)
        assert h_after_ep1.abs().sum() > 0  # and it is not the initial state
    # a second trial of the same collector starts again from the initial state
    _, _, col2 = _collector(scripted, cell=cell)
    col2.collect([0, 1])
    batch2 = col2.collect([0, 1])  # second trial of col2 (different action noise)
    assert torch.equal(batch2.hidden[0], torch.zeros_like(batch2.hidden[0]))
    with torch.no_grad():
        _, v2, _ = model(batch2.inputs, model.initial_state(2))
    np.testing.assert_allclose(v2.numpy(), batch2.values.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_batched_gru_equals_step_by_step_with_trial_resets(cell):
    torch.manual_seed(0)
    T, B, D = 12, 3, 5
    model = GRUActorCritic(D, gym.spaces.Box(-1, 1, (2,)), hidden=16, cell=cell)
    x = torch.randn(T, B, D)
    trial_start = torch.zeros(T, B, dtype=torch.bool)
    trial_start[0] = True
    trial_start[5, 1] = True  # env 1 starts a new trial at t=5
    trial_start[9, :] = True  # all envs at t=9
    h0 = torch.randn(1, B, model.state_size)  # ignored where trial_start[0]
    with torch.no_grad():
        out, value, hT = model(x, h0, trial_start)
        h = h0.clone()
        outs, vals = [], []
        for t in range(T):
            h = torch.where(trial_start[t].view(1, B, 1), model.initial_state(B), h)
            o, v, h = model(x[t : t + 1], h)
            outs.append(o[0])
            vals.append(v[0])
    torch.testing.assert_close(out, torch.stack(outs), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(value, torch.stack(vals), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hT, h, rtol=1e-5, atol=1e-6)
    # without the resets the result differs (the reset really happened)
    with torch.no_grad():
        out_nr, _, _ = model(x, model.initial_state(B))
    assert not torch.allclose(out_nr[5:, 1], out[5:, 1])


def test_collection_runs_with_its_own_thread_count_and_restores_it(scripted):
    model, _, col = _collector(scripted)
    seen = []
    forward = model.forward

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return forward(*args, **kwargs)

    model.forward = spy
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        col.collect([0, 1])
        assert set(seen) == {1}, "inference during collection should use collector.threads (1)"
        assert torch.get_num_threads() == 2, "the update's thread count must be restored"
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ collection in the env workers
FIELDS = ("inputs", "actions", "log_probs", "values", "rewards", "successes", "hidden")


@pytest.fixture(scope="module")
def ml10_workers():
    """10 ML10 envs stepped by 2 workers (envs 0, 2, ... and 1, 3, ...)."""
    bench = MetaWorldBenchmark("ML10", meta_batch_size=10, episodes_per_trial=3, episode_length=8, num_workers=2)
    env = bench.make_env(10)
    assert env.rows == (slice(0, 10, 2), slice(1, 10, 2))
    yield bench, env, bench.sample_tasks("train", 10, np.random.default_rng(0))
    env.close()


def _ml10_collector(bench, env, in_workers, seed=0):
    torch.manual_seed(0)
    model = GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=64)
    col = TrialCollector(env, model, 39, bench.action_space, bench.episode_length, bench.episodes_per_trial,
                         bench.reward_scale, chunk_length=4, generator=torch.Generator().manual_seed(seed),
                         in_workers=in_workers)
    assert col.in_workers == in_workers
    return col


def _copy(batch):
    return {k: getattr(batch, k).clone() for k in FIELDS}


def test_collection_in_workers_equals_collection_from_the_main_process(ml10_workers):
    """With the mode as action (no sampling), running the policy in the workers changes nothing."""
    bench, env, tasks = ml10_workers
    main = _copy(_ml10_collector(bench, env, in_workers=False).collect(tasks, explore_episodes=0))
    workers = _copy(_ml10_collector(bench, env, in_workers=True).collect(tasks, explore_episodes=0))
    for k in FIELDS:
        if k == "values":  # the value head's matrix-vector product rounds differently for fewer envs
            torch.testing.assert_close(workers[k], main[k], rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(workers[k], main[k]), k
    assert main["rewards"].abs().sum() > 0 and main["hidden"][1:].abs().sum() > 0


def test_workers_use_the_current_weights_and_input_statistics(ml10_workers):
    """The weights travel with every collect: after a change in the main process's model (an
    update), the workers act with the new weights, and equal the main-process loop again."""
    bench, env, tasks = ml10_workers
    cols = [_ml10_collector(bench, env, in_workers=w) for w in (False, True)]
    before = _copy(cols[1].collect(tasks, explore_episodes=0))
    for col in cols:
        with torch.no_grad():
            col.model.policy.bias.add_(0.3)
    main, workers = (_copy(col.collect(tasks, explore_episodes=0)) for col in cols)
    assert not torch.equal(workers["actions"], before["actions"])
    assert torch.equal(workers["actions"], main["actions"])


def test_collection_in_workers_is_deterministic_for_a_seed(ml10_workers):
    bench, env, tasks = ml10_workers
    a, b, c = (_copy(_ml10_collector(bench, env, in_workers=True, seed=s).collect(tasks, explore_episodes=2))
               for s in (3, 3, 4))
    for k in FIELDS:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["actions"], c["actions"])
    # the two workers draw different noise
    assert not torch.equal(a["actions"][:, 0], a["actions"][:, 1])


def test_interrupt_stops_the_workers_and_leaves_the_env_usable():
    bench = MetaWorldBenchmark("ML10", meta_batch_size=10, episodes_per_trial=2, episode_length=500, num_workers=2)
    env = bench.make_env(10)
    tasks = bench.sample_tasks("train", 10, np.random.default_rng(0))
    try:
        col = _ml10_collector(bench, env, in_workers=True)
        calls = []

        class Stop(Exception):
            pass

        def interrupt():
            calls.append(None)
            if len(calls) == 3:  # ~0.1 s in: the workers are mid-trial
                raise Stop

        ref = _copy(col.collect(tasks, explore_episodes=0))  # builds the workers' envs and policy
        col.interrupt = interrupt
        before = env._progress.copy()
        with pytest.raises(Stop):
            col.collect(tasks, explore_episodes=0)
        # the workers stopped at their next step instead of finishing their 1,000 steps
        done = env._progress - before
        assert (done > 0).all() and (done < 500).all(), done
        col.interrupt = None
        col.generator.manual_seed(0)
        again = _copy(col.collect(tasks, explore_episodes=0))
        for k in FIELDS:
            assert torch.equal(again[k], ref[k]), k
    finally:
        env.close()


def test_input_normalisation_standardises_observation_and_reward_only():
    obs_space, act_space = gym.spaces.Box(-np.inf, np.inf, (5,)), gym.spaces.Box(-1, 1, (2,))
    D = input_dim(obs_space, act_space)  # 5 obs + 2 action + reward + done
    mask = normalized_dims(obs_space, act_space)
    assert mask.tolist() == [True] * 5 + [False, False, True, False]
    torch.manual_seed(0)
    model = GRUActorCritic(D, act_space, hidden=16, normalize_inputs=True, input_mask=mask.tolist())
    plain = GRUActorCritic(D, act_space, hidden=16)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("input_")})
    x = torch.randn(7, 3, D) * 0.05 + 0.6
    x[0, 0, 1] = 5.0  # far outside the data below: standardised beyond the clip
    h0 = torch.zeros(1, 3, 16)
    with torch.no_grad():  # identity before any statistics
        torch.testing.assert_close(model(x, h0)[0], plain(x, h0)[0])

    gen = torch.Generator().manual_seed(1)
    a = torch.randn(50, 4, D, generator=gen) * 0.02 + 0.7
    b = torch.randn(30, 4, D, generator=gen) * 0.03 + 0.65
    a[..., 0] = b[..., 0] = 0.25  # a constant observation dim (Meta-World's hidden goal)
    model.update_input_stats(a)
    model.update_input_stats(b)
    both = torch.cat([a.reshape(-1, D), b.reshape(-1, D)]).double()
    torch.testing.assert_close(model.input_mean, both.mean(0))
    torch.testing.assert_close(model.input_m2 / model.input_count, both.var(0, unbiased=False))
    std = both.std(0, unbiased=False).float()
    expected = x.clone()
    m = torch.as_tensor(mask)
    expected[..., m] = ((x[..., m] - both.mean(0).float()[m]) / std[m]).clamp(-10, 10)
    expected[..., 0] = x[..., 0] - 0.25  # zero variance: centred, not scaled
    with torch.no_grad():
        torch.testing.assert_close(model(x, h0)[0], plain(expected, h0)[0], rtol=1e-4, atol=1e-5)
        assert expected[..., m].abs().max() == 10  # the clip was exercised
        # the statistics travel with the state dict
        clone = GRUActorCritic(D, act_space, hidden=16, normalize_inputs=True, input_mask=mask.tolist())
        clone.load_state_dict(model.state_dict())
        torch.testing.assert_close(clone(x, h0)[0], model(x, h0)[0])


def test_trainer_updates_input_statistics_after_each_update(make_cfg, tmp_path):
    from meta_rl.experiment import train

    cfg = make_cfg("debug=smoke", "env=ml1", "env.meta_batch_size=2", "env.num_workers=0", "eval.every=0",
                   "eval.final=false", "total_env_steps=160", "model.normalize_inputs=true")
    train(cfg)
    state = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=False)["model"]
    # two iterations of 2 trials x 2 episodes x 20 steps: every collected input was folded in once
    assert float(state["input_count"]) == 2 * (2 * 2 * 20)
    assert bool((state["input_scale"][:39] > 1).any()) and float(state["input_scale"][39]) == 1.0


def test_metaworld_agent_needs_the_trial_length_of_a_clocked_model():
    from types import SimpleNamespace

    from meta_rl.metaworld_agent import MetaWorldRL2Agent

    act_space = gym.spaces.Box(-1, 1, (4,))
    model = GRUActorCritic(input_dim(gym.spaces.Box(-1, 1, (39,)), act_space, trial_time=True), act_space, hidden=8,
                           trial_time=True)
    with pytest.raises(ValueError, match="trial_length"):
        MetaWorldRL2Agent(model, num_envs=2)
    agent = MetaWorldRL2Agent(model, num_envs=2, trial_length=1000)
    agent.init()
    obs = np.zeros((2, 39))
    for _ in range(3):
        action, _ = agent.adapt_action(obs)
        agent.step(SimpleNamespace(action=action, reward=np.zeros(2), terminated=np.zeros(2, bool),
                                   truncated=np.zeros(2, bool)))
    np.testing.assert_allclose(agent.rl2.build(obs)[:, -1], 3 / 1000)
    agent.init()
    assert np.all(agent.rl2.build(obs)[:, -1] == 0.0)
