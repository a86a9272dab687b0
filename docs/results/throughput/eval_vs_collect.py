"""Evaluation against collection on the same ten training classes, in one process run.

    PYTHONPATH=. python docs/results/throughput/eval_vs_collect.py [ROUNDS=2 env var] [train.py overrides]

Times, alternately and ROUNDS times each, one trial of 20 envs on the default ML10 settings:
collection (TrialCollector, 10 episodes, sampled actions) on goals sampled as training samples
them and on the fixed first 2 goals per class that the during-training evaluation uses, and the
evaluation (MetaEvaluator, 13 episodes, its own workers) on those fixed goals with the protocol
(mean action in the last 3 episodes) and with sampled actions, and on the sampled goals. Prints
each rate and its ratio to the collection on sampled goals of the same round.
"""
import os
import sys
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from meta_rl.config import register_configs, validate
from meta_rl.evaluation import MetaEvaluator, evaluation_tasks
from meta_rl.experiment import build_benchmark, build_model, seed_everything
from meta_rl.rollout import TrialCollector

if __name__ == "__main__":
    register_configs()
    with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base="1.3"):
        cfg = compose("train", overrides=["run_dir=/tmp/meta-rl-eval-vs-collect", "progress=false"] + sys.argv[1:])
    validate(cfg)
    seed_everything(0)
    bench = build_benchmark(cfg)
    model = build_model(cfg, bench)
    B = bench.meta_batch_size
    env = bench.make_env(B)
    gen = torch.Generator().manual_seed(0)
    col = TrialCollector(env, model, int(np.prod(bench.observation_space.shape)), bench.action_space,
                         bench.episode_length, bench.episodes_per_trial, bench.reward_scale, generator=gen)
    ev = MetaEvaluator(bench, model, 10, 3, num_envs=B)
    rng = np.random.default_rng(0)
    sampled = bench.sample_tasks("train", B, rng)
    fixed = evaluation_tasks(bench, "train", 2)[:B]
    print("sampled classes", [bench.task_class(t)[:6] for t in sampled])
    print("fixed classes  ", [bench.task_class(t)[:6] for t in fixed])
    steps_c = B * bench.episodes_per_trial * bench.episode_length
    def c(tasks):
        t0 = time.perf_counter(); col.collect(tasks); return steps_c / (time.perf_counter() - t0)
    def e(tasks, det):
        t0 = time.perf_counter(); r = ev.evaluate(tasks, seed=1, deterministic=det); return r["num_env_steps"] / (time.perf_counter() - t0)
    c(sampled); e(fixed, True)  # warm-up
    variants = {"collect sampled goals": lambda: c(sampled), "collect fixed goals": lambda: c(fixed),
                "eval fixed goals, mean-action eps": lambda: e(fixed, True), "eval fixed goals, sampled": lambda: e(fixed, False),
                "eval sampled goals, sampled": lambda: e(sampled, False)}
    res = {k: [] for k in variants}
    for r in range(int(os.environ.get("ROUNDS", 2))):
        for k, f in variants.items():
            res[k].append(f()); print(f"round {r} {k:36s} {res[k][-1]:8,.0f}", flush=True)
    base = np.array(res["collect sampled goals"])
    for k, v in res.items():
        print(f"{k:36s} median {np.median(v):8,.0f}  vs collect sampled (per round) {np.round(np.array(v)/base, 3)}")
    env.close(); ev.close()
