"""The linear feature baseline of rllab, which the RL² paper (Duan et al. 2016) used with TRPO.

``algo.baseline=linear`` replaces the learned critic in GAE by a ridge regression of the
discounted return on per-step features: the RL² policy input ``x`` (observation, previous
action, previous reward, done flag; clipped to [-10, 10]), ``x²``, the position in the
trial and in the episode (each with powers 1..3), and a constant. As in rllab, the values of
a batch are predicted with the weights fitted on the *previous* batch (zero before the
first fit), then the baseline is refitted on this batch's returns, so no sample is scored by
a fit that has already seen it.
"""

from __future__ import annotations

import torch


class LinearFeatureBaseline:
    """Ridge regression ``return ≈ features · w``; ``w`` is kept in :meth:`state_dict`.

    Args:
        reg_coeff: ridge penalty; multiplied by 10 (up to 5 times) if the solve is not finite.
    """

    def __init__(self, reg_coeff: float = 1e-5) -> None:
        self.reg_coeff = reg_coeff
        self.weights: torch.Tensor | None = None

    @staticmethod
    def features(inputs: torch.Tensor, episode_length: int) -> torch.Tensor:
        """``[T, B, D]`` policy inputs of whole trials → ``[T, B, 2·D + 7]`` features."""
        T, B, _ = inputs.shape
        x = inputs.clamp(-10, 10)
        t = torch.arange(T, dtype=x.dtype, device=x.device)
        pos = torch.stack([t / T, (t % episode_length) / episode_length], -1)  # [T, 2]
        time = torch.cat([pos, pos**2, pos**3, torch.ones(T, 1, dtype=x.dtype, device=x.device)], -1)
        return torch.cat([x, x * x, time.unsqueeze(1).expand(T, B, time.shape[-1])], -1)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Values ``[T, B]`` (zeros before the first :meth:`fit`)."""
        if self.weights is None:
            return features.new_zeros(features.shape[:-1])
        return (features.double() @ self.weights).to(features.dtype)

    def fit(self, features: torch.Tensor, returns: torch.Tensor) -> None:
        """Least squares with a ridge penalty of ``features`` → ``returns`` (float64)."""
        a = features.reshape(-1, features.shape[-1]).double()
        y = returns.reshape(-1).double()
        gram, rhs = a.T @ a, a.T @ y
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        reg = self.reg_coeff
        for _ in range(5):
            w = torch.linalg.solve(gram + reg * eye, rhs)
            if torch.isfinite(w).all():
                self.weights = w
                return
            reg *= 10

    def state_dict(self) -> dict:
        return {"weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        self.weights = state["weights"]
