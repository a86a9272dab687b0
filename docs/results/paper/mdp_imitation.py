"""Can the RL² network represent a good tabular-MDP explorer at all? Imitation check.

RL² stays at ~120 per trial on the n = 10 random-MDP row however it is trained, while the
certainty-equivalence planner (``greedy`` of meta_rl.baselines.tabular) scores ~155 on the
same tasks with the same information. This script separates *representation* from the *RL
signal*: it trains the same network on the same inputs (one-hot state, previous action,
previous reward, done flag; meta_rl.rl2.RL2Inputs) to imitate the planner, by DAgger
(Ross et al. 2011): round 0 follows the planner, every later round follows the network's own
sampled actions while the planner labels every step of that history; the network is trained
by cross-entropy on all labels gathered so far (the most recent ``--keep`` rounds). If the
imitating network scores near the planner, the network can represent such a policy and
the limit is what PPO extracts from the reward; if it stays near 120, the network is the limit.

    PYTHONPATH=. python docs/results/paper/mdp_imitation.py --hidden 128 --head linear
    PYTHONPATH=. python docs/results/paper/mdp_imitation.py --hidden 128 --head mlp

Prints, per round: cross-entropy, agreement with the planner, and the mean total reward
per trial of the rollout (the network's sampled actions on fresh training tasks from round 1
on); at the end, the network's and the planner's score on the benchmark's 1000 fixed test
tasks.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from meta_rl.baselines.tabular import EpsilonGreedy, run_trials, tasks_to_arrays
from meta_rl.envs.tabular_mdp import RandomTabularMDP
from meta_rl.models.gru import GRUActorCritic
from meta_rl.rl2 import RL2Inputs, input_dim


def build_model(bench: RandomTabularMDP, hidden: int, head: str, prev_obs: bool) -> GRUActorCritic:
    dim = input_dim(bench.observation_space, bench.action_space) + (bench.states if prev_obs else 0)
    model = GRUActorCritic(dim, bench.action_space, hidden)
    if head == "mlp":
        model.policy = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, bench.actions))
    return model


@torch.no_grad()
def play(model, bench, tasks, seed: int, follow: str, generator: torch.Generator, prev_obs: bool):
    """One trial per task. ``follow``: "teacher" (planner's actions), "sample" or "argmax"
    (the network's). Returns inputs ``[T, B, D]``, planner labels ``[T, B]``, totals ``[B]``
    and the agreement a perfect imitator would reach (the planner breaks exact ties at random).
    With ``prev_obs`` the input also carries the previous step's observation (the state in
    which the previous action was taken; zeros at the start of the trial)."""
    batch = len(tasks)
    env_seed, teacher_seed = np.random.SeedSequence(seed).generate_state(2)
    env = bench.make_env(batch, seed=int(env_seed))
    env.set_tasks(tasks)
    teacher = EpsilonGreedy(0.0)
    teacher.start(*tasks_to_arrays(tasks), bench.episode_length, np.random.default_rng(int(teacher_seed)))
    inputs = RL2Inputs(batch, bench.states, bench.action_space, 1.0)
    inputs.start_trial()
    steps = bench.episodes_per_trial * bench.episode_length
    extra = bench.states if prev_obs else 0
    xs = np.zeros((steps, batch, inputs.dim + extra), np.float32)
    labels = np.zeros((steps, batch), np.int64)
    ceiling = np.zeros((steps, batch))  # 1 / number of actions tied for the planner's best
    total = np.zeros(batch)
    h = model.initial_state(batch)
    t = 0
    for _ in range(bench.episodes_per_trial):
        obs = env.reset()
        state = obs.argmax(axis=1)
        teacher.begin_episode()
        for step in range(bench.episode_length):
            xs[t, :, : inputs.dim] = inputs.build(obs)
            if prev_obs and t > 0:
                xs[t, :, inputs.dim :] = xs[t - 1, :, : bench.states]
            labels[t] = teacher.act(state, step)
            q = teacher.q[step][np.arange(batch), state]
            ceiling[t] = 1.0 / (q >= q.max(axis=-1, keepdims=True)).sum(axis=-1)
            out, _, h = model(torch.from_numpy(xs[t])[None], h)
            if follow == "teacher":
                action = labels[t]
            elif follow == "argmax":
                action = out[0].argmax(-1).numpy()
            else:
                action = torch.multinomial(torch.softmax(out[0], -1), 1, generator=generator)[:, 0].numpy()
            obs, reward, _ = env.step(action)
            next_state = obs.argmax(axis=1)
            teacher.update(state, action, reward, next_state)
            inputs.record(action, reward, step == bench.episode_length - 1)
            total += reward
            state = next_state
            t += 1
    return xs, labels, total, float(ceiling.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--head", choices=("linear", "mlp"), default="linear")
    p.add_argument("--prev-obs", action="store_true", help="add the previous observation to the input")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--trials", type=int, default=1000, help="trials per round")
    p.add_argument("--keep", type=int, default=10, help="rounds of data trained on")
    p.add_argument("--epochs", type=int, default=2, help="passes over the kept data per round")
    p.add_argument("--minibatch", type=int, default=250, help="trials per gradient step")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--save", default=None, help="save the network's weights (a state dict) here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    bench = RandomTabularMDP(episodes=args.episodes)
    model = build_model(bench, args.hidden, args.head, args.prev_obs)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    data: list[tuple[np.ndarray, np.ndarray]] = []
    log = []
    start = time.time()
    for rnd in range(args.rounds):
        tasks = bench.sample_tasks("train", args.trials, rng)
        follow = "teacher" if rnd == 0 else "sample"
        xs, labels, total, ceiling = play(model, bench, tasks, int(rng.integers(2**31)), follow, gen, args.prev_obs)
        data = (data + [(xs, labels)])[-args.keep :]
        x_all = torch.from_numpy(np.concatenate([d[0] for d in data], axis=1))
        y_all = torch.from_numpy(np.concatenate([d[1] for d in data], axis=1))
        n = x_all.shape[1]
        losses, agree = [], []
        for _ in range(args.epochs):
            for idx in torch.randperm(n).split(args.minibatch):
                out, _, _ = model(x_all[:, idx], model.initial_state(len(idx)))
                loss = nn.functional.cross_entropy(out.reshape(-1, bench.actions), y_all[:, idx].reshape(-1))
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                losses.append(loss.item())
                agree.append((out.argmax(-1) == y_all[:, idx]).float().mean().item())
        row = {
            "round": rnd,
            "followed": follow,
            "rollout_return": float(total.mean()),
            "cross_entropy": float(np.mean(losses[-10:])),
            "agreement": float(np.mean(agree[-10:])),
            "agreement_ceiling": ceiling,
            "wall_s": round(time.time() - start, 1),
        }
        log.append(row)
        print(
            f"round {rnd:3d} ({follow:7s}) rollout return {row['rollout_return']:6.1f}  "
            f"CE {row['cross_entropy']:.3f}  agreement {row['agreement']:.3f} (ceiling {ceiling:.3f})  "
            f"{row['wall_s']:.0f} s",
            flush=True,
        )
    test = bench.all_tasks("test")
    result = {"args": vars(args), "rounds": log}
    for follow in ("sample", "argmax"):
        scores = np.concatenate([play(model, bench, test, 10 + k, follow, gen, args.prev_obs)[2] for k in range(2)])
        result[f"network_{follow}"] = float(scores.mean())
    teacher = np.concatenate([run_trials(EpsilonGreedy(0.0), bench, test, 10 + k) for k in range(2)])
    result["planner"] = float(teacher.mean())
    print(
        f"test tasks (1000 x 2 outcome seeds): network sampled {result['network_sample']:.1f}, "
        f"argmax {result['network_argmax']:.1f}; planner (greedy) {result['planner']:.1f}"
    )
    if args.save:
        torch.save(model.state_dict(), args.save)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
