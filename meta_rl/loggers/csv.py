"""CSV logger: one row per logged step, one column per metric."""

from __future__ import annotations

import csv
import os
from typing import Any, Mapping


class CSVLogger:
    """Writes ``<run_dir>/<filename>`` with columns ``step`` + every metric seen so far.

    A metric that first appears later (e.g. an evaluation every k iterations) widens
    the header; the file is then rewritten once with the new columns.
    """

    def __init__(self, filename: str = "metrics.csv") -> None:
        self.filename = filename
        self.path: str | None = None
        self._fields: list[str] = ["step"]
        self._rows: list[dict[str, Any]] = []
        self._file = None
        self._writer = None

    def start(self, run_dir: str, config: Mapping[str, Any], resume_step: int | None = None) -> None:
        self.path = os.path.join(run_dir, self.filename)
        if resume_step is not None and os.path.exists(self.path):
            # continuing a run: keep the rows up to its checkpoint, drop any logged after it
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self._fields = list(reader.fieldnames or ["step"])
                self._rows = [r for r in reader if r.get("step") and int(r["step"]) <= resume_step]
        self._open()

    def _open(self) -> None:
        self._file = open(self.path, "w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self._fields, restval="")
        self._writer.writeheader()
        self._writer.writerows(self._rows)
        self._file.flush()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        row = {"step": step, **metrics}
        self._rows.append(row)
        new = [k for k in row if k not in self._fields]
        if new:
            self._fields.extend(new)
            self._file.close()
            self._open()
        else:
            self._writer.writerow(row)
            self._file.flush()

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
