"""Collect one trial per environment into a :class:`TrialBatch`.

A trial is ``episodes_per_trial`` consecutive episodes of ``episode_length`` steps
of one task. The hidden state starts at the model's initial state at the trial
start and is carried across every episode end inside the trial.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid

import numpy as np
import torch

from meta_rl.rl2 import RL2Inputs


@dataclasses.dataclass
class TrialBatch:
    """One trial per env; T = episodes_per_trial · episode_length, B = envs, C = T // chunk_length.

    inputs [T, B, D] float32     RL² policy inputs
    actions [T, B, A] float32 (or [T, B] int64 for discrete)   sampled actions (before clipping)
    log_probs [T, B]             log-probs of the sampled actions
    values [T, B]                value estimates at collection time
    rewards [T, B]               raw env rewards
    successes [T, B] bool        per-step success signal
    episode_end [T] bool         True at the last step of each episode
    hidden [C, B, S]             recurrent state before the first step of each chunk
    task_features [B, F] or None  the trials' task features (set by the trainer when the
                                  algorithm regresses them, ``algo.aux_task_coef``)
    task_mask [B, F] bool or None  which task features the loss counts (None: all; set with
                                  features estimated from the trial, ``algo.aux_task_target=trial``)
    task_ids [B] int64 or None    each trial's task class (index into the benchmark's training
                                  classes; set by the trainer)
    """

    inputs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    successes: torch.Tensor
    episode_end: torch.Tensor
    hidden: torch.Tensor
    chunk_length: int
    episodes_per_trial: int
    task_features: torch.Tensor | None = None
    task_mask: torch.Tensor | None = None
    task_ids: torch.Tensor | None = None

    @property
    def num_steps(self) -> int:
        return self.rewards.numel()

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of each episode, ``[E, B]``."""
        E = self.episodes_per_trial
        return self.rewards.view(E, -1, self.rewards.shape[1]).sum(1)

    def episode_successes(self) -> torch.Tensor:
        """Whether success was reached at any step of each episode, ``[E, B]`` bool."""
        E = self.episodes_per_trial
        return self.successes.view(E, -1, self.successes.shape[1]).any(1)

    def to(self, device: torch.device) -> TrialBatch:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(self, **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})


_FIELDS = ("inputs", "actions", "log_probs", "values", "rewards", "successes", "hidden")


class TrialCollector:
    """Runs trials of a :class:`~meta_rl.envs.base.TrialEnv` with the policy, into preallocated buffers.

    In the env workers: when the env can run jobs in worker processes (``run``, as
    :class:`~meta_rl.envs.vector.ProcessTrialEnv` does), each worker runs the whole trial of
    its envs with its own copy of the policy (the weights are sent with every ``collect``), and
    the main process only gathers the results. Workers then never wait for each other nor for
    the main process, and policy inference spreads over the workers like the env stepping does.
    Per env this is exactly the loop below; what differs is where the action noise comes from:
    each worker draws its own stream, seeded from ``generator``, so a seed gives the same
    batch for the same number of workers (with the mode as action the batch equals the
    in-process loop's).

    Args:
        env: the trial environment (``num_envs`` = B).
        model: the recurrent actor-critic.
        obs_dim, action_space: from the benchmark.
        episode_length, episodes_per_trial, reward_scale: from the benchmark.
        chunk_length: the hidden state is stored every ``chunk_length`` steps for
            truncated-BPTT updates; must divide the trial length (None or longer: the whole trial).
        generator: torch RNG used for action sampling (its own stream).
        threads: torch intra-op threads during collection (restored afterwards). Inference on
            one step of the meta-batch is too small to gain from threads, and idle OpenMP
            threads spinning between steps take CPU from the env workers (with 2 threads
            collection on 2 cores ran at half the speed; docs/throughput.md).
        in_workers: run the policy in the env's workers where the env supports that (False:
            step the env from this process, the reference the worker path is tested against).
    """

    def __init__(
        self,
        env,
        model,
        obs_dim: int,
        action_space,
        episode_length: int,
        episodes_per_trial: int,
        reward_scale: float,
        chunk_length: int | None = None,
        generator: torch.Generator | None = None,
        threads: int = 1,
        in_workers: bool = True,
    ) -> None:
        self.env, self.model, self.generator = env, model, generator
        self.threads = threads
        self.H, self.E = episode_length, episodes_per_trial
        T, B = self.H * self.E, env.num_envs
        self.chunk = min(chunk_length or T, T)
        if T % self.chunk:
            raise ValueError(f"chunk_length={self.chunk} must divide the trial length {T}")
        self.in_workers = in_workers and hasattr(env, "run")
        self._spec = dict(obs_dim=obs_dim, action_space=action_space, episode_length=episode_length,
                          episodes_per_trial=episodes_per_trial, reward_scale=reward_scale, chunk_length=self.chunk,
                          threads=1)
        self._workers_ready = False
        self._key = uuid.uuid4().hex  # names this collector's policy in the workers' caches
        self.rl2 = RL2Inputs(B, obs_dim, action_space, reward_scale, model.previous_obs, T if model.trial_time else None)
        self.low = getattr(action_space, "low", None)
        self.high = getattr(action_space, "high", None)
        self.device = model.value.weight.device
        self.discrete = model.discrete
        act_shape = (T, B) if self.discrete else (T, B, model.action_dim)
        # The loop writes through numpy views of CPU tensors (much cheaper per call than tensor
        # indexing); the batch is moved to the model's device at the end if that is not the CPU.
        self.buf = TrialBatch(
            inputs=torch.zeros(T, B, self.rl2.dim),
            actions=torch.zeros(act_shape, dtype=torch.int64 if self.discrete else torch.float32),
            log_probs=torch.zeros(T, B),
            values=torch.zeros(T, B),
            rewards=torch.zeros(T, B),
            successes=torch.zeros(T, B, dtype=torch.bool),
            episode_end=torch.zeros(T, dtype=torch.bool),
            hidden=torch.zeros(T // self.chunk, B, model.state_size),
            chunk_length=self.chunk,
            episodes_per_trial=self.E,
        )
        self.buf.episode_end.view(self.E, self.H)[:, -1] = True
        self._np = {f: getattr(self.buf, f).numpy() for f in _FIELDS}
        self.interrupt = None  # optional callable checked every step (raises to stop)

    def collect(self, tasks, explore_episodes: int | None = None) -> TrialBatch:
        """Run one full trial of ``tasks[i]`` in env i; returns the batch (reused buffers on the CPU).

        Actions are sampled in the first ``explore_episodes`` episodes (all, if None) and
        the distribution's mode is taken afterwards (meta-test evaluation episodes).
        """
        if self.in_workers:
            self._collect_in_workers(list(tasks), explore_episodes)
        else:
            threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                self._collect(tasks, explore_episodes)
            finally:
                torch.set_num_threads(threads)
        return self.buf if self.device.type == "cpu" else self.buf.to(self.device)

    @torch.inference_mode()
    def _collect(self, tasks, explore_episodes: int | None) -> None:
        env, model, gen, interrupt, rl2, b = self.env, self.model, self.generator, self.interrupt, self.rl2, self._np
        H, chunk, dev = self.H, self.chunk, self.device
        discrete, low, high = self.discrete, self.low, self.high
        env.set_tasks(tasks)
        rl2.start_trial()
        h = model.initial_state(env.num_envs)
        t = 0
        for episode in range(self.E):
            deterministic = explore_episodes is not None and episode >= explore_episodes
            obs = env.reset()
            for k in range(H):
                if interrupt is not None:
                    interrupt()
                if t % chunk == 0:
                    b["hidden"][t // chunk] = h[0].cpu().numpy()
                x = rl2.build(obs)
                b["inputs"][t] = x
                out, value, h = model(torch.from_numpy(x).to(dev).unsqueeze(0), h)
                action, log_prob = model.act(out[0], gen, deterministic)
                a = b["actions"][t]
                a[...] = action.cpu().numpy()
                b["log_probs"][t] = log_prob.cpu().numpy()
                b["values"][t] = value[0].cpu().numpy()
                executed = a if discrete else np.clip(a, low, high)
                obs, reward, success = env.step(executed)
                b["rewards"][t] = reward
                b["successes"][t] = success
                rl2.record(executed, reward, k == H - 1)
                t += 1

    def _collect_in_workers(self, tasks: list, explore_episodes: int | None) -> None:
        env, W = self.env, self.env.num_workers
        # One seed per worker from this collector's stream: the batch depends on the seed and
        # the number of workers only, not on timing.
        seeds = torch.randint(0, 2**62, (W,), generator=self.generator).tolist()
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        setup = None
        if not self._workers_ready:
            policy = copy.deepcopy(self.model).to("cpu")
            setup = (policy, self._spec)
        jobs = [_CollectJob(self._key, setup, state, tasks[rows], explore_episodes, seed)
                for rows, seed in zip(env.rows, seeds)]
        results = env.run(jobs, tasks=tasks, poll=self.interrupt, during="collect")
        self._workers_ready = True
        for rows, result in zip(env.rows, results):
            for f in _FIELDS:
                self._np[f][:, rows] = result[f]


class _CollectJob:
    """One env worker's share of :meth:`TrialCollector.collect`: the trial of the worker's
    envs with the worker's copy of the policy (built from ``setup`` on the first job,
    kept in the worker's cache under ``key``)."""

    def __init__(self, key, setup, state, tasks, explore_episodes, seed) -> None:
        self.key, self.setup, self.state = key, setup, state
        self.tasks, self.explore_episodes, self.seed = tasks, explore_episodes, seed

    def __call__(self, ctx) -> dict[str, np.ndarray]:
        collector = ctx.cache.get(self.key)
        if collector is None:
            if self.setup is None:
                raise RuntimeError("the worker has no policy: its first collect job carries none")
            model, spec = self.setup
            collector = TrialCollector(ctx.env, model, generator=torch.Generator(), in_workers=False, **spec)
            ctx.cache[self.key] = collector
        collector.model.load_state_dict(self.state)
        collector.generator.manual_seed(self.seed)
        collector.interrupt = ctx.check
        batch = collector.collect(self.tasks, self.explore_episodes)
        return {f: getattr(batch, f).numpy() for f in _FIELDS}


def play_trials(benchmark, model, tasks, seed: int, explore_episodes: int | None = None) -> TrialBatch:
    """One trial per task with ``model``, in this process (benchmarks that step in-process: the
    bandits and tabular MDPs), the env's outcomes and the policy's action noise both seeded by
    ``seed``; sampled actions, or with ``explore_episodes=0`` the most likely action throughout.
    What the analysis scripts under ``docs/results/`` play their checkpoints with."""
    env = benchmark.make_env(len(tasks))
    env.reseed(seed)
    try:
        collector = TrialCollector(env, model, int(np.prod(benchmark.observation_space.shape)), benchmark.action_space,
                                   benchmark.episode_length, benchmark.episodes_per_trial, benchmark.reward_scale,
                                   generator=torch.Generator().manual_seed(seed))
        return collector.collect(list(tasks), explore_episodes=explore_episodes)
    finally:
        env.close()
