"""Optional rich-media logging calls shared by every backend.

The evaluation code logs more than scalars: tables of per-task results, plots, rollout
videos and files (checkpoints). Backends that can show them (wandb, and TensorBoard for
images and tables) override these methods; every other backend inherits the no-ops, so
callers never need to check which backend they got. :func:`call` does the same for an
object that does not inherit :class:`LoggerExtras` (any plain :class:`~meta_rl.loggers.base.Logger`).
"""

from __future__ import annotations

from typing import Any, Sequence


class LoggerExtras:
    """No-op defaults for the optional logging calls; ``step`` is the env-step count."""

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        """A table (e.g. one row per task) named ``name`` at env step ``step``."""

    def log_image(self, name: str, path: str, step: int) -> None:
        """An image file (PNG/JPEG) at env step ``step``."""

    def log_video(self, name: str, path: str, step: int) -> None:
        """A video file (mp4/gif/webm) at env step ``step``."""

    def log_artifact(self, path: str, name: str, type: str) -> None:  # noqa: A002 (wandb's word)
        """A file or directory kept with the run (``type``: "model", "dataset", "evaluation", ...)."""

    def log_checkpoint(self, path: str, step: int | None = None) -> None:
        """A checkpoint just written to ``path`` (uploaded only where the backend is configured to)."""


EXTRA_METHODS = ("log_table", "log_image", "log_video", "log_artifact", "log_checkpoint")


def call(logger: Any, method: str, *args: Any, **kwargs: Any) -> None:
    """``logger.method(*args, **kwargs)`` if the logger has it, else nothing (for any logger object)."""
    if method not in EXTRA_METHODS:
        raise ValueError(f"unknown logger extra {method!r}; valid: {', '.join(EXTRA_METHODS)}")
    fn = getattr(logger, method, None)
    if fn is not None:
        fn(*args, **kwargs)


def close(logger: Any, exit_code: int | None = None) -> None:
    """Close ``logger``, passing ``exit_code`` to backends whose ``close`` accepts it."""
    if exit_code is not None and _accepts(logger.close, "exit_code"):
        logger.close(exit_code=exit_code)
    else:
        logger.close()


def _accepts(fn: Any, name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def exit_code_from_exception() -> int:
    """The exit code of an exception propagating now (``close`` called from a ``finally``), else 0.

    meta-rl errors carry their own ``exit_code`` (e.g. 128 + signal for an interrupted run),
    ``SystemExit`` its code, ``KeyboardInterrupt`` 130 (like a shell), anything else 1.
    """
    import sys

    exc = sys.exc_info()[1]
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(exc, KeyboardInterrupt):
        return 130
    code = getattr(exc, "exit_code", None)
    return code if isinstance(code, int) and code != 0 else 1
