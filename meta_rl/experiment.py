"""Builders: the only code that reads the Hydra config. Config → objects → Trainer."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from meta_rl import checkpoint, rl2
from meta_rl.config import ConfigError, validate, with_schema_defaults


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch global RNGs (our own streams are seeded separately)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_benchmark(cfg: DictConfig):
    try:
        return instantiate(cfg.env)
    except Exception as e:  # instantiate wraps constructor errors; surface the cause's one line
        cause = e.__cause__ or e
        raise ConfigError(str(cause).strip().splitlines()[0]) from e


def build_model(cfg: DictConfig, benchmark) -> torch.nn.Module:
    obs, act = benchmark.observation_space, benchmark.action_space
    prev, clock = bool(cfg.model.get("previous_obs", False)), bool(cfg.model.get("trial_time", False))
    kwargs = {"input_mask": rl2.normalized_dims(obs, act, prev, clock).tolist()} if cfg.model.get("normalize_inputs") else {}
    if cfg.get("algo") is not None and cfg.algo.get("aux_task_coef", 0.0) > 0:
        if not hasattr(benchmark, "task_features"):
            raise ConfigError(f"algo.aux_task_coef={cfg.algo.aux_task_coef} needs task features, which env "
                              f"{benchmark.name} does not define; set algo.aux_task_coef=0")
        target = cfg.algo.get("aux_task_target", "hidden")
        needs = {"trial": "trial_task_features", "posterior": "trial_task_posterior"}.get(target)
        if needs and not hasattr(benchmark, needs):
            raise ConfigError(f"algo.aux_task_target={target} needs task features estimated from a trial's data, which "
                              f"env {benchmark.name} does not define; use algo.aux_task_target=hidden")
        kwargs["task_dim"] = benchmark.task_feature_dim
    if cfg.get("algo") is not None and cfg.algo.get("aux_reward_coef", 0.0) > 0:
        kwargs["reward_head"] = True
    dim = rl2.input_dim(obs, act, prev, clock)
    bad = [i for i in cfg.model.get("masked_inputs", []) if not 0 <= i < dim]
    if bad:
        raise ConfigError(f"model.masked_inputs={bad}: env {benchmark.name} has {dim} RL² input dims (the observation "
                          f"first, then the previous action, reward and done); use indices 0-{dim - 1}")
    return instantiate(cfg.model, input_dim=dim, action_space=act, **kwargs).to(cfg.device)


def build_algo(cfg: DictConfig, model, benchmark):
    return instantiate(cfg.algo, model=model, reward_scale=benchmark.reward_scale)


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)


# Keys that may differ between a run and its continuation (everything else must match).
RESUMABLE_KEYS = ("run_dir", "resume", "auto_resume", "progress", "total_env_steps", "torch_threads",
                  "checkpoint_every", "checkpoint_keep", "device", "logger", "eval", "init_weights_required")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_changes(saved: dict, new: dict) -> list[str]:
    """``key: saved -> new`` for every non-resumable key that differs."""
    a, b = _flat(saved), _flat(new)
    keys = sorted(k for k in set(a) | set(b) if not k.split(".")[0] in RESUMABLE_KEYS and a.get(k) != b.get(k))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys]


def _command_line_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith("resume=")]


def prepare_run(cfg: DictConfig) -> tuple[DictConfig, dict | None]:
    """The config to run and the checkpoint state to continue from (None for a fresh run).

    ``resume=<run dir>`` continues that run with its saved config (command-line overrides of
    resumable keys such as ``total_env_steps`` apply on top). Without it, a run dir that already
    holds ``checkpoints/latest.pt`` (a requeued cluster job) is continued automatically when
    ``auto_resume`` is true, provided the config is the same.

    The overrides applied on top of a ``resume=`` run are the ones Hydra parsed from the
    command line; called from Python outside a Hydra app there are none, so the saved values
    are used as they are (set ``total_env_steps`` etc. in the saved config, or continue through
    ``train.py``). The automatic continuation takes ``cfg``'s resumable values.
    """
    from meta_rl.config import TrainConfig

    if cfg.resume:
        path, run_dir = resolve_checkpoint(cfg.resume, "latest")
        state = checkpoint.load(path)
        saved = with_schema_defaults(state["config"])
        run_cfg = OmegaConf.merge(OmegaConf.create(saved), OmegaConf.from_dotlist(_command_line_overrides()))
        run_cfg.run_dir, run_cfg.resume = run_dir, None
        changes = config_changes(saved, OmegaConf.to_container(run_cfg, resolve=True))
        if changes:
            raise ConfigError(f"resume cannot change {changes[0]}; start a new run for a different config")
        return OmegaConf.merge(OmegaConf.structured(TrainConfig), run_cfg), state
    latest = os.path.join(cfg.run_dir, "checkpoints", "latest.pt")
    if cfg.auto_resume and os.path.isfile(latest):
        state = checkpoint.load(latest)
        changes = config_changes(with_schema_defaults(state["config"]), resolved_config(cfg))
        if changes:
            raise ConfigError(f"run dir {cfg.run_dir} holds a checkpoint of another config ({changes[0]}); "
                              f"use a new run dir, or auto_resume=false")
        return cfg, state
    return cfg, None


def train(cfg: DictConfig) -> float:
    """Train RL² as configured (or continue a run); returns the metric for sweepers:
    the final ``eval.best_metric`` when evaluated, else final training success."""
    validate(cfg)
    cfg, state = prepare_run(cfg)
    validate(cfg)
    from meta_rl.trainer import Trainer

    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    run_dir = cfg.run_dir
    os.makedirs(run_dir, exist_ok=True)
    config = resolved_config(cfg)
    OmegaConf.save(OmegaConf.create(config), os.path.join(run_dir, "resolved_config.yaml"))
    benchmark = build_benchmark(cfg)
    model = build_model(cfg, benchmark)
    source = checkpoint.load_weights(model, cfg.init_weights) if state is None and cfg.init_weights else None
    algo = build_algo(cfg, model, benchmark)
    if source:
        algo.load_value_scale(source)
    video = build_video_recorder(cfg.eval, benchmark, cfg.model, "test")
    evaluator, eval_tasks = build_evaluator(cfg.eval, benchmark, model, during_training=True)
    logger = instantiate(cfg.logger)
    try:
        logger.start(run_dir, config, resume_step=None if state is None else int(state["env_steps"]))
        trainer = Trainer(
            benchmark, model, algo, logger, run_dir=run_dir, total_env_steps=cfg.total_env_steps,
            checkpoint_every=cfg.checkpoint_every, seed=cfg.seed, config=config, progress=cfg.progress,
            evaluator=evaluator, eval_tasks=eval_tasks, eval_every=cfg.eval.every, eval_final=cfg.eval.final,
            checkpoint_keep=cfg.checkpoint_keep, best_metric=cfg.eval.best_metric, video=video,
        )
        if state is not None:
            trainer.load_state(state)
            print(f"continuing {run_dir} from iteration {trainer.iteration} ({trainer.env_steps:,} env steps)")
        metrics = trainer.train()
    finally:
        logger.close()
    for key in (cfg.eval.best_metric, "train/success"):
        if key in metrics:
            return float(metrics[key])
    return float("nan")


def build_evaluator(ecfg, benchmark, model, during_training: bool):
    """The meta-evaluator and the tasks it runs (split → tasks), or (None, {}) when disabled."""
    from meta_rl.evaluation import MetaEvaluator, evaluation_tasks

    if during_training:
        tasks = {"test": evaluation_tasks(benchmark, "test", ecfg.num_goals)}
        if ecfg.train_num_goals > 0:
            tasks["train"] = evaluation_tasks(benchmark, "train", ecfg.train_num_goals)
        if not (ecfg.every or ecfg.final):
            return None, {}
    else:
        tasks = {ecfg.split: evaluation_tasks(benchmark, ecfg.split, ecfg.num_goals)}
    evaluator = MetaEvaluator(benchmark, model, ecfg.adaptation_episodes, ecfg.evaluation_episodes,
                              num_envs=min(ecfg.num_envs, max(len(t) for t in tasks.values())),
                              deterministic=ecfg.deterministic)
    return evaluator, tasks


def build_video_recorder(ecfg, benchmark, model_cfg, split: str):
    """The evaluation-video recorder of ``split`` (see :mod:`meta_rl.video`), or None without ``eval.video``.

    The GL backend is ``eval.video_backend``, else ``$MUJOCO_GL``, else osmesa (no GPU or display needed).
    """
    if not ecfg.video:
        return None
    from meta_rl.envs.metaworld import MetaWorldBenchmark
    from meta_rl.evaluation import evaluation_tasks
    from meta_rl.video import VideoRecorder

    if not isinstance(benchmark, MetaWorldBenchmark):
        raise ConfigError(f"eval.video=true renders Meta-World envs only (this run's env is {benchmark.name}); "
                          f"set eval.video=false")
    tasks = evaluation_tasks(benchmark, split, 1)[: ecfg.video_tasks]  # the first goal of each class
    return VideoRecorder(
        benchmark, OmegaConf.to_container(model_cfg, resolve=True), tasks, split,
        ecfg.adaptation_episodes, ecfg.evaluation_episodes,
        backend=ecfg.video_backend or os.environ.get("MUJOCO_GL") or "osmesa", size=ecfg.video_size,
        camera=ecfg.video_camera, frame_stride=ecfg.video_frame_stride, fps=ecfg.video_fps,
        first_episode=ecfg.video_first_episode,
    )


def resolve_checkpoint(run: str, which: str) -> tuple[str, str]:
    """``(checkpoint path, run dir)`` from a run directory (+ "latest"/"best"/a file name) or a file path."""
    from meta_rl.checkpoint import CheckpointError

    run = os.path.normpath(run)
    if os.path.isdir(run):
        name = which if which.endswith(".pt") else f"{which}.pt"
        path = os.path.join(run, "checkpoints", name)
        if not os.path.isfile(path):
            found = sorted(os.listdir(os.path.join(run, "checkpoints"))) if os.path.isdir(
                os.path.join(run, "checkpoints")) else []
            raise CheckpointError(f"no checkpoint {path}; found: {', '.join(found) or 'none'} "
                                  f"(pick one with checkpoint=NAME)")
        return path, run
    if os.path.isfile(run):
        d = os.path.dirname(run) or "."
        return run, (os.path.dirname(d) or ".") if os.path.basename(d) == "checkpoints" else d
    raise CheckpointError(f"run={run} is neither a run directory nor a checkpoint file")


def load_agent(path: str, device: str = "cpu", in_process: bool = False):
    """``(benchmark, model, state)`` rebuilt from the checkpoint at ``path`` with the run's own
    saved config (not today's conf/ defaults); the model in eval mode on ``device``.
    ``in_process``: the benchmark's envs step in this process (``env.num_workers=0``)."""
    state = checkpoint.load(path, map_location=device)
    saved = OmegaConf.create(state["config"])
    saved.device = device
    if in_process and "num_workers" in saved.env:  # bandits and tabular MDPs always step in-process
        saved.env.num_workers = 0
    benchmark = build_benchmark(saved)
    model = build_model(saved, benchmark)
    model.load_state_dict(state["model"])
    model.eval()
    return benchmark, model, state


def evaluate(cfg: DictConfig) -> dict:
    """Rebuild the agent from a checkpoint and its saved config, and run the meta-test protocol."""
    from meta_rl.evaluation import console_table, write_outputs

    validate(cfg)
    path, run_dir = resolve_checkpoint(cfg.run, cfg.checkpoint)
    seed_everything(cfg.seed)
    benchmark, model, state = load_agent(path, cfg.device)
    split = cfg.eval.split
    video = build_video_recorder(cfg.eval, benchmark, OmegaConf.create(state["config"]).model, split)
    evaluator, tasks = build_evaluator(cfg.eval, benchmark, model, during_training=False)
    try:
        result = evaluator.evaluate(tasks[split], seed=cfg.seed)
    finally:
        evaluator.close()
    tag = os.path.splitext(os.path.basename(path))[0]
    # paths as the user named the run, the checkpoint relative to it: results.json moves with the run dir
    result.update(run=run_dir, checkpoint=os.path.relpath(path, run_dir), split=split,
                  benchmark=benchmark.name,
                  iteration=int(state["iteration"]), env_steps=int(state["env_steps"]), seed=cfg.seed)
    out_dir = cfg.output_dir or os.path.join(run_dir, "eval", f"{split}_{tag}")
    paths = write_outputs(result, out_dir, title=f"{benchmark.name} {split} ({tag}, {result['env_steps']:,} steps)",
                          plots=cfg.plots)
    if video is not None:
        paths.update(video.record(model, cfg.seed, out_dir))
    print(console_table(result))
    print(f"wrote {', '.join(paths.values())}")
    return result
