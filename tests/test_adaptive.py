"""Adaptive stopping: the batch-means estimator, the online stopper, config keys, and the runner path."""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import statistics
import time

import pandas as pd
import pytest
import yaml

from conftest import FakeClock, FakeGPU
from harness.config import STOP_KEYS
from harness.errors import ConfigError
from harness.measuring import adaptive, store
from harness.measuring.adaptive import AdaptiveStopper, Segment, StopRule, batch_means, should_stop, t_quantile
from harness.measuring.energy import ZeusMeter
from harness.measuring.steady import SteadyTracker, llm_metrics, steady_bounds
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study
from harness.workloads.base import RequestRecord, WindowMeasurement, WorkloadResult
from harness.workloads.trivial import TrivialBackend


# --- the estimator ------------------------------------------------------------------------------------
def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 5, 9, 10, 19, 29, 60):
        for confidence in (0.9, 0.95, 0.99):
            assert t_quantile(confidence, df) == pytest.approx(stats.t.ppf((1 + confidence) / 2, df), rel=1e-9)
    with pytest.raises(ValueError, match="integer df >= 1"):
        t_quantile(0.95, 0)


def _segments(energies, tokens, t0=100.0, dt=1.0):
    return [
        Segment(t0 + i * dt, t0 + (i + 1) * dt, e, n) for i, (e, n) in enumerate(zip(energies, tokens, strict=False))
    ]


def test_batch_means_on_a_known_series():
    # 6 segments in 3 batches of 2: batch values 300/30, 420/30, 360/30 = 10, 14, 12 J/token
    segs = _segments([100, 200, 220, 200, 180, 180], [15, 15, 10, 20, 15, 15])
    est = batch_means(segs, num_batches=3)
    assert est.quantity == "energy_per_token_joules"
    assert est.value == pytest.approx(1080 / 90)  # window energy / window tokens
    sd = statistics.stdev([10.0, 14.0, 12.0])
    assert est.halfwidth == pytest.approx(t_quantile(0.95, 2) * sd / math.sqrt(3))
    assert est.rel_halfwidth == pytest.approx(est.halfwidth / est.value)
    assert (est.num_batches, est.window_s, est.output_tokens) == (3, 6.0, 90)


def test_uneven_batches_and_what_is_not_computable():
    # 7 segments in 3 batches: sizes 3, 2, 2
    segs = _segments([30, 30, 30, 20, 20, 40, 40], [3, 3, 3, 2, 2, 4, 4])
    est = batch_means(segs, num_batches=3)
    assert est.halfwidth == 0.0 and est.value == pytest.approx(10.0)
    assert batch_means(segs[:2], num_batches=3) is None  # fewer segments than batches
    assert batch_means(_segments([1, 1, 1], [5, 0, 5]), num_batches=3) is None  # a batch without tokens
    with pytest.raises(ValueError, match="num_batches must be at least 2"):
        batch_means(segs, num_batches=1)


def test_without_energy_the_quantity_is_time_per_token():
    segs = _segments([None] * 4, [10, 10, 20, 20], dt=0.5)
    est = batch_means(segs, num_batches=2)
    assert est.quantity == "time_per_token_s" and est.value == pytest.approx(2.0 / 60)


def test_confidence_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = random.Random(7)
    covered, runs = 0, 600
    for _ in range(runs):
        segs = _segments([rng.gauss(100.0, 15.0) for _ in range(40)], [10] * 40)  # true value 10 J/token
        est = batch_means(segs, num_batches=10)
        covered += abs(est.value - 10.0) <= est.halfwidth
    assert 0.92 <= covered / runs <= 0.98


def test_stop_rule_needs_every_condition():
    rule = StopRule(method="adaptive", rel_halfwidth=0.02, min_window_s=10.0, num_batches=2, min_finishes=4)
    good = adaptive.Estimate("energy_per_token_joules", 1.0, 0.01, 0.01, 2, 12.0, 100, 0.95)
    assert should_stop(good, rule, finishes_in_window=4)
    assert not should_stop(good, rule, finishes_in_window=3)
    assert not should_stop(good.__class__(**{**good.as_dict(), "window_s": 9.0}), rule, 4)
    assert not should_stop(good.__class__(**{**good.as_dict(), "rel_halfwidth": 0.03}), rule, 4)
    assert not should_stop(None, rule, 4)
    assert not should_stop(good, StopRule(method="fixed"), 100)
    with pytest.raises(ValueError, match="unknown stop method 'sometimes'"):
        StopRule(method="sometimes")
    assert StopRule(min_window_s=20.0, num_batches=10).period_s == 1.0
    assert StopRule(min_window_s=0.4, num_batches=10).period_s == pytest.approx(0.02)


# --- the online stopper -----------------------------------------------------------------------------
def _drive(rule, fake_nvml, watts, tokens_per_s=100, max_num_seqs=2, num_requests=50, seconds=60.0, dt=0.1):
    """Feed a tracker + stopper with a fake GPU drawing ``watts(t)``; returns (stopper, tracker, meter, clock, gpu)."""
    clock = FakeClock(1000.0)
    gpu = FakeGPU([(990.0, 100.0)], clock=clock)
    fake_nvml([gpu])
    meter = ZeusMeter([0], clock=clock)
    tracker = SteadyTracker.for_meter(meter, max_num_seqs, num_requests)
    stopper = AdaptiveStopper(rule, meter, tracker, clock=clock)
    for _ in range(max_num_seqs):
        stopper.tokens(1)
        tracker.first_token(clock())
    finished, t_end = 0, clock() + seconds
    while clock() < t_end and tracker.state == "open":
        gpu.set_power(watts(clock()))
        clock.advance(dt)
        stopper.tokens(int(tokens_per_s * dt))
        if int(clock() - 1000.0) > finished and finished < num_requests:  # one finish a second
            finished += 1
            tracker.finished(clock())
        if stopper.poll():
            break
    return stopper, tracker, meter, clock, gpu


def test_stopper_stops_once_stable_and_closes_the_window_there(fake_nvml):
    rng = random.Random(3)
    rule = StopRule(
        method="adaptive", rel_halfwidth=0.02, min_window_s=10.0, num_batches=5, checkpoint_s=1.0, min_finishes=2
    )
    stopper, tracker, meter, clock, gpu = _drive(rule, fake_nvml, lambda t: 300.0 + rng.gauss(0, 30))
    assert stopper.stopped and stopper.stopped_by == "adaptive" and tracker.state == "closed"
    steady = meter.windows["steady"]
    assert steady.end_time_s == stopper.stop_time_s == tracker.close_time_s
    est = stopper.estimate
    assert est.window_s >= 10.0 and est.rel_halfwidth <= 0.02
    # the segments tile the window and their energy is the trace's
    segs = stopper.segments
    assert segs[0].start_time_s == steady.start_time_s and segs[-1].end_time_s == steady.end_time_s
    assert sum(s.gpu_energy_joules for s in segs) == pytest.approx(steady.total_gpu_energy_joules, rel=1e-6)
    assert sum(s.output_tokens for s in segs) == est.output_tokens
    assert est.value == pytest.approx(
        gpu.energy_joules_between(steady.start_time_s, steady.end_time_s) / est.output_tokens, rel=1e-3
    )
    assert clock() - 1000.0 < 60.0  # it did stop before the load ran out
    summary = stopper.summary()
    assert summary["stopped_by"] == "adaptive" and summary["estimate"]["rel_halfwidth"] == est.rel_halfwidth
    assert len(summary["segments"]["output_tokens"]) == len(segs)
    assert adaptive.SEGMENT_WINDOW not in meter.open_windows()


def test_a_noisy_series_runs_longer_and_fixed_never_stops(fake_nvml):
    rule = dict(rel_halfwidth=0.02, min_window_s=5.0, num_batches=5, checkpoint_s=1.0, min_finishes=0)
    quiet = _drive(StopRule(method="adaptive", **rule), fake_nvml, lambda t: 300.0)[0]
    rng = random.Random(1)
    noisy = _drive(StopRule(method="adaptive", **rule), fake_nvml, lambda t: 300.0 * rng.choice([0.5, 1.5]))[0]
    assert quiet.stopped and quiet.estimate.window_s == pytest.approx(5.0)
    assert not noisy.stopped or noisy.estimate.window_s > quiet.estimate.window_s
    fixed, tracker, *_ = _drive(StopRule(method="fixed", **rule), fake_nvml, lambda t: 300.0, seconds=20.0)
    assert not fixed.stopped and fixed.stopped_by is None and tracker.state == "open"
    assert fixed.estimate is not None and fixed.estimate.rel_halfwidth == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["adaptive", "fixed"])
def test_a_window_that_closes_first_stops_an_adaptive_run_there(fake_nvml, method):
    rule = StopRule(method=method, rel_halfwidth=0.001, min_window_s=1.0, num_batches=2, checkpoint_s=1.0)
    rng = random.Random(5)
    stopper, tracker, meter, _clock, _ = _drive(rule, fake_nvml, lambda t: 300.0 + rng.gauss(0, 90), num_requests=8)
    assert tracker.state == "closed" and stopper.estimate is not None
    assert stopper.segments[-1].end_time_s == meter.windows["steady"].end_time_s
    if method == "adaptive":  # the load stops at the drain point: the tail is not run
        assert stopper.stopped and stopper.poll() and stopper.stopped_by == "window-closed"
        assert stopper.stop_time_s == tracker.close_time_s
    else:  # fixed: every request is drained
        assert not stopper.stopped and not stopper.poll() and stopper.stopped_by == "fixed-count"
        assert stopper.summary()["stop_time_s"] is None


# --- post-hoc accounting of an early stop ------------------------------------------------------------
def _request(rid, tokens, finish, target=None):
    return RequestRecord(
        request_id=rid,
        prompt_tokens=10,
        target_output_tokens=target or len(tokens),
        output_tokens=len(tokens),
        submit_time_s=0.0,
        first_token_time_s=tokens[0] if tokens else None,
        finish_time_s=finish,
        token_times_s=list(tokens),
    )


def test_early_stop_accounting():
    # 4 requests, M = 2: steady opens at t=1 (second first token); stopped at t=4.5 before any drain
    requests = [
        _request(0, [0.5, 1.5, 2.5], 2.5),
        _request(1, [1.0, 2.0, 3.0, 4.0, 5.0], 5.0, target=9),
        _request(2, [2.6, 3.6], 3.6),
        _request(3, [3.7, 4.7], 4.7, target=20),
    ]
    assert adaptive.mark_stopped(requests, 4.5) == 2
    assert [r.error == adaptive.STOPPED_ERROR for r in requests] == [False, True, False, True]
    assert requests[1].finish_time_s is None and requests[1].output_tokens == 5
    assert steady_bounds(requests, 2, stop_time_s=4.5) == (1.0, 4.5)
    assert steady_bounds(requests, 2) is None  # without the stop time the window never closed
    steady = WindowMeasurement("steady", 1.0, 4.5, {0: 70.0}, {}, {}, "fake")
    metrics, _rows = llm_metrics(requests, {"steady": steady}, 2, stop_time_s=4.5)
    assert metrics["num_stopped_requests"] == 2 and metrics["num_failed_requests"] == 0
    # tokens in (1.0, 4.5]: r0 1.5, 2.5; r1 2.0, 3.0, 4.0; r2 2.6, 3.6; r3 3.7 -> 8
    assert metrics["steady_output_tokens"] == 8 and metrics["energy_per_token_joules"] == pytest.approx(70.0 / 8)
    assert metrics["avg_output_len"] == pytest.approx((3 + 9 + 2 + 20) / 4)  # planned lengths
    assert metrics["energy_per_output_joules"] == pytest.approx(70.0 / 8 * 8.5)


# --- config ------------------------------------------------------------------------------------------
def _write(tmp_path, **block):
    run = {
        "task": "cpu-trivial",
        "backend": "trivial",
        "models": ["cpu-spin"],
        "num_requests": 8,
        "grid": {"max_num_seqs": [2]},
    }
    run.update(block)
    run = {k: v for k, v in run.items() if v is not None}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": "s", "runs": [run]}))
    return path


def test_config_stop_keys_and_run_ids(tmp_path):
    fixed = load_study(_write(tmp_path)).configurations[0]
    assert fixed.stop == "fixed" and fixed.adaptive_rel_halfwidth is None
    # fixed-count ids are computed as before the stop keys existed
    payload = {k: v for k, v in fixed.as_dict().items() if k not in {"study", *STOP_KEYS}}
    old_id = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert fixed.run_id == old_id
    assert load_study(_write(tmp_path, stop="fixed")).configurations[0].run_id == old_id
    ada = load_study(_write(tmp_path, stop="adaptive")).configurations[0]
    assert (ada.stop, ada.adaptive_rel_halfwidth, ada.adaptive_min_window_s, ada.adaptive_batches) == (
        "adaptive",
        0.02,
        20.0,
        10,
    )
    assert ada.run_id != old_id and "(adaptive stop)" in ada.label()
    tighter = load_study(_write(tmp_path, stop="adaptive", adaptive_rel_halfwidth=0.01)).configurations[0]
    assert tighter.run_id != ada.run_id
    rule = StopRule.from_config(tighter)
    assert (rule.method, rule.rel_halfwidth, rule.min_finishes) == ("adaptive", 0.01, 2)


@pytest.mark.parametrize(
    "block, where, text",
    [
        ({"stop": "sometimes"}, "runs[0].stop", "must be one of fixed, adaptive"),
        ({"adaptive_rel_halfwidth": 0.05}, "runs[0].adaptive_rel_halfwidth", "only applies with stop: adaptive"),
        ({"stop": "adaptive", "adaptive_rel_halfwidth": 0}, "runs[0].adaptive_rel_halfwidth", "between 0 and 1"),
        ({"stop": "adaptive", "adaptive_rel_halfwidth": "2%"}, "runs[0].adaptive_rel_halfwidth", "between 0 and 1"),
        ({"stop": "adaptive", "adaptive_min_window_s": -1}, "runs[0].adaptive_min_window_s", "must be a number >= 0"),
        ({"stop": "adaptive", "adaptive_batches": 1}, "runs[0].adaptive_batches", "integer >= 2"),
        (
            {
                "task": "text-to-image",
                "backend": "diffusers",
                "models": ["tiny-sd3"],
                "num_requests": None,
                "grid": {"batch_size": [1]},
                "stop": "adaptive",
            },
            "runs[0].stop",
            "does not apply to a diffusion task",
        ),
    ],
)
def test_bad_stop_keys_name_the_field(tmp_path, block, where, text):
    path = _write(tmp_path, **block)  # a key given as None is left out
    with pytest.raises(ConfigError) as err:
        load_study(path)
    assert f"{where}: " in str(err.value) and text in str(err.value)


# --- the runner path (trivial backend) ---------------------------------------------------------------
def _config(tmp_path, **block):
    run = {
        "task": "cpu-trivial",
        "backend": "trivial",
        "models": ["cpu-spin"],
        "num_requests": 600,
        "max_output_tokens": 24,
        "options": {"step_s": 0.001, "work_rounds": 2},
        "grid": {"max_num_seqs": [4]},
    }
    run.update(block)
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({"study": "a", "settings": {"idle_power_s": 0}, "runs": [run]}))
    return path


def _measure(path, results):
    counts = measure_study(load_study(path), results, progress=False, out=io.StringIO())
    assert counts == {"ok": 1}
    run_dir = next(store.iter_run_dirs(results, "a"))
    return json.loads((run_dir / "run.json").read_text()), run_dir


def test_runner_adaptive_run_on_a_fake_gpu_stops_early_with_exact_accounting(tmp_path, fake_nvml, monkeypatch):
    gpu = FakeGPU([(time.time() - 10, 60.0)])
    fake_nvml([gpu])
    original = TrivialBackend.run

    def run(self, cfg, meter) -> WorkloadResult:
        gpu.set_power(300.0)
        try:
            return original(self, cfg, meter)
        finally:
            gpu.set_power(60.0)

    monkeypatch.setattr(TrivialBackend, "run", run)
    record, run_dir = _measure(
        _config(tmp_path, stop="adaptive", adaptive_min_window_s=0.3, adaptive_rel_halfwidth=0.05), tmp_path / "r"
    )
    m, stop = record["metrics"], record["stop"]
    assert m["stop_method"] == "adaptive" and m["stopped_by"] == "adaptive" == stop["stopped_by"]
    assert m["stop_estimate_quantity"] == "energy_per_token_joules"
    assert m["stop_estimate_rel_halfwidth"] <= 0.05
    assert m["energy_per_token_halfwidth_joules"] == pytest.approx(stop["estimate"]["halfwidth"])
    assert m["num_stopped_requests"] > 0 and m["num_failed_requests"] == 0
    steady = record["windows"]["steady"]
    assert adaptive.SEGMENT_WINDOW not in record["windows"] and "stop" not in record["backend_info"]
    # the steady window closes right after the last checkpoint, before the run window does (order, not distance)
    assert stop["stop_time_s"] <= steady["end_time_s"] <= record["windows"]["run"]["end_time_s"]
    online = record["backend_info"]["steady_bounds_online"]
    assert online == [m["steady_open_time_s"], m["steady_close_time_s"]] and online[1] == stop["stop_time_s"]
    # exact: the counter difference between the steady window's own two reads (see FakeGPU.reads_within)
    first, last = gpu.reads_within(steady["start_time_s"], steady["end_time_s"])
    assert m["gpu_energy_joules"] == pytest.approx((last[2] - first[2]) / 1000.0, abs=1e-9)
    assert m["energy_per_token_joules"] == pytest.approx(m["gpu_energy_joules"] / m["steady_output_tokens"])
    # the stopper's own estimate: its segments' energy over their tokens, exactly
    seg = stop["segments"]
    assert stop["estimate"]["value"] == pytest.approx(sum(seg["gpu_energy_joules"]) / sum(seg["output_tokens"]))
    # ... and each segment's energy is the counter difference of its own two reads: inside the steady window the
    # run's thread reads the counter at the window's open, at each segment's open and close, and at its close
    reads = [r for r in gpu.reads if r[0] == first[0] and first[1] <= r[1] <= last[1]]
    assert len(reads) == 2 + 2 * len(seg["gpu_energy_joules"])
    pairs = reads[1:-1]
    assert seg["gpu_energy_joules"] == pytest.approx(
        [(b[2] - a[2]) / 1000.0 for a, b in zip(pairs[::2], pairs[1::2], strict=False)], abs=1e-9
    )
    # ... and their tokens are the window's (tokens are counted in the thread that closes the segments)
    assert abs(sum(seg["output_tokens"]) - m["steady_output_tokens"]) <= 4  # max_num_seqs: one step's tokens
    requests = pd.read_parquet(run_dir / "requests.parquet")
    assert (requests["error"] == adaptive.STOPPED_ERROR).sum() == m["num_stopped_requests"]
    assert m["steady_output_tokens"] == requests["steady_output_tokens"].sum()
    assert m["total_output_tokens"] < requests["target_output_tokens"].sum()  # the load did not drain
    assert store.verify(run_dir) == []


def test_runner_fixed_run_drains_and_a_backend_without_the_hook_says_so(tmp_path, no_nvml, monkeypatch):
    record, _ = _measure(_config(tmp_path, num_requests=40), tmp_path / "r1")
    m = record["metrics"]
    assert (m["stop_method"], m["stopped_by"], m["num_stopped_requests"]) == ("fixed", "fixed-count", 0)
    assert record["stop"]["stop_time_s"] is None

    # adaptive with a target it cannot reach: the load stops where the window closes (M - 1 requests left)
    record, run_dir = _measure(
        _config(tmp_path, num_requests=40, stop="adaptive", adaptive_rel_halfwidth=1e-6), tmp_path / "r3"
    )
    m = record["metrics"]
    assert (m["stopped_by"], m["num_stopped_requests"], m["num_failed_requests"]) == ("window-closed", 3, 0)
    assert (
        record["stop"]["stop_time_s"] == m["steady_close_time_s"] == record["backend_info"]["steady_bounds_online"][1]
    )
    requests = pd.read_parquet(run_dir / "requests.parquet")
    assert m["avg_output_len"] == pytest.approx(requests["target_output_tokens"].mean())

    original = TrivialBackend.run

    def no_hook(self, cfg, meter):
        result = original(self, cfg, meter)
        result.info.pop("stop")
        return result

    monkeypatch.setattr(TrivialBackend, "run", no_hook)
    record, _ = _measure(_config(tmp_path, num_requests=40, stop="adaptive"), tmp_path / "r2")
    assert record["metrics"]["stopped_by"] == "fixed-count"
    assert "stop: adaptive was not honoured" in record["stop"]["note"]


# --- the benchmarks' building blocks (benchmarks/) ----------------------------------------------------
def test_benchmark_metrics_page_reads_as_vllm_gauges():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import overhead
    from harness.measuring.telemetry import parse_vllm_metrics

    page = overhead.vllm_like_metrics()
    assert parse_vllm_metrics(page) == {
        "num_requests_running": 8.0,
        "num_requests_waiting": 24.0,
        "kv_cache_usage_fraction": pytest.approx(0.4213),
    }
    assert len(page) > 20_000  # histograms and process metrics, like a real vLLM page
