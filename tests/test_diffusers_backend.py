"""diffusers backend: tiny random-weight pipelines run on the CPU; real-size ones have the published shape."""

from __future__ import annotations

import pytest

from harness.config import configuration_from_dict
from harness.workloads.base import WorkloadError
from support import RecordingMeter


def _cfg(**over):
    base = dict(
        study="t",
        task="text-to-image",
        family="text-to-image",
        backend="diffusers",
        model="tiny-sd3",
        num_gpus=1,
        tensor_parallel=1,
        expert_parallel=1,
        precision="bfloat16",
        max_num_seqs=None,
        max_num_batched_tokens=None,
        batch_size=2,
        inference_steps=3,
        height=64,
        width=64,
        num_frames=1,
        num_requests=None,
        num_iterations=2,
        seed=0,
        length_source=None,
        max_output_tokens=None,
        options={},
    )
    return configuration_from_dict(base | over)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harness-cache"))


def _run(cfg, run_dir):
    from harness.workloads.diffusers_backend import DiffusersBackend

    backend = DiffusersBackend()
    meter = RecordingMeter()
    try:
        backend.start(cfg, run_dir)
        result = backend.run(cfg, meter)
    finally:
        backend.stop()
    return result, meter


def test_tiny_image_pipeline_runs_timed_iterations_in_their_own_windows(tmp_path):
    from harness.measuring import steady

    cfg = _cfg()
    result, meter = _run(cfg, tmp_path)
    assert [it.index for it in result.iterations] == [0, 1]
    assert all(it.batch_size == 2 and it.outputs == 2 for it in result.iterations)
    # warm-up first, outside every window; then one window per iteration, nested in "run"
    assert meter.events == [
        ("begin", "run"),
        ("begin", "iter-0"),
        ("end", "iter-0"),
        ("begin", "iter-1"),
        ("end", "iter-1"),
        ("end", "run"),
    ]
    assert result.info["warmup_s"] > 0 and result.info["pipeline"] == "StableDiffusion3Pipeline"
    assert result.info["dtype"] == "float32" and result.info["precision_requested"] == "bfloat16"
    for it in result.iterations:
        w = result.windows[f"iter-{it.index}"]
        assert w.start_time_s <= it.start_time_s < it.end_time_s <= w.end_time_s
    metrics, rows = steady.diffusion_metrics(result.iterations, result.windows, "image")
    assert metrics["energy_per_image_joules"] is None  # no counter on this host: null, never 0 J
    assert metrics["batch_latency_s"] < 10 and len(rows) == 2
    assert "iter-1: 2 x (3, 64, 64)" in (tmp_path / "server.log").read_text()


def test_tiny_video_pipeline_makes_videos_of_the_asked_frames(tmp_path):
    cfg = _cfg(
        task="text-to-video",
        family="text-to-video",
        model="tiny-wan",
        batch_size=1,
        height=32,
        width=32,
        num_frames=5,
        num_iterations=1,
        inference_steps=2,
    )
    result, _ = _run(cfg, tmp_path)
    assert result.iterations[0].outputs == 1
    assert "(5, 3, 32, 32)" in (tmp_path / "server.log").read_text()
    assert result.info["pipeline"] == "WanPipeline" and result.info["parameters"]["transformer"] > 0


def test_knobs_the_pipeline_cannot_take_fail_the_run_with_a_cause(tmp_path):
    with pytest.raises(WorkloadError) as err:
        _run(_cfg(height=30, num_iterations=1), tmp_path)
    assert err.value.cause == "bad-config" and "height=30" in str(err.value)
    with pytest.raises(WorkloadError) as err:
        _run(_cfg(task="text-to-video", family="text-to-video"), tmp_path)  # an image pipeline
    assert err.value.cause == "bad-config"
    with pytest.raises(WorkloadError) as err:
        _run(_cfg(precision="fp8"), tmp_path)
    assert err.value.cause == "unsupported"


@pytest.mark.parametrize(
    "name, role, low, high",
    [
        ("sd3.5-medium", "transformer", 2.0e9, 2.6e9),
        ("flux.1-dev", "transformer", 11.8e9, 12.0e9),
        ("wan2.1-t2v-1.3b", "transformer", 1.3e9, 1.5e9),
        ("wan2.1-t2v-14b", "transformer", 14.0e9, 14.5e9),
        ("flux.1-dev", "text_encoder_2", 4.7e9, 4.8e9),  # T5-XXL encoder
    ],
)
def test_real_size_components_have_the_published_parameter_counts(name, role, low, high):
    """Built on the meta device: no memory, but every config key is checked by the real classes."""
    import torch

    from harness.workloads import archs
    from harness.workloads.diffusers_backend import build_component

    spec = archs.get(name).as_dict()["components"][role]
    module = build_component(spec, "meta", torch.bfloat16)
    assert low < sum(p.numel() for p in module.parameters()) < high
