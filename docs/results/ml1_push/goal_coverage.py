"""How much of ML1 push-v3 can a policy solve without knowing the goal?

    PYTHONPATH=. python docs/results/ml1_push/goal_coverage.py [seed]

Push succeeds when the puck comes within 5 cm of the goal at any step of the episode. The
goals of one benchmark seed lie in a 20 x 10 cm patch, so one fixed target point already lies
within 5 cm of many of them. Prints, per split, the ranges of the object's start and of the
goal, and the largest fraction of the split's goals within 5 cm (in x-y) of any single point
of a 2.5 mm grid (a point chosen knowing the goals: an upper bound for a policy that pushes
every puck to one place and stops there).
"""
import sys

import numpy as np

from meta_rl.envs.metaworld import MetaWorldBenchmark, _rand_vec


def main(seed: int) -> None:
    bench = MetaWorldBenchmark("ML1", "push-v3", benchmark_seed=seed, num_workers=0)  # the runs' own splits
    xs, ys = np.arange(-0.12, 0.1201, 0.0025), np.arange(0.76, 0.9401, 0.0025)
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    for split in ("train", "test"):
        tasks = bench.all_tasks(split)
        rand = np.stack([_rand_vec(t) for t in tasks])  # push: object start (3), goal (3)
        obj, goal = rand[:, :3], rand[:, 3:]
        near = np.linalg.norm(goal[None, :, :2] - grid[:, None], axis=-1) < 0.05
        best = near.mean(1).argmax()
        print(
            f"{split}: {len(tasks)} goals | object x {obj[:, 0].min():.3f}..{obj[:, 0].max():.3f} "
            f"y {obj[:, 1].min():.3f}..{obj[:, 1].max():.3f} | goal x {goal[:, 0].min():.3f}..{goal[:, 0].max():.3f} "
            f"y {goal[:, 1].min():.3f}..{goal[:, 1].max():.3f} | best single point "
            f"({grid[best, 0]:.4f}, {grid[best, 1]:.4f}) within 5 cm of {near[best].mean():.0%} of the goals"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
