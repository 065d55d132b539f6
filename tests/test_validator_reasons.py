"""The validator's flags word for word: what ``harness show`` prints and run.json keeps, for runs that pass,
fail or skip every check (timelines built directly; the sampled ones are in test_validator.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.measuring import validator
from harness.workloads.base import RequestRecord

GOOD = {
    "num_requests": 10,
    "num_failed_requests": 0,
    "num_stopped_requests": 0,
    "steady_duration_s": 40.0,
    "batch_saturation": 0.95,
    "avg_batch_size": 7.6,
    "telemetry_coverage_fraction": 1.0,
    "output_throughput_tokens_per_sec": 500.0,
    "gpu_energy_joules": 12000.0,
    "energy_per_token_joules": 0.6,
    "avg_power_watts": 300.0,
}
H100 = "NVIDIA H100 80GB HBM3"


def frame(watts, temps, t0=100.0, source="nvml", gpu=0) -> pd.DataFrame:
    """NVML-like rows 0.1 s apart from ``t0``."""
    return pd.DataFrame(
        {
            "source": source,
            "time_s": [t0 + 0.1 * i for i in range(len(watts))],
            "gpu_index": gpu,
            "power_watts": watts,
            "temperature_celsius": temps,
        }
    )


def requests(lengths, failed=0) -> list[RequestRecord]:
    done = [RequestRecord(i, 10, n, n, 0.0, 0.1, 1.0) for i, n in enumerate(lengths)]
    return done + [RequestRecord(100 + i, 10, 64, 0, 0.0, None, None, success=False) for i in range(failed)]


def flags_of(metrics, **kw) -> list[tuple]:
    return [(f["check"], f["severity"], f["status"], f["reason"]) for f in validator.validate(metrics, **kw)]


def test_a_good_gpu_run():
    assert flags_of(
        GOOD,
        is_llm=True,
        on_gpu=True,
        max_num_seqs=8,
        output_cap=64,
        requests=requests([10] * 8 + [64] * 2),
        timeline=frame([300.0] * 10, [60.0] * 10),
        run_window=(100.0, 101.0),
        run_coverage=0.9,
        power_source={"0": "nvml/power-instant-field"},
        gpu_model=H100,
    ) == [
        ("request-success", "error", "pass", "all 10 requests that ran to the end succeeded"),
        ("steady-duration", "error", "pass", "steady state 40.0 s (>= 30 s)"),
        (
            "telemetry-samples",
            "warning",
            "pass",
            "samples present: whole run 90%, steady window 100% (>= 75% expected)",
        ),
        ("batch-saturation", "warning", "pass", "average batch 7.60 is 95% of max_num_seqs=8 (>= 80%)"),
        ("output-length-cap", "warning", "pass", "2 of 10 requests (20%) hit max_output_tokens=64 (< 30%)"),
        ("metrics-valid", "error", "pass", "throughput and energy positive"),
        ("energy-per-token", "error", "pass", "0.6 J per token (<= 100 J)"),
        ("instant-power", "warning", "pass", "10 instantaneous power readings within 70..1190 W (TDP 700 W (H100))"),
        ("average-power", "warning", "pass", "1 averaged power readings within 70..770 W (TDP 700 W (H100))"),
        ("temperature", "error", "pass", "0 of 10 readings (0.0%) outside 20..95 C (range 60..60 C; fails at >= 5%)"),
    ]


BAD = dict(
    GOOD,
    num_failed_requests=2,
    num_stopped_requests=3,
    steady_duration_s=12.5,
    batch_saturation=0.5,
    avg_batch_size=4.0,
    telemetry_coverage_fraction=0.5,
    output_throughput_tokens_per_sec=0.0,
    gpu_energy_joules=-1.0,
    energy_per_token_joules=150.0,
    avg_power_watts=2000.0,
)


def test_a_run_that_fails_every_check():
    flags = validator.validate(
        BAD,
        is_llm=True,
        on_gpu=True,
        max_num_seqs=8,
        output_cap=10,
        requests=requests([10] * 10, failed=2),
        timeline=frame([50.0] * 5 + [800.0] * 5, [10.0] * 3 + [60.0] * 7),
        run_window=(100.0, 101.0),
        run_coverage=0.7,
        power_source={"0": "nvml/power-average"},
        gpu_model="L40S",
        power_limit_watts=[350.0, 300.0],
        num_gpus=2,
    )
    assert [(f["check"], f["severity"], f["status"], f["reason"]) for f in flags] == [
        ("request-success", "error", "fail", "2 of 10 requests failed"),
        ("steady-duration", "error", "fail", "steady state 12.5 s (< 30 s)"),
        ("telemetry-samples", "warning", "fail", "samples present: whole run 70%, steady window 50% (< 75% expected)"),
        ("batch-saturation", "warning", "fail", "average batch 4.00 is 50% of max_num_seqs=8 (< 80%)"),
        ("output-length-cap", "warning", "fail", "10 of 10 requests (100%) hit max_output_tokens=10 (>= 30%)"),
        ("metrics-valid", "error", "fail", "not positive: throughput 0.0, energy -1.0 J"),
        ("energy-per-token", "error", "fail", "150 J per token (> 100 J)"),
        ("instant-power", "warning", "skip", "the driver gives no instantaneous power readings"),
        (
            "average-power",
            "warning",
            "fail",
            "11 of 11 averaged power readings outside 70..330 W (min 50, max 1000 W; "  # noqa: ISC004
            "TDP unknown for L40S: its power limit 300 W)",
        ),
        ("temperature", "error", "fail", "3 of 10 readings (30.0%) outside 20..95 C (range 10..60 C; fails at >= 5%)"),
    ]
    assert validator.summary(flags) == {
        "passed": False,
        "checks": flags,
        "errors": ["request-success", "steady-duration", "metrics-valid", "energy-per-token", "temperature"],
        "warnings": ["telemetry-samples", "batch-saturation", "output-length-cap", "average-power"],
    }


def test_stopped_requests_are_not_failures_and_failed_ones_are_left_out_of_the_cap():
    metrics = dict(GOOD, num_stopped_requests=3)
    flags = flags_of(
        metrics,
        is_llm=True,
        on_gpu=False,
        max_num_seqs=8,
        output_cap=10,
        requests=requests([10, 10, 5, 5, 5], failed=5),
    )
    assert flags[0] == ("request-success", "error", "pass", "all 7 requests that ran to the end succeeded")
    assert flags[4] == (
        "output-length-cap",
        "warning",
        "fail",
        "2 of 5 requests (40%) hit max_output_tokens=10 (>= 30%)",
    )
    assert flags_of(
        dict(GOOD, num_failed_requests=None, num_requests=None, num_stopped_requests=None), is_llm=True, on_gpu=False
    )[0] == ("request-success", "error", "pass", "all 0 requests that ran to the end succeeded")


def test_a_cpu_host():
    metrics = dict(GOOD, gpu_energy_joules=None, energy_per_token_joules=None, num_stopped_requests=None)
    cpu = "not applied on a CPU host (no energy counter)"
    assert flags_of(
        metrics, is_llm=True, on_gpu=False, max_num_seqs=8, timeline=frame([300.0], [60.0]), run_window=(100.0, 101.0)
    ) == [
        ("request-success", "error", "pass", "all 10 requests that ran to the end succeeded"),
        ("steady-duration", "error", "skip", f"steady state >= 30 s {cpu}"),
        ("telemetry-samples", "warning", "pass", "samples present: steady window 100% (>= 75% expected)"),
        ("batch-saturation", "warning", "pass", "average batch 7.60 is 95% of max_num_seqs=8 (>= 80%)"),
        ("output-length-cap", "warning", "skip", "no output-token cap was set"),
        ("metrics-valid", "error", "pass", f"throughput positive; energy {cpu}"),
        ("energy-per-token", "error", "skip", f"energy per token not measured ({cpu})"),
        ("instant-power", "warning", "skip", cpu),
        ("average-power", "warning", "skip", cpu),
        ("temperature", "error", "skip", cpu),
    ]


def test_a_gpu_run_with_nothing_to_judge():
    metrics = dict(
        GOOD,
        steady_duration_s=None,
        batch_saturation=None,
        telemetry_coverage_fraction=None,
        energy_per_token_joules=None,
    )
    assert flags_of(
        metrics,
        is_llm=True,
        on_gpu=True,
        max_num_seqs=8,
        output_cap=64,
        requests=requests([], failed=3),
        timeline=frame([300.0] * 3, [60.0] * 3),
        run_window=None,
        gpu_model=None,
    ) == [
        ("request-success", "error", "pass", "all 10 requests that ran to the end succeeded"),
        ("steady-duration", "error", "fail", "no steady state"),
        ("telemetry-samples", "warning", "skip", "windows too short to judge sample coverage"),
        ("batch-saturation", "warning", "skip", "no steady state: no average batch"),
        ("output-length-cap", "warning", "skip", "no request succeeded"),
        ("metrics-valid", "error", "fail", "not positive: energy per token None J"),
        ("energy-per-token", "error", "skip", "energy per token not measured (null)"),
        ("instant-power", "warning", "skip", "no NVML samples in the run"),
        ("average-power", "warning", "skip", "no NVML samples in the run"),
        ("temperature", "error", "skip", "no NVML samples in the run"),
    ]
    assert validator.summary(validator.validate(metrics, is_llm=True, on_gpu=True))["errors"] == [
        "steady-duration",
        "metrics-valid",
    ]


def test_only_nvml_rows_inside_the_window_are_judged():
    timeline = pd.concat(
        [
            frame([300.0] * 5, [60.0] * 5, t0=100.0),
            frame([2000.0] * 3, [200.0] * 3, t0=99.0),  # before the window
            frame([2000.0] * 2, [200.0] * 2, t0=100.45),  # after it
            frame([5000.0] * 3, [300.0] * 3, t0=100.0, source="host"),
        ]
    )  # not NVML
    metrics = dict(GOOD, steady_start_time_s=100.0, steady_end_time_s=100.4, avg_power_watts=None)
    flags = flags_of(
        metrics, is_llm=True, on_gpu=True, timeline=timeline, power_source={0: "nvml/power-average"}, gpu_model="H100"
    )
    assert flags[-3:] == [
        ("instant-power", "warning", "skip", "the driver gives no instantaneous power readings"),
        ("average-power", "warning", "pass", "5 averaged power readings within 70..770 W (TDP 700 W (H100))"),
        ("temperature", "error", "pass", "0 of 5 readings (0.0%) outside 20..95 C (range 60..60 C; fails at >= 5%)"),
    ]
    # the run window, when given, wins over the steady one: here it holds the 2000 W readings after the steady window
    late = flags_of(
        metrics,
        is_llm=True,
        on_gpu=True,
        timeline=timeline,
        power_source={0: "nvml/power-average"},
        gpu_model="H100",
        run_window=(100.0, 100.6),
    )
    assert late[-2][2:] == (
        "fail",
        "2 of 7 averaged power readings outside 70..770 W (min 300, max 2000 W; TDP 700 W (H100))",
    )


def test_unknown_tdp_and_missing_temperatures():
    flags = flags_of(
        GOOD,
        is_llm=True,
        on_gpu=True,
        timeline=frame([300.0] * 5, [float("nan")] * 5),
        run_window=(100.0, 101.0),
        power_source={"0": "nvml/power-instant-field"},
        gpu_model="Tesla T4",
        power_limit_watts=[None],
    )
    assert flags[-3:] == [
        ("instant-power", "warning", "skip", "TDP unknown for Tesla T4 and no power limit read"),
        ("average-power", "warning", "skip", "TDP unknown for Tesla T4 and no power limit read"),
        ("temperature", "error", "skip", "no temperature readings"),
    ]


def test_a_diffusion_run_gets_the_checks_that_apply():
    assert flags_of(
        {"throughput_outputs_per_sec": 0.5, "gpu_energy_joules": 900.0, "avg_power_watts": 3000.0},
        is_llm=False,
        on_gpu=True,
        timeline=frame([300.0] * 5, [60.0] * 5, t0=10.0),
        run_window=(10.0, 11.0),
        power_source={0: "nvml/power-instant-field"},
        gpu_model="B200",
        run_coverage=1.0,
    ) == [
        ("telemetry-samples", "warning", "pass", "samples present: whole run 100% (>= 75% expected)"),
        ("metrics-valid", "error", "pass", "throughput and energy positive"),
        ("instant-power", "warning", "pass", "5 instantaneous power readings within 70..1700 W (TDP 1000 W (B200))"),
        ("average-power", "warning", "skip", "no averaged power readings"),
        ("temperature", "error", "pass", "0 of 5 readings (0.0%) outside 20..95 C (range 60..60 C; fails at >= 5%)"),
    ]
    zero = flags_of({"throughput_outputs_per_sec": 0.0, "gpu_energy_joules": None}, is_llm=False, on_gpu=True)
    assert zero[1] == ("metrics-valid", "error", "fail", "not positive: throughput 0.0, energy None J")


@pytest.mark.parametrize(
    "gpu_model, limits, expected",
    [
        ("NVIDIA B200", [], (1000.0, "TDP 1000 W (B200)")),
        ("NVIDIA H100 80GB HBM3", [300.0], (700.0, "TDP 700 W (H100)")),
        (None, [400.0, None, 350.0], (350.0, "TDP unknown for this GPU: its power limit 350 W")),
        ("L4", [72.0], (72.0, "TDP unknown for L4: its power limit 72 W")),
        (None, [], (None, "TDP unknown for this GPU and no power limit read")),
        ("Tesla T4", [None], (None, "TDP unknown for Tesla T4 and no power limit read")),
    ],
)
def test_tdp(gpu_model, limits, expected):
    assert validator.tdp_watts(gpu_model, limits) == expected


def test_a_timeline_without_nvml_rows_in_the_window_has_no_samples():
    timeline = pd.concat([frame([300.0] * 3, [60.0] * 3, t0=50.0), frame([300.0] * 3, [60.0] * 3, source="host")])
    flags = flags_of(GOOD, is_llm=True, on_gpu=True, timeline=timeline, run_window=(100.0, 101.0), gpu_model="H100")
    assert flags[-3:] == [
        ("instant-power", "warning", "skip", "no NVML samples in the run"),
        ("average-power", "warning", "skip", "no NVML samples in the run"),
        ("temperature", "error", "skip", "no NVML samples in the run"),
    ]
