"""Bandit and tabular-MDP baselines against values computed exactly or by brute force."""

from __future__ import annotations

import functools
import itertools
import json
from fractions import Fraction

import numpy as np
import pytest

from meta_rl.baselines import Z_95, argmax_random_ties, bandit, mean_ci, tabular
from meta_rl.baselines.__main__ import main
from meta_rl.envs.bandit import BernoulliBandit
from meta_rl.envs.tabular_mdp import MDPTask, RandomTabularMDP

# ------------------------------------------------------------------------- helpers


def test_argmax_random_ties():
    rng = np.random.default_rng(0)
    values = np.tile([1.0, 3.0, 0.0, 3.0], (4000, 1))
    picks = argmax_random_ties(values, rng)
    assert set(np.unique(picks)) == {1, 3}  # only maximal entries
    assert abs((picks == 1).mean() - 0.5) < 0.05  # split evenly
    assert argmax_random_ties(np.array([[0.0, 2.0, 1.0]]), rng).tolist() == [1]


def test_mean_ci():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    mean, half = mean_ci(x)
    assert mean == 2.5 and half == pytest.approx(Z_95 * np.std(x, ddof=1) / 2)


# -------------------------------------------------------------------------- bandits


def exhaustive_bayes_value(arms: int, pulls: int) -> Fraction:
    """Bayes-optimal expected total reward of Beta(1, 1) Bernoulli arms, by brute-force
    recursion over the full (unsorted) tuple of every arm's counts, in exact arithmetic."""

    @functools.lru_cache(maxsize=None)
    def value(state: tuple) -> Fraction:
        if sum(s + f for s, f in state) == pulls:
            return Fraction(0)
        best = Fraction(-1)
        for i, (s, f) in enumerate(state):
            p = Fraction(s + 1, s + f + 2)
            win = state[:i] + ((s + 1, f),) + state[i + 1 :]
            lose = state[:i] + ((s, f + 1),) + state[i + 1 :]
            best = max(best, p * (1 + value(win)) + (1 - p) * value(lose))
        return best

    return value(((0, 0),) * arms)


def run_bandit(policy, arms, pulls, trials, seed=0):
    bench = BernoulliBandit(arms=arms, pulls=pulls)
    tasks = np.random.default_rng(seed + 1000).uniform(size=(trials, arms))
    return bandit.run_trials(policy, bench, tasks, seed)


def assert_mc_matches(totals: np.ndarray, expected: float, sigmas: float = 4.0):
    mean = totals.mean()
    se = totals.std(ddof=1) / np.sqrt(totals.size)
    assert abs(mean - expected) < sigmas * se, f"{mean} vs {expected} (se {se})"


def test_exhaustive_recursion_known_value():
    # Two arms, three pulls: the first pull is worth 1/2; the posterior after it makes the
    # remaining two pulls worth 7/6 in expectation, 5/3 in total.
    assert exhaustive_bayes_value(2, 3) == Fraction(5, 3)


@pytest.mark.parametrize("arms,pulls", [(2, 3), (2, 6), (3, 5), (4, 4)])
def test_bayes_optimal_table_matches_exhaustive_recursion(arms, pulls):
    value, choice = bandit.bayes_optimal_table(arms, pulls)
    start = ((0, 0),) * arms
    assert value[start] == pytest.approx(float(exhaustive_bayes_value(arms, pulls)), abs=1e-12)
    assert choice[start] == (0, 0)


def test_bayes_optimal_table_refuses_intractable_settings():
    with pytest.raises(bandit.Intractable):
        bandit.bayes_optimal_table(5, 40, max_states=10_000)


def gittins_by_bisection(s: int, f: int, r: int) -> float:
    """Finite-horizon Gittins index of one (s, f) arm with r pulls left, by bisection on
    the retirement rate with an exact recursion for each trial rate (independent of the table)."""

    def pull_value(lam: float) -> float:
        @functools.lru_cache(maxsize=None)
        def w(s_: int, f_: int, left: int) -> float:  # optimal value with the option to retire
            if left == 0:
                return 0.0
            p = (s_ + 1) / (s_ + f_ + 2)
            return max(left * lam, p * (1 + w(s_ + 1, f_, left - 1)) + (1 - p) * w(s_, f_ + 1, left - 1))

        p = (s + 1) / (s + f + 2)
        return p * (1 + w(s + 1, f, r - 1)) + (1 - p) * w(s, f + 1, r - 1)

    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pull_value(mid) > r * mid else (lo, mid)
    return (lo + hi) / 2


def test_gittins_index_table():
    n = 12
    table = bandit.gittins_index_table(n)
    # One pull left: the myopic index, i.e. the posterior mean.
    assert table[1, 3, 1] == pytest.approx(4 / 6)
    # Two pulls left from the prior: pull now for 1/2, then the better of retiring (λ) and
    # the updated arm: Q = 1/2 + (1/2)(2/3) + (1/2)λ for λ in [1/3, 2/3]; Q = 2λ at λ = 5/9.
    assert table[2, 0, 0] == pytest.approx(5 / 9, abs=1e-9)
    for s, f, r in [(0, 0, 12), (2, 1, 5), (0, 3, 9), (4, 4, 4), (1, 0, 11)]:
        assert table[r, s, f] == pytest.approx(gittins_by_bisection(s, f, r), abs=2e-4)
    # More pulls left -> more value of information -> a larger index; never below the mean.
    assert np.all(np.diff(table[1:, 0, 0]) > 0)
    mean = (np.arange(n + 1)[:, None] + 1.0) / (np.arange(n + 1)[:, None] + np.arange(n + 1)[None] + 2.0)
    valid = ~np.isnan(table)
    assert np.all(table[valid] >= np.broadcast_to(mean, table.shape)[valid] - 1e-9)
    # Increasing in successes, decreasing in failures.
    assert table[6, 2, 1] > table[6, 1, 1] > table[6, 1, 2]


def test_gittins_and_bayes_policies_reach_the_bayes_optimal_value():
    # Exact value 5/3 for two arms and three pulls; the policies' Monte-Carlo returns
    # (played through the environment) must agree within 4 standard errors.
    exact = float(exhaustive_bayes_value(2, 3))
    assert_mc_matches(run_bandit(bandit.Gittins(), 2, 3, 200_000), exact)
    assert_mc_matches(run_bandit(bandit.BayesOptimal(), 2, 3, 20_000, seed=1), exact)
    exact = float(exhaustive_bayes_value(3, 5))
    assert_mc_matches(run_bandit(bandit.Gittins(), 3, 5, 200_000, seed=2), exact)


def test_simple_bandit_policies_exact_values():
    k, n = 5, 10
    assert_mc_matches(run_bandit(bandit.RandomPolicy(), k, n, 50_000), n / 2)
    assert_mc_matches(run_bandit(bandit.Oracle(), k, n, 50_000), n * k / (k + 1))
    # With one pull nothing is known: every policy's expected reward is E[p] = 1/2.
    for policy in (bandit.Thompson(), bandit.UCB1(), bandit.EpsilonGreedy(0.0), bandit.Gittins()):
        assert_mc_matches(run_bandit(policy, 3, 1, 50_000), 0.5)


def test_bandit_policies_rank_as_expected():
    # Same tasks and seeds for all: learning beats random, nothing beats the oracle, and
    # the (near-)Bayes-optimal Gittins policy beats the untuned UCB1 and Thompson sampling.
    means = {
        name: run_bandit(make(), 5, 10, 20_000).mean()
        for name, make in bandit.POLICIES.items()
        if name != "bayes_optimal"
    }
    for name in ("greedy", "eps_greedy", "ucb1", "thompson", "gittins"):
        assert means["random"] + 0.5 < means[name] < means["oracle"] - 1.0
    assert means["gittins"] > max(means["ucb1"], means["thompson"]) + 0.3


def test_bandit_policy_counts():
    policy = bandit.UCB1()
    policy.start(np.full((2, 3), 0.5), 4, np.random.default_rng(0))
    policy.update(np.array([2, 0]), np.array([1.0, 0.0], np.float32))
    policy.update(np.array([2, 2]), np.array([0.0, 1.0], np.float32))
    assert policy.s.tolist() == [[0, 0, 1], [0, 0, 1]]
    assert policy.f.tolist() == [[0, 0, 1], [1, 0, 0]]
    assert policy.posterior_mean()[1].tolist() == pytest.approx([1 / 3, 1 / 2, 2 / 3])


# ----------------------------------------------------------------------- tabular MDPs


def brute_force_optimal_values(p: np.ndarray, r: np.ndarray, horizon: int) -> np.ndarray:
    """Optimal expected return ``[S]`` over all deterministic step-dependent Markov policies."""
    S, A = r.shape
    best = np.full(S, -np.inf)
    for flat in itertools.product(range(A), repeat=S * horizon):
        pi = np.array(flat).reshape(horizon, S)
        v = np.zeros(S)
        for h in reversed(range(horizon)):
            v = r[np.arange(S), pi[h]] + p[np.arange(S), pi[h]] @ v
        best = np.maximum(best, v)
    return best


def test_value_iteration_matches_brute_force():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(2), size=(3, 2, 2))  # batch of 3 MDPs, S = A = 2
    r = rng.normal(1, 1, size=(3, 2, 2))
    q = tabular.plan(p, r, 3)
    assert q.shape == (3, 3, 2, 2)
    for b in range(3):
        assert q[0, b].max(-1) == pytest.approx(brute_force_optimal_values(p[b], r[b], 3))
    # Zero steps to go after the last step: Q at the last step is the immediate reward.
    assert np.allclose(q[-1], r)


def test_optimistic_expectation():
    v = np.array([[0.0, 1.0, 2.0]])  # [B=1, S=3]
    p_hat = np.tile([0.5, 0.3, 0.2], (1, 3, 1, 1))  # [B=1, S=3, A=1, S=3], same row everywhere

    def opt(radius):
        return tabular.optimistic_expectation(p_hat, np.full((1, 3, 1), radius), v)[0, 1, 0]

    assert opt(0.0) == pytest.approx(0.7)  # p_hat · v
    assert opt(0.4) == pytest.approx(0.3 * 1 + 0.4 * 2)  # 0.2 moved from the worst to the best
    assert opt(1.2) == pytest.approx(0.2 * 1 + 0.8 * 2)  # worst emptied, then 0.1 from the middle
    assert opt(2.0) == pytest.approx(2.0)  # the whole simplex: all mass on the best state
    # Batched, with ties in v: no distribution inside the ball does better.
    rng = np.random.default_rng(1)
    B, S, A = 20, 5, 3
    p = rng.dirichlet(np.ones(S), size=(B, S, A))
    radius = rng.uniform(0, 1.5, size=(B, S, A))
    vals = rng.integers(0, 3, size=(B, S)).astype(float)
    best = tabular.optimistic_expectation(p, radius, vals)
    assert np.all(best >= np.einsum("bsat,bt->bsa", p, vals) - 1e-12)
    assert np.all(best <= vals.max(1)[:, None, None] + 1e-12)
    for _ in range(200):
        q = np.clip(p + rng.normal(0, 0.3, size=p.shape), 1e-9, None)
        q /= q.sum(-1, keepdims=True)
        inside = np.abs(q - p).sum(-1) <= radius
        assert np.all(np.einsum("bsat,bt->bsa", q, vals)[inside] <= best[inside] + 1e-12)


def run_mdp(policy, episodes, trials, seed=0, **env_kwargs):
    bench = RandomTabularMDP(episodes=episodes, **env_kwargs)
    tasks = bench.sample_tasks("test", trials, np.random.default_rng(seed + 1000))
    return tabular.run_trials(policy, bench, tasks, seed), tasks


def test_random_and_oracle_mdp_values():
    # Random actions: every step's mean reward is a fresh Normal(1, 1) mean in expectation.
    totals, _ = run_mdp(tabular.RandomPolicy(), 2, 4000)
    assert_mc_matches(totals, 2 * 10 * 1.0)
    # The oracle's average return matches the exact optimal values of the same tasks.
    oracle = tabular.Oracle()
    totals, tasks = run_mdp(oracle, 2, 4000)
    exact = 2 * oracle.expected_episode_return()
    assert_mc_matches(totals - exact, 0.0)


def test_posterior_statistics():
    policy = tabular.PSRL()
    p, r = tabular.tasks_to_arrays([MDPTask(np.full((2, 1, 2), 0.5), np.zeros((2, 1)))])
    policy.start(p, r, 3, np.random.default_rng(0))
    for reward, nxt in ((2.0, 1), (0.5, 1), (-1.0, 0)):
        policy.update(np.array([0]), np.array([0]), np.array([reward]), np.array([nxt]))
    # Normal(1, 1) prior, unit noise, three rewards summing to 1.5: mean (1 + 1.5) / 4.
    assert policy.mean_rewards()[0, 0, 0] == pytest.approx(2.5 / 4)
    assert policy.mean_rewards()[0, 1, 0] == pytest.approx(1.0)  # unvisited: the prior mean
    # Dirichlet(1, 1) prior, counts (1, 2): mean (2, 3) / 5.
    assert policy.mean_transitions()[0, 0, 0] == pytest.approx([0.4, 0.6])
    # PSRL's sampled models concentrate on the truth as the counts grow.
    policy.c[:] = 1e6 * np.array([0.2, 0.8])
    policy.n[:] = 1e6
    policy.r_sum[:] = 3e6
    policy.begin_episode()
    # Every step's sampled mean reward is ~3 whatever the state, so Q = 3 x steps to go.
    assert policy.q[-1][0] == pytest.approx(np.full((2, 1), 3.0), abs=0.02)
    assert policy.q[0][0] == pytest.approx(np.full((2, 1), 9.0), abs=0.06)


def test_mdp_policies_rank_as_expected():
    # n = 10 episodes of the default benchmark, same tasks for all: every learner beats
    # random clearly and stays clearly below the oracle.
    means = {name: run_mdp(make(), 10, 600)[0].mean() for name, make in tabular.POLICIES.items()}
    assert abs(means["random"] - 100) < 5
    for name in ("greedy", "eps_greedy", "psrl", "ucrl2", "beb"):
        assert means["random"] + 10 < means[name] < means["oracle"] - 30, (name, means)


# ------------------------------------------------------------------------------- CLI


def test_cli_bandit(capsys, tmp_path):
    out = tmp_path / "r.json"
    result = main(["env=bandit", "env.arms=2", "env.pulls=3", "trials=3000", "seed=3", f"out={out}", "--json"])
    rows = {r["baseline"]: r for r in result["rows"]}
    assert set(rows) == set(bandit.POLICIES)
    assert rows["bayes_optimal"]["exact"] == pytest.approx(5 / 3)
    assert rows["oracle"]["exact"] == pytest.approx(3 * 2 / 3)
    assert all(r["trials"] == 3000 and r["ci95"] > 0 for r in rows.values())
    assert json.loads(capsys.readouterr().out) == json.loads(out.read_text())


def test_cli_grows_trials_until_precise_and_tunes(capsys):
    result = main(["env=bandit", "env.arms=3", "env.pulls=5", "baselines=random,ucb1", "tune=1", "rel_ci=0.01"])
    table = capsys.readouterr().out
    assert "random" in table and "[tuned]" in table
    for row in result["rows"]:
        assert row["ci95"] < 0.01 * row["mean"]
    assert result["rows"][1]["tuned"] and "c" in result["rows"][1]["params"]


def test_cli_tabular_and_errors(capsys):
    result = main(
        ["env=tabular_mdp", "env.episodes=2", "baselines=random,ucrl2", "ucrl2.c_reward=0.2", "trials=200"]
    )
    assert [r["baseline"] for r in result["rows"]] == ["random", "ucrl2"]
    assert result["rows"][1]["params"] == {"c_reward": 0.2}
    for bad in (["env=nope"], ["env=bandit", "env.arms=1"], ["env=bandit", "baselines=psrl"], ["env=bandit", "x"]):
        with pytest.raises(SystemExit):
            main(bad)
