"""Why does the mean action fail where sampled actions succeed? Evaluation episodes with less noise.

    PYTHONPATH=. python docs/results/ml1_reach/eval_noise.py runs/<run>/checkpoints/latest.pt [N]

Plays the evaluation protocol's trial (10 adaptation episodes with sampled actions, then 3
evaluation episodes; action seed 0, so the adaptation episodes are the same in every mode) on
each of the first N (default 50) test goals, once per mode of the evaluation episodes:

- ``noise x s``: the executed action is ``mean + s * std * eps`` (s = 0 is the protocol's mean
  action, s = 1 the policy's own sampled action); the GRU's previous-action input is that
  executed action, as always.
- ``mean, noisy input``: the mean action is executed, but the GRU's previous-action input is
  ``mean + std * eps``, as if the action had been sampled. If the mean action fails because
  noiseless previous actions are inputs the GRU never saw in training, this mode recovers the
  sampled success (and its success does not fall over episodes 11-13); if it fails because
  the mean trajectory stops short of the goal, it stays at the mean action's success.

Per mode it prints the success in each evaluation episode (Meta-World's ``info["success"]``
at some step), their mean, and the median closest approach of the gripper to the goal
(reach-v3's ``info["near_object"]``).
"""
import sys

import numpy as np
import torch

from meta_rl.evaluation import evaluation_tasks
from meta_rl.experiment import load_agent
from meta_rl.rollout import TrialCollector

ADAPT, EVAL = 10, 3
MODES = (("noise x 0 (mean action)", 0.0, False), ("noise x 0.1", 0.1, False),
         ("noise x 0.25", 0.25, False), ("noise x 0.5", 0.5, False),
         ("noise x 1 (sampled)", 1.0, False), ("mean, noisy input", 0.0, True))


def play(path: str, n: int, scale: float, noisy_input: bool):
    """``(success [EVAL, n], closest [EVAL, n] cm)`` of the evaluation episodes in one mode."""
    torch.set_num_threads(1)
    bench, model, _ = load_agent(path, in_process=True)
    tasks = evaluation_tasks(bench, "test", 50)[:n]
    env = bench.make_env(len(tasks))
    gen = torch.Generator().manual_seed(0)
    col = TrialCollector(env, model, 39, bench.action_space, bench.episode_length,
                         ADAPT + EVAL, bench.reward_scale, generator=gen)
    dist, shown = [], {}
    act = model.act

    def eval_act(policy_out, generator, deterministic=False):
        if not deterministic:  # adaptation episodes: the policy's own sampled action
            shown.pop("input", None)
            return act(policy_out, generator, False)
        mean, std = model.mean_std(policy_out)
        eps = torch.randn(mean.shape, generator=gen)
        action = mean + scale * std * eps
        if noisy_input:
            shown["input"] = (mean + std * eps).numpy()
        return action, torch.zeros(mean.shape[:-1])

    record = col.rl2.record

    def eval_record(action, reward, episode_done):
        record(shown.get("input", action), reward, episode_done)

    def step(actions):  # MetaWorldTrialEnv.step, also keeping Meta-World's distance to the goal
        d = []
        for i, e in enumerate(env._envs):
            obs, rew, _, _, info = e.step(actions[i])
            env._obs[i], env._rew[i], env._succ[i] = obs, rew, info["success"] > 0
            d.append(info["near_object"])
        dist.append(d)
        return env._obs.copy(), env._rew.copy(), env._succ.copy()

    model.act, col.rl2.record, env.step = eval_act, eval_record, step
    batch = col.collect(tasks, ADAPT)
    H = bench.episode_length
    closest = np.array(dist).reshape(ADAPT + EVAL, H, n).min(1)[ADAPT:] * 100
    success = batch.successes.numpy().reshape(ADAPT + EVAL, H, n).any(1)[ADAPT:]
    return success, closest


def main(path: str, n: int) -> None:
    print(f"{n} test goals; evaluation episodes 11 12 13 | mean | median closest approach (cm)")
    for name, scale, noisy_input in MODES:
        success, closest = play(path, n, scale, noisy_input)
        by_episode = " ".join(f"{s:.2f}" for s in success.mean(1))
        print(f"{name:25s} {by_episode} | {success.mean():.3f} | {np.median(closest):.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50)
