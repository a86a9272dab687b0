"""Does the ML1 push policy use the rewards of its trial? The protocol with the reward input removed.

    PYTHONPATH=. python docs/results/ml1_push/reward_ablation.py runs/<run>/checkpoints/latest.pt [N]

The goal is not in the observation: RL² can only find a held-out goal through the rewards its
GRU is fed. This runs the meta-test protocol (10 adaptation episodes with sampled actions, then
3 evaluation episodes with the mean action; seed 0) on the first N (default 50) test goals
twice: as trained, and with the previous-reward input held at its training mean at every step
(the model's input mask zeroes it after standardisation). If success is the same without the
rewards, the policy's held-out success does not come from inferring the goal; the difference
is what the rewards, i.e. adaptation, add.

Prints, per mode, the protocol's success (evaluation episodes) and the success at each of the
13 episodes of the trial.
"""
import sys


from meta_rl.evaluation import MetaEvaluator, evaluation_tasks
from meta_rl.experiment import load_agent
from meta_rl.rl2 import reward_index


def main(path: str, n: int) -> None:
    bench, model, state = load_agent(path)
    tasks = evaluation_tasks(bench, "test", 50)[:n]
    reward_dim = reward_index(bench.observation_space, bench.action_space)
    print(f"{path}: {state['env_steps']:,} env steps, {len(tasks)} test goals; reward input dim {reward_dim}")
    for name, drop_reward in (("as trained", False), ("reward input at its mean", True)):
        if drop_reward:
            model.mask_inputs([reward_dim])
        evaluator = MetaEvaluator(bench, model, num_envs=min(25, len(tasks)))
        try:
            r = evaluator.evaluate(tasks, seed=0)["overall"]
        finally:
            evaluator.close()
        curve = " ".join(f"{s:.2f}" for s in r["curve_success"])
        print(f"{name:<26} protocol {r['success']:.3f} | success by episode 1..13: {curve}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50)
