"""Where does RL² lose to Gittins on the bandits? Regret per block of pulls, on the same tasks.

    PYTHONPATH=. python docs/results/paper/bandit_regret_profile.py <checkpoint> [--seeds S] [--block K]

Plays one trial on each of the benchmark's 1000 test tasks per outcome seed (the first S of
``meta_rl.reproduce.evaluation_seeds``, default 2) with the RL² checkpoint (sampled actions, as
the table reports, and the most likely action) and with the Gittins baseline, and prints, per
block of K pulls (default 10), the expected regret: the best arm's success probability minus
that of the arm pulled, summed over the block and averaged over trials. Expected rather than
observed rewards, so the pull outcomes' noise does not enter; the totals are the expected
reward per trial. (Gittins plays through the baselines' own loop, as in ``meta_rl.reproduce``;
RL² plays all tasks in one batch, so its action noise differs from the table's evaluation and
its total may differ by a few hundredths.)

Also prints the mean log-probability of RL²'s sampled actions per block (how random it plays).
"""
import argparse

import numpy as np
import torch

from meta_rl.baselines import bandit as bandit_baselines
from meta_rl.envs.bandit import BernoulliBandit
from meta_rl.experiment import load_agent
from meta_rl.reproduce import evaluation_seeds
from meta_rl.rollout import play_trials


def rl2_arms(bench, model, p: np.ndarray, seed: int, mode: bool) -> tuple[np.ndarray, np.ndarray]:
    """Arms pulled ``[n, N]`` and their log-probabilities, one trial per task."""
    batch = play_trials(bench, model, p, seed, explore_episodes=0 if mode else None)
    return batch.actions.numpy().astype(int), batch.log_probs.numpy()


class RecordingGittins(bandit_baselines.Gittins):
    """Gittins, keeping the arms it pulls (``pulled[t]``, one per task)."""

    def act(self, t: int) -> np.ndarray:
        arms = super().act(t)
        self.pulled.append(arms)
        return arms


def gittins_arms(bench, p: np.ndarray, seed: int) -> np.ndarray:
    """Arms Gittins pulls ``[n, N]``, played by the baselines' own loop (the table's streams)."""
    policy = RecordingGittins()
    policy.pulled = []
    bandit_baselines.run_trials(policy, bench, p, seed)
    return np.array(policy.pulled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--seeds", type=int, default=2, help="outcome seeds (trials per task)")
    parser.add_argument("--block", type=int, default=10, help="pulls per row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench, model, state = load_agent(args.checkpoint, in_process=True)
    if not isinstance(bench, BernoulliBandit):
        parser.error(f"{args.checkpoint} is a run on env {bench.name}, not a bandit")
    p = np.stack(bench.all_tasks("test"))
    n, rows = bench.pulls, np.arange(len(p))
    sampled, mode, gittins, logp = [], [], [], []
    for s in evaluation_seeds(args.seeds):
        arms, lp = rl2_arms(bench, model, p, s, mode=False)
        sampled.append(p[rows, arms])
        logp.append(lp)
        mode.append(p[rows, rl2_arms(bench, model, p, s, mode=True)[0]])
        gittins.append(p[rows, gittins_arms(bench, p, s)])
    best = np.tile(p.max(1), args.seeds)  # per trial, in the order played
    regret = {k: best - np.concatenate(v, 1) for k, v in
              (("RL² sampled", sampled), ("RL² most likely", mode), ("Gittins", gittins))}  # [n, trials]
    logp = np.concatenate(logp, 1)
    print(f"{args.checkpoint}: {state['env_steps']:,} env steps; k={p.shape[1]}, n={n}; "
          f"{regret['Gittins'].shape[1]} trials ({args.seeds} per test task)")
    print("expected reward per trial: " + ", ".join(f"{k} {n * best.mean() - r.sum(0).mean():.2f}"
                                                  for k, r in regret.items()) + f"; best arm {n * best.mean():.2f}")
    print(f"{'pulls':>9} " + " ".join(f"{k:>16}" for k in regret) + f" {'RL² - Gittins':>14} {'RL² log-prob':>13}")
    for a in range(0, n, args.block):
        b = min(n, a + args.block)
        r = {k: v[a:b].sum(0).mean() for k, v in regret.items()}
        print(f"{a + 1:>4}-{b:<4} " + " ".join(f"{x:>16.3f}" for x in r.values())
              + f" {r['RL² sampled'] - r['Gittins']:>+14.3f} {logp[a:b].mean():>13.3f}")


if __name__ == "__main__":
    main()
