"""Shared fixtures: composing the real configs, and a scripted trial environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meta_rl.config import register_configs  # noqa: E402

CONF = str(ROOT / "conf")


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg(*overrides)`` composes conf/train.yaml with run_dir in a tmp dir."""
    register_configs()

    def _make(*overrides: str, run_dir: str | None = None):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return compose("train", overrides=[f"run_dir={run_dir or tmp_path}", "progress=false", *overrides])

    yield _make
    GlobalHydra.instance().clear()


class ScriptedEnv:
    """Trial env whose obs is (step in episode, env index); reward = 0.1·(step+1) + env index.

    Success is reported at step ``success_step`` of every episode of env 0 only.
    """

    def __init__(self, num_envs: int, obs_dim: int = 3, success_step: int = 2):
        self.num_envs, self.obs_dim, self.success_step = num_envs, obs_dim, success_step
        self.k = 0
        self.tasks = None
        self.actions: list[np.ndarray] = []

    def set_tasks(self, tasks):
        self.tasks = list(tasks)

    def _obs(self):
        o = np.zeros((self.num_envs, self.obs_dim), np.float32)
        o[:, 0] = self.k
        o[:, 1] = np.arange(self.num_envs)
        return o

    def reset(self):
        self.k = 0
        return self._obs()

    def step(self, actions):
        self.actions.append(np.array(actions))
        reward = (0.1 * (self.k + 1) + np.arange(self.num_envs)).astype(np.float32)
        success = np.zeros(self.num_envs, bool)
        success[0] = self.k == self.success_step
        self.k += 1
        return self._obs(), reward, success

    def close(self):
        pass


class ScriptedBenchmark:
    """A Benchmark around :class:`ScriptedEnv` (tasks are ints; class = 'even'/'odd')."""

    name = "scripted"

    def __init__(self, episode_length=4, episodes_per_trial=3, meta_batch_size=2, reward_scale=0.5, obs_dim=3):
        self.episode_length, self.episodes_per_trial = episode_length, episodes_per_trial
        self.meta_batch_size, self.reward_scale = meta_batch_size, reward_scale
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def class_names(self, split):
        return ["even", "odd"]

    def sample_tasks(self, split, n, rng):
        return [int(i) for i in rng.integers(0, 100, n)]

    def all_tasks(self, split):
        return list(range(4))

    def task_class(self, task):
        return "even" if task % 2 == 0 else "odd"

    def make_env(self, num_envs):
        return ScriptedEnv(num_envs, self.observation_space.shape[0])


@pytest.fixture
def scripted():
    return ScriptedBenchmark()
