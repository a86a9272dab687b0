"""Reproduce the bandit and tabular-MDP tables of RL² (Duan et al. 2016, Tables 1 and 2).

For every row (a setting with its experiment preset in ``conf/experiment/``) this

1. trains RL² in-process with ``meta_rl.experiment.train`` on the preset
   (``python train.py experiment=<preset>`` does the same), once per seed, timing each run;
2. evaluates the trained agent (the final checkpoint, not the one picked by the
   during-training evaluation) on the benchmark's fixed test tasks (``all_tasks("test")``,
   1000 tasks) with sampled actions, one trial per task for each of ``eval_seeds`` outcome
   seeds, scoring the total reward per trial (all pulls / all episodes);
3. runs the hand-designed baselines of :mod:`meta_rl.baselines` on the *same* test tasks
   with the same outcome seeds (constants tuned by ``meta_rl.baselines``' own grid search
   on disjoint tasks when ``tune=1``);
4. prints and writes a table in the paper's layout (rows = settings; columns = baselines,
   RL² ours, RL² paper) as Markdown and JSON.

Usage (``key=value`` arguments, in any order)::

    python -m meta_rl.reproduce                                  # all rows
    python -m meta_rl.reproduce rows=bandit_k5_n10,mdp_n10 out=repro
    python -m meta_rl.reproduce rows=bandit_k5_n10 seeds=0,1,2 eval_seeds=5
    python -m meta_rl.reproduce rows=bandit_k2_n10 train.total_env_steps=100000

Arguments:
    rows=a,b,...      rows to run (default: all of ROWS except the k=2 check row and the
                      ``*_aux*`` rows of RL² with the task-inference loss; ``mdp_n25_aux_curriculum``
                      and ``mdp_n25_aux_posterior_curriculum`` train two stages, n=10 then
                      n=25 from its weights; ``mdp_n10_aux_trial``
                      two phases, the second from the first's weights).
    seeds=0,1         training seeds (default 0).
    eval_seeds=N      outcome seeds of the evaluation (default 3: 3 x 1000 trials per row).
    tune=0|1          tune the baselines' constants first (default 1, as the paper did).
    out=DIR           output directory (default ``outputs/reproduce/<time>``): ``results.md``,
                      ``results.json`` and one training run dir per row and seed under ``runs/``.
    train.<key>=v     a Hydra override for every training run, both stages of a two-stage row
                      included (e.g. ``train.total_env_steps=100000``).
    pretrain.<key>=v  an override for the first stage of a two-stage row only (after ``train.``).
    final.<key>=v     an override for the row's own run only: the second stage of a two-stage row,
                      the only run of the others (after ``train.``).
    reuse=0|1         evaluate a row's finished run in ``out`` instead of training it again
                      (its recorded training wall time is reported).

Rows already in ``out/results.json`` from an earlier invocation are kept, so rows can be
produced one command at a time into the same ``out``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hydra.errors import HydraException

from meta_rl.baselines import bandit as bandit_baselines
from meta_rl.baselines import mean_ci
from meta_rl.baselines import tabular as tabular_baselines
from meta_rl.baselines.__main__ import PAPER as PAPER_BASELINES
from meta_rl.baselines.__main__ import TUNE_GRIDS, Setting, tune
from meta_rl.errors import ConfigError

CONF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")


@dataclass
class Row:
    """One setting of the paper's tables."""

    name: str
    preset: str  # conf/experiment/<preset>.yaml
    env: str  # "bandit" | "tabular_mdp"
    env_kwargs: dict[str, int]
    label: str
    rl2_paper: float | None
    target: tuple[str, float] | None  # (paper baseline, its value) that our RL² must reach
    baselines: list[str] = field(default_factory=list)
    # A first training stage whose final weights start this row's run (``init_weights``):
    # (its preset, its overrides). The row's train wall and env steps count both stages.
    pretrain: tuple[str, tuple[str, ...]] | None = None


BANDIT_BASELINES = ["random", "gittins", "thompson", "ucb1", "eps_greedy", "greedy"]
MDP_BASELINES = ["random", "psrl", "beb", "eps_greedy", "greedy", "ucrl2"]

# RL²'s mean total reward per trial in Duan et al. (2016), Tables 1 and 2.
ROWS: dict[str, Row] = {
    r.name: r
    for r in [
        Row("bandit_k2_n10", "rl2_bandit_k2_n10", "bandit", {"arms": 2, "pulls": 10},
            "bandit k=2, n=10 (not in the paper)", None, None, BANDIT_BASELINES),
        Row("bandit_k5_n10", "rl2_bandit_k5_n10", "bandit", {"arms": 5, "pulls": 10},
            "bandit k=5, n=10", 6.7, ("gittins", 6.6), BANDIT_BASELINES),
        Row("bandit_k10_n10", "rl2_bandit_k10_n10", "bandit", {"arms": 10, "pulls": 10},
            "bandit k=10, n=10", 6.7, ("gittins", 6.6), BANDIT_BASELINES),
        Row("bandit_k5_n100", "rl2_bandit_k5_n100", "bandit", {"arms": 5, "pulls": 100},
            "bandit k=5, n=100", 78.7, ("gittins", 78.3), BANDIT_BASELINES),
        Row("mdp_n10", "rl2_mdp_n10", "tabular_mdp", {"episodes": 10},
            "tabular MDP n=10", 156.2, ("psrl", 138.1), MDP_BASELINES),
        Row("mdp_n25", "rl2_mdp_n25", "tabular_mdp", {"episodes": 25},
            "tabular MDP n=25", 445.7, ("psrl", 408.8), MDP_BASELINES),
        # RL² + the task-inference loss (algo.aux_task_coef): a variant, not the paper's method.
        Row("mdp_n10_aux", "rl2_aux_mdp_n10", "tabular_mdp", {"episodes": 10},
            "tabular MDP n=10, RL² + task-inference loss", 156.2, ("psrl", 138.1), MDP_BASELINES),
        Row("mdp_n25_aux", "rl2_aux_mdp_n25", "tabular_mdp", {"episodes": 25},
            "tabular MDP n=25, RL² + task-inference loss", 445.7, ("psrl", 408.8), MDP_BASELINES),
        Row("mdp_n25_aux_curriculum", "rl2_aux_mdp_n25_curriculum", "tabular_mdp", {"episodes": 25},
            "tabular MDP n=25, RL² + task-inference loss, after 12M steps of n=10", 445.7, ("psrl", 408.8),
            MDP_BASELINES, pretrain=("rl2_aux_mdp_n10", ("total_env_steps=12000000",))),
        # The same loss against the trial's own estimates of the features (algo.aux_task_target=trial):
        # no hidden task parameters in training either; still not the paper's method.
        Row("mdp_n10_aux_trial", "rl2_aux_trial_mdp_n10_finetune", "tabular_mdp", {"episodes": 10},
            "tabular MDP n=10, RL² + task-inference loss on the trial's own estimates, 20M + 5M steps", 156.2,
            ("psrl", 138.1), MDP_BASELINES, pretrain=("rl2_aux_trial_mdp_n10", ())),
        # The same curriculum regressing the trial's posterior means (algo.aux_task_target=posterior),
        # its first stage with the entropy bonus decaying 0.08 -> 0.02: nothing hidden is read either.
        Row("mdp_n25_aux_posterior_curriculum", "rl2_aux_posterior_mdp_n25_curriculum", "tabular_mdp",
            {"episodes": 25}, "tabular MDP n=25, RL² + task-inference loss on the trial's posterior means, "
            "after 12M steps of n=10", 445.7, ("psrl", 408.8), MDP_BASELINES,
            pretrain=("rl2_aux_posterior_mdp_n10", ())),
    ]
}
# The paper's rows: not the k=2 check row nor the variants (name them in rows=... to run them).
DEFAULT_ROWS = [n for n in ROWS if n != "bandit_k2_n10" and "_aux" not in n]


def paper_baselines(row: Row) -> dict[str, float]:
    kw = row.env_kwargs
    if row.env == "bandit":
        return PAPER_BASELINES.get(("bandit", kw["arms"], kw["pulls"]), {})
    return PAPER_BASELINES.get(("tabular_mdp", kw["episodes"]), {})


def compose_train_config(preset: str, run_dir: str, seed: int, overrides: list[str] = ()):
    """The training config of ``python train.py experiment=<preset> seed=<seed> <overrides>``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from meta_rl.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose("train", overrides=[f"experiment={preset}", f"seed={seed}", f"run_dir={run_dir}",
                                               "progress=false", *overrides])
    except HydraException as e:  # an override that does not parse or names no key
        raise ConfigError(f"experiment={preset} with {' '.join(overrides) or 'no overrides'}: "
                          f"{' '.join(str(e).split())}") from e
    finally:
        GlobalHydra.instance().clear()


def training_stages(row: Row, overrides: list[str], pretrain_overrides: list[str] = (),
                    final_overrides: list[str] = ()) -> list[tuple[str, list[str]]]:
    """``(preset, overrides)`` of each training run of a row, in order: its first stage (two-stage
    rows), then its own run (which starts from the first stage's final weights)."""
    if pretrain_overrides and row.pretrain is None:
        raise ConfigError(f"row {row.name} has one training stage: pretrain.* overrides apply only to the first "
                          "stage of a two-stage row; use train.* or final.* for it")
    stages = []
    if row.pretrain is not None:
        preset, row_first = row.pretrain
        stages.append((preset, [*row_first, *overrides, *pretrain_overrides]))
    return [*stages, (row.preset, [*overrides, *final_overrides])]


def check_configs(rows: list[str], seeds: list[int], overrides: list[str], pretrain_overrides: list[str],
                  final_overrides: list[str]) -> None:
    """Compose and validate every training run's config before any trains, so that a bad override
    stops the command at once rather than after the runs before it (:class:`ConfigError`)."""
    from meta_rl.config import validate

    for name in rows:
        stages = training_stages(ROWS[name], overrides, pretrain_overrides, final_overrides)
        for seed in seeds:
            for i, (preset, stage) in enumerate(stages):
                start = ["init_weights=first_stage/checkpoints/latest.pt"] if i else []  # not read here
                validate(compose_train_config(preset, "run_dir_unused", seed, [*stage, *start]))


def evaluation_seeds(n: int) -> list[int]:
    """Outcome seeds of the evaluation (shared by RL² and the baselines)."""
    return [int(s) for s in np.random.SeedSequence(20160000).generate_state(n)]


def evaluate_checkpoint(run_dir: str, seeds: list[int], checkpoint: str = "latest",
                        mode: bool = False) -> np.ndarray:
    """Total reward per trial ``[len(seeds) * 1000]`` of a trained run on all test tasks.

    Each seed plays one trial per test task over the whole trial, with sampled actions
    (the training policy; the reported protocol) or, with ``mode``, the most likely action.
    """
    import torch
    from omegaconf import OmegaConf

    from meta_rl import checkpoint as ckpt
    from meta_rl.evaluation import MetaEvaluator
    from meta_rl.experiment import build_benchmark, build_model

    state = ckpt.load(os.path.join(run_dir, "checkpoints", f"{checkpoint}.pt"), map_location="cpu")
    cfg = OmegaConf.create(state["config"])
    cfg.device = "cpu"
    benchmark = build_benchmark(cfg)
    model = build_model(cfg, benchmark)
    model.load_state_dict(state["model"])
    model.eval()
    tasks = benchmark.all_tasks("test")
    evaluator = MetaEvaluator(benchmark, model, benchmark.episodes_per_trial, 0, num_envs=min(500, len(tasks)))
    totals = []
    try:
        with torch.no_grad():
            for s in seeds:
                B = evaluator.env.num_envs
                evaluator.generator.manual_seed(s)
                evaluator.env.reseed(s)
                for start in range(0, len(tasks), B):
                    chunk = tasks[start : start + B]
                    batch = evaluator.collector.collect(chunk + [chunk[0]] * (B - len(chunk)),
                                                        explore_episodes=0 if mode else benchmark.episodes_per_trial)
                    totals.append(batch.episode_returns()[:, : len(chunk)].sum(0).cpu().numpy())
    finally:
        evaluator.close()
    return np.concatenate(totals).astype(np.float64)


def run_baselines(row: Row, seeds: list[int], do_tune: bool,
                  tune_seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Each baseline of ``row`` on all test tasks, one trial per task and seed (in RL²'s order).

    Returns the table rows and each baseline's totals ``[len(seeds) * 1000]``.
    """
    setting = Setting(row.env, row.env_kwargs)
    tasks = setting.bench.all_tasks("test")
    tasks = np.stack(tasks) if row.env == "bandit" else tasks
    module = bandit_baselines if row.env == "bandit" else tabular_baselines
    out = []
    trials: dict[str, np.ndarray] = {}
    for name in row.baselines:
        t0 = time.time()
        kwargs = tune(setting, name, tune_seed) if do_tune and name in TUNE_GRIDS[row.env] else {}
        x = np.concatenate([module.run_trials(module.POLICIES[name](**kwargs), setting.bench, tasks, s)
                            for s in seeds])
        trials[name] = x
        mean, half = mean_ci(x)
        out.append({"baseline": name, "params": kwargs, "tuned": bool(kwargs), "mean": mean, "ci95": half,
                    "trials": int(x.size), "paper": paper_baselines(row).get(name),
                    "seconds": round(time.time() - t0, 1)})
    return out, trials


def _env_steps(run_dir: str) -> int:
    from meta_rl import checkpoint as ckpt

    return int(ckpt.load(os.path.join(run_dir, "checkpoints", "latest.pt"), map_location="cpu")["env_steps"])


def run_row(row: Row, seeds: list[int], eval_seeds: list[int], do_tune: bool, out_dir: str,
            overrides: list[str], reuse: bool = False, command: str = "",
            pretrain_overrides: list[str] = (), final_overrides: list[str] = ()) -> dict[str, Any]:
    """Train (or with ``reuse`` read back), evaluate and tabulate one row. ``overrides`` go to every
    training run of the row, ``pretrain_overrides`` to its first stage only, ``final_overrides`` to
    its own run only (the second stage of a two-stage row)."""
    from meta_rl.experiment import train

    *first_stage, (_, stage_overrides) = training_stages(row, overrides, pretrain_overrides, final_overrides)

    runs = []
    per_trial: list[np.ndarray] = []  # RL²'s totals [eval seed x test task] per training seed
    for seed in seeds:
        first_steps = 0  # env steps of the first stage (row.pretrain)
        run_dir = os.path.join(out_dir, "runs", row.name, f"seed{seed}")
        done_file = os.path.join(run_dir, "reproduce_train.json")
        if reuse and os.path.isfile(done_file):
            with open(done_file) as f:
                done = json.load(f)
            wall, train_command = done["train_seconds"], done.get("command")
            first_steps = done.get("pretrain_env_steps", 0)
            print(f"== {row.label}: reusing the finished run {run_dir}", flush=True)
        else:
            if os.path.isdir(os.path.join(run_dir, "checkpoints")):
                hint = ("it did not finish (no reproduce_train.json): remove it to train it again, or pass another out="
                        if reuse else "pass reuse=1 to evaluate it, or another out=")
                raise SystemExit(f"{run_dir} already holds a run: {hint}")
            t0 = time.time()
            start = []  # init_weights of the row's run: the first stage's final checkpoint
            if first_stage:
                ((preset, first_overrides),) = first_stage
                first = run_dir + "_pretrain"
                first_done = os.path.join(first, "reproduce_train.json")
                if reuse and os.path.isfile(first_done):  # the second stage of an earlier call did not finish
                    with open(first_done) as f:
                        done_first = json.load(f)
                    trained_with = done_first.get("overrides")  # not recorded before per-stage overrides
                    if trained_with is not None and trained_with != first_overrides:
                        raise SystemExit(f"{first} was trained with the overrides {trained_with}, not {first_overrides}: "
                                         "give the same train.*/pretrain.* overrides to reuse it, or another out=")
                    t0 -= done_first["train_seconds"]
                    print(f"== {row.label}: reusing the finished first stage {first}", flush=True)
                elif os.path.isdir(os.path.join(first, "checkpoints")):
                    raise SystemExit(f"{first} already holds a run: pass reuse=1 to reuse it if it finished, "
                                     "or another out=")
                else:
                    print(f"== {row.label}: training the first stage {preset} seed {seed} -> {first}", flush=True)
                    train(compose_train_config(preset, first, seed, first_overrides))
                    with open(first_done, "w") as f:
                        json.dump({"train_seconds": time.time() - t0, "preset": preset, "seed": seed,
                                   "overrides": first_overrides}, f)
                first_steps = _env_steps(first)
                start = [f"init_weights={os.path.join(first, 'checkpoints', 'latest.pt')}"]
            print(f"== {row.label}: training {row.preset} seed {seed} -> {run_dir}", flush=True)
            train(compose_train_config(row.preset, run_dir, seed, [*stage_overrides, *start]))
            wall = time.time() - t0
            train_command = command
            with open(done_file, "w") as f:
                json.dump({"train_seconds": wall, "preset": row.preset, "seed": seed, "overrides": stage_overrides,
                           "command": command, "pretrain_env_steps": first_steps}, f)
        t1 = time.time()
        x = evaluate_checkpoint(run_dir, eval_seeds)
        per_trial.append(x)
        x_mode = evaluate_checkpoint(run_dir, eval_seeds, mode=True)
        mean, half = mean_ci(x)
        state_steps = _env_steps(run_dir) + first_steps
        runs.append({"seed": seed, "run_dir": run_dir, "train_seconds": round(wall, 1), "train_command": train_command,
                     "env_steps": state_steps, "mean": mean, "ci95": half, "trials": int(x.size),
                     "mean_mode_actions": float(x_mode.mean()), "eval_seconds": round(time.time() - t1, 1)})
        print(f"   RL² seed {seed}: {mean:.3f} ± {half:.3f} per trial (most likely actions: {x_mode.mean():.3f}), "
              f"trained in {wall / 60:.1f} min", flush=True)
    means = np.array([r["mean"] for r in runs])
    print(f"== {row.label}: baselines on the same test tasks", flush=True)
    baselines, baseline_trials = run_baselines(row, eval_seeds, do_tune)
    result = {
        "row": row.name, "label": row.label, "preset": row.preset, "env": row.env, "env_kwargs": row.env_kwargs,
        "rl2": {"mean": float(means.mean()), "seed_std": float(means.std(ddof=1)) if len(means) > 1 else None,
                "mean_mode_actions": float(np.mean([r["mean_mode_actions"] for r in runs])),
                "ci95": runs[0]["ci95"] if len(runs) == 1 else None, "runs": runs,
                "paper": row.rl2_paper},
        "baselines": baselines,
        "target": None,
    }
    if row.target is not None:
        name, value = row.target
        ours = next((b for b in baselines if b["baseline"] == name), None)
        result["target"] = {"baseline": name, "paper_value": value, "reached": bool(means.mean() >= value),
                            "baseline_same_tasks": None if ours is None else ours["mean"]}
        if name in baseline_trials:
            # Paired over test tasks (same task, same outcome seed index; outcomes differ with the actions).
            d = np.mean([x - baseline_trials[name] for x in per_trial], axis=0)
            dm, dh = mean_ci(d)
            result["target"].update(delta_same_tasks=dm, delta_ci95=dh)
    return result


def format_value(mean: float | None, ci: float | None = None, digits: int = 2) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {ci:.{digits}f}" if ci is not None and np.isfinite(ci) else "")


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "Mean total reward per trial on the 1000 fixed test tasks "
        f"({meta['eval_seeds']} outcome seed(s) each, ± 95% CI over trials); paper values in parentheses.",
        "",
    ]
    for env in ("bandit", "tabular_mdp"):
        rows = [r for r in results if r["env"] == env]
        if not rows:
            continue
        names = list(dict.fromkeys(b["baseline"] for r in rows for b in r["baselines"]))
        head = ["setting"] + names + ["RL² (ours)", "RL² (ours, most likely actions)", "RL² (paper)", "target",
                                      "train wall", "seeds", "env steps"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [r["label"]]
            by_name = {b["baseline"]: b for b in r["baselines"]}
            d = 1 if env == "tabular_mdp" or r["env_kwargs"].get("pulls", 0) >= 100 else 2
            for n in names:
                b = by_name.get(n)
                if b is None:
                    cells.append("–")
                    continue
                c = format_value(b["mean"], b["ci95"], d)
                if b["paper"] is not None:
                    c += f" ({b['paper']:.1f})"
                cells.append(c)
            rl2 = r["rl2"]
            ours = format_value(rl2["mean"], rl2["ci95"], d)
            if rl2["seed_std"] is not None:
                ours += f" (std over seeds {rl2['seed_std']:.{d}f})"
            cells.append(f"**{ours}**")
            cells.append(format_value(rl2["mean_mode_actions"], None, d))
            cells.append(format_value(rl2["paper"], None, 1))
            t = r["target"]
            if t is None:
                cells.append("–")
            else:
                c = f"≥ {t['paper_value']} (paper {t['baseline']}): {'reached' if t['reached'] else 'not reached'}"
                if t.get("delta_same_tasks") is not None:
                    c += f"; RL² − {t['baseline']} on the same tasks {t['delta_same_tasks']:+.{d}f} ± {t['delta_ci95']:.{d}f}"
                cells.append(c)
            walls = [x["train_seconds"] / 60 for x in rl2["runs"]]
            cells.append(", ".join(f"{w:.1f} min" for w in walls))
            cells.append(",".join(str(x["seed"]) for x in rl2["runs"]))
            cells.append(f"{rl2['runs'][0]['env_steps']:,}")
            lines.append("| " + " | ".join(cells) + " |")
        tuned = sorted({f"{b['baseline']} {b['params']}" for r in rows for b in r["baselines"] if b["tuned"]})
        if tuned:
            lines.append("")
            lines.append("Tuned constants: " + "; ".join(
                f"{r['label']}: " + ", ".join(f"{b['baseline']} " + " ".join(f"{k}={v}" for k, v in b["params"].items())
                                               for b in r["baselines"] if b["tuned"]) for r in rows))
        lines.append("")
    lines.append(f"Machine: {meta['machine']}.")
    lines.append("")
    for r in results:
        trained = {x.get("train_command") for x in r["rl2"]["runs"]} - {None}
        lines.append(f"- {r['label']}: trained by {'`' + '`, `'.join(sorted(trained)) + '`' if trained else '(not recorded)'}; "
                     f"evaluated by `{r.get('command', meta['command'])}`")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {"rows": DEFAULT_ROWS, "seeds": [0], "eval_seeds": 3, "tune": True, "out": None,
                            "overrides": [], "pretrain_overrides": [], "final_overrides": [], "reuse": False}
    for arg in argv:
        if arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        if "=" not in arg:
            raise SystemExit(f"expected key=value, got {arg!r} (see --help)")
        key, value = arg.split("=", 1)
        if key == "rows":
            args["rows"] = [r for r in value.split(",") if r]
            unknown = [r for r in args["rows"] if r not in ROWS]
            if unknown:
                raise SystemExit(f"unknown rows {unknown}; valid: {', '.join(ROWS)}")
        elif key == "seeds":
            args["seeds"] = [int(s) for s in value.split(",")]
        elif key == "eval_seeds":
            args["eval_seeds"] = int(value)
        elif key == "tune":
            args["tune"] = value.lower() in ("1", "true", "yes")
        elif key == "reuse":
            args["reuse"] = value.lower() in ("1", "true", "yes")
        elif key == "out":
            args["out"] = value
        elif key.startswith(("train.", "pretrain.", "final.")):
            prefix, _, override = key.partition(".")
            args["overrides" if prefix == "train" else f"{prefix}_overrides"].append(f"{override}={value}")
        else:
            raise SystemExit(f"unknown argument {key!r} (see --help)")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    check_configs(args["rows"], args["seeds"], args["overrides"], args["pretrain_overrides"], args["final_overrides"])
    out_dir = args["out"] or os.path.join("outputs", "reproduce", time.strftime("%Y-%m-%d_%H-%M-%S"))
    os.makedirs(out_dir, exist_ok=True)
    eval_seeds = evaluation_seeds(args["eval_seeds"])
    import torch

    meta = {
        "command": "python -m meta_rl.reproduce " + " ".join(argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}, "
                   f"Python {platform.python_version()}, torch {torch.__version__}",
        "eval_seeds": args["eval_seeds"],
        "seeds": args["seeds"],
        "overrides": args["overrides"],
        "pretrain_overrides": args["pretrain_overrides"],
        "final_overrides": args["final_overrides"],
    }
    # Rows already in out/results.json (from earlier invocations) are kept unless run again.
    previous: list[dict[str, Any]] = []
    path = os.path.join(out_dir, "results.json")
    if os.path.isfile(path):
        with open(path) as f:
            previous = [r for r in json.load(f)["rows"] if r["row"] not in args["rows"]]
    results = list(previous)
    for name in args["rows"]:
        result = run_row(ROWS[name], args["seeds"], eval_seeds, args["tune"], out_dir, args["overrides"],
                         args["reuse"], meta["command"], args["pretrain_overrides"], args["final_overrides"])
        result["command"] = meta["command"]
        results.append(result)
        results.sort(key=lambda r: list(ROWS).index(r["row"]))
        # Rewrite after every row, so a long run leaves its finished rows behind.
        with open(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump({"meta": meta, "rows": results}, f, indent=2)
        with open(os.path.join(out_dir, "results.md"), "w") as f:
            f.write(markdown(results, meta))
    text = markdown(results, meta)
    print(text)
    print(f"wrote {os.path.join(out_dir, 'results.md')} and results.json")
    return results


if __name__ == "__main__":
    from meta_rl.cli import job

    job(main)()  # our errors end it with one line and their exit code, as in train.py
