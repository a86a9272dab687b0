"""How does a per-state policy std vary with the hand's distance to the (hidden) goal?

    PYTHONPATH=. python docs/results/ml1_reach/std_vs_distance.py runs/ml1_reach_sstd_s0/checkpoints/latest.pt

One trial (10 episodes, sampled actions, action seed 0) on each of the first 10 test goals, in
process; the std of every step is recomputed from the stored RL² inputs. Works for a parameter
std too (then it is the same at every step). Produced the numbers of "A per-state std" in
docs/results.md.
"""
import sys, numpy as np, torch
from hand_vs_goal import collect_test_trials  # this script's directory is on sys.path

if __name__ == "__main__":
    model, b, goals = collect_test_trials(sys.argv[1], 10)
    hand = b.inputs[..., :3].numpy()                       # [T, B, 3]
    d = np.linalg.norm(hand - goals[None], axis=-1)         # [T, B]
    with torch.no_grad():
        out, _, _ = model(b.inputs, model.initial_state(len(goals)))
        mean, std = model.mean_std(out)
    s = std.expand_as(mean).mean(-1).numpy()                # [T, B]
    for lo, hi in ((0, .05), (.05, .07), (.07, .10), (.10, .15), (.15, 1)):
        m = (d >= lo) & (d < hi)
        print(f"dist {lo*100:4.0f}-{hi*100:3.0f} cm: share {m.mean():.2f}  mean std {s[m].mean() if m.any() else float('nan'):.3f}")
    print("corr(std, dist):", np.corrcoef(s.ravel(), d.ravel())[0, 1].round(2), " success:", b.episode_successes().float().mean().item())
