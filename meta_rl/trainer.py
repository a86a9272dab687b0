"""The training loop: sample tasks → collect trials → PPO update → log → checkpoint.

Takes plain objects and values; only :mod:`meta_rl.experiment` reads the config.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from meta_rl import checkpoint as ckpt
from meta_rl.rollout import TrialBatch, TrialCollector


def short(name: str) -> str:
    """'pick-place-v3' → 'pick-place' (for compact console lines)."""
    return name[:-3] if name.endswith("-v3") else name


def trial_metrics(batch: TrialBatch, classes: Sequence[str], prefix: str) -> dict[str, float]:
    """Return/success metrics of one trial per env, per class and by episode index.

    ``classes[i]`` is the task class of env i. Success of an episode: success at any step.
    """
    ret = batch.episode_returns().cpu().numpy()  # [E, B]
    succ = batch.episode_successes().cpu().numpy().astype(np.float64)  # [E, B]
    classes = np.asarray(classes)
    m: dict[str, float] = {
        f"{prefix}/return_per_trial": float(ret.sum(0).mean()),
        f"{prefix}/episode_return": float(ret.mean()),
        f"{prefix}/success": float(succ.mean()),
        f"{prefix}/success_last_episode": float(succ[-1].mean()),
    }
    for k in range(succ.shape[0]):
        m[f"{prefix}/success_by_episode/{k + 1:02d}"] = float(succ[k].mean())
        m[f"{prefix}/return_by_episode/{k + 1:02d}"] = float(ret[k].mean())
    for c in dict.fromkeys(classes):
        cols = classes == c
        m[f"{prefix}/success/{c}"] = float(succ[:, cols].mean())
        m[f"{prefix}/return_per_trial/{c}"] = float(ret[:, cols].sum(0).mean())
    return m


class Trainer:
    """RL² training: one trial per env per iteration, PPO on the batch of trials.

    Args:
        benchmark: a :class:`~meta_rl.envs.base.Benchmark`.
        model: the recurrent actor-critic (already on its device).
        algo: a PPO learner with ``update(batch, generator)`` and ``state_dict()``.
        logger: a :class:`~meta_rl.loggers.base.Logger`.
        run_dir: where checkpoints and logs go.
        total_env_steps: training budget; rounded up to whole iterations.
        checkpoint_every: iterations between checkpoints (one is always written at the end).
        seed: seeds task sampling, action sampling and minibatch order (separate streams).
        config: the resolved run config, saved inside every checkpoint.
        progress: show a progress bar.
    """

    def __init__(
        self,
        benchmark,
        model: torch.nn.Module,
        algo,
        logger,
        run_dir: str,
        total_env_steps: int,
        checkpoint_every: int,
        seed: int,
        config: Mapping[str, Any],
        progress: bool = True,
    ) -> None:
        self.benchmark, self.model, self.algo, self.logger = benchmark, model, algo, logger
        self.run_dir, self.config, self.progress = run_dir, dict(config), progress
        self.checkpoint_every = checkpoint_every
        self.meta_batch = benchmark.meta_batch_size
        self.steps_per_iter = self.meta_batch * benchmark.episodes_per_trial * benchmark.episode_length
        self.num_iterations = math.ceil(total_env_steps / self.steps_per_iter)
        task_seed, action_seed, update_seed = np.random.SeedSequence(seed).spawn(3)
        self.task_rng = np.random.default_rng(task_seed)
        self.action_gen = torch.Generator().manual_seed(int(action_seed.generate_state(1)[0]))
        self.update_gen = torch.Generator().manual_seed(int(update_seed.generate_state(1)[0]))
        self.iteration = 0
        self.env_steps = 0
        self.env = benchmark.make_env(self.meta_batch)
        self.collector = TrialCollector(
            self.env, model, int(np.prod(benchmark.observation_space.shape)), benchmark.action_space,
            benchmark.episode_length, benchmark.episodes_per_trial, benchmark.reward_scale,
            chunk_length=getattr(algo, "chunk_length", None), generator=self.action_gen,
        )
        self.checkpoint_path = os.path.join(run_dir, "checkpoints", "latest.pt")

    # ------------------------------------------------------------------ loop
    def train(self) -> dict[str, float]:
        """Run the remaining iterations; returns the last iteration's metrics."""
        bar = tqdm(total=self.num_iterations * self.steps_per_iter, initial=self.env_steps, unit="step",
                   unit_scale=True, disable=not self.progress, dynamic_ncols=True, file=sys.stderr)
        metrics: dict[str, float] = {}
        try:
            while self.iteration < self.num_iterations:
                metrics = self.train_iteration()
                bar.update(self.steps_per_iter)
                bar.set_postfix(SPS=f"{metrics['charts/SPS']:.0f}")
                tqdm.write(self.summary(metrics), file=sys.stdout)
                if self.iteration % self.checkpoint_every == 0 or self.iteration == self.num_iterations:
                    self.save_checkpoint()
        finally:
            bar.close()
            self.env.close()
        return metrics

    def train_iteration(self) -> dict[str, float]:
        tasks = self.benchmark.sample_tasks("train", self.meta_batch, self.task_rng)
        t0 = time.perf_counter()
        batch = self.collector.collect(tasks)
        t1 = time.perf_counter()
        stats = self.algo.update(batch, self.update_gen)
        t2 = time.perf_counter()
        self.iteration += 1
        self.env_steps += batch.num_steps
        m = trial_metrics(batch, [self.benchmark.task_class(t) for t in tasks], "train")
        m.update({f"losses/{k}": v for k, v in stats.items()})
        m.update({
            "charts/iteration": self.iteration,
            "charts/env_steps": self.env_steps,
            "charts/SPS": batch.num_steps / (t2 - t0),
            "charts/collect_SPS": batch.num_steps / (t1 - t0),
            "charts/update_time": t2 - t1,
        })
        if getattr(self.model, "log_std", None) is not None:
            m["charts/policy_std"] = float(self.model.log_std.detach().exp().mean())
        self.logger.log(m, self.env_steps)
        return m

    def summary(self, m: Mapping[str, float]) -> str:
        E = self.benchmark.episodes_per_trial
        per_class = " ".join(
            f"{short(k.split('/')[-1])}={v:.2f}" for k, v in m.items() if k.startswith("train/success/")
        )
        return (
            f"it {self.iteration}/{self.num_iterations} steps {self.env_steps:,} | "
            f"return/trial {m['train/return_per_trial']:.1f} | success {m['train/success']:.3f} "
            f"(ep1 {m['train/success_by_episode/01']:.2f} → ep{E} {m[f'train/success_by_episode/{E:02d}']:.2f}) | "
            f"pi {m['losses/policy_loss']:.3f} v {m['losses/value_loss']:.3f} ent {m['losses/entropy']:.2f} "
            f"kl {m['losses/approx_kl']:.4f} clip {m['losses/clip_frac']:.3f} | SPS {m['charts/SPS']:.0f}"
            + (f"\n    per task: {per_class}" if len(per_class.split()) > 1 else "")
        )

    # ----------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "algo": self.algo.state_dict(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "rng": ckpt.rng_state(task_rng=self.task_rng, action_gen=self.action_gen, update_gen=self.update_gen),
            "config": self.config,
        }

    def save_checkpoint(self) -> str:
        ckpt.save(self.checkpoint_path, self.state())
        return self.checkpoint_path

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.algo.load_state_dict(state["algo"])
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        ckpt.set_rng_state(state["rng"], task_rng=self.task_rng, action_gen=self.action_gen,
                           update_gen=self.update_gen)
