"""Meta-test protocol: exact counting, Meta-World adapter, evaluate.py end to end, no effect on training."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from meta_rl.evaluation import MetaEvaluator, evaluation_tasks, summarize
from meta_rl.experiment import train
from meta_rl.models import GRUActorCritic
from meta_rl.rl2 import input_dim
from tests.conftest import ScriptedBenchmark

ROOT = Path(__file__).resolve().parents[1]


class AdaptingEnv:
    """Task = (class, k): success at the first step of every episode with index >= k
    (0-based, counted from set_tasks); reward = episode index + 1 at every step."""

    def __init__(self, num_envs):
        self.num_envs = num_envs

    def set_tasks(self, tasks):
        self.k = np.array([t[1] for t in tasks])
        self.episode = -1

    def reset(self):
        self.episode += 1
        self.t = 0
        return np.zeros((self.num_envs, 3), np.float32)

    def step(self, actions):
        success = (self.episode >= self.k) & (self.t == 0)
        self.t += 1
        return np.zeros((self.num_envs, 3), np.float32), np.full(self.num_envs, self.episode + 1.0, np.float32), success

    def close(self):
        pass


class AdaptingBenchmark(ScriptedBenchmark):
    TASKS = [("a", 1), ("a", 3), ("b", 0), ("b", 10)]

    def all_tasks(self, split):
        return list(self.TASKS)

    def task_class(self, task):
        return task[0]

    def make_env(self, num_envs):
        return AdaptingEnv(num_envs)


def _model(bench, hidden=8):
    torch.manual_seed(0)
    return GRUActorCritic(input_dim(bench.observation_space, bench.action_space), bench.action_space, hidden=hidden)


def test_counting_is_exact_on_scripted_case():
    bench = AdaptingBenchmark(episode_length=3)
    # 3 envs for 4 tasks: the second batch is padded with two copies that must not count
    ev = MetaEvaluator(bench, _model(bench), adaptation_episodes=2, evaluation_episodes=2, num_envs=3)
    r = ev.evaluate(evaluation_tasks(bench, "test", None), seed=0)
    # successes per episode: a1 [0,1,1,1], a3 [0,0,0,1], b0 [1,1,1,1], b10 [0,0,0,0]
    assert r["per_class"]["a"]["success"] == 0.75 and r["per_class"]["b"]["success"] == 0.5
    assert r["overall"]["success"] == 0.625
    assert r["per_class"]["a"]["curve_success"] == [0.0, 0.5, 0.5, 1.0]
    assert r["per_class"]["b"]["curve_success"] == [0.5, 0.5, 0.5, 0.5]
    assert r["overall"]["curve_success"] == [0.25, 0.5, 0.5, 0.75]
    H = 3
    assert r["overall"]["curve_return"] == [H * 1.0, H * 2.0, H * 3.0, H * 4.0]
    assert r["overall"]["return"] == 3.5 * H
    assert r["per_class"]["a"]["num_tasks"] == 2 and r["overall"]["num_tasks"] == 4
    assert r["num_env_steps"] == 4 * 4 * H


def test_evaluation_episodes_use_the_mean_action():
    bench = ScriptedBenchmark(episode_length=3, episodes_per_trial=1, meta_batch_size=2)
    model = _model(bench)
    ev = MetaEvaluator(bench, model, adaptation_episodes=1, evaluation_episodes=2, num_envs=2)
    ev.evaluate([0, 1], seed=0)
    batch = ev.collector.buf
    with torch.no_grad():
        out, _, _ = model(batch.inputs, model.initial_state(2))
    assert not torch.allclose(batch.actions[:3], out[:3])  # adaptation: sampled
    torch.testing.assert_close(batch.actions[3:], out[3:])  # evaluation: the mean


def test_summarize_ignores_nothing_and_averages_classes():
    succ = np.array([[0, 1], [1, 1], [0, 0]])
    ret = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    r = summarize(succ, ret, ["x", "x", "y"], adaptation_episodes=1)
    assert r["per_class"]["x"]["success"] == 1.0 and r["per_class"]["y"]["success"] == 0.0
    assert r["overall"]["success"] == 0.5  # mean over classes
    assert r["per_class"]["x"]["return"] == 3.0 and r["overall"]["return"] == 4.5


class FakeVecEnv:
    """Two envs of one Meta-World task name: env 0 succeeds (and, terminating on success,
    ends) at the first step of every episode; env 1 never succeeds and truncates after 5 steps."""

    num_envs = 2

    def __init__(self):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self.name = ALL_V3_ENVIRONMENTS["reach-v3"].__name__
        self.tos = False

    def get_attr(self, name):
        return {"terminate_on_success": [self.tos] * 2, "task_name": [self.name] * 2}[name]

    def call(self, name, *args):
        if name == "toggle_terminate_on_success":
            self.tos = args[0]

    def reset(self):
        self.t = np.zeros(2, int)
        return np.zeros((2, 39)), {}

    def step(self, actions):
        self.t += 1
        success = np.array([1.0, 0.0])
        term = np.array([self.tos, False])
        trunc = np.array([False, self.t[1] >= 5])
        done = term | trunc
        infos = {"final_info": {"episode": {"r": np.where(done, 1.0, 0.0)}, "success": np.where(done, success, 0.0)}}
        self.t[done] = 0
        return np.zeros((2, 39)), np.zeros(2), term, trunc, infos


def test_metaworld_evaluation_is_biased_where_ours_is_exact():
    """The same situation, counted by Meta-World's `evaluation` and by our protocol:
    one of two envs always succeeds, the other never. True success rate 0.5."""
    from metaworld.evaluation import evaluation

    class Agent:
        def eval_action(self, obs):
            return np.zeros((2, 4))

        def reset(self, mask):
            pass

    mw_success, *_ = evaluation(Agent(), FakeVecEnv(), num_episodes=3)
    assert mw_success == 1.0  # only the fast, successful env's episodes were counted

    class Bench(AdaptingBenchmark):
        TASKS = [("reach", 0), ("reach", 10)]

    bench = Bench(episode_length=5)
    r = MetaEvaluator(bench, _model(bench), adaptation_episodes=0, evaluation_episodes=3, num_envs=2).evaluate(
        evaluation_tasks(bench, "test", None), seed=0)
    assert r["overall"]["success"] == 0.5


def test_metaworld_adapter_runs_metalearning_evaluation():
    import metaworld  # noqa: F401  (registers the Meta-World vector envs)
    from metaworld.evaluation import metalearning_evaluation

    from meta_rl.metaworld_agent import MetaWorldRL2Agent

    envs = gym.make_vec("Meta-World/ML10-test", vector_strategy="sync", meta_batch_size=5, total_tasks_per_cls=40,
                        seed=0, max_episode_steps=10, recurrent_info_in_obs=True)
    model = GRUActorCritic(39 + 4 + 2, gym.spaces.Box(-1, 1, (4,)), hidden=16)
    agent = MetaWorldRL2Agent(model, num_envs=envs.num_envs)
    success, mean_return, per_task = metalearning_evaluation(
        agent, envs, num_evals=1, adaptation_episodes=2, evaluation_episodes=1)
    envs.close()
    assert 0.0 <= success <= 1.0 and np.isfinite(mean_return)
    assert sorted(per_task) == sorted(["drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3",
                                       "lever-pull-v3"])
    # reset() marks episode ends but keeps the hidden state (RL² adapts across episodes)
    h = agent.h.clone()
    agent.reset(np.ones(envs.num_envs, bool))
    assert torch.equal(agent.h, h) and agent._pending_done.all()
    agent.init()
    assert torch.equal(agent.h, torch.zeros_like(agent.h))


TINY = ["debug=smoke", "env.meta_batch_size=10", "env.episode_length=10", "algo.chunk_length=10",
        "total_env_steps=400", "model.hidden=16"]


def test_evaluate_cli_end_to_end_uses_saved_config(make_cfg, tmp_path):
    run = tmp_path / "run"
    train(make_cfg(*TINY, "eval.every=0", "eval.final=false", run_dir=str(run)))
    p = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), f"run={run}", "eval.num_goals=1", "eval.adaptation_episodes=2",
         "eval.evaluation_episodes=1", "eval.num_envs=5"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = run / "eval" / "test_latest"
    result = json.loads((out / "results.json").read_text())
    # the model was rebuilt with the run's hidden=16 (conf/ says 256) and its 10-step episodes
    assert result["num_env_steps"] == 5 * 3 * 10
    assert result["run"] == str(run) and result["checkpoint"] == os.path.join("checkpoints", "latest.pt")
    assert len(result["per_class"]) == 5 and len(result["overall"]["curve_success"]) == 3
    assert "drawer-open" in (out / "results.md").read_text()
    for png in ("adaptation_curve.png", "success_by_class.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "overall" in p.stdout and "success by episode" in p.stdout

    bad = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), f"run={run}", "checkpoint=missing"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: no checkpoint")


def test_evaluation_does_not_disturb_training(make_cfg, tmp_path):
    def rows(run_dir, *extra):
        train(make_cfg(*TINY, *extra, run_dir=str(run_dir)))
        with open(run_dir / "metrics.csv", newline="") as f:
            return [{k: v for k, v in r.items() if k.startswith(("train/", "losses/")) and v != ""}
                    for r in csv.DictReader(f)]

    with_eval = rows(tmp_path / "a", "eval.every=1")
    without = rows(tmp_path / "b", "eval.every=0", "eval.final=false")
    assert with_eval == without
    assert os.path.exists(tmp_path / "a" / "checkpoints" / "best.pt")
    assert os.path.exists(tmp_path / "a" / "eval" / "test_final" / "results.json")
    with open(tmp_path / "a" / "metrics.csv", newline="") as f:
        assert any(r.get("eval/test/success") for r in csv.DictReader(f))


def test_console_line_shows_return_per_trial_when_there_are_no_evaluation_episodes():
    from meta_rl.trainer import eval_summary

    nan = float("nan")
    line = eval_summary({"success": nan, "return": nan, "return_per_trial": 6.5,
                         "curve_success": [0.0] * 3, "curve_return": [0.5, 0.7, 0.9]})
    assert line == "return/trial 6.50 | return by episode: 0.50 0.70 0.90"
    long = eval_summary({"success": nan, "return": nan, "return_per_trial": 70.0,
                         "curve_success": [0.0] * 100, "curve_return": [0.5] * 99 + [0.8]})
    assert long == "return/trial 70.00 | return by episode: ep1 0.50 → ep100 0.80"
    line = eval_summary({"success": 0.25, "return": 1234.5, "return_per_trial": 9.0,
                         "curve_success": [0.0, 0.5], "curve_return": [1.0, 2.0]})
    assert line == "success 0.250 return 1234.5 | success by episode: 0.00 0.50"


def test_sampled_evaluation_episodes_when_not_deterministic(scripted):
    """deterministic=false keeps sampling in the evaluation episodes; true takes the mode there."""
    model = GRUActorCritic(input_dim(scripted.observation_space, scripted.action_space), scripted.action_space,
                           hidden=8, init_log_std=0.5)
    modes = {}
    for det in (True, False):
        ev = MetaEvaluator(scripted, model, adaptation_episodes=1, evaluation_episodes=1, num_envs=2,
                           deterministic=det)
        calls = []
        collect = ev.collector.collect
        ev.collector.collect = lambda tasks, explore_episodes=None: calls.append(explore_episodes) or collect(
            tasks, explore_episodes)
        ev.evaluate([0, 1], seed=0)
        modes[det] = calls[0]
        actions = ev.collector.buf.actions[scripted.episode_length:]  # the evaluation episode
        with torch.no_grad():
            out, _, _ = model(ev.collector.buf.inputs, model.initial_state(2))
        mean_actions = model.mode(out[scripted.episode_length:])
        assert torch.allclose(actions, mean_actions) == det
    assert modes == {True: 1, False: None}


def test_evaluate_can_override_deterministic_per_call(scripted):
    """``evaluate(..., deterministic=...)`` gives what an evaluator built with that setting gives."""
    model = GRUActorCritic(input_dim(scripted.observation_space, scripted.action_space), scripted.action_space,
                           hidden=8, init_log_std=0.5)
    results = {}
    for built, override in ((True, None), (False, None), (True, False), (False, True)):
        ev = MetaEvaluator(scripted, model, adaptation_episodes=1, evaluation_episodes=1, num_envs=2,
                           deterministic=built)
        ev.evaluate([0, 1], seed=0, deterministic=override)
        results[built, override] = ev.collector.buf.actions.clone()
    assert torch.equal(results[True, False], results[False, None])
    assert torch.equal(results[False, True], results[True, None])
    assert not torch.equal(results[True, None], results[False, None])
