"""Cost of truncated vs full-trial BPTT: a bare GRU-256 forward+backward per sample-epoch.

    PYTHONPATH=. python docs/results/ml1_reach/bptt_cost.py

The default ML10/ML1 batch (20 trials of 5,000 steps, 45 RL² inputs, 4 minibatches) cut into
sequences of each chunk length, timed with the benchmark's own bare forward+backward
(``meta_rl.bench.bare_forward_backward``). Produced the figures of "Full-trial BPTT" in
docs/results.md.
"""
import gymnasium as gym
import torch

from meta_rl.bench import bare_forward_backward
from meta_rl.models import GRUActorCritic

if __name__ == "__main__":
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = GRUActorCritic(45, gym.spaces.Box(-1, 1, (4,)), hidden=256)
    trials, trial_length, minibatches = 20, 5000, 4
    for chunk in (250, 500, 1000, 5000):
        sequences_per_minibatch = trials * (trial_length // chunk) // minibatches
        s = bare_forward_backward(model, chunk, sequences_per_minibatch, 45, repeats=2)
        print(f"chunk {chunk:5d}: {sequences_per_minibatch:3d} sequences per minibatch, {s * 1e6:5.1f} us per sample-epoch")
