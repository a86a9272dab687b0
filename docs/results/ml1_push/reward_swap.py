"""Does the ML1 push policy find the goal from its rewards? Feed it the rewards of another goal.

    PYTHONPATH=. python docs/results/ml1_push/reward_swap.py runs/<run>/checkpoints/latest.pt [N] [--constant]

reward_ablation.py holds the reward input constant, which removes everything the reward
says: push-v3's reward also scores the hand's distance to the puck and the grasp, so a policy
that uses the reward only as a state feature loses as much as one that infers the goal from
it. Here the policy plays the meta-test protocol's trial (10 adaptation episodes with sampled
actions, then 3 evaluation episodes with the mean action; action seed 0) on the first N
(default 50) test goals in two modes (three with ``--constant``):

- ``as trained``: the env's own rewards;
- ``rewards of another goal``: every reward the policy receives is the one the env computes
  for the same state and action with the target of another test goal, the one of the N
  farthest from the true goal (its own puck position, hand and grasp; only the target
  differs). Success is still judged at the true goal;
- with ``--constant``, also ``reward at its mean``: the previous-reward input held at its
  training mean (as in reward_ablation.py), for the same measures.

If the policy infers the goal from the rewards, in the second mode it pushes the puck towards
the other goal: success at the true goal falls and success at the other goal rises. If it
reads the reward only as a state feature (reach, grasp), both stay as they were. (The push
test goals lie close together, a median 8.6 cm between neighbours in the list against the
5 cm success radius, hence the farthest goal.)

Prints, per mode and episode of the trial, the success at the true goal and at the other
goal (``obj_to_target`` <= Meta-World's 5 cm at some step), and for the evaluation episodes
the median distance of the puck at the episode's end to each goal and how often it ends
within the 5 cm (success counted at the episode's end rather than at any step).
"""
import sys

import numpy as np
import torch

from meta_rl.evaluation import evaluation_tasks
from meta_rl.experiment import load_agent
from meta_rl.rl2 import reward_index
from meta_rl.rollout import TrialCollector

ADAPT, EVAL = 10, 3
RADIUS = 0.05  # SawyerPushEnvV3.TARGET_RADIUS


def play(path: str, n: int, swap: bool, constant: bool = False) -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    bench, model, _ = load_agent(path, in_process=True)
    if constant:
        model.mask_inputs([reward_index(bench.observation_space, bench.action_space)])
    tasks = evaluation_tasks(bench, "test", 50)[:n]
    env = bench.make_env(len(tasks))
    H, E = bench.episode_length, ADAPT + EVAL
    col = TrialCollector(env, model, 39, bench.action_space, H, E, bench.reward_scale,
                         generator=torch.Generator().manual_seed(0))
    targets: list[np.ndarray] = []
    other: list[np.ndarray] = []  # per env: the target of the test goal farthest from its own
    dist = np.zeros((E * H, 2, n))  # puck to [true goal, other goal] after every step
    t = [0]
    reset = env.reset

    def reset_and_read_targets():
        obs = reset()
        targets[:] = [e._target_pos.copy() for e in env._envs]
        gaps = np.linalg.norm(np.array(targets)[:, None] - np.array(targets)[None], axis=-1)
        other[:] = [targets[j] for j in gaps.argmax(1)]
        return obs

    def step(actions):  # MetaWorldTrialEnv.step, with the reward of the other goal in swap mode
        for i, e in enumerate(env._envs):
            obs, rew, _, _, info = e.step(actions[i])
            own = e.compute_reward(actions[i], e._last_stable_obs)[0]
            assert own == rew, "compute_reward does not reproduce the env's reward"
            if swap:
                e._target_pos = other[i]
                rew = e.compute_reward(actions[i], e._last_stable_obs)[0]
                e._target_pos = targets[i]
            env._obs[i], env._rew[i], env._succ[i] = obs, rew, info["success"] > 0
            dist[t[0], :, i] = np.linalg.norm(obs[4:7] - targets[i]), np.linalg.norm(obs[4:7] - other[i])
        t[0] += 1
        return env._obs.copy(), env._rew.copy(), env._succ.copy()

    env.reset, env.step = reset_and_read_targets, step
    batch = col.collect(tasks, ADAPT)
    d = dist.reshape(E, H, 2, n)
    success = batch.successes.numpy().reshape(E, H, n).any(1)
    assert np.array_equal(success, (d[:, :, 0] <= RADIUS).any(1)), "success is not obj_to_target <= 5 cm"
    gap = np.linalg.norm(np.array(targets) - np.array(other), axis=1)
    return dict(success=success, success_other=(d[:, :, 1] <= RADIUS).any(1), end=d[:, -1] * 100, gap=gap * 100)


def main(path: str, n: int) -> None:
    print(f"{path}: {n} test goals; actions seeded 0")
    modes = (("as trained", False, False), ("rewards of another", True, False), ("reward at its mean", False, True))
    for name, swap, constant in modes[: 3 if "--constant" in sys.argv else 2]:
        r = play(path, n, swap, constant)
        if name == "as trained":
            print(f"the other goal lies {np.median(r['gap']):.1f} cm from the true one (median; min {r['gap'].min():.1f})")
        ev = slice(ADAPT, None)
        end = r["end"][ev]
        print(f"{name:<20} protocol success at the true goal {r['success'][ev].mean():.3f}, at the other "
              f"{r['success_other'][ev].mean():.3f} | puck at the end of the evaluation episodes: median "
              f"{np.median(end[:, 0]):.1f} cm from the true goal, {np.median(end[:, 1]):.1f} cm from the other; "
              f"within 5 cm {(end[:, 0] <= 100 * RADIUS).mean():.3f} / {(end[:, 1] <= 100 * RADIUS).mean():.3f}")
        for label, key in (("  true goal", "success"), ("  other goal", "success_other")):
            print(f"{label:<20} success by episode 1..13: " + " ".join(f"{s:.2f}" for s in r[key].mean(1)), flush=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--constant"]
    main(args[0], int(args[1]) if len(args) > 1 else 50)
