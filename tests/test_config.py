"""Every config group option composes and instantiates; bad values fail with one clear line."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from meta_rl.config import ConfigError, validate
from meta_rl.experiment import build_algo, build_benchmark, build_model

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_exist():
    assert {"ml10", "ml1", "ml45"} <= set(options("env"))
    assert {"ppo", "ppo_kl"} <= set(options("algo"))
    assert "gru" in options("model") and "csv" in options("logger")


@pytest.mark.parametrize("env", options("env"))
def test_env_options_instantiate(make_cfg, env):
    cfg = make_cfg(f"env={env}")
    validate(cfg)
    bench = build_benchmark(cfg)
    assert bench.meta_batch_size == cfg.env.meta_batch_size
    tasks = bench.sample_tasks("train", bench.meta_batch_size, __import__("numpy").random.default_rng(0))
    assert len(tasks) == bench.meta_batch_size
    assert len(bench.class_names("test")) >= 1


@pytest.mark.parametrize("algo", options("algo"))
@pytest.mark.parametrize("model", options("model"))
def test_model_and_algo_options_instantiate(make_cfg, algo, model):
    cfg = make_cfg(f"algo={algo}", f"model={model}", "env=ml1")
    validate(cfg)
    bench = build_benchmark(cfg)
    net = build_model(cfg, bench)
    learner = build_algo(cfg, net, bench)
    assert learner.model is net
    assert type(learner).__name__ == {"ppo": "PPOClip", "ppo_kl": "PPOPenalty"}[algo]


@pytest.mark.parametrize("logger", options("logger"))
def test_logger_options_instantiate(make_cfg, logger, tmp_path):
    cfg = make_cfg(f"logger={logger}")
    lg = instantiate(cfg.logger)
    lg.start(str(tmp_path), {"a": 1})
    lg.log({"x/y": 1.0}, step=1)
    lg.close()


def test_command_line_overrides_reach_objects(make_cfg):
    cfg = make_cfg("algo=ppo", "model.hidden=64", "algo.lr=0.001", "env=ml1", "env.task=push-v3")
    bench = build_benchmark(cfg)
    assert bench.class_names("train") == ["push-v3"]
    net = build_model(cfg, bench)
    assert net.hidden == 64
    assert build_algo(cfg, net, bench).optimizer.param_groups[0]["lr"] == 0.001


def test_lstm_cell_option_builds_an_lstm_that_trains_and_checkpoints(make_cfg, tmp_path):
    """model.cell=lstm: the trunk is an LSTM (its state twice the hidden size), a run trains with it,
    and load_agent rebuilds it from the checkpoint's config."""
    from meta_rl import checkpoint
    from meta_rl.config import CELLS
    from meta_rl.experiment import load_agent, train
    from meta_rl.models.gru import CELLS as MODEL_CELLS

    assert set(CELLS) == set(MODEL_CELLS)
    cfg = make_cfg("env=tabular_mdp", "model.hidden=8", "model.cell=lstm", "total_env_steps=2000",
                   "env.meta_batch_size=2", "eval.every=0", "eval.final=false", run_dir=str(tmp_path))
    net = build_model(cfg, build_benchmark(cfg))
    assert isinstance(net.gru, torch.nn.LSTM) and net.state_size == 16 and net.initial_state(3).shape == (1, 3, 16)
    forget = net.gru.bias_ih_l0[8:16] + net.gru.bias_hh_l0[8:16]  # gates i, f, g, o
    assert torch.equal(forget, torch.ones(8)) and not torch.equal(net.gru.bias_ih_l0[:8], torch.ones(8))
    train(cfg)
    path = str(tmp_path / "checkpoints" / "latest.pt")
    saved = checkpoint.load(path)
    assert saved["config"]["model"]["cell"] == "lstm" and saved["env_steps"] == 2000
    _, model, _ = load_agent(path)
    assert isinstance(model.gru, torch.nn.LSTM)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved["model"].items())
    default = make_cfg("env=tabular_mdp", "model.hidden=8")
    assert default.model.cell == "gru" and isinstance(build_model(default, build_benchmark(default)).gru, torch.nn.GRU)


@pytest.mark.parametrize(
    "override, message",
    [
        ("env.meta_batch_size=15", "env.meta_batch_size=15 must be a multiple of the 10 training classes"),
        ("env.episode_length=0", "env.episode_length=0 must be > 0"),
        ("env.episode_length=600", "exceeds Meta-World's 500-step"),
        ("env.benchmark=ML7", "env.benchmark=ML7 is unknown"),
        ("model.hidden=-4", "model.hidden=-4 must be > 0"),
        ("algo.gamma=1.5", "algo.gamma=1.5 must lie in [0, 1]"),
        ("algo.chunk_length=300", "algo.chunk_length=300 must divide the trial length"),
        ("algo.lr_final=-0.1", "algo.lr_final=-0.1 must be >= 0"),
        ("algo.advantage_norm=task", "algo.advantage_norm=task is unknown; valid: batch, trial"),
        ("algo.reward_norm=trial", "algo.reward_norm=trial is unknown; valid: none, task"),
        ("total_env_steps=0", "total_env_steps=0 must be > 0"),
        ("model.max_log_std=-6", "model.max_log_std=-6.0 must be above model.min_log_std=-5.0"),
        ("model.cell=rnn", "model.cell=rnn is unknown; valid: gru, lstm"),
        ("device=tpu", "device=tpu is unknown"),
    ],
)
def test_bad_values_fail_with_one_line(make_cfg, override, message):
    cfg = make_cfg(override)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_ml1_task_lists_valid_names(make_cfg):
    with pytest.raises(ConfigError, match=r"env.task=nope-v3 is not a Meta-World v3 task; valid: .*reach-v3"):
        validate(make_cfg("env=ml1", "env.task=nope-v3"))


def test_wrong_type_fails_at_compose(make_cfg):
    with pytest.raises(Exception, match="model.hidden=abc"):
        make_cfg("model.hidden=abc")


def test_a_later_stage_preset_continues_runs_saved_before_it_required_init_weights(make_cfg):
    """init_weights_required guards a fresh start only: a run of the preset saved before the key
    existed (its config lacks it) is the same config when continued."""
    from meta_rl.config import with_schema_defaults
    from meta_rl.experiment import config_changes, resolved_config

    cfg = make_cfg("experiment=rl2_aux_mdp_n25_curriculum", "init_weights=runs/first/checkpoints/latest.pt")
    saved = resolved_config(cfg)
    assert saved.pop("init_weights_required") is True
    assert config_changes(with_schema_defaults(saved), resolved_config(cfg)) == []
    assert config_changes(with_schema_defaults({**saved, "init_weights": None}), resolved_config(cfg))


@pytest.mark.parametrize("preset", options("experiment"))
def test_experiment_presets_build(make_cfg, preset):
    """Each preset composes, validates and builds its model and algorithm; the *_aux_* presets
    are their base preset plus the task-inference loss, nothing else (*_aux_trial_*: with the trial's
    own estimates as its targets and a learning rate decaying to 0; *_aux_posterior_*: with the trial's
    posterior means, and an entropy bonus decaying to 0.02 in the first stage); the curriculum's second stage is its base preset with fewer steps
    and a smaller entropy bonus, a *_finetune phase its base preset with fewer steps, a smaller bonus
    and a decaying learning rate."""
    from omegaconf import OmegaConf

    cfg = make_cfg(f"experiment={preset}")
    if cfg.init_weights_required:  # a later stage: validates only with the weights it starts from
        assert preset.endswith(("_curriculum", "_finetune"))
        with pytest.raises(ConfigError, match=f"experiment {preset} continues another run: pass init_weights="):
            validate(cfg)
        cfg = make_cfg(f"experiment={preset}", "init_weights=runs/first/checkpoints/latest.pt")
    validate(cfg)
    assert cfg.name == preset
    bench = build_benchmark(cfg)
    algo = build_algo(cfg, build_model(cfg, bench), bench)
    if "_aux_posterior_" in preset:  # the trial's posterior means as targets; n=10: the entropy bonus decays
        ours, base = (OmegaConf.to_container(make_cfg(f"experiment={p}"), resolve=True)
                      for p in (preset, preset.replace("_aux_posterior_", "_aux_")))
        assert algo.aux_task_target == "posterior" and base["algo"]["aux_task_target"] == "hidden"
        first_stage = not ours["init_weights_required"]
        assert ours["algo"]["entropy_coef_final"] == (0.02 if first_stage else None)
        assert base["algo"]["entropy_coef_final"] is None
        if first_stage:  # the curriculum's 12M first stage, over which the bonus decays
            assert (ours["total_env_steps"], base["total_env_steps"]) == (12_000_000, 20_000_000)
            ours["total_env_steps"] = base["total_env_steps"]
        ours["algo"].update(aux_task_target="hidden", entropy_coef_final=None)
        ours["name"] = base["name"]
        assert ours == base
    elif preset.endswith("_curriculum"):
        ours, base = (OmegaConf.to_container(make_cfg(f"experiment={p}"), resolve=True)
                      for p in (preset, preset.removesuffix("_curriculum")))
        assert (ours["total_env_steps"], ours["algo"]["entropy_coef"]) == (15_000_000, 0.03)
        assert ours["init_weights_required"] and not base["init_weights_required"]
        ours.update(name=base["name"], total_env_steps=base["total_env_steps"], init_weights_required=False)
        ours["algo"]["entropy_coef"] = base["algo"]["entropy_coef"]
        assert ours == base
    elif preset.endswith("_finetune"):  # the second phase: its base preset with 5M steps, less entropy, lower lr
        ours, base = (OmegaConf.to_container(make_cfg(f"experiment={p}"), resolve=True)
                      for p in (preset, preset.removesuffix("_finetune")))
        assert (ours["total_env_steps"], ours["algo"]["entropy_coef"]) == (5_000_000, 0.01)
        assert (ours["algo"]["lr"], ours["algo"]["lr_final"]) == (3e-3, 0.0)
        assert ours["init_weights_required"] and not base["init_weights_required"]
        ours.update(name=base["name"], total_env_steps=base["total_env_steps"], init_weights_required=False)
        ours["algo"].update({k: base["algo"][k] for k in ("entropy_coef", "lr", "lr_final")})
        assert ours == base
    elif "_aux_trial_" in preset:  # the task-inference preset with the trial's own estimates as targets
        ours, base = (OmegaConf.to_container(make_cfg(f"experiment={p}"), resolve=True)
                      for p in (preset, preset.replace("_aux_trial_", "_aux_")))
        assert algo.aux_task_target == "trial" and base["algo"]["aux_task_target"] == "hidden"
        assert ours["algo"]["lr_final"] == 0.0 and base["algo"]["lr_final"] is None
        ours["algo"].update(aux_task_target="hidden", lr_final=None)
        ours["name"] = base["name"]
        assert ours == base
    elif "_aux_" in preset:
        ours, base = (OmegaConf.to_container(make_cfg(f"experiment={p}"), resolve=True)
                      for p in (preset, preset.replace("_aux_", "_")))
        assert algo.aux_task_coef > 0 and base["algo"]["aux_task_coef"] == 0
        ours["algo"]["aux_task_coef"] = 0.0
        ours["name"] = base["name"]
        assert ours == base


@pytest.mark.parametrize("args, reward_norm", [
    ([], "task"),                                       # python train.py: ML10, conf/env_algo/ml10.yaml
    (["algo=ppo_kl"], "task"),                          # composed after the algo group, whichever it is
    (["algo.reward_norm=none"], "none"),                # the command line still wins
    (["~env_algo"], "none"),                            # or drop the benchmark's algo settings altogether
    (["env=ml1"], "none"), (["env=ml45"], "none"),      # no env_algo file: the algo group's own default
    (["experiment=rl2_mdp_n10"], "none"), (["experiment=rl2_bandit_k5_n10"], "none"),
])
def test_benchmark_algo_settings_follow_the_env_choice(make_cfg, args, reward_norm):
    """conf/env_algo/<env>.yaml specialises the algo for a benchmark (ML10: rewards normalised per
    task class) without touching other benchmarks or the presets that choose their own env."""
    assert make_cfg(*args).algo.reward_norm == reward_norm


def test_ml10_task_reward_norm_preset_is_the_ml10_default_under_its_own_name(make_cfg):
    """The preset of the recorded ML10 runs (docs/results.md) is what `python train.py` now runs."""
    from omegaconf import OmegaConf

    ours, default = (OmegaConf.to_container(make_cfg(*a), resolve=True)
                     for a in (["experiment=rl2_ml10_task_reward_norm"], []))
    assert ours.pop("name") == "rl2_ml10_task_reward_norm" and default.pop("name") == "rl2"
    assert ours == default
