"""Does an RL² policy use the rewards of its trial? The protocol with the reward input removed.

    PYTHONPATH=. python docs/results/reward_ablation.py <checkpoint> [N] [--classes C ...]

Written for ML1 push (the goal is not in the observation: RL² can only find a held-out goal
through the rewards its GRU is fed) and used on ML10 too. This runs the meta-test protocol (10
adaptation episodes with sampled actions, then 3 evaluation episodes with the mean action;
seed 0) on the first N (default 50) test goals of each test class (or of the classes named by
``--classes``) twice: as trained, and with the previous-reward input held at its training mean
at every step (the model's input mask zeroes it after standardisation). If success is the same
without the rewards, the policy's held-out success does not come from inferring the task; the
difference is what the rewards, i.e. adaptation, add.

Prints, per mode (and per class when there are several), the protocol's success (evaluation
episodes) and the success at each of the 13 episodes of the trial.
"""
import argparse

from meta_rl.evaluation import MetaEvaluator, evaluation_tasks
from meta_rl.experiment import load_agent
from meta_rl.rl2 import reward_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("n", nargs="?", type=int, default=50, help="goals per class (the first N of the split)")
    parser.add_argument("--classes", nargs="+", default=None, help="test classes to run (default: all)")
    args = parser.parse_args()
    bench, model, state = load_agent(args.checkpoint)
    names = bench.class_names("test")
    unknown = sorted(set(args.classes or ()) - set(names))
    if unknown:
        parser.error(f"unknown test class {', '.join(unknown)}; the test classes are {', '.join(names)}")
    tasks = [t for t in evaluation_tasks(bench, "test", args.n)
             if args.classes is None or bench.task_class(t) in args.classes]
    reward_dim = reward_index(bench.observation_space, bench.action_space)
    print(f"{args.checkpoint}: {state['env_steps']:,} env steps, {len(tasks)} test goals; "
          f"reward input dim {reward_dim}")
    for name, drop_reward in (("as trained", False), ("reward input at its mean", True)):
        if drop_reward:
            model.mask_inputs([reward_dim])
        evaluator = MetaEvaluator(bench, model, num_envs=min(25, len(tasks)))
        try:
            result = evaluator.evaluate(tasks, seed=0)
        finally:
            evaluator.close()
        rows = [(name, result["overall"])]
        if len(result["per_class"]) > 1:
            rows += [(f"  {c}", r) for c, r in result["per_class"].items()]
        for label, r in rows:
            curve = " ".join(f"{s:.2f}" for s in r["curve_success"])
            print(f"{label:<26} protocol {r['success']:.3f} | success by episode 1..13: {curve}", flush=True)


if __name__ == "__main__":
    main()
