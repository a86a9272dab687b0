"""Bernoulli multi-armed bandits as a :class:`~meta_rl.envs.base.Benchmark` (Duan et al. 2016, §4.1).

A task is the vector ``p`` of the ``k`` arms' success probabilities, drawn i.i.d.
Uniform[0, 1] (a ``float64`` array of shape ``[k]``). Pulling arm ``a`` pays 1 with
probability ``p[a]`` and 0 otherwise. Every pull is a one-step episode, so a trial of
``pulls`` pulls is ``pulls`` episodes of length 1, and the RL² policy sees each pull's
reward through its previous-reward input. The observation carries no information
(a constant ``[0.0]``).

Train and test splits are the same distribution; they differ only in the fixed
seed of :meth:`BernoulliBandit.all_tasks`.
"""

from __future__ import annotations

import functools
from typing import Sequence

import gymnasium as gym
import numpy as np
import torch

from meta_rl.envs.base import trial_means, trial_sums

SPLITS = ("train", "test")
# all_tasks(split) is drawn with this seed per split: fixed, and different between splits.
ALL_TASKS_SEED = {"train": 0, "test": 1}
NUM_ALL_TASKS = 1000


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@functools.lru_cache(maxsize=16)
def _all_bandit_tasks(arms: int, split: str) -> tuple[np.ndarray, ...]:
    p = np.random.default_rng(ALL_TASKS_SEED[split]).uniform(size=(NUM_ALL_TASKS, arms))
    p.flags.writeable = False  # shared between callers through the cache
    return tuple(p)


class BernoulliBandit:
    """``arms``-armed Bernoulli bandits with ``pulls`` pulls per trial.

    Args:
        arms: number of arms k (>= 2).
        pulls: pulls per trial n (= episodes per trial; each episode is one step).
        meta_batch_size: trials per training iteration.
        reward_scale: multiplies rewards for the policy input and for learning
            (the environment itself returns raw 0/1 rewards).
        name: benchmark name used in logs.
    """

    def __init__(
        self,
        arms: int = 5,
        pulls: int = 10,
        meta_batch_size: int = 250,
        reward_scale: float = 1.0,
        name: str = "bandit",
    ) -> None:
        for key, value, low in (
            ("arms", arms, 2),
            ("pulls", pulls, 1),
            ("meta_batch_size", meta_batch_size, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"env.{key} must be an integer >= {low}, got {value!r}")
        if not np.isfinite(reward_scale) or reward_scale <= 0:
            raise ValueError(f"env.reward_scale must be a positive finite number, got {reward_scale!r}")
        self.name = name
        self.arms = int(arms)
        self.pulls = int(pulls)
        self.episode_length = 1
        self.episodes_per_trial = int(pulls)
        self.meta_batch_size = int(meta_batch_size)
        self.reward_scale = float(reward_scale)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(self.arms)

    def class_names(self, split: str) -> list[str]:
        _check_split(split)
        return ["bandit"]

    def task_class(self, task: np.ndarray) -> str:
        return "bandit"

    def sample_tasks(self, split: str, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """``n`` tasks, each a ``float64 [arms]`` array of success probabilities."""
        _check_split(split)
        return list(rng.uniform(size=(n, self.arms)))

    def all_tasks(self, split: str) -> list[np.ndarray]:
        """A fixed list of 1000 tasks per split (the distribution is continuous, so
        "every task" is a fixed-seed sample; train and test use different seeds)."""
        _check_split(split)
        return list(_all_bandit_tasks(self.arms, split))

    @property
    def task_feature_dim(self) -> int:
        return self.arms

    def task_features(self, tasks: Sequence[np.ndarray]) -> np.ndarray:
        """The arms' success probabilities, standardised for Uniform[0, 1]: ``[n, arms]``."""
        return ((np.stack(tasks) - 0.5) * np.sqrt(12.0)).astype(np.float32)

    def trial_task_features(self, inputs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor):
        """Each trial's success rate of each arm it pulled, standardised as :meth:`task_features`
        (``[B, arms]``), and which arms it pulled (``[B, arms]`` bool): the task features as the
        trial's own pulls estimate them (``algo.aux_task_target=trial``)."""
        rate, pulled = trial_means(actions, self.arms, rewards)
        return (rate - 0.5) * float(np.sqrt(12.0)), pulled

    def trial_task_posterior(self, inputs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """Each trial's posterior mean of each arm's success probability given all its pulls,
        under the Uniform[0, 1] = Beta(1, 1) prior the tasks are drawn from, ``(1 + wins) / (2 +
        pulls)``, standardised as :meth:`task_features` (``[B, arms]``; ``algo.aux_task_target=posterior``)."""
        wins, pulls = trial_sums(actions, self.arms, rewards)
        return ((1.0 + wins) / (2.0 + pulls) - 0.5) * float(np.sqrt(12.0))

    def make_env(self, num_envs: int, seed: int = 0) -> "BanditTrialEnv":
        """``seed`` seeds the generator that draws the pulls' 0/1 outcomes."""
        return BanditTrialEnv(num_envs, self.arms, seed)


class BanditTrialEnv:
    """``num_envs`` Bernoulli bandits pulled in lock-step.

    The env owns a ``np.random.Generator`` (seeded by ``seed``) for the outcomes, so a
    given seed, task list and action sequence always gives the same rewards.
    """

    def __init__(self, num_envs: int, arms: int, seed: int = 0) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.arms = int(arms)
        self._rng = np.random.default_rng(seed)
        self._p: np.ndarray | None = None  # [num_envs, arms] success probabilities
        self._rows = np.arange(self.num_envs)
        self._obs = np.zeros((self.num_envs, 1), np.float32)

    def reseed(self, seed: int) -> None:
        """Restart the outcome generator from ``seed`` (e.g. before each evaluation, so its
        outcomes do not depend on how much the env was used before)."""
        self._rng = np.random.default_rng(seed)

    def set_tasks(self, tasks: Sequence[np.ndarray]) -> None:
        p = np.asarray(np.stack([np.asarray(t, np.float64) for t in tasks]))
        if p.shape != (self.num_envs, self.arms):
            raise ValueError(f"expected {self.num_envs} tasks of {self.arms} arms, got shape {p.shape}")
        if np.any((p < 0) | (p > 1)):
            raise ValueError("arm probabilities must lie in [0, 1]")
        self._p = p

    def reset(self) -> np.ndarray:
        """Observations ``[num_envs, 1]`` float32 (always zero)."""
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pull arm ``actions[i]`` (int ``[num_envs]``) in env ``i``.

        Returns ``(obs [num_envs, 1] float32, reward [num_envs] float32 in {0, 1},
        success [num_envs] bool, always False)``.
        """
        if self._p is None:
            raise RuntimeError("call set_tasks() before step()")
        a = np.asarray(actions).reshape(-1).astype(np.int64)
        if a.shape != (self.num_envs,) or a.min() < 0 or a.max() >= self.arms:
            raise ValueError(f"actions must be {self.num_envs} arm indices in [0, {self.arms})")
        reward = (self._rng.random(self.num_envs) < self._p[self._rows, a]).astype(np.float32)
        return self._obs.copy(), reward, np.zeros(self.num_envs, bool)

    def close(self) -> None:
        pass
