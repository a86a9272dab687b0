"""Entry-point plumbing shared by train.py and evaluate.py: one-line errors, exit codes.

Hydra reports its own errors (a value of the wrong type, an unknown config group option, a
missing ``run=``) over several lines before the job starts. :func:`run_app` holds stderr
back until the job function starts and, if Hydra exits before that, prints one
``config error: ...`` line instead (``HYDRA_FULL_ERROR=1`` shows Hydra's full report).
Errors of ours (:class:`~meta_rl.errors.MetaRLError`) inside the job are printed as one
line with their exit code; in a multirun they are re-raised so the launcher records the
failed job and goes on with the next (an interruption still stops the sweep).
"""

from __future__ import annotations

import io
import os
import sys
from typing import Callable

from meta_rl.errors import ConfigError, Interrupted, MetaRLError

_state = {"started": False, "held": None, "stderr": None}


def _release_stderr() -> None:
    if _state["held"] is not None:
        sys.stderr = _state["stderr"]
        sys.stderr.write(_state["held"].getvalue())
        _state["held"] = None


def condense(text: str) -> str:
    """Hydra's multi-line error report as one line."""
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.startswith("Set the environment variable HYDRA_FULL_ERROR")]
    if any(ln.startswith("Traceback") for ln in lines):
        lines = lines[-1:]
    return "; ".join(lines).replace(":; ", ": ") or "invalid command line"


def run_app(app: Callable[[], object]) -> None:
    """Run a ``@hydra.main`` function with the error handling described above."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        app()
        return
    _state.update(started=False, held=io.StringIO(), stderr=sys.stderr)
    sys.stderr = _state["held"]
    try:
        app()
    except SystemExit as e:
        if not _state["started"] and e.code not in (0, None):
            held = _state["held"].getvalue() if _state["held"] is not None else ""
            _state["held"] = None
            sys.stderr = _state["stderr"]
            print(f"config error: {condense(held)}", file=sys.stderr)
            sys.exit(2)
        raise
    finally:
        _release_stderr()


def _job_started() -> None:
    _state["started"] = True
    _release_stderr()


def job(fn: Callable[..., object]) -> Callable[..., object]:
    """Wrap a job function: release stderr when it starts; our errors become one line + exit code."""

    def wrapper(*args, **kwargs):
        _job_started()
        try:
            return fn(*args, **kwargs)
        except MetaRLError as e:
            print(f"{'config error' if isinstance(e, ConfigError) else 'error'}: {e}", file=sys.stderr)
            if _multirun() and not isinstance(e, Interrupted):
                raise
            sys.exit(e.exit_code)

    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = fn.__name__, fn.__doc__, fn
    return wrapper


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
