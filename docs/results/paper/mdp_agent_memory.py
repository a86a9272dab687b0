"""What does a trained RL² agent remember on random tabular MDPs: per state, or pooled?

Two reference rules that both pick, at every step, the action with the highest posterior-mean
reward (prior Normal(1, 1), unit noise; untried actions count as 1), differing only in what
they average over:

* ``state``: the rewards of that action *in the current state* (the per-state bandit rule;
  158 per trial on the n = 10 test tasks, above the planning ``greedy`` baseline);
* ``pooled``: the rewards of that action *in any state* (121 per trial).

The script prints both rules' scores, and those of per-state rules that remember only the
last W steps; then plays the agent of each checkpoint on the benchmark's 1000 test tasks
(its own sampled actions, as in the evaluation) and counts, for each rule, how often the
agent's most likely action is one the rule would take given the same history.

    PYTHONPATH=. python docs/results/paper/mdp_agent_memory.py runs/<mdp run>/checkpoints/latest.pt
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from meta_rl.baselines import argmax_random_ties
from meta_rl.baselines.tabular import EpsilonGreedy, run_trials
from meta_rl.checkpoint import load
from meta_rl.envs.tabular_mdp import RandomTabularMDP
from meta_rl.models.gru import GRUActorCritic
from meta_rl.rl2 import RL2Inputs, input_dim


class MeanRewardRule(EpsilonGreedy):
    """Acts on posterior-mean rewards of the last ``window`` steps (all if None), per state or
    pooled over states; no planning."""

    def __init__(self, pooled: bool = False, window: int | None = None) -> None:
        super().__init__(0.0)
        self.pooled, self.window = pooled, window
        self.name = f"{'pooled' if pooled else 'state'}" + (f", last {window} steps" if window else "")

    def start(self, *args, **kwargs) -> None:
        super().start(*args, **kwargs)
        self.history: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def begin_episode(self) -> None:
        pass

    def update(self, s, a, r, s_next) -> None:
        if self.window is None:
            super().update(s, a, r, s_next)
            return
        self.history.append((s.copy(), a.copy(), np.asarray(r, np.float64).copy()))
        self.n[:] = 0.0
        self.r_sum[:] = 0.0
        for s_, a_, r_ in self.history[-self.window :]:
            self.n[self._rows, s_, a_] += 1.0
            self.r_sum[self._rows, s_, a_] += r_

    def values(self, states: np.ndarray) -> np.ndarray:
        """Posterior-mean reward of each action ``[B, A]``."""
        if self.pooled:
            return (1.0 + self.r_sum.sum(axis=1)) / (1.0 + self.n.sum(axis=1))
        return self.mean_rewards()[self._rows, states]

    def act(self, states: np.ndarray, h: int) -> np.ndarray:
        return argmax_random_ties(self.values(states), self.rng)


def load_agent(path: str, bench: RandomTabularMDP) -> GRUActorCritic:
    state = load(path)["model"]
    hidden = state["gru.weight_hh_l0"].shape[1]
    previous_obs = state["gru.weight_ih_l0"].shape[1] == input_dim(bench.observation_space, bench.action_space, True)
    model = GRUActorCritic(
        input_dim(bench.observation_space, bench.action_space, previous_obs),
        bench.action_space,
        hidden,
        normalize_inputs="input_shift" in state,
        previous_obs=previous_obs,
    )
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def agreement(model: GRUActorCritic, bench: RandomTabularMDP, tasks, seed: int) -> dict[str, float]:
    """Plays the agent (sampled actions) one trial per task; for each rule, the share of steps
    where the agent's most likely action is one of the rule's best actions, and the share a
    uniformly random choice would reach (the rules' ties make it more than 1/A)."""
    batch = len(tasks)
    env = bench.make_env(batch, seed=seed)
    env.set_tasks(tasks)
    rules = [MeanRewardRule(False), MeanRewardRule(True)] + [MeanRewardRule(False, w) for w in (10, 20)]
    shape = (batch, bench.states, bench.actions)
    for rule in rules:
        rule.start(np.zeros(shape + (bench.states,)), np.zeros(shape), bench.episode_length, np.random.default_rng(0))
    inputs = RL2Inputs(batch, bench.states, bench.action_space, 1.0, model.previous_obs)
    inputs.start_trial()
    gen = torch.Generator().manual_seed(seed)
    h = model.initial_state(batch)
    agree = np.zeros(len(rules))
    chance = np.zeros(len(rules))
    steps = 0
    total = np.zeros(batch)
    rows = np.arange(batch)
    for _ in range(bench.episodes_per_trial):
        obs = env.reset()
        state = obs.argmax(axis=1)
        for step in range(bench.episode_length):
            out, _, h = model(torch.from_numpy(inputs.build(obs))[None], h)
            logits = out[0]
            best = logits.argmax(-1).numpy()
            for i, rule in enumerate(rules):
                v = rule.values(state)
                is_best = v >= v.max(axis=1, keepdims=True)
                agree[i] += is_best[rows, best].sum()
                chance[i] += is_best.mean(axis=1).sum()
            steps += batch
            action = model.sample(logits, gen).numpy()
            obs, reward, _ = env.step(action)
            next_state = obs.argmax(axis=1)
            for rule in rules:
                rule.update(state, action, reward, next_state)
            inputs.record(action, reward, step == bench.episode_length - 1)
            total += reward
            state = next_state
    result = {"return_per_trial": float(total.mean())}
    for i, rule in enumerate(rules):
        result[f"agrees with {rule.name}"] = float(agree[i] / steps)
        result[f"chance, {rule.name}"] = float(chance[i] / steps)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="*", help="checkpoints of tabular-MDP runs (n = --episodes)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seeds", type=int, default=2, help="outcome seeds for the rules' scores")
    args = p.parse_args()
    torch.set_num_threads(1)
    bench = RandomTabularMDP(episodes=args.episodes)
    test = bench.all_tasks("test")
    rules = [MeanRewardRule(False), MeanRewardRule(True)] + [MeanRewardRule(False, w) for w in (10, 20, 40)]
    for rule in rules:
        score = np.concatenate([run_trials(rule, bench, test, 10 + k) for k in range(args.seeds)]).mean()
        print(f"rule {rule.name:24s} {score:6.1f} per trial")
    for path in args.checkpoints:
        result = agreement(load_agent(path, bench), bench, test, seed=10)
        print(path, {k: round(v, 3) for k, v in result.items()})


if __name__ == "__main__":
    main()
