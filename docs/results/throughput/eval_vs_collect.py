"""Evaluation against collection on the same ten training classes, in one process run.

    PYTHONPATH=. python docs/results/throughput/eval_vs_collect.py [--rounds 2] [train.py overrides]

Times, alternately and ``--rounds`` times each, one trial of 20 envs on the default ML10 settings:
collection (TrialCollector, 10 episodes, sampled actions) on goals sampled as training samples
them and on the fixed first 2 goals per class that the during-training evaluation uses, and the
evaluation (MetaEvaluator, 13 episodes, its own workers) on those fixed goals with the protocol
(mean action in the last 3 episodes) and with sampled actions, and on the sampled goals. Prints
each rate and its ratio to the collection on sampled goals of the same round. Produced the
"same classes" paragraph of docs/throughput.md.
"""
import argparse
import os
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from meta_rl.config import register_configs, validate
from meta_rl.evaluation import MetaEvaluator, evaluation_tasks
from meta_rl.experiment import build_benchmark, build_model, seed_everything
from meta_rl.rollout import TrialCollector

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="train.py config overrides")
    args = parser.parse_args()
    register_configs()
    with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base="1.3"):
        cfg = compose("train", overrides=["run_dir=/tmp/meta-rl-eval-vs-collect", "progress=false", *args.overrides])
    validate(cfg)
    seed_everything(0)
    bench = build_benchmark(cfg)
    model = build_model(cfg, bench)
    B = bench.meta_batch_size
    env = bench.make_env(B)
    collector = TrialCollector(env, model, int(np.prod(bench.observation_space.shape)), bench.action_space,
                               bench.episode_length, bench.episodes_per_trial, bench.reward_scale,
                               generator=torch.Generator().manual_seed(0))
    evaluator = MetaEvaluator(bench, model, 10, 3, num_envs=B)
    sampled = bench.sample_tasks("train", B, np.random.default_rng(0))
    fixed = evaluation_tasks(bench, "train", 2)[:B]
    collect_steps = B * bench.episodes_per_trial * bench.episode_length

    def collect(tasks) -> float:
        t0 = time.perf_counter()
        collector.collect(tasks)
        return collect_steps / (time.perf_counter() - t0)

    def evaluate(tasks, deterministic: bool) -> float:
        t0 = time.perf_counter()
        steps = evaluator.evaluate(tasks, seed=1, deterministic=deterministic)["num_env_steps"]
        return steps / (time.perf_counter() - t0)

    collect(sampled)  # warm-up: builds every env instance and the workers' policy copies
    evaluate(fixed, True)
    variants = {
        "collect sampled goals": lambda: collect(sampled),
        "collect fixed goals": lambda: collect(fixed),
        "eval fixed goals, mean-action eps": lambda: evaluate(fixed, True),
        "eval fixed goals, sampled": lambda: evaluate(fixed, False),
        "eval sampled goals, sampled": lambda: evaluate(sampled, False),
    }
    rates = {k: [] for k in variants}
    for r in range(args.rounds):
        for k, run in variants.items():
            rates[k].append(run())
            print(f"round {r} {k:36s} {rates[k][-1]:8,.0f}", flush=True)
    base = np.array(rates["collect sampled goals"])
    for k, v in rates.items():
        print(f"{k:36s} median {np.median(v):8,.0f}  vs collect sampled (per round) {np.round(np.array(v) / base, 3)}")
    env.close()
    evaluator.close()
