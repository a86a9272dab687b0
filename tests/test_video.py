"""Evaluation videos (eval.video=true): real off-screen renders, GL failures that only warn, config checks."""

import ctypes.util
import json
import os
from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from meta_rl.config import ConfigError, validate
from meta_rl.experiment import build_benchmark, build_model, build_video_recorder, evaluate, train
from meta_rl.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
needs_osmesa = pytest.mark.skipif(ctypes.util.find_library("OSMesa") is None,
                                  reason="OSMesa is not installed (scripts/install_system_deps.sh)")
TINY = ["debug=smoke", "env.meta_batch_size=10", "env.episode_length=10", "algo.chunk_length=10",
        "total_env_steps=200", "model.hidden=16", "eval.num_envs=5", "env.num_workers=0"]
VIDEO = ["eval.video=true", "eval.video_size=48", "eval.video_frame_stride=5"]


@needs_osmesa
@pytest.mark.parametrize("extra", [[], ["algo.aux_task_coef=0.5"]])  # with it the model has a training-only head
def test_renders_a_real_ml10_test_task(make_cfg, tmp_path, extra):
    cfg = make_cfg("debug=smoke", "env.episode_length=6", "model.hidden=8", "eval.adaptation_episodes=1",
                   "eval.evaluation_episodes=2", "eval.video=true", "eval.video_size=48", "eval.video_frame_stride=3",
                   "eval.video_backend=osmesa", *extra)
    validate(cfg)
    bench = build_benchmark(cfg)
    recorder = build_video_recorder(cfg.eval, bench, cfg.model, "test")
    paths = recorder.record(build_model(cfg, bench), seed=0, out_dir=str(tmp_path))

    assert paths == {"drawer-open-v3": str(tmp_path / "video_drawer-open-v3.gif")}
    assert sorted(os.listdir(tmp_path)) == ["video_drawer-open-v3.gif"]  # video.log removed after success
    frames = iio.imread(paths["drawer-open-v3"], index=None)
    # states t = 0, 3, 6 of episodes 1 (adaptation) and 3 (the last evaluation episode), side by side
    assert frames.shape == (3, 48, 96, 3)
    scene = frames[:, 12:].astype(int)  # below the caption
    assert scene.std() > 20  # a scene, not a blank frame
    assert np.abs(scene[0] - scene[-1]).mean() > 0.5  # the arm moved
    assert len({f.tobytes() for f in frames}) == 3


def test_without_gl_training_warns_once_and_completes(make_cfg, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    train(make_cfg(*TINY, *VIDEO, "eval.video_backend=glfw", run_dir=str(tmp_path)))

    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "eval video" in ln]
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: eval video skipped: MuJoCo could not create a GLFW GL context (")
    assert warnings[0].endswith("; GLFW needs a display; try eval.video_backend=osmesa or set eval.video=false")
    out = tmp_path / "eval" / "test_final"
    assert (out / "results.json").exists() and (out / "video.log").exists()
    assert not list(out.glob("*.gif"))
    assert (tmp_path / "checkpoints" / "latest.pt").exists()


@needs_osmesa
def test_evaluate_writes_the_video_beside_its_results(make_cfg, tmp_path, capsys):
    run = tmp_path / "run"
    train(make_cfg(*TINY, "eval.every=0", "eval.final=false", run_dir=str(run)))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"run={run}", "eval.num_goals=1", "eval.adaptation_episodes=1",
                                             "eval.evaluation_episodes=1", "eval.num_envs=5", "eval.video_tasks=2",
                                             "plots=false", *VIDEO])
    evaluate(cfg)
    out = run / "eval" / "test_latest"
    assert json.loads((out / "results.json").read_text())["overall"]["num_tasks"] == 5
    for name in ("drawer-open-v3", "door-close-v3"):  # the first two test classes of ML10
        assert iio.imread(out / f"video_{name}.gif", index=None).shape == (3, 48, 96, 3)  # t = 0, 5, 10
    printed = capsys.readouterr()
    assert "video_drawer-open-v3.gif" in printed.out and "warning" not in printed.err


def test_final_evaluation_logs_the_videos(tmp_path):
    class Recorder:
        split = "test"

        def record(self, model, seed, out_dir):
            self.args = (seed, out_dir)
            return {"reach-v3": os.path.join(out_dir, "video_reach-v3.gif")}

    logged = []
    logger = SimpleNamespace(log_video=lambda *args: logged.append(args))
    trainer = SimpleNamespace(video=Recorder(), run_dir=str(tmp_path), model=None, logger=logger, env_steps=400,
                              eval_seed=lambda split: 7)
    Trainer.record_videos(trainer)
    out_dir = str(tmp_path / "eval" / "test_final")
    assert trainer.video.args == (7, out_dir)
    assert logged == [("eval/test/video/reach-v3", os.path.join(out_dir, "video_reach-v3.gif"), 400)]


@pytest.mark.parametrize("override, message", [
    ("eval.video_size=8", "eval.video_size=8 must lie in [16, 480]"),
    ("eval.video_size=640", "eval.video_size=640 must lie in [16, 480]"),
    ("eval.video_frame_stride=0", "eval.video_frame_stride=0 must be > 0"),
    ("eval.video_fps=0", "eval.video_fps=0 must be > 0"),
    ("eval.video_tasks=0", "eval.video_tasks=0 must be > 0"),
    ("eval.video_camera=front", "eval.video_camera=front is unknown; valid: corner, corner2"),
    ("eval.video_backend=vulkan", "eval.video_backend=vulkan is unknown; valid: osmesa, egl, glfw"),
])
def test_bad_video_values_are_refused(make_cfg, override, message):
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        validate(make_cfg("eval.video=true", override))


def test_video_needs_a_metaworld_env(make_cfg):
    cfg = make_cfg("env=bandit", "eval.video=true")
    with pytest.raises(ConfigError, match="eval.video=true renders Meta-World envs only"):
        build_video_recorder(cfg.eval, build_benchmark(cfg), cfg.model, "test")
