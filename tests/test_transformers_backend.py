"""transformers backend: random-weight tiny Llama, static batching, forced lengths, records, OOM cause."""

from __future__ import annotations

import itertools
import os

import pytest

from harness.config import configuration_from_dict
from harness.workloads.base import WorkloadError
from support import REFERENCE_DIR as REF
from support import RecordingMeter, llm_configuration


def _cfg(**over):
    return llm_configuration(
        **(
            dict(
                study="t",
                task="gpqa",
                family="llm-reasoning",
                backend="transformers",
                precision="float32",
                seed=4,
                max_num_seqs=3,
                num_requests=7,
                max_output_tokens=20,
                options={"output_length_scale": 0.004, "max_prompt_tokens": 40},
            )
            | over
        )
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One tiny-llama served once for the module's checks."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    if "HARNESS_REFERENCE_DIR" not in os.environ and REF.is_dir():
        mp.setenv("HARNESS_REFERENCE_DIR", str(REF))
    from harness.workloads.transformers_backend import TransformersBackend

    cfg = _cfg()
    backend = TransformersBackend()
    run_dir = tmp_path_factory.mktemp("run")
    backend.start(cfg, run_dir)
    meter = RecordingMeter()
    result = backend.run(cfg, meter)
    yield cfg, backend, meter, result, run_dir
    backend.stop()
    mp.undo()


def test_every_request_gets_its_forced_length_and_token_times(served):
    _, backend, _, result, _ = served
    reqs = result.requests
    assert len(reqs) == 7 and all(r.success for r in reqs)
    assert [r.target_output_tokens for r in reqs] == list(backend.plan.output_tokens)
    assert [r.output_tokens for r in reqs] == [r.target_output_tokens for r in reqs]
    assert [r.prompt_tokens for r in reqs] == list(backend.plan.prompt_tokens)
    for r in reqs:
        assert len(r.token_times_s) == r.output_tokens
        assert r.token_times_s == sorted(r.token_times_s) and len(set(r.token_times_s)) == len(r.token_times_s)
        assert r.submit_time_s < r.first_token_time_s == r.token_times_s[0] and r.finish_time_s == r.token_times_s[-1]


def test_static_batching_admits_the_next_batch_only_after_the_last_one_drained(served):
    _, _, _, result, _ = served
    reqs = result.requests
    batches = [reqs[0:3], reqs[3:6], reqs[6:7]]
    for earlier, later in itertools.pairwise(batches):
        assert max(r.finish_time_s for r in earlier) < min(r.first_token_time_s for r in later)
        assert len({r.first_token_time_s for r in later}) == 1  # prefilled together


def test_steady_window_and_metrics(served):
    from harness.measuring import steady

    cfg, _backend, meter, result, run_dir = served
    assert ("begin", "steady") in meter.events and ("end", "steady") in meter.events
    assert meter.events[0] == ("begin", "run") and meter.events[-1] == ("end", "run")
    assert result.info["steady_tracker_state"] == "closed" and result.info["weights"].startswith("random")
    metrics, _rows = steady.llm_metrics(result.requests, result.windows, cfg.max_num_seqs)
    assert metrics["steady_output_tokens"] > 0 and metrics["median_itl_ms"] > 0
    assert metrics["energy_per_token_joules"] is None  # no counter: never 0 J
    assert 0 < metrics["batch_saturation"] <= 1
    assert "static batching" in result.info["engine"]
    assert "batch of 3 requests" in (run_dir / "server.log").read_text()


def test_unsupported_layouts_and_options_are_refused(tmp_path):
    from harness.workloads.transformers_backend import TransformersBackend

    for over, cause in [
        (dict(precision="fp8"), "unsupported"),
        (dict(num_gpus=2, tensor_parallel=2), "unsupported"),
        (dict(options={"batch": 3}), "bad-option"),
        (dict(options={"device": "cuda"}), None),
    ]:
        import torch

        if cause is None and torch.cuda.is_available():
            continue
        with pytest.raises(WorkloadError) as err:
            TransformersBackend().start(_cfg(**over), tmp_path)
        assert err.value.cause == (cause or "unsupported")


def test_out_of_memory_fails_the_run_with_cause_oom(served, monkeypatch):
    import torch

    cfg, backend, _, _, _ = served

    def boom(**kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(backend, "_forward", boom)
    with pytest.raises(WorkloadError) as err:
        backend.run(cfg, RecordingMeter())
    assert err.value.cause == "oom" and "max_num_seqs=3" in str(err.value)
    assert "out of memory" in err.value.log_tail


def test_real_weights_from_a_local_folder_replace_the_random_ones(served, tmp_path):
    """The same architecture with weights saved to a folder (as a downloaded checkpoint would be)."""
    import shutil

    import torch

    from harness.workloads import archs
    from harness.workloads.transformers_backend import TransformersBackend

    _, backend, _, _, _ = served
    folder = tmp_path / "checkpoint"
    backend.model.save_pretrained(folder)
    generated = archs.materialize_llm("tiny-llama")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(generated / name, folder / name)
    info = archs.llm_folder("tiny-llama", str(folder))
    assert not info.dummy and info.regular_ids == (2, 31999) and info.weights.startswith("real weights from")

    real = TransformersBackend()
    real_cfg = _cfg(
        num_requests=3, options={"output_length_scale": 0.004, "max_prompt_tokens": 40, "weights": str(folder)}
    )
    real.start(real_cfg, tmp_path / "run")
    try:
        name, saved = next(iter(backend.model.state_dict().items()))
        assert torch.equal(real.model.state_dict()[name], saved)
        result = real.run(real_cfg, RecordingMeter())
    finally:
        real.stop()
    assert result.info["weights"] == f"real weights from {folder}"
    assert [r.output_tokens for r in result.requests] == [r.target_output_tokens for r in result.requests]
    with pytest.raises(WorkloadError, match=r"has no config.json") as err:
        TransformersBackend().start(_cfg(options={"weights": str(tmp_path)}), tmp_path / "run2")
    assert err.value.cause == "bad-config"


def test_adaptive_stopping_ends_the_static_batches_early(served, tmp_path):
    """With stop: adaptive the load ends at the latest when the steady window closes: no drain tail.

    8 requests in static batches of 3: the window closes at the 6th finish, the last of the second batch, so
    the third batch is cut whether the estimate got stable before (``adaptive``, on a quiet host) or not
    (``window-closed``, on a loaded one). (With 9, the third batch's three requests have the same length
    and finish together: on a loaded host nothing was left to cut.)"""
    from harness.measuring import adaptive
    from harness.workloads.transformers_backend import TransformersBackend

    cfg = configuration_from_dict(
        _cfg(num_requests=8).as_dict()
        | dict(stop="adaptive", adaptive_rel_halfwidth=0.5, adaptive_min_window_s=0.05, adaptive_batches=2)
    )
    backend = TransformersBackend()
    backend.start(cfg, tmp_path)
    try:
        result = backend.run(cfg, RecordingMeter())
    finally:
        backend.stop()
    stop = result.info["stop"]
    assert stop["method"] == "adaptive" and stop["stopped_by"] in ("adaptive", "window-closed")
    cut = [r for r in result.requests if adaptive.is_stopped(r)]
    assert cut and result.info["stopped_requests"] == len(cut)
    assert all(r.finish_time_s is None and r.output_tokens < r.target_output_tokens for r in cut)
    done = [r for r in result.requests if r.success]
    assert done and all(r.finish_time_s <= stop["stop_time_s"] for r in done)
