"""How well the task head of a run trained with ``algo.aux_task_coef`` locates the hidden goal.

Plays one trial (sampled actions) on each of N test goals of ML1 with the checkpoint's policy
and prints, per episode, the mean squared error of the head's prediction at the episode's last
step, split into object dims and goal dims (hidden), in the standardised units of the loss
(1.0 = no better than the training goals' mean), and the goal error in cm.

    PYTHONPATH=. python docs/results/ml1_reach/aux_goal_error.py runs/<run>/checkpoints/latest.pt [N]
    PYTHONPATH=. python docs/results/ml1_reach/aux_goal_error.py <checkpoint> 50 --steps 1 100 250 --no-reward

``--split train``: the training goals instead (what the head fits). ``--steps``: also print
the error at these steps of episode 1 (how fast the first episode's rewards place the goal). ``--no-reward``: hold the previous-reward input at its training mean
(the model's input mask zeroes it after standardisation), the only channel through which a
hidden goal can reach the GRU state; what the state still knows of the goal without it comes
from the prior over goals (and, for objects the policy moves, nothing else).
"""

import argparse

import torch

from meta_rl.experiment import load_agent
from meta_rl.rl2 import reward_index
from meta_rl.rollout import TrialCollector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("n", nargs="?", type=int, default=10, help="goals (the first N of the split)")
    parser.add_argument("--steps", type=int, nargs="*", default=[], help="steps of episode 1 to report too")
    parser.add_argument("--split", default="test", choices=("test", "train"), help="whose goals (default: test)")
    parser.add_argument("--no-reward", action="store_true", help="hold the previous-reward input at its mean")
    args = parser.parse_args()
    bench, model, _ = load_agent(args.checkpoint, in_process=True)
    n = args.n
    if args.no_reward:
        model.mask_inputs([reward_index(bench.observation_space, bench.action_space)])
    tasks = bench.all_tasks(args.split)[:n]
    col = TrialCollector(bench.make_env(n), model, bench.observation_space.shape[0], bench.action_space,
                         bench.episode_length, bench.episodes_per_trial, bench.reward_scale,
                         generator=torch.Generator().manual_seed(0))
    batch = col.collect(tasks)
    target = torch.as_tensor(bench.task_features(tasks))
    with torch.no_grad():
        feats, _ = model.encode(batch.inputs, model.initial_state(n))
        pred = model.task_head(feats)  # [T, n, 6]
    scale = torch.as_tensor(bench._rand_scale, dtype=torch.float32)
    H = bench.episode_length
    succ = batch.episode_successes().float().mean(1)

    def row(label: str, t: int, extra: str = "") -> None:
        err = (pred[t] - target).pow(2)
        cm = ((pred[t] - target)[:, 3:] / scale[3:]).norm(dim=-1).mean() * 100
        print(f"{label:>7}  {err[:, :3].mean():15.3f}  {err[:, 3:].mean():13.3f}  {cm:15.1f}{extra}")

    print(f"{args.checkpoint}: {n} {args.split} goals{', previous-reward input at its mean' if args.no_reward else ''}")
    print("episode  object-dims MSE  goal-dims MSE  goal error (cm)  success")
    for t in args.steps:
        row(f"1@{t}", t - 1)
    for e in range(bench.episodes_per_trial):
        row(str(e + 1), (e + 1) * H - 1, f"  {succ[e]:7.2f}")


if __name__ == "__main__":
    main()
