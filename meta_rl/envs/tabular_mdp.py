"""Random tabular MDPs as a :class:`~meta_rl.envs.base.Benchmark` (Duan et al. 2016, §4.2).

A task is an MDP with ``S`` states and ``A`` actions (defaults 10 and 5), drawn per trial:

* transitions ``P(.|s, a) ~ Dirichlet(1, ..., 1)`` (flat), independently for every (s, a);
* mean rewards ``mu(s, a) ~ Normal(1, 1)``, independently for every (s, a);
* the reward observed on taking ``a`` in ``s`` is ``Normal(mu(s, a), 1)``.

A trial is ``episodes`` episodes of ``horizon`` steps in the same MDP.

Initial state. The paper specifies the distributions above, |S|, |A|, the horizon and
the number of episodes, but (as far as we could find) no initial-state distribution.
Our reading: every episode starts in the same fixed state, state 0. Because the prior
over transitions and rewards is exchangeable across states, "state 0" is, in
distribution, the same as "a fixed start state drawn once per MDP", and a fixed start
state is what makes episodes of one trial repeated attempts at the same problem, the
setting the paper's baselines (PSRL, UCRL2, BEB in their episodic forms) assume. It is
also the choice of the public re-implementations of this benchmark we know of. (A start
state drawn anew each episode would be the other reading; it is not what we do.)

The observation is the one-hot encoding of the current state (float32 ``[S]``).
Rewards are returned raw; the benchmark's ``reward_scale`` is applied by the caller.

Task features (what ``algo.aux_task_coef`` regresses from the GRU state): ``rewards``, each
(state, action) pair's mean reward minus 1 (prior Normal(0, 1)), or ``rewards_transitions``,
those followed by each pair's next-state distribution, centred on the uniform ``1/S`` and
scaled so that a pair's whole row has prior variance 1, as its mean reward has.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import gymnasium as gym
import numpy as np
import torch

from meta_rl.envs.base import trial_sums

SPLITS = ("train", "test")
# all_tasks(split) is drawn with this seed per split: fixed, and different between splits.
ALL_TASKS_SEED = {"train": 0, "test": 1}
NUM_ALL_TASKS = 1000
INITIAL_STATE = 0
TASK_FEATURES = ("rewards", "rewards_transitions")  # env.task_features


@dataclass(frozen=True, eq=False)
class MDPTask:
    """One tabular MDP.

    Attributes:
        transitions: ``float64 [S, A, S]``; ``transitions[s, a]`` is P(.|s, a) (rows sum to 1).
        reward_means: ``float64 [S, A]``; the mean reward of taking ``a`` in ``s``.
    """

    transitions: np.ndarray
    reward_means: np.ndarray

    @property
    def num_states(self) -> int:
        return self.reward_means.shape[0]

    @property
    def num_actions(self) -> int:
        return self.reward_means.shape[1]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def sample_mdps(states: int, actions: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MDPs from the prior: transitions ``[n, S, A, S]`` and reward means ``[n, S, A]``."""
    transitions = rng.dirichlet(np.ones(states), size=(n, states, actions))
    reward_means = rng.normal(1.0, 1.0, size=(n, states, actions))
    return transitions, reward_means


@functools.lru_cache(maxsize=16)
def _all_mdp_tasks(states: int, actions: int, split: str) -> tuple[MDPTask, ...]:
    rng = np.random.default_rng(ALL_TASKS_SEED[split])
    transitions, means = sample_mdps(states, actions, NUM_ALL_TASKS, rng)
    transitions.flags.writeable = False  # shared between callers through the cache
    means.flags.writeable = False
    return tuple(MDPTask(p, m) for p, m in zip(transitions, means))


class RandomTabularMDP:
    """Random tabular MDPs with ``episodes`` episodes of ``horizon`` steps per trial.

    Args:
        states: number of states S.
        actions: number of actions A.
        horizon: steps per episode.
        episodes: episodes per trial (the paper's n).
        meta_batch_size: trials per training iteration.
        reward_scale: multiplies rewards for the policy input and for learning.
        task_features: what the task features (``algo.aux_task_coef``) are: ``rewards``, the
            mean rewards, or ``rewards_transitions``, the mean rewards and the transition
            probabilities (see the module docstring).
        name: benchmark name used in logs.
    """

    def __init__(
        self,
        states: int = 10,
        actions: int = 5,
        horizon: int = 10,
        episodes: int = 10,
        meta_batch_size: int = 250,
        reward_scale: float = 1.0,
        task_features: str = "rewards",
        name: str = "tabular_mdp",
    ) -> None:
        for key, value, low in (
            ("states", states, 1),
            ("actions", actions, 1),
            ("horizon", horizon, 1),
            ("episodes", episodes, 1),
            ("meta_batch_size", meta_batch_size, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"env.{key} must be an integer >= {low}, got {value!r}")
        if not np.isfinite(reward_scale) or reward_scale <= 0:
            raise ValueError(f"env.reward_scale must be a positive finite number, got {reward_scale!r}")
        if task_features not in TASK_FEATURES:
            raise ValueError(f"env.task_features={task_features!r} is unknown; use {' or '.join(TASK_FEATURES)}")
        self.name = name
        self.states = int(states)
        self.actions = int(actions)
        self.episode_length = int(horizon)
        self.episodes_per_trial = int(episodes)
        self.meta_batch_size = int(meta_batch_size)
        self.reward_scale = float(reward_scale)
        self.with_transitions = task_features == "rewards_transitions"
        # Flat Dirichlet: each P(s'|s, a) has variance (S - 1) / (S^2 (S + 1)); the row of S
        # probabilities, centred and times this, has total prior variance 1 (S = 1: no variance).
        S = self.states
        self._transition_scale = float(np.sqrt(S * (S + 1) / (S - 1))) if S > 1 else 1.0
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.states,), np.float32)
        self.action_space = gym.spaces.Discrete(self.actions)

    def class_names(self, split: str) -> list[str]:
        _check_split(split)
        return ["tabular_mdp"]

    def task_class(self, task: MDPTask) -> str:
        return "tabular_mdp"

    def sample_tasks(self, split: str, n: int, rng: np.random.Generator) -> list[MDPTask]:
        _check_split(split)
        transitions, means = sample_mdps(self.states, self.actions, n, rng)
        return [MDPTask(p, m) for p, m in zip(transitions, means)]

    def all_tasks(self, split: str) -> list[MDPTask]:
        """A fixed list of 1000 MDPs per split (a fixed-seed sample; the splits use different seeds)."""
        _check_split(split)
        return list(_all_mdp_tasks(self.states, self.actions, split))

    @property
    def task_feature_dim(self) -> int:
        pairs = self.states * self.actions
        return pairs * (1 + self.states) if self.with_transitions else pairs

    def task_features(self, tasks: Sequence[MDPTask]) -> np.ndarray:
        """The mean rewards (drawn from Normal(1, 1)) minus 1, flattened ``[n, S·A]``; with
        ``task_features=rewards_transitions`` followed by the transition probabilities,
        ``(P(s'|s, a) - 1/S) · scale`` flattened over (s, a, s'): ``[n, S·A + S·A·S]``."""
        features = np.stack([t.reward_means for t in tasks]).reshape(len(tasks), -1) - 1.0
        if self.with_transitions:
            transitions = np.stack([t.transitions for t in tasks]).reshape(len(tasks), -1)
            features = np.concatenate([features, (transitions - 1.0 / self.states) * self._transition_scale], 1)
        return features.astype(np.float32)

    def _trial_statistics(self, inputs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor):
        """Per trial and (state, action) pair: the sum of its rewards and how often it was taken
        (``[B, S·A]``), and with transitions its successors' counts (``[B, S·A, S]``) over the steps
        that were not an episode's last (whose next state the trial sees as the following step's
        observation) and how many those were (``[B, S·A]``; None without transitions). The state
        each step acts in is the one-hot observation at the front of its RL² input."""
        states = inputs[..., : self.states].argmax(-1)  # [T, B]
        pairs = self.states * self.actions
        pair = states * self.actions + actions
        sums, counts = trial_sums(pair, pairs, rewards)
        if not self.with_transitions:
            return sums, counts, None, None
        seen = torch.arange(len(pair) - 1, device=pair.device) % self.episode_length != self.episode_length - 1
        next_states = torch.nn.functional.one_hot(states[1:][seen], self.states).to(rewards.dtype)
        successors, followed = trial_sums(pair[:-1][seen], pairs, next_states)
        return sums, counts, successors, followed

    def trial_task_features(self, inputs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor):
        """Each trial's estimate of :meth:`task_features` (``[B, F]``) and which features it has
        data for (``[B, F]`` bool): the task features as the trial's own data gives them
        (``algo.aux_task_target=trial``). Mean rewards: each (state, action) pair's mean observed
        reward minus 1, over the pairs it took. Transitions: each pair's next-state frequencies,
        over the pairs it took at a step that was not an episode's last."""
        sums, counts, successors, followed = self._trial_statistics(inputs, actions, rewards)
        means, taken = sums / counts.clamp(min=1) - 1.0, counts > 0
        if successors is None:
            return means, taken
        frequencies = successors / followed.clamp(min=1).unsqueeze(-1)
        B = len(means)
        return (torch.cat([means, ((frequencies - 1.0 / self.states) * self._transition_scale).view(B, -1)], 1),
                torch.cat([taken, (followed > 0).repeat_interleave(self.states, 1)], 1))

    def trial_task_posterior(self, inputs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """Each trial's posterior mean of :meth:`task_features` given all its data (``[B, F]``,
        every feature; ``algo.aux_task_target=posterior``), under the prior the tasks are drawn
        from: a pair's mean reward ~ Normal(1, 1) with rewards ~ Normal(mean, 1), so after ``k``
        rewards summing to ``R`` its feature is ``(1 + R) / (1 + k) - 1``; its next-state
        distribution ~ Dirichlet(1, ..., 1), so after ``n`` observed successors with counts ``c``
        the row is ``(c + 1) / (n + S)`` (centred and scaled as the hidden features). Regressed
        from the state at step ``t``, its minimiser is the posterior mean given the first ``t``
        steps, as the hidden features' is; the targets are less noisy and read nothing hidden."""
        sums, counts, successors, followed = self._trial_statistics(inputs, actions, rewards)
        means = (1.0 + sums) / (1.0 + counts) - 1.0
        if successors is None:
            return means
        S, B = self.states, len(means)
        rows = (successors + 1.0) / (followed.unsqueeze(-1) + S)
        return torch.cat([means, ((rows - 1.0 / S) * self._transition_scale).view(B, -1)], 1)

    def make_env(self, num_envs: int, seed: int = 0) -> "TabularMDPTrialEnv":
        """``seed`` seeds the generator that draws reward noise and next states."""
        return TabularMDPTrialEnv(num_envs, self.states, self.actions, seed)


class TabularMDPTrialEnv:
    """``num_envs`` tabular MDPs stepped in lock-step; every episode starts in state 0."""

    def __init__(self, num_envs: int, states: int, actions: int, seed: int = 0) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.states = int(states)
        self.actions = int(actions)
        self._rng = np.random.default_rng(seed)
        self._rows = np.arange(self.num_envs)
        self._cdf: np.ndarray | None = None  # [B, S, A, S] cumulative transition probabilities
        self._means: np.ndarray | None = None  # [B, S, A]
        self._state: np.ndarray | None = None  # [B] int64, None until reset()

    @property
    def state(self) -> np.ndarray:
        """Current states ``[num_envs]`` int64."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state.copy()

    def reseed(self, seed: int) -> None:
        """Restart the outcome generator from ``seed`` (e.g. before each evaluation, so its
        outcomes do not depend on how much the env was used before)."""
        self._rng = np.random.default_rng(seed)

    def set_tasks(self, tasks: Sequence[MDPTask]) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"got {len(tasks)} tasks for {self.num_envs} envs")
        p = np.stack([t.transitions for t in tasks]).astype(np.float64)
        means = np.stack([t.reward_means for t in tasks]).astype(np.float64)
        if p.shape != (self.num_envs, self.states, self.actions, self.states) or means.shape != p.shape[:3]:
            raise ValueError(f"tasks do not have {self.states} states and {self.actions} actions")
        cdf = np.cumsum(p, axis=-1)
        # Force the last entry to exactly 1 so rounding can never push a draw past state S-1.
        cdf[..., -1] = 1.0
        self._cdf, self._means, self._state = cdf, means, None

    def _one_hot(self) -> np.ndarray:
        obs = np.zeros((self.num_envs, self.states), np.float32)
        obs[self._rows, self._state] = 1.0
        return obs

    def reset(self) -> np.ndarray:
        """Put every env in the initial state; returns one-hot observations ``[num_envs, S]`` float32."""
        if self._cdf is None:
            raise RuntimeError("call set_tasks() before reset()")
        self._state = np.full(self.num_envs, INITIAL_STATE, np.int64)
        return self._one_hot()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Take ``actions`` (int ``[num_envs]``).

        Returns ``(obs [num_envs, S] float32 one-hot next state, reward [num_envs] float32
        ~ Normal(mu(s, a), 1), success [num_envs] bool, always False)``.
        """
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions).reshape(-1).astype(np.int64)
        if a.shape != (self.num_envs,) or a.min() < 0 or a.max() >= self.actions:
            raise ValueError(f"actions must be {self.num_envs} action indices in [0, {self.actions})")
        s = self._state
        reward = (self._means[self._rows, s, a] + self._rng.standard_normal(self.num_envs)).astype(np.float32)
        # Inverse-CDF sampling for all envs at once: the next state is the number of
        # cumulative probabilities at or below a uniform draw u in [0, 1).
        u = self._rng.random(self.num_envs)
        self._state = (self._cdf[self._rows, s, a] <= u[:, None]).sum(axis=1)
        return self._one_hot(), reward, np.zeros(self.num_envs, bool)

    def close(self) -> None:
        pass
