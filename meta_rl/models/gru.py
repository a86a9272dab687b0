"""The RL² recurrent actor-critic: a GRU (or LSTM) over RL² inputs with policy and value heads.

Shapes: T = time, B = batch (envs or sequences), D = input dim, H = hidden size,
S = recurrent state size (H for a GRU, 2H for an LSTM: its output and cell state),
A = action dim (or number of discrete actions).
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal

from meta_rl.stats import merge_moments

# State-dict prefixes of the training-only heads (``task_dim``, ``reward_head``): what acting never needs.
TRAINING_HEADS = ("task_head.", "reward_head.")
# Recurrent cells: the RL² paper's GRU, or an LSTM, whose additive cell state can count
# (a GRU's state is a gated average of its past, which saturates on long counts).
CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class GRUActorCritic(nn.Module):
    """Shared recurrent trunk; Gaussian (Box) or categorical (Discrete) policy head; value head.

    The trunk is the module ``gru`` whatever its cell (the name keeps checkpoints' keys). Its
    state is one tensor ``[1, B, S]`` everywhere outside this class (:meth:`initial_state`,
    rollouts' stored chunk states); an LSTM's is its output and cell state concatenated.

    Args:
        input_dim: RL² input size (see ``meta_rl.rl2.input_dim``).
        action_space: the benchmark's action space.
        hidden: hidden size of the recurrent cell.
        cell: ``"gru"`` (the RL² paper's) or ``"lstm"`` (forget gate bias initialised to 1).
        init_log_std: initial log standard deviation of the Gaussian policy.
        min_log_std: lower bound on the log std, so exploration never collapses to zero.
        max_log_std: upper bound on the log std (None: none). With ``init_weights`` it starts a
            phase of training with little noise from a run trained with more, e.g. to make the
            mean action precise; a log std held at the bound gets no gradient, so it stays there.
        state_dependent_std: the log std is a second output of the policy head (a function of
            the hidden state, so the policy can be precise in one state and explore in another)
            instead of one learned parameter per action dim. The head's output is then
            ``[mean, log_std]`` (``2A`` wide); its log-std half starts at ``init_log_std``.
        normalize_inputs: standardise the inputs with running statistics of the collected
            data (:meth:`update_input_stats`) before the GRU; clipped to ±``input_clip``.
        input_mask: which input dims are standardised (default: all); the RL² layout's mask
            is :func:`meta_rl.rl2.normalized_dims` (observation and reward, not action or done).
        input_clip: bound on standardised inputs.
        previous_obs: the RL² input this network reads also carries the previous observation
            (:mod:`meta_rl.rl2`); ``input_dim`` must count it. Stored here, where every
            collector of the model's data reads it, so the layout travels with the model.
        trial_time: the RL² input also carries the fraction of the trial played so far, as
            its last dim (:mod:`meta_rl.rl2`); ``input_dim`` must count it. Stored here for
            the same reason as ``previous_obs``.
        task_dim: size of an extra linear head on the GRU state, ``task_head``, that PPO trains
            to regress the trial's task features (``algo.aux_task_coef``); 0 = no such head.
            Acting never reads it.
        reward_head: add a head ``reward_head`` that PPO trains to predict each step's reward
            from the trunk's output and the action taken (``algo.aux_reward_coef``): one output
            per action for a discrete space, an MLP over [output, action] for a Box. Its targets
            are the trial's own rewards, so unlike ``task_dim`` it needs nothing hidden from the
            agent. Acting never reads it.
        masked_inputs: input dims set to zero before the GRU (after standardisation), so the
            network never sees them, e.g. an observation dim that identifies training tasks
            without telling how to infer new ones (Meta-World's object position, obs 4-6 and
            22-24, which it randomises together with the goal).
    """

    def __init__(
        self,
        input_dim: int,
        action_space: gym.spaces.Space,
        hidden: int = 256,
        cell: str = "gru",
        init_log_std: float = 0.0,
        min_log_std: float = -5.0,
        max_log_std: float | None = None,
        state_dependent_std: bool = False,
        normalize_inputs: bool = False,
        input_mask=None,
        input_clip: float = 10.0,
        previous_obs: bool = False,
        trial_time: bool = False,
        task_dim: int = 0,
        reward_head: bool = False,
        masked_inputs=(),
    ) -> None:
        super().__init__()
        self.previous_obs = bool(previous_obs)
        self.trial_time = bool(trial_time)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.action_dim = int(action_space.n) if self.discrete else int(action_space.shape[0])
        self.hidden = hidden
        if cell not in CELLS:
            raise ValueError(f"model.cell={cell!r} is not a recurrent cell; use one of {', '.join(CELLS)}")
        self.lstm = cell == "lstm"
        self.state_size = 2 * hidden if self.lstm else hidden
        self.min_log_std = min_log_std
        self.max_log_std = max_log_std
        self.state_std = bool(state_dependent_std) and not self.discrete
        self.gru = CELLS[cell](input_dim, hidden)
        if self.lstm:  # forget gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): the cell state
            # starts by keeping most of itself each step instead of half (PyTorch's gates: i, f, g, o)
            with torch.no_grad():
                self.gru.bias_ih_l0[hidden : 2 * hidden].fill_(1.0)
                self.gru.bias_hh_l0[hidden : 2 * hidden].zero_()
        self.policy = nn.Linear(hidden, 2 * self.action_dim if self.state_std else self.action_dim)
        self.value = nn.Linear(hidden, 1)
        self.task_head = nn.Linear(hidden, task_dim) if task_dim > 0 else None
        self.reward_head = None
        if reward_head:
            self.reward_head = (nn.Linear(hidden, self.action_dim) if self.discrete else
                                nn.Sequential(nn.Linear(hidden + self.action_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1)))
        param_std = not (self.discrete or self.state_std)
        self.log_std = nn.Parameter(torch.full((self.action_dim,), float(init_log_std))) if param_std else None
        nn.init.orthogonal_(self.policy.weight, 0.01)
        nn.init.zeros_(self.policy.bias)
        if self.state_std:
            nn.init.constant_(self.policy.bias[self.action_dim :], float(init_log_std))
        nn.init.orthogonal_(self.value.weight, 1.0)
        nn.init.zeros_(self.value.bias)
        # Not persistent: the mask comes from the config, so checkpoints from before it load unchanged.
        self.register_buffer("input_keep", None, persistent=False)
        self.register_buffer("input_borrowed", None, persistent=False)
        self.mask_inputs(masked_inputs)
        self.normalize_inputs = normalize_inputs
        self.input_clip = float(input_clip)
        if normalize_inputs:
            # Buffers, so checkpoints carry the statistics. shift/scale are what forward applies
            # (identity until the first update); mean/m2/count are the running statistics.
            mask = torch.ones(input_dim, dtype=torch.bool) if input_mask is None else torch.as_tensor(list(input_mask))
            if mask.shape != (input_dim,):
                raise ValueError(f"input_mask has shape {tuple(mask.shape)}, expected ({input_dim},)")
            self.register_buffer("input_mask", mask.bool())
            self.register_buffer("input_shift", torch.zeros(input_dim))
            self.register_buffer("input_scale", torch.ones(input_dim))
            self.register_buffer("input_mean", torch.zeros(input_dim, dtype=torch.float64))
            self.register_buffer("input_m2", torch.zeros(input_dim, dtype=torch.float64))
            self.register_buffer("input_count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update_input_stats(self, inputs: torch.Tensor) -> None:
        """Fold a batch of raw inputs ``[..., D]`` into the running statistics (Chan et al.'s
        parallel update, float64) and refresh the standardisation ``forward`` applies.

        The trainer calls this after each PPO update with the iteration's batch, so every step
        of one iteration (collection and update alike) sees the same standardisation.
        Dims with (near-)zero variance are centred but not scaled.
        """
        if not self.normalize_inputs:
            return
        x = inputs.detach().reshape(-1, inputs.shape[-1]).double()
        count = self.input_count
        var = self.input_m2 / count.clamp(min=1)  # m2 and count are 0 before the first batch
        mean, var, total = merge_moments(self.input_mean, var, count, x.mean(0), x.var(0, unbiased=False), x.shape[0])
        self.input_mean.copy_(mean)
        self.input_m2.copy_(var * total)
        self.input_count.copy_(total)
        std = var.sqrt()
        scale = torch.where(std > 1e-6, 1.0 / std.clamp(min=1e-6), torch.ones_like(std))
        self.input_shift.copy_(torch.where(self.input_mask, self.input_mean, 0.0).float())
        self.input_scale.copy_(torch.where(self.input_mask, scale, 1.0).float())

    def initial_state(self, batch: int) -> torch.Tensor:
        """Recurrent state at the start of a trial: zeros ``[1, B, S]``."""
        return torch.zeros(1, batch, self.state_size, device=self.value.weight.device)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor, trial_start: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the GRU over a sequence.

        Args:
            x: inputs ``[T, B, D]``.
            h0: recurrent state before ``x[0]``, ``[1, B, S]``.
            trial_start: optional bool ``[T, B]``; where True the hidden state is reset to the
                initial state *before* that step (a new trial starts). Episode ends inside a
                trial never reset the state.

        Returns:
            ``(policy_out [T, B, A], value [T, B], h_T [1, B, S])``.
        """
        out, h = self.encode(x, h0, trial_start)
        return (*self.heads(out), h)

    def heads(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(policy_out, value)`` of the trunk's outputs ``out`` from :meth:`encode`."""
        return self.policy(out), self.value(out).squeeze(-1)

    def predict_reward(self, out: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``reward_head``'s prediction ``[T, B]`` of the reward for taking ``actions`` (``[T, B]``
        indices, or ``[T, B, A]``) at the steps whose trunk outputs are ``out``."""
        if self.discrete:
            return self.reward_head(out).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return self.reward_head(torch.cat((out, actions), -1)).squeeze(-1)

    def mask_inputs(self, dims) -> None:
        """Set these input dims to zero before the GRU from now on, after standardisation (a
        standardised dim is then held at its running mean), on top of any already masked:
        ``masked_inputs`` at construction, or an ablation of a trained model (e.g. the previous
        reward, :func:`meta_rl.rl2.reward_index`)."""
        dims = self._input_dims(dims, "masked_inputs")
        if not dims:
            return
        n = self.gru.input_size
        keep = self.input_keep.clone() if self.input_keep is not None else torch.ones(n, device=self.policy.weight.device)
        keep[dims] = 0.0
        self.input_keep = keep

    def _input_dims(self, dims, what: str) -> list[int]:
        """``dims`` sorted and deduplicated; ValueError if one lies outside the input."""
        n = self.gru.input_size
        dims = sorted({int(i) for i in dims})
        if dims and not 0 <= dims[0] <= dims[-1] < n:
            raise ValueError(f"{what} {dims} outside the {n} input dims (0-{n - 1})")
        return dims

    def borrow_inputs(self, dims) -> None:
        """From now on, read these input dims of each sequence from the next sequence in the
        batch (row ``b`` takes row ``b + 1``'s, the last row the first's), before any
        standardisation or mask. An ablation of a trained model that keeps an input's
        distribution but cuts its link to the sequence's own task: with envs of one task class
        stepped in lockstep, the previous reward becomes that of another goal of the class at
        the same step (``docs/results/reward_ablation.py``). Like the mask, not saved."""
        dims = self._input_dims(dims, "borrowed inputs")
        flags = torch.zeros(self.gru.input_size, dtype=torch.bool, device=self.policy.weight.device)
        flags[dims] = True
        self.input_borrowed = flags if dims else None

    def encode(
        self, x: torch.Tensor, h0: torch.Tensor, trial_start: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The trunk's outputs ``[T, B, H]`` the heads read, and its state ``h_T``; arguments as :meth:`forward`."""
        if self.input_borrowed is not None:
            x = torch.where(self.input_borrowed, x.roll(-1, dims=1), x)
        if self.normalize_inputs:
            x = ((x - self.input_shift) * self.input_scale).clamp(-self.input_clip, self.input_clip)
        if self.input_keep is not None:
            x = x * self.input_keep
        if trial_start is None or not bool(trial_start[1:].any()):
            if trial_start is not None:
                h0 = h0 * (~trial_start[0]).to(h0.dtype).view(1, -1, 1)
            out, h = self._run(x, h0)
        else:
            # Split at the time steps where any sequence starts a new trial.
            outs, h = [], h0
            cuts = [0] + [t for t in range(1, x.shape[0]) if bool(trial_start[t].any())] + [x.shape[0]]
            for a, b in zip(cuts[:-1], cuts[1:]):
                h = h * (~trial_start[a]).to(h.dtype).view(1, -1, 1)
                o, h = self._run(x[a:b], h)
                outs.append(o)
            out = torch.cat(outs)
        return out, h

    def _run(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.lstm:
            return self.gru(x, state)
        h, c = state.chunk(2, -1)
        out, (h, c) = self.gru(x, (h.contiguous(), c.contiguous()))
        return out, torch.cat((h, c), -1)

    def mean_std(self, policy_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian's mean ``[..., A]`` and std (``[..., A]``, or ``[A]`` for a parameter std)."""
        if self.state_std:
            mean, log_std = policy_out.split(self.action_dim, -1)
            return mean, log_std.clamp(self.min_log_std, self.max_log_std).exp()
        return policy_out, self.log_std.clamp(self.min_log_std, self.max_log_std).exp()

    def distribution(self, policy_out: torch.Tensor):
        """The action distribution for head outputs ``[..., A]`` (log_prob/entropy summed over dims)."""
        if self.discrete:
            return Categorical(logits=policy_out)
        mean, std = self.mean_std(policy_out)
        return Independent(Normal(mean, std.expand_as(mean)), 1)

    def act(
        self, policy_out: torch.Tensor, generator: torch.Generator | None, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The action (:meth:`sample`, or :meth:`mode` if ``deterministic``) and its log-probability.

        The log-probability is ``distribution(policy_out).log_prob(action)`` computed with the
        same operations (bit-identical), without building (and validating) distribution objects,
        which cost more than the rest of the per-step action computation in collection.
        """
        action = self.mode(policy_out) if deterministic else self.sample(policy_out, generator)
        if self.discrete:
            logp = policy_out - policy_out.logsumexp(-1, keepdim=True)  # Categorical's normalised logits
            return action, logp.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        mean, std = self.mean_std(policy_out)  # Normal.log_prob, summed like Independent
        logp = -((action - mean) ** 2) / (2 * std**2) - std.log() - math.log(math.sqrt(2 * math.pi))
        return action, logp.sum(-1)

    def sample(self, policy_out: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Sample actions with an explicit generator, so rollout and evaluation RNG streams are separate.

        The generator is a CPU one whatever the model's device: the random numbers are drawn
        on the CPU and moved, so a seed gives the same action noise on every device.
        """
        device = policy_out.device
        if self.discrete:
            probs = torch.softmax(policy_out, -1).reshape(-1, self.action_dim).to("cpu")
            return torch.multinomial(probs, 1, generator=generator).view(policy_out.shape[:-1]).to(device)
        mean, std = self.mean_std(policy_out)
        noise = torch.randn(mean.shape, generator=generator).to(device)
        return mean + std * noise

    def mode(self, policy_out: torch.Tensor) -> torch.Tensor:
        """Deterministic action: the Gaussian mean or the most likely discrete action."""
        return policy_out.argmax(-1) if self.discrete else self.mean_std(policy_out)[0]
