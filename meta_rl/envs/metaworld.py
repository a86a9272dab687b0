"""Meta-World ML1 / ML10 / ML45 as a :class:`~meta_rl.envs.base.Benchmark`.

We use Meta-World's benchmark objects only for what they define (task classes and
their goal lists) and drive each ``SawyerXYZEnv`` directly: ``set_task`` fixes the
goal, ``reset`` is then deterministic, and every episode runs exactly
``episode_length`` steps. No gymnasium autoreset, no terminate-on-success, no
Meta-World task-select wrappers: trial and episode boundaries are owned by
``meta_rl.rollout``.

``make_env`` steps the envs in worker processes (one per usable core,
:class:`~meta_rl.envs.vector.ProcessTrialEnv`), each running a
:class:`MetaWorldTrialEnv` on its share of the envs; ``num_workers=0`` keeps them in
the calling process. Both give bit-identical results.
"""

from __future__ import annotations

import functools
import pickle
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import gymnasium as gym
import numpy as np

from meta_rl.envs.metaworld_fast import fast_class

BENCHMARKS = ("ML1", "ML10", "ML45")


@functools.lru_cache(maxsize=4)
def _load_benchmark(name: str, task: str | None, seed: int):
    """Build Meta-World's benchmark object (goal generation takes ~8 s for ML10; cached)."""
    import metaworld

    if name == "ML1":
        return metaworld.ML1(task, seed=seed)
    return getattr(metaworld, name)(seed=seed)


def _with_goal_in_obs(task):
    """``task`` with Meta-World's ``partially_observable`` flag off (the flag travels in the
    task's pickled data; ``set_task`` applies it)."""
    data = pickle.loads(task.data)
    data["partially_observable"] = False
    return type(task)(env_name=task.env_name, data=pickle.dumps(data))


RAND_VEC_DIM = 6  # the longest rand_vec of a Meta-World v3 task (object and goal positions)


def _rand_vec(task) -> np.ndarray:
    """The task's randomised positions, zero-padded to :data:`RAND_VEC_DIM`."""
    vec = np.asarray(pickle.loads(task.data)["rand_vec"], np.float64)
    out = np.zeros(RAND_VEC_DIM)
    out[: len(vec)] = vec
    return out


def _extra_goal_seeds(seed: int, sets: int) -> list[int]:
    """Benchmark seeds whose training goals ``env.train_goal_sets`` adds: seed + 2, seed + 3, ...
    Meta-World draws a benchmark's test goals with seed + 1, the seed the next benchmark
    draws its training goals with, so seed + 1 is skipped."""
    return [seed + 1 + k for k in range(1, sets)]


def _check_disjoint(train: Sequence, test: Sequence) -> None:
    """Raise if a test task (same class, same randomised positions) is among the training tasks."""
    seen = {(t.env_name, _rand_vec(t).tobytes()) for t in train}
    for t in test:
        if (t.env_name, _rand_vec(t).tobytes()) in seen:
            raise ValueError(f"a test goal of {t.env_name} is among the training goals (Meta-World's test goals "
                             "for seed s are the training goals for seed s + 1; leave that seed out)")


def task_names(benchmark: str) -> list[str]:
    """All Meta-World v3 task names valid for ``env.task`` (ML1)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return sorted(ALL_V3_ENVIRONMENTS)


class MetaWorldBenchmark:
    """Meta-World meta-learning benchmark.

    Args:
        benchmark: "ML1", "ML10" or "ML45".
        task: the task name for ML1 (e.g. "reach-v3"); must be None otherwise.
        meta_batch_size: trials per training iteration; a multiple of the number of
            training classes so every class gets the same number of trials.
        episodes_per_trial: episodes per trial (RL² meta-episode).
        episode_length: steps per episode (Meta-World's max_path_length is 500).
        reward_scale: v2 rewards lie in [0, 10]; 0.1 maps them to [0, 1].
        benchmark_seed: seeds Meta-World's goal generation (which goals exist).
        goal_observable: put each task's goal position into the last 3 observation
            entries, which Meta-World's meta-learning benchmarks zero (the multi-task MT
            setting). A diagnostic: it separates "can the learner solve the class" from
            "can it find the hidden goal from rewards". Off for every meta-learning result.
        train_goal_sets: how many of Meta-World's goal sets make up the training tasks: 1 is
            the benchmark (50 training goals per class); K > 1 adds the training goals of K - 1
            further benchmark seeds (50 (K - 1) more per class, never this seed's test goals).
            The test split is unchanged. Goal diversity for training, outside Meta-World's
            protocol: results with K > 1 are a variant, not ML1/ML10 numbers.
        name: display name (run directories, logs).
        num_workers: worker processes stepping the envs of ``make_env``; None = one per
            usable core, at most one per env (in-process when that is one), 0 = in-process.
    """

    def __init__(
        self,
        benchmark: str = "ML10",
        task: str | None = None,
        meta_batch_size: int = 20,
        episodes_per_trial: int = 10,
        episode_length: int = 500,
        reward_scale: float = 0.1,
        benchmark_seed: int = 0,
        goal_observable: bool = False,
        train_goal_sets: int = 1,
        name: str | None = None,
        num_workers: int | None = None,
    ) -> None:
        if benchmark not in BENCHMARKS:
            raise ValueError(f"env.benchmark={benchmark!r} is unknown; valid: {', '.join(BENCHMARKS)}")
        if benchmark == "ML1":
            valid = task_names(benchmark)
            if task not in valid:
                raise ValueError(
                    f"env.task={task!r} is not a Meta-World v3 task; valid: {', '.join(valid)}"
                )
        elif task is not None:
            raise ValueError(f"env.task is only used with ML1 (got env.task={task!r} for {benchmark})")
        if episode_length > 500:
            raise ValueError(f"env.episode_length={episode_length} exceeds Meta-World's 500-step limit")
        if train_goal_sets < 1:
            raise ValueError(f"env.train_goal_sets={train_goal_sets} must be >= 1 (1 = the benchmark's own training goals)")
        if num_workers is not None and num_workers < 0:
            raise ValueError(f"env.num_workers={num_workers} must be >= 0 (0 = in-process, null = one per core)")
        self.num_workers = num_workers
        self.name = name or (benchmark if task is None else f"{benchmark}-{task}")
        self.episode_length = episode_length
        self.episodes_per_trial = episodes_per_trial
        self.meta_batch_size = meta_batch_size
        self.reward_scale = reward_scale
        self._bench = _load_benchmark(benchmark, task, benchmark_seed)
        self._classes = {"train": self._bench.train_classes, "test": self._bench.test_classes}
        self.goal_observable = goal_observable
        self._tasks: dict[str, dict[str, list]] = {}
        train = list(self._bench.train_tasks)
        for seed in _extra_goal_seeds(benchmark_seed, train_goal_sets):
            train += _load_benchmark(benchmark, task, seed).train_tasks
        _check_disjoint(train, self._bench.test_tasks)
        for split, tasks in (("train", train), ("test", self._bench.test_tasks)):
            by_class: dict[str, list] = defaultdict(list)
            for t in tasks:
                by_class[t.env_name].append(_with_goal_in_obs(t) if goal_observable else t)
            self._tasks[split] = {c: by_class[c] for c in self._classes[split]}
        n_train = len(self._classes["train"])
        if meta_batch_size % n_train:
            raise ValueError(
                f"env.meta_batch_size={meta_batch_size} must be a multiple of the {n_train} "
                f"training classes of {self.name}"
            )
        # Task features (algo.aux_task_coef): each task's randomised positions (Meta-World's
        # rand_vec: object and/or goal, 3 or 6 numbers), standardised over the training tasks.
        rand = np.stack([_rand_vec(t) for t in self.all_tasks("train")])
        self._rand_mean = rand.mean(0)
        std = rand.std(0)
        self._rand_scale = np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-6), 0.0)
        self._class_index = {c: i for i, c in enumerate(self._classes["train"])}
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (39,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def class_names(self, split: str) -> list[str]:
        return list(self._classes[split])

    def task_class(self, task) -> str:
        return task.env_name

    def all_tasks(self, split: str) -> list:
        return [t for c in self._classes[split] for t in self._tasks[split][c]]

    @property
    def task_feature_dim(self) -> int:
        n = len(self._class_index)
        return RAND_VEC_DIM + (n if n > 1 else 0)

    def task_features(self, tasks: Sequence) -> np.ndarray:
        """What the hidden state should infer of each training task: its randomised positions
        (object and/or goal; Meta-World's ``rand_vec``, zero-padded to 6, standardised) and,
        with several training classes, the class as a one-hot. ``float32 [n, task_feature_dim]``."""
        rand = (np.stack([_rand_vec(t) for t in tasks]) - self._rand_mean) * self._rand_scale
        if len(self._class_index) == 1:
            return rand.astype(np.float32)
        onehot = np.zeros((len(tasks), len(self._class_index)))
        for i, t in enumerate(tasks):
            onehot[i, self._class_index[t.env_name]] = 1.0  # KeyError for a test task: training only
        return np.concatenate([rand, onehot], 1).astype(np.float32)

    def sample_tasks(self, split: str, n: int, rng: np.random.Generator) -> list:
        """``n // C`` tasks of each of the C classes (goals without replacement), in class order."""
        classes = self.class_names(split)
        if n % len(classes):
            raise ValueError(f"cannot spread {n} tasks evenly over {len(classes)} classes")
        per_class = n // len(classes)
        out = []
        for c in classes:
            goals = self._tasks[split][c]
            out.extend(goals[i] for i in rng.choice(len(goals), per_class, replace=len(goals) < per_class))
        return out

    def make_env(self, num_envs: int):
        """A :class:`~meta_rl.envs.vector.ProcessTrialEnv`, or a :class:`MetaWorldTrialEnv`
        when ``num_workers`` resolves to 0."""
        from meta_rl.envs.vector import ProcessTrialEnv, resolve_num_workers

        classes = {**self._classes["train"], **self._classes["test"]}
        workers = resolve_num_workers(self.num_workers, num_envs)
        if workers == 0:
            return MetaWorldTrialEnv(num_envs, classes)
        return ProcessTrialEnv(
            MetaWorldSlice(tuple(classes)), num_envs, self.observation_space, self.action_space,
            num_workers=workers, task_name=self.task_class,
        )


@dataclass(frozen=True)
class MetaWorldSlice:
    """Picklable factory of a :class:`MetaWorldTrialEnv` over the named task classes
    (built inside each worker of a ProcessTrialEnv; classes are looked up by name)."""

    class_names: tuple[str, ...]

    def __call__(self, num_envs: int) -> "MetaWorldTrialEnv":
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        return MetaWorldTrialEnv(num_envs, {c: ALL_V3_ENVIRONMENTS[c] for c in self.class_names})


class MetaWorldTrialEnv:
    """``num_envs`` Sawyer environments stepped in one process.

    The envs are Meta-World's classes with slow pieces of Python replaced by bit-identical
    faster ones (:mod:`meta_rl.envs.metaworld_fast`; 1.76x the steps per second over the 15
    ML10 classes in one process, docs/throughput.md).

    Each slot keeps one env instance per task class it has seen, so a slot can
    switch class between trials without rebuilding MuJoCo models every trial.
    """

    def __init__(self, num_envs: int, classes: dict) -> None:
        self.num_envs = num_envs
        self._classes = classes
        self._cache: list[dict[str, object]] = [{} for _ in range(num_envs)]
        self._envs: list = [None] * num_envs
        self._obs = np.zeros((num_envs, 39), np.float32)
        self._rew = np.zeros(num_envs, np.float32)
        self._succ = np.zeros(num_envs, bool)

    def set_tasks(self, tasks: Sequence) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"got {len(tasks)} tasks for {self.num_envs} envs")
        for i, task in enumerate(tasks):
            env = self._cache[i].get(task.env_name)
            if env is None:
                env = fast_class(self._classes[task.env_name])(reward_function_version="v2")
                self._cache[i][task.env_name] = env
            env.set_task(task)
            self._envs[i] = env

    def reset(self) -> np.ndarray:
        for i, env in enumerate(self._envs):
            self._obs[i] = env.reset()[0]
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        for i, env in enumerate(self._envs):
            obs, rew, _, _, info = env.step(actions[i])
            self._obs[i] = obs
            self._rew[i] = rew
            self._succ[i] = info["success"] > 0
        return self._obs.copy(), self._rew.copy(), self._succ.copy()

    def close(self) -> None:
        for cache in self._cache:
            for env in cache.values():
                env.close()
        self._cache = [{} for _ in range(self.num_envs)]
