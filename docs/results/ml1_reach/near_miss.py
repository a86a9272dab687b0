"""Are mean-action failures on ML1 reach near-misses? Closest approach of the gripper to the goal.

    PYTHONPATH=. python docs/results/ml1_reach/near_miss.py runs/<run>/checkpoints/latest.pt [N]

Plays the evaluation protocol's trial (10 adaptation episodes with sampled actions, then 3
evaluation episodes; action seed 0) on each of the first N (default 50) test goals twice: with
the mean action in the evaluation episodes (the protocol) and with sampled ones
(eval.deterministic=false). Per mode it prints, over the evaluation episodes, the success rate
(Meta-World's ``info["success"]``: the gripper centre within 5 cm of the goal at some step) and
each episode's closest approach (reach-v3's ``info["near_object"]``, the same gripper-centre-to-goal
distance), over all episodes and over the failed ones.
"""
import sys

import numpy as np
import torch

from meta_rl.evaluation import evaluation_tasks
from meta_rl.experiment import load_agent
from meta_rl.rollout import TrialCollector


ADAPT, EVAL = 10, 3


def closest_approach(path: str, n: int, deterministic: bool):
    """``(closest [E, B] cm, success [E, B])`` in the evaluation episodes of one protocol trial
    on each of the first ``n`` test goals."""
    torch.set_num_threads(1)
    bench, model, _ = load_agent(path, in_process=True)
    tasks = evaluation_tasks(bench, "test", 50)[:n]
    env = bench.make_env(len(tasks))
    dist = []

    def step(actions):  # MetaWorldTrialEnv.step, also keeping Meta-World's distance to the goal
        d = []
        for i, e in enumerate(env._envs):
            obs, rew, _, _, info = e.step(actions[i])
            env._obs[i], env._rew[i], env._succ[i] = obs, rew, info["success"] > 0
            d.append(info["near_object"])
        dist.append(d)
        return env._obs.copy(), env._rew.copy(), env._succ.copy()

    env.step = step
    col = TrialCollector(env, model, 39, bench.action_space, bench.episode_length,
                         ADAPT + EVAL, bench.reward_scale, generator=torch.Generator().manual_seed(0))
    batch = col.collect(tasks, ADAPT if deterministic else None)
    H = bench.episode_length
    closest = np.array(dist).reshape(ADAPT + EVAL, H, n).min(1)[ADAPT:] * 100
    success = batch.successes.numpy().reshape(ADAPT + EVAL, H, n).any(1)[ADAPT:]
    return closest, success


def main(path: str, n: int) -> None:
    print("evaluation episodes  success | closest approach (cm), all: median, p90 | failed: "
          "count, within 5-7.5 cm, median")
    for name, deterministic in (("mean action", True), ("sampled", False)):
        closest, success = closest_approach(path, n, deterministic)
        failed = closest[~success]
        near = int(((failed > 5) & (failed <= 7.5)).sum())
        med = f"{np.median(failed):.1f}" if failed.size else "-"
        print(f"{name:19s} {success.mean():7.3f} | {np.median(closest):5.1f}, {np.percentile(closest, 90):5.1f}"
              f" | {failed.size}, {near}, {med}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50)
