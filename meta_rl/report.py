"""Summarise a multirun offline: success across seeds, per class, with 95% confidence intervals.

    python -m meta_rl.report multirun/rl2/ml10/2026-01-01_12-00-00
    python -m meta_rl.report <dir> --out reports/ml10 --no-plot

Reads every job's ``metrics.csv`` under the directory (one per run dir) and, for each
success metric present — ``train/success``, ``eval/test/success``, ``eval/train/success``
and their per-class ``.../success/<class>`` columns — takes each job's final value (its
last logged one), then the mean and a 95% Student-t confidence interval across jobs
(``mean ± t(0.975, n-1) · s / √n``; no interval for a single job). Jobs are grouped by
their Hydra overrides without ``seed`` (``.hydra/overrides.yaml``), so a sweep over e.g.
``algo.lr=1e-4,1e-3`` and ``seed=0,1,2`` gives one summary per learning rate.

Writes ``report.json``, ``report.md`` and ``success.png`` (mean ± CI of the success
metrics vs env steps) into ``--out`` (default: the directory itself), and prints the
table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

SUCCESS = re.compile(r"^(train|eval/test|eval/train)/success(/[^/]+)?$")
HEADLINE = ("eval/test/success", "eval/train/success", "train/success")  # plotted, listed first
IGNORED_OVERRIDES = re.compile(r"^[+~]*(seed|run_dir|hydra\.[^=]*|progress|resume|auto_resume)=")

# Two-sided 95% quantiles t(0.975, df) of Student's t distribution, df = 1..30.
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
         2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
         2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
         2.048407, 2.045230, 2.042272)


def t975(df: int) -> float:
    """t(0.975, df); exact to 6 digits up to df=30, a Cornish-Fisher expansion beyond."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963985
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


@dataclass
class Stat:
    """Mean and 95% CI of ``values`` (``ci95`` and ``half_width`` are None for n < 2)."""

    values: list[float]
    n: int = 0
    mean: float = math.nan
    std: float | None = None
    half_width: float | None = None
    ci95: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.n = len(self.values)
        if self.n == 0:
            return
        self.mean = sum(self.values) / self.n
        if self.n > 1:
            self.std = math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (self.n - 1))
            self.half_width = t975(self.n - 1) * self.std / math.sqrt(self.n)
            self.ci95 = (self.mean - self.half_width, self.mean + self.half_width)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "half_width": self.half_width,
                "ci95": list(self.ci95) if self.ci95 else None, "values": self.values}


@dataclass
class Job:
    """One run dir: its metrics (column → [(step, value)]), seed and overrides."""

    path: str
    seed: int | None
    overrides: list[str]
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def final(self, metric: str) -> float | None:
        s = self.series.get(metric)
        return s[-1][1] if s else None


@dataclass
class Group:
    name: str
    overrides: list[str]
    jobs: list[Job]
    final: dict[str, Stat] = field(default_factory=dict)
    curves: dict[str, dict[str, list]] = field(default_factory=dict)


# ------------------------------------------------------------------ reading


def read_metrics(path: str) -> dict[str, list[tuple[int, float]]]:
    """``metrics.csv`` → column → [(step, value)] over the rows where it was logged, by step."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                step = int(float(row.get("step") or ""))
            except ValueError:
                continue
            for key, v in row.items():
                if key == "step" or key is None or v in (None, ""):
                    continue
                try:
                    series.setdefault(key, []).append((step, float(v)))
                except ValueError:
                    continue
    for s in series.values():
        s.sort(key=lambda sv: sv[0])
    return series


def _read_yaml(path: str) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def read_job(run_dir: str, metrics_file: str = "metrics.csv") -> Job:
    overrides: list[str] = []
    ov = os.path.join(run_dir, ".hydra", "overrides.yaml")
    if os.path.isfile(ov):
        overrides = [str(o) for o in (_read_yaml(ov) or [])]
    seed = None
    for cfg in (os.path.join(run_dir, "resolved_config.yaml"), os.path.join(run_dir, ".hydra", "config.yaml")):
        if os.path.isfile(cfg):
            try:
                seed = _read_yaml(cfg).get("seed")
                seed = int(seed) if seed is not None else None
                break
            except Exception:
                continue
    if seed is None:
        for o in overrides:
            if re.fullmatch(r"\+?seed=\d+", o):
                seed = int(o.split("=", 1)[1])
    return Job(run_dir, seed, overrides, read_metrics(os.path.join(run_dir, metrics_file)))


def find_jobs(root: str, metrics_file: str = "metrics.csv") -> list[Job]:
    """Every run dir under ``root`` (``root`` itself included) that holds ``metrics_file``."""
    dirs = sorted(d for d, _, files in os.walk(root) if metrics_file in files)
    return [read_job(d, metrics_file) for d in dirs]


def group_jobs(jobs: Sequence[Job], by_overrides: bool = True) -> list[Group]:
    """Jobs with the same overrides except the seed form a group (all jobs: one group)."""
    groups: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        key = tuple(sorted(o for o in job.overrides if not IGNORED_OVERRIDES.match(o))) if by_overrides else ()
        groups.setdefault(key, []).append(job)
    return [Group(" ".join(k) or "all runs", list(k), js) for k, js in sorted(groups.items())]


# -------------------------------------------------------------- aggregating


def success_metrics(jobs: Iterable[Job]) -> list[str]:
    """The success columns present: headline metrics first, then per class, alphabetically."""
    found = {k for j in jobs for k in j.series if SUCCESS.match(k)}
    head = [m for m in HEADLINE if m in found]
    return head + sorted(found - set(head), key=lambda m: (HEADLINE.index(m.rsplit("/", 1)[0])
                                                           if m.rsplit("/", 1)[0] in HEADLINE else 9, m))


def curve(jobs: Sequence[Job], metric: str) -> dict[str, list]:
    """Mean and 95% CI of ``metric`` across jobs at every env step any job logged it."""
    by_step: dict[int, list[float]] = {}
    for j in jobs:
        for step, v in j.series.get(metric, []):
            by_step.setdefault(step, []).append(v)
    out: dict[str, list] = {"step": [], "n": [], "mean": [], "ci_low": [], "ci_high": []}
    for step in sorted(by_step):
        s = Stat(by_step[step])
        out["step"].append(step)
        out["n"].append(s.n)
        out["mean"].append(s.mean)
        out["ci_low"].append(s.ci95[0] if s.ci95 else s.mean)
        out["ci_high"].append(s.ci95[1] if s.ci95 else s.mean)
    return out


def summarise(groups: Sequence[Group]) -> None:
    for g in groups:
        for m in success_metrics(g.jobs):
            vals = [v for v in (j.final(m) for j in g.jobs) if v is not None]
            g.final[m] = Stat(vals)
            g.curves[m] = curve(g.jobs, m)


# ------------------------------------------------------------------ writing


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(groups: Sequence[Group], root: str) -> str:
    lines = [f"# Success summary: `{root}`", "",
             "Final value of each run (its last logged one); mean and 95% Student-t CI across runs.", ""]
    for g in groups:
        seeds = sorted({j.seed for j in g.jobs if j.seed is not None})
        lines += [f"## {g.name}", "",
                  f"{len(g.jobs)} run(s)" + (f", seeds {', '.join(map(str, seeds))}" if seeds else ""), "",
                  "| metric | n | mean | 95% CI | ± |", "|---|---:|---:|---|---:|"]
        for m, s in g.final.items():
            ci = f"[{_fmt(s.ci95[0])}, {_fmt(s.ci95[1])}]" if s.ci95 else "–"
            lines.append(f"| {m} | {s.n} | {_fmt(s.mean)} | {ci} | {_fmt(s.half_width)} |")
        if not g.final:
            lines.append("| (no success metrics logged) | | | | |")
        lines.append("")
    return "\n".join(lines)


def to_json(groups: Sequence[Group], root: str) -> dict[str, Any]:
    """``root`` as the user named it and each run's path relative to it: no machine paths."""
    return {
        "root": os.path.normpath(root),
        "groups": [{
            "name": g.name,
            "overrides": g.overrides,
            "runs": [{"path": os.path.relpath(j.path, root), "seed": j.seed, "overrides": j.overrides}
                     for j in g.jobs],
            "final": {m: s.to_json() for m, s in g.final.items()},
            "curves": g.curves,
        } for g in groups],
    }


def plot(groups: Sequence[Group], path: str) -> bool:
    """Success vs env steps, mean ± 95% CI band, one line per (group, headline metric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False
    for g in groups:
        for m in HEADLINE:
            c = g.curves.get(m)
            if not c or not c["step"]:
                continue
            label = m if len(groups) == 1 else f"{g.name}: {m}"
            line, = ax.plot(c["step"], c["mean"], marker="o" if len(c["step"]) < 20 else None, label=label)
            ax.fill_between(c["step"], c["ci_low"], c["ci_high"], color=line.get_color(), alpha=0.2)
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("env steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("success: mean ± 95% CI across seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def report(root: str, out: str | None = None, by_overrides: bool = True, make_plot: bool = True,
           metrics_file: str = "metrics.csv") -> dict[str, Any]:
    """Build the report of ``root``; writes report.json/report.md/success.png into ``out``."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} is not a directory")
    jobs = find_jobs(root, metrics_file)
    if not jobs:
        raise FileNotFoundError(f"no {metrics_file} under {root}")
    groups = group_jobs(jobs, by_overrides)
    summarise(groups)
    out = out or root
    os.makedirs(out, exist_ok=True)
    result = to_json(groups, root)
    md = markdown(groups, root)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(result, f, indent=2, allow_nan=True)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(md + "\n")
    png = os.path.join(out, "success.png")
    result["files"] = {"json": os.path.join(out, "report.json"), "markdown": os.path.join(out, "report.md"),
                       "plot": png if make_plot and plot(groups, png) else None}
    result["markdown"] = md
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m meta_rl.report", description=__doc__.split("\n\n")[0])
    p.add_argument("root", help="a multirun directory (or any directory holding run dirs, or one run dir)")
    p.add_argument("--out", help="where report.json, report.md and success.png go (default: root)")
    p.add_argument("--all-together", action="store_true",
                   help="one group for all runs instead of one per set of overrides (besides seed)")
    p.add_argument("--no-plot", action="store_true", help="skip success.png")
    p.add_argument("--metrics-file", default="metrics.csv")
    a = p.parse_args(argv)
    try:
        r = report(a.root, a.out, by_overrides=not a.all_together, make_plot=not a.no_plot,
                   metrics_file=a.metrics_file)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(r["markdown"])
    print("wrote " + ", ".join(v for v in r["files"].values() if v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
