"""A :class:`~meta_rl.envs.base.TrialEnv` whose envs are stepped by worker processes.

``ProcessTrialEnv`` splits its ``num_envs`` envs over ``num_workers`` processes.
Worker ``w`` owns the envs ``w, w + W, w + 2W, ...`` (W = ``num_workers``) and steps
them with in-process trial envs built by the picklable factory ``make_slice(n)``.
Interleaving (rather than contiguous blocks) balances the load:
``Benchmark.sample_tasks`` lists tasks class by class and Meta-World classes differ
several-fold in step cost, so on ML10 with 20 envs contiguous halves give one of two
workers ~1.3x the work of the other, while interleaved halves hold one task of every
class each.

Data path: actions, observations, rewards and successes live in one shared-memory
buffer (``multiprocessing.RawArray`` seen through numpy views in every process);
nothing is pickled per step. Synchronisation is one ``send_bytes`` of a short command
per worker and one one-byte reply per worker, per call (per call of a group: only the
workers holding envs of it). Tasks are pickled once per ``set_tasks`` (once per trial).

Failures never hang the caller: the main process waits on each worker's pipe *and*
its process sentinel (with a timeout), so a worker that is killed, exits, raises or
stops answering makes the call raise a one-line :class:`RuntimeError` naming the
worker and the task classes of its envs. The env is then closed.

Start method: ``forkserver`` by default (``spawn`` where it is unavailable). Workers
never touch torch, so ``fork`` would work too, but the main process usually runs
torch's intra-op thread pool (and other threads, e.g. progress bars), and forking a
multi-threaded process is what Python deprecates from 3.12 on; a forkserver child
starts from a clean single-threaded process and costs only a one-time import of the
env library per worker (~2 s to start the workers instead of ~0.1 s). As with any
non-fork start method, a script that creates the env must guard its entry point with
``if __name__ == "__main__":`` (``train.py`` and ``evaluate.py`` do), and
``make_slice`` must be importable by name (a module-level class or function). Pass
``start_method="fork"`` to start faster.

Workers are daemonic, ignore SIGINT (the main process shuts them down), exit when
their pipe to the main process closes (so a killed main process leaves no orphans),
and are terminated by ``close()``, by garbage collection, or at interpreter exit.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import signal
import time
import weakref
from typing import Any, Callable, NoReturn, Sequence

import gymnasium as gym
import numpy as np

# One-byte commands (main -> worker) and replies (worker -> main). STEP alone steps all of a
# worker's envs; STEP followed by a group index byte steps that group's envs only.
_STEP, _RESET, _TASKS, _CLOSE = b"s", b"r", b"t", b"c"
_OK, _ERR = b"k", b"e"
_ALIGN = 64


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_num_workers(num_workers: int | None, num_envs: int) -> int:
    """``None``: one worker per usable core, at most ``num_envs``; 0 (in-process) when that
    is a single worker, which would only add overhead. ``0``: in-process."""
    if num_workers is None:
        workers = min(usable_cores(), num_envs)
        return workers if workers >= 2 else 0
    if num_workers < 0:
        raise ValueError(f"num_workers={num_workers} must be >= 0 (0 = in-process, None = one per core)")
    return min(num_workers, num_envs)


def env_groups(num_envs: int, num_workers: int) -> tuple[slice, ...]:
    """The two contiguous groups of envs that can be stepped separately (one if each worker
    has a single env). The boundary is a multiple of ``num_workers``, so with envs
    interleaved over the workers each worker has ``ceil(n / 2)`` of its ``n`` envs in the
    first group and the rest in the second."""
    per_worker = -(-num_envs // num_workers)
    split = num_workers * -(-per_worker // 2)
    if split >= num_envs:
        return (slice(0, num_envs),)
    return slice(0, split), slice(split, num_envs)


def _worker_part(w: int, num_workers: int, group: slice) -> slice:
    """The envs of worker ``w`` (``w, w + W, ...``) inside the contiguous ``group``."""
    return slice(group.start + (w - group.start) % num_workers, group.stop, num_workers)


def _default_task_name(task: Any) -> str:
    return str(getattr(task, "env_name", None) or type(task).__name__)


class _Layout:
    """Offsets of the shared arrays inside one byte buffer."""

    def __init__(self, num_envs: int, obs_shape, obs_dtype, act_shape, act_dtype) -> None:
        self.specs: dict[str, tuple[tuple[int, ...], np.dtype, int]] = {}
        off = 0
        for name, shape, dtype in (
            ("obs", (num_envs, *obs_shape), np.dtype(obs_dtype)),
            ("rew", (num_envs,), np.dtype(np.float32)),
            ("succ", (num_envs,), np.dtype(bool)),
            ("act", (num_envs, *act_shape), np.dtype(act_dtype)),
        ):
            self.specs[name] = (shape, dtype, off)
            off += -(-int(np.prod(shape)) * dtype.itemsize // _ALIGN) * _ALIGN
        self.nbytes = max(off, _ALIGN)

    def views(self, raw) -> dict[str, np.ndarray]:
        buf = np.frombuffer(raw, dtype=np.uint8)
        out = {}
        for name, (shape, dtype, off) in self.specs.items():
            n = int(np.prod(shape)) * dtype.itemsize
            out[name] = buf[off : off + n].view(dtype).reshape(shape)
        return out


def _worker_main(make_slice, parts: list[slice], num_envs: int, layout: _Layout, raw, conn, main_pid: int,
                 nice: int = 0) -> None:
    """Worker loop: build one env per non-empty part (the worker's envs in each group), then
    serve commands until CLOSE or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice:
        os.nice(nice)
    views = layout.views(raw)
    arrays = [tuple(views[k][rows] for k in ("obs", "rew", "succ", "act")) for rows in parts]
    sizes = [len(range(*rows.indices(num_envs))) for rows in parts]
    envs: list = []

    def reply_error(exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        conn.send_bytes(_ERR + text.encode("utf-8", "replace"))

    def step(g: int) -> None:
        obs, rew, succ, act = arrays[g]
        o, r, s = envs[g].step(act.copy())
        obs[...] = o
        rew[...] = r
        succ[...] = s

    try:
        try:
            envs = [make_slice(n) if n else None for n in sizes]
        except Exception as exc:
            reply_error(exc)
            return
        held = [g for g, n in enumerate(sizes) if n]
        conn.send_bytes(_OK)
        while True:
            # Wake up now and then while idle to exit if the main process is gone.
            while not conn.poll(5.0):
                if not _pid_alive(main_pid):
                    return
            try:
                msg = conn.recv_bytes()
            except (EOFError, OSError):
                return
            cmd = msg[:1]
            if cmd == _CLOSE:
                return
            try:
                if cmd == _STEP:
                    for g in msg[1:] or held:
                        step(g)
                elif cmd == _RESET:
                    for g in held:
                        arrays[g][0][...] = envs[g].reset()
                elif cmd == _TASKS:
                    tasks, start = pickle.loads(msg[1:]), 0
                    for g in held:
                        envs[g].set_tasks(tasks[start : start + sizes[g]])
                        start += sizes[g]
                else:
                    raise ValueError(f"unknown command {cmd!r}")
            except Exception as exc:
                reply_error(exc)
            else:
                conn.send_bytes(_OK)
    except (EOFError, OSError, KeyboardInterrupt):  # the main process went away
        return
    finally:
        for env in envs:
            if env is not None:
                try:
                    env.close()
                except Exception:
                    pass
        conn.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _shutdown(procs: list, conns: list, grace: float = 2.0) -> None:
    """Ask workers to exit, then terminate / kill whatever is left; never raises."""
    for conn in conns:
        try:
            conn.send_bytes(_CLOSE)
        except Exception:
            pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.join(max(0.0, deadline - time.monotonic()))
        except Exception:
            pass
    for p in procs:
        try:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        except Exception:
            pass
    for conn in conns:
        try:
            conn.close()
        except Exception:
            pass
    for p in procs:
        try:
            p.close()
        except Exception:
            pass


class ProcessTrialEnv:
    """``num_envs`` envs stepped by ``num_workers`` worker processes, all at once or by group.

    Returns exactly what the in-process env built by ``make_slice`` returns for the
    same tasks and actions (each worker runs one such env per group on its envs).

    Besides the synchronous :class:`~meta_rl.envs.base.TrialEnv` calls, each of the env
    groups ``groups`` (see :func:`env_groups`) can be stepped on its own without waiting:
    ``step_async(g, actions)`` starts a step of group ``g`` and returns at once;
    ``step_wait(g)`` returns its results. Steps complete in the order they were started,
    so ``step_wait`` calls must follow that order, and a group has at most one step in
    flight. A synchronous call (``set_tasks``, ``reset``, ``step``) first waits for the
    steps still in flight and drops their results (e.g. after an interrupted caller).

    Args:
        make_slice: picklable ``make_slice(n) -> TrialEnv`` building ``n`` envs; called
            once in each worker.
        num_envs: envs in total.
        observation_space: ``Box`` of one env's observation (shape and dtype).
        action_space: ``Box`` (actions ``[num_envs, *shape]`` of its dtype; other float
            actions are cast to it) or ``Discrete`` (actions ``[num_envs]`` int64).
        num_workers: worker processes (see :func:`resolve_num_workers`; must be >= 1
            after resolution). Worker ``w`` steps envs ``w, w + W, ...``.
        task_name: names a task in error messages (default: its ``env_name``).
        start_method: multiprocessing start method (default ``forkserver``).
        timeout: seconds a worker may take to answer one call before the call fails (for a
            ``step_async``, counted from ``step_wait``).
        worker_nice: niceness added to the workers. With as many workers as cores, a worker
            woken by the main process's command otherwise preempts it on its core before it
            has sent the other workers their commands (each send then costs ~0.5 ms and the
            workers start staggered); a lower priority lets the main process finish sending
            and go to sleep first. Measured in docs/throughput.md.
    """

    def __init__(
        self,
        make_slice: Callable[[int], Any],
        num_envs: int,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Space,
        num_workers: int | None = None,
        task_name: Callable[[Any], str] | None = None,
        start_method: str | None = None,
        timeout: float = 600.0,
        worker_nice: int = 10,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be >= 1")
        W = resolve_num_workers(num_workers, num_envs)
        if W < 1:
            raise ValueError("ProcessTrialEnv needs num_workers >= 1 (use the in-process env for 0)")
        self.num_envs, self.num_workers = num_envs, W
        self.timeout = timeout
        self._task_name = task_name or _default_task_name
        self._tasks: list | None = None
        self._closed = False
        self._failure: str | None = None
        if isinstance(action_space, gym.spaces.Discrete):
            act_shape, act_dtype = (), np.int64
        else:
            act_shape, act_dtype = action_space.shape, action_space.dtype
        layout = _Layout(num_envs, observation_space.shape, observation_space.dtype, act_shape, act_dtype)
        if start_method is None:
            start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(start_method)
        if mp.get_start_method(allow_none=True) not in (None, *mp.get_all_start_methods()):
            mp.set_start_method(start_method, force=True)
        self._raw = ctx.RawArray(ctypes.c_uint8, layout.nbytes)
        v = layout.views(self._raw)
        self._obs, self._rew, self._succ, self._act = v["obs"], v["rew"], v["succ"], v["act"]
        self._rows = [slice(w, num_envs, W) for w in range(W)]
        self.groups = env_groups(num_envs, W)
        parts = [[_worker_part(w, W, g) for g in self.groups] for w in range(W)]
        # The workers holding envs of each group (all of them unless a worker has one env).
        self._group_workers = [[w for w in range(W) if len(range(*parts[w][g].indices(num_envs)))]
                               for g in range(len(self.groups))]
        self._in_flight: collections.deque[int] = collections.deque()  # groups, in the order started
        self._procs: list = []
        self._conns: list = []
        # Registered before starting workers so that a failed start still cleans up.
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        try:
            for w in range(W):
                parent, child = ctx.Pipe(duplex=True)
                p = ctx.Process(
                    target=_worker_main,
                    args=(make_slice, parts[w], num_envs, layout, self._raw, child, os.getpid(), worker_nice),
                    name=f"ProcessTrialEnv-worker-{w}",
                    daemon=True,
                )
                p.start()
                child.close()
                self._procs.append(p)
                self._conns.append(parent)
            self._gather(range(W), "start")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ TrialEnv
    def set_tasks(self, tasks: Sequence[Any]) -> None:
        self._check_open()
        self._drain("set_tasks")
        tasks = list(tasks)
        if len(tasks) != self.num_envs:
            raise ValueError(f"got {len(tasks)} tasks for {self.num_envs} envs")
        payloads = [_TASKS + pickle.dumps(tasks[rows], protocol=pickle.HIGHEST_PROTOCOL) for rows in self._rows]
        self._tasks = tasks
        self._call(payloads, "set_tasks")

    def reset(self) -> np.ndarray:
        self._check_open()
        self._drain("reset")
        self._call([_RESET] * self.num_workers, "reset")
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._check_open()
        self._drain("step")
        self._put_actions(slice(None), actions)
        self._call([_STEP] * self.num_workers, "step")
        return self._obs.copy(), self._rew.copy(), self._succ.copy()

    # ------------------------------------------------------------ by group
    def step_async(self, group: int, actions: np.ndarray) -> None:
        """Start a step of the envs ``groups[group]`` with ``actions`` ``[len(group), ...]``."""
        self._check_open()
        if group in self._in_flight:
            raise RuntimeError(f"group {group} already has a step in flight; call step_wait({group}) first")
        self._put_actions(self.groups[group], actions)
        with self._guard("step"):
            self._send(self._group_workers[group], _STEP + bytes([group]), "step")
        self._in_flight.append(group)

    def step_wait(self, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Wait for the step of ``groups[group]`` started last; its ``(obs, reward, success)``."""
        self._check_open()
        if not self._in_flight or self._in_flight[0] != group:
            raise RuntimeError(f"step_wait({group}): the steps in flight are those of groups "
                               f"{list(self._in_flight)}, to be waited for in that order")
        with self._guard("step"):
            self._gather(self._group_workers[group], "step")
        self._in_flight.popleft()
        rows = self.groups[group]
        return self._obs[rows].copy(), self._rew[rows].copy(), self._succ[rows].copy()

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        self._closed = True
        self._finalizer()

    # ------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"ProcessTrialEnv is unusable after an earlier failure: {self._failure}")
        if self._closed:
            raise RuntimeError("ProcessTrialEnv is closed")

    def _describe(self, w: int) -> str:
        rows = range(*self._rows[w].indices(self.num_envs))
        idx = [str(i) for i in rows]
        envs = ("env " if len(idx) == 1 else "envs ") + ",".join(idx if len(idx) <= 4 else idx[:2] + ["...", idx[-1]])
        if self._tasks is None:
            return f"worker {w} ({envs}; no tasks set yet)"
        names = list(dict.fromkeys(self._task_name(self._tasks[i]) for i in rows))
        return f"worker {w} ({envs}; tasks: {', '.join(names)})"

    def _fail(self, w: int, what: str, during: str) -> NoReturn:
        msg = f"ProcessTrialEnv {self._describe(w)} {what} during {during}"
        self._failure = msg
        self.close()
        raise RuntimeError(msg)

    def _exit_text(self, w: int) -> str:
        p = self._procs[w]
        p.join(0.1)
        code = p.exitcode
        if code is None:
            return "closed its pipe"
        if code < 0:
            try:
                return f"died (killed by {signal.Signals(-code).name})"
            except ValueError:
                return f"died (signal {-code})"
        return f"died (exit code {code})"

    def _put_actions(self, rows: slice, actions: np.ndarray) -> None:
        actions, dest = np.asarray(actions), self._act[rows]
        if actions.shape != dest.shape:
            raise ValueError(f"actions have shape {actions.shape}; expected {dest.shape}")
        np.copyto(dest, actions, casting="same_kind")

    @contextlib.contextmanager
    def _guard(self, during: str):
        """Replies may still be in flight after any exception here (e.g. KeyboardInterrupt):
        the env cannot be reused."""
        try:
            yield
        except BaseException as exc:
            if self._failure is None:
                self._failure = f"ProcessTrialEnv was interrupted during {during} ({type(exc).__name__})"
                self.close()
            raise

    def _drain(self, during: str) -> None:
        """Wait for the group steps still in flight, dropping their results."""
        with self._guard(during):
            while self._in_flight:
                self._gather(self._group_workers[self._in_flight[0]], during)
                self._in_flight.popleft()

    def _call(self, payloads: list[bytes], during: str) -> None:
        """Send ``payloads[w]`` to worker ``w`` and wait for every reply."""
        with self._guard(during):
            for w, msg in enumerate(payloads):
                self._send([w], msg, during)
            self._gather(range(self.num_workers), during)

    def _send(self, workers: Sequence[int], msg: bytes, during: str) -> None:
        for w in workers:
            try:
                self._conns[w].send_bytes(msg)
            except (EOFError, OSError):
                self._fail(w, self._exit_text(w), during)

    def _gather(self, workers: Sequence[int], during: str) -> None:
        """Wait for one reply from each of ``workers``; raise on error, death or timeout."""
        conns, procs = self._conns, self._procs
        pending = list(workers)
        deadline = time.monotonic() + self.timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(pending[0], f"did not answer within {self.timeout:g} s", during)
            waitables = [conns[w] for w in pending] + [procs[w].sentinel for w in pending]
            ready = mpc.wait(waitables, timeout=min(remaining, 5.0))
            still = []
            for w in pending:
                conn = conns[w]
                if conn in ready or procs[w].sentinel in ready:
                    try:
                        has_msg = conn.poll()
                        msg = conn.recv_bytes() if has_msg else None
                    except (EOFError, OSError):
                        msg = None
                    if msg is None:
                        self._fail(w, self._exit_text(w), during)
                    if msg[:1] == _ERR:
                        self._fail(w, "raised " + msg[1:].decode("utf-8", "replace"), during)
                else:
                    still.append(w)
            pending = still
