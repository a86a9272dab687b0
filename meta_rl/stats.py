"""Running moments shared by the value normaliser (meta_rl.algos.ppo) and the model's input
normalisation (meta_rl.models.gru)."""

from __future__ import annotations


def merge_moments(mean, var, count, batch_mean, batch_var, n):
    """Mean, population variance and count of the union of two samples (Chan et al.'s parallel
    update). Works elementwise on floats or tensors alike; ``count + n`` must be > 0."""
    total = count + n
    delta = batch_mean - mean
    mean = mean + delta * n / total
    var = (var * count + batch_var * n + delta**2 * count * n / total) / total
    return mean, var, total
