"""Can a GRU read ML1 reach's hidden goal out of the RL² inputs at all? A supervised check.

Plays trials of ``--episodes`` episodes with a checkpoint's policy (sampled actions) on the 50
training goals (``--rounds`` trials each) and on the 50 test goals (one trial each), then
trains a fresh GRU (the policy's width) with Adam to regress the standardised goal position
from the RL² input sequence at every step, and prints the test goals' error by step of the
trial (1.0 = no better than the training goals' mean; cm alongside). ``--mask-object`` zeroes
the object's position in both observation frames, the one input that tells the 50 training
goals apart without the reward (Meta-World randomises object and goal together per task), so
that the GRU cannot memorise goal by object.

    PYTHONPATH=. python docs/results/ml1_reach/goal_inference_supervised.py \
        runs/<run>/checkpoints/latest.pt [--mask-object] [--goal-sets 2 3 4 5] [--chunk 250] \
        [--stream 20 10 4 --lr 5e-4 --clip 0.5]
"""

import argparse
import os
import time

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from meta_rl import checkpoint
from meta_rl.envs.metaworld import _check_disjoint
from meta_rl.experiment import build_benchmark, build_model
from meta_rl.rollout import TrialCollector

OBJECT_DIMS = [4, 5, 6, 22, 23, 24]  # object position in the current and the previous frame


def collect(bench, model, tasks, seed):
    """One trial per task; returns the RL² inputs, the standardised goals and the successes."""
    col = TrialCollector(bench.make_env(len(tasks)), model, 39, bench.action_space, bench.episode_length,
                         bench.episodes_per_trial, bench.reward_scale,
                         generator=torch.Generator().manual_seed(seed))
    batch = col.collect(tasks)
    out = (batch.inputs.clone(), torch.as_tensor(bench.task_features(tasks))[:, 3:6],
           batch.successes.clone())
    col.env.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--goal-sets", type=int, nargs="*",
                   help="train on one trial of each of the 50 training goals of these benchmark seeds "
                        "(distinct goals; not the run's seed + 1, whose training goals are its test goals) instead of "
                        "--rounds trials of the run's own 50")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=25)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--chunk", type=int, help="back-propagate within chunks of this many steps only "
                   "(the hidden state carries over; PPO's algo.chunk_length)")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (PPO's max_grad_norm: 0.5)")
    p.add_argument("--stream", type=int, nargs=3, metavar=("TRIALS", "EPOCHS", "MINIBATCHES"),
                   help="PPO's schedule instead of --epochs/--batch: batches of TRIALS trials in turn, each seen "
                        "for EPOCHS epochs of MINIBATCHES minibatches and then left (the loss rides along "
                        "PPO's update so: 20 trials, 10 epochs, 4 minibatches); --epochs then counts passes "
                        "over all trials")
    p.add_argument("--stored-hidden", action="store_true",
                   help="with --stream and --chunk: each chunk starts from the hidden state computed once "
                        "when its batch comes up, before that batch's epochs (PPO replays chunks from the "
                        "states stored during the rollout), instead of the one the current weights carry over")
    p.add_argument("--mask-object", action="store_true")
    p.add_argument("--data", help="cache file for the collected trials (.pt)")
    args = p.parse_args()
    torch.manual_seed(0)

    state = checkpoint.load(args.checkpoint)
    cfg = OmegaConf.create(state["config"])
    cfg.env.episodes_per_trial = args.episodes
    bench = build_benchmark(cfg)
    model = build_model(cfg, bench)
    model.load_state_dict(state["model"], strict=False)
    scale = torch.as_tensor(bench._rand_scale[3:6], dtype=torch.float32)

    if args.data and os.path.exists(args.data):
        xs, ys, xt, yt = torch.load(args.data)
    else:
        t0 = time.time()
        if args.goal_sets:
            parts = []
            for r, s in enumerate(args.goal_sets):
                other = build_benchmark(OmegaConf.merge(cfg, {"env": {"benchmark_seed": s}}))
                tasks = other.all_tasks("train")
                _check_disjoint(tasks, bench.all_tasks("test"))  # seed + 1's training goals are our test goals
                inputs, _, _ = collect(other, model, tasks, seed=r)
                parts.append((inputs, torch.as_tensor(bench.task_features(tasks))[:, 3:6]))
        else:
            parts = [collect(bench, model, bench.all_tasks("train"), seed=r) for r in range(args.rounds)]
        xs = torch.cat([q[0] for q in parts], 1)
        ys = torch.cat([q[1] for q in parts], 0)
        xt, yt, st = collect(bench, model, bench.all_tasks("test"), seed=1000)
        print(f"collected {xs.shape[1]} training and {xt.shape[1]} test trials of {xs.shape[0]} steps "
              f"in {time.time() - t0:.0f} s; test success by episode "
              f"{st.view(args.episodes, -1, st.shape[1]).any(1).float().mean(1).tolist()}")
        if args.data:
            torch.save((xs, ys, xt, yt), args.data)

    mask = torch.ones(xs.shape[-1])
    if args.mask_object:
        mask[OBJECT_DIMS] = 0
    mean, std = xs.mean((0, 1)), xs.std((0, 1)).clamp_min(1e-3)
    norm = lambda x: ((x - mean) / std).clamp(-10, 10) * mask  # noqa: E731
    xs, xt = norm(xs), norm(xt)

    H = cfg.model.hidden
    gru, head = nn.GRU(xs.shape[-1], H), nn.Linear(H, 3)
    opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=args.lr)
    T, N = xs.shape[:2]
    L = bench.episode_length
    marks = [0, 9, 49, 99, 249, L - 1] + [e * L + L - 1 for e in range(1, args.episodes)]

    def test_error():
        with torch.no_grad():
            diff = head(gru(xt)[0]) - yt  # [T, n, 3]
        return diff.pow(2).mean((1, 2)), (diff / scale).norm(dim=-1).mean(1) * 100

    chunk = args.chunk or T
    stored = torch.zeros(T // chunk, N, H)  # hidden state at each chunk start (--stored-hidden)

    def step(idx):
        x, h, preds = xs[:, idx], None, []
        for c in range(0, T, chunk):  # truncated BPTT: no gradient across chunk starts
            if args.stored_hidden:
                h = stored[c // chunk, idx].unsqueeze(0)
            out, h = gru(x[c:c + chunk], h)
            h = h.detach()
            preds.append(head(out))
        loss = (torch.cat(preds) - ys[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_([*gru.parameters(), *head.parameters()], args.clip)
        opt.step()
        return loss.item()

    def report(label, train_mse):
        err, cm = test_error()
        print(f"{label} ({time.time() - t0:5.0f} s, {steps:4d} steps) train MSE {train_mse:.3f}  test MSE at steps "
              + " ".join(f"{m + 1}:{err[m]:.2f}" for m in marks)
              + "  cm " + " ".join(f"{cm[m]:.1f}" for m in marks), flush=True)

    t0, steps = time.time(), 0
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(N)
        if args.stream:  # PPO: one batch of trials at a time, several epochs over it, then the next
            size, epochs, minibatches = args.stream
            for b in range(0, N, size):
                batch, first, total = perm[b:b + size], 0.0, 0.0
                mb = max(1, len(batch) // minibatches)
                if args.stored_hidden:
                    with torch.no_grad():
                        states = gru(xs[:, batch])[0]  # [T, n, H]: the state after each step
                    stored[1:, batch] = states[chunk - 1:T - 1:chunk]
                for e in range(epochs):
                    order = batch[torch.randperm(len(batch))]
                    for i in range(0, len(batch), mb):
                        loss = step(order[i:i + mb])
                        steps += 1
                        total += loss * len(order[i:i + mb])
                        first += loss * len(order[i:i + mb]) if e == 0 else 0.0
                if (b // size + 1) % 2 == 0:  # first epoch = the batch's trials not yet trained on
                    report(f"pass {epoch} batch {b // size + 1:3d} (first-epoch MSE {first / len(batch):.3f})",
                           total / (epochs * len(batch)))
            continue
        total = 0.0
        for i in range(0, N, args.batch):
            idx = perm[i:i + args.batch]
            total += step(idx) * len(idx)
            steps += 1
        if epoch % 10 == 0 or epoch == args.epochs:
            report(f"epoch {epoch:4d}", total / N)


if __name__ == "__main__":
    main()
