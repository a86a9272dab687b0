"""Logger backends: wandb (offline, read back from its run file), TensorBoard, MultiLogger,
their configs (conf/logger/*.yaml) and a Hydra multirun that groups its W&B runs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate

from meta_rl.config import ConfigError, validate
from meta_rl.loggers import extras
from meta_rl.loggers.csv import CSVLogger
from meta_rl.loggers.multi import MultiLogger
from meta_rl.loggers.schemas import register
from meta_rl.loggers.tensorboard import TensorBoardLogger
from meta_rl.loggers.wandb import (RUN_ID_FILE, STEP_METRIC, WandbLogger, api_key_configured, read_run_id,
                                   resolve_mode, run_name, sweep_group)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wandb_reader import find_runs, read_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"name": "rl2", "seed": 3, "env": {"name": "ml10", "benchmark": "ML10", "task": None},
          "algo": {"lr": 0.0005, "clip": 0.2}, "run_dir": "somewhere"}


@pytest.fixture(autouse=True)
def wandb_offline(monkeypatch, tmp_path):
    """No credentials and offline mode: nothing here may reach (or wait for) a W&B server."""
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_DISABLED", "WANDB_DIR",
                "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_RUN_ID", "WANDB_RESUME",
                "WANDB_TAGS", "WANDB_NAME", "WANDB_NOTES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    register(ConfigStore.instance())  # what meta_rl.config.register_configs does


def only_run(run_dir):
    runs = find_runs(str(run_dir))
    assert len(runs) == 1, runs
    return read_run(runs[0])


# ------------------------------------------------------------------- wandb


def test_wandb_offline_run_holds_config_metrics_and_group(tmp_path):
    lg = WandbLogger(project="meta-rl-test", group="sweep-a", tags=["smoke"], notes="hello")
    lg.start(str(tmp_path), CONFIG)
    lg.log({"train/success": 0.25, "losses/policy_loss": -0.5, "charts/env_steps": 200}, 200)
    lg.log({"train/success": 0.75, "train/success/reach-v3": 1.0}, 400)  # no charts/env_steps: added
    lg.close()

    run = only_run(tmp_path)
    assert run.config == CONFIG
    assert (run.project, run.group, run.job_type, run.name) == ("meta-rl-test", "sweep-a", "train", "rl2-ml10-seed3")
    assert run.tags == ["smoke"] and run.notes == "hello"
    assert run.series("train/success") == [(200, 0.25), (400, 0.75)]
    assert run.series("losses/policy_loss") == [(200, -0.5)]
    assert run.series("train/success/reach-v3") == [(400, 1.0)]
    # env steps are the x-axis of every chart
    assert {"name": STEP_METRIC, "glob_name": "", "step_metric": ""} in run.metrics
    assert {"name": "", "glob_name": "*", "step_metric": STEP_METRIC} in run.metrics
    assert run.exit_code == 0
    assert read_run_id(str(tmp_path)) == run.run_id
    assert (tmp_path / RUN_ID_FILE).read_text().strip() == run.run_id
    assert os.path.basename(os.path.dirname(run.path)).startswith("offline-run-")


def test_wandb_close_is_idempotent_and_safe_before_start(tmp_path):
    lg = WandbLogger()
    lg.close()  # never started
    lg.start(str(tmp_path), CONFIG)
    lg.close()
    lg.close()
    with pytest.raises(RuntimeError, match="start"):
        lg.log({"x": 1.0}, 1)
    assert only_run(tmp_path).exit_code == 0


def test_wandb_failed_job_still_finishes_its_run(tmp_path):
    lg = WandbLogger()
    with pytest.raises(ValueError, match="boom"):
        try:
            lg.start(str(tmp_path / "a"), CONFIG)
            lg.log({"train/success": 0.5}, 100)
            raise ValueError("boom")
        finally:
            lg.close()  # as experiment.train does: the propagating error gives the exit code
    run = only_run(tmp_path / "a")
    assert run.finished and run.exit_code == 1
    assert run.series("train/success") == [(100, 0.5)]

    lg = WandbLogger()
    lg.start(str(tmp_path / "b"), CONFIG)
    lg.close(exit_code=143)  # e.g. an interrupted run
    assert only_run(tmp_path / "b").exit_code == 143


def test_wandb_failed_training_closes_run(make_cfg, tmp_path, monkeypatch):
    from meta_rl import trainer
    from meta_rl.experiment import train

    def explode(self):
        self.logger.log({"train/success": 0.5}, 123)
        raise RuntimeError("diverged")

    monkeypatch.setattr(trainer.Trainer, "train", explode)
    cfg = make_cfg("debug=smoke", "env.meta_batch_size=10", "logger=wandb",
                   run_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="diverged"):
        train(cfg)
    run = only_run(tmp_path)
    assert run.exit_code != 0
    assert run.series("train/success") == [(123, 0.5)]
    assert run.config["seed"] == 0 and run.config["logger"]["_target_"].endswith("WandbLogger")


def test_wandb_tables_images_artifacts_checkpoints(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = tmp_path / "plot.png"
    plt.figure(figsize=(2, 2))
    plt.plot([0, 1], [0, 1])
    plt.savefig(png)
    plt.close("all")
    ckpt = tmp_path / "checkpoints" / "latest.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")

    lg = WandbLogger(log_checkpoints=True)
    lg.start(str(tmp_path), CONFIG)
    lg.log_table("eval/test/per_task", ["task", "success"], [["reach-v3", 0.5], ["push-v3", 1.0]], 400)
    lg.log_image("eval/plot", str(png), 400)
    lg.log_artifact(str(png), "success plot", "evaluation")
    lg.log_checkpoint(str(ckpt), 400)
    lg.close()

    run = only_run(tmp_path)
    table = [r for r in run.history if "eval/test/per_task/_type" in r]
    assert table and table[0]["eval/test/per_task/_type"] == "table-file" and table[0][STEP_METRIC] == 400
    assert table[0]["eval/test/per_task/nrows"] == 2
    image = [r for r in run.history if "eval/plot/_type" in r]
    assert image and image[0]["eval/plot/_type"] == "image-file" and image[0][STEP_METRIC] == 400
    arts = {a["name"]: a for a in run.artifacts}
    assert arts["success-plot"]["type"] == "evaluation" and arts["success-plot"]["files"] == ["plot.png"]
    model = arts[f"checkpoint-{run.run_id}"]  # logged once: close() sees it is already uploaded
    assert model["type"] == "model" and model["files"] == ["latest.pt"] and "step-400" in model["aliases"]
    assert sum(a["type"] == "model" for a in run.artifacts) == 1


def test_wandb_continued_run_reuses_run_id(tmp_path):
    lg = WandbLogger()
    lg.start(str(tmp_path), CONFIG)
    lg.log({"train/success": 0.1}, 100)
    lg.close()
    first = read_run_id(str(tmp_path))

    lg = WandbLogger()
    lg.start(str(tmp_path), {**CONFIG, "total_env_steps": 800}, resume_step=100)
    lg.log({"train/success": 0.2}, 200)
    lg.close()
    runs = [read_run(p) for p in find_runs(str(tmp_path))]
    assert len(runs) == 2 and {r.run_id for r in runs} == {first}
    second = [r for r in runs if r.series("train/success") == [(200, 0.2)]][0]
    assert second.config["total_env_steps"] == 800

    lg = WandbLogger(run_id="fixedid1")  # an explicit id wins
    lg.start(str(tmp_path / "other"), CONFIG)
    lg.close()
    assert only_run(tmp_path / "other").run_id == "fixedid1"


def test_wandb_mode_never_waits_for_a_login(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not api_key_configured()
    assert resolve_mode(None) == "offline"
    assert resolve_mode("disabled") == "disabled"
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert api_key_configured() and resolve_mode(None) == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert resolve_mode(None) == "offline"  # the netrc entry is for another host
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolve_mode(None) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode(None) == "offline"  # the environment beats the key
    assert resolve_mode("online") == "online"  # the config beats the environment

    # No key, no WANDB_MODE: a run starts offline at once.
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    lg = WandbLogger()
    lg.start(str(tmp_path / "run"), CONFIG)
    lg.log({"train/success": 1.0}, 10)
    lg.close()
    assert only_run(tmp_path / "run").series("train/success") == [(10, 1.0)]


def test_run_names_and_sweep_groups():
    assert run_name(CONFIG) == "rl2-ml10-seed3"
    ml1 = {"name": "rl2", "seed": 0, "env": {"name": "ml1", "task": "reach-v3"}}
    assert run_name(ml1) == "rl2-ml1-reach-v3-seed0"
    job = {"multirun": True, "sweep_dir": "multirun/rl2/ml10/2026-01-01_00-00-00", "num": 4}
    assert run_name(CONFIG, job) == "rl2-ml10-seed3-4"
    assert sweep_group(job) == "multirun/rl2/ml10/2026-01-01_00-00-00"
    assert sweep_group({**job, "multirun": False}) is None
    assert sweep_group({"multirun": True, "sweep_dir": "/" + "d" * 300, "num": 0}) == "d" * 128
    assert sweep_group() is None  # not inside a Hydra job


# -------------------------------------------------------------- tensorboard


def scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc, {tag: [(e.step, pytest.approx(e.value)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_scalars_read_back(tmp_path):
    lg = TensorBoardLogger()
    lg.start(str(tmp_path), CONFIG)
    lg.log({"train/success": 0.25, "charts/SPS": np.float32(100.0), "note": "text is skipped"}, 200)
    lg.log({"train/success": 0.5, "losses/value_loss": 2}, 400)
    lg.log_table("eval/test/per_task", ["task", "success"], [["reach-v3", 0.5]], 400)
    lg.close()
    lg.close()
    acc, s = scalars(tmp_path / "tensorboard")
    assert s["train/success"] == [(200, 0.25), (400, 0.5)]
    assert s["charts/SPS"] == [(200, 100.0)] and s["losses/value_loss"] == [(400, 2.0)]
    assert "note" not in s
    assert {"config/text_summary", "eval/test/per_task/text_summary"} <= set(acc.Tags()["tensors"])


def test_tensorboard_continued_run_replaces_steps_after_the_checkpoint(tmp_path):
    lg = TensorBoardLogger()
    lg.start(str(tmp_path), CONFIG)
    for step, v in ((100, 0.1), (200, 0.2), (300, 0.3)):
        lg.log({"train/success": v}, step)
    lg.close()
    lg = TensorBoardLogger()
    lg.start(str(tmp_path), CONFIG, resume_step=200)  # the checkpoint was at 200; 300 is redone
    lg.log({"train/success": 0.9}, 300)
    lg.close()
    _, s = scalars(tmp_path / "tensorboard")
    assert s["train/success"] == [(100, 0.1), (200, 0.2), (300, 0.9)]


# -------------------------------------------------------------------- multi


def test_multi_logger_forwards_to_every_backend(tmp_path):
    lg = MultiLogger({"csv": CSVLogger(), "tensorboard": TensorBoardLogger(), "wandb": WandbLogger(), "off": None})
    assert len(lg.loggers) == 3
    lg.start(str(tmp_path), CONFIG)
    lg.log({"train/success": 0.5}, 100)
    lg.log_table("t", ["a"], [[1]], 100)  # CSVLogger has no log_table: skipped
    lg.close()
    lg.close()
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [{"step": "100", "train/success": "0.5"}]
    assert scalars(tmp_path / "tensorboard")[1]["train/success"] == [(100, 0.5)]
    assert only_run(tmp_path).series("train/success") == [(100, 0.5)]


def test_multi_logger_closes_all_even_if_one_fails(tmp_path):
    class Broken:
        def start(self, run_dir, config, resume_step=None):
            pass

        def log(self, metrics, step):
            pass

        def close(self):
            raise OSError("disk full")

    wb = WandbLogger()
    lg = MultiLogger([Broken(), wb])
    lg.start(str(tmp_path), CONFIG)
    with pytest.raises(OSError, match="disk full"):
        lg.close(exit_code=4)
    assert wb.run is None and only_run(tmp_path).exit_code == 4


def test_extras_are_no_ops_elsewhere():
    class Plain:
        def close(self):
            self.closed = True

    p = Plain()
    extras.call(p, "log_image", "x", "y.png", 1)  # no such method: nothing happens
    with pytest.raises(ValueError):
        extras.call(p, "log_everything")
    extras.close(p, exit_code=3)
    assert p.closed
    base = extras.LoggerExtras()
    base.log_table("t", ["a"], [[1]], 0)
    base.log_image("i", "p.png", 0)
    base.log_video("v", "p.mp4", 0)
    base.log_artifact("p", "n", "model")
    base.log_checkpoint("p.pt", 0)
    assert extras.exit_code_from_exception() == 0


# ------------------------------------------------------------------ configs


def test_logger_configs_compose_and_instantiate(make_cfg, tmp_path):
    cfg = make_cfg("logger=wandb", "logger.tags=[a,b]", "logger.mode=offline")
    validate(cfg)
    lg = instantiate(cfg.logger)
    assert isinstance(lg, WandbLogger) and lg.tags == ["a", "b"] and lg.mode == "offline" and lg.job_type == "train"

    lg = instantiate(make_cfg("logger=tensorboard").logger)
    assert isinstance(lg, TensorBoardLogger) and lg.subdir == "tensorboard"

    cfg = make_cfg("logger=many", "logger.loggers.wandb.project=p2")
    validate(cfg)
    lg = instantiate(cfg.logger)
    assert [type(x) for x in lg.loggers] == [CSVLogger, TensorBoardLogger, WandbLogger]
    assert lg.loggers[2].project == "p2"
    lg = instantiate(make_cfg("logger=many", "~logger.loggers.tensorboard").logger)
    assert [type(x) for x in lg.loggers] == [CSVLogger, WandbLogger]


def test_logger_configs_are_typed_and_checked(make_cfg):
    with pytest.raises(Exception, match="logger.flush_secs=soon"):
        make_cfg("logger=tensorboard", "logger.flush_secs=soon")
    with pytest.raises(Exception, match="logger.loggers.wandb.log_checkpoints=maybe"):
        make_cfg("logger=many", "logger.loggers.wandb.log_checkpoints=maybe")
    with pytest.raises(ConfigError, match="logger.mode=cloud"):
        validate(make_cfg("logger=wandb", "logger.mode=cloud"))
    with pytest.raises(ConfigError, match="logger.mode=cloud"):
        validate(make_cfg("logger=many", "logger.loggers.wandb.mode=cloud"))


# --------------------------------------------------- through the command line


def test_multirun_jobs_share_a_wandb_group(tmp_path):
    """`python train.py -m ... logger=wandb`: one offline run per job, grouped by the sweep."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    env.update(PYTHONUNBUFFERED="1", NETRC=str(tmp_path / "no-netrc"))  # no API key anywhere
    sweep = tmp_path / "sweep"
    p = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", "seed=0,1", "debug=smoke", "env.meta_batch_size=10",
         "logger=wandb", "progress=false", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    runs = [read_run(d) for d in find_runs(str(sweep))]
    assert len(runs) == 2
    assert {r.group for r in runs} == {os.path.normpath(str(sweep))}
    assert sorted(r.config["seed"] for r in runs) == [0, 1]
    assert sorted(r.name for r in runs) == ["smoke-ml10-seed0-0", "smoke-ml10-seed1-1"]
    for r in runs:
        assert r.exit_code == 0 and r.job_type == "train"
        assert r.series("train/success") and r.series("train/success")[-1][0] == 400
        assert os.path.dirname(os.path.dirname(os.path.dirname(r.path))).endswith(f"{r.config['seed']}_seed={r.config['seed']}")
