"""End to end: tiny training runs on real ML10, in-process and through the command line."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

from hydra.utils import instantiate
import pytest
import torch

from meta_rl import checkpoint
from meta_rl.experiment import train
from meta_rl.models import GRUActorCritic

ROOT = Path(__file__).resolve().parents[1]
# measured, not reproducible
TIMING = ("charts/SPS", "charts/collect_SPS", "charts/update_time", "charts/eval_SPS", "charts/rss_mb")


def read_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


TINY = ["debug=smoke", "env.meta_batch_size=10", "env.episode_length=10", "algo.chunk_length=10",
        "total_env_steps=400", "algo.epochs=2"]  # 2 iterations of 10 trials x 2 episodes x 10 steps


def test_tiny_run_writes_metrics_and_checkpoint(make_cfg, tmp_path):
    train(make_cfg(*TINY, run_dir=str(tmp_path)))
    rows = read_metrics(tmp_path)
    assert [int(r["step"]) for r in rows] == [200, 400]
    for key in ("train/success", "train/success/reach-v3", "train/success_by_episode/02", "losses/approx_kl",
                "losses/clip_frac", "losses/entropy", "charts/SPS", "charts/rss_mb", "train/return_per_trial"):
        assert rows[-1][key] != "", key
    state = checkpoint.load(str(tmp_path / "checkpoints" / "latest.pt"))
    assert state["iteration"] == 2 and state["env_steps"] == 400
    assert state["config"]["env"]["benchmark"] == "ML10" and state["config"]["seed"] == 0
    assert (tmp_path / "resolved_config.yaml").exists()


def test_same_seed_same_metrics(make_cfg, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    train(make_cfg(*TINY, run_dir=str(a)))
    train(make_cfg(*TINY, run_dir=str(b)))
    train(make_cfg(*TINY, "seed=1", run_dir=str(c)))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(read_metrics(a)) == strip(read_metrics(b))
    assert strip(read_metrics(a)) != strip(read_metrics(c))
    sa = checkpoint.load(str(a / "checkpoints" / "latest.pt"))
    sb = checkpoint.load(str(b / "checkpoints" / "latest.pt"))
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k])


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_overrides(tmp_path):
    p = run_cli("algo=ppo", "model.hidden=256", "debug=smoke", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    state = checkpoint.load(str(tmp_path / "run" / "checkpoints" / "latest.pt"))
    assert state["config"]["model"]["hidden"] == 256
    assert state["model"]["gru.weight_hh_l0"].shape == (3 * 256, 256)


def test_cli_multirun_seeds(tmp_path):
    p = run_cli("-m", "seed=0,1,2", "debug=smoke", "env.meta_batch_size=10", f"hydra.sweep.dir={tmp_path}/sweep",
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    dirs = sorted((tmp_path / "sweep").glob("*_seed=*"))
    assert [d.name for d in dirs] == ["0_seed=0", "1_seed=1", "2_seed=2"]
    seeds = [checkpoint.load(str(d / "checkpoints" / "latest.pt"))["config"]["seed"] for d in dirs]
    assert seeds == [0, 1, 2]
    metrics = [read_metrics(d)[0]["train/return_per_trial"] for d in dirs]
    assert len(set(metrics)) == 3  # independent jobs, different seeds


@pytest.mark.parametrize("env_args", [["env=ml1", "env.task=reach-v3"], ["env=ml45"]])
def test_cli_other_benchmarks(tmp_path, env_args):
    p = run_cli(*env_args, "debug=smoke", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 1
    if env_args[0] == "env=ml45":
        assert sum(k.startswith("train/success/") for k in rows[0]) == 45


def test_cli_bad_value_one_line_error(tmp_path):
    p = run_cli("debug=smoke", "env.meta_batch_size=15", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("config error: env.meta_batch_size=15 must be a multiple")


def test_schedules_follow_the_iteration_count(make_cfg, tmp_path):
    """lr and entropy_coef decay linearly over the run's iterations (a function of the iteration
    count, which a checkpoint restores), and are logged."""
    args = ["experiment=rl2_bandit_k2_n10", "total_env_steps=10000", "env.meta_batch_size=250", "eval.every=0",
            "eval.final=false", "algo.lr_final=0.0", "algo.entropy_coef_final=0.002"]
    train(make_cfg(*args, run_dir=str(tmp_path)))  # 4 iterations of 2,500 steps
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["losses/lr"]) for r in rows] == pytest.approx([1e-2 * (1 - i / 4) for i in range(4)])
    assert [float(r["losses/entropy_coef"]) for r in rows] == pytest.approx([0.01 - 0.008 * i / 4 for i in range(4)])


def test_init_weights_start_a_new_run_from_saved_weights(make_cfg, tmp_path, monkeypatch):
    import meta_rl.experiment as experiment

    bandit = ["experiment=rl2_bandit_k2_n10", "model.hidden=8", "total_env_steps=2500", "eval.every=0",
              "eval.final=false", "checkpoint_every=1"]  # one iteration of 250 trials
    train(make_cfg(*bandit, run_dir=str(tmp_path / "a")))
    trained = checkpoint.load(str(tmp_path / "a" / "checkpoints" / "latest.pt"))["model"]
    by_hand = {k: v + 0.5 for k, v in trained.items()}  # a state dict saved with torch.save
    torch.save(by_hand, tmp_path / "weights.pt")

    seen = []  # the weights each run's model has when the algorithm is built (after init_weights)
    build_algo = experiment.build_algo

    def recording_build_algo(cfg, model, bench):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return build_algo(cfg, model, bench)

    monkeypatch.setattr(experiment, "build_algo", recording_build_algo)
    for source, expected in ((tmp_path / "a" / "checkpoints" / "latest.pt", trained),
                             (tmp_path / "weights.pt", by_hand)):
        train(make_cfg(*bandit, f"init_weights={source}", run_dir=str(tmp_path / source.stem)))
        assert seen[-1].keys() == expected.keys()
        for k in expected:
            assert torch.equal(seen[-1][k], expected[k]), k
    train(make_cfg(*bandit, run_dir=str(tmp_path / "fresh")))
    assert not torch.equal(seen[-1]["gru.weight_ih_l0"], trained["gru.weight_ih_l0"])


def test_a_low_noise_phase_from_saved_weights(make_cfg, tmp_path):
    """init_weights + model.max_log_std: the new run acts and logs with the capped std, and the
    cap travels with the run's config to its checkpoint."""
    train(make_cfg(*TINY, run_dir=str(tmp_path / "a")))
    assert all(float(r["charts/policy_std"]) > 0.9 for r in read_metrics(tmp_path / "a"))
    source = tmp_path / "a" / "checkpoints" / "latest.pt"
    train(make_cfg(*TINY, f"init_weights={source}", "model.max_log_std=-1.2", run_dir=str(tmp_path / "b")))
    rows = read_metrics(tmp_path / "b")
    assert [float(r["charts/policy_std"]) for r in rows] == pytest.approx([math.exp(-1.2)] * len(rows))
    assert checkpoint.load(str(tmp_path / "b" / "checkpoints" / "latest.pt"))["config"]["model"]["max_log_std"] == -1.2


def test_init_weights_carry_the_value_normaliser_of_the_critic(make_cfg, tmp_path):
    """A critic trained on normalised returns predicts in its run's units: init_weights from a
    checkpoint continues those statistics (the new run's first update merges into them), a
    state dict of weights alone starts them fresh."""
    train(make_cfg(*TINY, run_dir=str(tmp_path / "a")))
    source = tmp_path / "a" / "checkpoints" / "latest.pt"
    before = checkpoint.load(str(source))["algo"]["value_norm"]
    torch.save(checkpoint.load(str(source))["model"], tmp_path / "weights.pt")
    for name, init in (("b", source), ("c", tmp_path / "weights.pt")):
        train(make_cfg(*TINY, f"init_weights={init}", run_dir=str(tmp_path / name)))
    after = {n: checkpoint.load(str(tmp_path / n / "checkpoints" / "latest.pt"))["algo"]["value_norm"] for n in "bc"}
    assert before["count"] > 1
    assert after["b"]["count"] == pytest.approx(2 * before["count"])  # same number of updates, on top
    assert after["c"]["count"] == pytest.approx(before["count"])


def test_aux_task_loss_trains_end_to_end_and_resumes(make_cfg, tmp_path):
    """algo.aux_task_coef builds the model's task head from the benchmark's task features (ML10:
    positions + class one-hot), logs the loss, and the checkpoint evaluates and resumes."""
    from meta_rl.envs.metaworld import RAND_VEC_DIM

    train(make_cfg(*TINY, "algo.aux_task_coef=1.0", run_dir=str(tmp_path)))
    rows = read_metrics(tmp_path)
    assert all(float(r["losses/aux_task_loss"]) > 0 for r in rows)
    state = checkpoint.load(str(tmp_path / "checkpoints" / "latest.pt"))
    assert state["model"]["task_head.weight"].shape == (RAND_VEC_DIM + 10, state["config"]["model"]["hidden"])
    train(make_cfg(*TINY, "algo.aux_task_coef=1.0", "total_env_steps=600", run_dir=str(tmp_path)))
    assert [int(r["step"]) for r in read_metrics(tmp_path)] == [200, 400, 600]


def test_task_reward_norm_counts_each_class_and_resumes_its_statistics(make_cfg, tmp_path):
    """algo.reward_norm=task: the trainer labels each trial with its class (ML10: 1 trial of 20 steps per
    class and iteration here) and the per-class statistics continue from the checkpoint."""
    train(make_cfg(*TINY, "algo.reward_norm=task", run_dir=str(tmp_path)))
    moments = checkpoint.load(str(tmp_path / "checkpoints" / "latest.pt"))["algo"]["task_reward_scale"]
    assert sorted(moments["ids"]) == list(range(10))
    assert [round(m[2]) for m in moments["moments"]] == [40] * 10  # 2 iterations x 20 steps
    train(make_cfg(*TINY, "algo.reward_norm=task", "total_env_steps=600", run_dir=str(tmp_path)))
    moments = checkpoint.load(str(tmp_path / "checkpoints" / "latest.pt"))["algo"]["task_reward_scale"]
    assert [round(m[2]) for m in moments["moments"]] == [60] * 10


@pytest.mark.parametrize("env_args", [["experiment=rl2_bandit_k2_n10"], ["experiment=rl2_mdp_n10"]])
@pytest.mark.parametrize("loss", ["task", "task_from_trials", "task_posterior", "reward"])
def test_aux_losses_on_the_paper_benchmarks(make_cfg, tmp_path, env_args, loss, monkeypatch):
    """Each auxiliary loss trains on the bandits and MDPs; with aux_task_target=trial or posterior the
    targets are the trials' own estimates (trial_task_features, trial_task_posterior), never the hidden features."""
    extra = {"task": ["algo.aux_task_coef=0.5"], "reward": ["algo.aux_reward_coef=0.5"],
             "task_from_trials": ["algo.aux_task_coef=0.5", "algo.aux_task_target=trial"],
             "task_posterior": ["algo.aux_task_coef=0.5", "algo.aux_task_target=posterior"]}[loss]
    cfg = make_cfg(*env_args, "total_env_steps=2500", "env.meta_batch_size=25", "eval.every=0", "eval.final=false",
                   "model.hidden=8", *extra, run_dir=str(tmp_path))
    if loss in ("task_from_trials", "task_posterior"):
        bench_cls = type(instantiate(cfg.env))
        monkeypatch.setattr(bench_cls, "task_features", lambda self, tasks: pytest.fail("read the hidden features"))
    train(cfg)
    row = read_metrics(tmp_path)[-1]
    name = "reward" if loss == "reward" else "task"
    assert float(row[f"losses/aux_{name}_loss"]) > 0
    assert f"losses/aux_{'task' if name == 'reward' else 'reward'}_loss" not in row


@pytest.mark.parametrize("target", ["hidden", "trial", "posterior"])
def test_task_features_with_transitions_train_on_mdps(make_cfg, tmp_path, target):
    """env.task_features=rewards_transitions sizes the task head S·A·(1 + S) and trains with either target."""
    cfg = make_cfg("experiment=rl2_mdp_n10", "env.task_features=rewards_transitions", "total_env_steps=2500",
                   "env.meta_batch_size=25", "eval.every=0", "eval.final=false", "model.hidden=8",
                   "algo.aux_task_coef=0.5", f"algo.aux_task_target={target}", run_dir=str(tmp_path))
    train(cfg)
    assert float(read_metrics(tmp_path)[-1]["losses/aux_task_loss"]) > 0
    from meta_rl.config import MDP_TASK_FEATURES
    from meta_rl.envs.tabular_mdp import TASK_FEATURES

    assert MDP_TASK_FEATURES == TASK_FEATURES
    weights = checkpoint.load(str(tmp_path / "checkpoints" / "latest.pt"))["model"]
    assert weights["task_head.weight"].shape == (10 * 5 * 11, 8)


@pytest.mark.parametrize("head", [{"task_dim": 4}, {"reward_head": True}])
def test_init_weights_across_the_training_only_heads(tmp_path, head):
    """Weights of a run with algo.aux_task_coef / aux_reward_coef start a run without it and vice
    versa; the rest stays strict."""
    import gymnasium as gym

    from meta_rl.errors import CheckpointError

    space = gym.spaces.Discrete(3)
    with_head = GRUActorCritic(6, space, hidden=8, **head)
    plain = GRUActorCritic(6, space, hidden=8)
    torch.save(with_head.state_dict(), tmp_path / "with_head.pt")
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    plain_gru = plain.gru.weight_hh_l0.detach().clone()
    checkpoint.load_weights(plain, str(tmp_path / "with_head.pt"))
    assert torch.equal(plain.gru.weight_hh_l0, with_head.gru.weight_hh_l0)
    fresh = GRUActorCritic(6, space, hidden=8, **head)
    module = fresh.task_head if "task_dim" in head else fresh.reward_head
    start = module.weight.detach().clone()
    checkpoint.load_weights(fresh, str(tmp_path / "plain.pt"))
    assert torch.equal(fresh.gru.weight_hh_l0, plain_gru) and torch.equal(module.weight, start)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        checkpoint.load_weights(GRUActorCritic(6, space, hidden=16), str(tmp_path / "with_head.pt"))
