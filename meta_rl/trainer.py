"""The training loop: sample tasks → collect trials → PPO update → log → checkpoint.

Takes plain objects and values; only :mod:`meta_rl.experiment` reads the config.
"""

from __future__ import annotations

import copy as copy_module
import dataclasses
import math
import os
import signal
import sys
import threading
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from meta_rl import checkpoint as ckpt
from meta_rl.errors import Interrupted, NumericalError
from meta_rl.evaluation import flatten, write_outputs
from meta_rl.loggers import extras
from meta_rl.rollout import TrialBatch, TrialCollector


def rss_mb() -> float:
    """Current resident set size of this process in MB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return math.nan


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


def eval_summary(overall: Mapping[str, Any]) -> str:
    """One console line of an evaluation's overall result.

    Without evaluation episodes (bandits, tabular MDPs: the paper scores the whole trial)
    success and return are NaN, so the line shows the return per trial and its curve.
    """
    if math.isnan(overall["success"]):
        c = overall["curve_return"]
        curve = " ".join(f"{r:.2f}" for r in c) if len(c) <= 10 else f"ep1 {c[0]:.2f} → ep{len(c)} {c[-1]:.2f}"
        return f"return/trial {overall['return_per_trial']:.2f} | return by episode: {curve}"
    curve = " ".join(f"{s:.2f}" for s in overall["curve_success"])
    return f"success {overall['success']:.3f} return {overall['return']:.1f} | success by episode: {curve}"


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
        evaluator: a :class:`~meta_rl.evaluation.MetaEvaluator` (own envs and RNG), or None.
        eval_tasks: split → tasks evaluated by ``evaluator`` ("test" ranks the best checkpoint).
        eval_every: iterations between evaluations (0: none during training).
        eval_final: also evaluate after the last iteration and write the result files.
        checkpoint_keep: how many ``iter_<n>.pt`` checkpoints to keep besides ``latest.pt``/``best.pt``.
        best_metric: the evaluation metric (higher is better) that selects ``best.pt``.
        video: a :class:`~meta_rl.video.VideoRecorder` run after the evaluation that writes its
            files (the last one), or None.
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
        evaluator=None,
        eval_tasks: Mapping[str, list] | None = None,
        eval_every: int = 0,
        eval_final: bool = True,
        checkpoint_keep: int = 3,
        best_metric: str = "eval/test/success",
        video=None,
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
        self.seed = seed
        self.regress_tasks = getattr(algo, "aux_task_coef", 0.0) > 0  # the update needs the trials' task features
        self.task_target = getattr(algo, "aux_task_target", "hidden")
        self.class_ids = {c: i for i, c in enumerate(self.benchmark.class_names("train"))}  # batch.task_ids
        self.evaluator, self.eval_tasks = evaluator, dict(eval_tasks or {})
        self.eval_every, self.eval_final = eval_every, eval_final
        self.best_success = -math.inf
        self.checkpoint_path = os.path.join(run_dir, "checkpoints", "latest.pt")
        self.best_path = os.path.join(run_dir, "checkpoints", "best.pt")
        self.checkpoint_keep = checkpoint_keep
        self.best_metric = best_metric
        self.last_saved: str | None = None
        self.pending_metrics: dict[str, float] | None = None  # a completed iteration awaiting its evaluation
        self._stop_signal: int | None = None
        self._chained: dict = {}
        # Long loops check for a stop request once per env step / minibatch.
        self.collector.interrupt = self._check_stop
        algo.interrupt = self._check_stop
        if evaluator is not None:
            evaluator.collector.interrupt = self._check_stop
        self.video = video
        if video is not None:
            video.interrupt = self._check_stop

    # ------------------------------------------------------------------ loop
    def train(self) -> dict[str, float]:
        """Run the remaining iterations; returns the last iteration's metrics.

        SIGTERM/SIGINT stop the run within one env step or minibatch: the state as of the
        last completed iteration is checkpointed and :class:`Interrupted` is raised. The
        pre-emption signal of a job manager that installed a handler for it (submitit's USR2)
        is treated the same, then passed on to that handler. A NaN/Inf in the update raises :class:`NumericalError` without saving anything.
        """
        bar = tqdm(total=self.num_iterations * self.steps_per_iter, initial=self.env_steps, unit="step",
                   unit_scale=True, disable=not self.progress, dynamic_ncols=True, file=sys.stderr)
        metrics: dict[str, float] = {}
        handlers = self._install_signal_handlers()
        try:
            if self.pending_metrics is not None:  # stopped during this iteration's evaluation: redo it
                metrics = self._finish_iteration(self.pending_metrics)
            while self.iteration < self.num_iterations:
                self._check_stop()
                snapshot = self.state(copy=True)  # what an interruption inside this iteration saves
                try:
                    metrics = self.train_iteration()
                except _StopRequested:
                    ckpt.save(self.checkpoint_path, snapshot)
                    self.iteration = snapshot["iteration"]
                    raise self._stop() from None
                except NumericalError as e:
                    raise NumericalError(
                        f"iteration {snapshot['iteration'] + 1}: {e}; nothing was saved, the last good checkpoint is "
                        f"{self.last_saved or 'none'}") from None
                bar.update(self.steps_per_iter)
                bar.set_postfix(SPS=f"{metrics['charts/SPS']:.0f}")
                tqdm.write(self.summary(metrics), file=sys.stdout)
                metrics = self._finish_iteration(metrics)
            self._check_stop()
        except _StopRequested:  # between iterations: the current state is complete
            self.save_checkpoint()
            raise self._stop() from None
        finally:
            self._restore_signal_handlers(handlers)
            bar.close()
            self.env.close()
            if self.evaluator is not None:
                self.evaluator.close()
        return metrics

    def _finish_iteration(self, metrics: dict[str, float]) -> dict[str, float]:
        """Evaluate (when due), log and checkpoint a completed iteration.

        A stop request during the evaluation saves the completed iteration with its training
        metrics as ``pending_metrics``; the resumed run evaluates, logs and checkpoints it
        exactly as the uninterrupted run would have (the evaluation has its own seeds).
        """
        last = self.iteration == self.num_iterations
        if self.evaluator is not None and self.eval_tasks and (
            (self.eval_every and self.iteration % self.eval_every == 0) or (last and self.eval_final)
        ):
            self.pending_metrics = metrics
            try:
                metrics = {**metrics, **self.run_evaluation(write=last)}
            except _StopRequested:
                ckpt.save(self.checkpoint_path, self.state())
                raise self._stop() from None
            self.pending_metrics = None
        self.logger.log(metrics, self.env_steps)
        if self.iteration % self.checkpoint_every == 0 or last:
            self.save_checkpoint()
        return metrics

    # ------------------------------------------------------------ signals
    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum, frame):
            if self._stop_signal is not None:  # second signal: stop now, without a checkpoint
                raise KeyboardInterrupt
            self._stop_signal = signum
            tqdm.write(f"received {signal.Signals(signum).name}: checkpointing and stopping "
                       f"(send it again to stop at once)", file=sys.stderr)

        signals = [signal.SIGTERM, signal.SIGINT]
        self._chained = {}
        pre = preempt_signal()
        if pre is not None and callable(signal.getsignal(pre)):
            # A cluster job manager's pre-emption/time-out handler (submitit requeues the job
            # and exits): checkpoint first, then hand over to it (see _stop).
            signals.append(pre)
            self._chained[pre] = signal.getsignal(pre)
        return {sig: signal.signal(sig, request_stop) for sig in signals}

    @staticmethod
    def _restore_signal_handlers(handlers) -> None:
        for sig, h in handlers.items():
            signal.signal(sig, h)

    def _check_stop(self) -> None:
        if self._stop_signal is not None:
            raise _StopRequested

    def _stop(self) -> Interrupted:
        """After the checkpoint of a stop request: run a chained pre-emption handler, if any
        (it requeues the job and exits), else return the error to raise."""
        handler = self._chained.get(self._stop_signal)
        if handler is not None:
            tqdm.write(f"checkpoint written; handing {signal.Signals(self._stop_signal).name} to the job manager",
                       file=sys.stderr)
            handler(self._stop_signal, None)
        return self._interrupted()

    def _interrupted(self) -> Interrupted:
        name = signal.Signals(self._stop_signal).name
        return Interrupted(self._stop_signal, f"stopped by {name} after iteration {self.iteration}; checkpoint "
                                              f"{self.checkpoint_path}; continue with: python train.py "
                                              f"resume={self.run_dir}")

    def train_iteration(self) -> dict[str, float]:
        """Collect one trial per env and update; returns the iteration's metrics (not yet logged)."""
        tasks = self.benchmark.sample_tasks("train", self.meta_batch, self.task_rng)
        if hasattr(self.env, "reseed"):  # env randomness (bandit outcomes, ...) seeded per iteration: resumable
            self.env.reseed(int(np.random.SeedSequence([self.seed, 2, self.iteration]).generate_state(1)[0]))
        t0 = time.perf_counter()
        batch = self.collector.collect(tasks)
        t1 = time.perf_counter()
        classes = [self.benchmark.task_class(t) for t in tasks]
        ids = torch.tensor([self.class_ids[c] for c in classes], device=batch.rewards.device)
        batch = dataclasses.replace(batch, task_ids=ids)
        if self.regress_tasks and self.task_target == "trial":  # the trials' own estimates, where they have data
            features, mask = self.benchmark.trial_task_features(batch.inputs, batch.actions, batch.rewards)
            batch = dataclasses.replace(batch, task_features=features, task_mask=mask)
        elif self.regress_tasks and self.task_target == "posterior":  # the trials' posterior means, every feature
            features = self.benchmark.trial_task_posterior(batch.inputs, batch.actions, batch.rewards)
            batch = dataclasses.replace(batch, task_features=features)
        elif self.regress_tasks:
            features = torch.as_tensor(self.benchmark.task_features(tasks), device=batch.rewards.device)
            batch = dataclasses.replace(batch, task_features=features)
        if hasattr(self.algo, "set_progress"):  # schedules follow the iteration count (resumable)
            self.algo.set_progress(self.iteration / self.num_iterations)
        stats = self.algo.update(batch, self.update_gen)
        if hasattr(self.model, "update_input_stats"):  # after the update: one standardisation per iteration
            self.model.update_input_stats(batch.inputs)
        t2 = time.perf_counter()
        self.iteration += 1
        self.env_steps += batch.num_steps
        m = trial_metrics(batch, classes, "train")
        if "policy_std" in stats:  # a state-dependent std, averaged over the update's samples
            m["charts/policy_std"] = stats.pop("policy_std")
        m.update({f"losses/{k}": v for k, v in stats.items()})
        m.update({
            "charts/iteration": self.iteration,
            "charts/env_steps": self.env_steps,
            "charts/SPS": batch.num_steps / (t2 - t0),
            "charts/collect_SPS": batch.num_steps / (t1 - t0),
            "charts/update_time": t2 - t1,
            "charts/rss_mb": rss_mb(),  # the main process; flat over iterations unless memory leaks
        })
        if getattr(self.model, "log_std", None) is not None:
            log_std = self.model.log_std.detach().clamp(self.model.min_log_std, self.model.max_log_std)
            m["charts/policy_std"] = float(log_std.exp().mean())  # the std acting uses (within its bounds)
        return m

    def run_evaluation(self, write: bool = False) -> dict[str, float]:
        """Meta-evaluate every split in ``eval_tasks``; keep the best checkpoint, maybe write files."""
        metrics: dict[str, float] = {}
        t0 = time.perf_counter()
        steps = 0
        for split, tasks in self.eval_tasks.items():
            result = self.evaluator.evaluate(tasks, seed=self.eval_seed(split))
            steps += result["num_env_steps"]
            metrics.update(flatten(result, f"eval/{split}"))
            tqdm.write(f"    eval/{split}: {eval_summary(result['overall'])}", file=sys.stdout)
            if write:
                write_outputs(result, os.path.join(self.run_dir, "eval", f"{split}_final"),
                              title=f"{self.benchmark.name} {split} @ {self.env_steps:,} steps")
        metrics["charts/eval_SPS"] = steps / (time.perf_counter() - t0)
        value = metrics.get(self.best_metric, math.nan)
        if value > self.best_success:  # False for NaN
            self.best_success = value
            ckpt.save(self.best_path, {**self.state(), "best": {"metric": self.best_metric, "value": value}})
        if write and self.video is not None:
            self.record_videos()
        return metrics

    def eval_seed(self, split: str) -> int:
        """The seed of this iteration's evaluation of ``split`` (action sampling)."""
        return int(np.random.SeedSequence([self.seed, self.iteration, split == "test"]).generate_state(1)[0])

    def record_videos(self) -> None:
        """Render the video trials into the final evaluation's directory and log them (``video``)."""
        split = self.video.split
        out_dir = os.path.join(self.run_dir, "eval", f"{split}_final")
        for name, path in self.video.record(self.model, self.eval_seed(split), out_dir).items():
            extras.call(self.logger, "log_video", f"eval/{split}/video/{name}", path, self.env_steps)

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
    def state(self, copy: bool = False) -> dict[str, Any]:
        """Everything needed to continue the run exactly (``copy``: detached from the live objects)."""
        state = {
            "model": self.model.state_dict(),
            "algo": self.algo.state_dict(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "best_success": self.best_success,
            "pending_metrics": self.pending_metrics,
            "rng": ckpt.rng_state(task_rng=self.task_rng, action_gen=self.action_gen, update_gen=self.update_gen),
            "config": self.config,
        }
        return copy_module.deepcopy(state) if copy else state

    def save_checkpoint(self) -> str:
        """Atomically replace ``latest.pt``; keep ``iter_<n>.pt`` for the last ``checkpoint_keep`` saves."""
        ckpt.save(self.checkpoint_path, self.state())
        if self.checkpoint_keep > 0:
            d = os.path.dirname(self.checkpoint_path)
            kept = os.path.join(d, f"iter_{self.iteration:06d}.pt")
            if os.path.exists(kept):
                os.unlink(kept)
            os.link(self.checkpoint_path, kept)  # same bytes, no second write; survives the next replace
            old = sorted(f for f in os.listdir(d) if f.startswith("iter_") and f.endswith(".pt"))
            for f in old[: -self.checkpoint_keep]:
                os.unlink(os.path.join(d, f))
        self.last_saved = f"{self.checkpoint_path} (iteration {self.iteration})"
        return self.checkpoint_path

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.algo.load_state_dict(state["algo"])
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        self.best_success = float(state.get("best_success", -math.inf))
        self.pending_metrics = state.get("pending_metrics")
        ckpt.set_rng_state(state["rng"], task_rng=self.task_rng, action_gen=self.action_gen,
                           update_gen=self.update_gen)
        self.last_saved = f"{self.checkpoint_path} (iteration {self.iteration})"


def preempt_signal() -> int | None:
    """The signal a cluster job manager sends before pre-emption or the time limit.

    submitit (Hydra's submitit launchers) uses ``$SUBMITIT_PREEMPT_SIGNAL`` (default USR2)
    and requeues the job from its handler; the trainer chains that handler after writing
    a checkpoint, so the requeued job resumes where this one stopped.
    """
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


class _StopRequested(Exception):
    """Raised at the next check after SIGTERM/SIGINT (one env step or minibatch at most)."""
