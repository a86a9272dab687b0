"""PPO for recurrent policies: PPO-Clip and PPO-Penalty (adaptive KL coefficient).

Minibatches are made of whole truncated-BPTT chunks of ``chunk_length`` consecutive
steps of one trial; each chunk replays the GRU from the hidden state stored during
the rollout, so time is never shuffled. With ``chunk_length`` equal to the trial
length every chunk is a whole trial.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from meta_rl.algos.baseline import LinearFeatureBaseline
from meta_rl.algos.gae import gae
from meta_rl.errors import NumericalError
from meta_rl.rollout import TrialBatch
from meta_rl.stats import merge_moments


def clip_objective(logratio: torch.Tensor, advantages: torch.Tensor, clip: float):
    """PPO-Clip surrogate loss (to minimise) with its diagnostics.

    Returns ``(loss, clip_fraction, approx_kl)``: clip_fraction is the share of samples
    with ``|ratio - 1| > clip``; approx_kl is the k3 estimator ``E[(r - 1) - log r]``
    of KL(old ‖ new), unbiased and non-negative.
    """
    ratio = logratio.exp()
    loss = -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
    with torch.no_grad():
        clip_fraction = ((ratio - 1).abs() > clip).float().mean()
        approx_kl = ((ratio - 1) - logratio).mean()
    return loss, clip_fraction, approx_kl


class ValueNormalizer:
    """Running mean and variance of the value targets (float64; Chan et al.'s parallel update).

    With ``normalize_values`` the critic predicts ``(return - mean) / std``: GAE works on
    denormalised values and the value loss on normalised targets, so the value loss (and
    its gradient through the shared GRU) stays O(1) whatever the scale of the returns.
    Without it the value gradient grew with the returns (a norm of 240 at 1M steps of ML1
    reach) and clipping the global norm to ``max_grad_norm`` shrank the policy gradient
    with it.
    """

    def __init__(self) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double()
        self.mean, self.var, self.count = merge_moments(self.mean, self.var, self.count, float(x.mean()),
                                                        float(x.var(unbiased=False)), x.numel())

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 1e-8))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = float(state["mean"]), float(state["var"]), float(state["count"])


class TaskRewardScale:
    """Per task class, the running variance of the per-step rewards; :meth:`__call__` divides each
    trial's rewards by its class's std (the rewards are not centred), so every class's rewards,
    returns and advantages are of the same order (cf. garage's per-environment reward
    normalisation, one environment per task). Classes are the ``task_ids`` the trainer attaches to
    each batch; statistics include the batch being scaled."""

    def __init__(self) -> None:
        self.moments: dict[int, tuple[float, float, float]] = {}  # id -> (mean, var, count)

    def __call__(self, rewards: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        scale = torch.empty(rewards.shape[1], dtype=torch.float64)
        for g in task_ids.unique().tolist():
            cols = task_ids == g
            x = rewards[:, cols].detach().double()
            mean, var, count = self.moments.get(g, (0.0, 0.0, 0))  # no prior: tiny rewards stay unbiased
            self.moments[g] = merge_moments(mean, var, count, float(x.mean()), float(x.var(unbiased=False)),
                                            x.numel())
            scale[cols] = 1.0 / math.sqrt(max(self.moments[g][1], 1e-8))
        return rewards * scale.to(rewards.dtype).to(rewards.device)

    def state_dict(self) -> dict:
        return {"ids": list(self.moments), "moments": [list(m) for m in self.moments.values()]}

    def load_state_dict(self, state: dict) -> None:
        self.moments = {int(g): tuple(float(v) for v in m) for g, m in zip(state["ids"], state["moments"])}


DIAGNOSTICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm")


def _chunks(t: torch.Tensor, chunk: int) -> torch.Tensor:
    """``[T, B, ...]`` → ``[chunk, (T // chunk) · B, ...]`` (sequence n = chunk c of trial b, n = c·B + b)."""
    T, B = t.shape[:2]
    C = T // chunk
    return t.reshape(C, chunk, B, *t.shape[2:]).transpose(0, 1).reshape(chunk, C * B, *t.shape[2:])


AUX_TASK_TARGETS = ("hidden", "trial", "posterior")


class PPOClip:
    """PPO-Clip with GAE for the GRU actor-critic.

    Args:
        model: the actor-critic to train.
        lr, adam_eps: Adam settings.
        epochs, num_minibatches: passes over the batch and minibatches per pass.
        chunk_length: truncated-BPTT length in steps (divides the trial length).
        gamma, gae_lambda, gae_across_episodes: see :mod:`meta_rl.algos.gae`.
        clip: PPO ratio clip ε.
        value_coef, entropy_coef: loss weights.
        max_grad_norm: global gradient-norm clip.
        normalize_advantages: standardise the advantages (zero mean, unit std).
        advantage_norm: the group they are standardised over: ``batch`` (all trials together)
            or ``trial`` (each trial on its own, so a task whose returns are small next to the
            others' still gets a policy gradient of the same size; on ML10 the object classes'
            returns per trial are 1/100 of the fixture classes').
        reward_norm: ``none``, or ``task``: each trial's rewards are divided by the running std of
            its task class's rewards (:class:`TaskRewardScale`) before GAE, for the critic and the
            policy alike (the policy's reward input is unchanged).
        normalize_values: the critic learns normalised returns (:class:`ValueNormalizer`).
        baseline: ``critic`` (the model's value head, trained with the value loss) or
            ``linear`` (:class:`~meta_rl.algos.baseline.LinearFeatureBaseline`, as in the RL²
            paper; the value head is then neither used nor trained).
        reward_scale: multiplies env rewards before GAE (set from the benchmark).
        aux_task_coef: weight of an auxiliary loss, the mean squared error of the model's
            ``task_head`` on the GRU state against the trial's task features
            (``TrialBatch.task_features``) at every step: the hidden state is taught what task
            it is in (task-inference supervision, e.g. Humplik et al. 2019), on training trials
            only; acting and evaluation read nothing of it. 0 = plain RL².
        aux_task_target: what the task head regresses: ``hidden``, the task's hidden parameters
            (privileged: the benchmark's ``task_features``), or ``trial``, the same features as
            each trial's own data estimates them (the benchmark's ``trial_task_features``: e.g.
            the mean reward each (state, action) pair gave in the trial, counted only for the
            pairs it took), which needs nothing hidden from the agent, or ``posterior``, each
            trial's posterior mean of every feature given all its data under the task prior
            (the benchmark's ``trial_task_posterior``), whose minimiser from the state at step t
            is the hidden target's. The trainer supplies the targets (``TrialBatch.task_features``
            and, for ``trial``, ``task_mask``).
        aux_reward_coef: weight of an auxiliary loss, the mean squared error of the model's
            ``reward_head`` (:meth:`~meta_rl.models.gru.GRUActorCritic.predict_reward`) at every
            step against the reward that step received (env reward × ``reward_scale``): the
            state is taught to predict the trial's rewards from what it has seen, which needs
            no task features (self-supervised; an unbiased stand-in, in expectation, for the
            task-inference loss on the task's mean rewards of the actions taken). 0 = none.
        lr_final, entropy_coef_final: when set, ``lr`` / ``entropy_coef`` go linearly from their
            value at the start of training to this one at the end (:meth:`set_progress`,
            called by the trainer before each update); ``None`` keeps them constant.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 5e-4,
        adam_eps: float = 1e-5,
        epochs: int = 10,
        num_minibatches: int = 4,
        chunk_length: int = 250,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        gae_across_episodes: bool = True,
        clip: float = 0.2,
        value_coef: float = 0.5,
        entropy_coef: float = 0.0,
        max_grad_norm: float = 0.5,
        normalize_advantages: bool = True,
        advantage_norm: str = "batch",
        reward_norm: str = "none",
        normalize_values: bool = True,
        baseline: str = "critic",
        reward_scale: float = 1.0,
        lr_final: float | None = None,
        entropy_coef_final: float | None = None,
        aux_task_coef: float = 0.0,
        aux_task_target: str = "hidden",
        aux_reward_coef: float = 0.0,
    ) -> None:
        if advantage_norm not in ("batch", "trial"):
            raise ValueError(f"advantage_norm={advantage_norm!r}; use batch or trial")
        if reward_norm not in ("none", "task"):
            raise ValueError(f"reward_norm={reward_norm!r}; use none or task")
        if baseline not in ("critic", "linear"):
            raise ValueError(f"baseline={baseline!r}; use critic or linear")
        if aux_task_target not in AUX_TASK_TARGETS:
            raise ValueError(f"aux_task_target={aux_task_target!r}; use {' or '.join(AUX_TASK_TARGETS)}")
        if aux_task_coef > 0 and getattr(model, "task_head", None) is None:
            raise ValueError("algo.aux_task_coef > 0 needs a model with a task_head (built with task_dim > 0)")
        if aux_reward_coef > 0 and getattr(model, "reward_head", None) is None:
            raise ValueError("algo.aux_reward_coef > 0 needs a model with a reward_head (built with reward_head=True)")
        self.aux_task_coef, self.aux_task_target, self.aux_reward_coef = aux_task_coef, aux_task_target, aux_reward_coef
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=adam_eps)
        self.epochs, self.num_minibatches, self.chunk_length = epochs, num_minibatches, chunk_length
        self.gamma, self.lam, self.across = gamma, gae_lambda, gae_across_episodes
        self.clip, self.value_coef, self.entropy_coef = clip, value_coef, entropy_coef
        self.max_grad_norm, self.normalize_advantages = max_grad_norm, normalize_advantages
        self.task_reward_scale = TaskRewardScale() if reward_norm == "task" else None
        self.advantage_dims = (0,) if advantage_norm == "trial" else None  # adv is [T, B]: trial = column
        self.reward_scale = reward_scale
        self.lr_start, self.lr_final = lr, lr_final
        self.entropy_coef_start, self.entropy_coef_final = entropy_coef, entropy_coef_final
        self.baseline = LinearFeatureBaseline() if baseline == "linear" else None
        self.value_norm = ValueNormalizer() if normalize_values and self.baseline is None else None
        self.interrupt = None  # optional callable checked every minibatch (raises to stop)

    def set_progress(self, fraction: float) -> None:
        """Set the scheduled values for an update at ``fraction`` ∈ [0, 1) of the training run."""
        if self.lr_final is not None:
            lr = self.lr_start + (self.lr_final - self.lr_start) * fraction
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        if self.entropy_coef_final is not None:
            self.entropy_coef = self.entropy_coef_start + (self.entropy_coef_final - self.entropy_coef_start) * fraction

    def policy_loss(self, logratio, advantages):
        """``(loss, clip_fraction, approx_kl)`` of the policy term for one minibatch."""
        return clip_objective(logratio, advantages, self.clip)

    def after_update(self, mean_kl: float) -> dict[str, float]:
        """Hook after all epochs (PPO-Penalty adapts its coefficient here)."""
        return {}

    def update(self, batch: TrialBatch, generator: torch.Generator | None = None) -> dict[str, float]:
        """Run ``epochs`` passes of minibatch updates on ``batch``; returns mean diagnostics."""
        model, chunk = self.model, batch.chunk_length
        with torch.no_grad():
            rewards = batch.rewards * self.reward_scale
            if self.task_reward_scale is not None:
                if batch.task_ids is None:
                    raise ValueError("algo.reward_norm=task needs the batch's task_ids (set by the trainer)")
                rewards = self.task_reward_scale(rewards, batch.task_ids)
            if self.baseline is None:
                values = batch.values if self.value_norm is None else self.value_norm.denormalize(batch.values)
            else:
                episode_length = batch.rewards.shape[0] // batch.episodes_per_trial
                features = self.baseline.features(batch.inputs, episode_length)
                values = self.baseline.predict(features)  # fitted on the previous batch
            adv, ret = gae(rewards, values, batch.episode_end, self.gamma, self.lam, self.across)
            var_y = ret.var()
            explained_var = float(1 - (ret - values).var() / var_y) if var_y > 0 else float("nan")
            if self.value_norm is not None:
                self.value_norm.update(ret)
                targets = self.value_norm.normalize(ret)
            else:
                targets = ret
            if self.baseline is not None:
                mc_returns, _ = gae(rewards, torch.zeros_like(rewards), batch.episode_end, self.gamma, 1.0,
                                    self.across)
                baseline_loss = float(0.5 * (values - mc_returns).pow(2).mean())
                self.baseline.fit(features, mc_returns)
            if self.normalize_advantages:
                dims = self.advantage_dims
                adv = (adv - adv.mean(dims, keepdim=True)) / (adv.std(dims, keepdim=True) + 1e-8)
        x, act = _chunks(batch.inputs, chunk), _chunks(batch.actions, chunk)
        old_logp, adv, ret = _chunks(batch.log_probs, chunk), _chunks(adv, chunk), _chunks(targets, chunk)
        h0 = batch.hidden.reshape(1, -1, batch.hidden.shape[-1])
        n_seq = x.shape[1]
        aux = self.aux_task_coef > 0
        if aux:
            if batch.task_features is None:
                raise ValueError("algo.aux_task_coef > 0 but the batch carries no task_features")
            # Sequence n = c·B + b is a chunk of trial b: its target is trial b's features.
            task_targets = batch.task_features.repeat(n_seq // batch.task_features.shape[0], 1)
            task_weights = None
            if batch.task_mask is not None:  # each counted feature weighs 1 / (counted features per step)
                mask = batch.task_mask.to(task_targets.dtype).repeat(n_seq // batch.task_mask.shape[0], 1)
                task_weights = mask / mask.sum().clamp(min=1) * mask.shape[0]
        predict = self.aux_reward_coef > 0
        if predict:
            reward_targets = _chunks(batch.rewards * self.reward_scale, chunk)
        mb_size = max(1, n_seq // self.num_minibatches)
        # A state-dependent std is a function of the data: report its mean over the samples.
        report_std = getattr(model, "state_std", False)
        aux_keys = (("aux_task_loss",) if aux else ()) + (("aux_reward_loss",) if predict else ())
        keys = DIAGNOSTICS + (("policy_std",) if report_std else ()) + aux_keys
        sums = dict.fromkeys(keys, 0.0)
        n, aux_before = 0, None
        for _ in range(self.epochs):
            perm = torch.randperm(n_seq, generator=generator).to(x.device)
            for start in range(0, n_seq, mb_size):
                if self.interrupt is not None:
                    self.interrupt()
                idx = perm[start : start + mb_size]
                feats, _ = model.encode(x[:, idx], h0[:, idx])
                out, value = model.heads(feats)
                if aux:
                    error = (model.task_head(feats) - task_targets[idx]).pow(2)
                    aux_loss = error.mean() if task_weights is None else (error * task_weights[idx]).sum(-1).mean()
                if predict:
                    reward_loss = (model.predict_reward(feats, act[:, idx]) - reward_targets[:, idx]).pow(2).mean()
                dist = model.distribution(out)
                logratio = dist.log_prob(act[:, idx]) - old_logp[:, idx]
                pg_loss, clip_frac, approx_kl = self.policy_loss(logratio, adv[:, idx])
                entropy = dist.entropy().mean()
                loss = pg_loss - self.entropy_coef * entropy
                if self.baseline is None:
                    v_loss = 0.5 * (value - ret[:, idx]).pow(2).mean()
                    loss = loss + self.value_coef * v_loss
                else:
                    v_loss = pg_loss.new_tensor(baseline_loss)
                if aux:
                    loss = loss + self.aux_task_coef * aux_loss
                if predict:
                    loss = loss + self.aux_reward_coef * reward_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), self.max_grad_norm)
                # One read-back per minibatch (one device sync on a GPU), in the order of DIAGNOSTICS.
                diagnostics = [pg_loss, v_loss, entropy, approx_kl, clip_frac, grad_norm]
                if report_std:
                    diagnostics.append(dist.base_dist.scale.mean())
                if aux:
                    diagnostics.append(aux_loss)
                if predict:
                    diagnostics.append(reward_loss)
                values = torch.stack(diagnostics).detach().tolist()
                for k, v in zip(keys, values):
                    if not math.isfinite(v):  # stop before the bad step reaches the parameters
                        raise NumericalError(f"non-finite {'gradient norm' if k == 'grad_norm' else 'losses/' + k} ({v})")
                    sums[k] += v
                if aux_keys and aux_before is None:
                    aux_before = values[len(values) - len(aux_keys):]
                self.optimizer.step()
                n += 1
        for name, p in model.named_parameters():
            if not torch.isfinite(p).all():
                raise NumericalError(f"non-finite parameter {name} after the update")
        stats = {k: v / n for k, v in sums.items()}
        # The first minibatch is read before any step on this batch (later ones hold other chunks
        # of the same trials): with tasks that do not repeat across iterations this is a head's
        # error on unseen tasks, while aux_*_loss also counts the fit to the batch.
        stats.update({f"{k}_before_update": v for k, v in zip(aux_keys, aux_before or ())})
        stats["explained_variance"] = explained_var
        if self.lr_final is not None:
            stats["lr"] = self.optimizer.param_groups[0]["lr"]
        if self.entropy_coef_final is not None:
            stats["entropy_coef"] = self.entropy_coef
        stats.update(self.after_update(stats["approx_kl"]))
        return stats

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict()}
        if self.baseline is not None:
            state["baseline"] = self.baseline.state_dict()
        if self.value_norm is not None:
            state["value_norm"] = self.value_norm.state_dict()
        if self.task_reward_scale is not None:
            state["task_reward_scale"] = self.task_reward_scale.state_dict()
        return state

    def load_value_scale(self, state: dict) -> None:
        """The value normaliser's statistics from another run's ``state_dict()`` (``init_weights``):
        a critic trained with normalised values predicts returns in those units, and with fresh
        statistics its first advantages would be the raw returns. Nothing when either has none."""
        if self.value_norm is not None and "value_norm" in state:
            self.value_norm.load_state_dict(state["value_norm"])

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.baseline is not None:
            self.baseline.load_state_dict(state["baseline"])
        if self.value_norm is not None:
            self.value_norm.load_state_dict(state["value_norm"])
        if self.task_reward_scale is not None:
            self.task_reward_scale.load_state_dict(state["task_reward_scale"])


class PPOPenalty(PPOClip):
    """PPO with an adaptive KL penalty instead of clipping (Schulman et al. 2017, §4).

    Loss ``-E[r·A] + β·KL``, KL estimated per sample with the k3 estimator. After each
    update: mean KL > 1.5·target → β ×= 2; mean KL < target/1.5 → β ÷= 2.
    """

    def __init__(self, model: nn.Module, kl_target: float = 0.01, kl_coef: float = 1.0, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.kl_target, self.kl_coef = kl_target, kl_coef

    def policy_loss(self, logratio, advantages):
        ratio = logratio.exp()
        kl = (ratio - 1) - logratio
        loss = -(ratio * advantages).mean() + self.kl_coef * kl.mean()
        with torch.no_grad():
            clip_fraction = ((ratio - 1).abs() > self.clip).float().mean()
        return loss, clip_fraction, kl.mean().detach()

    def after_update(self, mean_kl: float) -> dict[str, float]:
        if mean_kl > 1.5 * self.kl_target:
            self.kl_coef *= 2.0
        elif mean_kl < self.kl_target / 1.5:
            self.kl_coef /= 2.0
        return {"kl_coef": self.kl_coef}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "kl_coef": self.kl_coef}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.kl_coef = float(state["kl_coef"])
