"""Meta-World's v2 reach reward against the hand's distance to the goal.

    python docs/results/ml1_reach/reach_reward.py

``10 · tolerance(d, bounds=(0, 0.05), margin=|hand_init − goal|, sigmoid="long_tail")``, the
formula of ``SawyerReachEnvV3.compute_reward``, with the median margin over 1,000 goals drawn
uniformly from reach-v3's goal box. Produced the reward figures in docs/results.md.
"""
import numpy as np
import metaworld.envs.sawyer_reach_v3 as reach

if __name__ == "__main__":
    env = reach.SawyerReachEnvV3()
    goals = np.random.default_rng(0).uniform((-0.1, 0.8, 0.05), (0.1, 0.9, 0.3), size=(1000, 3))
    margins = np.linalg.norm(goals - np.asarray(env.hand_init_pos), axis=1)
    margin = float(np.median(margins))
    print(f"margin |hand_init - goal|: median {margin:.3f} m (min {margins.min():.3f}, max {margins.max():.3f})")
    for d in (0.04, 0.05, 0.055, 0.06, 0.07, 0.08, 0.10, 0.15, 0.20):
        r = 10 * reach.reward_utils.tolerance(d, bounds=(0, 0.05), margin=margin, sigmoid="long_tail")
        print(f"distance {d * 100:4.1f} cm: reward {float(r):.2f}")
