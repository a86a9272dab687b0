"""Bandit baselines, run on batches of Bernoulli-bandit trials at once.

Every policy keeps, per trial ``b`` and arm ``i``, the numbers of successes ``s[b, i]``
and failures ``f[b, i]`` seen so far; under the benchmark's Beta(1, 1) prior the
posterior of arm ``i`` is Beta(1 + s, 1 + f), with mean ``(s + 1) / (s + f + 2)``.
Shapes: B = trials, k = arms, n = pulls per trial, t = pulls made so far (0-based).

Policies (constants are the defaults; :data:`POLICIES` builds them by name):

* ``random``: a uniformly random arm. Expected total reward n/2.
* ``greedy``: the arm with the largest posterior mean (ties at random).
* ``eps_greedy``: a random arm with probability ε = 0.1, else greedy.
* ``ucb1``: the UCB1 rule of Auer et al. (2002), ``mean_i + c sqrt(2 ln(t + 1) / T_i)``
  with c = 1, where (as in Duan et al. 2016) mean and count ``T_i`` include one
  pseudo-success and one pseudo-failure: ``mean_i = (s + 1) / (s + f + 2)``,
  ``T_i = s + f + 2``. So no arm needs a forced first pull. ``t + 1`` is the current
  pull's number. Duan et al. tuned c; ``ucb1`` here uses the textbook c = 1
  unless told otherwise (see ``docs/baselines.md``).
* ``thompson``: Thompson sampling: one draw from each arm's posterior, largest wins.
* ``gittins``: the finite-horizon Gittins index (see :func:`gittins_index_table`).
* ``bayes_optimal``: the exact Bayes-optimal policy for the finite horizon, by dynamic
  programming over the multiset of the arms' posteriors (:class:`BayesOptimal`);
  only where that state space is small (about n <= 20 for k = 5).
* ``oracle``: always the truly best arm (knows ``p``); expected total n k / (k + 1).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from meta_rl.baselines import argmax_random_ties
from meta_rl.envs.bandit import BernoulliBandit


class BanditPolicy:
    """Base class: keeps success/failure counts ``[B, k]`` for a batch of trials.

    Subclasses implement :meth:`act`. ``start`` is given the true arm probabilities
    ``p [B, k]`` only so that the oracle can use them; no other policy looks at them.
    """

    name = "policy"

    def start(self, p: np.ndarray, pulls: int, rng: np.random.Generator) -> None:
        self.batch, self.arms = p.shape
        self.pulls = pulls
        self.rng = rng
        self.s = np.zeros((self.batch, self.arms), np.int64)
        self.f = np.zeros((self.batch, self.arms), np.int64)
        self._rows = np.arange(self.batch)

    def act(self, t: int) -> np.ndarray:
        """Arms ``int64 [B]`` for pull number ``t`` (0-based)."""
        raise NotImplementedError

    def update(self, arms: np.ndarray, rewards: np.ndarray) -> None:
        """Record the outcomes ``rewards [B]`` (0/1) of pulling ``arms [B]``."""
        won = rewards > 0.5
        # One arm per row, so the (row, arm) pairs are distinct and fancy-index += is exact.
        self.s[self._rows, arms] += won
        self.f[self._rows, arms] += ~won

    def posterior_mean(self) -> np.ndarray:
        return (self.s + 1.0) / (self.s + self.f + 2.0)


class RandomPolicy(BanditPolicy):
    name = "random"

    def act(self, t: int) -> np.ndarray:
        return self.rng.integers(self.arms, size=self.batch)


class EpsilonGreedy(BanditPolicy):
    """Posterior-mean greedy, with a uniformly random arm with probability ``eps``."""

    def __init__(self, eps: float = 0.1) -> None:
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"eps must lie in [0, 1], got {eps}")
        self.eps = eps
        self.name = "greedy" if eps == 0 else f"eps_greedy(eps={eps:g})"

    def act(self, t: int) -> np.ndarray:
        arms = argmax_random_ties(self.posterior_mean(), self.rng)
        if self.eps > 0:
            explore = self.rng.random(self.batch) < self.eps
            arms = np.where(explore, self.rng.integers(self.arms, size=self.batch), arms)
        return arms


class UCB1(BanditPolicy):
    """UCB1 with Beta(1, 1) pseudo-counts and exploration constant ``c`` (see module doc)."""

    def __init__(self, c: float = 1.0) -> None:
        if c < 0:
            raise ValueError(f"c must be >= 0, got {c}")
        self.c = c
        self.name = f"ucb1(c={c:g})"

    def act(self, t: int) -> np.ndarray:
        count = self.s + self.f + 2.0
        ucb = self.posterior_mean() + self.c * np.sqrt(2.0 * np.log(t + 1.0) / count)
        return argmax_random_ties(ucb, self.rng)


class Thompson(BanditPolicy):
    name = "thompson"

    def act(self, t: int) -> np.ndarray:
        return np.argmax(self.rng.beta(self.s + 1.0, self.f + 1.0), axis=1)


@functools.lru_cache(maxsize=8)
def gittins_index_table(pulls: int, grid: int = 1025) -> np.ndarray:
    """Finite-horizon Gittins indices of a Beta(1, 1)-prior Bernoulli arm.

    Returns ``G`` of shape ``[pulls + 1, pulls + 1, pulls + 1]``: ``G[r, s, f]`` is the
    index of an arm with ``s`` successes and ``f`` failures when ``r`` pulls remain
    (the current one included), for ``s + f + r <= pulls`` (other entries are NaN).

    The index is the per-pull reward ``λ`` of a known retirement arm that makes us
    indifferent between retiring now (``r λ``) and pulling this arm, with the option
    to retire at any later pull (Gittins's calibration, undiscounted over the
    ``r`` remaining pulls). With ``W_r(s, f; λ) = max(r λ, Q_r(s, f; λ))``,
    ``W_0 = 0`` and ``Q_r = p̂ (1 + W_{r-1}(s+1, f)) + (1 - p̂) W_{r-1}(s, f+1)``, the
    index is the root in λ of ``g = Q_r - r λ``. ``g`` is convex, piecewise linear and
    strictly decreasing in λ, positive at λ = 0 and negative at λ = 1, so we evaluate
    the DP for all ``(r, s, f)`` at once on a grid of ``grid`` values of λ in [0, 1]
    and interpolate linearly inside the bracketing grid cell (exact when the cell holds
    no kink of ``g``). Cost O(grid · pulls³); about 4 s for pulls = 100.
    """
    n, size = pulls, pulls + 1
    lam_all = np.linspace(0.0, 1.0, grid)
    # Bracket per (r, s, f): the last grid λ with g > 0 and the first with g <= 0, and g there.
    lam_lo = np.full((size,) * 3, np.nan)
    g_lo = np.full((size,) * 3, np.inf)
    lam_hi = np.full((size,) * 3, np.nan)
    g_hi = np.full((size,) * 3, -np.inf)
    s = np.arange(size + 1.0)
    phat = (s[:, None] + 1.0) / (s[:, None] + s[None, :] + 2.0)  # [s, f] posterior means
    chunk = 64  # λ values per pass, bounding memory to chunk · (pulls + 1)² floats
    for c0 in range(0, grid, chunk):
        lam = lam_all[c0 : c0 + chunk, None, None]
        w = np.zeros((lam.shape[0], size, size))  # W_{r-1}(s, f; λ), r - 1 = 0 here
        for r in range(1, n + 1):
            m = n - r + 1  # starts with r pulls left have s + f <= n - r < m
            p = phat[:m, :m]
            q = p * (1.0 + w[:, 1 : m + 1, :m]) + (1.0 - p) * w[:, :m, 1 : m + 1]
            g = q - r * lam
            pos = g > 0
            # g decreases in λ, so the positive grid points form a prefix of the grid.
            np.fmax(lam_lo[r, :m, :m], np.where(pos, lam, -np.inf).max(0), out=lam_lo[r, :m, :m])
            np.minimum(g_lo[r, :m, :m], np.where(pos, g, np.inf).min(0), out=g_lo[r, :m, :m])
            np.fmin(lam_hi[r, :m, :m], np.where(pos, np.inf, lam).min(0), out=lam_hi[r, :m, :m])
            np.maximum(g_hi[r, :m, :m], np.where(pos, -np.inf, g).max(0), out=g_hi[r, :m, :m])
            w = np.maximum(q, r * lam)
    with np.errstate(invalid="ignore", divide="ignore"):
        index = lam_lo + g_lo * (lam_hi - lam_lo) / (g_lo - g_hi)
    r, s_, f_ = np.meshgrid(np.arange(size), np.arange(size), np.arange(size), indexing="ij")
    index[(r == 0) | (s_ + f_ + r > n)] = np.nan
    # With one pull left the index is exactly the posterior mean (myopic); avoid rounding there.
    index[1] = np.where(s_[1] + f_[1] + 1 <= n, phat[:size, :size], np.nan)
    index.flags.writeable = False
    return index


class Gittins(BanditPolicy):
    """Pull the arm with the largest finite-horizon Gittins index (ties at random)."""

    name = "gittins"

    def start(self, p: np.ndarray, pulls: int, rng: np.random.Generator) -> None:
        super().start(p, pulls, rng)
        self.table = gittins_index_table(pulls)

    def act(self, t: int) -> np.ndarray:
        return argmax_random_ties(self.table[self.pulls - t][self.s, self.f], self.rng)


class Intractable(RuntimeError):
    """The exact Bayes-optimal dynamic program has too many states for this setting."""


@functools.lru_cache(maxsize=8)
def bayes_optimal_table(arms: int, pulls: int, max_states: int = 400_000) -> tuple[dict, dict]:
    """Exact finite-horizon Bayes-optimal values and decisions for Beta(1, 1) arms.

    The posterior over all arms is summarised by the multiset of their (s, f) counts;
    arms are exchangeable under the prior, so a state is the sorted tuple of the k
    ``(s, f)`` pairs. Returns ``(value, choice)``: ``value[state]`` is the
    Bayes-optimal expected reward of the remaining ``pulls - Σ(s + f)`` pulls, and
    ``choice[state]`` the ``(s, f)`` of an arm worth pulling. Raises
    :class:`Intractable` when more than ``max_states`` states are reachable.
    """
    start = ((0, 0),) * arms
    levels = [[start]]
    total = 1
    for _ in range(pulls):  # forward: enumerate reachable states, level = pulls made
        nxt: set = set()
        for state in levels[-1]:
            for i, (s, f) in enumerate(state):
                if i and state[i - 1] == (s, f):
                    continue  # identical arms lead to identical children
                for child in ((s + 1, f), (s, f + 1)):
                    nxt.add(tuple(sorted(state[:i] + (child,) + state[i + 1 :])))
        total += len(nxt)
        if total > max_states:
            raise Intractable(f"exact Bayes-optimal DP for k={arms}, n={pulls} exceeds {max_states} states")
        levels.append(list(nxt))
    value = {state: 0.0 for state in levels[-1]}
    choice: dict = {}
    for level in reversed(levels[:-1]):  # backward induction
        for state in level:
            best, best_arm = -1.0, None
            for i, (s, f) in enumerate(state):
                if i and state[i - 1] == (s, f):
                    continue
                p = (s + 1.0) / (s + f + 2.0)
                win = tuple(sorted(state[:i] + ((s + 1, f),) + state[i + 1 :]))
                lose = tuple(sorted(state[:i] + ((s, f + 1),) + state[i + 1 :]))
                q = p * (1.0 + value[win]) + (1.0 - p) * value[lose]
                if q > best + 1e-12:
                    best, best_arm = q, (s, f)
            value[state], choice[state] = best, best_arm
    return value, choice


class BayesOptimal(BanditPolicy):
    """The exact Bayes-optimal policy (see :func:`bayes_optimal_table`).

    Acting looks each trial's state up in a table, a Python loop over trials; fine
    for the small settings where the table exists.
    """

    name = "bayes_optimal"

    def start(self, p: np.ndarray, pulls: int, rng: np.random.Generator) -> None:
        super().start(p, pulls, rng)
        self.value, self.choice = bayes_optimal_table(self.arms, pulls)

    def expected_total(self) -> float:
        """The exact Bayes-optimal expected total reward of a trial."""
        return self.value[((0, 0),) * self.arms]

    def act(self, t: int) -> np.ndarray:
        arms = np.empty(self.batch, np.int64)
        for b in range(self.batch):
            pairs = list(zip(self.s[b].tolist(), self.f[b].tolist()))
            target = self.choice[tuple(sorted(pairs))]
            candidates = [i for i, pair in enumerate(pairs) if pair == target]
            arms[b] = candidates[self.rng.integers(len(candidates))]
        return arms


class Oracle(BanditPolicy):
    """Always pulls the truly best arm: the upper bound no learner can beat in expectation."""

    name = "oracle"

    def start(self, p: np.ndarray, pulls: int, rng: np.random.Generator) -> None:
        super().start(p, pulls, rng)
        self.best = np.argmax(p, axis=1)

    def act(self, t: int) -> np.ndarray:
        return self.best


POLICIES: dict[str, Callable[..., BanditPolicy]] = {
    "random": RandomPolicy,
    "greedy": lambda: EpsilonGreedy(0.0),
    "eps_greedy": EpsilonGreedy,
    "ucb1": UCB1,
    "thompson": Thompson,
    "gittins": Gittins,
    "bayes_optimal": BayesOptimal,
    "oracle": Oracle,
}


def run_trials(policy: BanditPolicy, bench: BernoulliBandit, tasks: np.ndarray, seed: int) -> np.ndarray:
    """Run ``policy`` for one trial on each task of ``tasks [B, k]``; returns total rewards ``[B]``.

    Trials are played through ``bench.make_env(B, seed)``, so pull outcomes come from the
    benchmark's own environment; ``seed`` also seeds the policy's own randomness.
    """
    tasks = np.asarray(tasks, np.float64)
    env_seed, policy_seed = np.random.SeedSequence(seed).generate_state(2)
    env = bench.make_env(len(tasks), seed=int(env_seed))
    env.set_tasks(list(tasks))
    policy.start(tasks, bench.pulls, np.random.default_rng(int(policy_seed)))
    total = np.zeros(len(tasks))
    for t in range(bench.pulls):  # one pull = one episode of length 1
        env.reset()
        arms = policy.act(t)
        _, reward, _ = env.step(arms)
        policy.update(arms, reward)
        total += reward
    env.close()
    return total
