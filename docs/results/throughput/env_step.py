"""Where one Meta-World step's time goes, and the speed of our env classes against Meta-World's.

    PYTHONPATH=. python docs/results/throughput/env_step.py

For each ML10 class (one goal each, one process): the share of ``step`` spent in ``mj_step``,
``touching_object`` and ``Rotation.from_matrix`` under cProfile (500 random steps of Meta-World's
class), then steps per second of Meta-World's class and of ours (``fast_class``), 1,000 random
steps with a reset every 500, best of three runs taken in turn. Produced the tables of docs/throughput.md.
"""
import cProfile
import pstats
import time

import numpy as np

from meta_rl.envs.metaworld import MetaWorldBenchmark
from meta_rl.envs.metaworld_fast import fast_class


def shares(env, actions) -> dict:
    profile = cProfile.Profile()
    profile.enable()
    for a in actions[:500]:
        env.step(a)
    profile.disable()
    stats = pstats.Stats(profile)
    cum = {f"{file}:{name}": v[3] for (file, _, name), v in stats.stats.items()}
    part = lambda key: sum(v for k, v in cum.items() if key in k) / stats.total_tt  # noqa: E731
    return {key: part(key) for key in ("mj_step", "touching_object", "from_matrix")}


def rate(env, actions) -> float:
    env.reset()
    t0 = time.perf_counter()
    for i, a in enumerate(actions):
        if i and i % 500 == 0:
            env.reset()
        env.step(a)
    return len(actions) / (time.perf_counter() - t0)


if __name__ == "__main__":
    ml10 = MetaWorldBenchmark("ML10", meta_batch_size=10, benchmark_seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (1000, 4)).astype(np.float32)
    total = [0.0, 0.0]
    print(f"{'class':26s} {'mj_step':>8s} {'touching':>9s} {'rotation':>9s} {'Meta-World':>11s} {'ours':>7s}")
    for split in ("train", "test"):
        for name in ml10.class_names(split):
            cls, task = ml10._classes[split][name], ml10._tasks[split][name][0]
            envs = [cls(reward_function_version="v2"), fast_class(cls)(reward_function_version="v2")]
            for env in envs:
                env.set_task(task)
            envs[0].reset()
            s = shares(envs[0], actions)
            runs = [[rate(env, actions) for env in envs] for _ in range(3)]  # interleaved: same load
            r = [max(run[k] for run in runs) for k in range(2)]
            total[0] += 1 / r[0]
            total[1] += 1 / r[1]
            print(f"{name:26s} {s['mj_step']:8.0%} {s['touching_object']:9.0%} {s['from_matrix']:9.0%} "
                  f"{r[0]:11,.0f} {r[1]:7,.0f}  {r[1] / r[0]:.2f}x")
    print(f"all 15 classes, equal steps each: {total[0] / total[1]:.2f}x")
