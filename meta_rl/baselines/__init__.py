"""Hand-designed baselines for the bandit and tabular-MDP benchmarks (Duan et al. 2016, §4).

``meta_rl.baselines.bandit`` holds the bandit policies (random, greedy, ε-greedy, UCB1,
Thompson sampling, finite-horizon Gittins index, exact Bayes-optimal, oracle) and
``meta_rl.baselines.tabular`` the tabular-MDP ones (random, greedy, ε-greedy, PSRL,
UCRL2, BEB, oracle). Every baseline runs a whole batch of trials at once in numpy,
through the benchmark's own trial environment, and returns each trial's total reward.

``python -m meta_rl.baselines env=bandit env.arms=5 env.pulls=10`` prints the table.
"""

from __future__ import annotations

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Argmax over the last axis, breaking exact ties uniformly at random.

    ``values [..., K]`` -> ``int64 [...]``.
    """
    best = values >= values.max(axis=-1, keepdims=True)
    # A random score on the maximal entries only; argmax then picks one of them uniformly.
    return np.argmax(np.where(best, rng.random(values.shape), -1.0), axis=-1)


def mean_ci(x: np.ndarray) -> tuple[float, float]:
    """Mean of ``x [N]`` and the half-width of its 95% normal-approximation confidence interval."""
    x = np.asarray(x, np.float64)
    if x.size < 2:
        return float(x.mean()), float("inf")
    return float(x.mean()), float(Z_95 * x.std(ddof=1) / np.sqrt(x.size))
