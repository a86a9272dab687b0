"""Throughput benchmark: how close collection and training get to the simulator's speed.

    python -m meta_rl.bench                          # default ML10 settings, writes bench.json
    python -m meta_rl.bench --quick                  # test-sized (seconds)
    python -m meta_rl.bench --iterations 3 env.num_workers=2 algo.epochs=5   # + any train.py override

Measured in one run, on one machine:

(a) raw: Meta-World ML10 stepped with random actions in one process through
    ``gymnasium.make_vec("Meta-World/ML10-train", vector_strategy="sync")`` — the reference;
(a2) the env each of our env workers steps, in one process, on the same ten classes (two envs
    each, other goals than (a)'s) with random actions: Meta-World's envs with the bit-identical
    faster pieces of ``meta_rl.envs.metaworld_fast``;
(b) collection: our rollout (env stepping + policy inference + buffer writes, all in the env
    workers, which run the policy on their own envs), env-steps/s;
(c) training: whole iterations (collection + PPO update), env-steps/s;
(d) the update's share of iteration time;
(e) peak RSS of the main process and of the env workers, and RSS after each iteration
    (memory must not grow with iterations);
(f) a bare torch forward+backward of the same network on the same shapes, against our
    update's time per sample-epoch, with the achieved GFLOP/s;
(g) meta-test evaluation rate: one trial of the full protocol (adaptation episodes with sampled
    actions, then evaluation episodes with the mean action) on goals of every test class;
(g2) the same on goals of the training classes: the evaluation path on collection's env mix (the
    test classes step slower than the training classes, which (g) includes);
(g3) the test goals again with sampled actions in every episode: the same per-step work as
    collection. (The mean action of a barely trained policy is close to 0: its hand hardly moves
    in the evaluation episodes of (g) and (g2), which MuJoCo then steps faster than it would a
    trained policy's.)

The evaluations are timed between consecutive timed iterations (after an untimed one on the same
goals, as (b) is timed after a warm-up iteration), and each is compared with the mean collection
rate of the iterations just before and just after it: the machine's speed drifts over minutes, so
rates measured at different times do not compare, and a drift within the bracket cancels to first
order. (g)-(g3)'s ratio to collection is the median of these ratios (``--iterations`` n gives n - 1).

Every rate is also printed as a ratio to (a).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time

import numpy as np
import torch


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kB on Linux


def _workers_peak_mb(env) -> float:
    """Largest peak RSS (``VmHWM``) of ``env``'s worker processes (0 for an in-process env).
    The workers are children of the forkserver, not of this process, so ``RUSAGE_CHILDREN``
    does not see them."""
    peak = 0.0
    for p in getattr(env, "_procs", []):
        try:
            with open(f"/proc/{p.pid}/status") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        except (OSError, StopIteration, ValueError):
            continue
        peak = max(peak, kb / 1024)
    return peak


def raw_stepping_rate(num_envs: int, steps: int, episode_length: int, seed: int = 0) -> float:
    """(a) Meta-World's own sync vector env, one process, random actions; env-steps/s."""
    import gymnasium as gym
    import metaworld  # noqa: F401  (registers the Meta-World envs)

    envs = gym.make_vec("Meta-World/ML10-train", vector_strategy="sync", meta_batch_size=num_envs, seed=seed,
                        max_episode_steps=episode_length)
    envs.call("sample_tasks")
    envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps // num_envs + 1, num_envs, 4))
    for a in actions[:5]:  # warm-up
        envs.step(a)
    t0 = time.perf_counter()
    n = 0
    for a in actions:
        envs.step(a)
        n += num_envs
    rate = n / (time.perf_counter() - t0)
    envs.close()
    return rate


def env_stepping_rate(num_envs: int, steps: int, episode_length: int, seed: int = 0) -> float:
    """(a2) the env an env worker steps (``MetaWorldTrialEnv``: Meta-World's classes with the
    bit-identical faster pieces of ``meta_rl.envs.metaworld_fast``) on ML10-train tasks, one
    process, random actions, a reset every ``episode_length`` steps; env-steps/s."""
    from meta_rl.envs.metaworld import MetaWorldBenchmark, MetaWorldSlice

    ml10 = MetaWorldBenchmark("ML10", meta_batch_size=10, benchmark_seed=seed)
    env = MetaWorldSlice(tuple(ml10.class_names("train")))(num_envs)
    env.set_tasks(ml10.sample_tasks("train", -(-num_envs // 10) * 10, np.random.default_rng(seed))[:num_envs])
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps // num_envs + 1, num_envs, 4)).astype(np.float32)
    env.reset()
    for a in actions[:5]:  # warm-up
        env.step(a)
    t0 = time.perf_counter()
    n = 0
    for i, a in enumerate(actions, start=5):
        if i % episode_length == 0:
            env.reset()
        env.step(a)
        n += num_envs
    rate = n / (time.perf_counter() - t0)
    env.close()
    return rate


def gru_flops_per_sample(input_dim: int, hidden: int, action_dim: int, gates: int = 3) -> float:
    """Multiply-adds ×2 of one recurrent step (3 gate blocks for a GRU, 4 for an LSTM) + heads,
    forward; backward counted as 2× forward."""
    fwd = 2 * gates * (input_dim * hidden + hidden * hidden) + 2 * hidden * (action_dim + 1)
    return 3.0 * fwd


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward_backward(model, seq_len: int, batch: int, input_dim: int, repeats: int) -> float:
    """(f) seconds per sample of a bare forward+backward of ``model`` on [seq_len, batch, input_dim]."""
    device = model.value.weight.device
    x = torch.randn(seq_len, batch, input_dim, device=device)
    h0 = model.initial_state(batch)
    for i in range(repeats + 1):
        if i == 1:
            _sync(device)
            t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        out, value, _ = model(x, h0)
        (out.square().mean() + value.square().mean()).backward()
    _sync(device)
    model.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / (repeats * seq_len * batch)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="test-sized run (short episodes, few steps)")
    parser.add_argument("--iterations", type=int, default=3,
                        help="training iterations to time (>= 2: the evaluations are timed between them)")
    parser.add_argument("--out", default="bench.json")
    parser.add_argument("overrides", nargs="*", help="train.py config overrides")
    args = parser.parse_args(argv)
    if args.iterations < 2:
        parser.error(f"--iterations {args.iterations}: needs at least 2 (the evaluations are timed between iterations)")

    from hydra import compose, initialize_config_dir

    from meta_rl.config import register_configs, validate
    from meta_rl.evaluation import MetaEvaluator, evaluation_tasks
    from meta_rl.experiment import build_algo, build_benchmark, build_model, seed_everything
    from meta_rl.trainer import Trainer, rss_mb

    quick = ["env.episodes_per_trial=2", "env.episode_length=50", "algo.chunk_length=50", "algo.epochs=2",
             "model.hidden=64", "eval.adaptation_episodes=1", "eval.evaluation_episodes=1"] if args.quick else []
    register_configs()
    conf = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        cfg = compose("train", overrides=["run_dir=/tmp/meta-rl-bench", "progress=false", *quick, *args.overrides])
    validate(cfg)
    seed_everything(cfg.seed)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    cores = len(os.sched_getaffinity(0))

    bench = build_benchmark(cfg)
    H, E, B = bench.episode_length, bench.episodes_per_trial, bench.meta_batch_size
    raw_steps = 2_000 if args.quick else 20_000
    print(f"meta-rl throughput benchmark: {bench.name}, meta-batch {B}, {E}x{H} steps per trial, "
          f"{cores} cores, torch threads {torch.get_num_threads()}", flush=True)
    raw = raw_stepping_rate(B, raw_steps, H)
    print(f"(a) raw Meta-World stepping, 1 process: {raw:,.0f} steps/s", flush=True)
    ours_env = env_stepping_rate(B, raw_steps, H)
    print(f"(a2) our Meta-World env, 1 process: {ours_env:,.0f} steps/s", flush=True)

    model = build_model(cfg, bench)
    algo = build_algo(cfg, model, bench)

    class NullLogger:
        def log(self, *a, **k):
            pass

    trainer = Trainer(bench, model, algo, NullLogger(), run_dir="/tmp/meta-rl-bench", total_env_steps=10**12,
                      checkpoint_every=10**9, seed=cfg.seed, config={}, progress=False)
    workers = getattr(trainer.env, "num_workers", 0)
    trainer.train_iteration()  # warm-up: builds every env instance, first allocations

    # (g)-(g3) meta-test evaluation, timed between consecutive timed iterations. The untimed first calls
    # build the evaluation workers' env instances and policy copies (once per run in training,
    # where the evaluator is reused at every evaluation).
    evaluator = MetaEvaluator(bench, model, cfg.eval.adaptation_episodes, cfg.eval.evaluation_episodes,
                              num_envs=min(cfg.eval.num_envs, B))
    n = evaluator.env.num_envs
    # Goals of every class, as the full protocol evaluates (the first goals of one class alone
    # made the rate depend on that class's step cost).
    goals = {split: evaluation_tasks(bench, split, -(-n // len(bench.class_names(split))))[:n]
             for split in ("test", "train")}
    evaluations = {"test": ("test", True), "train": ("train", True), "test_sampled": ("test", False)}
    for split in goals:
        evaluator.evaluate(goals[split], seed=0)

    def eval_rate(split: str, deterministic: bool) -> float:
        t0 = time.perf_counter()
        r = evaluator.evaluate(goals[split], seed=1, deterministic=deterministic)
        return r["num_env_steps"] / (time.perf_counter() - t0)

    gc.collect()
    collect_rates, iter_rates, update_shares, update_times, rss = [], [], [], [], []
    eval_rates: dict[str, list[float]] = {k: [] for k in evaluations}
    for i in range(args.iterations):
        t0 = time.perf_counter()
        m = trainer.train_iteration()
        dt = time.perf_counter() - t0
        steps = B * E * H
        collect_rates.append(m["charts/collect_SPS"])
        iter_rates.append(steps / dt)
        update_times.append(m["charts/update_time"])
        update_shares.append(m["charts/update_time"] / dt)
        gc.collect()
        rss.append(rss_mb())
        print(f"    iteration {i + 1}: {steps / dt:,.0f} steps/s end-to-end, collection "
              f"{m['charts/collect_SPS']:,.0f} steps/s, update {m['charts/update_time']:.1f} s, RSS {rss[-1]:.0f} MB",
              flush=True)
        if i + 1 < args.iterations:
            for key, (split, deterministic) in evaluations.items():
                eval_rates[key].append(eval_rate(split, deterministic))
            print("    evaluation " + ", ".join(f"{key} {r[-1]:,.0f}" for key, r in eval_rates.items()) + " steps/s",
                  flush=True)
    samples = B * E * H
    ours_per_sample_epoch = float(np.median(update_times)) / (samples * algo.epochs)
    # (f) bare forward+backward on the same shapes as one minibatch of the update
    chunk = min(algo.chunk_length, E * H)
    n_seq = samples // chunk
    mb = max(1, n_seq // algo.num_minibatches)
    input_dim = model.gru.input_size
    bare = bare_forward_backward(model, chunk, mb, input_dim, repeats=2 if args.quick else 3)
    flops = gru_flops_per_sample(input_dim, model.hidden, model.action_dim, gates=4 if model.lstm else 3)

    worker_peak = max(_workers_peak_mb(trainer.env), _workers_peak_mb(evaluator.env))
    evaluator.close()
    trainer.env.close()

    collect = float(np.median(collect_rates))
    train_rate = float(np.median(iter_rates))
    # Each evaluation against the mean collection rate of the iterations just before and after it.
    bracket = [(a + b) / 2 for a, b in zip(collect_rates[:-1], collect_rates[1:])]
    evals = {key: (float(np.median(r)), float(np.median(np.divide(r, bracket)))) for key, r in eval_rates.items()}
    (eval_rate, eval_ratio), (eval_train_rate, eval_train_ratio), (eval_sampled_rate, eval_sampled_ratio) = (
        evals["test"], evals["train"], evals["test_sampled"])
    result = {
        "benchmark": bench.name, "meta_batch_size": B, "episodes_per_trial": E, "episode_length": H,
        "hidden": model.hidden, "epochs": algo.epochs, "num_minibatches": algo.num_minibatches,
        "chunk_length": chunk, "iterations": args.iterations, "quick": args.quick,
        "cores": cores, "env_workers": workers, "torch_threads": torch.get_num_threads(),
        "raw_steps_per_s": raw,
        "env_steps_per_s": ours_env, "env_ratio": ours_env / raw,
        "collect_steps_per_s": collect, "collect_ratio": collect / raw,
        "train_steps_per_s": train_rate, "train_ratio": train_rate / raw,
        "update_share": float(np.median(update_shares)),
        "update_s_per_iteration": float(np.median(update_times)),
        "update_us_per_sample_epoch": ours_per_sample_epoch * 1e6,
        "bare_fwd_bwd_us_per_sample": bare * 1e6,
        "update_vs_bare": ours_per_sample_epoch / bare,
        "update_gflops": flops / ours_per_sample_epoch / 1e9,
        "bare_gflops": flops / bare / 1e9,
        "eval_steps_per_s": eval_rate, "eval_vs_collect": eval_ratio,
        "eval_train_steps_per_s": eval_train_rate, "eval_train_vs_collect": eval_train_ratio,
        "eval_sampled_steps_per_s": eval_sampled_rate, "eval_sampled_vs_collect": eval_sampled_ratio,
        "collect_steps_per_s_by_iteration": collect_rates,
        "eval_steps_per_s_between_iterations": eval_rates["test"],
        "eval_train_steps_per_s_between_iterations": eval_rates["train"],
        "eval_sampled_steps_per_s_between_iterations": eval_rates["test_sampled"],
        "peak_rss_main_mb": _peak_mb(resource.RUSAGE_SELF),
        "peak_rss_worker_mb": worker_peak,
        "rss_after_iteration_mb": rss,
        "rss_growth_mb": rss[-1] - rss[0],
    }
    lines = [
        f"(a) raw stepping (1 process)      {raw:10,.0f} steps/s   1.00x",
        f"(a2) our env (1 process)         {ours_env:10,.0f} steps/s   {ours_env / raw:.2f}x",
        f"(b) collection ({workers} env workers)   {collect:10,.0f} steps/s   {collect / raw:.2f}x",
        f"(c) training end-to-end           {train_rate:10,.0f} steps/s   {train_rate / raw:.2f}x",
        f"(d) update share of iteration     {result['update_share']:10.1%}",
        f"(e) peak RSS main / env workers   {result['peak_rss_main_mb']:7.0f} MB / {result['peak_rss_worker_mb']:.0f} MB"
        f"   (growth over iterations {result['rss_growth_mb']:+.0f} MB)",
        f"(f) update {ours_per_sample_epoch * 1e6:.1f} us/sample-epoch vs bare fwd+bwd {bare * 1e6:.1f} us "
        f"= {result['update_vs_bare']:.2f}x   ({result['update_gflops']:.1f} vs {result['bare_gflops']:.1f} GFLOP/s)",
        f"(g) meta-test evaluation          {eval_rate:10,.0f} steps/s   {eval_rate / raw:.2f}x "
        f"({eval_ratio:.2f}x collection)",
        f"(g2) the same on training goals   {eval_train_rate:10,.0f} steps/s   {eval_train_rate / raw:.2f}x "
        f"({eval_train_ratio:.2f}x collection)",
        f"(g3) test goals, sampled actions  {eval_sampled_rate:10,.0f} steps/s   {eval_sampled_rate / raw:.2f}x "
        f"({eval_sampled_ratio:.2f}x collection)",
        "    (g)-(g3) between timed iterations, each against the mean collection of the iterations around it",
        f"cores {cores}, torch threads {torch.get_num_threads()}",
    ]
    print("\n".join(lines))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
