"""Hydra launchers (joblib, submitit local), the Optuna search, and the multirun report."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from meta_rl import checkpoint
from meta_rl.report import Stat, main as report_main, report, t975

ROOT = Path(__file__).resolve().parents[1]
TINY = ["debug=smoke", "env.meta_batch_size=10", "progress=false"]  # one iteration per job


def run_train(*args):
    """``python train.py ARGS`` from the repo root (as documented), W&B kept offline."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def job_seeds(sweep: Path) -> dict[str, int]:
    """Run dir name → seed saved in its checkpoint."""
    return {p.parent.parent.name: checkpoint.load(str(p))["config"]["seed"]
            for p in sorted(sweep.glob("*/checkpoints/latest.pt"))}


def check_two_seeds(p, sweep: Path) -> None:
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert job_seeds(sweep) == {"0_seed=0": 0, "1_seed=1": 1}


def test_joblib_launcher(tmp_path):
    sweep = tmp_path / "sweep"
    p = run_train("-m", "seed=0,1", *TINY, "hydra/launcher=joblib", f"hydra.sweep.dir={sweep}")
    check_two_seeds(p, sweep)
    hydra_cfg = OmegaConf.load(sweep / "0_seed=0" / ".hydra" / "hydra.yaml")
    assert hydra_cfg.hydra.launcher._target_.endswith("JoblibLauncher") and hydra_cfg.hydra.launcher.n_jobs == 2
    # the report of that sweep: one group, both seeds
    out = report(str(sweep), make_plot=False)
    (group,) = out["groups"]
    assert group["final"]["train/success"]["n"] == 2
    assert sorted(r["seed"] for r in group["runs"]) == [0, 1]


def test_submitit_local_launcher(tmp_path):
    sweep = tmp_path / "sweep"
    p = run_train("-m", "seed=0,1", *TINY, "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep}")
    check_two_seeds(p, sweep)
    assert list((sweep / ".submitit").glob("*/*_log.out"))  # the jobs went through submitit


def test_slurm_preset_composes():
    p = run_train("hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1",
                  "--cfg", "hydra", "-p", "hydra.launcher")
    assert p.returncode == 0, p.stderr[-2000:]
    launcher = OmegaConf.create(p.stdout.split("\n", 1)[1])  # after "# @package hydra.launcher"
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.cpus_per_task) == ("gpu", 1, 8)
    assert launcher.timeout_min > 0 and launcher.mem_gb > 0


def test_optuna_search(tmp_path):
    """`hparams_search=ml10_optuna` is a multirun by itself and reports the best trial."""
    sweep = tmp_path / "search"
    p = run_train("hparams_search=ml10_optuna", "hydra.sweeper.n_trials=2", *TINY, f"hydra.sweep.dir={sweep}")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    result = OmegaConf.load(sweep / "optimization_results.yaml")
    assert result.name == "optuna"
    assert isinstance(result.best_value, float) and 0.0 <= result.best_value <= 1.0
    best = result.best_params
    assert set(best) == {"algo.lr", "algo.entropy_coef", "algo.clip"}
    assert 1e-4 <= best["algo.lr"] <= 2e-3 and 0.0 <= best["algo.entropy_coef"] <= 0.01
    assert best["algo.clip"] in (0.1, 0.2, 0.3)
    trials = sorted(sweep.glob("*/checkpoints/latest.pt"))
    assert len(trials) == 2
    lrs = {checkpoint.load(str(t))["config"]["algo"]["lr"] for t in trials}
    assert len(lrs) == 2 and any(best["algo.lr"] == pytest.approx(x) for x in lrs)


# ------------------------------------------------------------------ report


def write_run(root: Path, name: str, seed: int, rows: list[dict], overrides: list[str] | None = None) -> None:
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides or [f"seed={seed}"]), d / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"seed": seed, "name": "rl2"}), d / "resolved_config.yaml")
    fields = ["step"] + sorted({k for r in rows for k in r if k != "step"})
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)


def synthetic_sweep(root: Path) -> None:
    """Three seeds; final train/success 0.2, 0.4, 0.6; eval only every other row."""
    finals = {0: 0.2, 1: 0.4, 2: 0.6}
    for seed, final in finals.items():
        write_run(root, f"{seed}_seed={seed}", seed, [
            {"step": 100, "train/success": 0.0, "train/success/reach-v3": 0.0, "train/success/push-v3": 0.0,
             "eval/test/success": 0.1 * seed, "eval/test/success/door-close-v3": 0.1 * seed,
             "train/success_by_episode/01": 0.5},
            {"step": 200, "train/success": final, "train/success/reach-v3": 2 * final, "train/success/push-v3": 0.0,
             "train/success_by_episode/01": 0.5, "losses/value_loss": 1.0},
        ])


def test_t_quantiles():
    assert t975(1) == pytest.approx(12.7062, abs=1e-4)
    assert t975(2) == pytest.approx(4.3027, abs=1e-4)
    assert t975(30) == pytest.approx(2.0423, abs=1e-4)
    assert t975(40) == pytest.approx(2.0211, abs=1e-4)
    assert t975(120) == pytest.approx(1.9799, abs=1e-4)
    s = Stat([0.2, 0.4, 0.6])
    assert (s.n, s.mean, s.std) == (3, pytest.approx(0.4), pytest.approx(0.2))
    assert s.half_width == pytest.approx(4.302653 * 0.2 / math.sqrt(3))
    one = Stat([0.5])
    assert one.mean == 0.5 and one.ci95 is None and one.half_width is None


def test_report_on_synthetic_sweep(tmp_path, capsys):
    synthetic_sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    assert report_main([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| train/success | 3 | 0.400 | [-0.097, 0.897] | 0.497 |" in printed

    data = json.loads((out / "report.json").read_text())
    (g,) = data["groups"]
    final = g["final"]
    assert list(final)[:2] == ["eval/test/success", "train/success"]  # headline metrics first
    assert set(final) == {"train/success", "train/success/reach-v3", "train/success/push-v3",
                          "eval/test/success", "eval/test/success/door-close-v3"}  # not by-episode/losses
    tr = final["train/success"]
    hw = 4.302653 * 0.2 / math.sqrt(3)
    assert tr["n"] == 3 and tr["mean"] == pytest.approx(0.4) and tr["half_width"] == pytest.approx(hw)
    assert tr["ci95"] == [pytest.approx(0.4 - hw), pytest.approx(0.4 + hw)]
    assert sorted(tr["values"]) == pytest.approx([0.2, 0.4, 0.6])
    assert final["train/success/reach-v3"]["mean"] == pytest.approx(0.8)
    assert final["train/success/push-v3"] == {"n": 3, "mean": 0.0, "std": 0.0, "half_width": 0.0,
                                              "ci95": [0.0, 0.0], "values": [0.0, 0.0, 0.0]}
    # eval metrics: the last logged value (step 100) counts as final: 0.0, 0.1, 0.2
    assert final["eval/test/success"]["mean"] == pytest.approx(0.1)
    assert final["eval/test/success"]["std"] == pytest.approx(0.1)
    curve = g["curves"]["train/success"]
    assert curve["step"] == [100, 200] and curve["n"] == [3, 3]
    assert curve["mean"] == [pytest.approx(0.0), pytest.approx(0.4)]
    assert curve["ci_high"][1] == pytest.approx(0.4 + hw)
    assert sorted(r["seed"] for r in g["runs"]) == [0, 1, 2]
    # no machine paths: root as named, runs relative to it
    assert data["root"] == str(tmp_path / "sweep")
    assert sorted(r["path"] for r in g["runs"]) == sorted(
        os.path.relpath(d, tmp_path / "sweep") for d, _, f in os.walk(tmp_path / "sweep") if "metrics.csv" in f)
    assert all(not os.path.isabs(r["path"]) and not r["path"].startswith("..") for r in g["runs"])

    md = (out / "report.md").read_text()
    assert "3 run(s), seeds 0, 1, 2" in md and "| eval/test/success | 3 | 0.100 |" in md
    png = out / "success.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_report_groups_by_overrides_besides_seed(tmp_path):
    root = tmp_path / "sweep"
    for i, (lr, seed, final) in enumerate([("1e-4", 0, 0.0), ("1e-4", 1, 0.5), ("1e-3", 0, 1.0)]):
        write_run(root, f"{i}", seed, [{"step": 10, "train/success": final}], [f"algo.lr={lr}", f"seed={seed}"])
    out = report(str(root), make_plot=True)
    groups = {g["name"]: g for g in out["groups"]}
    assert set(groups) == {"algo.lr=1e-4", "algo.lr=1e-3"}
    assert groups["algo.lr=1e-4"]["final"]["train/success"]["mean"] == pytest.approx(0.25)
    single = groups["algo.lr=1e-3"]["final"]["train/success"]
    assert single["n"] == 1 and single["ci95"] is None
    assert "## algo.lr=1e-3" in out["markdown"] and (root / "success.png").exists()
    merged = report(str(root), str(tmp_path / "all"), by_overrides=False, make_plot=False)
    assert [g["final"]["train/success"]["n"] for g in merged["groups"]] == [3]


def test_report_cli_errors(tmp_path):
    p = subprocess.run([sys.executable, "-m", "meta_rl.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "no metrics.csv under" in p.stderr


def test_optuna_study_storage_in_sqlite(tmp_path):
    """`hydra.sweeper.storage=sqlite:///...` keeps a study that a later search continues."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    again = optuna.create_study(storage=url, study_name="s", direction="maximize", load_if_exists=True)
    again.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    assert len(optuna.load_study(storage=url, study_name="s").trials) == 3
