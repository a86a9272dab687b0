"""Collect one trial per environment into a :class:`TrialBatch`.

A trial is ``episodes_per_trial`` consecutive episodes of ``episode_length`` steps
of one task. The hidden state starts at the model's initial state at the trial
start and is carried across every episode end inside the trial.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from meta_rl.rl2 import RL2Inputs


@dataclasses.dataclass
class TrialBatch:
    """One trial per env; T = episodes_per_trial · episode_length, B = envs, C = T // chunk_length.

    inputs [T, B, D] float32     RL² policy inputs
    actions [T, B, A] float32 (or [T, B] int64 for discrete)   sampled actions (before clipping)
    log_probs [T, B]             log-probs of the sampled actions
    values [T, B]                value estimates at collection time
    rewards [T, B]               raw env rewards
    successes [T, B] bool        per-step success signal
    episode_end [T] bool         True at the last step of each episode
    hidden [C, B, H]             hidden state before the first step of each chunk
    """

    inputs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    successes: torch.Tensor
    episode_end: torch.Tensor
    hidden: torch.Tensor
    chunk_length: int
    episodes_per_trial: int

    @property
    def num_steps(self) -> int:
        return self.rewards.numel()

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of each episode, ``[E, B]``."""
        E = self.episodes_per_trial
        return self.rewards.view(E, -1, self.rewards.shape[1]).sum(1)

    def episode_successes(self) -> torch.Tensor:
        """Whether success was reached at any step of each episode, ``[E, B]`` bool."""
        E = self.episodes_per_trial
        return self.successes.view(E, -1, self.successes.shape[1]).any(1)

    def to(self, device: torch.device) -> TrialBatch:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(self, **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})


class _LockStep:
    """The by-group stepping interface over a synchronous TrialEnv: one group of all envs,
    stepped by ``step_wait``."""

    def __init__(self, env) -> None:
        self.env, self.groups = env, (slice(0, env.num_envs),)
        self.actions = None

    def step_async(self, group: int, actions: np.ndarray) -> None:
        self.actions = actions

    def step_wait(self, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.env.step(self.actions)


class TrialCollector:
    """Runs trials of a :class:`~meta_rl.envs.base.TrialEnv` with the policy, into preallocated buffers.

    Overlap: when the env can step groups of its envs without waiting (``step_async`` /
    ``step_wait`` and ``groups``, as :class:`~meta_rl.envs.vector.ProcessTrialEnv` does), the
    policy runs group by group and each group's step is started as soon as its actions are
    known, so the policy of one group is computed while the env workers step the other::

        wait G0(t-1) | policy G0(t) | start G0(t) | wait G1(t-1) | policy G1(t) | start G1(t) | ...

    Per env this is the lock-step loop (all envs at once, the path of every other env): the
    same RL² inputs, hidden-state carry and stored chunk states. What differs is which of the
    generator's samples go to which env (each group draws its own, in turn) and the rounding
    of the value head over fewer envs (~1e-7); with the mode as action the batches are equal.

    Args:
        env: the trial environment (``num_envs`` = B).
        model: the recurrent actor-critic.
        obs_dim, action_space: from the benchmark.
        episode_length, episodes_per_trial, reward_scale: from the benchmark.
        chunk_length: the hidden state is stored every ``chunk_length`` steps for
            truncated-BPTT updates; must divide the trial length (None or longer: the whole trial).
        generator: torch RNG used for action sampling (its own stream).
        threads: torch intra-op threads during collection (restored afterwards). Inference on
            one step of the meta-batch is too small to gain from threads, and idle OpenMP
            threads spinning between steps take CPU from the env workers (with 2 threads
            collection on 2 cores ran at half the speed; docs/throughput.md).
        overlap: step the env's groups asynchronously where it supports that (False: always
            lock-step, the reference the overlapped loop is tested against).
    """

    def __init__(
        self,
        env,
        model,
        obs_dim: int,
        action_space,
        episode_length: int,
        episodes_per_trial: int,
        reward_scale: float,
        chunk_length: int | None = None,
        generator: torch.Generator | None = None,
        threads: int = 1,
        overlap: bool = True,
    ) -> None:
        self.env, self.model, self.generator = env, model, generator
        self.threads = threads
        self.H, self.E = episode_length, episodes_per_trial
        T, B = self.H * self.E, env.num_envs
        self.chunk = min(chunk_length or T, T)
        if T % self.chunk:
            raise ValueError(f"chunk_length={self.chunk} must divide the trial length {T}")
        self.stepper = env if overlap and hasattr(env, "step_async") else _LockStep(env)
        self.groups = self.stepper.groups
        self.rl2 = [RL2Inputs(len(range(*g.indices(B))), obs_dim, action_space, reward_scale) for g in self.groups]
        self.low = getattr(action_space, "low", None)
        self.high = getattr(action_space, "high", None)
        self.device = model.value.weight.device
        self.discrete = model.discrete
        act_shape = (T, B) if self.discrete else (T, B, model.action_dim)
        # The loop writes through numpy views of CPU tensors (much cheaper per call than tensor
        # indexing); the batch is moved to the model's device at the end if that is not the CPU.
        self.buf = TrialBatch(
            inputs=torch.zeros(T, B, self.rl2[0].dim),
            actions=torch.zeros(act_shape, dtype=torch.int64 if self.discrete else torch.float32),
            log_probs=torch.zeros(T, B),
            values=torch.zeros(T, B),
            rewards=torch.zeros(T, B),
            successes=torch.zeros(T, B, dtype=torch.bool),
            episode_end=torch.zeros(T, dtype=torch.bool),
            hidden=torch.zeros(T // self.chunk, B, model.hidden),
            chunk_length=self.chunk,
            episodes_per_trial=self.E,
        )
        self.buf.episode_end.view(self.E, self.H)[:, -1] = True
        self._np = {f: getattr(self.buf, f).numpy() for f in ("inputs", "actions", "log_probs", "values", "rewards",
                                                             "successes", "hidden")}
        self.interrupt = None  # optional callable checked every step (raises to stop)

    def collect(self, tasks, explore_episodes: int | None = None) -> TrialBatch:
        """Run one full trial of ``tasks[i]`` in env i; returns the batch (reused buffers on the CPU).

        Actions are sampled in the first ``explore_episodes`` episodes (all, if None) and
        the distribution's mode is taken afterwards (meta-test evaluation episodes).
        """
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            self._collect(tasks, explore_episodes)
        finally:
            torch.set_num_threads(threads)
        return self.buf if self.device.type == "cpu" else self.buf.to(self.device)

    @torch.inference_mode()
    def _collect(self, tasks, explore_episodes: int | None) -> None:
        env, stepper, model, gen, interrupt = self.env, self.stepper, self.model, self.generator, self.interrupt
        groups, rl2, b = self.groups, self.rl2, self._np
        H, chunk, dev = self.H, self.chunk, self.device
        discrete, low, high = self.discrete, self.low, self.high
        env.set_tasks(tasks)
        for r in rl2:
            r.start_trial()
        h = [model.initial_state(r.num_envs) for r in rl2]
        actions = [None] * len(groups)  # the executed actions of each group's step in flight
        t = 0
        for episode in range(self.E):
            deterministic = explore_episodes is not None and episode >= explore_episodes
            obs = env.reset()
            obs = [obs[g] for g in groups]
            for k in range(H):
                if interrupt is not None:
                    interrupt()
                for i, g in enumerate(groups):
                    if k:
                        obs[i] = self._finish(i, t - 1, actions[i], episode_done=False)
                    if t % chunk == 0:
                        b["hidden"][t // chunk, g] = h[i][0].cpu().numpy()
                    x = rl2[i].build(obs[i])
                    b["inputs"][t, g] = x
                    out, value, h[i] = model(torch.from_numpy(x).to(dev).unsqueeze(0), h[i])
                    action, log_prob = model.act(out[0], gen, deterministic)
                    a = b["actions"][t, g]
                    a[...] = action.cpu().numpy()
                    b["log_probs"][t, g] = log_prob.cpu().numpy()
                    b["values"][t, g] = value[0].cpu().numpy()
                    actions[i] = a if discrete else np.clip(a, low, high)
                    stepper.step_async(i, actions[i])
                t += 1
            for i in range(len(groups)):
                self._finish(i, t - 1, actions[i], episode_done=True)

    def _finish(self, i: int, t: int, action: np.ndarray, episode_done: bool) -> np.ndarray:
        """Wait for group ``i``'s step ``t``; store its results and return its observations."""
        g, b = self.groups[i], self._np
        obs, reward, success = self.stepper.step_wait(i)
        b["rewards"][t, g] = reward
        b["successes"][t, g] = success
        self.rl2[i].record(action, reward, episode_done)
        return obs
