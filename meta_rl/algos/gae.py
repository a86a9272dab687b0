"""Generalized Advantage Estimation over whole trials.

Discounting across episode boundaries is a deliberate choice:

* ``across_episodes=True`` (default, RL²): the trial is one "meta-episode". The last
  step of episode k bootstraps from the value of the first step of episode k+1 with
  the usual γ, and the λ-trace continues, so reward earned in a later episode is
  credited (discounted by γ per step) to exploration in an earlier one. Only the
  end of the trial is terminal (value 0): the hidden state, and so the agent's
  knowledge of the task, is discarded there.
* ``across_episodes=False``: each episode is its own return; the trace and the
  bootstrap stop at every episode end (as if each episode were terminal).
"""

from __future__ import annotations

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    episode_end: torch.Tensor,
    gamma: float,
    lam: float,
    across_episodes: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets.

    Args:
        rewards, values: ``[T, B]`` for one trial per column (trial ends after step T-1).
        episode_end: ``[T]`` bool, True at the last step of each episode.

    Returns:
        ``(advantages [T, B], returns [T, B])`` with ``returns = advantages + values``.
    """
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    next_value = torch.zeros_like(values[0])  # trial end is terminal
    ends = episode_end.tolist()  # plain bools: no device sync per step when on a GPU
    for t in range(T - 1, -1, -1):
        if t == T - 1 or (ends[t] and not across_episodes):
            next_value = torch.zeros_like(values[0])
            last = torch.zeros_like(rewards[0])
        delta = rewards[t] + gamma * next_value - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
        next_value = values[t]
    return adv, adv + values
