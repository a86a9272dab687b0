"""Does an RL² policy use the rewards of its trial? The protocol with the reward input removed or swapped.

    PYTHONPATH=. python docs/results/reward_ablation.py <checkpoint> [N] [--classes C ...] [--modes M ...]

Written for ML1 push (the goal is not in the observation: RL² can only find a held-out goal
through the rewards its GRU is fed) and used on ML10 too. This runs the meta-test protocol (10
adaptation episodes with sampled actions, then 3 evaluation episodes with the mean action;
seed 0) on the first N (default 50) test goals of each test class (or of the classes named by
``--classes``) in up to three modes (``--modes``, default all):

* ``trained``: as trained.
* ``mean``: the previous-reward input held at its training mean at every step (the model's
  input mask zeroes it after standardisation). If success is the same without the rewards,
  the policy's held-out success does not come from inferring the task.
* ``other``: the previous-reward input of each trial taken from another trial of the same class
  (another goal), at the same step (``GRUActorCritic.borrow_inputs``: the envs of one batch hold
  goals of one class, stepped in lockstep). The input keeps its distribution, so a drop here and
  not under ``mean`` would say the constant input was merely unfamiliar; a drop under both says
  the policy reads its own trial's rewards.

Prints, per mode (and per class when there are several), the protocol's success (evaluation
episodes) and the success at each of the 13 episodes of the trial.
"""
import argparse
import collections
import math

from meta_rl.evaluation import MetaEvaluator, evaluation_tasks
from meta_rl.experiment import load_agent
from meta_rl.rl2 import reward_index

MODES = {"trained": "as trained", "other": "reward of another goal", "mean": "reward input at its mean"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("n", nargs="?", type=int, default=50, help="goals per class (the first N of the split)")
    parser.add_argument("--classes", nargs="+", default=None, help="test classes to run (default: all)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES),
                        help="which inputs to run with (default: all three)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error(f"N must be at least 1, got {args.n}")
    bench, model, state = load_agent(args.checkpoint)
    names = bench.class_names("test")
    unknown = sorted(set(args.classes or ()) - set(names))
    if unknown:
        parser.error(f"unknown test class {', '.join(unknown)}; the test classes are {', '.join(names)}")
    tasks = [t for t in evaluation_tasks(bench, "test", args.n)
             if args.classes is None or bench.task_class(t) in args.classes]
    # Batches of whole classes, so a borrowed reward always comes from a goal of the same class.
    counts = collections.Counter(bench.task_class(t) for t in tasks)
    n = math.gcd(*counts.values())
    num_envs = max(d for d in range(1, min(25, n) + 1) if n % d == 0)
    reward_dim = reward_index(bench.observation_space, bench.action_space)
    print(f"{args.checkpoint}: {state['env_steps']:,} env steps, {len(tasks)} test goals; "
          f"reward input dim {reward_dim}; {num_envs} envs")
    for mode in [m for m in MODES if m in args.modes]:  # "mean" last: its mask cannot be lifted
        model.borrow_inputs([reward_dim] if mode == "other" else [])
        if mode == "mean":
            model.mask_inputs([reward_dim])
        evaluator = MetaEvaluator(bench, model, num_envs=num_envs)
        try:
            result = evaluator.evaluate(tasks, seed=0)
        finally:
            evaluator.close()
        rows = [(MODES[mode], result["overall"])]
        if len(result["per_class"]) > 1:
            rows += [(f"  {c}", r) for c, r in result["per_class"].items()]
        for label, r in rows:
            curve = " ".join(f"{s:.2f}" for s in r["curve_success"])
            print(f"{label:<32} protocol {r['success']:.3f} | success by episode 1..13: {curve}", flush=True)


if __name__ == "__main__":
    main()
