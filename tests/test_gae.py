"""GAE against a hand-computed reference, including an episode boundary inside a trial."""

import pytest
import torch

from meta_rl.algos.gae import gae


def reference(rewards, values, ends, gamma, lam, across):
    """Plain-Python GAE for one trial."""
    T = len(rewards)
    adv = [0.0] * T
    last = 0.0
    for t in reversed(range(T)):
        terminal = t == T - 1 or (ends[t] and not across)
        nv = 0.0 if terminal else values[t + 1]
        if terminal:
            last = 0.0
        delta = rewards[t] + gamma * nv - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv


def test_gae_matches_hand_computation_across_episode_boundary():
    # trial of 2 episodes of 2 steps; gamma=0.5, lambda=0.5 keeps the arithmetic exact
    r = torch.tensor([[1.0], [0.0], [0.0], [2.0]])
    v = torch.tensor([[0.5], [1.0], [0.0], [1.0]])
    ends = torch.tensor([False, True, False, True])
    adv, ret = gae(r, v, ends, gamma=0.5, lam=0.5, across_episodes=True)
    # by hand: d3 = 2 - 1 = 1; A3 = 1
    #          d2 = 0 + .5*1 - 0 = .5; A2 = .5 + .25*1 = .75
    #          d1 = 0 + .5*0 - 1 = -1 (bootstraps from episode 2's first value); A1 = -1 + .25*.75 = -.8125
    #          d0 = 1 + .5*1 - .5 = 1; A0 = 1 + .25*(-.8125) = .796875
    assert adv[:, 0].tolist() == [0.796875, -0.8125, 0.75, 1.0]
    assert torch.equal(ret, adv + v)
    # cutting at episode ends: d1 = 0 - 1 = -1, A1 = -1; A0 = 1 + .25*(-1) = .75
    adv_cut, _ = gae(r, v, ends, gamma=0.5, lam=0.5, across_episodes=False)
    assert adv_cut[:, 0].tolist() == [0.75, -1.0, 0.75, 1.0]


@pytest.mark.parametrize("across", [True, False])
def test_gae_matches_reference_on_random_trials(across):
    g = torch.Generator().manual_seed(0)
    T, B = 30, 4
    r, v = torch.rand(T, B, generator=g), torch.rand(T, B, generator=g)
    ends = torch.zeros(T, dtype=torch.bool)
    ends[9::10] = True
    adv, _ = gae(r, v, ends, 0.9, 0.8, across)
    for b in range(B):
        ref = reference(r[:, b].tolist(), v[:, b].tolist(), ends.tolist(), 0.9, 0.8, across)
        torch.testing.assert_close(adv[:, b], torch.tensor(ref), rtol=1e-5, atol=1e-6)


def test_late_reward_reaches_first_episode_only_when_discounting_across():
    T = 6
    r = torch.zeros(T, 1)
    r[-1] = 1.0  # reward only in the last episode
    v = torch.zeros(T, 1)
    ends = torch.tensor([False, True, False, True, False, True])
    adv_across, _ = gae(r, v, ends, 0.9, 1.0, True)
    adv_cut, _ = gae(r, v, ends, 0.9, 1.0, False)
    assert adv_across[0, 0] == pytest.approx(0.9**5)
    assert adv_cut[0, 0] == 0.0
