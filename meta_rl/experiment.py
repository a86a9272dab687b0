"""Builders: the only code that reads the Hydra config. Config → objects → Trainer."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from meta_rl import rl2
from meta_rl.config import ConfigError, validate


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
    dim = rl2.input_dim(benchmark.observation_space, benchmark.action_space)
    return instantiate(cfg.model, input_dim=dim, action_space=benchmark.action_space).to(cfg.device)


def build_algo(cfg: DictConfig, model, benchmark):
    return instantiate(cfg.algo, model=model, reward_scale=benchmark.reward_scale)


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)


def train(cfg: DictConfig) -> float:
    """Train RL² as configured; returns the final mean training success (for sweepers)."""
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
    algo = build_algo(cfg, model, benchmark)
    logger = instantiate(cfg.logger)
    try:
        logger.start(run_dir, config)
        trainer = Trainer(
            benchmark, model, algo, logger, run_dir=run_dir, total_env_steps=cfg.total_env_steps,
            checkpoint_every=cfg.checkpoint_every, seed=cfg.seed, config=config, progress=cfg.progress,
        )
        metrics = trainer.train()
    finally:
        logger.close()
    return float(metrics.get("train/success", float("nan")))
