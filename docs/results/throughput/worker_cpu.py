"""How busy the two env workers are, against one process and two independent processes.

    PYTHONPATH=. python docs/results/throughput/worker_cpu.py

ML10-train, 20 envs (two per class), random actions, 400 steps after a warm-up:
(1) our env in one process; (2) ``ProcessTrialEnv`` with 2 workers in lock-step calls, with the
CPU seconds each worker and the main process used; (3) two independent processes stepping 10
envs each at the same time. Produced "What limits collection now" in docs/throughput.md.
"""
import multiprocessing as mp
import os
import time

import numpy as np

from meta_rl.envs.metaworld import MetaWorldBenchmark, MetaWorldSlice

STEPS = 400


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tasks(n: int):
    ml10 = MetaWorldBenchmark("ML10", meta_batch_size=10, benchmark_seed=0)
    return ml10, ml10.sample_tasks("train", 20, np.random.default_rng(0))[:n]


def in_process(n: int, out=None) -> float:
    ml10, ts = tasks(n)
    env = MetaWorldSlice(tuple(ml10.class_names("train")))(n)
    env.set_tasks(ts)
    actions = np.random.default_rng(0).uniform(-1, 1, (STEPS + 20, n, 4)).astype(np.float32)
    env.reset()
    for a in actions[:20]:
        env.step(a)
    t0 = time.perf_counter()
    for a in actions[20:]:
        env.step(a)
    rate = STEPS * n / (time.perf_counter() - t0)
    if out is not None:
        out.put(rate)
    return rate


if __name__ == "__main__":
    print(f"(1) one process, 20 envs: {in_process(20):,.0f} steps/s")
    ml10, ts = tasks(20)
    env = ml10.make_env(20)
    env.set_tasks(ts)
    actions = np.random.default_rng(0).uniform(-1, 1, (STEPS + 20, 20, 4)).astype(np.float32)
    env.reset()
    for a in actions[:20]:
        env.step(a)
    pids = [p.pid for p in env._procs]
    before, main0, t0 = [cpu_seconds(p) for p in pids], time.process_time(), time.perf_counter()
    for a in actions[20:]:
        env.step(a)
    wall = time.perf_counter() - t0
    busy = [cpu_seconds(p) - b for p, b in zip(pids, before)]
    env.close()
    print(f"(2) 2 workers, lock-step: {STEPS * 20 / wall:,.0f} steps/s; wall {wall:.2f} s, worker CPU "
          f"{busy[0]:.2f} s and {busy[1]:.2f} s, main process {time.process_time() - main0:.2f} s")
    queue = mp.get_context("fork").Queue()
    procs = [mp.get_context("fork").Process(target=in_process, args=(10, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    print(f"(3) two independent processes, 10 envs each: {rates[0]:,.0f} + {rates[1]:,.0f} = {sum(rates):,.0f} steps/s")
