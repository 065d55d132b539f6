"""Steady-state bounds, per-token and per-request energy, diffusion per-output energy, validity flags."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.measuring import arrivals
from harness.measuring.arrivals import Arrival
from harness.measuring.steady import SteadyTracker, diffusion_metrics, llm_metrics, steady_bounds, validity
from harness.workloads.base import IterationRecord, RequestRecord, WindowMeasurement


def _request(rid, tokens, finish=None):
    """A request whose output tokens arrived at ``tokens`` (seconds)."""
    return RequestRecord(
        request_id=rid,
        prompt_tokens=10,
        target_output_tokens=len(tokens),
        output_tokens=len(tokens),
        submit_time_s=0.0,
        first_token_time_s=tokens[0] if tokens else None,
        finish_time_s=finish if finish is not None else (tokens[-1] if tokens else None),
        token_times_s=list(tokens),
    )


def _window(name, start, end, joules):
    gpu = dict(enumerate(joules)) if joules is not None else {}
    return WindowMeasurement(
        name=name,
        start_time_s=start,
        end_time_s=end,
        gpu_energy_joules=gpu,
        cpu_energy_joules={},
        dram_energy_joules={},
        energy_source="fake",
    )


def test_tracker_opens_at_mth_first_token_and_closes_when_batch_cannot_fill():
    calls = []
    tracker = SteadyTracker(2, 5, on_open=lambda: calls.append("open"), on_close=lambda: calls.append("close"))
    tracker.first_token(1.0)
    assert tracker.state == "waiting"
    tracker.first_token(2.0)
    assert (tracker.state, tracker.open_time_s, calls) == ("open", 2.0, ["open"])
    for t in (3.0, 4.0, 5.0):  # N - M = 3 finishes: 2 requests remain, the batch is still full
        tracker.finished(t)
    assert tracker.state == "open"
    tracker.finished(6.0)  # the 4th finish leaves 1 < M
    assert (tracker.state, tracker.bounds, calls) == ("closed", (2.0, 6.0), ["open", "close"])
    tracker.finished(7.0)
    assert calls == ["open", "close"]


def test_tracker_misses_when_the_batch_never_fills():
    assert SteadyTracker(8, 4).state == "missed"  # fewer requests than max_num_seqs
    tracker = SteadyTracker(2, 3)
    tracker.first_token(1.0)
    tracker.finished(2.0)
    tracker.finished(3.0)  # 2 finishes = N - M + 1 before the 2nd first token
    tracker.first_token(4.0)
    assert tracker.state == "missed" and tracker.bounds is None


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=12))
def test_post_hoc_bounds_match_an_independent_definition_and_the_online_tracker(m, spans):
    requests = [_request(i, [float(a)], finish=float(a + b)) for i, (a, b) in enumerate(spans)]
    n = len(requests)
    firsts = sorted(r.first_token_time_s for r in requests)
    finishes = sorted(r.finish_time_s for r in requests)
    expected = None
    if n >= m and firsts[m - 1] <= finishes[n - m]:
        expected = (firsts[m - 1], finishes[n - m])
    assert steady_bounds(requests, m) == expected

    online = SteadyTracker(m, n)
    events = sorted([(r.first_token_time_s, 0) for r in requests] + [(r.finish_time_s, 1) for r in requests])
    for t, kind in events:
        (online.finished if kind else online.first_token)(t)
    assert online.bounds == expected


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.floats(0.0, 0.9),
    st.lists(st.tuples(st.integers(1, 50), st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12),
)
def test_every_arrival_pattern_replays_its_own_window(m, concurrency, warmup, spans):
    """All-at-once is the steady window; fixed concurrency is the steady window at min(C, M); a rate opens at the
    ceil(warmup x N)-th submission and closes at the last one (independent definitions, one replay)."""
    requests = [_request(i, [float(s + a)], finish=float(s + a + b)) for i, (s, a, b) in enumerate(spans)]
    for r, (s, _, _) in zip(requests, spans, strict=False):
        r.submit_time_s = float(s)
    n = len(requests)
    assert arrivals.steady_bounds(requests, Arrival(), m) == steady_bounds(requests, m)
    conc = Arrival("concurrency", concurrency=concurrency)
    assert arrivals.steady_bounds(requests, conc, m) == steady_bounds(requests, min(concurrency, m))
    sends = sorted(r.submit_time_s for r in requests)
    open_at = max(1, math.ceil(warmup * n))
    expected = (sends[open_at - 1], sends[-1]) if open_at < n else None
    assert arrivals.steady_bounds(requests, Arrival("poisson", rate_per_s=1.0, warmup_fraction=warmup), m) == expected


def _llm_trace():
    # N = 4 requests, M = 2. Tokens every second; request 2 and 3 are admitted as 0 and 1 finish.
    return [
        _request(0, [1.0, 2.0, 3.0]),
        _request(1, [1.5, 2.5, 3.5, 4.5, 5.5]),
        _request(2, [4.0, 5.0, 6.0, 7.0]),
        _request(3, [6.0, 7.0, 8.0]),
    ]


def test_llm_energy_per_token_and_per_request_on_a_known_trace():
    requests = _llm_trace()
    assert steady_bounds(requests, 2) == (1.5, 7.0)  # 2nd first token; 3rd finish (N - M + 1)
    # the meter opened 0.1 s after the opening event and closed 0.1 s after the closing one
    window = _window("steady", 1.6, 7.1, [150.0, 90.0])
    metrics, rows = llm_metrics(requests, {"steady": window}, max_num_seqs=2)
    # tokens in (1.6, 7.1]: r0: 2, 3 | r1: 2.5, 3.5, 4.5, 5.5 | r2: 4, 5, 6, 7 | r3: 6, 7
    assert metrics["steady_output_tokens"] == 12
    assert [r["steady_output_tokens"] for r in rows] == [2, 4, 4, 2]
    assert metrics["gpu_energy_joules"] == 240.0
    assert metrics["energy_per_token_joules"] == 20.0
    assert metrics["avg_output_len"] == 15 / 4
    assert metrics["energy_per_output_joules"] == 20.0 * 15 / 4
    assert [r["energy_per_request_joules"] for r in rows] == [60.0, 100.0, 80.0, 60.0]
    assert metrics["avg_power_watts"] == pytest.approx(240.0 / 5.5)
    assert metrics["steady_duration_s"] == pytest.approx(5.5)
    assert metrics["output_throughput_tokens_per_sec"] == pytest.approx(12 / 5.5)
    # running (first token .. finish) inside [1.6, 7.1]: r0 1.4 s, r1 3.9 s, r2 3.0 s, r3 1.1 s
    assert metrics["avg_batch_size"] == pytest.approx((1.4 + 3.9 + 3.0 + 1.1) / 5.5)
    assert metrics["batch_saturation"] == pytest.approx(9.4 / 5.5 / 2)
    # every inter-token gap ending inside the window is 1 s
    assert metrics["median_itl_ms"] == pytest.approx(1000.0) and metrics["p99_itl_ms"] == pytest.approx(1000.0)
    assert "energy_per_request_joules" not in metrics  # one fact, once: the table names it as the reference does


def test_llm_metrics_without_energy_are_null_not_zero():
    window = _window("steady", 1.6, 7.1, None)
    metrics, rows = llm_metrics(_llm_trace(), {"steady": window}, max_num_seqs=2)
    assert metrics["energy_per_token_joules"] is None and metrics["avg_power_watts"] is None
    assert all(r["energy_per_request_joules"] is None for r in rows)
    assert metrics["steady_output_tokens"] == 12  # times and tokens are still measured


def test_token_times_are_interpolated_when_not_streamed():
    r = RequestRecord(
        request_id=0,
        prompt_tokens=1,
        target_output_tokens=5,
        output_tokens=5,
        submit_time_s=0.0,
        first_token_time_s=1.0,
        finish_time_s=3.0,
    )
    metrics, _ = llm_metrics([r], {"steady": _window("steady", 0.9, 3.0, [10.0])}, max_num_seqs=1)
    assert metrics["steady_output_tokens"] == 5 and metrics["median_itl_ms"] == pytest.approx(500.0)


def test_diffusion_energy_per_image_is_iteration_energy_over_batch():
    iterations = [
        IterationRecord(index=i, start_time_s=10.0 * i, end_time_s=10.0 * i + 4.0, batch_size=4, outputs=4)
        for i in range(3)
    ]
    windows = {
        f"iter-{i}": _window(f"iter-{i}", 10.0 * i, 10.0 * i + 4.0, [j, j])
        for i, j in enumerate([1000.0, 1100.0, 1200.0])
    }
    metrics, rows = diffusion_metrics(iterations, windows, "image")
    assert [r["energy_per_image_joules"] for r in rows] == [500.0, 550.0, 600.0]
    assert metrics["energy_per_image_joules"] == pytest.approx(550.0)
    assert metrics["energy_per_output_joules"] == metrics["energy_per_image_joules"]
    assert metrics["batch_latency_s"] == pytest.approx(4.0)
    assert metrics["avg_power_watts"] == pytest.approx(6600.0 / 12.0)
    assert metrics["throughput_outputs_per_sec"] == pytest.approx(1.0)


GOOD = {
    "steady_open_time_s": 1.0,
    "steady_duration_s": 30.0,
    "batch_saturation": 0.95,
    "avg_power_watts": 1200.0,
    "energy_source": "zeus/nvml-energy-counter",
}


@pytest.mark.parametrize(
    "change, code, text",
    [
        ({"steady_duration_s": 12.5}, "steady-duration", "steady state lasted 12.5 s (< 20 s)"),
        ({"batch_saturation": 0.80}, "batch-saturation", "batch saturation 0.80 (< 0.85)"),
        ({"avg_power_watts": 100.0}, "power-range", "average power 50.0 W per GPU is not above idle (70.0 W)"),
        ({"avg_power_watts": 1500.0}, "power-range", "average power 750.0 W per GPU exceeds the power limit (700 W)"),
        ({"avg_power_watts": None}, "energy-missing", "no GPU energy"),
        ({"steady_open_time_s": None, "steady_duration_s": None}, "no-steady-state", "no steady state"),
    ],
)
def test_each_validity_check_can_fail(change, code, text):
    stable, reason, codes = validity(
        GOOD | change,
        is_llm=True,
        on_gpu=True,
        max_num_seqs=8,
        num_gpus=2,
        idle_power_watts=[70.0, 70.0],
        power_limit_watts=[700.0, 700.0],
        coverage=0.9,
    )
    assert (stable, codes) == (False, [code]) and reason.startswith(text)


def test_validity_passes_and_flags_telemetry():
    kwargs = dict(
        is_llm=True,
        on_gpu=True,
        max_num_seqs=8,
        num_gpus=2,
        idle_power_watts=[70.0, 70.0],
        power_limit_watts=[700.0, 700.0],
    )
    assert validity(GOOD, coverage=0.9, **kwargs) == (True, "", [])
    assert validity(GOOD, coverage=0.5, **kwargs)[2] == ["telemetry-coverage"]
    stable, reason, codes = validity(GOOD, coverage=0.9, sampler_errors=3, **kwargs)
    assert (stable, codes, reason) == (False, ["telemetry-errors"], "telemetry sampler raised 3 time(s)")


def test_on_a_cpu_host_the_gpu_rules_are_not_applied_and_say_so():
    metrics = GOOD | {"steady_duration_s": 0.3, "avg_power_watts": None, "energy_source": "none: no NVIDIA GPU"}
    stable, reason, codes = validity(metrics, is_llm=True, on_gpu=False, max_num_seqs=8, coverage=None)
    assert stable and codes == []
    assert "steady-state >= 20 s rule not applied on a CPU host" in reason
    assert "energy checks skipped (energy is null: none: no NVIDIA GPU)" in reason
    # saturation still applies on the CPU
    assert validity(metrics | {"batch_saturation": 0.5}, is_llm=True, on_gpu=False, max_num_seqs=8)[2] == [
        "batch-saturation"
    ]
