"""How busy the env workers and the main process are during collection.

    PYTHONPATH=. python docs/results/throughput/collect_cpu.py [--pairs N] [--old DIR]

ML10-train, 20 envs on 2 workers, GRU-256, one trial of 2 x 500 steps per collect (after a
warm-up collect that builds every env): env-steps/s, and the CPU seconds each worker and the
main process used during the collect. ``--old DIR`` runs the same measurement, alternately,
on a checkout of another commit in DIR (e.g. ``git worktree add /tmp/old <commit>``), each
in a fresh process so that both see the same machine load. Produced the collection table of
docs/throughput.md.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

EPISODES, HIDDEN = 2, 256


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure() -> None:
    import torch

    from meta_rl.envs.metaworld import MetaWorldBenchmark
    from meta_rl.models.gru import GRUActorCritic
    from meta_rl.rl2 import input_dim
    from meta_rl.rollout import TrialCollector

    bench = MetaWorldBenchmark("ML10", meta_batch_size=20, episodes_per_trial=EPISODES, episode_length=500,
                               num_workers=2)
    env = bench.make_env(20)
    torch.manual_seed(0)
    model = GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=HIDDEN)
    col = TrialCollector(env, model, 39, bench.action_space, 500, EPISODES, bench.reward_scale, chunk_length=250,
                         generator=torch.Generator().manual_seed(0))
    tasks = bench.sample_tasks("train", 20, np.random.default_rng(0))
    col.collect(tasks)  # warm-up
    pids = [p.pid for p in env._procs]
    before, main0, t0 = [cpu_seconds(p) for p in pids], time.process_time(), time.perf_counter()
    col.collect(tasks)
    wall = time.perf_counter() - t0
    workers = [cpu_seconds(p) - b for p, b in zip(pids, before)]
    main = time.process_time() - main0
    print(f"{20 * EPISODES * 500 / wall:,.0f} steps/s, wall {wall:.2f} s, worker CPU "
          f"{workers[0]:.2f} s and {workers[1]:.2f} s ({np.mean(workers) / wall:.0%} busy), main process CPU "
          f"{main:.2f} s", flush=True)
    env.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--old", help="checkout of another commit to measure alternately")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure()
        sys.exit(0)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    script = os.path.abspath(__file__)
    for _ in range(args.pairs):
        for label, root in (("old", args.old), ("new", here)):
            if root is None:
                continue
            out = subprocess.run([sys.executable, script, "--measure"], cwd=root, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": root}, check=True).stdout.strip()
            print(f"{label if args.old else 'this commit'}: {out}", flush=True)
