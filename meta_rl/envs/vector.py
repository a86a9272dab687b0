"""A :class:`~meta_rl.envs.base.TrialEnv` whose envs are stepped by worker processes.

``ProcessTrialEnv`` splits its ``num_envs`` envs over ``num_workers`` processes.
Worker ``w`` owns the envs ``w, w + W, w + 2W, ...`` (W = ``num_workers``) and steps
them with one in-process trial env built by the picklable factory ``make_slice(n)``.
Interleaving (rather than contiguous blocks) balances the load:
``Benchmark.sample_tasks`` lists tasks class by class and Meta-World classes differ
several-fold in step cost, so on ML10 with 20 envs contiguous halves give one of two
workers ~1.3x the work of the other, while interleaved halves hold one task of every
class each.

Two ways to drive the workers:

* the synchronous :class:`~meta_rl.envs.base.TrialEnv` calls (``set_tasks``, ``reset``,
  ``step``): actions, observations, rewards and successes live in one shared-memory buffer
  (``multiprocessing.RawArray`` seen through numpy views in every process), nothing is
  pickled per step, and each call is one short command and one one-byte reply per worker;
* ``run(jobs)``: each worker runs a picklable job on its own in-process env and returns a
  picklable result, with no exchange with the main process until it is done. The rollout
  runs a whole trial this way, the policy included (``meta_rl.rollout``): the workers
  then never wait for each other nor for the main process.

Failures never hang the caller: the main process waits on each worker's pipe *and*
its process sentinel (with a timeout), so a worker that is killed, exits, raises or
stops answering (or, inside a job, stops making progress) makes the call raise a one-line
:class:`RuntimeError` naming the worker and the task classes of its envs. The env is then
closed.

Start method: ``forkserver`` by default (``spawn`` where it is unavailable). The main process
usually runs torch's intra-op thread pool (and other threads, e.g. progress bars), and
forking a multi-threaded process is what Python deprecates from 3.12 on; a forkserver child
starts from a clean single-threaded process and costs only a one-time import of the env
library per worker (~2 s to start the workers instead of ~0.1 s). As with any non-fork start
method, a script that creates the env must guard its entry point with
``if __name__ == "__main__":`` (``train.py`` and ``evaluate.py`` do), and ``make_slice``
and the jobs must be importable by name (module-level classes or functions). Pass
``start_method="fork"`` to start faster.

Workers run the code the process started with, not what is on disk when they start: before
the forkserver starts, it is told to import the modules of ``meta_rl`` and of ``make_slice``'s
package that this process has imported (:func:`forkserver_preload`), and every worker is a
fork of it. Without this, a worker imports such a module when it first unpickles something
that needs it (the evaluation workers import the model's class at the first evaluation),
so editing the code during a run made the run fail or, worse, mix two versions of the code.
The forkserver imports through its own ``sys.path`` (the working directory, ``PYTHONPATH`` and
site-packages; Python 3.11's forkserver does not take this process's), so a module reachable
only through a path added at run time is not preloaded and is imported by each worker when
first needed, as without the preload.

Workers are daemonic, ignore SIGINT (the main process shuts them down), exit when
their pipe to the main process closes (so a killed main process leaves no orphans),
and are terminated by ``close()``, by garbage collection, or at interpreter exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import signal
import sys
import time
import weakref
from typing import Any, Callable, NoReturn, Sequence

import gymnasium as gym
import numpy as np

# One-byte commands (main -> worker) and replies (worker -> main).
_STEP, _RESET, _TASKS, _RUN, _CLOSE = b"s", b"r", b"t", b"j", b"c"
_OK, _ERR, _ABORTED = b"k", b"e", b"a"
_ALIGN = 64
_POLL_S = 0.05  # how often ``run`` calls its ``poll`` while the workers work


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


def forkserver_preload(make_slice: Any) -> list[str]:
    """The modules the forkserver imports before it forks any worker: ``__main__`` (the
    multiprocessing default), then every module of ``meta_rl`` and of the top-level package of
    ``make_slice`` (or, for a ``functools.partial``, of its function) in ``sys.modules``."""
    factory = getattr(make_slice, "func", make_slice)
    module = getattr(factory, "__module__", None) or type(factory).__module__
    packages = {__name__.split(".")[0], module.split(".")[0]}
    return ["__main__"] + sorted(n for n in list(sys.modules) if n != "__main__" and n.split(".")[0] in packages)


def _default_task_name(task: Any) -> str:
    return str(getattr(task, "env_name", None) or type(task).__name__)


class Aborted(Exception):
    """Raised inside a worker's job by :meth:`WorkerContext.check` when the main process
    asked the workers to stop."""


class WorkerContext:
    """What a job run by :meth:`ProcessTrialEnv.run` gets in its worker.

    Attributes:
        env: the worker's in-process trial env (its ``num_envs`` envs are the worker's rows).
        worker: the worker's index; its envs are rows ``worker, worker + W, ...`` of the batch.
        cache: a dict kept across the worker's jobs (e.g. a policy built by the first job).
    """

    def __init__(self, env, worker: int, abort: np.ndarray, progress: np.ndarray) -> None:
        self.env, self.worker, self.cache = env, worker, {}
        self._abort, self._progress = abort, progress

    def check(self) -> None:
        """Call often (e.g. every env step): counts as progress for the main process's timeout,
        and raises :class:`Aborted` when the main process asked the workers to stop."""
        self._progress[0] += 1
        if self._abort[0]:
            raise Aborted


class _Layout:
    """Offsets of the shared arrays inside one byte buffer."""

    def __init__(self, num_envs: int, num_workers: int, obs_shape, obs_dtype, act_shape, act_dtype) -> None:
        self.specs: dict[str, tuple[tuple[int, ...], np.dtype, int]] = {}
        off = 0
        for name, shape, dtype in (
            ("obs", (num_envs, *obs_shape), np.dtype(obs_dtype)),
            ("rew", (num_envs,), np.dtype(np.float32)),
            ("succ", (num_envs,), np.dtype(bool)),
            ("act", (num_envs, *act_shape), np.dtype(act_dtype)),
            ("abort", (1,), np.dtype(np.uint8)),
            ("progress", (num_workers, _ALIGN // 8), np.dtype(np.int64)),  # one cache line per worker
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


def _worker_main(make_slice, worker: int, num_envs: int, num_workers: int, layout: _Layout, raw, conn,
                 main_pid: int, nice: int = 0) -> None:
    """Worker loop: build the env of the worker's rows, then serve commands until CLOSE or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice:
        os.nice(nice)
    views = layout.views(raw)
    rows = slice(worker, num_envs, num_workers)
    obs, rew, succ, act = (views[k][rows] for k in ("obs", "rew", "succ", "act"))
    env = None

    def error(exc: BaseException) -> bytes:
        text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        return _ERR + text.encode("utf-8", "replace")

    try:
        try:
            env = make_slice(len(range(*rows.indices(num_envs))))
        except Exception as exc:
            conn.send_bytes(error(exc))
            return
        ctx = WorkerContext(env, worker, views["abort"], views["progress"][worker])
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
            cmd, reply = msg[:1], _OK
            if cmd == _CLOSE:
                return
            try:
                if cmd == _STEP:
                    o, r, s = env.step(act.copy())
                    obs[...] = o
                    rew[...] = r
                    succ[...] = s
                elif cmd == _RESET:
                    obs[...] = env.reset()
                elif cmd == _TASKS:
                    env.set_tasks(pickle.loads(msg[1:]))
                elif cmd == _RUN:
                    reply = _OK + pickle.dumps(pickle.loads(msg[1:])(ctx), protocol=pickle.HIGHEST_PROTOCOL)
                else:
                    raise ValueError(f"unknown command {cmd!r}")
            except Aborted:
                reply = _ABORTED
            except Exception as exc:
                reply = error(exc)
            conn.send_bytes(reply)
    except (EOFError, OSError, KeyboardInterrupt):  # the main process went away
        return
    finally:
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
    """``num_envs`` envs stepped by ``num_workers`` worker processes.

    Returns exactly what the in-process env built by ``make_slice`` returns for the
    same tasks and actions (each worker runs one such env on its envs).

    Besides the synchronous :class:`~meta_rl.envs.base.TrialEnv` calls, :meth:`run` runs
    a job in every worker on the worker's own env and returns the jobs' results.

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
        timeout: seconds a worker may take to answer one synchronous call, or go without
            progress (:meth:`WorkerContext.check`) in a job, before the call fails.
        worker_nice: niceness added to the workers. In the synchronous calls, with as many
            workers as cores, a worker woken by the main process's command otherwise preempts
            it on its core before it has sent the other workers their commands (each send then
            costs ~0.5 ms and the workers start staggered); a lower priority lets the main
            process finish sending and go to sleep first. Measured in docs/throughput.md.
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
        layout = _Layout(num_envs, W, observation_space.shape, observation_space.dtype, act_shape, act_dtype)
        if start_method is None:
            start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(start_method)
        if start_method == "forkserver":  # takes effect when the forkserver starts (once per process)
            ctx.set_forkserver_preload(forkserver_preload(make_slice))
        if mp.get_start_method(allow_none=True) not in (None, *mp.get_all_start_methods()):
            mp.set_start_method(start_method, force=True)
        self._raw = ctx.RawArray(ctypes.c_uint8, layout.nbytes)
        v = layout.views(self._raw)
        self._obs, self._rew, self._succ, self._act = v["obs"], v["rew"], v["succ"], v["act"]
        self._abort, self._progress = v["abort"], v["progress"][:, 0]
        self.rows = tuple(slice(w, num_envs, W) for w in range(W))
        self._procs: list = []
        self._conns: list = []
        # Registered before starting workers so that a failed start still cleans up.
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        try:
            for w in range(W):
                parent, child = ctx.Pipe(duplex=True)
                p = ctx.Process(
                    target=_worker_main,
                    args=(make_slice, w, num_envs, W, layout, self._raw, child, os.getpid(), worker_nice),
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
        tasks = list(tasks)
        if len(tasks) != self.num_envs:
            raise ValueError(f"got {len(tasks)} tasks for {self.num_envs} envs")
        payloads = [_TASKS + pickle.dumps(tasks[rows], protocol=pickle.HIGHEST_PROTOCOL) for rows in self.rows]
        self._tasks = tasks
        self._call(payloads, "set_tasks")

    def reset(self) -> np.ndarray:
        self._check_open()
        self._call([_RESET] * self.num_workers, "reset")
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._check_open()
        actions = np.asarray(actions)
        if actions.shape != self._act.shape:
            raise ValueError(f"actions have shape {actions.shape}; expected {self._act.shape}")
        np.copyto(self._act, actions, casting="same_kind")
        self._call([_STEP] * self.num_workers, "step")
        return self._obs.copy(), self._rew.copy(), self._succ.copy()

    # ------------------------------------------------------------ jobs
    def run(self, jobs: Sequence[Callable[[WorkerContext], Any]], tasks: Sequence[Any] | None = None,
            poll: Callable[[], None] | None = None, during: str = "run") -> list[Any]:
        """Run ``jobs[w](context)`` in worker ``w`` (see :class:`WorkerContext`); their results.

        Args:
            jobs: one picklable callable per worker.
            tasks: the tasks the jobs give the envs (all ``num_envs``), named in error messages.
            poll: called every ~50 ms while the workers work. If it raises, the workers are
                asked to stop (their jobs' next :meth:`WorkerContext.check` raises), their
                replies are awaited, and the exception propagates; the env stays usable.
            during: names the call in error messages.
        """
        self._check_open()
        if len(jobs) != self.num_workers:
            raise ValueError(f"got {len(jobs)} jobs for {self.num_workers} workers")
        if tasks is not None:
            tasks = list(tasks)
            if len(tasks) != self.num_envs:
                raise ValueError(f"got {len(tasks)} tasks for {self.num_envs} envs")
            self._tasks = tasks
        payloads = [_RUN + pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL) for job in jobs]
        replies: dict[int, bytes] = {}
        stop = None
        with self._guard(during):
            self._abort[0] = 0
            for w, msg in enumerate(payloads):
                self._send(w, msg, during)
            try:
                self._gather(range(self.num_workers), during, replies, poll=poll, progress=True)
            except _Interrupted as interrupted:
                stop = interrupted.exc
                self._abort[0] = 1
                self._gather([w for w in range(self.num_workers) if w not in replies], during, replies,
                             progress=True)
                self._abort[0] = 0
        if stop is not None:
            raise stop
        for w, msg in replies.items():
            if msg[:1] == _ABORTED:
                self._fail(w, "stopped its job without being asked", during)
        return [pickle.loads(replies[w][1:]) for w in range(self.num_workers)]

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
        rows = range(*self.rows[w].indices(self.num_envs))
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

    def _call(self, payloads: list[bytes], during: str) -> None:
        """Send ``payloads[w]`` to worker ``w`` and wait for every reply."""
        with self._guard(during):
            for w, msg in enumerate(payloads):
                self._send(w, msg, during)
            self._gather(range(self.num_workers), during)

    def _send(self, w: int, msg: bytes, during: str) -> None:
        try:
            self._conns[w].send_bytes(msg)
        except (EOFError, OSError):
            self._fail(w, self._exit_text(w), during)

    def _gather(self, workers: Sequence[int], during: str, replies: dict[int, bytes] | None = None,
                poll: Callable[[], None] | None = None, progress: bool = False) -> None:
        """Wait for one reply from each of ``workers`` (stored in ``replies``, status byte
        first); raise on error, death or timeout.

        ``progress``: the timeout counts from the worker's last :meth:`WorkerContext.check`
        rather than from the call. ``poll``: called every ``_POLL_S`` while replies are
        pending; what it raises is re-raised wrapped in :class:`_Interrupted` (the replies
        not in ``replies`` are then still to be gathered).
        """
        conns, procs = self._conns, self._procs
        pending = list(workers)
        last = {w: (int(self._progress[w]), time.monotonic()) for w in pending}
        while pending:
            now = time.monotonic()
            for w in pending:
                if progress and int(self._progress[w]) != last[w][0]:
                    last[w] = (int(self._progress[w]), now)
                if now - last[w][1] >= self.timeout:
                    what = "made no progress" if progress else "did not answer"
                    self._fail(w, f"{what} within {self.timeout:g} s", during)
            waitables = [conns[w] for w in pending] + [procs[w].sentinel for w in pending]
            ready = mpc.wait(waitables, timeout=min(self.timeout, _POLL_S if poll is not None else 5.0))
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
                    if replies is not None:
                        replies[w] = msg
                else:
                    still.append(w)
            pending = still
            if pending and poll is not None:
                try:
                    poll()
                except BaseException as exc:
                    raise _Interrupted(exc) from exc


class _Interrupted(Exception):
    """Carries what ``run``'s ``poll`` raised while replies were still pending."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(repr(exc))
        self.exc = exc
