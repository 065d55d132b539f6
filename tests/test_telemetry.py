"""Telemetry sampler, vLLM scraper, coverage and idle power against fake NVML devices."""

from __future__ import annotations

import http.server
import threading
import time

import pandas as pd
import pytest

from conftest import FakeClock, FakeGPU
from harness.measuring.telemetry import COLUMNS, Telemetry, coverage_fraction, measure_idle_power, parse_vllm_metrics

METRICS_TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 6.0
vllm:num_requests_running{engine="1",model_name="tiny"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny"} 3.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.25
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{engine="0",model_name="tiny"} 1234.0
"""


def test_parse_vllm_metrics_sums_engines():
    assert parse_vllm_metrics(METRICS_TEXT) == {
        "num_requests_running": 8.0,
        "num_requests_waiting": 3.0,
        "kv_cache_usage_fraction": 0.25,
    }


def _run(telemetry, seconds, until=None, timeout_s=60.0):
    """Sample for ``seconds`` -- and, on a loaded host where the sampler threads get less CPU, longer, until
    ``until(telemetry)`` holds (the counts a test asserts), at most ``timeout_s``."""
    telemetry.start()
    time.sleep(seconds)
    deadline = time.monotonic() + timeout_s
    while until is not None and not until(telemetry) and time.monotonic() < deadline:
        time.sleep(0.05)
    return telemetry.stop()


def _count(telemetry, source, index=None, after=None) -> int:
    return sum(
        r[1] == source and (index is None or r[2] == index) and (after is None or r[0] > after)
        for r in list(telemetry.rows)
    )


def test_sampler_records_every_gpu_field(fake_nvml):
    t0 = time.time()
    gpus = [FakeGPU([(t0 - 1, 80.0), (t0 + 0.2, 400.0)]), FakeGPU([(t0 - 1, 75.0)], instant_field=False)]
    fake_nvml(gpus)
    tel = Telemetry(hz=20, gpu_indices=[0, 1])
    frame = _run(
        tel,
        0.5,
        until=lambda t: (
            _count(t, "host") >= 5
            and min(_count(t, "nvml", i) for i in (0, 1)) >= 4
            and _count(t, "nvml", 0, after=t0 + 0.25) >= 1
        ),
    )
    assert list(frame.columns) == list(COLUMNS)
    nvml = frame[frame["source"] == "nvml"]
    for index, gpu in enumerate(gpus):
        rows = nvml[nvml["gpu_index"] == index]
        assert len(rows) >= 4  # 20 Hz for 0.5 s, with slack for a loaded 2-core host
        expected = [gpu.power_at(t) for t in rows["time_s"]]
        assert rows["power_watts"].tolist() == pytest.approx(expected, abs=1e-3)
        assert rows["memory_used_mib"].eq(30 * 1024).all() and rows["sm_clock_mhz"].eq(1980).all()
        assert rows["temperature_celsius"].eq(55).all() and rows["throttle_reasons"].eq(0).all()
        assert rows["energy_counter_joules"].is_monotonic_increasing
    busy = nvml[(nvml["gpu_index"] == 0) & (nvml["time_s"] > t0 + 0.25)]
    assert busy["gpu_utilization_percent"].eq(95).all()
    assert tel.info["power_source"] == {
        "0": "nvml/power-instant-field",
        "1": "nvml/power-usage (1 s average on Ampere and newer)",
    }
    assert tel.info["power_limit_watts"] == {"0": 700.0, "1": 700.0}
    assert tel.info["nvml"] == "ok" and tel.errors == []
    assert (frame["source"] == "host").sum() >= 5


def test_without_nvml_only_host_samples(no_nvml):
    tel = Telemetry(hz=20, gpu_indices=[0])
    frame = _run(tel, 0.3)
    assert set(frame["source"]) == {"host"}
    assert frame["process_rss_mib"].gt(10).all() and frame["process_cpu_percent"].notna().all()
    assert tel.info["nvml"].startswith("unavailable: NVML:") and "host samples only" in tel.info["nvml"]


def test_a_sampler_that_raises_mid_run_keeps_going(fake_nvml):
    t0 = time.time()
    fake_nvml([FakeGPU([(t0 - 1, 300.0)], fail_from_s=t0 + 0.15)])
    tel = Telemetry(hz=20, gpu_indices=[0])
    frame = _run(tel, 0.5, until=lambda t: len(t.errors) >= 3 and _count(t, "host", after=t0 + 0.3) >= 2)  # no raise
    assert tel.info["error_count"] >= 3 and "GPU is lost" in tel.info["errors"][0]
    late_host = frame[(frame["source"] == "host") & (frame["time_s"] > t0 + 0.3)]
    assert len(late_host) >= 2  # the thread survived the NVML errors
    assert frame[frame["source"] == "nvml"]["time_s"].max() < t0 + 0.2


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = METRICS_TEXT.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_scraper_reads_vllm_gauges(no_nvml):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        tel = Telemetry(hz=10, metrics_url=url, scrape_period_s=0.1)
        frame = _run(tel, 0.45, until=lambda t: _count(t, "vllm") >= 3)
    finally:
        server.shutdown()
    vllm = frame[frame["source"] == "vllm"]
    assert len(vllm) >= 3 and tel.errors == []
    assert vllm["num_requests_running"].eq(8).all() and vllm["kv_cache_usage_fraction"].eq(0.25).all()


def test_scraper_errors_are_recorded_not_raised(no_nvml):
    tel = Telemetry(hz=10, metrics_url="http://127.0.0.1:9/metrics", scrape_period_s=0.1)
    frame = _run(tel, 0.25, until=lambda t: len(t.errors) >= 1)
    assert tel.info["error_count"] >= 1 and tel.info["errors"][0].startswith("vllm-scraper: ")
    assert (frame["source"] == "vllm").sum() == 0


def test_coverage_fraction_counts_expected_samples():
    times = [100.0 + 0.1 * k for k in range(201)]  # 20 s at 10 Hz
    gpu0 = pd.DataFrame({"time_s": times, "source": "nvml", "gpu_index": 0})
    gpu1 = pd.DataFrame({"time_s": times[::2], "source": "nvml", "gpu_index": 1})  # half the samples
    vllm = pd.DataFrame({"time_s": [100.0 + k for k in range(21)], "source": "vllm", "gpu_index": None})
    frame = pd.concat([gpu0, gpu1, vllm], ignore_index=True)
    assert coverage_fraction(frame, 100.0, 120.0, 10, [0], None) == 1.0
    assert coverage_fraction(frame, 100.0, 120.0, 10, [0, 1], None) == pytest.approx(101 / 200)
    assert coverage_fraction(frame, 100.0, 110.0, 10, [0], "http://x") == 1.0  # 11 scrapes for 10 expected
    assert coverage_fraction(frame, 100.0, 100.5, 10, [0], None) is None  # 5 samples: too short to judge


def test_idle_power_from_the_energy_counter(fake_nvml):
    clock = FakeClock()  # the GPUs' counters and the timed span on one clock that moves only by the sleeps
    fake_nvml(
        [FakeGPU([(clock() - 5, 61.5)], clock=clock), FakeGPU([(clock() - 5, 72.0)], clock=clock, instant_field=False)]
    )
    idle = measure_idle_power(0.3, hz=20, sleep=clock.advance, clock=clock)
    assert idle == {0: pytest.approx(61.5, abs=2e-3 / 0.3), 1: pytest.approx(72.0, abs=2e-3 / 0.3)}  # mJ rounding


def test_idle_power_without_nvml_is_empty(no_nvml):
    assert measure_idle_power(0.1) == {}
