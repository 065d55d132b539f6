"""ZeusMeter: exact window energy on replayed power traces (fake NVML under the real ZeusMonitor)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import FakeClock, FakeGPU
from harness.errors import HarnessError
from harness.measuring.energy import ZeusMeter


def test_window_energy_is_the_trace_integral_per_gpu(fake_nvml):
    clock = FakeClock(1000.0)
    gpus = [
        FakeGPU([(990.0, 70.0), (1001.0, 450.0), (1003.5, 620.0)], clock=clock),
        FakeGPU([(990.0, 65.0), (1002.0, 300.0)], clock=clock),
    ]
    fake_nvml(gpus)
    meter = ZeusMeter([0, 1], clock=clock)
    assert meter.energy_source.startswith("zeus/nvml-energy-counter")
    meter.begin("run")
    clock.advance(0.5)
    meter.begin("steady")
    clock.advance(4.0)
    steady = meter.end("steady")
    clock.advance(1.25)
    run = meter.end("run")

    # gpu 0 over [1000.5, 1004.5]: 0.5 s at 70 W, 2.5 s at 450 W, 1 s at 620 W
    assert steady.gpu_energy_joules[0] == pytest.approx(0.5 * 70 + 2.5 * 450 + 1.0 * 620, abs=2e-3)
    assert steady.gpu_energy_joules[1] == pytest.approx(1.5 * 65 + 2.5 * 300, abs=2e-3)
    assert steady.total_gpu_energy_joules == pytest.approx(sum(steady.gpu_energy_joules.values()))
    assert (steady.start_time_s, steady.end_time_s, steady.duration_s) == (1000.5, 1004.5, 4.0)
    for i, gpu in enumerate(gpus):
        assert run.gpu_energy_joules[i] == pytest.approx(gpu.energy_joules_between(1000.0, 1005.75), abs=2e-3)
    assert meter.windows == {"steady": steady, "run": run}


def test_host_without_gpu_gives_null_energy_never_zero(no_nvml):
    clock = FakeClock()
    meter = ZeusMeter([0], clock=clock)
    assert meter.gpu_indices == [] and not meter.has_gpu_energy
    meter.begin("steady")
    clock.advance(2.0)
    window = meter.end("steady")
    assert window.gpu_energy_joules == {}
    assert window.total_gpu_energy_joules is None
    assert window.duration_s == 2.0
    assert window.energy_source.startswith("none: no NVIDIA GPU (NVML:")


def test_asking_for_more_gpus_than_visible_is_an_error(fake_nvml):
    fake_nvml([FakeGPU([(0.0, 100.0)])])
    with pytest.raises(HarnessError, match=r"asked for GPUs \[0, 1\] but only 1 visible"):
        ZeusMeter([0, 1])
    assert ZeusMeter([]).energy_source.startswith("none: no GPU was asked for")


class _Gpus(list):
    def supports_get_total_energy_consumption(self, index):
        return True


class _FakeZeus:
    """The Zeus boundary itself, for what the CPU host cannot show: RAPL readings and failures."""

    def __init__(self, gpu_indices, fail_at_end=False):
        self.gpu_indices, self.cpu_indices, self.fail_at_end = gpu_indices, [0, 1], fail_at_end
        self.gpus = _Gpus([object(), object()])
        self.cancelled = []

    def begin_window(self, name, sync_execution=True):
        assert sync_execution is False  # the meter synchronises itself

    def end_window(self, name, sync_execution=True, cancel=False):
        if cancel:
            self.cancelled.append(name)
            return None
        if self.fail_at_end:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST")
        return SimpleNamespace(
            gpu_energy={i: 100.0 * (i + 1) for i in self.gpu_indices},
            cpu_energy={0: 30.0, 1: 31.0},
            dram_energy={0: 4.0, 1: 5.0},
        )


def _factory(**kwargs):
    return lambda gpu_indices: _FakeZeus(gpu_indices, **kwargs)


def test_rapl_cpu_and_dram_energy_pass_through():
    meter = ZeusMeter([0, 1], monitor_factory=_factory())
    assert meter.energy_source == "zeus/nvml-energy-counter; cpu: zeus/rapl"
    meter.begin("w")
    window = meter.end("w")
    assert window.gpu_energy_joules == {0: 100.0, 1: 200.0}
    assert window.cpu_energy_joules == {0: 30.0, 1: 31.0}
    assert window.dram_energy_joules == {0: 4.0, 1: 5.0}


def test_a_counter_failure_loses_the_energy_not_the_window():
    meter = ZeusMeter([0, 1], monitor_factory=_factory(fail_at_end=True))
    meter.begin("w")
    window = meter.end("w")
    assert window.gpu_energy_joules == {0: None, 1: None}
    assert window.total_gpu_energy_joules is None
    assert window.energy_source.startswith("none: Zeus failed at window end")


def test_window_misuse_and_close():
    meter = ZeusMeter([0], monitor_factory=_factory())
    with pytest.raises(ValueError, match="not open"):
        meter.end("never")
    meter.begin("a")
    with pytest.raises(ValueError, match="already open"):
        meter.begin("a")
    meter.begin("b")
    assert meter.close() == ["a", "b"]
    assert meter._monitor.cancelled == ["a", "b"] and meter.open_windows() == []
