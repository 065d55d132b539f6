"""Steady windows and run metrics on small hand-worked loads: every figure of ``llm_metrics`` and
``diffusion_metrics`` against a value worked out by hand in the comments, and ``validity``'s words."""

from __future__ import annotations

import pytest

from harness.measuring import steady
from harness.measuring.adaptive import STOPPED_ERROR
from harness.measuring.energy import WindowMeasurement
from harness.measuring.windows import SteadyTracker, WindowTracker
from harness.workloads.base import IterationRecord, RequestRecord

# --- trackers -----------------------------------------------------------------------------------------


def test_a_steady_tracker_opens_at_the_mth_first_token_and_closes_at_the_n_minus_m_plus_1th_finish():
    log = []
    tracker = SteadyTracker(2, 4, on_open=lambda: log.append("open"), on_close=lambda: log.append("close"))
    assert (tracker.state, tracker.close_after, tracker.bounds) == ("waiting", 3, None)
    tracker.first_token(1.0)
    assert tracker.state == "waiting"
    tracker.finished(1.2)  # a finish before the window opens counts towards the close
    tracker.first_token(1.5)
    assert (tracker.state, tracker.open_time_s, log) == ("open", 1.5, ["open"])
    tracker.first_token(1.7)
    tracker.finished(2.0)
    assert tracker.state == "open"
    tracker.finished(3.0)
    assert (tracker.state, tracker.bounds, log) == ("closed", (1.5, 3.0), ["open", "close"])
    tracker.finished(4.0)
    tracker.stop_early(5.0)
    assert (tracker.bounds, tracker.first_tokens, tracker.finishes, log) == ((1.5, 3.0), 3, 4, ["open", "close"])


def test_a_batch_that_never_fills_is_missed():
    assert SteadyTracker(4, 3).state == "missed"  # fewer requests than the batch
    tracker = SteadyTracker(3, 4)
    tracker.first_token(1.0)
    tracker.finished(2.0)
    tracker.first_token(2.5)
    assert tracker.state == "waiting"
    tracker.finished(3.0)  # 2 finishes: the 2 left can no longer fill a batch of 3
    assert tracker.state == "missed" and tracker.bounds is None
    tracker.first_token(3.5)
    tracker.first_token(3.6)
    assert tracker.state == "missed"
    exact = SteadyTracker(3, 3)
    for t in (1.0, 2.0, 3.0):
        exact.first_token(t)
    exact.finished(4.0)
    assert exact.bounds == (3.0, 4.0)
    for bad in ((0, 3), (3, 0)):
        with pytest.raises(ValueError, match="max_num_seqs and num_requests must be positive"):
            SteadyTracker(*bad)


def test_stopping_early_closes_an_open_window_only():
    tracker = SteadyTracker(1, 5)
    tracker.stop_early(0.5)
    assert tracker.state == "waiting"
    tracker.first_token(1.0)
    tracker.stop_early(2.0)
    assert tracker.bounds == (1.0, 2.0)
    base = WindowTracker(False)
    assert base.state == "missed"
    base.first_token(1.0)
    base.finished(2.0)
    assert (base.first_tokens, base.finishes, base.bounds) == (1, 1, None)


def test_for_meter_opens_and_closes_the_named_window():
    class Meter:
        def __init__(self):
            self.calls = []

        def begin(self, name):
            self.calls.append(("begin", name))

        def end(self, name):
            self.calls.append(("end", name))

    meter = Meter()
    tracker = SteadyTracker.for_meter(meter, 1, 1, name="w")
    tracker.first_token(1.0)
    tracker.finished(2.0)
    assert meter.calls == [("begin", "w"), ("end", "w")] and tracker.max_num_seqs == 1
    default = SteadyTracker.for_meter(meter, 1, 2)
    default.first_token(1.0)
    assert meter.calls[-1] == ("begin", "steady")


def _rec(i, first, finish, tokens, submit=0.0, output=None, target=None, success=True, error=None):
    n = len(tokens) if output is None else output
    return RequestRecord(i, 10, n if target is None else target, n, submit, first, finish, list(tokens), success, error)


# r0..r2 succeed, r3 failed before its first token; M = 2, N = 4
LOAD = [
    _rec(0, 1.0, 3.0, [1.0, 2.0, 3.0]),
    _rec(1, 1.5, 5.0, [1.5, 3.0, 4.5, 5.0]),
    _rec(2, 3.5, 6.0, [3.5, 6.0]),
    _rec(3, None, None, [], output=0, target=5, success=False, error="boom"),
]


def test_post_hoc_bounds():
    # first tokens 1.0, 1.5, 3.5 and finishes 3.0, 5.0, 6.0: opens at the 2nd first token, closes at the 3rd finish
    assert steady.steady_bounds(LOAD, 2) == (1.5, 6.0)
    assert steady.steady_bounds(LOAD, 2, stop_time_s=4.0) == (1.5, 4.0)
    assert steady.steady_bounds(LOAD, 2, stop_time_s=1.2) is None
    assert steady.steady_bounds(LOAD, 3) == (3.5, 5.0)  # M = 3: closes at the (4 - 3 + 1) = 2nd finish
    assert steady.steady_bounds([], 2) is None
    # at equal times a first token comes before a finish
    tie = [_rec(0, 1.0, 2.0, [1.0, 2.0]), _rec(1, 2.0, 3.0, [2.0, 3.0])]
    assert steady.steady_bounds(tie, 2) == (2.0, 2.0)


def test_token_times():
    assert steady.token_times(_rec(0, 1.0, 2.0, [1.0, 1.5, 2.0])) == [1.0, 1.5, 2.0]
    spread = RequestRecord(0, 1, 5, 5, 0.0, 1.0, 3.0)
    assert steady.token_times(spread) == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert steady.token_times(RequestRecord(0, 1, 1, 1, 0.0, 1.0, 3.0)) == [1.0]
    assert steady.token_times(RequestRecord(0, 1, 4, 4, 0.0, 1.0, None)) == [1.0]
    assert steady.token_times(RequestRecord(0, 1, 4, 0, 0.0, 1.0, 3.0)) == []
    assert steady.token_times(RequestRecord(0, 1, 4, 3, 0.0, None, 3.0)) == []


def test_percentiles_interpolate_between_ranks():
    values = [2500.0, 500.0, 1500.0, 1000.0, 1500.0]
    assert steady._percentile(values, 0.5) == 1500.0
    assert steady._percentile(values, 0.9) == pytest.approx(2100.0)  # rank 3.6: 1500 + 0.6 x 1000
    assert steady._percentile(values, 0.0) == 500.0 and steady._percentile(values, 1.0) == 2500.0
    assert steady._percentile([7.0], 0.99) == 7.0 and steady._percentile([], 0.5) is None


WINDOW = WindowMeasurement("steady", 2.0, 6.0, {0: 45.0, 1: 45.0}, {0: 3.0, 1: 1.0}, {0: 2.0}, "zeus/test")


def test_llm_metrics_by_hand():
    metrics, rows = steady.llm_metrics(LOAD, {"steady": WINDOW, "run": WINDOW}, 2)
    # tokens in (2, 6]: r0 one (3.0), r1 three (3.0, 4.5, 5.0), r2 two (3.5, 6.0): 6 tokens, 90 J over 4 s
    # ITLs ending inside: 1000, 1500, 1500, 500, 2500 ms; TTFTs 1000, 1500, 3500 ms
    # busy time in the window: r0 2->3 (1.0), r1 2->5 (3.0), r2 3.5->6 (2.5): 6.5 s / 4 s = 1.625 running
    expected = {
        "num_requests": 4,
        "num_failed_requests": 1,
        "num_stopped_requests": 0,
        "total_output_tokens": 9,
        "avg_output_len": 3.0,
        "steady_open_time_s": 1.5,
        "steady_close_time_s": 6.0,
        "energy_source": "zeus/test",
        "steady_start_time_s": 2.0,
        "steady_end_time_s": 6.0,
        "steady_duration_s": 4.0,
        "steady_output_tokens": 6,
        "gpu_energy_joules": 90.0,
        "cpu_energy_joules": 4.0,
        "dram_energy_joules": None,  # package 1 has no DRAM
        "energy_per_token_joules": 15.0,
        "avg_power_watts": 22.5,
        "output_throughput_tokens_per_sec": 1.5,
        "avg_batch_size": 1.625,
        "batch_saturation": 0.8125,
        "median_itl_ms": 1500.0,
        "p90_itl_ms": pytest.approx(2100.0),
        "p95_itl_ms": pytest.approx(2300.0),
        "p99_itl_ms": pytest.approx(2460.0),
        "mean_ttft_ms": 2000.0,
        "median_ttft_ms": 1500.0,
        "p90_ttft_ms": pytest.approx(3100.0),
        "p99_ttft_ms": pytest.approx(3460.0),
        "energy_per_output_joules": 45.0,
        "avg_cpu_power_watts": 1.0,
        "avg_dram_power_watts": None,  # 4 J of CPU over 4 s; DRAM not whole
        "node_energy_joules": None,
        "node_energy_per_token_joules": None,
        "node_energy_per_output_joules": None,
        "gpu_share_of_node_fraction": None,  # node energy needs GPU, CPU and DRAM all measured
    }
    assert {k: metrics[k] for k in expected} == expected
    assert set(metrics) - set(expected) == {"node_energy_note"}
    assert [(r["request_id"], r["steady_output_tokens"], r["energy_per_request_joules"]) for r in rows] == [
        (0, 1, 45.0),
        (1, 3, 60.0),
        (2, 2, 30.0),
        (3, 0, 0.0),
    ]
    assert rows[0] == {
        "request_id": 0,
        "prompt_tokens": 10,
        "target_output_tokens": 3,
        "output_tokens": 3,
        "submit_time_s": 0.0,
        "first_token_time_s": 1.0,
        "finish_time_s": 3.0,
        "success": True,
        "error": None,
        "steady_output_tokens": 1,
        "energy_per_request_joules": 45.0,
        "token_times_s": [1.0, 2.0, 3.0],
    }
    assert rows[3]["error"] == "boom" and rows[3]["success"] is False and rows[3]["token_times_s"] == []


def test_llm_metrics_without_a_window_use_the_event_bounds_and_no_energy():
    metrics, rows = steady.llm_metrics(LOAD, {}, 2)
    # bounds (1.5, 6.0): tokens in (1.5, 6]: r0 2.0, 3.0; r1 3.0, 4.5, 5.0; r2 3.5, 6.0 = 7 over 4.5 s
    assert metrics["energy_source"] == "none: no steady-state window was measured"
    assert (metrics["steady_start_time_s"], metrics["steady_end_time_s"], metrics["steady_duration_s"]) == (
        1.5,
        6.0,
        4.5,
    )
    assert metrics["steady_output_tokens"] == 7 and metrics["output_throughput_tokens_per_sec"] == pytest.approx(
        7 / 4.5
    )
    for key in (
        "gpu_energy_joules",
        "cpu_energy_joules",
        "dram_energy_joules",
        "energy_per_token_joules",
        "avg_power_watts",
        "energy_per_output_joules",
    ):
        assert metrics[key] is None, key
    # busy: r0 1.5->3 (1.5), r1 1.5->5 (3.5), r2 3.5->6 (2.5) = 7.5 s over 4.5 s
    assert metrics["avg_batch_size"] == pytest.approx(7.5 / 4.5)
    assert all(r["energy_per_request_joules"] is None for r in rows)
    assert metrics["median_itl_ms"] == 1250.0  # ITLs 1000, 1000, 1500, 1500, 500, 2500: between 1000 and 1500


def test_llm_metrics_without_any_window():
    metrics, rows = steady.llm_metrics(LOAD[:1], {}, 2)  # one request never fills a batch of 2
    assert metrics["steady_open_time_s"] is None and metrics["steady_close_time_s"] is None
    for key in (
        "steady_start_time_s",
        "steady_end_time_s",
        "steady_duration_s",
        "output_throughput_tokens_per_sec",
        "avg_batch_size",
        "batch_saturation",
    ):
        assert metrics[key] is None, key
    assert metrics["steady_output_tokens"] == 0 and rows[0]["steady_output_tokens"] == 0
    assert metrics["median_itl_ms"] == 1000.0 and metrics["p99_itl_ms"] == 1000.0  # every ITL counts without a window
    assert metrics["mean_ttft_ms"] == 1000.0
    empty, _ = steady.llm_metrics([LOAD[3]], {}, 1)
    assert empty["avg_output_len"] is None and empty["mean_ttft_ms"] is None and empty["median_ttft_ms"] is None


def test_a_window_whose_gpu_counter_is_missing_has_no_energy():
    window = WindowMeasurement("steady", 2.0, 6.0, {0: 45.0, 1: None}, {0: None}, {}, "partial")
    metrics, _ = steady.llm_metrics(LOAD, {"steady": window}, 2)
    assert metrics["gpu_energy_joules"] is None and metrics["energy_per_token_joules"] is None
    assert metrics["cpu_energy_joules"] is None and metrics["dram_energy_joules"] is None
    assert metrics["avg_power_watts"] is None and metrics["energy_source"] == "partial"
    zero_tokens = WindowMeasurement("steady", 10.0, 11.0, {0: 5.0}, {}, {}, "late")
    metrics, _ = steady.llm_metrics(LOAD, {"steady": zero_tokens}, 2)
    assert metrics["steady_output_tokens"] == 0 and metrics["energy_per_token_joules"] is None
    assert metrics["avg_power_watts"] == 5.0 and metrics["avg_batch_size"] == 0.0


def test_stopped_requests_are_neither_failures_nor_short_outputs():
    load = [
        _rec(0, 1.0, 3.0, [1.0, 2.0, 3.0], target=3),
        _rec(1, 1.5, 5.0, [1.5, 3.0, 4.5, 5.0], target=4),
        _rec(2, 3.5, None, [3.5], target=9, success=False, error=STOPPED_ERROR),
        _rec(3, None, None, [], output=0, target=5, success=False, error="boom"),
    ]
    metrics, _ = steady.llm_metrics(load, {"steady": WINDOW}, 2, stop_time_s=5.5)
    assert (metrics["num_failed_requests"], metrics["num_stopped_requests"]) == (1, 1)
    assert metrics["avg_output_len"] == pytest.approx((3 + 4 + 9) / 3)  # planned lengths of the ones not failed
    assert metrics["steady_close_time_s"] == 5.5  # the replay closes the window where the run stopped
    assert metrics["energy_per_output_joules"] == pytest.approx(metrics["energy_per_token_joules"] * 16 / 3)


def test_a_poisson_load_uses_its_own_window_saturation_and_goodput():
    load = [
        _rec(i, 1.0 + i + 0.5, 1.0 + i + 2.0, [1.0 + i + 0.5, 1.0 + i + 1.0, 1.0 + i + 2.0], submit=1.0 + i)
        for i in range(5)
    ]
    info = {
        "pattern": "poisson",
        "rate_per_s": 1.0,
        "warmup_fraction": 0.4,
        "ttft_target_ms": 600.0,
        "itl_target_ms": None,
    }
    metrics, _ = steady.llm_metrics(load, {}, 8, load=info)
    # arrivals at 1..5: opens at the ceil(0.4 x 5) = 2nd (t = 2), closes at the last (t = 5)
    assert (metrics["steady_open_time_s"], metrics["steady_close_time_s"]) == (2.0, 5.0)
    assert metrics["arrival_pattern"] == "poisson"
    # busy in (2, 5]: r0 1.5->3 (1.0), r1 2.5->4 (1.5), r2 3.5->5 (1.5), r3 4.5->5 (0.5) = 4.5 s over 3 s
    assert metrics["avg_batch_size"] == pytest.approx(1.5) and metrics["batch_saturation"] == pytest.approx(1.5 / 8)
    assert metrics["num_good_requests"] == 5 and metrics["slo_attainment_fraction"] == 1.0
    assert metrics["goodput_requests_per_sec"] == pytest.approx(1.0)  # finishes at 3, 4 and 5 inside (2, 5]
    conc, _ = steady.llm_metrics(load, {}, 8, load={"pattern": "concurrency", "concurrency": 2})
    assert conc["arrival_pattern"] == "concurrency" and "num_good_requests" not in conc
    # concurrency 2: opens at the 2nd first token (2.5), closes at the 4th finish (6.0)
    assert (conc["steady_open_time_s"], conc["steady_close_time_s"]) == (2.5, 6.0)
    assert conc["batch_saturation"] == pytest.approx(conc["avg_batch_size"] / 2)
    plain, _ = steady.llm_metrics(load, {}, 2, load={"ttft_target_ms": 400.0})
    assert plain["arrival_pattern"] == "all-at-once" and plain["num_good_requests"] == 0
    assert plain["batch_saturation"] == pytest.approx(plain["avg_batch_size"] / 2)


def test_llm_node_energy_over_the_steady_window():
    whole = WindowMeasurement("steady", 2.0, 6.0, {0: 45.0, 1: 45.0}, {0: 3.0, 1: 1.0}, {0: 2.0, 1: 4.0}, "zeus/t")
    metrics, _ = steady.llm_metrics(LOAD, {"steady": whole, "run": whole}, 2)
    # GPU 90 J + CPU 4 J + DRAM 6 J = 100 J over the 4 s window; 6 tokens; 9 tokens / 3 requests = 3 per response
    assert {k: metrics[k] for k in ("cpu_energy_joules", "dram_energy_joules", "node_energy_joules")} == {
        "cpu_energy_joules": 4.0,
        "dram_energy_joules": 6.0,
        "node_energy_joules": 100.0,
    }
    assert (metrics["avg_cpu_power_watts"], metrics["avg_dram_power_watts"]) == (1.0, 1.5)
    assert metrics["node_energy_per_token_joules"] == pytest.approx(100.0 / 6)
    assert metrics["node_energy_per_output_joules"] == pytest.approx(50.0)  # 6 tokens are 2 responses of 3
    assert metrics["gpu_share_of_node_fraction"] == pytest.approx(0.9)


def test_diffusion_node_energy_needs_every_iteration_measured():
    its = [IterationRecord(0, 5.0, 9.0, 4, 4), IterationRecord(1, 10.0, 12.0, 4, 4)]
    windows = {
        "iter-0": WindowMeasurement("iter-0", 5.0, 8.0, {0: 100.0}, {0: 6.0}, {0: 4.0}, "zeus/a"),
        "iter-1": WindowMeasurement("iter-1", 10.0, 12.0, {0: 120.0}, {0: 9.0}, {0: 1.0}, "zeus/a"),
    }
    metrics, _ = steady.diffusion_metrics(its, windows, "image")
    # GPU 220 J + CPU 15 J + DRAM 5 J = 240 J over 3 + 2 = 5 s, for 8 images
    assert (metrics["cpu_energy_joules"], metrics["dram_energy_joules"], metrics["node_energy_joules"]) == (
        15.0,
        5.0,
        240.0,
    )
    assert (metrics["avg_cpu_power_watts"], metrics["avg_dram_power_watts"]) == (3.0, 1.0)
    assert metrics["node_energy_per_output_joules"] == 30.0
    assert metrics["gpu_share_of_node_fraction"] == pytest.approx(220.0 / 240.0)
    one, _ = steady.diffusion_metrics(its, {"iter-0": windows["iter-0"]}, "image")
    assert one["cpu_energy_joules"] is None and one["node_energy_joules"] is None  # iteration 1 not measured


# CPU package, DRAM and node energy beside GPU energy (harness.measuring.node): none of them measured here
NODE_KEYS = {
    "cpu_energy_joules",
    "dram_energy_joules",
    "avg_cpu_power_watts",
    "avg_dram_power_watts",
    "node_energy_joules",
    "node_energy_per_image_joules",
    "node_energy_per_video_joules",
    "node_energy_per_output_joules",
    "node_energy_per_token_joules",
    "gpu_share_of_node_fraction",
    "node_energy_note",
}


def test_diffusion_metrics_by_hand():
    its = [IterationRecord(1, 10.0, 12.0, 4, 4), IterationRecord(0, 5.0, 9.0, 4, 4)]
    windows = {
        "iter-0": WindowMeasurement("iter-0", 5.0, 8.0, {0: 100.0}, {}, {}, "zeus/a"),
        "iter-1": WindowMeasurement("iter-1", 10.0, 12.0, {0: 60.0, 1: 60.0}, {}, {}, "zeus/b"),
    }
    metrics, rows = steady.diffusion_metrics(its, windows, "image")
    # iteration 0: 100 J over 3 s (the window), iteration 1: 120 J over 2 s; 4 images each
    assert {k: metrics[k] for k in metrics if k not in NODE_KEYS} == {
        "num_iterations": 2,
        "batch_size": 4,
        "batch_latency_s": 2.5,
        "gpu_energy_joules": 220.0,
        "avg_power_watts": 44.0,
        "throughput_outputs_per_sec": 1.6,
        "energy_per_image_joules": 27.5,
        "energy_per_output_joules": 27.5,
        "energy_source": "zeus/b",
        "steady_start_time_s": 5.0,
        "steady_end_time_s": 12.0,
    }
    assert all(metrics[k] is None for k in NODE_KEYS - {"node_energy_note"} if k in metrics)
    assert rows == [
        {
            "index": 0,
            "start_time_s": 5.0,
            "end_time_s": 9.0,
            "batch_size": 4,
            "outputs": 4,
            "duration_s": 3.0,
            "energy_joules": 100.0,
            "energy_per_image_joules": 25.0,
        },
        {
            "index": 1,
            "start_time_s": 10.0,
            "end_time_s": 12.0,
            "batch_size": 4,
            "outputs": 4,
            "duration_s": 2.0,
            "energy_joules": 120.0,
            "energy_per_image_joules": 30.0,
        },
    ]


def test_diffusion_metrics_without_energy():
    its = [IterationRecord(0, 5.0, 9.0, 2, 2), IterationRecord(1, 10.0, 11.0, 2, 2)]
    metrics, rows = steady.diffusion_metrics(
        its, {"iter-1": WindowMeasurement("iter-1", 10.0, 11.0, {}, {}, {}, "none: x")}, "video"
    )
    assert metrics["gpu_energy_joules"] is None and metrics["energy_per_video_joules"] is None
    assert metrics["avg_power_watts"] is None and metrics["energy_source"] == "none: x"
    assert metrics["batch_latency_s"] == 2.5 and metrics["throughput_outputs_per_sec"] == 0.8
    assert rows[0]["duration_s"] == 4.0 and rows[0]["energy_per_video_joules"] is None
    empty, _ = steady.diffusion_metrics([], {}, "image")
    assert {k: empty[k] for k in empty if k not in NODE_KEYS} == {
        "num_iterations": 0,
        "batch_size": None,
        "batch_latency_s": None,
        "gpu_energy_joules": None,
        "avg_power_watts": None,
        "throughput_outputs_per_sec": None,
        "energy_per_image_joules": None,
        "energy_per_output_joules": None,
        "energy_source": "none: no iteration window was measured",
        "steady_start_time_s": None,
        "steady_end_time_s": None,
    }


# --- validity -------------------------------------------------------------------------------------------

STABLE = {
    "steady_duration_s": 25.0,
    "steady_open_time_s": 1.0,
    "batch_saturation": 0.9,
    "avg_power_watts": 400.0,
    "energy_source": "zeus/nvml-energy-counter",
}


def test_a_stable_gpu_run():
    assert steady.validity(
        STABLE,
        is_llm=True,
        on_gpu=True,
        max_num_seqs=8,
        num_gpus=2,
        idle_power_watts=[60.0, None],
        power_limit_watts=[700.0],
        coverage=0.75,
    ) == (True, "", [])


@pytest.mark.parametrize(
    "change, kw, codes, reason",
    [
        ({"steady_duration_s": 19.9}, {}, ["steady-duration"], "steady state lasted 19.9 s (< 20 s)"),
        ({"batch_saturation": 0.84}, {}, ["batch-saturation"], "batch saturation 0.84 (< 0.85)"),
        (
            {"steady_duration_s": None},
            {},
            ["no-steady-state"],
            "no steady state: max_num_seqs=8 requests never ran together",
        ),
        (
            {"steady_open_time_s": None},
            {},
            ["no-steady-state"],
            "no steady state: max_num_seqs=8 requests never ran together",
        ),
        ({"avg_power_watts": 120.0}, {}, ["power-range"], "average power 60.0 W per GPU is not above idle (60.0 W)"),
        (
            {"avg_power_watts": 1402.0},
            {},
            ["power-range"],
            "average power 701.0 W per GPU exceeds the power limit (700 W)",
        ),
        ({"avg_power_watts": None}, {}, ["energy-missing"], "no GPU energy (zeus/nvml-energy-counter)"),
        ({}, {"coverage": 0.74}, ["telemetry-coverage"], "telemetry coverage 74% (< 75%)"),
        ({}, {"sampler_errors": 2}, ["telemetry-errors"], "telemetry sampler raised 2 time(s)"),
    ],
)
def test_each_check_fails_alone_with_its_words(change, kw, codes, reason):
    args = (
        dict(
            is_llm=True,
            on_gpu=True,
            max_num_seqs=8,
            num_gpus=2,
            idle_power_watts=[60.0],
            power_limit_watts=[700.0, None, 750.0],
            coverage=0.9,
        )
        | kw
    )
    assert steady.validity(dict(STABLE, **change), **args) == (False, reason, codes)


def test_the_bounds_themselves_pass():
    args = dict(
        is_llm=True,
        on_gpu=True,
        max_num_seqs=8,
        num_gpus=1,
        idle_power_watts=[60.0],
        power_limit_watts=[700.0],
        coverage=0.75,
    )
    assert steady.validity(dict(STABLE, steady_duration_s=20.0, batch_saturation=0.85, avg_power_watts=700.0), **args)[
        0
    ]
    assert steady.validity(dict(STABLE, avg_power_watts=60.01), **args)[0]


def test_several_failures_and_notes_in_order():
    ok, reason, codes = steady.validity(
        dict(STABLE, steady_duration_s=5.0, batch_saturation=0.5, avg_power_watts=0.0),
        is_llm=True,
        on_gpu=True,
        max_num_seqs=4,
        coverage=None,
        sampler_errors=1,
    )
    assert not ok and codes == ["steady-duration", "batch-saturation", "power-range", "telemetry-errors"]
    assert reason == (
        "steady state lasted 5.0 s (< 20 s); batch saturation 0.50 (< 0.85); average power 0.0 W per GPU "
        "is not above idle (0.0 W); telemetry sampler raised 1 time(s); idle power unknown: power only "
        "checked against 0 W; telemetry coverage not checked (window shorter than 10 samples)"
    )


def test_a_cpu_run_is_stable_and_says_what_was_not_checked():
    metrics = dict(STABLE, steady_duration_s=2.0, avg_power_watts=None, energy_source="none: no GPU")
    assert steady.validity(metrics, is_llm=True, on_gpu=False, max_num_seqs=8, coverage=0.9) == (
        True,
        "steady-state >= 20 s rule not applied on a CPU host; energy checks skipped (energy is null: none: no GPU)",
        [],
    )
    diffusion = steady.validity(
        {"avg_power_watts": 300.0}, is_llm=False, on_gpu=True, idle_power_watts=[50.0], coverage=0.8
    )
    assert diffusion == (True, "", [])


def test_a_poisson_load_is_not_held_to_batch_saturation():
    metrics = dict(STABLE, batch_saturation=0.1, arrival_pattern="poisson")
    assert steady.validity(
        metrics, is_llm=True, on_gpu=True, max_num_seqs=8, idle_power_watts=[60.0], coverage=0.9
    ) == (True, "batch-saturation check not applied to a load at a rate (poisson arrivals)", [])
    unknown = dict(STABLE, batch_saturation=None)
    assert steady.validity(unknown, is_llm=True, on_gpu=True, max_num_seqs=8, idle_power_watts=[60.0], coverage=0.9)[0]


# --- the edges the mutation run found untested ------------------------------------------------------------


def test_trackers_count_every_event_and_start_with_no_times():
    base = WindowTracker(True)
    assert (base.open_time_s, base.close_time_s, base.state) == (None, None, "waiting")
    for t in (1.0, 2.0, 3.0):
        base.first_token(t)
        base.finished(t)
    assert (base.first_tokens, base.finishes, base.state) == (3, 3, "waiting")  # the base class never opens by itself
    with pytest.raises(ValueError) as err:  # noqa: PT011
        SteadyTracker(0, 1)
    assert str(err.value) == "max_num_seqs and num_requests must be positive"


def test_an_event_at_the_stop_time_still_counts():
    assert steady.steady_bounds(LOAD, 2, stop_time_s=1.5) == (1.5, 1.5)  # the 2nd first token opens it, then it stops
    metrics, _ = steady.llm_metrics(LOAD, {}, 2, stop_time_s=1.5)
    assert (metrics["steady_open_time_s"], metrics["steady_close_time_s"]) == (1.5, 1.5)


def test_a_request_with_no_tokens_and_no_finish_has_no_token_times():
    assert steady.token_times(RequestRecord(0, 1, 4, 0, 0.0, 1.0, None)) == []


def test_percentiles_interpolate_between_neighbours_only():
    assert steady._percentile([0.0, 10.0, 20.0, 30.0, 40.0], 0.3) == pytest.approx(12.0)  # rank 1.2: 10 + 0.2 x 10


def test_one_token_in_the_window_has_an_energy_per_token():
    window = WindowMeasurement("steady", 2.5, 3.2, {0: 7.0}, {}, {}, "zeus")  # holds r0's token at 3.0 only
    reqs = [_rec(0, 1.0, 3.0, [1.0, 2.0, 3.0]), _rec(1, 1.5, 5.0, [1.5, 4.5, 5.0])]
    metrics, _ = steady.llm_metrics(reqs, {"steady": window}, 2)
    assert metrics["steady_output_tokens"] == 1 and metrics["energy_per_token_joules"] == 7.0


def test_failed_requests_have_no_ttft_and_a_request_without_a_first_token_is_skipped_not_the_end():
    died = _rec(5, 1.2, None, [1.2], submit=0.0, success=False, error="server died")  # a first token, then it failed
    never = _rec(6, None, None, [], output=0, success=False, error="refused")
    metrics, _ = steady.llm_metrics([never, *LOAD[:3], died], {"steady": WINDOW}, 2)
    assert metrics["mean_ttft_ms"] == 2000.0  # 1000, 1500, 3500: the failed request's 1200 is left out
    # busy in (2, 6]: r0 1.0, r1 3.0, r2 2.5 and the failed one from 2 to the window's end (4.0): 10.5 s over 4 s
    assert metrics["avg_batch_size"] == pytest.approx(10.5 / 4)


def test_a_stopped_poisson_run_and_goodput_energy():
    load = [
        _rec(i, 1.0 + i + 0.5, 1.0 + i + 2.0, [1.0 + i + 0.5, 1.0 + i + 1.0, 1.0 + i + 2.0], submit=1.0 + i)
        for i in range(5)
    ]
    info = {"pattern": "poisson", "rate_per_s": 1.0, "warmup_fraction": 0.4, "ttft_target_ms": 600.0}
    metrics, _ = steady.llm_metrics(load, {}, 8, stop_time_s=4.0, load=info)
    assert (metrics["steady_open_time_s"], metrics["steady_close_time_s"]) == (
        2.0,
        4.0,
    )  # stopped before the last arrival
    window = WindowMeasurement("steady", 2.0, 5.0, {0: 30.0}, {}, {}, "zeus")
    metrics, _ = steady.llm_metrics(
        load, {"steady": window}, 8, load=dict(info, ttft_target_ms=None, itl_target_ms=1e6)
    )
    # every request meets a target of a million ms: the energy per good request is the energy per request
    assert metrics["energy_per_good_request_joules"] == pytest.approx(metrics["energy_per_output_joules"])
    assert metrics["energy_per_output_joules"] is not None and metrics["num_good_requests"] == 5


def test_diffusion_edges():
    single = [IterationRecord(0, 5.0, 9.0, 3, 3)]
    metrics, _ = steady.diffusion_metrics(
        single, {"iter-0": WindowMeasurement("iter-0", 5.0, 5.5, {0: 30.0}, {}, {}, "z")}, "image"
    )
    assert metrics["batch_size"] == 3 and metrics["avg_power_watts"] == 60.0  # 30 J over 0.5 s
    uneven = [IterationRecord(0, 0.0, 1.0, 4, 4), IterationRecord(1, 1.0, 2.0, 2, 2)]
    assert steady.diffusion_metrics(uneven, {}, "image")[0]["batch_size"] == 4  # the first iteration's batch
    instant = {"iter-0": WindowMeasurement("iter-0", 5.0, 5.0, {0: 30.0}, {}, {}, "z")}
    assert steady.diffusion_metrics(single, instant, "image")[0]["avg_power_watts"] is None  # no time: no power


def test_validity_counts_one_gpu_unless_told():
    metrics = dict(STABLE, avg_power_watts=800.0)
    ok, reason, codes = steady.validity(
        metrics,
        is_llm=True,
        on_gpu=True,
        max_num_seqs=8,
        idle_power_watts=[60.0],
        power_limit_watts=[700.0],
        coverage=0.9,
    )
    assert (ok, codes) == (False, ["power-range"]) and reason.startswith("average power 800.0 W per GPU exceeds")
