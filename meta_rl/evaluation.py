"""Meta-test protocol: few-shot adaptation on held-out tasks, counted exactly.

For every evaluated task (class + goal) one fresh trial: the hidden state starts at
its initial value, ``adaptation_episodes`` episodes are played with sampled actions,
then ``evaluation_episodes`` episodes continue from the post-adaptation hidden state
with the mode (deterministic) action. Episodes always run their full length; an
episode succeeds if success was reached at any step.

Counting: every task contributes exactly one trial, and every episode index of that
trial is counted once. Tasks are run in batches of ``num_envs``; a short last batch is
padded with copies whose results are discarded. This differs from Meta-World's
``metaworld.evaluation.metalearning_evaluation``, which stops test envs on success and
keeps the *first* ``evaluation_episodes`` episodes to finish per task name: envs that
succeed early finish more episodes sooner, so successes are over-represented.

Reported per class and overall (overall = mean over classes):
``success`` / ``return``: over the evaluation episodes (NaN when there are none);
``return_per_trial``: total reward over all episodes of the trial (the RL² paper's measure
for bandits and tabular MDPs);
``curve_success[k]`` / ``curve_return[k]``: at episode index k = 1..A+V of the trial
(the adaptation curve, the evidence that the agent learns within a trial).
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np
import torch

from meta_rl.rollout import TrialCollector


def evaluation_tasks(benchmark, split: str, num_goals: int | None) -> list:
    """The first ``num_goals`` goals of every class of ``split`` (all goals if None), class by class."""
    tasks = benchmark.all_tasks(split)
    if num_goals is None:
        return tasks
    taken: dict[str, int] = {}
    out = []
    for t in tasks:
        c = benchmark.task_class(t)
        if taken.get(c, 0) < num_goals:
            taken[c] = taken.get(c, 0) + 1
            out.append(t)
    return out


def summarize(successes: np.ndarray, returns: np.ndarray, classes: Sequence[str], adaptation_episodes: int) -> dict:
    """Aggregate per-trial episode results.

    Args:
        successes, returns: ``[N, E]`` for N trials (one per task) of E = A + V episodes.
        classes: ``[N]`` class of each trial.
        adaptation_episodes: A; episodes A.. are the evaluation episodes.
    """
    successes = np.asarray(successes, np.float64)
    returns = np.asarray(returns, np.float64)
    classes = np.asarray(classes)
    A = adaptation_episodes

    def block(rows: np.ndarray) -> dict[str, Any]:
        s, r = successes[rows], returns[rows]
        return {
            "num_tasks": int(rows.sum()),
            "success": float(s[:, A:].mean()) if s.shape[1] > A else float("nan"),
            "return": float(r[:, A:].mean()) if r.shape[1] > A else float("nan"),
            "return_per_trial": float(r.sum(1).mean()),
            "curve_success": s.mean(0).tolist(),
            "curve_return": r.mean(0).tolist(),
        }

    per_class = {c: block(classes == c) for c in dict.fromkeys(classes.tolist())}
    overall = {
        "num_tasks": len(classes),
        **{k: float(np.mean([b[k] for b in per_class.values()])) for k in ("success", "return", "return_per_trial")},
        **{k: np.mean([b[k] for b in per_class.values()], 0).tolist() for k in ("curve_success", "curve_return")},
    }
    return {"adaptation_episodes": A, "evaluation_episodes": successes.shape[1] - A,
            "overall": overall, "per_class": per_class}


def flatten(result: dict, prefix: str) -> dict[str, float]:
    """Scalar metrics ``prefix/success``, ``prefix/success/<class>``, ``prefix/curve_success/<k>``, ..."""
    o = result["overall"]
    m = {f"{prefix}/success": o["success"], f"{prefix}/return": o["return"],
         f"{prefix}/return_per_trial": o["return_per_trial"]}
    for c, b in result["per_class"].items():
        m[f"{prefix}/success/{c}"] = b["success"]
        m[f"{prefix}/return/{c}"] = b["return"]
    for k, (s, r) in enumerate(zip(o["curve_success"], o["curve_return"])):
        m[f"{prefix}/curve_success/{k + 1:02d}"] = s
        m[f"{prefix}/curve_return/{k + 1:02d}"] = r
    return m


class MetaEvaluator:
    """Runs the meta-test protocol with its own environments and its own RNG stream.

    Training is unaffected by evaluation: nothing here touches the trainer's envs,
    task sampler or generators, and the action-sampling generator is re-seeded from
    ``seed`` at every call.
    """

    def __init__(self, benchmark, model, adaptation_episodes: int = 10, evaluation_episodes: int = 3,
                 num_envs: int = 10, deterministic: bool = True) -> None:
        self.benchmark, self.model = benchmark, model
        self.A, self.V = adaptation_episodes, evaluation_episodes
        # Evaluation episodes take the mean action (Meta-World's protocol), or keep sampling.
        self.deterministic = deterministic
        self.generator = torch.Generator()
        self.env = benchmark.make_env(num_envs)
        self.collector = TrialCollector(
            self.env, model, int(np.prod(benchmark.observation_space.shape)), benchmark.action_space,
            benchmark.episode_length, self.A + self.V, benchmark.reward_scale, generator=self.generator,
        )

    def evaluate(self, tasks: list, seed: int, deterministic: bool | None = None) -> dict:
        """One trial per task; returns :func:`summarize`'s dict plus ``num_env_steps``.

        ``deterministic`` overrides the evaluator's choice for this call (True: the mean action
        in the evaluation episodes; False: sampled actions throughout)."""
        deterministic = self.deterministic if deterministic is None else deterministic
        explore = self.A if deterministic else None  # episodes with sampled actions (None: all)
        self.generator.manual_seed(int(seed))
        if hasattr(self.env, "reseed"):  # stochastic envs (bandits, tabular MDPs) get the same stream too
            self.env.reseed(int(seed))
        B = self.env.num_envs
        succ, ret = [], []
        for start in range(0, len(tasks), B):
            chunk = tasks[start : start + B]
            padded = chunk + [chunk[0]] * (B - len(chunk))
            batch = self.collector.collect(padded, explore_episodes=explore)
            succ.append(batch.episode_successes()[:, : len(chunk)].T.cpu().numpy())
            ret.append(batch.episode_returns()[:, : len(chunk)].T.cpu().numpy())
        classes = [self.benchmark.task_class(t) for t in tasks]
        result = summarize(np.concatenate(succ), np.concatenate(ret), classes, self.A)
        result["num_env_steps"] = len(tasks) * (self.A + self.V) * self.benchmark.episode_length
        return result

    def close(self) -> None:
        self.env.close()


# ------------------------------------------------------------------ outputs


def _short(c: str) -> str:
    return c[:-3] if c.endswith("-v3") else c


def markdown_table(result: dict) -> str:
    A, V = result["adaptation_episodes"], result["evaluation_episodes"]
    E = A + V
    head = ["class", "tasks", f"success (eval eps {A + 1}-{E})", "return"] + [f"ep{k}" for k in range(1, E + 1)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = list(result["per_class"].items()) + [("**overall**", result["overall"])]
    for c, b in rows:
        lines.append("| " + " | ".join(
            [_short(c), str(b["num_tasks"]), f"{b['success']:.3f}", f"{b['return']:.1f}"]
            + [f"{s:.2f}" for s in b["curve_success"]]) + " |")
    lines.append("")
    lines.append(f"Columns ep1..ep{E}: success rate at each episode index of the trial "
                 f"(episodes 1-{A} adapt with sampled actions, {A + 1}-{E} evaluate with the mean action).")
    return "\n".join(lines) + "\n"


def console_table(result: dict) -> str:
    A, E = result["adaptation_episodes"], result["adaptation_episodes"] + result["evaluation_episodes"]
    lines = [f"{'class':<24}{'tasks':>6}{'success':>9}{'return':>9}   success by episode 1..{E}"]
    rows = list(result["per_class"].items()) + [("overall", result["overall"])]
    for c, b in rows:
        curve = " ".join(f"{s:.2f}" for s in b["curve_success"])
        lines.append(f"{_short(c):<24}{b['num_tasks']:>6}{b['success']:>9.3f}{b['return']:>9.1f}   {curve}")
    return "\n".join(lines)


def plot(result: dict, out_dir: str, title: str = "") -> list[str]:
    """Adaptation curves (per class and overall) and per-class success bars as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    A = result["adaptation_episodes"]
    E = A + result["evaluation_episodes"]
    x = np.arange(1, E + 1)
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax, label in (("curve_success", axes[0], "success rate"), ("curve_return", axes[1], "return")):
        for c, b in result["per_class"].items():
            ax.plot(x, b[key], marker=".", alpha=0.6, label=_short(c))
        ax.plot(x, result["overall"][key], color="black", linewidth=2.5, marker="o", label="overall")
        ax.axvline(A + 0.5, color="grey", linestyle="--")
        ax.set_xlabel("episode within trial (right of dashed line: evaluation, mean action)")
        ax.set_ylabel(label)
        ax.set_xticks(x)
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"Adaptation curve {title}".strip())
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "adaptation_curve.png"))
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(result["per_class"]) + 2), 4))
    names = [_short(c) for c in result["per_class"]] + ["overall"]
    vals = [b["success"] for b in result["per_class"].values()] + [result["overall"]["success"]]
    ax.bar(names, vals, color=["tab:blue"] * (len(names) - 1) + ["black"])
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"success (evaluation episodes {A + 1}-{E})")
    ax.set_title(f"Success by class {title}".strip())
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "success_by_class.png"))
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_outputs(result: dict, out_dir: str, title: str = "", plots: bool = True) -> dict[str, str]:
    """``results.json``, ``results.md`` and the PNG plots in ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "results.json"), "markdown": os.path.join(out_dir, "results.md")}
    with open(paths["json"], "w") as f:
        json.dump(result, f, indent=2)
    with open(paths["markdown"], "w") as f:
        f.write(f"# Meta-evaluation {title}\n\n" + markdown_table(result))
    if plots:
        curve, bars = plot(result, out_dir, title)
        paths.update(curve=curve, bars=bars)
    return paths
