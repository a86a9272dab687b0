"""Reads the records of an offline W&B run file (``run-<id>.wandb``) back, for tests.

The file is a LevelDB-style log: a 7-byte file header (``:W&B``, magic 0xBEE1, version),
then 32 KiB blocks of chunks. Each chunk has a 7-byte header — CRC-32 (of the type byte
followed by the data), little-endian data length (2 bytes), type (FULL=1, FIRST=2,
MIDDLE=3, LAST=4) — and a record is one FULL chunk or FIRST, MIDDLE..., LAST chunks.
A block tail shorter than a chunk header is zero padding. Each record is a serialized
``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import glob
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator

HEADER = struct.Struct("<4sHB")  # ident, magic, version
CHUNK = struct.Struct("<IHB")  # crc32, length, type
BLOCK = 32 * 1024
IDENT, MAGIC = b":W&B", 0xBEE1
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class CorruptRunFile(ValueError):
    """The file is not a W&B run log or a chunk fails its checksum."""


def iter_raw_records(path: str) -> Iterator[bytes]:
    """The serialized records of ``path`` in order (checksums verified)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER.size:
        raise CorruptRunFile(f"{path}: shorter than the file header")
    ident, magic, _version = HEADER.unpack_from(data, 0)
    if ident != IDENT or magic != MAGIC:
        raise CorruptRunFile(f"{path}: not a W&B run file (header {ident!r} {magic:#x})")
    pos, pending = HEADER.size, None
    while pos < len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:  # block trailer: zero padding
            pos += left
            continue
        if pos + CHUNK.size > len(data):
            break  # truncated header at the end of a file still being written
        crc, length, kind = CHUNK.unpack_from(data, pos)
        start, end = pos + CHUNK.size, pos + CHUNK.size + length
        if kind == 0 and length == 0 and crc == 0:  # zeroed space (preallocated / padding)
            pos += left
            continue
        if end > len(data):
            break  # truncated chunk at the end
        chunk = data[start:end]
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise CorruptRunFile(f"{path}: bad checksum at byte {pos}")
        pos = end
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE and pending is not None:
            pending += chunk
        elif kind == LAST and pending is not None:
            yield pending + chunk
            pending = None
        else:
            raise CorruptRunFile(f"{path}: unexpected chunk type {kind} at byte {pos}")


def iter_records(path: str):
    """``wandb_internal_pb2.Record`` messages of ``path``."""
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in iter_raw_records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        yield rec


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """What a run file holds: run metadata, config, history rows, summary, exit."""

    path: str
    run_id: str = ""
    project: str = ""
    entity: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # define_metric records
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None  # None: the run never finished (no exit record)

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def series(self, key: str, step_key: str = "charts/env_steps") -> list[tuple[Any, Any]]:
        """``[(step, value)]`` of ``key`` over the history rows that have it."""
        return [(row.get(step_key), row[key]) for row in self.history if key in row]


def read_run(path: str) -> OfflineRun:
    """Parse one ``run-<id>.wandb`` file (or the ``offline-run-*`` directory holding it)."""
    if os.path.isdir(path):
        files = glob.glob(os.path.join(path, "run-*.wandb"))
        if len(files) != 1:
            raise FileNotFoundError(f"{path}: expected one run-*.wandb file, found {len(files)}")
        path = files[0]
    run = OfflineRun(path=path)
    for rec in iter_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.run_id, run.project, run.entity = r.run_id, r.project, r.entity
            run.name, run.group, run.job_type = r.display_name, r.run_group, r.job_type
            run.tags, run.notes = list(r.tags), r.notes
            for item in r.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
            for item in rec.config.remove:
                run.config.pop(_key(item), None)
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            for item in rec.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "metric":
            m = rec.metric
            run.metrics.append({"name": m.name, "glob_name": m.glob_name, "step_metric": m.step_metric})
        elif kind == "artifact":
            a = rec.artifact
            run.artifacts.append({"name": a.name, "type": a.type, "aliases": list(a.aliases),
                                  "files": [e.path for e in a.manifest.contents]})
        elif kind == "exit":
            run.exit_code = rec.exit.exit_code
    run.config.pop("_wandb", None)
    return run


def find_runs(root: str) -> list[str]:
    """The ``offline-run-*`` (or ``run-*``) directories under ``root``, sorted."""
    pattern = os.path.join(root, "**", "wandb", "*run-*")
    return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isdir(p))
