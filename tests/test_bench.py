"""The throughput benchmark runs in a test-sized mode and its JSON has every field."""

import json

import pytest

from meta_rl import bench

FIELDS = {
    "raw_steps_per_s", "env_steps_per_s", "env_ratio", "collect_steps_per_s", "collect_ratio", "train_steps_per_s", "train_ratio",
    "update_share", "update_us_per_sample_epoch", "bare_fwd_bwd_us_per_sample", "update_vs_bare",
    "update_gflops", "bare_gflops", "eval_steps_per_s", "eval_vs_collect", "eval_train_steps_per_s",
    "eval_train_vs_collect", "eval_sampled_steps_per_s", "eval_sampled_vs_collect", "peak_rss_main_mb", "peak_rss_worker_mb", "rss_after_iteration_mb", "rss_growth_mb", "cores", "env_workers", "torch_threads",
}


def test_quick_benchmark_writes_every_field(tmp_path):
    out = tmp_path / "bench.json"
    result = bench.main(["--quick", "--iterations", "2", "--out", str(out), "env.meta_batch_size=10"])
    saved = json.loads(out.read_text())
    assert FIELDS <= set(saved)
    assert saved == json.loads(json.dumps(result))
    for key in ("raw_steps_per_s", "env_steps_per_s", "collect_steps_per_s", "train_steps_per_s", "eval_steps_per_s",
                "eval_train_steps_per_s", "eval_sampled_steps_per_s", "bare_fwd_bwd_us_per_sample", "peak_rss_main_mb", "peak_rss_worker_mb"):
        assert saved[key] > 0, key
    assert 0 < saved["update_share"] < 1
    assert len(saved["rss_after_iteration_mb"]) == 2
    assert abs(saved["collect_ratio"] - saved["collect_steps_per_s"] / saved["raw_steps_per_s"]) < 1e-9
    assert len(saved["collect_steps_per_s_by_iteration"]) == 2
    for key in ("eval", "eval_train", "eval_sampled"):
        assert len(saved[f"{key}_steps_per_s_between_iterations"]) == 1, key
    # the evaluation between the two iterations against the mean of their collection rates
    (evaluation,), collect = saved["eval_steps_per_s_between_iterations"], saved["collect_steps_per_s_by_iteration"]
    assert abs(saved["eval_vs_collect"] - evaluation / (sum(collect) / 2)) < 1e-9


def test_benchmark_needs_two_iterations(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--quick", "--iterations", "1"])
    assert exit_info.value.code != 0
    assert "needs at least 2" in capsys.readouterr().err
