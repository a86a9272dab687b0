"""Typed config schemas of the logger backends (group ``logger``) and :func:`register`.

Each ``conf/logger/*.yaml`` lists its schema first in its defaults list, like every
other group (see :mod:`meta_rl.config`): a wrong type fails when Hydra composes the
config and the ``__post_init__`` checks run in :func:`meta_rl.config.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from meta_rl.config import ConfigError, _positive

WANDB_MODES = ("online", "offline", "disabled", "shared")
WANDB_RESUME = ("allow", "must", "never", "auto")


@dataclass
class WandbLoggerConfig:
    _target_: str = "meta_rl.loggers.wandb.WandbLogger"
    project: str = "meta-rl"
    entity: Optional[str] = None
    name: Optional[str] = None  # null: <name>-<env.name>-seed<seed>
    group: Optional[str] = None  # null: the sweep dir in a multirun
    tags: List[str] = field(default_factory=list)
    notes: Optional[str] = None
    job_type: str = "train"
    mode: Optional[str] = None  # null: $WANDB_MODE, else online with an API key, offline without
    log_checkpoints: bool = False
    run_id: Optional[str] = None
    resume: str = "allow"
    init_timeout: float = 90.0
    offline_fallback: bool = True

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in WANDB_MODES:
            raise ConfigError(f"logger.mode={self.mode} is unknown; valid: {', '.join(WANDB_MODES)} or null (automatic)")
        if self.resume not in WANDB_RESUME:
            raise ConfigError(f"logger.resume={self.resume} is unknown; valid: {', '.join(WANDB_RESUME)}")
        if not self.project:
            raise ConfigError("logger.project must not be empty")
        if not self.job_type:
            raise ConfigError("logger.job_type must not be empty (train or eval)")
        _positive("logger", init_timeout=self.init_timeout)


@dataclass
class TensorBoardLoggerConfig:
    _target_: str = "meta_rl.loggers.tensorboard.TensorBoardLogger"
    subdir: str = "tensorboard"
    flush_secs: int = 30
    log_config: bool = True

    def __post_init__(self) -> None:
        if not self.subdir:
            raise ConfigError("logger.subdir must not be empty")
        _positive("logger", flush_secs=self.flush_secs)


@dataclass
class MultiLoggerConfig:
    _target_: str = "meta_rl.loggers.multi.MultiLogger"
    # name -> logger config (each typed by its own schema through conf/logger/many.yaml)
    loggers: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.loggers:
            raise ConfigError("logger.loggers is empty; list at least one logger (e.g. logger=csv)")


def register(cs) -> None:
    """Store the logger schemas in ``cs`` (a Hydra ConfigStore), group ``logger``."""
    cs.store(group="logger", name="wandb_schema", node=WandbLoggerConfig)
    cs.store(group="logger", name="tensorboard_schema", node=TensorBoardLoggerConfig)
    cs.store(group="logger", name="many_schema", node=MultiLoggerConfig)
