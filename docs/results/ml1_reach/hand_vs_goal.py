"""Where does a trained ML1-reach agent put the hand, relative to the (hidden) goal?

    PYTHONPATH=. python docs/results/ml1_reach/hand_vs_goal.py runs/ml1_reach_vn_s0/checkpoints/latest.pt

One trial (10 episodes, sampled actions, action seed 0) on each of the first 20 test goals, in
process; the hand position is read from the RL² inputs the collector stores (obs[:3]).
Produced item 4 of "What the runs showed" in docs/results.md.
"""
import sys, numpy as np, torch
from meta_rl.experiment import load_agent
from meta_rl.evaluation import evaluation_tasks
from meta_rl.rollout import TrialCollector


def collect_test_trials(path: str, num_goals: int):
    """``(model, batch, goals [B, 3])``: one trial (sampled actions, action seed 0) on each of the
    first ``num_goals`` test goals of the ML1 run whose checkpoint is ``path``, in process."""
    torch.set_num_threads(1)
    bench, model, _ = load_agent(path, in_process=True)
    tasks = evaluation_tasks(bench, "test", 50)[:num_goals]
    env = bench.make_env(len(tasks))
    col = TrialCollector(env, model, 39, bench.action_space, 500, 10, bench.reward_scale,
                         generator=torch.Generator().manual_seed(0))
    batch = col.collect(tasks)
    return model, batch, np.array([e._target_pos for e in env._envs])


if __name__ == "__main__":
    _, b, goals = collect_test_trials(sys.argv[1], 20)
    hand = b.inputs[..., :3].numpy().reshape(10, 500, len(goals), 3)   # [E, t, B, 3] (hand pos obs)
    last = hand[:, -100:].mean(1)                                    # [E, B, 3]
    d = np.linalg.norm(last - goals[None], axis=-1)                  # [E, B]
    mind = np.linalg.norm(hand - goals[None, None], axis=-1).min(1)  # [E, B] closest approach
    print("goal spread (std per axis):", goals.std(0).round(3))
    for e in (0, 1, 4, 9):
        print(f"episode {e+1}: end-of-episode hand std per axis {last[e].std(0).round(3)}, "
              f"mean dist to goal {d[e].mean():.3f}, closest approach {mind[e].mean():.3f}, success {(mind[e] <= 0.05).mean():.2f}")
    c = [np.corrcoef(last[9][:, k], goals[:, k])[0, 1] for k in range(3)]
    print("corr(end hand pos ep10, goal) per axis:", np.round(c, 2))
    center = goals.mean(0)
    print("dist of goals to their mean:", np.linalg.norm(goals - center, axis=1).mean().round(3))
