"""Adapter: our RL² agent behind Meta-World's ``metaworld.evaluation.MetaLearningAgent`` protocol.

Lets ``metaworld.evaluation.metalearning_evaluation`` run on a trained model, e.g.::

    envs = gymnasium.make_vec("Meta-World/ML10-test", vector_strategy="sync", meta_batch_size=5,
                              total_tasks_per_cls=40, recurrent_info_in_obs=True)
    agent = MetaWorldRL2Agent(model, num_envs=envs.num_envs, reward_scale=0.1)
    metaworld.evaluation.metalearning_evaluation(agent, envs, num_evals=1)

How the protocol maps onto RL²:

* ``init()`` starts a trial: initial hidden state, zero previous action/reward/done.
* ``adapt_action`` samples; ``step(timestep)`` records the executed action, the reward and
  the done flag exactly as :mod:`meta_rl.rl2` does in training; ``adapt()`` is a no-op
  (the fast learning lives in the hidden state).
* ``reset(env_mask)`` never resets the hidden state (RL² keeps it across episodes); it only
  marks a done flag for the next input.
* ``eval_action`` gets no rewards from the protocol. The previous reward is read from the
  observation when the envs were made with ``recurrent_info_in_obs=True`` (Meta-World's
  ``RNNBasedMetaRLWrapper`` puts reward/10 there), else 0. Under Meta-World's default
  same-step autoreset the last reward of a finished episode is not observable, so the first
  input of the next episode carries done=1 with reward 0 — unlike our own protocol
  (:mod:`meta_rl.evaluation`), which also counts every episode of every task exactly once.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from meta_rl.rl2 import RL2Inputs

OBS_DIM = 39


class MetaWorldRL2Agent:
    """Implements ``init``, ``adapt_action``, ``step``, ``adapt``, ``eval_action``, ``reset``."""

    def __init__(self, model, num_envs: int, reward_scale: float = 0.1, seed: int = 0,
                 trial_length: int | None = None) -> None:
        """``trial_length``: steps per trial (adaptation and evaluation episodes × 500), needed only
        by a model whose input carries the trial time (``model.trial_time``)."""
        if model.trial_time and trial_length is None:
            raise ValueError("this model reads the trial time (model.trial_time=true): pass trial_length, the steps "
                             "of one trial (episodes per trial x 500)")
        self.model = model
        self.num_envs = num_envs
        self.device = model.value.weight.device
        self.action_space = gym.spaces.Box(-1.0, 1.0, (model.action_dim,), np.float32)
        self.rl2 = RL2Inputs(num_envs, OBS_DIM, self.action_space, reward_scale, model.previous_obs,
                             trial_length if model.trial_time else None)
        self.generator = torch.Generator().manual_seed(seed)
        self.h = model.initial_state(num_envs)
        self._last_eval_action: np.ndarray | None = None
        self._pending_done = np.zeros(num_envs, np.float32)

    @torch.inference_mode()
    def _act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        x = torch.from_numpy(self.rl2.build(np.asarray(obs)[:, :OBS_DIM])).to(self.device)
        out, _, self.h = self.model(x.unsqueeze(0), self.h)
        a = self.model.mode(out[0]) if deterministic else self.model.sample(out[0], self.generator)
        return np.clip(a.cpu().numpy(), -1.0, 1.0).astype(np.float64)

    # ---- MetaLearningAgent protocol
    def init(self) -> None:
        self.h = self.model.initial_state(self.num_envs)
        self.rl2.start_trial()
        self._last_eval_action = None
        self._pending_done[:] = 0.0

    def adapt_action(self, observations: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self._act(observations, deterministic=False), {}

    def step(self, timestep) -> None:
        done = np.logical_or(timestep.terminated, timestep.truncated)
        self.rl2.record(np.asarray(timestep.action, np.float32), np.asarray(timestep.reward, np.float32), done)

    def adapt(self) -> None:
        """RL² adapts in its hidden state; there are no parameter updates at meta-test time."""

    def eval_action(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations)
        if self._last_eval_action is not None:
            reward = obs[:, OBS_DIM + self.rl2.act_dim] * 10.0 if obs.shape[1] > OBS_DIM else 0.0
            self.rl2.record(self._last_eval_action, reward, self._pending_done)
        self._pending_done[:] = 0.0
        action = self._act(obs, deterministic=True)
        self._last_eval_action = action.astype(np.float32)
        return action

    def reset(self, env_mask: np.ndarray) -> None:
        self._pending_done[np.asarray(env_mask, bool)] = 1.0
