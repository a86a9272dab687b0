"""Tabular-MDP baselines, run on batches of random-MDP trials at once.

Every policy keeps, per trial ``b``, visit counts ``N [B, S, A]``, reward sums
``R [B, S, A]`` and transition counts ``C [B, S, A, S]`` of the current trial, and
re-plans at the start of every episode by finite-horizon value iteration
(:func:`plan`), acting greedily on the resulting non-stationary Q-values
(ties at random). Shapes: B = trials, S = states, A = actions, H = horizon.

The benchmark's prior gives the Bayesian posteriors used below:

* transitions: ``P(.|s, a) ~ Dirichlet(1 + C[s, a])``, mean ``(1 + C) / (S + N)``;
* mean rewards (prior Normal(1, 1), known noise variance 1):
  ``mu(s, a) ~ Normal((1 + R) / (1 + N), 1 / (1 + N))``.

Policies (constants are the defaults; :data:`POLICIES` builds them by name):

* ``random``: uniformly random actions. Expected total: episodes · H · 1.
* ``greedy``: certainty equivalence, plans in the posterior-mean MDP.
* ``eps_greedy``: greedy, with a uniformly random action with probability ε = 0.1.
* ``psrl``: posterior sampling (Strens 2000; Osband et al. 2013): at the start of every
  episode, sample one MDP from the posterior above and follow its optimal policy.
* ``ucrl2``: UCRL2 (Jaksch et al. 2010) in episodic form (see :class:`UCRL2`).
* ``beb``: Bayesian exploration bonus (Kolter & Ng 2009) (see :class:`BEB`).
* ``oracle``: the optimal policy of the true MDP (an upper bound in expectation).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from meta_rl.baselines import argmax_random_ties
from meta_rl.envs.tabular_mdp import INITIAL_STATE, MDPTask, RandomTabularMDP


def plan(transitions: np.ndarray, rewards: np.ndarray, horizon: int) -> np.ndarray:
    """Finite-horizon value iteration.

    ``transitions [B, S, A, S]``, ``rewards [B, S, A]`` -> ``Q [H, B, S, A]``, where
    ``Q[h]`` are the optimal action values at step ``h`` (0-based) of an episode,
    i.e. with ``H - h`` steps to go.
    """
    q = np.empty((horizon,) + rewards.shape)
    v = np.zeros(rewards.shape[:2])  # value with 0 steps to go
    for h in reversed(range(horizon)):
        q[h] = rewards + np.einsum("bsat,bt->bsa", transitions, v)
        v = q[h].max(axis=-1)
    return q


def optimistic_plan(
    p_hat: np.ndarray, rewards: np.ndarray, radius: np.ndarray, horizon: int
) -> np.ndarray:
    """Extended value iteration over an L1 ball of transition models (UCRL2).

    For every (s, a) the transition vector may be any distribution within L1 distance
    ``radius [B, S, A]`` of ``p_hat [B, S, A, S]``; at every step the inner maximisation
    of ``p · V`` is solved exactly (Jaksch et al. 2010, Fig. 2): move up to ``radius / 2``
    of mass onto the best next state, taking it from the worst states first.
    Returns ``Q [H, B, S, A]`` like :func:`plan`.
    """
    q = np.empty((horizon,) + rewards.shape)
    v = np.zeros(rewards.shape[:2])
    for h in reversed(range(horizon)):
        q[h] = rewards + optimistic_expectation(p_hat, radius, v)
        v = q[h].max(axis=-1)
    return q


def optimistic_expectation(p_hat: np.ndarray, radius: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``max p · v`` over distributions ``p`` with ``|p - p_hat|_1 <= radius``.

    ``p_hat [B, S, A, S]``, ``radius [B, S, A]``, ``v [B, S]`` -> ``[B, S, A]``.
    """
    B, S, A, _ = p_hat.shape
    idx = np.arange(S)
    # Rank next states by value, ties by index: before[b, i, j] = 1 when i ranks below j.
    # The best state is the one that ranks above all others.
    vi, vj = v[:, :, None], v[:, None, :]
    before = (vi < vj) | ((vi == vj) & (idx[:, None] < idx[None, :]))
    best = S - 1 - np.argmax(v[:, ::-1], axis=1)  # [B]: a maximal state, the last one on ties
    best_idx = np.broadcast_to(best[:, None, None, None], (B, S, A, 1))
    p_best = np.take_along_axis(p_hat, best_idx, axis=-1)[..., 0]  # [B, S, A]
    excess = np.minimum(1.0, p_best + radius / 2.0) - p_best  # mass moved onto the best state
    # Take the excess from the worst states first: state j gives up what is still owed
    # after all states ranked below it have given theirs, capped at its own mass. The
    # best state gives nothing, since the others hold 1 - p_best >= excess.
    below = (p_hat.reshape(B, S * A, S) @ before.astype(p_hat.dtype)).reshape(p_hat.shape)
    taken = np.clip(excess[..., None] - below, 0.0, p_hat)
    np.put_along_axis(taken, best_idx, 0.0, axis=-1)
    expect = (p_hat - taken).reshape(B, S * A, S) @ v[:, :, None]  # [B, S·A, 1]
    return expect.reshape(B, S, A) + excess * np.take_along_axis(v, best[:, None], axis=1)[:, :, None]


class MDPPolicy:
    """Base class: posterior statistics for a batch of trials, re-planned every episode.

    ``start`` receives the true model only so that the oracle can use it; no other
    policy looks at it. Subclasses implement :meth:`begin_episode` (set ``self.q``).
    """

    name = "policy"

    def start(
        self, transitions: np.ndarray, reward_means: np.ndarray, horizon: int, rng: np.random.Generator
    ) -> None:
        self.batch, self.states, self.actions = reward_means.shape
        self.horizon = horizon
        self.rng = rng
        self.steps = 0  # steps taken so far in the trial
        self.n = np.zeros((self.batch, self.states, self.actions))
        self.r_sum = np.zeros((self.batch, self.states, self.actions))
        self.c = np.zeros((self.batch, self.states, self.actions, self.states))
        self._rows = np.arange(self.batch)
        self.q: np.ndarray | None = None  # [H, B, S, A], set by begin_episode

    def begin_episode(self) -> None:
        raise NotImplementedError

    def act(self, states: np.ndarray, h: int) -> np.ndarray:
        """Actions ``int64 [B]`` in ``states [B]`` at step ``h`` of the episode."""
        return argmax_random_ties(self.q[h][self._rows, states], self.rng)

    def update(self, s: np.ndarray, a: np.ndarray, r: np.ndarray, s_next: np.ndarray) -> None:
        """Record one transition per trial (all ``[B]``)."""
        # One (s, a) per row, so the indices are distinct and fancy-index += is exact.
        self.n[self._rows, s, a] += 1.0
        self.r_sum[self._rows, s, a] += r
        self.c[self._rows, s, a, s_next] += 1.0
        self.steps += 1

    # Posterior means under the benchmark's prior (see module docstring).
    def mean_transitions(self) -> np.ndarray:
        return (1.0 + self.c) / (self.states + self.n[..., None])

    def mean_rewards(self) -> np.ndarray:
        return (1.0 + self.r_sum) / (1.0 + self.n)


class RandomPolicy(MDPPolicy):
    name = "random"

    def begin_episode(self) -> None:
        pass

    def act(self, states: np.ndarray, h: int) -> np.ndarray:
        return self.rng.integers(self.actions, size=self.batch)


class EpsilonGreedy(MDPPolicy):
    """Plans in the posterior-mean MDP; a uniformly random action with probability ``eps``."""

    def __init__(self, eps: float = 0.1) -> None:
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"eps must lie in [0, 1], got {eps}")
        self.eps = eps
        self.name = "greedy" if eps == 0 else f"eps_greedy(eps={eps:g})"

    def begin_episode(self) -> None:
        self.q = plan(self.mean_transitions(), self.mean_rewards(), self.horizon)

    def act(self, states: np.ndarray, h: int) -> np.ndarray:
        actions = super().act(states, h)
        if self.eps > 0:
            explore = self.rng.random(self.batch) < self.eps
            actions = np.where(explore, self.rng.integers(self.actions, size=self.batch), actions)
        return actions


class PSRL(MDPPolicy):
    """Posterior sampling: one MDP from the exact posterior per episode, then its optimal policy."""

    name = "psrl"

    def begin_episode(self) -> None:
        # Dirichlet draws as normalised Gamma draws, for all (b, s, a) at once.
        g = self.rng.standard_gamma(1.0 + self.c)
        transitions = g / g.sum(axis=-1, keepdims=True)
        rewards = self.mean_rewards() + self.rng.standard_normal(self.n.shape) / np.sqrt(1.0 + self.n)
        self.q = plan(transitions, rewards, self.horizon)


class UCRL2(MDPPolicy):
    """UCRL2 (Jaksch et al. 2010), re-planned at the start of every episode.

    The optimistic MDP set, with ``t`` = max(1, steps so far in the trial) and
    ``N+ = max(1, N(s, a))``:

    * mean reward within ``c_reward · sqrt(7 log(2 S A t / δ) / (2 N+))`` of the empirical
      mean (0 where unvisited);
    * ``P(.|s, a)`` within L1 distance ``c_transition · sqrt(14 S log(2 A t / δ) / N+)``
      of the empirical distribution (uniform where unvisited);

    and we follow the finite-horizon optimal policy of the most optimistic MDP in that
    set (extended value iteration, :func:`optimistic_plan`). ``c_reward = c_transition = 1``
    are the paper's radii, derived for rewards in [0, 1] and an undiscounted infinite
    horizon; with them the transition set is the whole simplex until a pair has been
    visited a few hundred times, far more than a trial allows, so much smaller
    constants do better here (``tune=1`` in ``python -m meta_rl.baselines``; see
    ``docs/baselines.md``). UCRL2's own episode schedule (a new policy when some count
    doubles) is replaced by the benchmark's episodes.
    """

    def __init__(self, c_reward: float = 1.0, c_transition: float = 1.0, delta: float = 0.05) -> None:
        if c_reward < 0 or c_transition < 0 or not 0 < delta < 1:
            raise ValueError(
                f"need c_reward, c_transition >= 0 and 0 < delta < 1, got {c_reward}, {c_transition}, {delta}"
            )
        self.c_reward, self.c_transition, self.delta = c_reward, c_transition, delta
        self.name = f"ucrl2(c_reward={c_reward:g}, c_transition={c_transition:g})"

    def begin_episode(self) -> None:
        S, A = self.states, self.actions
        t = max(1, self.steps)
        n_plus = np.maximum(1.0, self.n)
        visited = self.n > 0
        r_hat = np.where(visited, self.r_sum / n_plus, 0.0)
        p_hat = np.where(visited[..., None], self.c / n_plus[..., None], 1.0 / S)
        r_radius = self.c_reward * np.sqrt(7.0 * np.log(2.0 * S * A * t / self.delta) / (2.0 * n_plus))
        p_radius = self.c_transition * np.sqrt(14.0 * S * np.log(2.0 * A * t / self.delta) / n_plus)
        if self.c_transition == 0:  # no transition optimism: plain value iteration, same result
            self.q = plan(p_hat, r_hat + r_radius, self.horizon)
        else:
            self.q = optimistic_plan(p_hat, r_hat + r_radius, p_radius, self.horizon)


class BEB(MDPPolicy):
    """Bayesian exploration bonus (Kolter & Ng 2009).

    Plans in the posterior-mean MDP with reward ``mean_reward(s, a) + beta / (1 + N(s, a))``.
    Kolter & Ng's guarantee uses ``beta = 2 H²``; like Duan et al., we treat ``beta`` as a
    constant to tune (default 1; see ``docs/baselines.md``).
    """

    def __init__(self, beta: float = 1.0) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = beta
        self.name = f"beb(beta={beta:g})"

    def begin_episode(self) -> None:
        bonus = self.beta / (1.0 + self.n)
        self.q = plan(self.mean_transitions(), self.mean_rewards() + bonus, self.horizon)


class Oracle(MDPPolicy):
    """Follows the optimal policy of the true MDP."""

    name = "oracle"

    def start(self, transitions, reward_means, horizon, rng) -> None:
        super().start(transitions, reward_means, horizon, rng)
        self._q_true = plan(transitions, reward_means, horizon)

    def begin_episode(self) -> None:
        self.q = self._q_true

    def expected_episode_return(self) -> np.ndarray:
        """The true MDPs' optimal expected episode returns from the initial state, ``[B]``."""
        return self._q_true[0][:, INITIAL_STATE].max(axis=-1)


POLICIES: dict[str, Callable[..., MDPPolicy]] = {
    "random": RandomPolicy,
    "greedy": lambda: EpsilonGreedy(0.0),
    "eps_greedy": EpsilonGreedy,
    "psrl": PSRL,
    "ucrl2": UCRL2,
    "beb": BEB,
    "oracle": Oracle,
}


def tasks_to_arrays(tasks: Sequence[MDPTask]) -> tuple[np.ndarray, np.ndarray]:
    """Stack tasks into ``transitions [B, S, A, S]`` and ``reward_means [B, S, A]``."""
    return np.stack([t.transitions for t in tasks]), np.stack([t.reward_means for t in tasks])


def run_trials(policy: MDPPolicy, bench: RandomTabularMDP, tasks: Sequence[MDPTask], seed: int) -> np.ndarray:
    """Run ``policy`` for one trial on each of ``tasks``; returns total rewards ``[B]``.

    Trials are played through ``bench.make_env(B, seed)``, so rewards and next states come
    from the benchmark's own environment; ``seed`` also seeds the policy's randomness.
    """
    env_seed, policy_seed = np.random.SeedSequence(seed).generate_state(2)
    env = bench.make_env(len(tasks), seed=int(env_seed))
    env.set_tasks(tasks)
    transitions, reward_means = tasks_to_arrays(tasks)
    policy.start(transitions, reward_means, bench.episode_length, np.random.default_rng(int(policy_seed)))
    total = np.zeros(len(tasks))
    for _ in range(bench.episodes_per_trial):
        state = env.reset().argmax(axis=1)
        policy.begin_episode()
        for h in range(bench.episode_length):
            action = policy.act(state, h)
            obs, reward, _ = env.step(action)
            next_state = obs.argmax(axis=1)
            policy.update(state, action, reward, next_state)
            total += reward
            state = next_state
    env.close()
    return total
