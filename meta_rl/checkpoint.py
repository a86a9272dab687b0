"""Checkpoints: atomic writes, safe loads, RNG state capture."""

from __future__ import annotations

import os
import random
import tempfile
from typing import Any

import numpy as np
import torch

from meta_rl.errors import CheckpointError
from meta_rl.models.gru import TRAINING_HEADS

FORMAT = "meta-rl-checkpoint/1"


def save(path: str, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: temp file in the same dir, fsync, rename.

    A crash mid-write leaves the previous file at ``path`` untouched.
    """
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str, name: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True`` (never executes code from the file); ``name``
    says what the file is in the one-line error (e.g. "checkpoint <path>")."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{name} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{name} is corrupt or unsafe to load ({first[:200]})") from None


def load(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (never executes code from the file)."""
    state = _read(path, f"checkpoint {path}", map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a meta-rl checkpoint (expected format {FORMAT})")
    return state


def load_weights(model: torch.nn.Module, path: str) -> dict | None:
    """Load network weights into ``model``: the model of a meta-rl checkpoint, or a state dict
    saved with ``torch.save(model.state_dict(), path)``. Every tensor must fit (torch's strict
    ``load_state_dict``), except the training-only heads (``task_head``, ``algo.aux_task_coef``;
    ``reward_head``, ``algo.aux_reward_coef``): the weights of a run with one start a run
    without it, and a new head starts fresh where the weights have none. Returns the
    checkpoint's algorithm state (its value normaliser goes with the critic's weights; the
    optimiser, counters and RNG are not used), None for a state dict."""
    name = f"init_weights={path}"
    state, algo = _read(path, name), None
    if isinstance(state, dict) and state.get("format") == FORMAT:
        state, algo = state.get("model"), state.get("algo")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{name} holds neither a meta-rl checkpoint nor a state dict of tensors")
    own, heads = model.state_dict(), TRAINING_HEADS
    state = {k: v for k, v in state.items() if not k.startswith(heads) or k in own}
    state.update({k: v for k, v in own.items() if k.startswith(heads) and k not in state})
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # "Error(s) in loading state_dict ...:" then one line per kind of mismatch
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise CheckpointError(f"{name} does not fit the model ({first[:200]}); configure the model as the "
                              "weights were trained (model.hidden, model.previous_obs, model.trial_time, ...)") from None
    return algo


def rng_state(**generators: Any) -> dict[str, Any]:
    """Global torch/numpy/python RNG states plus the given numpy Generators / torch Generators."""
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": random.getstate(),
    }
    for name, g in generators.items():
        out[name] = g.get_state() if isinstance(g, torch.Generator) else g.bit_generator.state
    return out


def set_rng_state(state: dict[str, Any], **generators: Any) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    for name, g in generators.items():
        if isinstance(g, torch.Generator):
            g.set_state(state[name])
        else:
            g.bit_generator.state = state[name]
