"""ProcessTrialEnv: bit-identical to the in-process Meta-World env, and failures never hang."""

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

from meta_rl.envs.metaworld import MetaWorldBenchmark, MetaWorldSlice, MetaWorldTrialEnv
from meta_rl.envs.vector import ProcessTrialEnv, resolve_num_workers, usable_cores


@pytest.fixture(scope="module")
def ml10():
    return MetaWorldBenchmark("ML10", meta_batch_size=10, benchmark_seed=0, num_workers=2)


# "Promptly": a death or timeout noticed within this many seconds. A missed one would wait for the
# 600-s default timeout or for the job's end (1000 s), so the bound still catches it, while leaving
# room for a machine whose cores are busy with other work (the workers run at nice 10).
PROMPT_S = 30.0


def _classes(bench):
    return {**bench._classes["train"], **bench._classes["test"]}


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _assert_no_workers_left(pids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_pid_alive(p) for p in pids)
    assert not [c for c in mp.active_children() if c.name.startswith("ProcessTrialEnv")]


class _RaisingSlice:
    """A Meta-World slice whose env raises inside ``step`` once its task is ``bad_class``."""

    def __init__(self, class_names, bad_class):
        self.make, self.bad_class = MetaWorldSlice(tuple(class_names)), bad_class

    def __call__(self, n):
        env = self.make(n)
        inner_set, inner_step = env.set_tasks, env.step
        names = []

        def set_tasks(tasks):
            names[:] = [t.env_name for t in tasks]
            inner_set(tasks)

        def step(actions):
            if self.bad_class in names:
                raise FloatingPointError(f"simulated blow-up in {self.bad_class}")
            return inner_step(actions)

        env.set_tasks, env.step = set_tasks, step
        return env


class _SleepySlice:
    """A trivial slice whose ``step`` never answers in time."""

    def __call__(self, n):
        return _SleepyEnv(n)


class _SleepyEnv:
    def __init__(self, n):
        self.num_envs = n

    def set_tasks(self, tasks):
        pass

    def reset(self):
        return np.zeros((self.num_envs, 39), np.float32)

    def step(self, actions):
        time.sleep(30)

    def close(self):
        pass


def test_num_workers_resolution(ml10):
    assert resolve_num_workers(0, 20) == 0
    assert resolve_num_workers(3, 2) == 2
    assert resolve_num_workers(None, 20) == (0 if usable_cores() < 2 else min(usable_cores(), 20))
    assert resolve_num_workers(None, 1) == 0  # one worker process would only add overhead
    assert resolve_num_workers(1, 4) == 1
    with pytest.raises(ValueError, match="num_workers"):
        resolve_num_workers(-1, 4)
    with pytest.raises(ValueError, match="num_workers"):
        MetaWorldBenchmark("ML10", meta_batch_size=10, benchmark_seed=0, num_workers=-1)
    in_process = MetaWorldBenchmark("ML10", meta_batch_size=10, benchmark_seed=0, num_workers=0)
    assert isinstance(in_process.make_env(2), MetaWorldTrialEnv)


def test_matches_in_process_env_across_trials(ml10):
    n = 4
    env = ml10.make_env(n)
    assert isinstance(env, ProcessTrialEnv) and env.num_workers == 2
    ref = MetaWorldTrialEnv(n, _classes(ml10))
    rng = np.random.default_rng(0)
    trials = [  # a change of tasks and of classes between trials
        ml10.sample_tasks("train", 10, np.random.default_rng(0))[2:2 + n],
        ml10.sample_tasks("test", 5, np.random.default_rng(1))[:n],
    ]
    assert {t.env_name for t in trials[0]}.isdisjoint(t.env_name for t in trials[1])
    try:
        for tasks in trials:
            env.set_tasks(tasks)
            ref.set_tasks(tasks)
            for _ in range(2):
                np.testing.assert_array_equal(env.reset(), ref.reset())
                for _ in range(30):
                    a = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
                    got, want = env.step(a), ref.step(a)
                    for g, w in zip(got, want):
                        assert g.dtype == w.dtype and g.shape == w.shape
                        np.testing.assert_array_equal(g, w)
    finally:
        env.close()
        ref.close()


class _StepJob:
    """A job: reset the worker's envs, step them ``steps`` times with zero actions (checking in
    each step); returns the worker index, its last observations and summed rewards."""

    def __init__(self, steps, sleep=0.0):
        self.steps, self.sleep = steps, sleep

    def __call__(self, ctx):
        ctx.env.reset()
        total = 0.0
        for _ in range(self.steps):
            ctx.check()
            obs, rew, _ = ctx.env.step(np.zeros((ctx.env.num_envs, 4), np.float32))
            total += float(rew.sum())
            time.sleep(self.sleep)
        return ctx.worker, obs, total


class _Silent:
    """A job that never checks in."""

    def __call__(self, ctx):
        time.sleep(30)


class _KillSelf:
    def __call__(self, ctx):
        os.kill(os.getpid(), signal.SIGKILL)


def test_jobs_run_on_each_workers_envs(ml10):
    """Worker w's job sees the envs w, w + W, ... (and their tasks), as the in-process env would."""
    n = 5
    env = ml10.make_env(n)
    assert env.rows == (slice(0, 5, 2), slice(1, 5, 2))
    tasks = ml10.sample_tasks("train", 10, np.random.default_rng(0))[:n]
    try:
        env.set_tasks(tasks)
        results = env.run([_StepJob(7), _StepJob(7)])
        assert [r[0] for r in results] == [0, 1]
        for rows, (_, obs, total) in zip(env.rows, results):
            ref = MetaWorldTrialEnv(len(range(*rows.indices(n))), _classes(ml10))
            ref.set_tasks(tasks[rows])
            ref.reset()
            want = 0.0
            for _ in range(7):
                ref_obs, rew, _ = ref.step(np.zeros((ref.num_envs, 4), np.float32))
                want += float(rew.sum())
            ref.close()
            np.testing.assert_array_equal(obs, ref_obs)
            assert total == want
        with pytest.raises(ValueError, match="2 workers"):
            env.run([_StepJob(1)])
        # the synchronous calls still work after jobs
        env.reset()
        env.step(np.zeros((n, 4), np.float32))
    finally:
        env.close()


def test_a_job_that_raises_names_the_worker_and_its_tasks(ml10):
    tasks = ml10.sample_tasks("train", 10, np.random.default_rng(0))[:2]
    bad = tasks[1].env_name
    env = ProcessTrialEnv(_RaisingSlice(_classes(ml10), bad), 2, ml10.observation_space, ml10.action_space,
                          num_workers=2, task_name=ml10.task_class)
    pids = [p.pid for p in env._procs]
    env.set_tasks(tasks)
    with pytest.raises(RuntimeError) as err:
        env.run([_StepJob(3), _StepJob(3)], tasks=tasks, during="collect")
    msg = str(err.value)
    assert "\n" not in msg and "worker 1" in msg and bad in msg and "during collect" in msg
    assert f"FloatingPointError: simulated blow-up in {bad}" in msg
    _assert_no_workers_left(pids)


def test_a_worker_killed_during_a_job_raises_promptly(ml10):
    tasks = ml10.sample_tasks("train", 10, np.random.default_rng(0))[::3][:4]
    env = ml10.make_env(4)
    pids = [p.pid for p in env._procs]
    env.set_tasks(tasks)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        env.run([_StepJob(10**6, sleep=0.001), _KillSelf()], tasks=tasks, poll=lambda: None)
    assert time.monotonic() - start < PROMPT_S
    msg = str(err.value)
    assert "\n" not in msg and "worker 1" in msg and "SIGKILL" in msg
    assert tasks[1].env_name in msg and tasks[3].env_name in msg and tasks[0].env_name not in msg
    _assert_no_workers_left(pids)


def test_a_job_without_progress_times_out_but_a_long_one_does_not(ml10):
    # Workers at the main process's priority: at the default nice 10 a busy machine can leave them
    # without a core for over a second, which this test would read as a job making no progress.
    env = ProcessTrialEnv(MetaWorldSlice(tuple(_classes(ml10))), 2, ml10.observation_space, ml10.action_space,
                          num_workers=2, task_name=ml10.task_class, worker_nice=0)
    pids = [p.pid for p in env._procs]
    env.set_tasks(ml10.sample_tasks("train", 10, np.random.default_rng(0))[:2])
    env.reset()  # the workers have built their envs: the timeout below measures the jobs alone
    env.timeout = 1.0
    env.run([_StepJob(150, sleep=0.01)] * 2)  # ~2 s in all, checking in every ~10 ms: no timeout
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker 0 .* made no progress within 1 s during run"):
        env.run([_Silent(), _StepJob(1)])
    assert time.monotonic() - start < 6.0
    _assert_no_workers_left(pids)


def test_killed_worker_raises_promptly(ml10):
    tasks = ml10.sample_tasks("train", 10, np.random.default_rng(0))[::3][:4]
    env = ml10.make_env(4)
    pids = [p.pid for p in env._procs]
    env.set_tasks(tasks)
    env.reset()
    env.step(np.zeros((4, 4), np.float32))
    os.kill(pids[1], signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        env.step(np.zeros((4, 4), np.float32))
    assert time.monotonic() - start < PROMPT_S
    msg = str(err.value)
    assert "\n" not in msg and "worker 1" in msg and "SIGKILL" in msg
    # worker 1 owns envs 1 and 3
    assert tasks[1].env_name in msg and tasks[3].env_name in msg and tasks[0].env_name not in msg
    with pytest.raises(RuntimeError, match="worker 1"):  # stays failed, does not hang
        env.reset()
    env.close()
    _assert_no_workers_left(pids)


def test_env_raising_in_step_names_the_task(ml10):
    tasks = ml10.sample_tasks("train", 10, np.random.default_rng(0))[:2]
    bad = tasks[0].env_name
    env = ProcessTrialEnv(_RaisingSlice(_classes(ml10), bad), 2, ml10.observation_space, ml10.action_space,
                          num_workers=2, task_name=ml10.task_class)
    pids = [p.pid for p in env._procs]
    env.set_tasks(tasks)
    env.reset()
    with pytest.raises(RuntimeError) as err:
        env.step(np.zeros((2, 4), np.float32))
    msg = str(err.value)
    assert "\n" not in msg and "worker 0" in msg and bad in msg
    assert f"FloatingPointError: simulated blow-up in {bad}" in msg
    env.close()
    _assert_no_workers_left(pids)


def test_unresponsive_worker_times_out(ml10):
    env = ProcessTrialEnv(_SleepySlice(), 2, ml10.observation_space, ml10.action_space, num_workers=2)
    pids = [p.pid for p in env._procs]
    env.set_tasks([object(), object()])
    env.timeout = 1.0  # after start-up, which may take longer than 1 s on a loaded machine
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not answer within 1 s during step"):
        env.step(np.zeros((2, 4), np.float32))
    assert time.monotonic() - start < 6.0
    _assert_no_workers_left(pids)


def test_close_is_idempotent_and_stops_workers(ml10):
    env = ml10.make_env(2)
    pids = [p.pid for p in env._procs]
    assert all(_pid_alive(p) for p in pids)
    env.close()
    env.close()
    _assert_no_workers_left(pids)
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_workers_run_at_lower_priority_than_the_main_process(ml10):
    env = ProcessTrialEnv(_SleepySlice(), 2, ml10.observation_space, ml10.action_space, num_workers=2,
                          worker_nice=7)
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert [os.getpriority(os.PRIO_PROCESS, p.pid) for p in env._procs] == [min(own + 7, 19)] * 2
    finally:
        env.close()


_EDITED_DURING_A_RUN = '''
import os
import gymnasium as gym
import numpy as np
from editpkg.envs import Slice
from meta_rl.envs.vector import ProcessTrialEnv, forkserver_preload

obs_space, act_space = gym.spaces.Box(-9, 9, (3,), np.float64), gym.spaces.Box(-1, 1, (4,), np.float32)
def make(method):
    return ProcessTrialEnv(Slice(), 2, obs_space, act_space, num_workers=2, start_method=method)

if __name__ == "__main__":
    import editpkg.version                   # imported by this process only (as train.py imports the model)
    assert "editpkg.version" in forkserver_preload(Slice()), forkserver_preload(Slice())
    running = make("forkserver")             # the run's workers, started before the edit
    path = os.path.join(os.environ["PKG_ROOT"], "editpkg", "version.py")
    with open(path, "w") as f:
        f.write("VERSION = 2.0\\n")
    os.utime(path, (1e9 + 7, 1e9 + 7))       # a different mtime: no stale bytecode
    started_later = make("forkserver")       # e.g. the evaluation's workers
    fresh = make("spawn")                    # a process that imports what is on disk now
    print(running.reset()[0, 0], started_later.reset()[0, 0], fresh.reset()[0, 0])
    for env in (running, started_later, fresh):
        env.close()
'''


def test_workers_run_the_code_the_run_started_with_not_an_edit_made_during_it(tmp_path):
    """Editing the code while a run goes on must not change what its workers run: a worker
    that first imports a module mid-run (the evaluation workers import the model's class at
    the first evaluation) and a worker started after the edit both see the original code."""
    import subprocess
    import sys
    from pathlib import Path

    pkg = tmp_path / "editpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "version.py").write_text("VERSION = 1.0\n")
    (pkg / "envs.py").write_text(
        "import numpy as np\n"
        "class Slice:\n"
        "    def __call__(self, n):\n"
        "        return Env(n)\n"
        "class Env:\n"
        "    def __init__(self, n):\n"
        "        self.num_envs = n\n"
        "    def set_tasks(self, tasks):\n"
        "        pass\n"
        "    def reset(self):\n"
        "        from editpkg import version  # imported by the worker on first use\n"
        "        return np.full((self.num_envs, 3), version.VERSION)\n"
        "    def close(self):\n"
        "        pass\n"
    )
    script = tmp_path / "run.py"
    script.write_text(_EDITED_DURING_A_RUN)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PKG_ROOT": str(tmp_path), "PYTHONPATH": os.pathsep.join([str(root), str(tmp_path)])}
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    running, started_later, fresh = map(float, p.stdout.split()[-3:])
    assert fresh == 2.0  # the edit is on disk: a process importing it now sees it
    assert (running, started_later) == (1.0, 1.0), p.stdout
