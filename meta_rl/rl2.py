"""RL² input assembly: the one place that decides what the policy sees at each step.

Policy input at step t of a trial:

    x_t = obs_t ⊕ a_{t-1} ⊕ reward_scale · r_{t-1} ⊕ d_{t-1}  [⊕ obs_{t-1}]  [⊕ t/T]

where ``d_{t-1} = 1`` when step t-1 was the last step of an episode, so at the first
step of episode k > 1 the policy sees done = 1 together with the last reward and
action of episode k-1. At the first step of a trial the "previous" parts are
zeros. ``a_{t-1}`` is the action the environment executed (clipped to the action
box), one-hot encoded for discrete action spaces.

``obs_{t-1}`` (optional, ``previous_obs``; not in the RL² paper) is the observation in
which ``a_{t-1}`` was taken, so the input carries the whole last transition
``(obs_{t-1}, a_{t-1}, r_{t-1}, obs_t)``. It adds no information (the recurrent state could
keep ``obs_{t-1}`` itself) but spares the network from learning to: on tabular MDPs it is
what lets the GRU file each reward under the state it was earned in
(docs/rl2_paper_reproduction.md).

``t/T`` (optional, ``trial_time``; not in the RL² paper) is the fraction of the trial already
played: ``t`` steps taken so far out of the trial's ``T`` (0 at the first step, ``(T-1)/T``
at the last). It tells the policy how many steps are left to exploit what it has learned,
which a Bayes-optimal agent for a finite trial (e.g. the Gittins baseline with its horizon)
also uses; without it the GRU has to count the steps itself. ``T`` is the length of the trial
being played, so an evaluation with more episodes per trial than training stretches the clock.

Rollout and evaluation both use :class:`RL2Inputs`, so training and testing can
never disagree about trial and episode boundaries.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def action_input_dim(action_space: gym.spaces.Space) -> int:
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    return int(np.prod(action_space.shape))


def _width(obs_dim: int, act_dim: int, previous_obs: bool, trial_time: bool) -> int:
    """Input width of the layout in the module docstring."""
    return obs_dim + act_dim + 2 + (obs_dim if previous_obs else 0) + int(trial_time)


def input_dim(
    observation_space: gym.spaces.Box, action_space: gym.spaces.Space, previous_obs: bool = False,
    trial_time: bool = False,
) -> int:
    return _width(int(np.prod(observation_space.shape)), action_input_dim(action_space), previous_obs, trial_time)


def reward_index(observation_space: gym.spaces.Box, action_space: gym.spaces.Space) -> int:
    """Position of the previous reward in the RL² input (observation, previous action, reward, done)."""
    return int(np.prod(observation_space.shape)) + action_input_dim(action_space)


def normalized_dims(
    observation_space: gym.spaces.Box, action_space: gym.spaces.Space, previous_obs: bool = False,
    trial_time: bool = False,
) -> np.ndarray:
    """Bool mask over the input dims that input normalisation standardises: the observations
    and the reward (arbitrary scales), not the previous action (bounded, or one-hot), the
    done flag nor the trial time (in [0, 1))."""
    obs = int(np.prod(observation_space.shape))
    mask = np.zeros(input_dim(observation_space, action_space, previous_obs, trial_time), bool)
    mask[:obs] = True
    mask[reward_index(observation_space, action_space)] = True
    if previous_obs:
        start = obs + action_input_dim(action_space) + 2
        mask[start : start + obs] = True
    return mask


class RL2Inputs:
    """Keeps (previous action, reward, done[, observation][, trial time]) for ``num_envs`` envs
    and builds policy inputs.

    ``build`` returns a view of a preallocated ``[num_envs, input_dim]`` float32 buffer.
    ``trial_length`` (steps per trial) turns on the trial-time input; None leaves it out.
    """

    def __init__(
        self,
        num_envs: int,
        obs_dim: int,
        action_space: gym.spaces.Space,
        reward_scale: float,
        previous_obs: bool = False,
        trial_length: int | None = None,
    ):
        if trial_length is not None and trial_length < 1:
            raise ValueError(f"trial_length must be a positive number of steps, got {trial_length}")
        self.num_envs = num_envs
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.obs_dim = obs_dim
        self.act_dim = action_input_dim(action_space)
        self.reward_scale = float(reward_scale)
        self.previous_obs = bool(previous_obs)
        self.trial_length = trial_length
        self.dim = _width(obs_dim, self.act_dim, self.previous_obs, trial_length is not None)
        self._x = np.zeros((num_envs, self.dim), np.float32)
        self._t = 0  # steps recorded since the trial started
        self._rows = np.arange(num_envs)

    def start_trial(self) -> None:
        """Zero the previous action, reward, done flag (observation, trial time): first step of a trial."""
        self._x[:, self.obs_dim :] = 0.0
        self._t = 0

    def build(self, obs: np.ndarray) -> np.ndarray:
        """Policy input ``[num_envs, dim]`` for observations ``[num_envs, obs_dim]``."""
        self._x[:, : self.obs_dim] = obs
        return self._x

    def record(self, action: np.ndarray, reward: np.ndarray, episode_done: bool | np.ndarray) -> None:
        """Store what the next step's input carries: executed action, raw reward, done flag
        (and the observation the action was taken in, the one the last ``build`` got; and the
        trial time of the next step)."""
        a0, r, d = self.obs_dim, self.obs_dim + self.act_dim, self.obs_dim + self.act_dim + 1
        if self.previous_obs:
            self._x[:, d + 1 : d + 1 + self.obs_dim] = self._x[:, : self.obs_dim]
        if self.trial_length is not None:
            self._t += 1
            self._x[:, -1] = self._t / self.trial_length
        if self.discrete:
            self._x[:, a0:r] = 0.0
            self._x[self._rows, a0 + action.astype(np.int64)] = 1.0
        else:
            self._x[:, a0:r] = action
        self._x[:, r] = reward * self.reward_scale
        self._x[:, d] = episode_done
