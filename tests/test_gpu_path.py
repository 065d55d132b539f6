"""GPU-path defects, at the NVML/Zeus fake boundary: CUDA_VISIBLE_DEVICES with UUIDs, MIG ids or nothing;
NVML functions an older driver lacks; KV-cache use with one label set per engine."""

from __future__ import annotations

import time

import pytest

from conftest import FakeClock, FakeGPU
from harness.measuring import device, telemetry
from harness.measuring.device import nvml_problem
from harness.measuring.energy import ZeusMeter

UUIDS = ("GPU-aaaaaaaa-1111-2222-3333-444444444444", "GPU-bbbbbbbb-1111-2222-3333-444444444444")


def _two(fake_nvml, clock=time.time, **kw):
    first = FakeGPU([(clock() - 10, 100.0)], clock=clock, uuid=UUIDS[0], **kw)
    second = FakeGPU(
        [(clock() - 10, 250.0)], clock=clock, uuid=UUIDS[1], migs=("MIG-cccccccc-1111-2222-3333-444444444444",)
    )
    fake_nvml([first, second])
    return first, second


@pytest.mark.parametrize(
    "value, expect",
    [
        (None, [0, 1]),
        ("1", [1]),
        ("1,0", [1, 0]),
        (f"{UUIDS[1]},{UUIDS[0]}", [1, 0]),
        ("GPU-bbbbbbbb", [1]),  # a unique UUID prefix, as CUDA accepts
        ("MIG-cccccccc-1111-2222-3333-444444444444", [1]),  # the GPU that holds the slice
        (f"MIG-{UUIDS[0]}/1/0", [0]),  # the older MIG-GPU-<uuid>/<gi>/<ci> form
        ("0,7,1", [0]),  # CUDA stops at the first entry it cannot resolve
        ("", []),
    ],
)
def test_visible_devices_map_to_nvml_indices(fake_nvml, monkeypatch, value, expect):
    _two(fake_nvml)
    if value is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    found = device.visible_gpus()
    assert [g.nvml_index for g in found] == expect
    assert [g.cuda_index for g in found] == list(range(len(expect)))


def test_zeus_gets_nvml_indices_for_uuids_and_measures_the_right_gpu(fake_nvml, monkeypatch):
    clock = FakeClock(time.time())
    _first, _second = _two(fake_nvml, clock=clock)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", UUIDS[1])  # Zeus 0.16 alone: int("GPU-...") raises
    meter = ZeusMeter([0], clock=clock)
    assert meter.gpu_source == "zeus/nvml-energy-counter" and meter.gpu_indices == [0]
    assert __import__("os").environ["CUDA_VISIBLE_DEVICES"] == UUIDS[1]  # restored for the server
    meter.begin("w")
    clock.advance(2.0)
    window = meter.end("w")
    assert window.gpu_energy_joules == {0: pytest.approx(500.0)}  # 250 W of the second GPU, not 100 W
    meter.close()


def test_a_mig_slice_measures_its_gpu_and_says_so(fake_nvml, monkeypatch):
    clock = FakeClock(time.time())
    _two(fake_nvml, clock=clock)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-cccccccc-1111-2222-3333-444444444444")
    meter = ZeusMeter([0], clock=clock)
    assert "whole GPU" in meter.gpu_source
    meter.begin("w")
    clock.advance(1.0)
    assert meter.end("w").gpu_energy_joules == {0: pytest.approx(250.0)}


def test_empty_cuda_visible_devices_means_no_gpu(fake_nvml, monkeypatch):
    _two(fake_nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert nvml_problem() == 'CUDA_VISIBLE_DEVICES="" hides every GPU'
    meter = ZeusMeter(None)
    assert meter.gpu_indices == [] and meter.gpu_source.startswith("none: no NVIDIA GPU (CUDA_VISIBLE_DEVICES")
    from harness.measuring import envinfo

    envinfo.capture.cache_clear()
    assert envinfo.capture()["gpu_count"] == 0
    assert not telemetry.NvmlReader(None).available


def test_the_device_layer_reads_a_gpu_in_the_units_its_names_say(fake_nvml):
    clock = FakeClock(1_000.0)
    gpu = FakeGPU([(990.0, 250.0)], clock=clock, power_limit_watts=700.0, memory_total_bytes=80 * 2**30, uuid=UUIDS[0])
    fake_nvml([gpu])
    (only,) = device.visible_gpus()
    assert (only.cuda_index, only.nvml_index, only.mig) == (0, 0, False)
    assert (only.name(), only.uuid()) == ("NVIDIA H100 80GB HBM3", UUIDS[0])
    assert only.power_usage_watts() == 250.0 and only.instant_power_watts() == 250.0
    assert only.power_limit_watts() == 700.0 and only.memory_total_bytes() == 80 * 2**30
    assert only.memory_used_bytes() == 30 * 2**30 and only.utilization_percent() == 95.0
    before = only.energy_millijoules()
    clock.advance(2.0)
    assert only.energy_millijoules() - before == 500_000  # 250 W for 2 s = 500 J
    gpu.set_power(40.0)
    assert only.power_usage_watts() == 40.0 and only.utilization_percent() == 0.0
    assert (device.driver_version(), device.cuda_driver_version()) == ("580.65.06", "13.0")


def test_without_nvml_the_device_layer_says_why(no_nvml):
    assert nvml_problem().startswith("NVML: ")
    with pytest.raises(device.NvmlUnavailable, match=r"^NVML: "):
        device.visible_gpus()
    assert not telemetry.NvmlReader(None).available and telemetry.NvmlReader(None).problem.startswith("NVML: ")


def test_a_missing_nvml_function_blanks_its_column_only(fake_nvml):
    gpu = FakeGPU(
        [(time.time() - 10, 90.0)],
        missing=(
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
            "nvmlDeviceGetTemperature",
        ),
    )
    fake_nvml([gpu])
    reader = telemetry.NvmlReader([0])
    for _ in range(3):  # every tick: the row stays, only the missing readings are None
        row = dict(zip(telemetry.NVML_COLUMNS, reader.sample(0), strict=False))
        assert row["power_watts"] == pytest.approx(90.0) and row["throttle_reasons"] is None
        assert row["temperature_celsius"] == 56.0  # the deprecated call is missing: nvmlDeviceGetTemperatureV
    assert (0, "throttle_reasons") in reader.unsupported

    gpu.missing.add("nvmlDeviceGetTemperatureV")
    fresh = telemetry.NvmlReader([0])
    assert dict(zip(telemetry.NVML_COLUMNS, fresh.sample(0), strict=False))["temperature_celsius"] is None
    assert (0, "temperature_celsius") in fresh.unsupported  # function-not-found on every call: no such reading
    with pytest.raises(device.ReadingUnsupported):
        fresh.handles[0].temperature_celsius()


def test_a_real_sampler_error_still_counts(fake_nvml):
    import pynvml

    fake_nvml([FakeGPU([(time.time() - 10, 90.0)], fail_from_s=0)])
    with pytest.raises(pynvml.NVMLError):
        telemetry.NvmlReader([0]).sample(0)


def test_kv_cache_usage_is_the_mean_over_engines_and_counts_add_up():
    text = (
        "\n".join(
            [
                "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
                "# TYPE vllm:kv_cache_usage_perc gauge",
                'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.8',
                'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6',
                "# TYPE vllm:num_requests_running gauge",
                'vllm:num_requests_running{engine="0",model_name="m"} 5',
                'vllm:num_requests_running{engine="1",model_name="m"} 3',
                "# TYPE vllm:gpu_cache_usage_perc gauge",  # the older alias, exported beside it: not added on top
                'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.8',
                'vllm:gpu_cache_usage_perc{engine="1",model_name="m"} 0.6',
            ]
        )
        + "\n"
    )
    out = telemetry.parse_vllm_metrics(text)
    assert out["kv_cache_usage_fraction"] == pytest.approx(0.7)
    assert out["num_requests_running"] == 8.0


def test_older_vllm_kv_cache_name_alone_still_reads():
    out = telemetry.parse_vllm_metrics(
        '# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{e="0"} 0.25\n'
    )
    assert out == {"kv_cache_usage_fraction": 0.25}
