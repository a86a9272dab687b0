"""TensorBoard logger: event files in ``<run_dir>/<subdir>`` (``tensorboard --logdir outputs``)."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

from meta_rl.loggers.extras import LoggerExtras


class TensorBoardLogger(LoggerExtras):
    """Scalars at env step ``step`` through ``torch.utils.tensorboard.SummaryWriter``.

    The resolved config is stored once as text (tab TEXT, tag ``config``); tables are
    stored as Markdown text and images as images. Videos and artifacts are not kept.

    Args:
        subdir: directory under the run dir for the event files.
        flush_secs: how often pending events are written to disk.
        log_config: store the resolved config as text.
    """

    def __init__(self, subdir: str = "tensorboard", flush_secs: int = 30, log_config: bool = True) -> None:
        self.subdir, self.flush_secs, self.log_config = subdir, flush_secs, log_config
        self.log_dir: str | None = None
        self.writer = None

    def start(self, run_dir: str, config: Mapping[str, Any], resume_step: int | None = None) -> None:
        """Open the writer; with ``resume_step`` (a continued run) events logged after that env
        step by the interrupted run are purged, so TensorBoard shows each step once."""
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = os.path.join(run_dir, self.subdir)
        purge = None if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(log_dir=self.log_dir, flush_secs=self.flush_secs, purge_step=purge)
        if self.log_config and resume_step is None:
            text = json.dumps(dict(config), indent=2, sort_keys=True, default=str)
            self.writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)  # Markdown code block
            self.writer.flush()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        w = self._require_writer()
        for k, v in metrics.items():
            if isinstance(v, (str, bytes, complex)):
                continue
            try:
                x = float(v)  # numbers, numpy scalars, 1-element tensors
            except (TypeError, ValueError):
                continue
            w.add_scalar(k, x, step)
        w.flush()

    def close(self, exit_code: int | None = None) -> None:
        w, self.writer = self.writer, None
        if w is not None:
            w.flush()
            w.close()

    # ---------------------------------------------------------------- extras
    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        def cell(x: Any) -> str:
            if isinstance(x, float) and math.isfinite(x):
                return f"{x:.4g}"
            return str(x).replace("|", "\\|")

        lines = ["| " + " | ".join(map(cell, columns)) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
        self._require_writer().add_text(name, "\n".join(lines), step)

    def log_image(self, name: str, path: str, step: int) -> None:
        import matplotlib.image as mpimg
        import numpy as np

        img = np.asarray(mpimg.imread(path))
        if img.dtype != np.uint8:  # PNGs load as floats in [0, 1]
            img = (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
        if img.ndim == 2:
            img = img[..., None]
        self._require_writer().add_image(name, img[..., :3] if img.shape[-1] >= 3 else img, step, dataformats="HWC")

    def _require_writer(self):
        if self.writer is None:
            raise RuntimeError("TensorBoardLogger: call start(run_dir, config) before logging (or it was closed)")
        return self.writer
