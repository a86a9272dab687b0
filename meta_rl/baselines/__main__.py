"""Evaluate the hand-designed baselines on a bandit or tabular-MDP task distribution.

Usage (``key=value`` arguments, in any order)::

    python -m meta_rl.baselines env=bandit env.arms=5 env.pulls=10
    python -m meta_rl.baselines env=tabular_mdp env.episodes=10 tune=1 out=mdp10.json

Arguments:
    env=bandit|tabular_mdp   the benchmark; ``env.<kwarg>=v`` goes to its constructor
                             (bandit: arms, pulls; tabular_mdp: states, actions, horizon, episodes).
    baselines=a,b,...        which baselines (default: all of the benchmark's).
    <baseline>.<kwarg>=v     a baseline's constant, e.g. ``ucb1.c=0.2``, ``beb.beta=0.3``,
                             ``ucrl2.c_reward=0.2``, ``eps_greedy.eps=0.05``.
    tune=0|1                 grid-search each tunable baseline's constants first, on tasks
                             and seeds disjoint from the evaluation ones (default 0).
    trials=N                 evaluate exactly N trials per baseline. Without it, trials grow
                             until the 95% CI half-width is below ``rel_ci`` of |mean|.
    rel_ci=0.01              target relative CI half-width (default 1%).
    max_trials=M             cap on trials per baseline (default 200000 bandit, 20000 MDP).
    seed=S                   seed of tasks, outcomes and policies (default 0).
    out=path.json            also write the results as JSON.
    --json                   print JSON instead of the table.

Each row reports the mean total reward per trial and the half-width of its 95%
normal-approximation CI. Tasks are drawn from the benchmark's test-split distribution
(train and test are the same distribution for these benchmarks).
"""

from __future__ import annotations

import itertools
import json
import math
import platform
import sys
import time
from typing import Any, Callable

import numpy as np

from meta_rl.baselines import Z_95, bandit, mean_ci, tabular
from meta_rl.envs.bandit import BernoulliBandit
from meta_rl.envs.tabular_mdp import RandomTabularMDP

# Mean total reward per trial reported by Duan et al. (2016), Tables 1 and 2, for the
# settings named in the key. Only compared when the rest of the setting is the default.
PAPER = {
    ("bandit", 5, 10): {"random": 5.0, "gittins": 6.6, "ucb1": 6.7},
    ("bandit", 10, 10): {"gittins": 6.6},
    ("bandit", 5, 100): {"gittins": 78.3, "ucb1": 78.0, "thompson": 74.7},
    ("tabular_mdp", 10): {"random": 100.1, "psrl": 138.1, "ucrl2": 146.6},
    ("tabular_mdp", 25): {"psrl": 408.8},
}

# Grids searched by tune=1 (constructor kwargs of the baseline).
TUNE_GRIDS: dict[str, dict[str, list[dict[str, float]]]] = {
    "bandit": {
        "ucb1": [{"c": c} for c in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)],
        "eps_greedy": [{"eps": e} for e in (0.01, 0.02, 0.05, 0.1, 0.2)],
    },
    "tabular_mdp": {
        "eps_greedy": [{"eps": e} for e in (0.01, 0.02, 0.05, 0.1, 0.2)],
        "beb": [{"beta": b} for b in (0.1, 0.3, 0.5, 1.0, 2.0, 5.0)],
        "ucrl2": [
            {"c_reward": r, "c_transition": p}
            for r, p in itertools.product((0.1, 0.2, 0.4, 1.0), (0.0, 0.03, 0.1, 1.0))
        ],
    },
}
TUNE_TRIALS = {"bandit": 20000, "tabular_mdp": 2000}
MAX_TRIALS = {"bandit": 200_000, "tabular_mdp": 20_000}
CHUNK = {"bandit": 50_000, "tabular_mdp": 5_000}  # trials per call, bounding memory
FIRST_BATCH = {"bandit": 20_000, "tabular_mdp": 2_000}


class Setting:
    """One benchmark plus how to sample its tasks and run a policy on them."""

    def __init__(self, env: str, env_kwargs: dict[str, Any]) -> None:
        self.env = env
        if env == "bandit":
            self.bench = BernoulliBandit(**env_kwargs)
            self.module = bandit
        elif env == "tabular_mdp":
            self.bench = RandomTabularMDP(**env_kwargs)
            self.module = tabular
        else:
            raise ValueError(f"env={env!r} is unknown; valid: bandit, tabular_mdp")

    def sample(self, n: int, rng: np.random.Generator):
        tasks = self.bench.sample_tasks("test", n, rng)
        return np.stack(tasks) if self.env == "bandit" else tasks

    def run(self, policy, n: int, seed_words: tuple[int, ...]) -> np.ndarray:
        """Total rewards ``[n]`` of ``policy`` on ``n`` fresh tasks, all seeded by ``seed_words``."""
        task_seed, run_seed = np.random.SeedSequence(list(seed_words)).generate_state(2)
        tasks = self.sample(n, np.random.default_rng(int(task_seed)))
        return self.module.run_trials(policy, self.bench, tasks, int(run_seed))

    def paper(self) -> dict[str, float]:
        b = self.bench
        if self.env == "bandit":
            return PAPER.get(("bandit", b.arms, b.pulls), {})
        default = (b.states, b.actions, b.episode_length) == (10, 5, 10)
        return PAPER.get(("tabular_mdp", b.episodes_per_trial), {}) if default else {}


def evaluate(
    setting: Setting,
    make_policy: Callable[[], Any],
    seed: int,
    stream: int,
    trials: int | None,
    rel_ci: float,
    max_trials: int,
) -> np.ndarray:
    """Total rewards of as many trials as needed (see module doc); ``stream`` separates uses of ``seed``."""
    chunk = CHUNK[setting.env]
    totals: list[np.ndarray] = []
    done, target = 0, trials if trials is not None else min(FIRST_BATCH[setting.env], max_trials)
    for batch in itertools.count():
        while done < target:
            n = min(chunk, target - done)
            totals.append(setting.run(make_policy(), n, (seed, stream, batch, done)))
            done += n
        if trials is not None or done >= max_trials:
            break
        x = np.concatenate(totals)
        mean, half = mean_ci(x)
        if half <= rel_ci * abs(mean):
            break
        # Trials the CI target needs at the current spread, with 10% margin.
        needed = math.ceil(1.1 * (Z_95 * x.std(ddof=1) / (rel_ci * max(abs(mean), 1e-12))) ** 2)
        target = min(max_trials, max(needed, done + FIRST_BATCH[setting.env]))
    return np.concatenate(totals)


def tune(setting: Setting, name: str, seed: int) -> dict[str, float]:
    """The constants of ``TUNE_GRIDS`` with the best mean on tuning-only tasks and seeds."""
    best, best_kwargs = -np.inf, {}
    factory = setting.module.POLICIES[name]
    for kwargs in TUNE_GRIDS[setting.env][name]:
        # Stream 1 is for tuning only, so evaluation (stream 0) never sees these tasks.
        mean = setting.run(factory(**kwargs), TUNE_TRIALS[setting.env], (seed, 1, 0)).mean()
        if mean > best:
            best, best_kwargs = mean, kwargs
    return dict(best_kwargs)


def parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_args(argv: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {"env": None, "env_kwargs": {}, "policy_kwargs": {}, "json": False}
    top = {"baselines", "tune", "trials", "rel_ci", "max_trials", "seed", "out"}
    for arg in argv:
        if arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        if arg == "--json":
            args["json"] = True
            continue
        if "=" not in arg:
            raise SystemExit(f"expected key=value, got {arg!r} (see --help)")
        key, value = arg.split("=", 1)
        if key == "env":
            args["env"] = value
        elif key.startswith("env."):
            args["env_kwargs"][key[4:]] = parse_value(value)
        elif key in top:
            args[key] = value if key in ("baselines", "out") else parse_value(value)
        elif "." in key:
            name, kwarg = key.split(".", 1)
            args["policy_kwargs"].setdefault(name, {})[kwarg] = parse_value(value)
        else:
            raise SystemExit(f"unknown argument {key!r} (see --help)")
    if args["env"] is None:
        raise SystemExit("env=bandit or env=tabular_mdp is required (see --help)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        setting = Setting(args["env"], args["env_kwargs"])
    except (TypeError, ValueError) as e:
        raise SystemExit(str(e))
    policies = setting.module.POLICIES
    names = args.get("baselines", ",".join(policies)).split(",")
    unknown = [n for n in names + list(args["policy_kwargs"]) if n not in policies]
    if unknown:
        raise SystemExit(f"unknown baselines {unknown}; valid: {', '.join(policies)}")
    seed = int(args.get("seed", 0))
    trials = args.get("trials")
    rel_ci = float(args.get("rel_ci", 0.01))
    max_trials = int(args.get("max_trials", MAX_TRIALS[setting.env]))
    paper = setting.paper()

    start = time.time()
    rows = []
    for name in names:
        t0 = time.time()
        kwargs = dict(args["policy_kwargs"].get(name, {}))
        tuned = bool(args.get("tune", 0)) and name in TUNE_GRIDS[setting.env] and not kwargs
        if tuned:
            kwargs = tune(setting, name, seed)
        factory = policies[name]
        try:
            probe = factory(**kwargs)
        except (TypeError, ValueError) as e:
            raise SystemExit(f"{name}: {e}")
        row: dict[str, Any] = {"baseline": name, "label": probe.name, "params": kwargs, "tuned": tuned}
        if name == "bayes_optimal":
            try:  # the exact DP's expected value, when the DP is tractable
                row["exact"] = bandit.bayes_optimal_table(setting.bench.arms, setting.bench.pulls)[0][
                    ((0, 0),) * setting.bench.arms
                ]
            except bandit.Intractable as e:
                row.update(skipped=str(e), seconds=round(time.time() - t0, 2))
                rows.append(row)
                continue
        if name == "oracle" and setting.env == "bandit":
            k, n = setting.bench.arms, setting.bench.pulls
            row["exact"] = n * k / (k + 1)  # n · E[max of k Uniform(0, 1)]
        x = evaluate(setting, lambda: factory(**kwargs), seed, 0, trials, rel_ci, max_trials)
        mean, half = mean_ci(x)
        row.update(mean=mean, ci95=half, trials=int(x.size), seconds=round(time.time() - t0, 2))
        if name in paper:
            row["paper"] = paper[name]
        rows.append(row)

    result = {
        "env": setting.env,
        "env_kwargs": args["env_kwargs"],
        "seed": seed,
        "rel_ci": rel_ci,
        "rows": rows,
        "wall_seconds": round(time.time() - start, 1),
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
    }
    if args.get("out"):
        with open(args["out"], "w") as f:
            json.dump(result, f, indent=2)
    if args["json"]:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
    return result


def format_table(result: dict[str, Any]) -> str:
    kwargs = " ".join(f"{k}={v}" for k, v in result["env_kwargs"].items())
    lines = [
        f"env={result['env']} {kwargs}  seed={result['seed']}  (mean total reward per trial, 95% CI)",
        f"{'baseline':<50} {'mean':>9} {'± 95% CI':>9} {'trials':>8} {'paper':>7} {'exact':>8} {'sec':>6}",
    ]
    for r in result["rows"]:
        label = r["label"] + (" [tuned]" if r["tuned"] else "")
        if "skipped" in r:
            lines.append(f"{label:<50} skipped: {r['skipped']}")
            continue
        paper = f"{r['paper']:.1f}" if "paper" in r else "-"
        exact = f"{r['exact']:.3f}" if "exact" in r else "-"
        stats = f"{r['mean']:9.3f} {r['ci95']:9.3f} {r['trials']:8d}"
        lines.append(f"{label:<50} {stats} {paper:>7} {exact:>8} {r['seconds']:6.1f}")
    lines.append(f"total {result['wall_seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
