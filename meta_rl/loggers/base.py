"""The logger interface: every backend (csv, wandb, tensorboard, ...) implements it.

Metric names are namespaced with '/' (``charts/``, ``losses/``, ``train/``,
``eval/test/``, ``eval/train/``); ``step`` is always the env-step count.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol


class Logger(Protocol):
    def start(self, run_dir: str, config: Mapping[str, Any], resume_step: int | None = None) -> None:
        """Open the backend in ``run_dir``; ``config`` is the resolved run config (plain dict).

        ``resume_step``: the run continues from a checkpoint at this env step; what was logged
        after it will be logged again and should be replaced.
        """

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record scalar ``metrics`` at env step ``step``."""

    def close(self) -> None:
        """Flush and close; must be safe to call twice and after a failed ``start``."""
