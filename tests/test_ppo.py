"""PPO: the clip objective's diagnostics, and that an update improves the surrogate."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from meta_rl.algos.ppo import PPOClip, PPOPenalty, _chunks, clip_objective
from meta_rl.models import GRUActorCritic
from meta_rl.rl2 import input_dim
from meta_rl.rollout import TrialCollector
from tests.conftest import ScriptedBenchmark


def test_clip_objective_by_hand():
    ratios = torch.tensor([0.5, 0.9, 1.0, 1.1, 1.5])
    adv = torch.tensor([1.0, -1.0, 2.0, 1.0, 1.0])
    loss, clip_frac, kl = clip_objective(ratios.log(), adv, clip=0.2)
    # min(r*A, clip(r)*A): .5 ; -.9 vs -.9 → -.9 ; 2 ; 1.1 ; min(1.5, 1.2) = 1.2
    assert loss.item() == pytest.approx(-(0.5 - 0.9 + 2.0 + 1.1 + 1.2) / 5)
    assert clip_frac.item() == pytest.approx(2 / 5)  # 0.5 and 1.5 lie outside [0.8, 1.2]
    expected_kl = sum((r - 1) - math.log(r) for r in ratios.tolist()) / 5
    assert kl.item() == pytest.approx(expected_kl)


def test_chunks_keep_time_order():
    t = torch.arange(12).view(6, 2)  # T=6, B=2: value = 2*t + b
    c = _chunks(t, 3)  # [3, 4]: sequence n = chunk*B + b
    assert c[:, 0].tolist() == [0, 2, 4] and c[:, 1].tolist() == [1, 3, 5]
    assert c[:, 2].tolist() == [6, 8, 10] and c[:, 3].tolist() == [7, 9, 11]


def _batch(seed=0, cell="gru"):
    bench = ScriptedBenchmark(episode_length=5, episodes_per_trial=2, meta_batch_size=4)
    torch.manual_seed(seed)
    model = GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=16,
                           cell=cell)
    col = TrialCollector(bench.make_env(4), model, 3, bench.action_space, 5, 2, bench.reward_scale,
                         chunk_length=5, generator=torch.Generator().manual_seed(seed))
    return model, col.collect([0, 1, 2, 3])


def _surrogate(model, batch, algo):
    """Clipped surrogate on the full batch at the current parameters (advantages as in update)."""
    from meta_rl.algos.gae import gae

    with torch.no_grad():
        adv, _ = gae(batch.rewards * algo.reward_scale, batch.values, batch.episode_end, algo.gamma, algo.lam)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        out, _, _ = model(batch.inputs, model.initial_state(batch.inputs.shape[1]))
        logratio = model.distribution(out).log_prob(batch.actions) - batch.log_probs
        return clip_objective(logratio, adv, algo.clip)[0].item()


@pytest.mark.parametrize("cls,cell", [(PPOClip, "gru"), (PPOPenalty, "gru"), (PPOClip, "lstm")])
def test_update_lowers_surrogate_loss(cls, cell):
    model, batch = _batch(cell=cell)
    algo = cls(model, lr=3e-3, epochs=4, num_minibatches=2, chunk_length=5, value_coef=0.0)
    before = _surrogate(model, batch, algo)
    assert before == pytest.approx(0.0, abs=1e-5)  # ratio 1, normalised advantages
    stats = algo.update(batch, torch.Generator().manual_seed(0))
    after = _surrogate(model, batch, algo)
    assert after < before - 1e-3
    assert 0.0 <= stats["clip_frac"] <= 1.0 and stats["approx_kl"] >= 0.0
    for k in ("policy_loss", "value_loss", "entropy", "grad_norm", "explained_variance"):
        assert math.isfinite(stats[k])


def test_penalty_coefficient_adapts():
    model, batch = _batch()
    # (the first minibatch of an update has ratio 1 and KL 0, so use two epochs)
    algo = PPOPenalty(model, kl_target=1e-9, kl_coef=1.0, lr=1e-2, epochs=2, num_minibatches=1, chunk_length=5)
    stats = algo.update(batch)
    assert stats["approx_kl"] > 1e-8
    assert algo.kl_coef == 2.0 and stats["kl_coef"] == 2.0  # KL far above target → doubled
    algo2 = PPOPenalty(model, kl_target=1e3, kl_coef=1.0, epochs=1, num_minibatches=1, chunk_length=5)
    algo2.update(batch)
    assert algo2.kl_coef == 0.5
    assert algo2.state_dict()["kl_coef"] == 0.5


@pytest.mark.parametrize("space,state_std", [(gym.spaces.Box(-1, 1, (3,)), False), (gym.spaces.Box(-1, 1, (3,)), True),
                                             (gym.spaces.Discrete(4), False)])
@pytest.mark.parametrize("deterministic", [False, True])
def test_act_gives_the_distributions_log_prob_bit_for_bit(space, state_std, deterministic):
    model = GRUActorCritic(4, space, hidden=8, init_log_std=0.3, state_dependent_std=state_std)
    width = model.policy.out_features
    out = 3 * torch.randn(5, 2, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        action, log_prob = model.act(out, torch.Generator().manual_seed(0), deterministic)
        expected = model.mode(out) if deterministic else model.sample(out, torch.Generator().manual_seed(0))
        assert torch.equal(action, expected)
        assert torch.equal(log_prob, model.distribution(out).log_prob(action))


def test_state_dependent_std_starts_at_init_and_is_learned_per_state():
    space = gym.spaces.Box(-1, 1, (2,))
    torch.manual_seed(0)
    model = GRUActorCritic(4, space, hidden=8, init_log_std=-0.5, state_dependent_std=True)
    assert model.log_std is None and model.policy.out_features == 4
    x = torch.randn(6, 3, 4)
    out, _, _ = model(x, model.initial_state(3))
    mean, std = model.mean_std(out)
    assert mean.shape == std.shape == (6, 3, 2)
    # the log-std half of the head starts at init_log_std up to its small initial weights
    assert torch.allclose(std, torch.full_like(std, math.exp(-0.5)), rtol=0.05)
    assert torch.equal(model.mode(out), mean)
    # fitting "std 0.2 at t=0, 1.0 at t=5" makes the std differ between states
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        out, _, _ = model(x, model.initial_state(3))
        _, std = model.mean_std(out)
        loss = (std[0] - 0.2).pow(2).mean() + (std[5] - 1.0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        _, std = model.mean_std(model(x, model.initial_state(3))[0])
    assert std[0].max() < 0.5 < 0.8 < std[5].min()
    assert std.min() >= math.exp(model.min_log_std) - 1e-7


@pytest.mark.parametrize("state_std", [False, True])
def test_max_log_std_caps_the_noise_of_a_model_trained_with_more(state_std, tmp_path):
    """init_weights from a std-1 model into one with max_log_std: the std is the cap, samples
    spread by it, and a PPO-style loss moves the mean but not a log std held at the cap."""
    from meta_rl import checkpoint

    space = gym.spaces.Box(-1, 1, (2,))
    torch.manual_seed(0)
    wide = GRUActorCritic(4, space, hidden=8, init_log_std=0.0, state_dependent_std=state_std)
    torch.save(wide.state_dict(), tmp_path / "wide.pt")
    narrow = GRUActorCritic(4, space, hidden=8, init_log_std=0.0, max_log_std=math.log(0.3),
                            state_dependent_std=state_std)
    checkpoint.load_weights(narrow, str(tmp_path / "wide.pt"))
    x = torch.randn(6, 3, 4)
    out, _, _ = narrow(x, narrow.initial_state(3))
    wide_std = wide.mean_std(wide(x, wide.initial_state(3))[0])[1]
    assert torch.all(wide_std > 0.9)
    mean, std = narrow.mean_std(out)
    assert torch.allclose(std, torch.full_like(std, 0.3))
    first = out.detach()[:1].expand(2000, 3, -1)
    samples = narrow.sample(first, torch.Generator().manual_seed(0))
    assert (samples - mean.detach()[:1]).std().item() == pytest.approx(0.3, rel=0.05)
    logp = narrow.distribution(out).log_prob(torch.zeros(6, 3, 2))
    (-logp.mean()).backward()
    grads = dict(narrow.named_parameters())
    assert grads["policy.weight"].grad.abs().sum() > 0
    if state_std:  # the log-std rows of the head get nothing; the mean rows do
        assert grads["policy.weight"].grad[2:].abs().sum() == 0 < grads["policy.weight"].grad[:2].abs().sum()
    else:
        assert grads["log_std"].grad.abs().sum() == 0


def test_state_dependent_std_update_reports_the_mean_std():
    bench = ScriptedBenchmark(episode_length=5, episodes_per_trial=2, meta_batch_size=4)
    torch.manual_seed(0)
    model = GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=16,
                           init_log_std=-1.0, state_dependent_std=True)
    col = TrialCollector(bench.make_env(4), model, 3, bench.action_space, 5, 2, bench.reward_scale,
                         chunk_length=5, generator=torch.Generator().manual_seed(0))
    batch = col.collect([0, 1, 2, 3])
    algo = PPOClip(model, lr=3e-3, epochs=2, num_minibatches=2, chunk_length=5)
    before = _surrogate(model, batch, algo)
    stats = algo.update(batch, torch.Generator().manual_seed(0))
    assert _surrogate(model, batch, algo) < before - 1e-3
    assert stats["policy_std"] == pytest.approx(math.exp(-1.0), rel=0.1)
    # the parameter-std model reports no such diagnostic (its std is logged from the parameter)
    model2, batch2 = _batch()
    assert "policy_std" not in PPOClip(model2, epochs=1, num_minibatches=1, chunk_length=5).update(batch2)


def test_discrete_policy_update_runs():
    model = GRUActorCritic(4, gym.spaces.Discrete(3), hidden=8)
    x = torch.randn(6, 2, 4)
    with torch.no_grad():
        out, _, _ = model(x, model.initial_state(2))
        a = model.sample(out, torch.Generator().manual_seed(0))
    assert a.dtype == torch.int64 and a.shape == (6, 2) and a.max() < 3


def test_linear_baseline_recovers_a_linear_target_and_predicts_from_the_previous_fit():
    from meta_rl.algos.baseline import LinearFeatureBaseline

    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(12, 5, 3, generator=g)
    feats = LinearFeatureBaseline.features(inputs, episode_length=4)
    assert feats.shape == (12, 5, 2 * 3 + 7)
    w = torch.randn(feats.shape[-1], generator=g, dtype=torch.float64)
    target = (feats.double() @ w).float()
    base = LinearFeatureBaseline(reg_coeff=1e-10)
    assert torch.equal(base.predict(feats), torch.zeros(12, 5))  # nothing fitted yet
    base.fit(feats, target)
    assert torch.allclose(base.predict(feats), target, atol=1e-3)
    restored = LinearFeatureBaseline()
    restored.load_state_dict(base.state_dict())
    assert torch.equal(restored.predict(feats), base.predict(feats))


def test_linear_baseline_update_uses_previous_fit_and_leaves_the_critic_alone():
    model, batch = _batch()
    algo = PPOClip(model, lr=3e-3, epochs=2, num_minibatches=2, chunk_length=5, baseline="linear")
    value_head = {k: v.clone() for k, v in model.named_parameters() if "value" in k or "critic" in k}
    assert value_head, "the value head's parameters should be found by name"
    stats = algo.update(batch, torch.Generator().manual_seed(0))
    # first update: values were zero, so the reported baseline error is the return's second moment / 2
    from meta_rl.algos.gae import gae

    mc, _ = gae(batch.rewards * algo.reward_scale, torch.zeros_like(batch.rewards), batch.episode_end, algo.gamma, 1.0)
    assert stats["value_loss"] == pytest.approx(0.5 * mc.pow(2).mean().item(), rel=1e-5)
    assert algo.baseline.weights is not None
    for k, v in model.named_parameters():
        if k in value_head:
            assert torch.equal(v, value_head[k]), f"{k} changed although the critic is unused"
    stats2 = algo.update(batch, torch.Generator().manual_seed(0))  # now predicted from the first fit
    assert stats2["value_loss"] < stats["value_loss"]
    assert "baseline" in algo.state_dict()


def _update_with_trial_scaled(advantage_norm, scale):
    """Parameters after one update in which trial 0's rewards and values are multiplied by scale."""
    import dataclasses

    model, batch = _batch()
    rewards, values = batch.rewards.clone(), batch.values.clone()
    rewards[:, 0] *= scale
    values[:, 0] *= scale
    batch = dataclasses.replace(batch, rewards=rewards, values=values)
    algo = PPOClip(model, lr=3e-3, epochs=2, num_minibatches=2, chunk_length=5, value_coef=0.0,
                   normalize_values=False, advantage_norm=advantage_norm)
    algo.update(batch, torch.Generator().manual_seed(0))
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_trial_advantage_norm_gives_every_trial_the_same_weight():
    # A trial whose rewards (and values) are 100x the others' has 100x their advantages: standardised
    # per trial the update is the one without the scaling; standardised over the batch it is not.
    same = _update_with_trial_scaled("trial", 1.0)
    assert torch.allclose(_update_with_trial_scaled("trial", 100.0), same, atol=1e-5)
    assert not torch.allclose(_update_with_trial_scaled("batch", 100.0), _update_with_trial_scaled("batch", 1.0),
                              atol=1e-3)
    with pytest.raises(ValueError, match="advantage_norm"):
        PPOClip(_batch()[0], advantage_norm="task")


def test_task_reward_scale_gives_each_class_unit_reward_std_and_round_trips():
    from meta_rl.algos.ppo import TaskRewardScale

    g = torch.Generator().manual_seed(0)
    rewards = torch.rand(200, 4, generator=g) * torch.tensor([100.0, 0.01, 100.0, 1.0])
    ids = torch.tensor([0, 1, 0, 2])
    norm = TaskRewardScale()
    scaled = norm(rewards, ids)
    for cols in ([0, 2], [1], [3]):
        x = scaled[:, cols].double()
        assert x.var(unbiased=False).item() == pytest.approx(1.0, rel=1e-3)
    ratio = scaled[:, [0, 2]] / rewards[:, [0, 2]]
    assert torch.allclose(ratio, ratio[0, 0].expand_as(ratio))  # one scale per class
    assert (scaled * rewards >= 0).all()  # divided, not centred
    copy = TaskRewardScale()
    copy.load_state_dict(norm.state_dict())
    more = torch.rand(200, 4, generator=g)
    assert torch.equal(copy(more, ids), norm(more, ids))


def _update_with_class_scaled(scale):
    """Parameters after one update (per-class reward normalisation) with trial 0's rewards x scale."""
    import dataclasses

    model, batch = _batch()
    rewards = batch.rewards.clone()
    rewards[:, 0] *= scale
    batch = dataclasses.replace(batch, rewards=rewards, task_ids=torch.tensor([0, 1, 2, 3]))
    algo = PPOClip(model, lr=3e-3, epochs=2, num_minibatches=2, chunk_length=5, reward_norm="task")
    algo.update(batch, torch.Generator().manual_seed(0))
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_task_reward_norm_makes_the_update_blind_to_a_class_reward_scale():
    # trial 0 is the only one of its class: its rewards x 100 are divided by a std x 100
    assert torch.allclose(_update_with_class_scaled(100.0), _update_with_class_scaled(1.0), atol=1e-5)
    model, batch = _batch()
    with pytest.raises(ValueError, match="task_ids"):
        PPOClip(model, chunk_length=5, reward_norm="task").update(batch)
    with pytest.raises(ValueError, match="reward_norm"):
        PPOClip(model, reward_norm="class")


def test_unknown_baseline_is_refused():
    model, _ = _batch()
    with pytest.raises(ValueError, match="baseline"):
        PPOClip(model, baseline="mean")


def test_value_normalizer_tracks_mean_and_variance_over_batches():
    from meta_rl.algos.ppo import ValueNormalizer

    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(50, 3, generator=g) * 7 + 20, torch.randn(10, 3, generator=g) * 2 - 5]
    norm = ValueNormalizer()
    for b in batches:
        norm.update(b)
    allx = torch.cat([b.flatten() for b in batches]).double()
    assert norm.mean == pytest.approx(allx.mean().item(), rel=1e-3)
    assert norm.var == pytest.approx(allx.var(unbiased=False).item(), rel=1e-3)
    x = torch.tensor([1.0, -3.0, 40.0])
    assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-5)
    restored = ValueNormalizer()
    restored.load_state_dict(norm.state_dict())
    assert restored.state_dict() == norm.state_dict()


def test_normalized_critic_learns_normalised_returns():
    from meta_rl.algos.gae import gae

    model, batch = _batch()
    algo = PPOClip(model, lr=3e-3, epochs=1, num_minibatches=1, chunk_length=5, normalize_values=True)
    raw_values = batch.values.clone()
    algo.update(batch, torch.Generator().manual_seed(0))
    # GAE saw the denormalised values of the (initial: identity) normaliser, and its stats now hold the returns
    _, ret = gae(batch.rewards * algo.reward_scale, raw_values, batch.episode_end, algo.gamma, algo.lam)
    expected = ret.double()
    n0 = 1e-4
    assert algo.value_norm.mean == pytest.approx(expected.mean().item() * len(expected.flatten())
                                                 / (len(expected.flatten()) + n0), rel=1e-4)
    assert "value_norm" in algo.state_dict()
    assert PPOClip(model, normalize_values=False).value_norm is None
    assert PPOClip(model, baseline="linear").value_norm is None


def test_linear_schedules_of_lr_and_entropy_coef():
    model, batch = _batch()
    algo = PPOClip(model, lr=1e-2, lr_final=0.0, entropy_coef=0.03, entropy_coef_final=0.01, epochs=1,
                   num_minibatches=1, chunk_length=5)
    algo.set_progress(0.0)
    assert algo.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2) and algo.entropy_coef == pytest.approx(0.03)
    algo.set_progress(0.75)
    stats = algo.update(batch)
    assert stats["lr"] == pytest.approx(2.5e-3) and stats["entropy_coef"] == pytest.approx(0.015)
    # an optimiser state loaded from a checkpoint does not bring back an old lr: set_progress wins
    algo.optimizer.load_state_dict(PPOClip(model, lr=1.0).optimizer.state_dict())
    algo.set_progress(0.5)
    assert algo.optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
    # constant by default: no schedule, no extra diagnostics
    plain = PPOClip(model, lr=1e-2, entropy_coef=0.03, epochs=1, num_minibatches=1, chunk_length=5)
    plain.set_progress(0.9)
    assert plain.optimizer.param_groups[0]["lr"] == 1e-2 and plain.entropy_coef == 0.03
    assert "lr" not in plain.update(batch)


def _aux_model_and_batch(seed=0):
    """A model with a task head and a batch of 4 trials (2 chunks each) with task features."""
    import dataclasses

    bench = ScriptedBenchmark(episode_length=5, episodes_per_trial=2, meta_batch_size=4)
    torch.manual_seed(seed)
    model = GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=16,
                           task_dim=3)
    col = TrialCollector(bench.make_env(4), model, 3, bench.action_space, 5, 2, bench.reward_scale,
                         chunk_length=5, generator=torch.Generator().manual_seed(seed))
    features = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    return model, dataclasses.replace(col.collect([0, 1, 2, 3]), task_features=features)


def test_aux_task_loss_is_the_trials_features_regressed_at_every_step():
    model, batch = _aux_model_and_batch()
    with torch.no_grad():  # the whole trial, unchunked: step t of trial b against trial b's features
        feats, _ = model.encode(batch.inputs, model.initial_state(4))
        expected = (model.task_head(feats) - batch.task_features).pow(2).mean().item()
    algo = PPOClip(model, lr=1e-12, epochs=1, num_minibatches=1, chunk_length=5, aux_task_coef=1.0)
    stats = algo.update(batch, torch.Generator().manual_seed(0))
    assert stats["aux_task_loss"] == pytest.approx(expected, rel=1e-5)
    assert stats["aux_task_loss_before_update"] == pytest.approx(expected, rel=1e-5)  # one step: the same
    # the same features given to the wrong trials give another loss
    shuffled = type(batch)(**{**batch.__dict__, "task_features": batch.task_features.roll(1, 0)})
    assert PPOClip(model, lr=1e-12, epochs=1, num_minibatches=1, chunk_length=5,
                   aux_task_coef=1.0).update(shuffled)["aux_task_loss"] != pytest.approx(expected, rel=1e-3)


def test_aux_task_loss_with_a_mask_counts_only_the_features_a_trial_has_data_on():
    """Targets estimated from the trial (algo.aux_task_target=trial) come with a mask: the loss is
    the mean squared error over the counted features of every step, whatever the others hold."""
    model, batch = _aux_model_and_batch()
    mask = torch.tensor([[True, False, True], [False, False, True], [True, True, True], [False, True, False]])
    masked = type(batch)(**{**batch.__dict__, "task_mask": mask})
    with torch.no_grad():
        feats, _ = model.encode(batch.inputs, model.initial_state(4))
        error = (model.task_head(feats) - batch.task_features).pow(2)  # [T, 4, 3]
        expected = (error * mask).sum().item() / (mask.sum().item() * error.shape[0])
    loss = PPOClip(model, lr=1e-12, epochs=1, num_minibatches=1, chunk_length=5,
                   aux_task_coef=1.0).update(masked)["aux_task_loss"]
    assert loss == pytest.approx(expected, rel=1e-5)
    garbage = batch.task_features.masked_fill(~mask, 1e3)  # what the mask leaves out does not count
    loss = PPOClip(model, lr=1e-12, epochs=1, num_minibatches=1, chunk_length=5, aux_task_coef=1.0).update(
        type(batch)(**{**masked.__dict__, "task_features": garbage}))["aux_task_loss"]
    assert loss == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="aux_task_target"):
        PPOClip(model, aux_task_coef=1.0, aux_task_target="hindsight")


def test_aux_task_loss_is_learned_and_off_by_default():
    model, batch = _aux_model_and_batch()
    algo = PPOClip(model, lr=1e-2, epochs=10, num_minibatches=2, chunk_length=5, aux_task_coef=1.0)
    stats = algo.update(batch, torch.Generator().manual_seed(0))
    first = stats["aux_task_loss"]
    # the first minibatch is read before any step on the batch; the mean over 10 epochs fits it
    assert stats["aux_task_loss_before_update"] > first
    for _ in range(5):
        last = algo.update(batch, torch.Generator().manual_seed(0))["aux_task_loss"]
    assert last < 0.3 * first
    head = model.task_head.weight.detach().clone()
    stats = PPOClip(model, lr=1e-2, epochs=2, num_minibatches=2, chunk_length=5).update(batch)
    assert "aux_task_loss" not in stats and torch.equal(model.task_head.weight, head)


def _reward_model_and_batch(discrete: bool, seed=0):
    """A model with a reward head and a batch of 4 trials (2 chunks each): a 3-armed bandit of 10
    pulls (discrete actions) or the scripted benchmark (Box actions, reward_scale 0.5)."""
    from meta_rl.envs.bandit import BernoulliBandit

    bench = (BernoulliBandit(arms=3, pulls=10, meta_batch_size=4) if discrete
             else ScriptedBenchmark(episode_length=5, episodes_per_trial=2, meta_batch_size=4))
    torch.manual_seed(seed)
    model = GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=16,
                           reward_head=True)
    col = TrialCollector(bench.make_env(4), model, bench.observation_space.shape[0], bench.action_space,
                         bench.episode_length, bench.episodes_per_trial, bench.reward_scale, chunk_length=5,
                         generator=torch.Generator().manual_seed(seed))
    tasks = bench.sample_tasks("train", 4, np.random.default_rng(seed)) if discrete else [0, 1, 2, 3]
    return model, col.collect(tasks), bench.reward_scale


@pytest.mark.parametrize("discrete", [True, False])
def test_aux_reward_loss_predicts_each_steps_reward_from_the_state_and_action_taken(discrete):
    model, batch, scale = _reward_model_and_batch(discrete)
    assert batch.rewards.abs().sum() > 0
    with torch.no_grad():  # the whole trial, unchunked: step t's prediction for the action taken at t
        feats, _ = model.encode(batch.inputs, model.initial_state(4))
        predicted = model.predict_reward(feats, batch.actions)
        if discrete:  # one output per arm: the taken arm's
            per_arm = model.reward_head(feats)
            assert per_arm.shape == (*batch.rewards.shape, 3)
            assert torch.equal(predicted, per_arm.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1))
        expected = (predicted - batch.rewards * scale).pow(2).mean().item()
    algo = PPOClip(model, lr=1e-12, epochs=1, num_minibatches=1, chunk_length=5, aux_reward_coef=1.0,
                   reward_scale=scale)
    stats = algo.update(batch, torch.Generator().manual_seed(0))
    assert stats["aux_reward_loss"] == pytest.approx(expected, rel=1e-5)
    assert stats["aux_reward_loss_before_update"] == pytest.approx(expected, rel=1e-5)
    assert "aux_task_loss" not in stats
    # the rewards of other trials give another loss
    shuffled = type(batch)(**{**batch.__dict__, "rewards": batch.rewards.roll(1, 1)})
    other = PPOClip(model, lr=1e-12, epochs=1, num_minibatches=1, chunk_length=5, aux_reward_coef=1.0,
                    reward_scale=scale).update(shuffled)["aux_reward_loss"]
    assert other != pytest.approx(expected, rel=1e-3)


def test_aux_reward_loss_is_learned_and_off_by_default():
    model, batch, scale = _reward_model_and_batch(discrete=False)
    algo = PPOClip(model, lr=1e-2, epochs=10, num_minibatches=2, chunk_length=5, aux_reward_coef=1.0,
                   reward_scale=scale)
    first = algo.update(batch, torch.Generator().manual_seed(0))["aux_reward_loss"]
    for _ in range(5):
        last = algo.update(batch, torch.Generator().manual_seed(0))["aux_reward_loss"]
    assert last < 0.3 * first
    head = [p.detach().clone() for p in model.reward_head.parameters()]
    stats = PPOClip(model, lr=1e-2, epochs=2, num_minibatches=2, chunk_length=5).update(batch)
    assert "aux_reward_loss" not in stats
    assert all(torch.equal(p, q) for p, q in zip(model.reward_head.parameters(), head))


def test_aux_task_coef_needs_a_task_head_and_features():
    model, batch = _batch()
    with pytest.raises(ValueError, match="task_head"):
        PPOClip(model, aux_task_coef=0.1)
    with pytest.raises(ValueError, match="reward_head"):
        PPOClip(model, aux_reward_coef=0.1)
    aux_model, aux_batch = _aux_model_and_batch()
    with pytest.raises(ValueError, match="task_features"):
        PPOClip(aux_model, chunk_length=5, aux_task_coef=0.1).update(type(aux_batch)(
            **{**aux_batch.__dict__, "task_features": None}))
