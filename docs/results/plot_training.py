"""The learning-curve figure of docs/results.md from a run's metrics.csv.

    python docs/results/plot_training.py runs/ml10_s0/metrics.csv docs/results/ml10/learning_curve.png --title ML10

Three panels over env steps: overall success (training trials per iteration and their
5-iteration mean, the during-training meta-train and meta-test evaluations), training success
per class (5-iteration mean), and the main process's RSS after each iteration. With
``--table`` it also prints, as markdown, every during-training evaluation: meta-train and
meta-test success, meta-test success per class and the meta-test adaptation curve.
"""

from __future__ import annotations

import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def column(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(env steps in M, values) of the rows where ``key`` is set."""
    pts = [(int(r["step"]) / 1e6, float(r[key])) for r in rows if r.get(key) not in (None, "")]
    return (np.array([p[0] for p in pts]), np.array([p[1] for p in pts])) if pts else (np.array([]), np.array([]))


def smooth(y: np.ndarray, n: int = 5) -> np.ndarray:
    return np.convolve(y, np.ones(n) / n, mode="valid") if len(y) >= n else y[:0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics")
    parser.add_argument("out")
    parser.add_argument("--title", default="")
    parser.add_argument("--table", action="store_true", help="print the evaluations as a markdown table")
    args = parser.parse_args()
    with open(args.metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    classes = [k.split("/")[-1] for k in rows[0] if k.startswith("train/success/")]
    test_goals = sum(1 for k in rows[0] if k.startswith("eval/test/success/"))

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    ax = axes[0]
    x, y = column(rows, "train/success")
    ax.plot(x, y, color="tab:blue", alpha=0.35, label="training trials (per iteration)")
    ax.plot(x[4:], smooth(y), color="tab:blue", label="training, 5-iteration mean")
    for key, style, color, label in (("eval/test/success", "o-", "tab:red", f"meta-test eval ({test_goals} classes)"),
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


def eval_table(rows: list[dict]) -> str:
    """Markdown: one line per during-training evaluation."""
    def short(c: str) -> str:
        return c[:-3] if c.endswith("-v3") else c

    test = [k.split("/")[-1] for k in rows[0] if k.startswith("eval/test/success/")]
    curve = sorted(k for k in rows[0] if k.startswith("eval/test/curve_success/"))
    head = ["env steps", "meta-train", "meta-test"] + [short(c) for c in test] + ["test success by episode"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("eval/test/success") in (None, ""):
            continue
        cells = [f"{int(r['step']) / 1e6:.1f}M", f"{float(r['eval/train/success']):.2f}",
                 f"**{float(r['eval/test/success']):.2f}**"]
        cells += [f"{float(r[f'eval/test/success/{c}']):.2f}" for c in test]
        cells.append(" ".join(f"{float(r[k]):.2f}" for k in curve))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
