"""Evaluation videos: meta-test trials rendered off-screen with MuJoCo, saved as GIFs.

With ``eval.video=true``, for the first goal of each of the first ``eval.video_tasks`` classes of
the evaluated split, one trial of the meta-test protocol is played by the same
:class:`~meta_rl.rollout.TrialCollector` as the evaluation (``adaptation_episodes`` with sampled
actions, then ``evaluation_episodes`` with the mean action, the hidden state carried across
them). Its last episode, the final evaluation episode, is rendered every ``frame_stride`` steps
from ``camera``; with ``first_episode`` the trial's first episode (before any adaptation) plays
beside it. Each frame is captioned with its episode, step and, once reached, "success".
Written to ``<eval dir>/video_<class>.gif`` (GIF: no ffmpeg needed; W&B shows it as a video).

Rendering runs in a child process (``python -m meta_rl.video``) whose ``MUJOCO_GL`` is the GL
backend: MuJoCo picks its backend when it is imported, and a missing GL library fails there,
never in the training process, which prints one warning line and goes on. The child receives
the policy weights and the trials to play pickled on its stdin and writes its output to
``<eval dir>/video.log``, which is kept when it fails.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from meta_rl.envs.metaworld import MetaWorldTrialEnv
from meta_rl.experiment import build_model
from meta_rl.models.gru import TRAINING_HEADS
from meta_rl.rollout import TrialCollector

# Exit code of the child when no GL context can be created, and the start of its line saying why.
EXIT_NO_GL = 3
NO_GL = "no GL context: "
# The child is stopped (and the videos skipped) after this long.
TIMEOUT_S = 1800
GL_NAMES = {"osmesa": "an OSMesa", "egl": "an EGL", "glfw": "a GLFW"}
GL_HINTS = {
    "osmesa": "install libosmesa6 (scripts/install_system_deps.sh)",
    "egl": "EGL needs a GPU driver; try eval.video_backend=osmesa",
    "glfw": "GLFW needs a display; try eval.video_backend=osmesa",
}
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class VideoJob:
    """What the child process needs to play and render the trials (pickled to its stdin).

    ``observation_space``/``action_space`` let the job stand in for the benchmark in
    :func:`meta_rl.experiment.build_model`.
    """

    model_config: dict
    state_dict: dict
    observation_space: Any
    action_space: Any
    reward_scale: float
    episode_length: int
    adaptation_episodes: int
    evaluation_episodes: int
    tasks: list
    paths: list
    seed: int
    size: int
    camera: str
    frame_stride: int
    fps: int
    first_episode: bool


class VideoRecorder:
    """Renders evaluation videos of ``tasks`` (Meta-World tasks of ``split``) in a child process.

    Args:
        benchmark: the :class:`~meta_rl.envs.metaworld.MetaWorldBenchmark` the tasks come from.
        model_config: the run's resolved ``model`` config (the child rebuilds the model from it).
        backend: MuJoCo's GL backend in the child (``MUJOCO_GL``).
        Other arguments: see :class:`VideoJob` and the module docstring.
    """

    def __init__(self, benchmark, model_config: dict, tasks: list, split: str, adaptation_episodes: int,
                 evaluation_episodes: int, backend: str, size: int = 160, camera: str = "corner4",
                 frame_stride: int = 5, fps: int = 20, first_episode: bool = True) -> None:
        self.benchmark, self.model_config, self.tasks, self.split = benchmark, model_config, tasks, split
        self.A, self.V = adaptation_episodes, evaluation_episodes
        self.backend, self.size, self.camera = backend, size, camera
        self.frame_stride, self.fps, self.first_episode = frame_stride, fps, first_episode
        self.interrupt: Callable[[], None] | None = None  # checked while the child runs (raises to stop)

    def record(self, model, seed: int, out_dir: str) -> dict[str, str]:
        """Render one trial per task with ``model``'s current weights into ``out_dir``.

        Returns task class → GIF path; empty after one warning line on stderr when rendering failed.
        """
        os.makedirs(out_dir, exist_ok=True)
        classes = [self.benchmark.task_class(t) for t in self.tasks]
        paths = [os.path.join(out_dir, f"video_{c}.gif") for c in classes]
        job = VideoJob(
            model_config=self.model_config,
            # the acting network: the training-only heads (algo.aux_task_coef, aux_reward_coef) stay behind
            state_dict={k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(TRAINING_HEADS)},
            observation_space=self.benchmark.observation_space, action_space=self.benchmark.action_space,
            reward_scale=self.benchmark.reward_scale, episode_length=self.benchmark.episode_length,
            adaptation_episodes=self.A, evaluation_episodes=self.V, tasks=list(self.tasks), paths=paths,
            seed=int(seed), size=self.size, camera=self.camera, frame_stride=self.frame_stride, fps=self.fps,
            first_episode=self.first_episode,
        )
        log = os.path.join(out_dir, "video.log")
        problem = self._run_child(job, log)
        if problem is not None:
            tqdm.write(f"warning: eval video skipped: {problem}", file=sys.stderr)
            return {}
        os.remove(log)
        return dict(zip(classes, paths))

    def _run_child(self, job: VideoJob, log: str) -> str | None:
        """Run the child on ``job``; None when it succeeded, else what went wrong (one line)."""
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "meta_rl.video"], stdin=subprocess.PIPE, stdout=out,
                                    stderr=subprocess.STDOUT, env=child_environment(self.backend))
        try:
            try:
                proc.stdin.write(pickle.dumps(job))
                proc.stdin.close()
            except BrokenPipeError:  # the child died before reading: its log says why
                pass
            rc = self._wait(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if rc is None:
            return f"the renderer did not finish within {TIMEOUT_S} s (log: {log})"
        if rc == EXIT_NO_GL:
            hint = GL_HINTS.get(self.backend, f"set eval.video_backend to one of {', '.join(GL_HINTS)}")
            return (f"MuJoCo could not create {GL_NAMES.get(self.backend, repr(self.backend))} GL context "
                    f"({last_line(log, NO_GL)}); {hint} or set eval.video=false")
        if rc != 0:
            return f"the renderer failed ({last_line(log)}); log: {log}"
        return None

    def _wait(self, proc: subprocess.Popen) -> int | None:
        """The child's exit code, or None after ``TIMEOUT_S``; checks ``interrupt`` meanwhile and
        once more at the end (a Ctrl-C reaches the child too: the run stops, without a warning)."""
        deadline = time.monotonic() + TIMEOUT_S
        rc = None
        while rc is None and time.monotonic() < deadline:
            try:
                rc = proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            if self.interrupt is not None:
                self.interrupt()
        return rc


def child_environment(backend: str) -> dict[str, str]:
    """The child's environment: ``MUJOCO_GL`` (and PyOpenGL's platform) set to ``backend``,
    and this repository importable whatever the working directory."""
    env = dict(os.environ, MUJOCO_GL=backend)
    env["PYTHONPATH"] = os.pathsep.join([_REPO] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if backend in ("osmesa", "egl"):
        env["PYOPENGL_PLATFORM"] = backend
    else:
        env.pop("PYOPENGL_PLATFORM", None)
    return env


def last_line(path: str, prefix: str = "") -> str:
    """The last non-empty line of a text file (a child's error message) that starts with ``prefix``,
    without it."""
    with open(path, errors="replace") as f:
        lines = [ln.strip()[len(prefix):] for ln in f if ln.strip() and ln.startswith(prefix)]
    return lines[-1] if lines else "no message"


# ------------------------------------------------------------------ child process


def main() -> int:
    """Child process: read a :class:`VideoJob` from stdin, write one GIF per task."""
    payload = sys.stdin.buffer.read()
    try:
        check_gl()
    except Exception as e:  # anything that stops a GL context: missing library, no display, bad MUJOCO_GL
        print(NO_GL + (str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__), flush=True)
        return EXIT_NO_GL
    job: VideoJob = pickle.loads(payload)  # after the check: unpickling the tasks imports Meta-World and MuJoCo
    torch.set_num_threads(1)
    model = build_model(OmegaConf.create({"model": job.model_config, "device": "cpu"}), job)
    model.load_state_dict(job.state_dict)
    model.eval()
    for task, path in zip(job.tasks, job.paths):
        write_gif(path, record_trial(job, model, task), job.fps)
        print(f"wrote {path}")
    return 0


def check_gl() -> None:
    """Import MuJoCo with this process's ``MUJOCO_GL`` and render an empty scene (raises if impossible)."""
    import mujoco

    renderer = mujoco.Renderer(mujoco.MjModel.from_xml_string("<mujoco/>"), 16, 16)
    try:
        renderer.render()
    finally:
        renderer.close()


def record_trial(job: VideoJob, model, task) -> list[np.ndarray]:
    """Play one trial of ``task`` with the protocol of the evaluation; the frames of the video."""
    E = job.adaptation_episodes + job.evaluation_episodes
    shown = [0, E - 1] if job.first_episode and E > 1 else [E - 1]
    titles = {e: f"ep {e + 1} {'eval' if e >= job.adaptation_episodes else 'adapt'}" for e in shown}
    env = RecordingTrialEnv(task.env_name, titles, job.size, job.camera, job.frame_stride)
    try:
        collector = TrialCollector(env, model, int(np.prod(job.observation_space.shape)), job.action_space,
                                   job.episode_length, E, job.reward_scale,
                                   generator=torch.Generator().manual_seed(job.seed))
        collector.collect([task], explore_episodes=job.adaptation_episodes)
    finally:
        env.close()
    return [np.concatenate(panels, axis=1) for panels in zip(*(env.frames[e] for e in shown))]


def write_gif(path: str, frames: list[np.ndarray], fps: int) -> None:
    """An endlessly looping GIF of ``frames`` (``[H, W, 3]`` uint8) at ``fps`` frames per second."""
    import imageio.v3 as iio

    iio.imwrite(path, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)


class RecordingTrialEnv(MetaWorldTrialEnv):
    """A one-env :class:`~meta_rl.envs.metaworld.MetaWorldTrialEnv` of class ``class_name`` that
    renders the episodes in ``titles`` (episode index → caption) at every ``stride``-th state:
    after the reset and after steps stride, 2·stride, ... of the episode."""

    def __init__(self, class_name: str, titles: dict[int, str], size: int, camera: str, stride: int) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        super().__init__(1, {class_name: ALL_V3_ENVIRONMENTS[class_name]})
        self.titles, self.size, self.camera, self.stride = titles, size, camera, stride
        self.frames: dict[int, list[np.ndarray]] = {e: [] for e in titles}
        self.episode, self.t, self.success = -1, 0, False
        self.renderer = None

    def set_tasks(self, tasks) -> None:
        super().set_tasks(tasks)
        if self.renderer is None:
            self.renderer = make_renderer(self._envs[0].model, self.size)

    def reset(self) -> np.ndarray:
        obs = super().reset()
        self.episode, self.t, self.success = self.episode + 1, 0, False
        self._capture()
        return obs

    def step(self, actions: np.ndarray):
        obs, reward, success = super().step(actions)
        self.t += 1
        self.success |= bool(success[0])
        if self.t % self.stride == 0:
            self._capture()
        return obs, reward, success

    def _capture(self) -> None:
        if self.episode in self.frames:
            frame = render(self.renderer, self._envs[0].data, self.camera)
            text = f"{self.titles[self.episode]}  t={self.t}" + ("  success" if self.success else "")
            self.frames[self.episode].append(caption(frame, text))

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        super().close()


def make_renderer(model, size: int):
    """A ``size``×``size`` off-screen renderer for ``model``, without multisampling, shadows and
    reflections (about 10x faster with a software GL such as OSMesa; the scene is the same)."""
    import mujoco

    model.vis.quality.offsamples = 0
    renderer = mujoco.Renderer(model, size, size)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    return renderer


def render(renderer, data, camera: str) -> np.ndarray:
    """One RGB frame of ``camera``, upright: Meta-World's corner cameras have their up axis
    pointing down, so their image is turned by 180° (the same as rolling the camera)."""
    renderer.update_scene(data, camera=camera)
    frame = renderer.render()
    if data.camera(camera).xmat[7] < 0:  # z component of the camera's up (y) axis
        frame = frame[::-1, ::-1]
    return np.ascontiguousarray(frame)


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` in white on black at its top left (font size: 1/14 of the height)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, frame.shape[0] // 14))
    draw.rectangle(draw.textbbox((2, 1), text, font=font), fill=(0, 0, 0))
    draw.text((2, 1), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


if __name__ == "__main__":
    sys.exit(main())
