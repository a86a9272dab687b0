"""How well the task head of a run trained with ``algo.aux_task_coef`` locates the hidden goal.

Plays one trial (sampled actions) on each of N test goals of ML1 with the checkpoint's policy
and prints, per episode, the mean squared error of the head's prediction at the episode's last
step, split into object dims (observed) and goal dims (hidden), in the standardised units of
the loss (1.0 = no better than the training goals' mean), and the goal error in cm.

    PYTHONPATH=. python docs/results/ml1_reach/aux_goal_error.py runs/<run>/checkpoints/latest.pt [N]
"""

import sys

import numpy as np
import torch

from meta_rl.experiment import load_agent
from meta_rl.rollout import TrialCollector


def main(path: str, n: int = 10) -> None:
    bench, model, _ = load_agent(path, in_process=True)
    tasks = bench.all_tasks("test")[:n]
    col = TrialCollector(bench.make_env(n), model, 39, bench.action_space, bench.episode_length,
                         bench.episodes_per_trial, bench.reward_scale, generator=torch.Generator().manual_seed(0))
    batch = col.collect(tasks)
    target = torch.as_tensor(bench.task_features(tasks))
    with torch.no_grad():
        feats, _ = model.encode(batch.inputs, model.initial_state(n))
        pred = model.task_head(feats)  # [T, n, 6]
    scale = torch.as_tensor(bench._rand_scale, dtype=torch.float32)
    H = bench.episode_length
    print("episode  object-dims MSE  goal-dims MSE  goal error (cm)")
    for e in range(bench.episodes_per_trial):
        p = pred[(e + 1) * H - 1]
        err = (p - target).pow(2)
        cm = ((p - target)[:, 3:] / scale[3:]).norm(dim=-1).mean() * 100
        print(f"{e + 1:7d}  {err[:, :3].mean():15.3f}  {err[:, 3:].mean():13.3f}  {cm:15.1f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10)
