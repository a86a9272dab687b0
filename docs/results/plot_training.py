"""The learning-curve figure of docs/results.md from a run's metrics.csv.

    PYTHONPATH=. python docs/results/plot_training.py runs/ml10_s0/metrics.csv docs/results/ml10/learning_curve.png --title ML10

Three panels over env steps: overall success (training trials per iteration and their
5-iteration mean, the during-training meta-train and meta-test evaluations), training success
per class (5-iteration mean), and the main process's RSS after each iteration. With
``--table`` it also prints, as markdown, every during-training evaluation: meta-train and
meta-test success, meta-test success per class and the meta-test adaptation curve.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from meta_rl.report import read_metrics  # noqa: E402


def column(series: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(env steps in M, values) of the rows where ``key`` was logged."""
    pts = series.get(key, [])
    return np.array([p[0] for p in pts]) / 1e6, np.array([p[1] for p in pts])


def smooth(y: np.ndarray, n: int = 5) -> np.ndarray:
    return np.convolve(y, np.ones(n) / n, mode="valid") if len(y) >= n else y[:0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics")
    parser.add_argument("out")
    parser.add_argument("--title", default="")
    parser.add_argument("--table", action="store_true", help="print the evaluations as a markdown table")
    args = parser.parse_args()
    rows = read_metrics(args.metrics)
    classes = [k.split("/")[-1] for k in rows if k.startswith("train/success/")]
    test_classes = sum(1 for k in rows if k.startswith("eval/test/success/"))

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    ax = axes[0]
    x, y = column(rows, "train/success")
    ax.plot(x, y, color="tab:blue", alpha=0.35, label="training trials (per iteration)")
    ax.plot(x[4:], smooth(y), color="tab:blue", label="training, 5-iteration mean")
    for key, style, color, label in (("eval/test/success", "o-", "tab:red", f"meta-test eval ({test_classes} classes)"),
                                     ("eval/train/success", "s-", "tab:green", "meta-train eval")):
        ex, ey = column(rows, key)
        ax.plot(ex, ey, style, color=color, label=label)
    ax.set_title(f"{args.title} success".strip())
    ax.legend(fontsize=7)

    ax = axes[1]
    for c in classes:
        cx, cy = column(rows, f"train/success/{c}")
        ax.plot(cx[4:], smooth(cy), label=c[:-3] if c.endswith("-v3") else c)
    ax.set_title("training success per class (5-iteration mean)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6, ncol=2)

    ax = axes[2]
    rx, ry = column(rows, "charts/rss_mb")
    ax.plot(rx, ry, ".-")
    ax.set_title("main-process RSS (MB) after each iteration")
    for a in axes:
        a.set_xlabel("env steps (M)")
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    if args.table:
        print(eval_table(rows))


def eval_table(series: dict) -> str:
    """Markdown: one line per during-training evaluation."""
    def short(c: str) -> str:
        return c[:-3] if c.endswith("-v3") else c

    at = {k: dict(v) for k, v in series.items() if k.startswith("eval/")}  # metric → step → value
    test = [k.split("/")[-1] for k in at if k.startswith("eval/test/success/")]
    curve = sorted(k for k in at if k.startswith("eval/test/curve_success/"))
    head = ["env steps", "meta-train", "meta-test"] + [short(c) for c in test] + ["test success by episode"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for step, value in sorted(at.get("eval/test/success", {}).items()):
        cells = [f"{step / 1e6:.1f}M", f"{at['eval/train/success'][step]:.2f}", f"**{value:.2f}**"]
        cells += [f"{at[f'eval/test/success/{c}'][step]:.2f}" for c in test]
        cells.append(" ".join(f"{at[k][step]:.2f}" for k in curve))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
