"""How well does an RL² state predict the rewards of a tabular-MDP trial, next to Bayes?

    PYTHONPATH=. python docs/results/paper/mdp_reward_prediction.py <checkpoint> [--seed S]

For a checkpoint trained with ``algo.aux_reward_coef > 0`` on ``env=tabular_mdp``: plays one
trial (sampled actions) on each of the benchmark's 1000 test tasks and prints, per episode of
the trial, the mean squared error against the observed reward of each step of:

- ``prior``: the prior mean reward, 1 (mean rewards ~ Normal(1, 1), observed ~ Normal(mean, 1));
- ``Bayes``: the posterior predictive mean for the state and action taken given the rewards that
  pair gave earlier in the trial, (1 + sum of k rewards) / (1 + k) - what the reward head's loss
  is minimised by (its expected error is 1 + 1 / (1 + k));
- ``head``: the checkpoint's reward head (what ``losses/aux_reward_loss`` measures in training);
- ``true mean``: the task's hidden mean reward of the pair (the noise floor, 1).

It also prints the fraction of steps that are a pair's first visit in the trial (where Bayes can
do no better than the prior) and the head's squared distance to the Bayes prediction.
"""
import argparse

import numpy as np
import torch

from meta_rl.envs.tabular_mdp import RandomTabularMDP
from meta_rl.experiment import load_agent
from meta_rl.rollout import play_trials

PRIOR_MEAN = 1.0  # mean rewards ~ Normal(1, 1); observed reward ~ Normal(mean, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="outcome seed of the trials")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench, model, _ = load_agent(args.checkpoint, in_process=True)
    if not isinstance(bench, RandomTabularMDP):
        parser.error(f"{args.checkpoint} is a run on env {bench.name}, not a tabular MDP")
    if getattr(model, "reward_head", None) is None:
        parser.error(f"{args.checkpoint} has no reward head: train with algo.aux_reward_coef > 0")
    tasks = bench.all_tasks("test")
    batch = play_trials(bench, model, tasks, args.seed)
    with torch.no_grad():
        feats, _ = model.encode(batch.inputs, model.initial_state(len(tasks)))
        head = model.predict_reward(feats, batch.actions).numpy() / bench.reward_scale
    obs_dim = bench.observation_space.shape[0]
    states = batch.inputs[..., :obs_dim].argmax(-1).numpy()  # [T, B]: the state each step acts in
    actions, rewards = batch.actions.numpy(), batch.rewards.numpy()
    T, B = rewards.shape
    means = np.stack([t.reward_means for t in tasks])  # [B, S, A]
    cols = np.arange(B)
    true_mean = means[cols, states, actions]
    sums, counts = np.zeros_like(means), np.zeros_like(means)
    bayes, first = np.empty((T, B)), np.empty((T, B), bool)
    for t in range(T):
        k = counts[cols, states[t], actions[t]]
        bayes[t] = (PRIOR_MEAN + sums[cols, states[t], actions[t]]) / (1.0 + k)
        first[t] = k == 0
        sums[cols, states[t], actions[t]] += rewards[t]
        counts[cols, states[t], actions[t]] += 1
    E = bench.episodes_per_trial
    rows = {"prior": np.full((T, B), PRIOR_MEAN), "Bayes": bayes, "head": head, "true mean": true_mean}
    print(f"{args.checkpoint}: {B} test tasks, outcome seed {args.seed}; squared error against the observed reward")
    print(f"{'episode':>12} " + " ".join(f"{e + 1:>6}" for e in range(E)) + f" {'trial':>7}")
    for name, pred in rows.items():
        err = ((pred - rewards) ** 2).reshape(E, -1, B)
        print(f"{name:>12} " + " ".join(f"{v:6.3f}" for v in err.mean((1, 2))) + f" {err.mean():7.3f}")
    gap = ((head - bayes) ** 2).reshape(E, -1, B)
    print(f"{'head-Bayes²':>12} " + " ".join(f"{v:6.3f}" for v in gap.mean((1, 2))) + f" {gap.mean():7.3f}")
    fv = first.reshape(E, -1, B)
    print(f"{'first visits':>12} " + " ".join(f"{v:6.2f}" for v in fv.mean((1, 2))) + f" {fv.mean():7.2f}")
    print(f"return per trial {rewards.sum(0).mean():.1f}")


if __name__ == "__main__":
    main()
