"""The fidelity figures on small timelines worked out by hand: counter curves, slices and shares, the
intervals' notes, window sensitivity, the error budget's items and the tidy columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.measuring import fidelity
from harness.measuring.energy import WindowMeasurement
from harness.workloads.base import RequestRecord


def counters(rows) -> pd.DataFrame:
    """``[(time_s, gpu_index, cumulative joules or None), ...]`` as NVML timeline rows."""
    return pd.DataFrame(
        {
            "source": "nvml",
            "time_s": [r[0] for r in rows],
            "gpu_index": [r[1] for r in rows],
            "energy_counter_joules": [r[2] for r in rows],
        }
    )


def req(i, tokens, submit=0.0, finish=None):
    return RequestRecord(
        i,
        1,
        len(tokens),
        len(tokens),
        submit,
        tokens[0] if tokens else None,
        finish if finish is not None else (tokens[-1] if tokens else None),
        list(tokens),
    )


# --- the energy timeline ---------------------------------------------------------------------------------


def test_counter_curves_per_gpu_sorted_without_gaps():
    timeline = pd.concat(
        [
            counters([(2.0, 0, 20.0), (1.0, 0, 10.0), (3.0, 0, None), (4.0, 0, 40.0), (1.0, 1, 5.0), (9.0, 2, 1.0)]),
            pd.DataFrame({"source": ["host"], "time_s": [1.5], "gpu_index": [0], "energy_counter_joules": [999.0]}),
        ]
    )
    curves = fidelity.counter_curves(timeline)
    assert set(curves) == {0}  # GPU 1 and 2 have one sample each: no curve
    times, joules = curves[0]
    assert times.tolist() == [1.0, 2.0, 4.0] and joules.tolist() == [10.0, 20.0, 40.0]
    assert fidelity.counter_curves(None) == {} and fidelity.counter_curves(pd.DataFrame()) == {}
    assert fidelity.counter_curves(timeline.drop(columns="energy_counter_joules")) == {}
    assert fidelity.counter_curves(timeline.drop(columns="source")) == {}
    assert fidelity.counter_curves(timeline[timeline["source"] == "host"]) == {}


def test_counter_energy_interpolates_and_sums_over_gpus():
    curves = fidelity.counter_curves(counters([(0.0, 0, 0.0), (10.0, 0, 100.0), (0.0, 1, 50.0), (10.0, 1, 70.0)]))
    assert fidelity.counter_energy(curves, [2.5, 10.0]).tolist() == pytest.approx([25.0 + 55.0, 100.0 + 70.0])
    assert fidelity.counter_energy(curves, [0.0, 10.0]) is not None  # the ends themselves are inside
    assert fidelity.counter_energy(curves, [-0.5, 5.0]) is None and fidelity.counter_energy(curves, [5.0, 10.5]) is None
    assert fidelity.counter_energy({}, [1.0, 2.0]) is None
    timeline = counters([(0.0, 0, 0.0), (10.0, 0, 100.0)])
    assert fidelity.energy_between(timeline, 2.0, 6.0) == pytest.approx(40.0)
    assert fidelity.energy_between(timeline, 2.0, 12.0) is None


# --- bootstrap --------------------------------------------------------------------------------------------


def test_percentile_interval_and_bootstrap():
    values = list(range(101))
    assert fidelity._percentile_interval(values) == pytest.approx((2.5, 97.5))
    assert fidelity._percentile_interval(values, 0.5) == pytest.approx((25.0, 75.0))
    assert fidelity.bootstrap_ratio([2.0, 4.0], [1.0, 2.0]) == (2.0, 2.0)  # every resample has ratio 2
    assert fidelity.bootstrap_ratio([1.0], [1.0]) is None  # one unit
    assert fidelity.bootstrap_ratio([1.0, 2.0], [0.0, 0.0]) is None
    lo, hi = fidelity.bootstrap_ratio([1.0, 3.0], [1.0, 1.0], resamples=2000, seed=1)
    assert 1.0 <= lo < 2.0 < hi <= 3.0
    assert fidelity.bootstrap_ratio([1.0, 3.0], [1.0, 1.0], seed=1) == fidelity.bootstrap_ratio(
        [1.0, 3.0], [1.0, 1.0], seed=1
    )
    assert fidelity.bootstrap_mean([5.0, 5.0, 5.0]) == (5.0, 5.0)
    one_sided = fidelity.bootstrap_ratio([1.0, 1.0], [1.0, 0.0], resamples=50)
    assert one_sided is not None and one_sided[0] >= 1.0  # resamples whose tokens are all zero are left out


def test_slices_follow_the_first_gpus_ticks_else_a_grid():
    timeline = counters([(0.5, 0, 0.0), (1.2, 0, 1.0), (1.7, 0, 2.0), (3.0, 0, 3.0), (1.5, 1, 0.0)])
    assert fidelity._slices(1.0, 2.0, timeline, 0.1).tolist() == [1.0, 1.2, 1.7, 2.0]  # GPU 1's tick is not used
    assert fidelity._slices(1.0, 2.0, None, 0.25).tolist() == pytest.approx([1.0, 1.25, 1.5, 1.75, 2.0])
    assert fidelity._slices(1.0, 2.0, None, 0.3).tolist() == pytest.approx([1.0, 1.25, 1.5, 1.75, 2.0])  # ceil(3.33)
    assert fidelity._slices(1.0, 2.0, None, 5.0).tolist() == [1.0, 2.0]
    assert fidelity._slices(1.0, 1.2, timeline, 0.1).tolist() == pytest.approx([1.0, 1.1, 1.2])  # a tick on an edge


def test_shares_split_slices_by_tokens_and_carry_empty_slices_forward():
    # slices 0..3 hold 10, 20, 30, 40 J; tokens: slice 0 -> request 0, slice 2 -> requests 0 and 1
    shares = fidelity._share(np.array([10.0, 20.0, 30.0, 40.0]), np.array([0, 2, 2]), np.array([0, 0, 1]), 3)
    # slice 1 (no token) passes its 20 J on to slice 2 (50 J, 25 J a token); slice 3 back to slice 2 (+40: 45 each)
    assert shares.tolist() == [10.0 + 45.0, 45.0, 0.0]
    assert fidelity._share(np.array([5.0]), np.array([0]), np.array([1]), 2).tolist() == [0.0, 5.0]


# --- intervals ------------------------------------------------------------------------------------------------


def _identical(n=4, start=0.0):
    """n requests with a token every 0.1 s from ``start`` + 0.1 to ``start`` + 1.0."""
    return [req(i, [start + 0.1 * k for k in range(1, 11)]) for i in range(n)]


def test_llm_intervals_notes_and_an_exact_interval():
    method = "bootstrap over requests (1000 resamples, 95% percentile)"
    empty = {
        "method": method,
        "units": 0,
        "energy_per_token_joules": None,
        "output_throughput_tokens_per_sec": None,
        "energy_attribution": None,
        "note": "no measured window",
    }
    assert fidelity.llm_intervals(_identical(), None, 1.0, 10.0, None) == empty
    assert fidelity.llm_intervals(_identical(), 1.0, 1.0, 10.0, None) == empty
    assert fidelity.llm_intervals(_identical(), 0.5, None, 10.0, None) == empty
    assert fidelity.llm_intervals(_identical(), 5.0, 6.0, 10.0, None) == dict(
        empty, note="no output tokens in the window"
    )
    # four identical requests: every resample has the run's own ratio (40 J over 40 tokens; 40 tokens in 1 s)
    timeline = counters([(0.0, 0, 0.0), (1.0, 0, 40.0)])
    out = fidelity.llm_intervals(_identical(), 0.0, 1.0, 40.0, timeline)
    assert out["units"] == 4 and out["energy_slices"] == 10
    assert out["energy_per_token_joules"] == pytest.approx([1.0, 1.0])
    assert out["output_throughput_tokens_per_sec"] == pytest.approx([40.0, 40.0])
    assert out["energy_attribution"] == "NVML energy counter samples, shared by tokens per sampler tick"
    assert out["note"] is None
    spread = fidelity.llm_intervals(_identical(), 0.0, 1.0, 40.0, None)
    assert spread["energy_attribution"] == "window energy spread evenly over time (no counter samples in the timeline)"
    assert spread["energy_per_token_joules"] == pytest.approx([1.0, 1.0])


def test_llm_interval_notes_on_thin_data():
    few_ticks = fidelity.llm_intervals(_identical(), 0.0, 1.0, 40.0, None, step_s=0.5)
    assert few_ticks["energy_slices"] == 2
    assert few_ticks["note"] == (
        "the window spans only 2 sampler tick(s): requests in one tick share its energy alike, "
        "so the energy interval is too narrow"
    )
    no_energy = fidelity.llm_intervals(_identical(), 0.0, 1.0, None, None)
    assert (
        no_energy["note"] == "energy not measured: no interval on energy"
        and no_energy["energy_per_token_joules"] is None
    )
    assert no_energy["output_throughput_tokens_per_sec"] == pytest.approx([40.0, 40.0])
    assert no_energy["energy_attribution"] is None
    alone = fidelity.llm_intervals(_identical(1), 0.0, 1.0, 10.0, None)
    assert alone["units"] == 1 and alone["energy_per_token_joules"] is None
    assert alone["output_throughput_tokens_per_sec"] is None
    assert alone["note"] == "fewer than 2 requests with tokens in the window"


def test_the_shares_add_up_to_the_window_reading():
    # the counter says 30 J over the window, Zeus 60 J: the shares are scaled to Zeus' reading
    reqs = [req(0, [0.2, 0.4, 0.6, 0.8]), req(1, [0.5, 1.0])]
    out = fidelity.llm_intervals(reqs, 0.0, 1.0, 60.0, counters([(0.0, 0, 0.0), (1.0, 0, 30.0)]), step_s=0.1)
    lo, hi = out["energy_per_token_joules"]
    assert lo <= 60.0 / 6 <= hi and out["units"] == 2
    # tokens outside (start, end] are not counted: here the first token of request 0 at the window's start
    edge = fidelity.llm_intervals([req(0, [0.0, 0.5]), req(1, [0.5, 1.0])], 0.0, 1.0, 30.0, None)
    assert edge["units"] == 2


def test_gaps_as_wide_as_the_window_make_one_time_slice():
    # median gap 0.3 s: slices of 4 gaps (1.2 s) are wider than the 1 s window, so the window is one slice and its
    # second is shared by all 6 tokens alike: every request runs at 6 tokens/s, in every resample
    reqs = [req(0, [0.1, 0.4, 0.7, 1.0]), req(1, [0.05, 0.35])]
    out = fidelity.llm_intervals(reqs, 0.0, 1.0, None, None)
    assert out["output_throughput_tokens_per_sec"] == pytest.approx([6.0, 6.0])


def test_time_slices_do_not_depend_on_where_the_clock_starts():
    # 11 ms gaps: slices of 4 gaps (44 ms, 22 of them in the second) over the window, wherever it lies on the clock
    def load(t0):
        fast = req(0, [t0 + 0.011 * k for k in range(1, 41)])  # 0.011 .. 0.44
        slow = req(1, [t0 + 0.5 + 0.022 * k for k in range(1, 23)])  # 0.522 .. 0.984
        mixed = req(2, [t0 + 0.25 + 0.011 * k for k in range(1, 41)])  # 0.261 .. 0.69
        return [fast, slow, mixed]

    at_zero = fidelity.llm_intervals(load(0.0), 0.0, 1.0, None, None)["output_throughput_tokens_per_sec"]
    later = fidelity.llm_intervals(load(1000.0), 1000.0, 1001.0, None, None)["output_throughput_tokens_per_sec"]
    assert at_zero[0] < at_zero[1]
    assert later == pytest.approx(at_zero, rel=1e-6)


def test_diffusion_intervals():
    rows = [{"energy_per_image_joules": 10.0, "duration_s": 2.0}, {"energy_per_image_joules": 10.0, "duration_s": 2.0}]
    assert fidelity.diffusion_intervals(rows, "image") == {
        "method": "bootstrap over iterations (1000 resamples, 95% percentile)",
        "units": 2,
        "energy_per_output_joules": [10.0, 10.0],
        "batch_latency_s": [2.0, 2.0],
        "note": None,
    }
    one = fidelity.diffusion_intervals(rows[:1], "image")
    assert one["note"] == "fewer than 2 timed iterations" and one["batch_latency_s"] is None
    assert one["energy_per_output_joules"] is None and one["units"] == 1
    unmeasured = fidelity.diffusion_intervals([dict(rows[0], energy_per_image_joules=None), rows[1]], "image")
    assert unmeasured["note"] == "energy not measured: no interval on energy" and unmeasured["batch_latency_s"] == [
        2.0,
        2.0,
    ]
    assert fidelity.diffusion_intervals([], "video")["note"] == "energy not measured: no interval on energy"
    no_times = fidelity.diffusion_intervals(
        [{"energy_per_video_joules": 3.0}, {"energy_per_video_joules": 3.0}], "video"
    )
    assert no_times["batch_latency_s"] is None and no_times["energy_per_output_joules"] == [3.0, 3.0]


# --- window sensitivity ------------------------------------------------------------------------------------


def test_trimmed_bounds_drop_a_tenth_at_each_end():
    reqs = [req(i, [float(i), float(i) + 20.0]) for i in range(20)]  # first tokens 0..19, finishes 20..39
    assert fidelity.trimmed_bounds(reqs) == (2.0, 37.0)  # the 3rd first token, the 3rd last finish
    assert fidelity.trimmed_bounds(reqs, 0.0) == (0.0, 39.0)
    assert fidelity.trimmed_bounds(reqs[:9]) == (0.0, 28.0)  # int(0.9) = 0: nothing dropped
    assert fidelity.trimmed_bounds([req(0, [5.0], finish=5.0)]) is None  # empty window
    assert fidelity.trimmed_bounds([RequestRecord(0, 1, 1, 0, 0.0, None, None)]) is None
    assert fidelity.trimmed_bounds([]) is None


def test_window_figures():
    reqs = [req(0, [1.0, 2.0, 3.0]), req(1, [2.5, 4.0])]
    assert fidelity._window_figures(reqs, 1.0, 3.0, 12.0, "s") == {
        "start_time_s": 1.0,
        "end_time_s": 3.0,
        "duration_s": 2.0,
        "output_tokens": 3,
        "energy_joules": 12.0,
        "energy_source": "s",
        "energy_per_token_joules": 4.0,
        "output_throughput_tokens_per_sec": 1.5,
    }
    none = fidelity._window_figures(reqs, 5.0, 5.0, None, "x")
    assert (none["output_tokens"], none["energy_per_token_joules"], none["output_throughput_tokens_per_sec"]) == (
        0,
        None,
        None,
    )
    assert fidelity._window_figures(reqs, 5.0, 6.0, 3.0, "x")["energy_per_token_joules"] is None  # no tokens


def test_window_sensitivity_with_and_without_a_run_window():
    reqs = [req(i, [1.0 + i, 2.0 + i, 3.0 + i], submit=0.5 + i) for i in range(10)]  # tokens 1..12
    timeline = counters([(0.0, 0, 0.0), (20.0, 0, 200.0)])  # 10 W
    metrics = {"steady_start_time_s": 3.0, "steady_end_time_s": 9.0, "gpu_energy_joules": 66.0}
    run = WindowMeasurement("run", 0.5, 12.0, {0: 115.0}, {}, {}, "zeus")
    ws = fidelity.window_sensitivity(reqs, {"run": run}, metrics, timeline)
    assert list(ws) == ["steady", "whole_run", "trimmed"]
    assert ws["steady"] == fidelity._window_figures(reqs, 3.0, 9.0, 66.0, "steady window (Zeus)")
    assert ws["steady"]["output_tokens"] == 18 and ws["steady"]["energy_per_token_joules"] == pytest.approx(66.0 / 18)
    assert ws["whole_run"] == fidelity._window_figures(reqs, 0.5, 12.0, 115.0, "run window (Zeus)")
    # trimmed: the 2nd first token (2.0) to the 2nd last finish (11.0); 10 W from the counter: 90 J
    assert ws["trimmed"]["start_time_s"] == 2.0 and ws["trimmed"]["end_time_s"] == 11.0
    assert ws["trimmed"]["energy_joules"] == pytest.approx(90.0)
    assert ws["trimmed"]["energy_source"] == "timeline energy counter"
    # no run window: from the first submission to the last finish, the counter's energy
    ws = fidelity.window_sensitivity(reqs, {}, metrics, timeline)
    assert (ws["whole_run"]["start_time_s"], ws["whole_run"]["end_time_s"]) == (0.5, 12.0)
    assert ws["whole_run"]["energy_joules"] == pytest.approx(115.0)
    assert ws["whole_run"]["energy_source"] == "timeline energy counter"
    # no energy anywhere
    bare = fidelity.window_sensitivity(
        reqs,
        {"run": WindowMeasurement("run", 0.5, 12.0, {}, {}, {}, "none")},
        dict(metrics, gpu_energy_joules=None),
        None,
    )
    assert bare["steady"]["energy_source"] == "none: no GPU energy counter"
    assert bare["whole_run"]["energy_source"] == "none: no GPU energy counter"
    assert bare["trimmed"]["energy_source"] == "none: no counter samples cover the window"
    assert (
        fidelity.window_sensitivity(reqs, {}, dict(metrics, gpu_energy_joules=None), None)["whole_run"]["energy_source"]
        == "none: no counter samples"
    )
    assert fidelity.window_sensitivity([], {}, {"steady_start_time_s": 2.0, "steady_end_time_s": 2.0}, None) == {}


# --- error budget -------------------------------------------------------------------------------------------


def test_counter_update_period():
    # the counter moves every 0.5 s, sampled every 0.1 s
    rows = [(0.1 * k, 0, float(int(0.1 * k / 0.5 + 1e-9))) for k in range(31)]
    assert fidelity.counter_update_period_s(counters(rows)) == (pytest.approx(0.5), False)
    every = counters([(0.1 * k, 0, float(k)) for k in range(10)])
    assert fidelity.counter_update_period_s(every) == (pytest.approx(0.1), True)  # moved at every sample
    assert fidelity.counter_update_period_s(None) == (None, False)
    once = counters([(0.0, 0, 0.0), (1.0, 0, 0.0), (2.0, 0, 5.0), (3.0, 0, 5.0), (4.0, 0, 5.0)])
    assert fidelity.counter_update_period_s(once) == (None, False)


def test_relative_difference():
    assert fidelity._rel(11.0, 10.0) == pytest.approx(0.1) and fidelity._rel(9.0, -10.0) == pytest.approx(1.9)
    assert fidelity._rel(None, 1.0) is None and fidelity._rel(1.0, None) is None and fidelity._rel(1.0, 0.0) is None


def test_the_budget_of_an_llm_run():
    timeline = counters([(0.1 * k, 0, float(int(0.1 * k / 0.5 + 1e-9))) for k in range(31)])  # updates every 0.5 s
    metrics = {
        "steady_duration_s": 10.0,
        "gpu_energy_joules": 100.0,
        "telemetry_coverage_fraction": 0.9,
        "avg_sampled_power_watts": 110.0,
        "avg_power_watts": 100.0,
        "energy_per_token_joules": 2.0,
    }
    sensitivity = {"steady": {"energy_per_token_joules": 2.0}, "whole_run": {"energy_per_token_joules": 2.5}}
    budget = fidelity.error_budget(metrics, sensitivity, {"energy_per_token_joules": [1.9, 2.3]}, timeline, True)
    assert budget == {
        "largest": "steady_vs_whole_run",
        "items": {
            "counter_update": {
                "relative": pytest.approx(0.1),
                "update_period_s": pytest.approx(0.5),
                "window_s": 10.0,
                "note": "median gap between counter changes; each window end may lag by one",
            },
            "telemetry_coverage": {
                "relative": pytest.approx(0.1),
                "coverage_fraction": 0.9,
                "note": "share of expected samples missing (sampled power, temperature, batch)",
            },
            "instant_vs_averaged_power": {
                "relative": pytest.approx(0.1),
                "sampled_power_watts": 110.0,
                "counter_power_watts": 100.0,
                "note": "mean sampled power against the energy counter's average",
            },
            "steady_vs_whole_run": {
                "relative": pytest.approx(0.25),
                "quantity": "energy_per_token_joules",
                "note": "whole run against the steady window",
            },
            "bootstrap": {
                "relative": pytest.approx(0.1),
                "quantity": "energy_per_token_joules",
                "note": "half-width of the bootstrap interval",
            },
        },
    }


def test_the_budget_without_energy_falls_back_to_throughput():
    metrics = {"steady_duration_s": 10.0, "gpu_energy_joules": None, "output_throughput_tokens_per_sec": 50.0}
    sensitivity = {
        "steady": {"energy_per_token_joules": None, "output_throughput_tokens_per_sec": 50.0},
        "whole_run": {"energy_per_token_joules": None, "output_throughput_tokens_per_sec": 40.0},
    }
    budget = fidelity.error_budget(metrics, sensitivity, {"output_throughput_tokens_per_sec": [45.0, 55.0]}, None, True)
    items = budget["items"]
    assert items["counter_update"] == {"relative": None, "note": "no energy counter on this host"}
    assert items["telemetry_coverage"] == {
        "relative": None,
        "coverage_fraction": None,
        "note": "window too short to judge coverage",
    }
    assert items["instant_vs_averaged_power"] == {
        "relative": None,
        "sampled_power_watts": None,
        "counter_power_watts": None,
        "note": "needs both power samples and counter energy",
    }
    assert items["steady_vs_whole_run"] == {
        "relative": pytest.approx(0.2),
        "quantity": "output_throughput_tokens_per_sec",
        "note": "whole run against the steady window",
    }
    assert items["bootstrap"] == {
        "relative": pytest.approx(0.1),
        "quantity": "output_throughput_tokens_per_sec",
        "note": "half-width of the bootstrap interval",
    }
    assert budget["largest"] == "steady_vs_whole_run"
    nothing = fidelity.error_budget({"gpu_energy_joules": 5.0}, {}, {}, None, True)
    assert nothing["items"]["counter_update"]["note"] == "counter updates not seen in the telemetry timeline"
    assert nothing["items"]["steady_vs_whole_run"] == {
        "relative": None,
        "quantity": None,
        "note": "a window is missing",
    }
    assert nothing["items"]["bootstrap"] == {"relative": None, "quantity": None, "note": "no interval"}
    assert nothing["largest"] is None


def test_the_budget_of_a_diffusion_run():
    every = counters([(0.1 * k, 0, float(k)) for k in range(10)])  # moved at every sample
    metrics = {
        "batch_latency_s": 2.0,
        "steady_duration_s": 99.0,
        "gpu_energy_joules": 50.0,
        "energy_per_output_joules": 10.0,
    }
    budget = fidelity.error_budget(metrics, {}, {"energy_per_output_joules": [9.0, 12.0]}, every, False)
    assert budget["items"]["counter_update"] == {
        "relative": pytest.approx(0.1),
        "update_period_s": pytest.approx(0.1),
        "window_s": 2.0,
        "note": "counter changed at every sample: period at most the sampler's, bound at most this",
    }
    assert "steady_vs_whole_run" not in budget["items"]
    assert budget["items"]["bootstrap"] == {
        "relative": pytest.approx(0.15),
        "quantity": "energy_per_output_joules",
        "note": "half-width of the bootstrap interval",
    }
    latency = fidelity.error_budget(
        {"batch_latency_s": 2.0, "gpu_energy_joules": None}, {}, {"batch_latency_s": [1.8, 2.2]}, None, False
    )
    assert latency["items"]["bootstrap"]["quantity"] == "batch_latency_s"
    assert latency["items"]["bootstrap"]["relative"] == pytest.approx(0.1) and latency["largest"] == "bootstrap"


def test_assess_and_the_tidy_columns():
    reqs = _identical()
    metrics = {
        "steady_start_time_s": 0.0,
        "steady_end_time_s": 1.0,
        "gpu_energy_joules": 40.0,
        "steady_duration_s": 1.0,
        "energy_per_token_joules": 1.0,
        "telemetry_coverage_fraction": 1.0,
    }
    got = fidelity.assess(True, reqs, [], {}, metrics, counters([(0.0, 0, 0.0), (1.0, 0, 40.0)]), None, sampler_hz=10.0)
    assert set(got) == {"intervals", "window_sensitivity", "error_budget"}
    assert got["intervals"]["energy_slices"] == 10 and got["intervals"]["energy_per_token_joules"] == pytest.approx(
        [1, 1]
    )
    columns = fidelity.tidy_columns(got)
    assert columns["energy_per_token_ci_low_joules"] == pytest.approx(1.0)
    assert columns["energy_per_token_ci_high_joules"] == pytest.approx(1.0)
    assert columns["output_throughput_ci_low_tokens_per_sec"] == pytest.approx(40.0)
    assert columns["energy_per_output_ci_low_joules"] is None and columns["batch_latency_ci_high_s"] is None
    assert columns["energy_per_token_whole_run_joules"] == pytest.approx(1.0)  # whole run from the timeline: 40 J
    assert columns["output_throughput_trimmed_tokens_per_sec"] is not None
    assert columns["error_telemetry_coverage_fraction"] == 0.0 and columns["error_bootstrap_fraction"] == pytest.approx(
        0
    )
    assert set(columns) == {
        "energy_per_token_ci_low_joules",
        "energy_per_token_ci_high_joules",
        "output_throughput_ci_low_tokens_per_sec",
        "output_throughput_ci_high_tokens_per_sec",
        "energy_per_output_ci_low_joules",
        "energy_per_output_ci_high_joules",
        "batch_latency_ci_low_s",
        "batch_latency_ci_high_s",
        "energy_per_token_whole_run_joules",
        "output_throughput_whole_run_tokens_per_sec",
        "energy_per_token_trimmed_joules",
        "output_throughput_trimmed_tokens_per_sec",
        "error_counter_update_fraction",
        "error_telemetry_coverage_fraction",
        "error_instant_vs_averaged_power_fraction",
        "error_steady_vs_whole_run_fraction",
        "error_bootstrap_fraction",
    }
    rows = [{"energy_per_image_joules": 4.0, "duration_s": 1.0}] * 3
    diffusion = fidelity.assess(
        False,
        [],
        rows,
        {},
        {"batch_latency_s": 1.0, "energy_per_output_joules": 4.0, "gpu_energy_joules": 12.0},
        None,
        "image",
    )
    assert diffusion["window_sensitivity"] == {} and diffusion["intervals"]["energy_per_output_joules"] == [4.0, 4.0]
    assert fidelity.tidy_columns(diffusion)["energy_per_output_ci_high_joules"] == 4.0
    assert fidelity.tidy_columns({}) == dict.fromkeys(set(columns) - {k for k in columns if k.startswith("error_")})
    assert fidelity._split_unit("batch_latency_s") == ("batch_latency", "s")
    assert fidelity._split_unit("no_unit") == ("no_unit", "")


# --- the edges the mutation run found untested ------------------------------------------------------------


class _Recorder:
    """Stands in for bootstrap_ratio: keeps what it was asked to resample, answers (1, 2)."""

    def __init__(self):
        self.calls = []

    def __call__(self, numerators, denominators, *args, **kwargs):
        self.calls.append((np.asarray(numerators, float).tolist(), np.asarray(denominators, float).tolist()))
        return (1.0, 2.0)


# r0: a token every 0.1 s; r1: two tokens 0.4 s apart; r2: eleven tokens at 0.3 s (zero gaps, not counted)
SHARED = [req(0, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]), req(1, [0.55, 0.95]), req(2, [0.3] * 11)]
TICKS = counters([(0.0, 0, 0.0), (0.25, 0, 10.0), (0.5, 0, 30.0), (0.75, 0, 60.0), (1.0, 0, 100.0)])


def test_time_and_energy_shares_by_hand(monkeypatch):
    record = _Recorder()
    monkeypatch.setattr(fidelity, "bootstrap_ratio", record)
    out = fidelity.llm_intervals(SHARED, 0.0, 1.0, 200.0, TICKS)
    (seconds, tokens), (joules, tokens_again) = record.calls
    assert tokens == tokens_again == [10.0, 2.0, 11.0]
    # time: the median positive gap is 0.1 s, so time slices are 4 x 0.1 = 0.4 s wide: two slices, (0, 0.5] and
    # (0.5, 1]. The first holds r0's 5 tokens and r2's 11 (0.5 s / 16 each), the second r0's 5 and r1's 2 (0.5 s / 7)
    assert seconds == pytest.approx([5 * 0.5 / 16 + 5 * 0.5 / 7, 2 * 0.5 / 7, 11 * 0.5 / 16])
    # energy: the counter's ticks cut 10, 20, 30 and 40 J slices; (0, .25] r0 x2; (.25, .5] r0 x3 and r2 x11;
    # (.5, .75] r0 x2, r1 x1; (.75, 1] r0 x3, r1 x1 -- then scaled from the counter's 100 J to the window's 200 J
    assert joules == pytest.approx([2 * (10 + 20 * 3 / 14 + 20 + 30), 2 * (10 + 10), 2 * 20 * 11 / 14])
    assert out["output_throughput_tokens_per_sec"] == [0.5, 1.0]  # 1 / (1, 2), low to high
    assert out["energy_per_token_joules"] == [1.0, 2.0] and out["energy_slices"] == 4


def test_time_slices_when_the_gaps_allow_one_slice_only(monkeypatch):
    record = _Recorder()
    monkeypatch.setattr(fidelity, "bootstrap_ratio", record)
    # median gap 0.15 s: slices 0.6 s wide, one slice over the 1 s window: time shared by tokens alike
    fidelity.llm_intervals([req(0, [0.1, 0.25, 0.4]), req(1, [0.7, 0.85, 1.0])], 0.0, 1.0, None, None)
    assert record.calls[0][0] == pytest.approx([0.5, 0.5])
    # no gaps at all (one token each): slices of a ten-thousandth of the window; empty slices pass their time on
    record.calls.clear()
    fidelity.llm_intervals([req(0, [0.25]), req(1, [0.75])], 0.0, 1.0, None, None)
    assert record.calls[0][0] == pytest.approx([0.25, 0.75])


def test_a_token_at_the_windows_start_is_outside_it(monkeypatch):
    record = _Recorder()
    monkeypatch.setattr(fidelity, "bootstrap_ratio", record)
    fidelity.llm_intervals([req(0, [0.0, 0.5]), req(1, [0.5, 1.0])], 0.0, 1.0, 30.0, None)
    assert record.calls[0][1] == [1.0, 2.0]


def test_without_requests_or_with_a_single_token():
    empty = fidelity.llm_intervals([], 0.0, 1.0, 10.0, None)
    assert empty["note"] == "no output tokens in the window" and empty["units"] == 0
    one = fidelity.llm_intervals([req(0, [0.5])], 0.0, 1.0, 10.0, None)
    assert one["units"] == 1 and one["note"] == "fewer than 2 requests with tokens in the window"


def test_a_flat_or_small_counter_is_scaled_to_the_windows_reading():
    flat = counters([(0.0, 0, 5.0), (1.0, 0, 5.0)])
    out = fidelity.llm_intervals(_identical(), 0.0, 1.0, 40.0, flat)
    assert out["energy_per_token_joules"] == [0.0, 0.0]  # nothing to scale: no energy is shared
    small = counters([(0.0, 0, 0.0), (1.0, 0, 0.5)])
    assert fidelity.llm_intervals(_identical(), 0.0, 1.0, 40.0, small)["energy_per_token_joules"] == pytest.approx(
        [1, 1]
    )


def test_nine_sampler_ticks_are_too_few():
    ticks = counters([(0.1 * k, 0, float(k)) for k in range(1, 9)])  # 8 ticks inside the window: 9 slices
    nine = fidelity.llm_intervals(_identical(), 0.0, 1.0, 40.0, ticks)
    assert nine["energy_slices"] == 9 and nine["note"].startswith("the window spans only 9 sampler tick(s)")


def test_counter_energy_at_the_very_ends_of_the_sampled_span():
    curves = fidelity.counter_curves(counters([(0.0, 0, 0.0), (10.0, 0, 100.0)]))
    assert fidelity.counter_energy(curves, [-1e-9, 10.0 + 1e-9]) is not None  # within the 1e-9 allowance
    assert (
        fidelity.counter_energy(curves, [-2e-9, 5.0]) is None
        and fidelity.counter_energy(curves, [5.0, 10.0 + 2e-9]) is None
    )


def test_counter_updates_seen_twice_and_the_bound_at_its_edge():
    twice = counters(
        [
            (0.0, 0, 0.0),
            (1.0, 0, 0.0),
            (2.0, 0, 5.0),
            (3.0, 0, 5.0),
            (4.0, 0, 5.0),
            (5.0, 0, 9.0),
            (6.0, 0, 9.0),
            (7.0, 0, 9.0),
        ]
    )
    assert fidelity.counter_update_period_s(twice) == (3.0, False)  # changes at 2 and 5: one gap of 3 s
    # 5 samples, 3 changes (= samples - 2): the sampler cannot resolve it; 6 samples, 3 changes (= samples - 3): it can
    edge = counters([(0.0, 0, 0.0), (1.0, 0, 1.0), (2.0, 0, 2.0), (3.0, 0, 3.0), (4.0, 0, 3.0)])
    assert fidelity.counter_update_period_s(edge) == (1.0, True)
    below = counters([(0.0, 0, 0.0), (1.0, 0, 1.0), (2.0, 0, 2.0), (3.0, 0, 3.0), (4.0, 0, 3.0), (5.0, 0, 3.0)])
    assert fidelity.counter_update_period_s(below) == (1.0, False)


def test_bootstrap_edges():
    # with seed 11 the one resample draws the unit without tokens twice: no ratio to take a percentile of
    assert fidelity.bootstrap_ratio([1.0, 1.0], [0.0, 1.0], resamples=1, seed=11) is None
    values = [1.0, 2.0, 4.0, 8.0]
    assert fidelity.bootstrap_mean(values) == fidelity.bootstrap_ratio(values, [1.0] * 4, seed=0)
    assert fidelity.bootstrap_mean(values, seed=3) == fidelity.bootstrap_ratio(values, [1.0] * 4, seed=3)
    # four values have few distinct resample means, and two seeds can land on the same percentiles: with twelve
    # spread values they do not, so the seed is seen to reach the resampling
    spread = [float(i * i) for i in range(12)]
    by_seed = [fidelity.bootstrap_mean(spread, seed=s) for s in (0, 3, 3)]
    assert by_seed[1] == by_seed[2] != by_seed[0]
    assert by_seed[1] == fidelity.bootstrap_ratio(spread, [1.0] * 12, seed=3)


def test_assess_uses_the_sampler_rate_and_the_timeline():
    metrics = {
        "steady_start_time_s": 0.0,
        "steady_end_time_s": 1.0,
        "gpu_energy_joules": 40.0,
        "steady_duration_s": 1.0,
    }
    assert fidelity.assess(True, _identical(), [], {}, metrics, None, None)["intervals"]["energy_slices"] == 10
    assert (
        fidelity.assess(True, _identical(), [], {}, metrics, None, None, sampler_hz=4.0)["intervals"]["energy_slices"]
        == 4
    )
    timeline = counters([(0.1 * k, 0, float(int(0.1 * k / 0.5 + 1e-9))) for k in range(11)])  # updates every 0.5 s
    got = fidelity.assess(True, _identical(), [], {}, metrics, timeline, None)
    assert got["intervals"]["energy_attribution"] == "NVML energy counter samples, shared by tokens per sampler tick"
    assert got["error_budget"]["items"]["counter_update"]["update_period_s"] == pytest.approx(0.5)


def test_the_budget_without_an_interval_and_its_exact_items():
    budget = fidelity.error_budget(
        {"gpu_energy_joules": 5.0, "energy_per_token_joules": 2.0, "output_throughput_tokens_per_sec": 9.0},
        {},
        {},
        None,
        True,
    )
    assert budget["items"]["counter_update"] == {
        "relative": None,
        "note": "counter updates not seen in the telemetry timeline",
    }
    assert budget["items"]["bootstrap"] == {"relative": None, "quantity": None, "note": "no interval"}
    zero = fidelity.error_budget(
        {"energy_per_token_joules": 0.0}, {}, {"energy_per_token_joules": [0.0, 1.0]}, None, True
    )
    assert zero["items"]["bootstrap"]["relative"] is None


def test_tidy_columns_keep_low_and_high_apart():
    columns = fidelity.tidy_columns(
        {"intervals": {"energy_per_token_joules": [1.0, 2.0], "batch_latency_s": [3.0, 4.0]}}
    )
    assert (columns["energy_per_token_ci_low_joules"], columns["energy_per_token_ci_high_joules"]) == (1.0, 2.0)
    assert (columns["batch_latency_ci_low_s"], columns["batch_latency_ci_high_s"]) == (3.0, 4.0)


def test_trimmed_bounds_at_its_extremes():
    two = [req(0, [1.0, 2.0]), req(1, [3.0, 6.0])]
    assert fidelity.trimmed_bounds(two, 0.5) is None  # from the 2nd first token (3) to the 1st finish (2): empty
    four = [req(i, [float(i), float(i) + 10.0]) for i in range(4)]
    assert fidelity.trimmed_bounds(four, 0.5) == (2.0, 11.0)  # the 3rd first token, the 2nd last finish
    # everything trimmed (the harness trims 10%): the start stops at the last first token, the finish index wraps
    assert fidelity.trimmed_bounds(four, 1.0) == (3.0, 13.0)
    assert fidelity.trimmed_bounds([RequestRecord(0, 1, 1, 0, 0.0, None, 5.0)]) is None  # a finish, no first token


def test_whole_run_window_needs_a_finish_after_the_first_submission():
    no_finish = [RequestRecord(0, 1, 2, 2, 1.0, 2.0, None, [2.0, 3.0])]
    metrics = {"steady_start_time_s": 1.0, "steady_end_time_s": 4.0, "gpu_energy_joules": None}
    assert "whole_run" not in fidelity.window_sensitivity(no_finish, {}, metrics, None)
    instant = [RequestRecord(0, 1, 1, 1, 2.0, 2.0, 2.0, [2.0])]
    assert "whole_run" not in fidelity.window_sensitivity(instant, {}, metrics, None)


def test_a_window_that_read_zero_joules_shares_zero():
    assert fidelity.llm_intervals(_identical(), 0.0, 1.0, 0.0, None)["energy_per_token_joules"] == [0.0, 0.0]
