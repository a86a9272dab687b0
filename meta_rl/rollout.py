"""Collect one trial per environment into a :class:`TrialBatch`.

A trial is ``episodes_per_trial`` consecutive episodes of ``episode_length`` steps
of one task. The hidden state starts at the model's initial state at the trial
start and is carried across every episode end inside the trial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meta_rl.rl2 import RL2Inputs


@dataclass
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


class TrialCollector:
    """Runs trials of a :class:`~meta_rl.envs.base.TrialEnv` with the policy, into preallocated tensors.

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
    ) -> None:
        self.env, self.model, self.generator = env, model, generator
        self.threads = threads
        self.H, self.E = episode_length, episodes_per_trial
        T, B = self.H * self.E, env.num_envs
        self.chunk = min(chunk_length or T, T)
        if T % self.chunk:
            raise ValueError(f"chunk_length={self.chunk} must divide the trial length {T}")
        self.rl2 = RL2Inputs(B, obs_dim, action_space, reward_scale)
        self.low = getattr(action_space, "low", None)
        self.high = getattr(action_space, "high", None)
        dev = model.value.weight.device
        self.device = dev
        self.discrete = model.discrete
        act_shape = (T, B) if self.discrete else (T, B, model.action_dim)
        self.buf = TrialBatch(
            inputs=torch.zeros(T, B, self.rl2.dim, device=dev),
            actions=torch.zeros(act_shape, dtype=torch.int64 if self.discrete else torch.float32, device=dev),
            log_probs=torch.zeros(T, B, device=dev),
            values=torch.zeros(T, B, device=dev),
            rewards=torch.zeros(T, B, device=dev),
            successes=torch.zeros(T, B, dtype=torch.bool, device=dev),
            episode_end=torch.zeros(T, dtype=torch.bool, device=dev),
            hidden=torch.zeros(T // self.chunk, B, model.hidden, device=dev),
            chunk_length=self.chunk,
            episodes_per_trial=self.E,
        )
        self.buf.episode_end.view(self.E, self.H)[:, -1] = True
        self.interrupt = None  # optional callable checked every step (raises to stop)

    def collect(self, tasks, explore_episodes: int | None = None) -> TrialBatch:
        """Run one full trial of ``tasks[i]`` in env i; returns the (reused) batch buffers.

        Actions are sampled in the first ``explore_episodes`` episodes (all, if None) and
        the distribution's mode is taken afterwards (meta-test evaluation episodes).
        """
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._collect(tasks, explore_episodes)
        finally:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def _collect(self, tasks, explore_episodes: int | None) -> TrialBatch:
        env, model, buf, rl2, gen = self.env, self.model, self.buf, self.rl2, self.generator
        H, chunk, dev, discrete = self.H, self.chunk, self.device, self.discrete
        low, high, interrupt = self.low, self.high, self.interrupt
        env.set_tasks(tasks)
        rl2.start_trial()
        h = model.initial_state(env.num_envs)
        t = 0
        for episode in range(self.E):
            deterministic = explore_episodes is not None and episode >= explore_episodes
            obs = env.reset()
            for k in range(H):
                if interrupt is not None:
                    interrupt()
                if t % chunk == 0:
                    buf.hidden[t // chunk] = h[0]
                x = torch.from_numpy(rl2.build(obs)).to(dev)
                out, value, h = model(x.unsqueeze(0), h)
                out, value = out[0], value[0]
                action = model.mode(out) if deterministic else model.sample(out, gen)
                buf.inputs[t] = x
                buf.actions[t] = action
                buf.log_probs[t] = model.distribution(out).log_prob(action)
                buf.values[t] = value
                a = action.cpu().numpy()
                if not discrete:
                    a = np.clip(a, low, high)
                obs, reward, success = env.step(a)
                buf.rewards[t] = torch.from_numpy(reward)
                buf.successes[t] = torch.from_numpy(success)
                rl2.record(a, reward, k == H - 1)
                t += 1
        return buf
