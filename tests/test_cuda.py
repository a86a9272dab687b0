"""``device=cuda``: the learner on a GPU, environments on the CPU. Skipped without a CUDA GPU.

Run on a GPU machine with ``python -m pytest -q tests/test_cuda.py``.
"""

import gymnasium as gym
import pytest
import torch

from meta_rl import checkpoint
from meta_rl.algos.ppo import PPOClip
from meta_rl.experiment import train
from meta_rl.models import GRUActorCritic
from meta_rl.rl2 import input_dim
from meta_rl.rollout import TrialCollector
from tests.conftest import ScriptedBenchmark
from tests.test_train import TINY, read_metrics

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _pair(space, seed=0):
    torch.manual_seed(seed)
    cpu = GRUActorCritic(8, space, hidden=16)
    gpu = GRUActorCritic(8, space, hidden=16).cuda()
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu


@pytest.mark.parametrize("space", [gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(5)])
def test_a_seed_samples_the_same_actions_on_cpu_and_cuda(space):
    cpu, gpu = _pair(space)
    x, h = torch.randn(1, 32, 8), torch.zeros(1, 32, 16)
    out_c, _, _ = cpu(x, h)
    out_g, _, _ = gpu(x.cuda(), h.cuda())
    a_c, lp_c = cpu.act(out_c[0], torch.Generator().manual_seed(3))
    a_g, lp_g = gpu.act(out_g[0], torch.Generator().manual_seed(3))
    assert a_g.device.type == "cuda" and lp_g.device.type == "cuda"
    if space.shape:
        torch.testing.assert_close(a_g.cpu(), a_c, atol=1e-5, rtol=1e-4)
    else:
        assert torch.equal(a_g.cpu(), a_c)
    torch.testing.assert_close(lp_g.cpu(), lp_c, atol=1e-4, rtol=1e-4)


def test_collection_and_update_on_cuda_match_cpu():
    bench = ScriptedBenchmark(episode_length=5, episodes_per_trial=2, meta_batch_size=4)
    dim = input_dim(bench.observation_space, bench.action_space)
    results = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = GRUActorCritic(dim, bench.action_space, hidden=16, normalize_inputs=True).to(device)
        col = TrialCollector(bench.make_env(4), model, 3, bench.action_space, 5, 2, bench.reward_scale,
                             chunk_length=5, generator=torch.Generator().manual_seed(0))
        batch = col.collect([0, 1, 2, 3])
        assert batch.inputs.device.type == device
        algo = PPOClip(model, lr=3e-3, epochs=2, num_minibatches=2, chunk_length=5)
        stats = algo.update(batch, torch.Generator().manual_seed(0))
        model.update_input_stats(batch.inputs)
        results[device] = (batch.actions.cpu(), stats, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    (a_c, s_c, p_c), (a_g, s_g, p_g) = results["cpu"], results["cuda"]
    torch.testing.assert_close(a_g, a_c, atol=1e-4, rtol=1e-4)
    for k in ("policy_loss", "value_loss", "entropy"):
        assert s_g[k] == pytest.approx(s_c[k], rel=1e-3, abs=1e-4), k
    for k in p_c:
        torch.testing.assert_close(p_g[k], p_c[k], atol=1e-3, rtol=1e-3, msg=k)


def test_train_on_cuda_then_resume_on_cpu(make_cfg, tmp_path):
    """A checkpoint written by a GPU run continues on the CPU (device may change on resume)."""
    train(make_cfg(*TINY, "device=cuda", run_dir=str(tmp_path)))
    state = checkpoint.load(str(tmp_path / "checkpoints" / "latest.pt"))
    assert state["iteration"] == 2 and state["config"]["device"] == "cuda"
    train(make_cfg(*TINY, "total_env_steps=600", "device=cpu", run_dir=str(tmp_path)))  # auto-resume
    assert [int(r["step"]) for r in read_metrics(tmp_path)] == [200, 400, 600]
