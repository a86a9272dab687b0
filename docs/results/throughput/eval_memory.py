"""Main-process RSS over repeated meta-test evaluations (does memory grow with evaluations?).

    PYTHONPATH=. python docs/results/throughput/eval_memory.py [--episode-length 500] [--evaluations 8]

ML10 test goals (4 per class, 20 trials on 2 env workers), GRU-256, 10 adaptation and 3
evaluation episodes, alternately with the mean action and with sampled actions in the evaluation
episodes; RSS after each evaluation (after ``gc.collect()``). Produced the memory row of the
2026-11-27 targets table in docs/throughput.md (50-step episodes × 40 evaluations, 500-step × 8).
"""
import argparse
import gc

from meta_rl.envs.metaworld import MetaWorldBenchmark
from meta_rl.evaluation import MetaEvaluator, evaluation_tasks
from meta_rl.models.gru import GRUActorCritic
from meta_rl.rl2 import input_dim
from meta_rl.trainer import rss_mb

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--episode-length", type=int, default=500)
    parser.add_argument("--evaluations", type=int, default=8)
    args = parser.parse_args()
    bench = MetaWorldBenchmark("ML10", meta_batch_size=20, episodes_per_trial=10, episode_length=args.episode_length,
                               num_workers=2)
    model = GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=256)
    evaluator = MetaEvaluator(bench, model, 10, 3, num_envs=20)
    goals = evaluation_tasks(bench, "test", 4)
    for i in range(args.evaluations):
        evaluator.evaluate(goals, seed=i, deterministic=bool(i % 2))
        gc.collect()
        print(f"evaluation {i + 1}: RSS {rss_mb():.0f} MB", flush=True)
    evaluator.close()
