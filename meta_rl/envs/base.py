"""The two interfaces every benchmark implements.

A *benchmark* is a distribution over tasks with a train and a test split (ML10, a
Bernoulli bandit family, random tabular MDPs). It builds a *trial environment*: a
batch of ``num_envs`` environments that step synchronously, one task each.

Episode and trial boundaries are owned by the caller (``meta_rl.rollout``):
every episode lasts exactly ``episode_length`` steps, and the caller calls
``reset()`` at the start of each episode and ``set_tasks()`` at the start of each
trial. Environments never terminate or auto-reset on their own, so nothing
about the RL² semantics depends on a library's autoreset convention.

A trial env whose envs live in worker processes may also run a whole trial there
(:meth:`~meta_rl.envs.vector.ProcessTrialEnv.run`): ``meta_rl.rollout`` then sends each
worker the policy's weights and gets back the trial of the worker's envs, driven by the same
loop as in the main process.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import gymnasium as gym
import numpy as np
import torch


class TrialEnv(Protocol):
    """``num_envs`` environments stepped in lock-step, one task each."""

    num_envs: int

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Give env ``i`` the task ``tasks[i]`` (``len(tasks) == num_envs``)."""

    def reset(self) -> np.ndarray:
        """Start a new episode in every env; returns observations ``[num_envs, obs_dim]`` float32."""

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply ``actions`` (``[num_envs, action_dim]`` float32 in the action space, or
        ``[num_envs]`` int64 for a discrete space).

        Returns ``(obs [num_envs, obs_dim] float32, reward [num_envs] float32,
        success [num_envs] bool)``. ``success`` is the benchmark's per-step success
        signal (Meta-World's ``info["success"]``); benchmarks without one return False.
        """

    def close(self) -> None: ...


class Benchmark(Protocol):
    """A task distribution with train/test splits; instantiated from the ``env`` config group."""

    name: str
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Space  # Box or Discrete
    episode_length: int  # steps per episode
    episodes_per_trial: int  # episodes per trial (the RL² "meta-episode")
    meta_batch_size: int  # trials (= envs) per training iteration
    reward_scale: float  # multiplies rewards for the policy input and for learning

    def class_names(self, split: str) -> list[str]:
        """Task classes of ``split`` ("train" or "test")."""

    def sample_tasks(self, split: str, n: int, rng: np.random.Generator) -> list[Any]:
        """``n`` tasks of ``split``, spread evenly over its classes, drawn with ``rng`` only."""

    def all_tasks(self, split: str) -> list[Any]:
        """Every task of ``split`` in a fixed order (for exhaustive evaluation)."""

    def task_class(self, task: Any) -> str:
        """Class name of ``task`` (used to report per-class metrics)."""

    def make_env(self, num_envs: int) -> TrialEnv:
        """A trial environment of ``num_envs`` envs, ready for ``set_tasks``."""

    # Optional (``algo.aux_task_coef > 0`` needs it): ``task_feature_dim`` and
    # ``task_features(tasks) -> float32 [len(tasks), task_feature_dim]``, the hidden task
    # parameters of each task, standardised to O(1), regressed from the policy's hidden state.
    # Optional (``algo.aux_task_target=trial`` needs it): ``trial_task_features(inputs, actions,
    # rewards) -> (features, mask)``, both ``[B, task_feature_dim]``: each trial's estimate of
    # the same features from its own data (inputs ``[T, B, D]`` in the RL² layout, actions,
    # raw rewards ``[T, B]``), and where the trial holds any data on them.
    # Optional (``algo.aux_task_target=posterior`` needs it): ``trial_task_posterior(inputs,
    # actions, rewards) -> features`` ``[B, task_feature_dim]``: each trial's posterior mean of the
    # features given all its data, under the benchmark's prior (defined for every feature).


def trial_means(keys: torch.Tensor, num_keys: int, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per trial, the mean of ``values`` (``[T, B]``, or vectors ``[T, B, V]``) over the steps whose
    key (``keys [T, B]``, integers in ``[0, num_keys)``: an arm, a state-action pair) is each key,
    ``[B, num_keys]`` (``[B, num_keys, V]``; 0 where the key never occurs), and where it occurs,
    ``[B, num_keys]`` bool: what ``trial_task_features`` of a benchmark with discrete keys is
    built from (the mean of one-hot next states is a pair's next-state frequencies)."""
    sums, counts = trial_sums(keys, num_keys, values)
    return sums / (counts.clamp(min=1) if values.dim() == 2 else counts.clamp(min=1).unsqueeze(-1)), counts > 0


def trial_sums(keys: torch.Tensor, num_keys: int, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per trial, the sum of ``values`` over the steps of each key (``[B, num_keys]``, or
    ``[B, num_keys, V]``) and how many steps had it (``[B, num_keys]``, in ``values``' dtype):
    the sufficient statistics of :func:`trial_means` and of the posteriors in ``trial_task_posterior``."""
    hits = torch.nn.functional.one_hot(keys, num_keys).to(values.dtype)  # [T, B, num_keys]
    counts = hits.sum(0)
    if values.dim() == 2:
        return (hits * values.unsqueeze(-1)).sum(0), counts
    return torch.einsum("tbk,tbv->bkv", hits, values), counts
