"""ZeusMeter's bookkeeping against a stand-in monitor: what it asks Zeus, what it says about its sources, how it
fails; and why NVML cannot be used (the replayed-trace energy itself is in test_energy.py)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from conftest import FakeClock, FakeGPU
from harness.errors import HarnessError
from harness.measuring import device as gpus
from harness.measuring import energy
from harness.measuring.energy import WindowMeasurement, ZeusMeter


class _GPUs:
    def __init__(self, count: int, old=()):
        self.count, self.old = count, set(old)

    def __len__(self) -> int:
        return self.count

    def supports_get_total_energy_consumption(self, index: int) -> bool:
        return index not in self.old


class Monitor:
    """What ZeusMeter uses of ``zeus.monitor.ZeusMonitor``; every call is logged in ``calls``."""

    def __init__(self, gpu_indices, count=2, cpus=(), old=(), log=None, fail_end=False):
        self.gpu_indices, self.gpus, self.cpu_indices = list(gpu_indices), _GPUs(count, old), list(cpus)
        self.calls = log if log is not None else []
        self.fail_end = fail_end
        self.calls.append(("init", list(gpu_indices)))

    def begin_window(self, name, sync_execution=True):
        self.calls.append(("begin", name, sync_execution))

    def end_window(self, name, sync_execution=True, cancel=False):
        self.calls.append(("end", name, sync_execution, cancel))
        if self.fail_end:
            raise RuntimeError("counter read failed")
        return SimpleNamespace(
            gpu_energy={i: 10.0 * (i + 1) for i in self.gpu_indices}, cpu_energy={"0": 4, 1: 5.5}, dram_energy={0: 1}
        )


def factory(log, **kw):
    return lambda gpu_indices: Monitor(gpu_indices, log=log, **kw)


@pytest.fixture(autouse=True)
def _no_visible_devices_variable(monkeypatch):
    monkeypatch.delenv(gpus.ENV, raising=False)
    # RAPL's reason is the host's (energy.rapl_problem); without one the source falls back to "RAPL not readable"
    monkeypatch.setattr(energy, "rapl_problem", lambda: None)


def test_windows_ask_zeus_without_its_synchronisation_and_read_every_counter():
    log, clock = [], FakeClock(50.0)
    meter = ZeusMeter([1, 0], clock=clock, monitor_factory=factory(log, cpus=[0, 1]))
    assert log == [("init", []), ("init", [1, 0])]  # a zero-GPU probe, then the GPUs asked for
    assert meter.gpu_indices == [1, 0] and meter.has_gpu_energy and meter.mig_note is None
    assert meter.energy_source == "zeus/nvml-energy-counter; cpu: zeus/rapl"
    meter.begin("steady")
    clock.advance(2.5)
    window = meter.end("steady")
    assert log[2:] == [("begin", "steady", False), ("end", "steady", False, False)]
    assert window == WindowMeasurement(
        "steady", 50.0, 52.5, {1: 20.0, 0: 10.0}, {0: 4.0, 1: 5.5}, {0: 1.0}, "zeus/nvml-energy-counter; cpu: zeus/rapl"
    )
    assert all(isinstance(v, float) for v in window.cpu_energy_joules.values())
    assert meter.windows == {"steady": window} and window.duration_s == 2.5 and window.total_gpu_energy_joules == 30.0
    assert meter.open_windows() == []


def test_a_counter_read_that_fails_keeps_the_window_without_energy():
    log, clock = [], FakeClock(10.0)
    meter = ZeusMeter([0], clock=clock, monitor_factory=factory(log, fail_end=True))
    meter.begin("run")
    clock.advance(1.0)
    window = meter.end("run")
    assert window.gpu_energy_joules == {0: None} and window.total_gpu_energy_joules is None
    assert window.cpu_energy_joules == {} and window.dram_energy_joules == {}
    assert (window.start_time_s, window.end_time_s) == (10.0, 11.0)
    assert window.energy_source == "none: Zeus failed at window end (RuntimeError: counter read failed)"


def test_closing_cancels_open_windows_even_when_zeus_raises():
    log = []
    meter = ZeusMeter(None, clock=FakeClock(), monitor_factory=factory(log, count=3))
    assert meter.gpu_indices == [0, 1, 2]  # None: every visible GPU
    meter.begin("a")
    meter.begin("b")
    with pytest.raises(ValueError, match="energy window 'a' is already open"):
        meter.begin("a")
    assert meter.open_windows() == ["a", "b"]
    assert meter.close() == ["a", "b"] and meter.open_windows() == []
    assert log[-2:] == [("end", "a", False, True), ("end", "b", False, True)]
    with pytest.raises(ValueError, match="energy window 'a' is not open"):
        meter.end("a")
    failing = ZeusMeter([0], clock=FakeClock(), monitor_factory=factory([], fail_end=True))
    failing.begin("x")
    assert failing.close() == ["x"]


def test_sources_name_what_is_not_measured():
    old = ZeusMeter([0, 1], monitor_factory=factory([], old=[1]))
    assert old.energy_source == "zeus/nvml-power-integration; cpu: not measured (RAPL not readable)"
    log = []
    none_asked = ZeusMeter([], monitor_factory=factory(log, cpus=[0]))
    assert none_asked.energy_source == "none: no GPU was asked for; cpu: zeus/rapl" and not none_asked.has_gpu_energy
    assert log == [("init", [])]  # no second monitor: the probe serves
    with pytest.raises(HarnessError, match=r"asked for GPUs \[0, 2\] but only 2 visible"):
        ZeusMeter([0, 2], monitor_factory=factory([]))
    with pytest.raises(HarnessError, match=r"asked for GPUs \[-1\] but only 2 visible"):
        ZeusMeter([-1], monitor_factory=factory([]))


def test_without_zeus_windows_still_have_times(no_nvml):
    def broken(gpu_indices):
        raise ImportError("no module named zeus")

    clock = FakeClock(5.0)
    meter = ZeusMeter([0], clock=clock, monitor_factory=broken)
    assert meter.energy_source == (
        "none: Zeus unavailable (ImportError: no module named zeus); cpu: not measured (Zeus unavailable)"
    )
    assert meter.gpu_indices == [] and meter._monitor is None and meter.mig_note is None
    meter.begin("w")
    clock.advance(3.0)
    window = meter.end("w", sync=False)
    assert (window.duration_s, window.gpu_energy_joules, window.total_gpu_energy_joules) == (3.0, {}, None)
    assert window.energy_source == meter.energy_source  # nothing was asked of a monitor that does not exist
    assert meter.close() == []


def test_a_gpu_zeus_reports_no_energy_for_is_none_and_a_monitor_without_cpus_says_so():
    class Partial(Monitor):
        def end_window(self, name, sync_execution=True, cancel=False):
            return SimpleNamespace(gpu_energy={0: 7}, cpu_energy=None, dram_energy=None)

    meter = ZeusMeter([0, 1], clock=FakeClock(), monitor_factory=lambda gpu_indices: Partial(gpu_indices))
    meter.begin("w")
    window = meter.end("w")
    assert window.gpu_energy_joules == {0: 7.0, 1: None} and window.total_gpu_energy_joules is None
    assert (window.cpu_energy_joules, window.dram_energy_joules) == ({}, {})

    class NoCPUs(Monitor):
        def __init__(self, gpu_indices):
            super().__init__(gpu_indices)
            del self.cpu_indices

    assert (
        ZeusMeter([0], monitor_factory=NoCPUs).energy_source
        == "zeus/nvml-energy-counter; cpu: not measured (RAPL not readable)"
    )


def test_no_gpu_says_why(no_nvml):
    meter = ZeusMeter([0], monitor_factory=factory([], count=0))
    assert meter.gpu_indices == [] and not meter.has_gpu_energy
    assert meter.energy_source.startswith("none: no NVIDIA GPU (NVML: ")
    assert meter.energy_source.endswith("; cpu: not measured (RAPL not readable)")


def test_no_gpu_and_no_reason_from_nvml(monkeypatch):
    monkeypatch.setattr(energy, "nvml_problem", lambda: None)
    meter = ZeusMeter(None, monitor_factory=factory([], count=0, cpus=[0]))
    assert meter.energy_source == "none: no NVIDIA GPU (ZeusMonitor found no GPUs); cpu: zeus/rapl"


def test_a_hidden_gpu_list_and_a_mig_slice(fake_nvml, monkeypatch):
    gpu = FakeGPU([(0.0, 100.0)], migs=("MIG-aaaa",))
    fake_nvml([gpu, FakeGPU([(0.0, 100.0)])])
    monkeypatch.setenv(gpus.ENV, "")
    hidden = ZeusMeter(None, monitor_factory=factory([]))
    assert hidden.gpu_indices == [] and hidden.energy_source.startswith('none: no NVIDIA GPU (CUDA_VISIBLE_DEVICES="" ')
    assert hidden.mig_note is None
    monkeypatch.setenv(gpus.ENV, "MIG-aaaa")
    log = []
    mig = ZeusMeter(None, monitor_factory=factory(log, count=1))
    assert mig.mig_note == "MIG slice: energy of the whole GPU that holds it"
    assert mig.energy_source == (
        "zeus/nvml-energy-counter (MIG slice: energy of the whole GPU that holds it); "
        "cpu: not measured (RAPL not readable)"
    )
    import os

    assert os.environ[gpus.ENV] == "MIG-aaaa"  # shown to Zeus as NVML indices only while it builds its list
    none_asked = ZeusMeter([], monitor_factory=factory([], count=1))
    assert none_asked.mig_note is None and none_asked.energy_source.startswith("none: no GPU was asked for; ")


def test_open_meter_asks_for_the_first_gpus(monkeypatch):
    seen = []

    class Recorder(ZeusMeter):
        def __init__(self, gpu_indices=None, clock=None, monitor_factory=None):
            seen.append((gpu_indices, clock))

    monkeypatch.setattr(energy, "ZeusMeter", Recorder)
    clock = FakeClock()
    energy.open_meter(3, clock=clock)
    energy.open_meter(None, clock=clock)
    assert seen == [([0, 1, 2], clock), (None, clock)]


def test_devices_are_synchronised_only_where_this_process_uses_cuda(monkeypatch):
    calls = []

    def cuda(available, initialised, count=2):
        return SimpleNamespace(
            is_available=lambda: available,
            is_initialized=lambda: initialised,
            device_count=lambda: count,
            synchronize=calls.append,
        )

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    energy.synchronize_devices()  # no torch imported: nothing to wait for
    for available, initialised in ((False, True), (True, False), (False, False)):
        monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda(available, initialised)))
        energy.synchronize_devices()
    assert calls == []
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda(True, True, 3)))
    energy.synchronize_devices()
    assert calls == [0, 1, 2]
    log, clock = [], FakeClock()
    meter = ZeusMeter([0], clock=clock, monitor_factory=factory(log))
    meter.begin("w")
    meter.end("w", sync=False)
    assert calls == [0, 1, 2] * 2  # at begin only
    meter.begin("w")
    meter.end("w")
    assert calls == [0, 1, 2] * 4


def _pynvml(count=2, init_error=None, count_error=None):
    class NVMLError(Exception):
        pass

    def init():
        if init_error:
            raise NVMLError(init_error)

    def get_count():
        if count_error:
            raise NVMLError(count_error)
        return count

    return SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=init, nvmlDeviceGetCount=get_count, nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}"
    )


def test_why_nvml_cannot_be_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _pynvml())
    assert energy.nvml_problem() is None
    monkeypatch.setitem(sys.modules, "pynvml", _pynvml(init_error="Driver Not Loaded"))
    assert energy.nvml_problem() == "NVML: Driver Not Loaded"
    monkeypatch.setitem(sys.modules, "pynvml", _pynvml(count=0))
    assert energy.nvml_problem() == "NVML found no devices"
    monkeypatch.setitem(sys.modules, "pynvml", _pynvml(count_error="GPU is lost"))
    assert energy.nvml_problem() == "NVML: GPU is lost"
    monkeypatch.setitem(sys.modules, "pynvml", _pynvml())
    monkeypatch.setenv(gpus.ENV, "")
    assert energy.nvml_problem() == 'CUDA_VISIBLE_DEVICES="" hides every GPU'
    monkeypatch.setenv(gpus.ENV, "7")
    monkeypatch.setattr(gpus, "_resolve", lambda pynvml, item: None)
    assert energy.nvml_problem() == "no GPU of the 2 NVML lists matches CUDA_VISIBLE_DEVICES='7'"
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert energy.nvml_problem() == "nvidia-ml-py is not installed"
