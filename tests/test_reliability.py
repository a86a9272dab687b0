"""Reliability: resume after SIGTERM equals an uninterrupted run, SIGKILL never leaves an
unloadable checkpoint, bad configs and files fail with one line, NaN stops the run cleanly,
and checkpoints never execute code."""

import csv
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from meta_rl import checkpoint
from meta_rl.errors import CheckpointError, NumericalError
from meta_rl.experiment import train

ROOT = Path(__file__).resolve().parents[1]
# measured, not reproducible
TIMING = ("charts/SPS", "charts/collect_SPS", "charts/update_time", "charts/eval_SPS", "charts/rss_mb")
# ML1 builds in about a second; 10 trials x 2 episodes x 20 steps = 400 steps per iteration
FAST = ["debug=smoke", "env=ml1", "env.task=reach-v3", "env.meta_batch_size=10", "eval.every=0",
        "eval.final=false", "checkpoint_every=1", "env.num_workers=0"]


def cli(script, *args, cwd, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def rows(run_dir):
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def wait_for_rows(run_dir, n, proc, timeout=120):
    path = Path(run_dir) / "metrics.csv"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read()[-2000:]}")
        if path.exists() and len(path.read_text().strip().splitlines()) > n:
            return
        time.sleep(0.2)
    raise AssertionError("training made no progress")


def test_sigterm_then_resume_equals_uninterrupted_run(tmp_path):
    n_iter = 6
    common = [*FAST, f"total_env_steps={400 * n_iter}", "model.hidden=64"]
    full = cli("train.py", *common, f"hydra.run.dir={tmp_path}/full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]

    run = tmp_path / "cut"
    p = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *common, f"hydra.run.dir={run}"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(run, 2, p)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert time.time() - t0 < 30, "SIGTERM must stop the run within a bounded time"
    assert p.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "continue with: python train.py resume=" in err.strip().splitlines()[-1]
    state = checkpoint.load(str(run / "checkpoints" / "latest.pt"))
    k = state["iteration"]
    assert 2 <= k < n_iter

    resumed = cli("train.py", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"from iteration {k}" in resumed.stdout
    assert rows(run) == rows(tmp_path / "full")  # rows 1..k kept, k+1.. identical to the uninterrupted run
    final = checkpoint.load(str(run / "checkpoints" / "latest.pt"))
    reference = checkpoint.load(str(tmp_path / "full" / "checkpoints" / "latest.pt"))
    for name, t in reference["model"].items():
        assert torch.equal(final["model"][name], t), name


def test_sigkill_never_leaves_an_unloadable_latest_checkpoint(tmp_path):
    """Kill short runs (checkpointing every iteration) at random moments; bounded in count and time.

    The first run is killed only once it has written a checkpoint (start-up time varies with
    the machine's load); later runs resume from it and are killed at random moments.
    """
    rng = random.Random(0)
    run = tmp_path / "run"
    latest = run / "checkpoints" / "latest.pt"
    deadline = time.time() + 150
    kills = 0
    while kills < 6 and time.time() < deadline:
        had_checkpoint = latest.exists()
        p = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *FAST, "total_env_steps=40000",
                              "model.hidden=256", f"hydra.run.dir={run}"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if had_checkpoint:
            time.sleep(rng.uniform(4.0, 9.0))
        else:
            while not latest.exists() and p.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 2.0))
        p.kill()
        p.wait(timeout=30)
        kills += 1
        if latest.exists():
            state = checkpoint.load(str(latest))  # raises if truncated or corrupt
            assert state["iteration"] >= 1
    assert kills >= 3
    assert (run / "checkpoints" / "latest.pt").exists(), "no run got far enough to checkpoint"
    # the next start continues from the last complete checkpoint
    before = checkpoint.load(str(run / "checkpoints" / "latest.pt"))["iteration"]
    p = cli("train.py", *FAST, f"total_env_steps={400 * (before + 1)}", "model.hidden=256",
            f"hydra.run.dir={run}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"from iteration {before}" in p.stdout


def test_atomic_save_keeps_previous_file_when_write_fails(tmp_path, monkeypatch):
    path = str(tmp_path / "latest.pt")
    checkpoint.save(path, {"iteration": 1})

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        checkpoint.save(path, {"iteration": 2})
    monkeypatch.undo()
    assert checkpoint.load(path)["iteration"] == 1
    assert os.listdir(tmp_path) == ["latest.pt"]


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = None


def test_checkpoint_that_executes_code_is_refused(tmp_path):
    global MARKER
    MARKER = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "model": Exploit()}, path)
    with pytest.raises(CheckpointError, match="corrupt or unsafe"):
        checkpoint.load(str(path))
    assert not MARKER.exists()
    p = cli("evaluate.py", f"run={path}", cwd=tmp_path)
    assert p.returncode == 2 and not MARKER.exists()
    assert p.stderr.strip().splitlines()[-1].startswith(f"error: checkpoint {path} is corrupt or unsafe")


def test_nan_in_loss_stops_run_and_keeps_last_good_checkpoint(make_cfg, tmp_path, monkeypatch):
    from meta_rl.algos import ppo

    calls = {"n": 0}
    real = ppo.clip_objective

    def poisoned(logratio, adv, clip):
        calls["n"] += 1
        loss, cf, kl = real(logratio, adv, clip)
        return (loss * float("nan") if calls["n"] > 1 else loss), cf, kl  # 2nd iteration (1 minibatch each)

    monkeypatch.setattr(ppo, "clip_objective", poisoned)
    with pytest.raises(NumericalError) as e:
        train(make_cfg(*FAST, "total_env_steps=2000", run_dir=str(tmp_path)))
    msg = str(e.value)
    assert msg.startswith("iteration 2: non-finite losses/policy_loss (nan)") and "\n" not in msg
    assert "last good checkpoint is" in msg and "(iteration 1)" in msg
    state = checkpoint.load(str(tmp_path / "checkpoints" / "latest.pt"))
    assert state["iteration"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert len(rows(tmp_path)) == 1


def _bad_files(tmp_path):
    good_run = tmp_path / "good"
    train_args = [*FAST, "total_env_steps=400"]
    p = cli("train.py", *train_args, f"hydra.run.dir={good_run}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    good = (good_run / "checkpoints" / "latest.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.pt").write_bytes(os.urandom(4096))
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with open(tmp_path / "pickle.pt", "wb") as f:
        pickle.dump({"a": 1}, f)
    (tmp_path / "emptyrun" / "checkpoints").mkdir(parents=True)
    return good_run


# (script, args, expected exit code, start of the last stderr line)
BAD = [
    ("train.py", ["model.hidden=abc"], 2, "config error: Error merging override model.hidden=abc"),
    ("train.py", ["model.hidden=0"], 2, "config error: model.hidden=0 must be > 0"),
    ("train.py", ["env.meta_batch_size=15"], 2, "config error: env.meta_batch_size=15 must be a multiple of the 10"),
    ("train.py", ["env.meta_batch_size=-10"], 2, "config error: env.meta_batch_size=-10 must be > 0"),
    ("train.py", ["env.episodes_per_trial=0"], 2, "config error: env.episodes_per_trial=0 must be > 0"),
    ("train.py", ["env.episode_length=501"], 2, "config error: env.episode_length=501 exceeds"),
    ("train.py", ["env.benchmark=ML99"], 2, "config error: env.benchmark=ML99 is unknown; valid: ML1, ML10, ML45"),
    ("train.py", ["env=ml1", "env.task=fly-v3"], 2, "config error: env.task=fly-v3 is not a Meta-World v3 task; valid:"),
    ("train.py", ["env.task=reach-v3"], 2, "config error: env.task is only used with env=ml1"),
    ("train.py", ["env=ml99"], 2, "config error: In 'train': Could not find 'env/ml99'"),
    ("train.py", ["algo=sac"], 2, "config error: In 'train': Could not find 'algo/sac'"),
    ("train.py", ["algo.lr=-1"], 2, "config error: algo.lr=-1.0 must be > 0"),
    ("train.py", ["algo.gamma=2"], 2, "config error: algo.gamma=2.0 must lie in [0, 1]"),
    ("train.py", ["algo.epochs=zero"], 2, "config error: Error merging override algo.epochs=zero"),
    ("train.py", ["algo.chunk_length=7"], 2, "config error: algo.chunk_length=7 must divide the trial length"),
    ("train.py", ["algo=ppo_kl", "algo.kl_target=0"], 2, "config error: algo.kl_target=0.0 must be > 0"),
    ("train.py", ["algo.aux_task_coef=-1"], 2, "config error: algo.aux_task_coef=-1.0 must be >= 0"),
    ("train.py", ["algo.aux_reward_coef=-0.5"], 2, "config error: algo.aux_reward_coef=-0.5 must be >= 0"),
    ("train.py", ["algo.aux_task_target=future"], 2, "config error: algo.aux_task_target=future is unknown; valid: "),
    ("train.py", ["algo.aux_task_coef=0.5", "algo.aux_task_target=trial"], 2,
     "config error: algo.aux_task_target=trial needs task features estimated from a trial's data, which env ml10"),
    ("train.py", ["algo.aux_task_coef=0.5", "algo.aux_task_target=posterior"], 2,
     "config error: algo.aux_task_target=posterior needs task features estimated from a trial's data, which env ml10"),
    ("train.py", ["env=tabular_mdp", "env.task_features=dynamics"], 2,
     "config error: env.task_features=dynamics is unknown; valid: rewards, rewards_transitions"),
    ("train.py", ["env.train_goal_sets=0"], 2, "config error: env.train_goal_sets=0 must be > 0"),
    ("train.py", ["model.masked_inputs=[4,45]"], 2, "config error: model.masked_inputs=[45]: env "),
    ("train.py", ["algo.baseline=mean"], 2, "config error: algo.baseline=mean is unknown; valid: critic, linear"),
    ("train.py", ["total_env_steps=0"], 2, "config error: total_env_steps=0 must be > 0"),
    ("train.py", ["seed=-1"], 2, "config error: seed=-1 must be >= 0"),
    ("train.py", ["device=cuda"], 2, "config error: device=cuda but no CUDA GPU is available"),
    ("train.py", ["device=abacus"], 2, "config error: device=abacus is unknown"),
    ("train.py", ["eval.split=valid"], 2, "config error: eval.split=valid is unknown"),
    ("train.py", ["no_such_key=1"], 2, "config error: Could not override 'no_such_key'"),
    ("train.py", ["resume={tmp}/nowhere"], 2, "error: run={tmp}/nowhere is neither a run directory nor a checkpoint"),
    ("train.py", ["resume={tmp}/emptyrun"], 2, "error: no checkpoint {tmp}/emptyrun/checkpoints/latest.pt"),
    ("train.py", ["resume={tmp}/truncated.pt"], 2, "error: checkpoint {tmp}/truncated.pt is corrupt or unsafe"),
    ("train.py", ["resume={tmp}/good", "model.hidden=64"], 2, "config error: resume cannot change model.hidden"),
    ("train.py", ["experiment=rl2_aux_mdp_n25_curriculum"], 2,
     "config error: experiment rl2_aux_mdp_n25_curriculum continues another run: pass init_weights="),
    ("train.py", ["init_weights={tmp}/nowhere.pt"], 2, "error: init_weights={tmp}/nowhere.pt does not exist"),
    ("train.py", ["init_weights={tmp}/garbage.pt"], 2, "error: init_weights={tmp}/garbage.pt is corrupt or unsafe"),
    ("train.py", ["init_weights={tmp}/foreign.pt"], 2, "error: init_weights={tmp}/foreign.pt does not fit the model"),
    ("train.py", ["init_weights={tmp}/good/checkpoints/latest.pt", "model.hidden=64"], 2,
     "error: init_weights={tmp}/good/checkpoints/latest.pt does not fit the model ("),
    ("evaluate.py", [], 2, "config error: Structured config of type `EvaluateConfig` has missing mandatory value: run"),
    ("evaluate.py", ["run={tmp}/garbage.pt"], 2, "error: checkpoint {tmp}/garbage.pt is corrupt or unsafe"),
    ("evaluate.py", ["run={tmp}/empty.pt"], 2, "error: checkpoint {tmp}/empty.pt is corrupt or unsafe"),
    ("evaluate.py", ["run={tmp}/foreign.pt"], 2, "error: checkpoint {tmp}/foreign.pt is not a meta-rl checkpoint"),
    ("evaluate.py", ["run={tmp}/pickle.pt"], 2, "error: checkpoint {tmp}/pickle.pt is corrupt or unsafe"),
    ("evaluate.py", ["run={tmp}/good", "checkpoint=best"], 2, "error: no checkpoint {tmp}/good/checkpoints/best.pt"),
    ("evaluate.py", ["run={tmp}/good", "eval.num_envs=0"], 2, "config error: eval.num_envs=0 must be > 0"),
]


def test_bad_configs_and_files_fail_with_one_line(tmp_path):
    _bad_files(tmp_path)
    failures = []
    for script, args, code, start in BAD:
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        extra = ["debug=smoke", f"hydra.run.dir={tmp_path}/out"] if script == "train.py" and not any(
            a.startswith("resume=") for a in args) else []
        if any(a in ("env=tabular_mdp", "env=bandit") or a.startswith("experiment=rl2_aux_mdp") for a in args):
            # debug=smoke sets Meta-World's trial keys, which the bandit/MDP schemas do not have
            extra.remove("debug=smoke")
        p = cli(script, *extra, *args, cwd=tmp_path)
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        expected = start.replace("{tmp}", str(tmp_path))
        if p.returncode != code or not lines or not lines[-1].startswith(expected) or "Traceback" in p.stderr:
            failures.append(f"{script} {' '.join(args)}: rc={p.returncode} stderr={p.stderr[-400:]!r}")
    assert not failures, "\n".join(failures)
    # nothing already saved was lost
    assert checkpoint.load(str(tmp_path / "good" / "checkpoints" / "latest.pt"))["iteration"] == 1


def test_preemption_signal_checkpoints_then_hands_over_to_the_job_manager(make_cfg, tmp_path):
    """submitit requeues a job from its USR2 handler and exits; the run must checkpoint first."""
    import threading

    latest = tmp_path / "checkpoints" / "latest.pt"
    calls = []

    def job_manager(signum, frame):  # stands in for submitit's checkpoint_and_try_requeue
        calls.append((signum, latest.exists()))
        raise SystemExit(3)

    previous = signal.signal(signal.SIGUSR2, job_manager)
    cfg = make_cfg(*FAST, "total_env_steps=400000", "checkpoint_every=1000", run_dir=str(tmp_path))
    timer = threading.Timer(8.0, os.kill, (os.getpid(), signal.SIGUSR2))
    timer.start()
    try:
        with pytest.raises(SystemExit) as e:
            train(cfg)
    finally:
        timer.cancel()
        handler_after = signal.getsignal(signal.SIGUSR2)
        signal.signal(signal.SIGUSR2, previous)
    assert e.value.code == 3
    assert calls == [(signal.SIGUSR2, True)], "the job manager must be called once, after the checkpoint"
    assert handler_after is job_manager, "the job manager's handler must be restored"
    state = checkpoint.load(str(latest))  # a complete iteration's state (the first one under heavy load)
    assert state["env_steps"] == 400 * state["iteration"]


def test_stop_during_an_evaluation_keeps_the_iteration_and_resume_redoes_the_evaluation(make_cfg, tmp_path,
                                                                                          monkeypatch):
    """SIGTERM while iteration 2 is being evaluated: iteration 2 is saved (not redone), and the
    resumed run evaluates, logs and checkpoints it as the uninterrupted run did."""
    from meta_rl.errors import Interrupted
    from meta_rl.evaluation import MetaEvaluator

    args = [*FAST, "total_env_steps=1200", "eval.every=1", "eval.final=true", "model.hidden=32"]
    train(make_cfg(*args, run_dir=str(tmp_path / "full")))

    real, calls = MetaEvaluator.evaluate, {"n": 0}

    def evaluate(self, tasks, seed):
        calls["n"] += 1
        if calls["n"] == 3:  # iteration 2's first split (2 splits per evaluation)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, tasks, seed)

    monkeypatch.setattr(MetaEvaluator, "evaluate", evaluate)
    cut = tmp_path / "cut"
    with pytest.raises(Interrupted):
        train(make_cfg(*args, run_dir=str(cut)))
    state = checkpoint.load(str(cut / "checkpoints" / "latest.pt"))
    assert state["iteration"] == 2 and state["pending_metrics"]["charts/iteration"] == 2
    assert len(rows(cut)) == 1  # iteration 2 is logged once its evaluation is done

    monkeypatch.setattr(MetaEvaluator, "evaluate", real)
    train(make_cfg(*args, run_dir=str(cut)))  # auto-resume
    assert rows(cut) == rows(tmp_path / "full")
    final = checkpoint.load(str(cut / "checkpoints" / "latest.pt"))
    reference = checkpoint.load(str(tmp_path / "full" / "checkpoints" / "latest.pt"))
    assert final["iteration"] == 3 and final["pending_metrics"] is None
    for name, t in reference["model"].items():
        assert torch.equal(final["model"][name], t), name


def _drop_saved_key(path, group, key):
    """Rewrite a checkpoint as if it had been saved before ``group.key`` existed."""
    state = checkpoint.load(str(path))
    del state["config"][group][key]
    torch.save(state, str(path))


def test_runs_saved_before_an_option_existed_continue(make_cfg, tmp_path):
    """A checkpoint whose config lacks an option added since (here model.state_dependent_std)
    continues, by auto-resume and by resume=, as that option's schema default; changing the
    option on resume is still refused."""
    from meta_rl.config import ConfigError

    args = [*FAST, "total_env_steps=800", "model.hidden=16"]
    run = tmp_path / "old"
    train(make_cfg(*args, run_dir=str(run)))
    latest = run / "checkpoints" / "latest.pt"
    _drop_saved_key(latest, "model", "state_dependent_std")

    train(make_cfg(*[a for a in args if not a.startswith("total_env_steps")], "total_env_steps=1200",
                   run_dir=str(run)))  # auto-resume: the same config once completed with the default
    assert checkpoint.load(str(latest))["iteration"] == 3

    _drop_saved_key(latest, "model", "state_dependent_std")
    result = cli("train.py", f"resume={run}", "total_env_steps=1600", "progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert checkpoint.load(str(latest))["iteration"] == 4

    _drop_saved_key(latest, "model", "state_dependent_std")
    result = cli("train.py", f"resume={run}", "total_env_steps=2000", "model.state_dependent_std=true", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "config error: resume cannot change model.state_dependent_std: False -> True; "
        "start a new run for a different config")
    with pytest.raises(ConfigError, match="holds a checkpoint of another config"):
        train(make_cfg(*args, "total_env_steps=2000", "model.state_dependent_std=true", run_dir=str(run)))


def test_checkpoint_paths_stay_as_the_user_named_them(tmp_path, monkeypatch):
    from meta_rl.experiment import resolve_checkpoint

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "latest.pt").write_bytes(b"")
    (tmp_path / "run" / "model.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    latest = os.path.join("run", "checkpoints", "latest.pt")
    assert resolve_checkpoint("run/", "latest") == (latest, "run")
    assert resolve_checkpoint("run/checkpoints/latest.pt", "best") == (latest, "run")
    assert resolve_checkpoint("run/model.pt", "latest") == (os.path.join("run", "model.pt"), "run")
    monkeypatch.chdir(tmp_path / "run")
    assert resolve_checkpoint("checkpoints/latest.pt", "latest") == (os.path.join("checkpoints", "latest.pt"), ".")
    assert resolve_checkpoint("model.pt", "latest") == ("model.pt", ".")
