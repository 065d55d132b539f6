"""Where energy comes from when Zeus cannot give it: why RAPL is unreadable (``rapl_problem``, against a stand-in
RAPL folder), and the NVML energy counter read directly (``NvmlCounterMonitor``, ``open_meter_with_nvml_fallback``)
over a stand-in NVML reader whose counters are set by hand."""

from __future__ import annotations

import sys
from typing import ClassVar

import pytest
import zeus.device.cpu
import zeus.monitor
from zeus.device.cpu import rapl

from conftest import FakeClock
from harness.measuring import device as gpus
from harness.measuring import energy, telemetry
from harness.measuring.energy import NvmlCounterMonitor, ZeusMeter, open_meter_with_nvml_fallback


@pytest.fixture(autouse=True)
def _no_visible_devices_variable(monkeypatch):
    monkeypatch.delenv(gpus.ENV, raising=False)


# --- rapl_problem ---------------------------------------------------------------------------------------------


@pytest.fixture
def rapl_dirs(tmp_path, monkeypatch):
    """A host RAPL folder and a container one (both absent until made), with a colon in their path as in
    ``/sys/class/powercap/intel-rapl:0``; RAPLCPU records what it is asked and raises what ``failures`` says."""
    host, container = tmp_path / "host:sys" / "intel-rapl", tmp_path / "zeus:sys" / "intel-rapl"
    calls, failures = [], {}

    def raplcpu(index, folder):
        calls.append((index, folder))
        if index in failures:
            raise failures[index]

    monkeypatch.setattr(rapl, "RAPL_DIR", str(host))
    monkeypatch.setattr(rapl, "CONTAINER_RAPL_DIR", str(container))
    monkeypatch.setattr(rapl, "rapl_is_available", lambda: True)
    monkeypatch.setattr(rapl, "RAPLCPU", raplcpu)
    return host, container, calls, failures


def _packages(folder, *names):
    for name in names:
        (folder / name).mkdir(parents=True)


def test_rapl_without_zeus_says_zeus_is_unavailable(monkeypatch):
    monkeypatch.delattr(zeus.device.cpu, "rapl")
    monkeypatch.setitem(sys.modules, "zeus.device.cpu.rapl", None)
    assert energy.rapl_problem() == (
        "Zeus unavailable (ModuleNotFoundError: import of zeus.device.cpu.rapl halted; None in sys.modules)"
    )


def test_rapl_absent_from_the_host(rapl_dirs, monkeypatch):
    host, _, calls, _ = rapl_dirs
    monkeypatch.setattr(rapl, "rapl_is_available", lambda: False)
    assert energy.rapl_problem() == f"no RAPL on this host: {host} does not exist"
    assert calls == []


def test_every_readable_package_is_opened_in_order_and_then_there_is_no_problem(rapl_dirs):
    host, _, calls, _ = rapl_dirs
    _packages(host, "intel-rapl:1", "intel-rapl:0", "intel-rapl:mmio", "other:2")
    assert energy.rapl_problem() is None
    assert calls == [(0, str(host)), (1, str(host))]  # numbered packages only, by number, in the host folder


def test_a_container_reads_the_container_folder(rapl_dirs):
    _, container, calls, _ = rapl_dirs
    _packages(container, "intel-rapl:0")
    assert energy.rapl_problem() is None
    assert calls == [(0, str(container))]


def test_a_folder_without_packages(rapl_dirs):
    host, _, calls, _ = rapl_dirs
    _packages(host, "intel-rapl:mmio")
    assert energy.rapl_problem() == f"no CPU package under {host}"
    assert calls == []


def test_the_first_unreadable_package_is_named_with_zeus_reason(rapl_dirs):
    host, _, calls, failures = rapl_dirs
    _packages(host, "intel-rapl:0", "intel-rapl:1", "intel-rapl:2")
    failures[1] = ValueError("energy_uj is empty")
    failures[2] = ValueError("not reached")
    assert energy.rapl_problem() == "RAPL package 1 cannot be read (ValueError: energy_uj is empty)"
    assert calls == [(0, str(host)), (1, str(host))]


def test_a_permission_error_behind_zeus_error_names_the_file(rapl_dirs):
    host, _, _, failures = rapl_dirs
    _packages(host, "intel-rapl:0")
    try:
        raise PermissionError(13, "Permission denied", "/sys/x/energy_uj")
    except PermissionError as cause:
        error = RuntimeError("cannot read")
        error.__cause__ = cause
    failures[0] = error
    assert energy.rapl_problem() == (
        "RAPL package 0 cannot be read: permission denied on /sys/x/energy_uj "
        "(RAPL needs root or read access to energy_uj)"
    )


def test_a_permission_error_raised_directly_names_the_file(rapl_dirs):
    host, _, _, failures = rapl_dirs
    _packages(host, "intel-rapl:3")
    failures[3] = PermissionError(13, "Permission denied", "/sys/y/energy_uj")
    assert energy.rapl_problem() == (
        "RAPL package 3 cannot be read: permission denied on /sys/y/energy_uj "
        "(RAPL needs root or read access to energy_uj)"
    )


def test_an_error_caused_by_something_else_is_named_as_zeus_raised_it(rapl_dirs):
    host, _, _, failures = rapl_dirs
    _packages(host, "intel-rapl:0")
    error = RuntimeError("cannot read")
    error.__cause__ = OSError("disk")
    failures[0] = error
    assert energy.rapl_problem() == "RAPL package 0 cannot be read (RuntimeError: cannot read)"


# --- the NVML energy counter read directly --------------------------------------------------------------------


class Reader:
    """A stand-in NvmlReader: ``counters`` (J) per physical GPU, set by the test; ``made`` lists each reader's
    indices."""

    counters: ClassVar[dict[int, float | None]] = {}
    made: ClassVar[list] = []

    def __init__(self, gpu_indices=None):
        Reader.made.append(gpu_indices)
        everything = sorted(Reader.counters)
        self.handles = {i: f"gpu{i}" for i in (everything if gpu_indices is None else gpu_indices)}

    def energy_joules(self, index):
        return Reader.counters[index]


@pytest.fixture
def reader(monkeypatch):
    monkeypatch.setattr(telemetry, "NvmlReader", Reader)
    monkeypatch.setattr(Reader, "counters", {0: 100.0, 1: None, 2: 50.0})
    monkeypatch.setattr(Reader, "made", [])
    return Reader


def test_the_counter_monitor_counts_every_gpu_and_reads_only_those_asked(reader):
    monitor = NvmlCounterMonitor([2, 0])
    assert reader.made == [None, [2, 0]]
    assert len(monitor.gpus) == 3 and sorted(monitor.reader.handles) == [0, 2]
    assert monitor.cpu_indices == [] and monitor._open == {}
    assert monitor.gpus.supports_get_total_energy_consumption(0)
    assert not monitor.gpus.supports_get_total_energy_consumption(1)  # no counter on this one
    everything = NvmlCounterMonitor()
    assert reader.made[-1] is None and sorted(everything.reader.handles) == [0, 1, 2]
    assert everything.reader is everything.gpus.reader


def test_the_counter_monitor_gives_each_gpu_the_counter_difference(reader):
    monitor = NvmlCounterMonitor([0, 1, 2])
    monitor.begin_window("w")
    assert monitor._open == {"w": {0: 100.0, 1: None, 2: 50.0}}
    reader.counters.update({0: 130.5, 1: 7.0, 2: None})
    measured = monitor.end_window("w")
    assert measured.gpu_energy == {0: 30.5, 1: None, 2: None}  # a counter missing at either end: no energy
    assert (measured.cpu_energy, measured.dram_energy) == (None, None)
    assert monitor._open == {}
    with pytest.raises(KeyError):
        monitor.end_window("w")


def test_a_cancelled_counter_window_measures_nothing(reader):
    monitor = NvmlCounterMonitor([0])
    monitor.begin_window("a")
    monitor.begin_window("b")
    assert monitor.end_window("a", cancel=True) is None
    assert list(monitor._open) == ["b"]


class BrokenZeus:
    def __init__(self, *args, **kwargs):
        raise ImportError("No module named 'pandas'")


class WorkingZeus:
    """A ZeusMonitor with two GPUs with counters; its windows measure 1 J per GPU."""

    def __init__(self, gpu_indices):
        self.gpu_indices, self.cpu_indices = list(gpu_indices), [0]
        self.gpus = NvmlCounterMonitor._Gpus(Reader(None), 2)

    def begin_window(self, name, sync_execution=True):
        pass

    def end_window(self, name, sync_execution=True, cancel=False):
        return NvmlCounterMonitor._Measurement(dict.fromkeys(self.gpu_indices, 1.0))


def test_without_zeus_the_meter_reads_the_nvml_counter_directly(reader, monkeypatch):
    monkeypatch.setattr(zeus.monitor, "ZeusMonitor", BrokenZeus)
    monkeypatch.setattr(energy, "rapl_problem", lambda: None)
    meter = open_meter_with_nvml_fallback([0])
    assert meter.gpu_indices == [0]  # only the GPU asked for, of the three
    assert (
        meter.gpu_source
        == "nvml-energy-counter (read directly; Zeus unavailable (ImportError: No module named 'pandas'))"
    )
    assert meter.cpu_source == "cpu: not measured (Zeus unavailable)"
    clock = FakeClock()
    meter.clock = clock
    meter.begin("w")
    reader.counters[0] = 160.0
    window = meter.end("w", sync=False)
    assert window.gpu_energy_joules == {0: 60.0}


def test_zeus_that_works_is_kept(reader, monkeypatch):
    monkeypatch.setattr(zeus.monitor, "ZeusMonitor", WorkingZeus)
    meter = open_meter_with_nvml_fallback([0])
    assert meter.energy_source == "zeus/nvml-energy-counter; cpu: zeus/rapl"
    assert isinstance(meter._monitor, WorkingZeus) and meter.gpu_indices == [0]


def test_no_fallback_where_no_gpu_is_asked_for_or_zeus_sees_none(reader, monkeypatch):
    monkeypatch.setattr(energy, "rapl_problem", lambda: None)
    monkeypatch.setattr(energy, "nvml_problem", lambda: "NVML found no devices")
    monkeypatch.setattr(zeus.monitor, "ZeusMonitor", BrokenZeus)
    none_asked = open_meter_with_nvml_fallback([])
    assert none_asked.gpu_source == "none: Zeus unavailable (ImportError: No module named 'pandas')"
    assert reader.made == []  # NVML never asked

    class NoGpuZeus(WorkingZeus):
        def __init__(self, gpu_indices):
            super().__init__(gpu_indices)
            self.gpus = NvmlCounterMonitor._Gpus(Reader(None), 0)

    monkeypatch.setattr(zeus.monitor, "ZeusMonitor", NoGpuZeus)
    no_gpu = open_meter_with_nvml_fallback([0])
    assert no_gpu.energy_source == "none: no NVIDIA GPU (NVML found no devices); cpu: zeus/rapl"
    assert isinstance(no_gpu._monitor, NoGpuZeus)


def test_the_fallback_without_nvml_gpus_says_so(reader, monkeypatch):
    monkeypatch.setattr(zeus.monitor, "ZeusMonitor", BrokenZeus)
    monkeypatch.setattr(energy, "rapl_problem", lambda: None)
    monkeypatch.setattr(energy, "nvml_problem", lambda: "NVML found no devices")
    monkeypatch.setattr(Reader, "counters", {})
    meter = open_meter_with_nvml_fallback([0])
    assert not meter.has_gpu_energy
    assert meter.energy_source == "none: no NVIDIA GPU (NVML found no devices); cpu: not measured (RAPL not readable)"
    assert isinstance(meter._monitor, NvmlCounterMonitor)


def test_a_meter_over_the_counter_monitor_is_a_plain_zeus_meter(reader):
    meter = ZeusMeter([2], monitor_factory=NvmlCounterMonitor)
    assert meter.gpu_source == "zeus/nvml-energy-counter"
