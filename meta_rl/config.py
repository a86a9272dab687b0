"""Typed config schemas (registered with Hydra's ConfigStore) and start-up validation.

Each YAML file of a config group lists its schema first in its defaults list, so a
value of the wrong type fails when Hydra composes the config, and
:func:`validate` (called before anything is built) turns the composed config into
these dataclasses, which runs their ``__post_init__`` range checks. Every check
raises :class:`ConfigError` with one line that names the key and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, DictConfig, OmegaConf


from meta_rl.errors import ConfigError  # noqa: E402  (re-exported)


def _key(owner: str, key: str) -> str:
    return f"{owner}.{key}" if owner else key


def _positive(owner: str, **values: float) -> None:
    for key, v in values.items():
        if v <= 0:
            raise ConfigError(f"{_key(owner, key)}={v} must be > 0")


def _non_negative(owner: str, **values: float) -> None:
    for key, v in values.items():
        if v < 0:
            raise ConfigError(f"{_key(owner, key)}={v} must be >= 0")


# --------------------------------------------------------------------------- env

# Number of training classes per Meta-World benchmark (checked against Meta-World at build time).
METAWORLD_TRAIN_CLASSES = {"ML1": 1, "ML10": 10, "ML45": 45}


@dataclass
class MetaWorldEnvConfig:
    _target_: str = "meta_rl.envs.metaworld.MetaWorldBenchmark"
    name: str = "ml10"
    benchmark: str = "ML10"
    task: Optional[str] = None
    meta_batch_size: int = 20
    episodes_per_trial: int = 10
    episode_length: int = 500
    reward_scale: float = 0.1
    benchmark_seed: int = II("seed")
    goal_observable: bool = False
    train_goal_sets: int = 1
    num_workers: Optional[int] = None

    def __post_init__(self) -> None:
        if self.num_workers is not None:
            _non_negative("env", num_workers=self.num_workers)
        _positive("env", train_goal_sets=self.train_goal_sets)
        if self.benchmark not in METAWORLD_TRAIN_CLASSES:
            raise ConfigError(
                f"env.benchmark={self.benchmark} is unknown; valid: {', '.join(METAWORLD_TRAIN_CLASSES)}"
            )
        _positive("env", meta_batch_size=self.meta_batch_size, episodes_per_trial=self.episodes_per_trial,
                  episode_length=self.episode_length, reward_scale=self.reward_scale)
        if self.episode_length > 500:
            raise ConfigError(f"env.episode_length={self.episode_length} exceeds Meta-World's 500-step episodes")
        n = METAWORLD_TRAIN_CLASSES[self.benchmark]
        if self.meta_batch_size % n:
            raise ConfigError(
                f"env.meta_batch_size={self.meta_batch_size} must be a multiple of the {n} training "
                f"classes of {self.benchmark} (e.g. {n * max(1, self.meta_batch_size // n)})"
            )
        if self.benchmark == "ML1":
            from metaworld.env_dict import ALL_V3_ENVIRONMENTS

            if self.task not in ALL_V3_ENVIRONMENTS:
                raise ConfigError(
                    f"env.task={self.task} is not a Meta-World v3 task; valid: {', '.join(sorted(ALL_V3_ENVIRONMENTS))}"
                )
        elif self.task is not None:
            raise ConfigError(f"env.task is only used with env=ml1 (got env.task={self.task} for {self.benchmark})")


@dataclass
class BanditEnvConfig:
    _target_: str = "meta_rl.envs.bandit.BernoulliBandit"
    name: str = "bandit"
    arms: int = 5
    pulls: int = 10
    meta_batch_size: int = 250
    reward_scale: float = 1.0

    def __post_init__(self) -> None:
        _positive("env", pulls=self.pulls, meta_batch_size=self.meta_batch_size, reward_scale=self.reward_scale)
        if self.arms < 2:
            raise ConfigError(f"env.arms={self.arms} must be >= 2")


MDP_TASK_FEATURES = ("rewards", "rewards_transitions")  # meta_rl.envs.tabular_mdp.TASK_FEATURES


@dataclass
class TabularMDPEnvConfig:
    _target_: str = "meta_rl.envs.tabular_mdp.RandomTabularMDP"
    name: str = "tabular_mdp"
    states: int = 10
    actions: int = 5
    horizon: int = 10
    episodes: int = 10
    meta_batch_size: int = 250
    reward_scale: float = 1.0
    task_features: str = "rewards"  # rewards | rewards_transitions: what algo.aux_task_coef regresses

    def __post_init__(self) -> None:
        if self.task_features not in MDP_TASK_FEATURES:
            raise ConfigError(f"env.task_features={self.task_features} is unknown; valid: {', '.join(MDP_TASK_FEATURES)}")
        _positive("env", states=self.states, actions=self.actions, horizon=self.horizon, episodes=self.episodes,
                  meta_batch_size=self.meta_batch_size, reward_scale=self.reward_scale)


# ------------------------------------------------------------------------- model


CELLS = ("gru", "lstm")  # meta_rl.models.gru.CELLS


@dataclass
class GRUModelConfig:
    _target_: str = "meta_rl.models.GRUActorCritic"
    hidden: int = 256
    cell: str = "gru"  # gru (RL² paper) | lstm
    init_log_std: float = 0.0
    min_log_std: float = -5.0
    max_log_std: Optional[float] = None  # upper bound on the log std (null: none)
    state_dependent_std: bool = False  # log std from the policy head (per state) instead of a parameter
    # false here so that runs saved before this option existed resume and load unchanged;
    # conf/model/gru.yaml sets the default of new runs.
    normalize_inputs: bool = False
    input_clip: float = 10.0
    previous_obs: bool = False  # the input also carries the previous observation (meta_rl.rl2)
    trial_time: bool = False  # the input also carries the fraction of the trial played (meta_rl.rl2)
    masked_inputs: list[int] = field(default_factory=list)  # input dims zeroed before the GRU

    def __post_init__(self) -> None:
        _positive("model", hidden=self.hidden, input_clip=self.input_clip)
        if self.cell not in CELLS:
            raise ConfigError(f"model.cell={self.cell} is unknown; valid: {', '.join(CELLS)}")
        if self.max_log_std is not None and self.max_log_std <= self.min_log_std:
            raise ConfigError(f"model.max_log_std={self.max_log_std} must be above model.min_log_std="
                              f"{self.min_log_std}; raise it, or null for no upper bound")


# -------------------------------------------------------------------------- algo


# Value baselines for GAE: the model's critic head, or rllab's linear feature baseline (RL² paper).
BASELINES = ("critic", "linear")
ADVANTAGE_NORMS = ("batch", "trial")
REWARD_NORMS = ("none", "task")
AUX_TASK_TARGETS = ("hidden", "trial", "posterior")


@dataclass
class PPOConfig:
    _target_: str = "meta_rl.algos.ppo.PPOClip"
    lr: float = 5e-4
    adam_eps: float = 1e-5
    epochs: int = 10
    num_minibatches: int = 4
    chunk_length: int = 250
    gamma: float = 0.99
    gae_lambda: float = 0.95
    gae_across_episodes: bool = True
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    advantage_norm: str = "batch"  # batch | trial: the group whose advantages are standardised
    reward_norm: str = "none"  # none | task: divide rewards by their task class's running std
    normalize_values: bool = True
    baseline: str = "critic"
    lr_final: Optional[float] = None  # linear schedule lr → lr_final over the run (null: constant)
    entropy_coef_final: Optional[float] = None  # linear schedule entropy_coef → this (null: constant)
    aux_task_coef: float = 0.0  # > 0: regress the task features from the GRU state (meta_rl.algos.ppo)
    aux_task_target: str = "hidden"  # hidden | trial | posterior: the task's hidden parameters, the trial's own estimate of them, or its posterior mean under the prior
    aux_reward_coef: float = 0.0  # > 0: predict each step's reward from the GRU state and action (meta_rl.algos.ppo)

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ConfigError(f"algo.baseline={self.baseline} is unknown; valid: {', '.join(BASELINES)}")
        if self.reward_norm not in REWARD_NORMS:
            raise ConfigError(f"algo.reward_norm={self.reward_norm} is unknown; valid: {', '.join(REWARD_NORMS)}")
        if self.aux_task_target not in AUX_TASK_TARGETS:
            raise ConfigError(f"algo.aux_task_target={self.aux_task_target} is unknown; "
                              f"valid: {', '.join(AUX_TASK_TARGETS)}")
        if self.advantage_norm not in ADVANTAGE_NORMS:
            raise ConfigError(f"algo.advantage_norm={self.advantage_norm} is unknown; "
                              f"valid: {', '.join(ADVANTAGE_NORMS)}")
        _positive("algo", lr=self.lr, epochs=self.epochs, num_minibatches=self.num_minibatches,
                  chunk_length=self.chunk_length, clip=self.clip, max_grad_norm=self.max_grad_norm)
        _non_negative("algo", value_coef=self.value_coef, entropy_coef=self.entropy_coef,
                      aux_task_coef=self.aux_task_coef, aux_reward_coef=self.aux_reward_coef)
        if self.lr_final is not None:
            _non_negative("algo", lr_final=self.lr_final)
        if self.entropy_coef_final is not None:
            _non_negative("algo", entropy_coef_final=self.entropy_coef_final)
        for key in ("gamma", "gae_lambda"):
            v = getattr(self, key)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"algo.{key}={v} must lie in [0, 1]")


@dataclass
class PPOPenaltyConfig(PPOConfig):
    _target_: str = "meta_rl.algos.ppo.PPOPenalty"
    kl_target: float = 0.01
    kl_coef: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("algo", kl_target=self.kl_target, kl_coef=self.kl_coef)


# ------------------------------------------------------------------------ logger


@dataclass
class CSVLoggerConfig:
    _target_: str = "meta_rl.loggers.csv.CSVLogger"
    filename: str = "metrics.csv"


# -------------------------------------------------------------------------- eval


# Cameras of Meta-World's Sawyer scene, and MuJoCo's GL backends for off-screen rendering (Linux).
VIDEO_CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
GL_BACKENDS = ("osmesa", "egl", "glfw")
# MuJoCo's default off-screen buffer (Meta-World keeps it) is 640x480: square frames up to 480.
MAX_VIDEO_SIZE = 480


@dataclass
class EvalConfig:
    every: int = 10
    final: bool = True
    split: str = "test"
    adaptation_episodes: int = 10
    evaluation_episodes: int = 3
    deterministic: bool = True
    num_goals: Optional[int] = 4
    train_num_goals: int = 2
    num_envs: int = 20
    best_metric: str = "eval/test/success"
    video: bool = False
    video_tasks: int = 1
    video_first_episode: bool = True
    video_frame_stride: int = 5
    video_size: int = 160
    video_fps: int = 20
    video_camera: str = "corner4"
    video_backend: Optional[str] = None

    def __post_init__(self) -> None:
        _non_negative("eval", every=self.every, train_num_goals=self.train_num_goals,
                      adaptation_episodes=self.adaptation_episodes, evaluation_episodes=self.evaluation_episodes)
        _positive("eval", num_envs=self.num_envs)
        if self.adaptation_episodes + self.evaluation_episodes == 0:
            raise ConfigError("eval.adaptation_episodes + eval.evaluation_episodes must be > 0")
        if self.num_goals is not None:
            _positive("eval", num_goals=self.num_goals)
        if self.split not in ("train", "test"):
            raise ConfigError(f"eval.split={self.split} is unknown; use train or test")
        _positive("eval", video_tasks=self.video_tasks, video_frame_stride=self.video_frame_stride,
                  video_fps=self.video_fps)
        if not 16 <= self.video_size <= MAX_VIDEO_SIZE:
            raise ConfigError(f"eval.video_size={self.video_size} must lie in [16, {MAX_VIDEO_SIZE}] (pixels)")
        if self.video_camera not in VIDEO_CAMERAS:
            raise ConfigError(f"eval.video_camera={self.video_camera} is unknown; valid: {', '.join(VIDEO_CAMERAS)}")
        if self.video_backend is not None and self.video_backend not in GL_BACKENDS:
            raise ConfigError(f"eval.video_backend={self.video_backend} is unknown; valid: {', '.join(GL_BACKENDS)} "
                              f"(null = $MUJOCO_GL, else osmesa)")


# -------------------------------------------------------------------------- root


@dataclass
class TrainConfig:
    env: Any = MISSING
    model: Any = MISSING
    algo: Any = MISSING
    logger: Any = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    device: str = "cpu"
    total_env_steps: int = 20_000_000
    checkpoint_every: int = 10
    checkpoint_keep: int = 3
    resume: Optional[str] = None
    auto_resume: bool = True
    init_weights: Optional[str] = None  # start a new run from these network weights (meta_rl.checkpoint.load_weights)
    init_weights_required: bool = False  # set by presets that continue another run (a curriculum's later stage)
    torch_threads: int = 0
    progress: bool = True
    run_dir: str = II("hydra:runtime.output_dir")
    name: str = "rl2"

    def __post_init__(self) -> None:
        _positive("", total_env_steps=self.total_env_steps, checkpoint_every=self.checkpoint_every)
        _non_negative("", seed=self.seed, torch_threads=self.torch_threads, checkpoint_keep=self.checkpoint_keep)
        if self.init_weights_required and not self.init_weights:
            raise ConfigError(
                f"experiment {self.name} continues another run: pass init_weights=<that run's "
                f"checkpoints/latest.pt> (its preset's comment names the run), or init_weights_required=false "
                f"to train it from scratch"
            )
        if not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps"):
            raise ConfigError(f"device={self.device} is unknown; use cpu, cuda or cuda:N")
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"device={self.device} but no CUDA GPU is available; use device=cpu")
        trial = getattr(self.env, "episodes_per_trial", 0) * getattr(self.env, "episode_length", 0)
        chunk = getattr(self.algo, "chunk_length", None)
        if trial and chunk and chunk < trial and trial % chunk:
            raise ConfigError(
                f"algo.chunk_length={chunk} must divide the trial length "
                f"env.episodes_per_trial*env.episode_length={trial}"
            )


@dataclass
class EvaluateConfig:
    """Root config of ``evaluate.py``: everything else comes from the run's saved config."""

    run: str = MISSING
    checkpoint: str = "latest"
    device: str = "cpu"
    seed: int = 0
    output_dir: Optional[str] = None
    plots: bool = True
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(num_goals=None))

    def __post_init__(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"device={self.device} but no CUDA GPU is available; use device=cpu")


def validate(cfg: DictConfig):
    """Check every value of a composed config; raises :class:`ConfigError` on the first bad one."""
    try:
        return OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as e:  # omegaconf validation/interpolation errors
        msg = str(e).strip().splitlines()[0]
        raise ConfigError(msg) from e


# The schemas of the env, model and algo groups: (group, ConfigStore name, dataclass).
GROUP_SCHEMAS = (
    ("env", "metaworld_schema", MetaWorldEnvConfig),
    ("env", "bandit_schema", BanditEnvConfig),
    ("env", "tabular_mdp_schema", TabularMDPEnvConfig),
    ("model", "gru_schema", GRUModelConfig),
    ("algo", "ppo_schema", PPOConfig),
    ("algo", "ppo_kl_schema", PPOPenaltyConfig),
)


def with_schema_defaults(config: dict) -> dict:
    """A saved config completed with the schema defaults of keys added since it was saved.

    A run saved before an option existed ran as that option's schema default (the schemas
    keep old behaviour as the default for that reason), so continuing it under current code
    must not count the new key as a change of config. Groups are matched to their schema by
    ``_target_``; keys the saved config has are left as they are.
    """
    from dataclasses import MISSING as NO_DEFAULT, fields, is_dataclass

    def defaults(cls) -> dict:
        out = {}
        for f in fields(cls):
            if f.default is not NO_DEFAULT:
                value = f.default
            elif f.default_factory is not NO_DEFAULT:
                value = f.default_factory()
            else:
                continue
            if value is MISSING or isinstance(value, str) and value.startswith("${"):
                continue
            out[f.name] = OmegaConf.to_container(OmegaConf.structured(value)) if is_dataclass(value) else value
        return out

    by_target = {defaults(cls)["_target_"]: cls for _, _, cls in GROUP_SCHEMAS}
    done = dict(config)
    for key, value in defaults(TrainConfig).items():
        done.setdefault(key, value)
    for key in ("env", "model", "algo"):
        group = done.get(key)
        if isinstance(group, dict) and group.get("_target_") in by_target:
            done[key] = {**defaults(by_target[group["_target_"]]), **group}
    return done


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent; safe before every compose)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    for group, name, node in GROUP_SCHEMAS:
        cs.store(group=group, name=name, node=node)
    cs.store(group="logger", name="csv_schema", node=CSVLoggerConfig)
    from meta_rl.loggers.schemas import register as register_logger_schemas

    register_logger_schemas(cs)
