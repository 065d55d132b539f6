"""The reference validator's checks, one by one; power and temperature readings come from fake NVML
devices sampled by the real telemetry code on a fake clock."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest

from conftest import FakeClock, FakeGPU
from harness.measuring import validator
from harness.measuring.telemetry import Telemetry
from harness.workloads.base import RequestRecord


def sampled(gpus, clock, seconds: float, hz: float = 10.0):
    """Telemetry frame of ``gpus`` over ``seconds`` from ``clock``'s now, sampled by the real sampler code."""
    tel = Telemetry(hz, list(range(len(gpus))), clock=clock)
    from harness.measuring.telemetry import NvmlReader, _HostProbe

    tel.reader, tel.host, tel.rows, tel._threads = NvmlReader(tel.gpu_indices), _HostProbe(), [], []
    tel.info = {"power_source": {str(i): s for i, s in tel.reader.power_source.items()}}
    start = last = clock()
    for _ in range(round(seconds * hz) + 1):
        last = clock()
        tel._tick(last)
        clock.advance(1.0 / hz)
    return tel.stop(), tel.info["power_source"], (start, last)


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


def flag(flags, check):
    (found,) = [f for f in flags if f["check"] == check]
    return found


def run_checks(metrics=None, *, on_gpu=True, requests=(), output_cap=None, **kw):
    m = dict(GOOD, **(metrics or {}))
    return validator.validate(
        m, is_llm=True, on_gpu=on_gpu, max_num_seqs=8, output_cap=output_cap, requests=requests, **kw
    )


def test_every_check_has_one_flag_and_a_good_gpu_run_passes(fake_nvml):
    clock = FakeClock()
    gpu = FakeGPU([(clock() - 5, 300.0)], clock=clock)
    fake_nvml([gpu])
    frame, source, window = sampled([gpu], clock, 5.0)
    flags = run_checks(
        timeline=frame,
        run_window=window,
        power_source=source,
        gpu_model="H100",
        run_coverage=1.0,
        requests=_requests([10] * 10),
        output_cap=64,
    )
    assert [f["check"] for f in flags] == list(validator.CHECKS)
    assert all(f["status"] == "pass" for f in flags), [f for f in flags if f["status"] != "pass"]
    assert validator.summary(flags) == {"passed": True, "errors": [], "warnings": [], "checks": flags}


def test_request_success_is_an_error():
    f = flag(run_checks({"num_failed_requests": 2}), "request-success")
    assert (f["status"], f["severity"]) == ("fail", "error") and f["reason"] == "2 of 10 requests failed"


@pytest.mark.parametrize("duration, status", [(29.9, "fail"), (30.0, "pass")])
def test_steady_state_at_least_30_s_is_an_error(duration, status):
    f = flag(run_checks({"steady_duration_s": duration}), "steady-duration")
    assert (f["status"], f["severity"]) == (status, "error")
    summary = validator.summary(run_checks({"steady_duration_s": duration}))
    assert summary["passed"] is (status == "pass")


def test_steady_duration_is_not_applied_on_a_cpu_host():
    f = flag(run_checks({"steady_duration_s": 1.0}, on_gpu=False), "steady-duration")
    assert f["status"] == "skip" and "CPU host" in f["reason"]


@pytest.mark.parametrize("steady, run, status", [(0.74, 1.0, "fail"), (1.0, 0.74, "fail"), (0.75, 0.75, "pass")])
def test_telemetry_samples_below_75_percent_only_warn(steady, run, status):
    flags = run_checks({"telemetry_coverage_fraction": steady}, run_coverage=run)
    f = flag(flags, "telemetry-samples")
    assert (f["status"], f["severity"]) == (status, "warning")
    assert validator.summary(flags)["passed"]  # a warning never fails validation
    assert validator.summary(flags)["warnings"] == ([] if status == "pass" else ["telemetry-samples"])


@pytest.mark.parametrize("saturation, status", [(0.79, "fail"), (0.80, "pass")])
def test_average_batch_under_80_percent_only_warns(saturation, status):
    f = flag(run_checks({"batch_saturation": saturation, "avg_batch_size": 8 * saturation}), "batch-saturation")
    assert (f["status"], f["severity"]) == (status, "warning")


def _requests(lengths):
    return [RequestRecord(i, 10, n, n, 0.0, 0.1, 1.0) for i, n in enumerate(lengths)]


@pytest.mark.parametrize("capped, status", [(3, "fail"), (2, "pass")])
def test_thirty_percent_of_requests_at_the_output_cap_warns(capped, status):
    reqs = _requests([64] * capped + [10] * (10 - capped))
    f = flag(run_checks(requests=reqs, output_cap=64), "output-length-cap")
    assert (f["status"], f["severity"]) == (status, "warning")
    assert f"{capped} of 10 requests" in f["reason"]
    assert flag(run_checks(requests=reqs, output_cap=None), "output-length-cap")["status"] == "skip"


@pytest.mark.parametrize(
    "change", [{"output_throughput_tokens_per_sec": 0.0}, {"gpu_energy_joules": 0.0}, {"energy_per_token_joules": None}]
)
def test_non_positive_metrics_are_an_error(change):
    f = flag(run_checks(change), "metrics-valid")
    assert (f["status"], f["severity"]) == ("fail", "error") and f["reason"].startswith("not positive")


@pytest.mark.parametrize("ept, status", [(100.5, "fail"), (100.0, "pass")])
def test_more_than_100_joules_per_token_is_an_error(ept, status):
    f = flag(run_checks({"energy_per_token_joules": ept}), "energy-per-token")
    assert (f["status"], f["severity"]) == (status, "error")


@pytest.mark.parametrize(
    "spike_watts, status",
    [(1191.0, "fail"), (1190.0, "pass"), (1189.0, "pass"), (60.0, "fail"), (69.0, "fail"), (70.0, "pass")],
)
def test_instant_power_outside_70_w_to_1_7_tdp_warns(fake_nvml, spike_watts, status):
    clock = FakeClock()
    start = clock()
    gpu = FakeGPU([(start - 5, 300.0), (start + 2.0, spike_watts), (start + 2.1, 300.0)], clock=clock)
    fake_nvml([gpu])
    frame, source, window = sampled([gpu], clock, 5.0)
    assert source == {"0": "nvml/power-instant-field"}
    f = flag(run_checks(timeline=frame, run_window=window, power_source=source, gpu_model="H100"), "instant-power")
    assert (f["status"], f["severity"]) == (status, "warning"), f["reason"]
    assert "TDP 700 W (H100)" in f["reason"]


@pytest.mark.parametrize(
    "watts, status", [(771.0, "fail"), (769.0, "pass"), (70.0, "pass"), (69.0, "fail"), (30.0, "fail")]
)
def test_averaged_power_outside_70_w_to_1_1_tdp_warns(fake_nvml, watts, status):
    clock = FakeClock()
    gpu = FakeGPU([(clock() - 5, watts)], clock=clock, instant_field=False)  # NVML's 1 s average only
    fake_nvml([gpu])
    frame, source, window = sampled([gpu], clock, 3.0)
    flags = run_checks(
        {"avg_power_watts": watts}, timeline=frame, run_window=window, power_source=source, gpu_model="H100"
    )
    f = flag(flags, "average-power")
    assert (f["status"], f["severity"]) == (status, "warning"), f["reason"]
    assert flag(flags, "instant-power")["status"] == "skip"


@pytest.mark.parametrize("counter_watts, status", [(69.0, "fail"), (70.0, "pass"), (771.0, "fail"), (769.0, "pass")])
def test_the_counters_average_over_the_window_is_an_averaged_reading(fake_nvml, counter_watts, status):
    """NVML's own averages read 300 W; the energy counter's average over the window is judged on the same bounds."""
    clock = FakeClock()
    gpu = FakeGPU([(clock() - 5, 300.0)], clock=clock, instant_field=False)
    fake_nvml([gpu])
    frame, source, window = sampled([gpu], clock, 3.0)
    flags = run_checks(
        {"avg_power_watts": 2 * counter_watts},
        timeline=frame,
        run_window=window,
        power_source=source,
        gpu_model="H100",
        num_gpus=2,
    )  # the counter's average is over both GPUs: per GPU, halved
    f = flag(flags, "average-power")
    assert (f["status"], f["severity"]) == (status, "warning"), f["reason"]


def test_unknown_tdp_falls_back_to_the_power_limit(fake_nvml):
    clock = FakeClock()
    gpu = FakeGPU([(clock() - 5, 500.0)], clock=clock, name="NVIDIA L40S", power_limit_watts=350.0)
    fake_nvml([gpu])
    frame, source, window = sampled([gpu], clock, 2.0)
    f = flag(
        run_checks(
            {"avg_power_watts": 500.0},
            timeline=frame,
            run_window=window,
            power_source=source,
            gpu_model="L40S",
            power_limit_watts=[350.0],
        ),
        "average-power",
    )
    assert f["status"] == "fail" and "power limit 350 W" in f["reason"]


@pytest.mark.parametrize("hot_samples, status", [(2, "fail"), (1, "pass")])
def test_five_percent_of_temperatures_outside_20_to_95_c_is_an_error(fake_nvml, hot_samples, status):
    clock = FakeClock()
    start = clock()
    gpu = FakeGPU([(start - 5, 300.0)], clock=clock)
    # 21 samples at 10 Hz over 2 s; the last ``hot_samples`` read 96 C: 2/21 = 9.5% fails, 1/21 = 4.8% passes
    gpu.temperatures = [(start + (21 - hot_samples) * 0.1 - 0.05, 96.0)]
    fake_nvml([gpu])
    frame, source, window = sampled([gpu], clock, 2.0)
    flags = run_checks(timeline=frame, run_window=window, power_source=source, gpu_model="H100")
    f = flag(flags, "temperature")
    assert (f["status"], f["severity"]) == (status, "error"), f["reason"]
    assert f"{hot_samples} of 21 readings" in f["reason"]
    assert validator.summary(flags)["passed"] is (status == "pass")


@pytest.mark.parametrize(
    "celsius, status", [(19.0, "fail"), (20.0, "pass"), (95.0, "pass"), (96.0, "fail"), (-5.0, "fail")]
)
def test_temperatures_outside_20_to_95_c_on_either_side_are_an_error(fake_nvml, celsius, status):
    clock = FakeClock()
    start = clock()
    gpu = FakeGPU([(start - 5, 300.0)], clock=clock)
    gpu.temperatures = [(start - 1, celsius)]  # every reading
    fake_nvml([gpu])
    frame, source, window = sampled([gpu], clock, 2.0)
    flags = run_checks(timeline=frame, run_window=window, power_source=source, gpu_model="H100")
    f = flag(flags, "temperature")
    assert (f["status"], f["severity"]) == (status, "error"), f["reason"]
    assert f"{21 if status == 'fail' else 0} of 21 readings" in f["reason"]
    assert validator.summary(flags)["passed"] is (status == "pass")


@pytest.mark.parametrize("cold_samples, status", [(1, "fail"), (0, "pass")])
def test_exactly_five_percent_of_temperatures_outside_fails(fake_nvml, cold_samples, status):
    clock = FakeClock()
    start = clock()
    gpu = FakeGPU([(start - 5, 300.0)], clock=clock)
    # 20 samples at 10 Hz over 1.9 s; the first ``cold_samples`` read 19 C: 1/20 = 5% fails (>= 5%)
    gpu.temperatures = [(start - 1, 19.0 if cold_samples else 55.0), (start + 0.05, 55.0)]
    fake_nvml([gpu])
    frame, source, window = sampled([gpu], clock, 1.9)
    f = flag(run_checks(timeline=frame, run_window=window, power_source=source, gpu_model="H100"), "temperature")
    assert (f["status"], f["reason"].split(" readings")[0]) == (status, f"{cold_samples} of 20"), f["reason"]


@pytest.mark.parametrize("change, status", [({"num_failed_requests": 1}, "fail"), ({"num_failed_requests": 0}, "pass")])
def test_one_failed_request_fails(change, status):
    assert flag(run_checks(change), "request-success")["status"] == status


@pytest.mark.parametrize(
    "change",
    [
        {"output_throughput_tokens_per_sec": -1.0},
        {"gpu_energy_joules": -5.0},
        {"energy_per_token_joules": 0.0},
        {"output_throughput_tokens_per_sec": None},
    ],
)
def test_negative_or_missing_metrics_are_an_error_and_tiny_positive_ones_pass(change):
    assert flag(run_checks(change), "metrics-valid")["status"] == "fail"
    tiny = dict.fromkeys(change, 1e-09)
    assert flag(run_checks(tiny), "metrics-valid")["status"] == "pass"


def test_cpu_host_skips_the_energy_and_hardware_checks():
    flags = run_checks({"gpu_energy_joules": None, "energy_per_token_joules": None}, on_gpu=False)
    skipped = {f["check"] for f in flags if f["status"] == "skip"}
    assert {"steady-duration", "energy-per-token", "instant-power", "average-power", "temperature"} <= skipped
    assert flag(flags, "metrics-valid")["status"] == "pass"


# --- end to end: a sweep on a fake GPU writes the flags, list filters by them -----------------------
def test_flags_land_in_run_json_and_list_filters_by_them(tmp_path, fake_nvml, monkeypatch):
    import time

    from harness.cli import main
    from test_runner import _config, _loaded_gpu, _measure

    gpu = FakeGPU([(time.time() - 10, 60.0)])
    fake_nvml([gpu])
    _loaded_gpu(monkeypatch, gpu)
    counts, _ = _measure(_config(tmp_path, grid={"max_num_seqs": [2]}), tmp_path / "results")
    assert counts == {"ok": 1}
    (run_dir,) = list((tmp_path / "results" / "t").iterdir())
    record = json.loads((run_dir / "run.json").read_text())
    validation = record["validation"]
    assert [f["check"] for f in validation["checks"]] == list(validator.CHECKS)
    # a run of a fraction of a second on a GPU fails the 30 s rule (an error); the rest measured fine
    assert "steady-duration" in validation["errors"] and validation["passed"] is False
    assert flag(validation["checks"], "energy-per-token")["status"] == "pass"
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["list", "--results", str(tmp_path / "results"), "--flag", "steady-duration"]) == 0
    assert run_dir.name in out.getvalue() and "FAILS validation: steady-duration" in out.getvalue()
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["list", "--results", str(tmp_path / "results"), "--flag", "temperature"]) == 0
    assert run_dir.name not in out.getvalue() and "no runs flagged temperature" in out.getvalue()
