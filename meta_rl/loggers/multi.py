"""Several loggers behind one: ``logger=many`` logs to csv, TensorBoard and wandb at once."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from meta_rl.loggers import extras
from meta_rl.loggers.extras import LoggerExtras, exit_code_from_exception


class MultiLogger(LoggerExtras):
    """Forwards every call to each of ``loggers`` in order.

    ``loggers`` is a list, or a mapping name → logger (the form ``conf/logger/many.yaml``
    uses, so one backend can be tuned or removed from the command line, e.g.
    ``logger.loggers.wandb.project=foo`` or ``~logger.loggers.tensorboard``); ``None``
    entries are skipped. ``close`` closes every logger even if one of them fails, then
    raises the first error.
    """

    def __init__(self, loggers: Sequence[Any] | Mapping[str, Any]) -> None:
        items: Iterable[Any] = loggers.values() if isinstance(loggers, Mapping) else loggers
        self.loggers = [lg for lg in items if lg is not None]

    def start(self, run_dir: str, config: Mapping[str, Any], resume_step: int | None = None) -> None:
        for lg in self.loggers:
            if resume_step is None:
                lg.start(run_dir, config)
            else:
                lg.start(run_dir, config, resume_step=resume_step)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for lg in self.loggers:
            lg.log(metrics, step)

    def close(self, exit_code: int | None = None) -> None:
        code = exit_code if exit_code is not None else exit_code_from_exception()
        first: BaseException | None = None
        for lg in self.loggers:
            try:
                extras.close(lg, code)
            except Exception as e:
                first = first or e
        if first is not None:
            raise first

    # ---------------------------------------------------------------- extras
    def log_table(self, name, columns, rows, step) -> None:
        self._each("log_table", name, columns, rows, step)

    def log_image(self, name, path, step) -> None:
        self._each("log_image", name, path, step)

    def log_video(self, name, path, step) -> None:
        self._each("log_video", name, path, step)

    def log_artifact(self, path, name, type) -> None:  # noqa: A002
        self._each("log_artifact", path, name, type)

    def log_checkpoint(self, path, step=None) -> None:
        self._each("log_checkpoint", path, step)

    def _each(self, method: str, *args: Any) -> None:
        for lg in self.loggers:
            extras.call(lg, method, *args)
