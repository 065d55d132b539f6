"""Energy windows through Zeus: the only module that reads energy counters.

    from harness.measuring.energy import open_meter
    meter = open_meter(num_gpus=2)         # GPUs 0..1 as CUDA numbers them (CUDA_VISIBLE_DEVICES applies)
    meter.begin("steady")
    ...                                    # the measured region
    m = meter.end("steady")                # harness.measuring.energy.WindowMeasurement
    m.gpu_energy_joules                    # {0: 1234.5, 1: 1220.1}; {} on a host without GPUs
    m.total_gpu_energy_joules              # summed over GPUs; None when there is no counter
    m.energy_source                        # "zeus/nvml-energy-counter; cpu: not measured (...)"
    meter.close()                          # cancels windows left open (a failed run)

GPU energy is the difference of NVML's energy counter read by ``ZeusMonitor``
at the window's ends (Zeus integrates power itself only on pre-Volta GPUs);
CPU package and DRAM energy come from RAPL when Zeus can read it (where it cannot,
``energy_source`` says why, :func:`rapl_problem`; :mod:`harness.measuring.node` puts them beside
GPU energy). On a host
without a GPU the window still has times, but ``gpu_energy_joules`` is empty,
the totals are ``None`` and ``energy_source`` says why: never 0 J.

Device synchronisation: before a window's begin and end the meter calls
``torch.cuda.synchronize()`` on every device, but only when *this* process has
already initialised CUDA through torch (in-process backends such as
transformers and diffusers). Zeus' own synchronisation is turned off because
in vLLM runs the GPU work happens in the server process, and synchronising
from the client would create a CUDA context on every GPU.

The meter is thread-safe: a backend may open and close windows from its own
threads or event loop. Which GPUs are visible comes from :mod:`harness.measuring.device`; the
energy counters are read by Zeus. Tests fake the hardware at the NVML boundary (a fake ``pynvml``
device that replays a power trace) and ZeusMonitor runs unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.measuring import device
from harness.measuring.device import nvml_problem


@dataclass(frozen=True)
class WindowMeasurement:
    """What one named window measured. Energy is ``None`` when no counter exists: never 0 J."""

    name: str
    start_time_s: float  # wall clock (time.time()) at begin
    end_time_s: float
    gpu_energy_joules: dict[int, float | None]  # per GPU index; empty on a host without GPUs
    cpu_energy_joules: dict[int, float | None]  # per CPU package through RAPL; empty when unreadable
    dram_energy_joules: dict[int, float | None]
    energy_source: str  # e.g. "zeus/nvml-counter", "none: no NVIDIA GPU (ZeusMonitor found no GPUs)"

    @property
    def duration_s(self) -> float:
        """The window's length in seconds."""
        return self.end_time_s - self.start_time_s

    @property
    def total_gpu_energy_joules(self) -> float | None:
        """GPU energy in joules summed over the GPUs; None when any GPU (or every GPU) has no reading."""
        values = list(self.gpu_energy_joules.values())
        if not values or any(v is None for v in values):
            return None
        return float(sum(v for v in values if v is not None))  # none is None here


def synchronize_devices() -> None:
    """Wait for queued GPU work of this process (only if it already uses CUDA through torch)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    cuda = torch.cuda
    if cuda.is_available() and cuda.is_initialized():
        for device in range(cuda.device_count()):
            cuda.synchronize(device)


@contextlib.contextmanager
def _zeus_visible_devices() -> Iterator[str | None]:
    """Show Zeus ``CUDA_VISIBLE_DEVICES`` as NVML indices while it builds its GPU list.

    Zeus 0.16 reads the variable with ``int()`` (UUIDs and MIG ids raise) and refuses an empty one; it
    keeps the GPU list it built, so the variable is restored at once. Yields ``"hidden"`` when no GPU is
    visible, a note on MIG slices (whose energy is the whole GPU's), or None.
    """
    value, note = os.environ.get(device.ENV), None
    if value is None:
        yield None
        return
    try:
        visible = device.visible_gpus()
    except Exception:  # noqa: BLE001  # no NVML: Zeus finds no GPUs either way
        visible = []
    if any(g.mig for g in visible):
        note = "MIG slice: energy of the whole GPU that holds it"
    mapped = device.nvml_indices_env(visible)
    with _lock_env:
        os.environ[device.ENV] = mapped or ""  # none visible: Zeus refuses "" and falls back to no GPUs
        try:
            yield note if visible else "hidden"
        finally:
            os.environ[device.ENV] = value


_lock_env = threading.Lock()


class ZeusMeter:
    """A :class:`harness.workloads.base.Meter` over ``zeus.monitor.ZeusMonitor``.

    ``gpu_indices`` are CUDA device numbers (after ``CUDA_VISIBLE_DEVICES``);
    ``None`` means every visible GPU. Asking for GPUs the host does not have
    raises :class:`HarnessError` (a host with none at all gives null energy).
    """

    def __init__(
        self,
        gpu_indices: list[int] | None = None,
        clock: Callable[[], float] = time.time,
        monitor_factory: Callable[..., Any] | None = None,
    ):
        self.clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, float] = {}
        self.windows: dict[str, WindowMeasurement] = {}
        self.gpu_indices: list[int] = []
        self._monitor: Any = None  # a zeus.monitor.ZeusMonitor (untyped), or None
        self.mig_note: str | None = None
        try:
            if monitor_factory is None:
                from zeus.monitor import ZeusMonitor

                monitor_factory = ZeusMonitor
            with _zeus_visible_devices() as note:
                probe = monitor_factory(gpu_indices=[])  # zero-GPU monitor: tells how many GPUs and CPUs exist
            # CUDA_VISIBLE_DEVICES shows no GPU (e.g. ""): none, even where Zeus built its GPU list earlier
            visible = 0 if note == "hidden" else len(probe.gpus)
        except Exception as exc:  # noqa: BLE001  # Zeus missing or broken: still time the windows
            self.gpu_source = f"none: Zeus unavailable ({type(exc).__name__}: {exc})"
            self.cpu_source = "cpu: not measured (Zeus unavailable)"
            return
        wanted = list(range(visible)) if gpu_indices is None else list(gpu_indices)
        if visible == 0:
            self.gpu_source = f"none: no NVIDIA GPU ({nvml_problem() or 'ZeusMonitor found no GPUs'})"
            wanted = []
        elif any(i < 0 or i >= visible for i in wanted):
            raise HarnessError(f"asked for GPUs {wanted} but only {visible} visible")
        if wanted:
            with _zeus_visible_devices():
                self._monitor = monitor_factory(gpu_indices=wanted)
        else:
            self._monitor = probe
        self.gpu_indices = wanted
        if wanted and note and note != "hidden":
            self.mig_note = note
        if wanted:
            old = [i for i in wanted if not self._monitor.gpus.supports_get_total_energy_consumption(i)]
            self.gpu_source = "zeus/nvml-power-integration" if old else "zeus/nvml-energy-counter"
            if self.mig_note:
                self.gpu_source += f" ({self.mig_note})"
        elif visible:
            self.gpu_source = "none: no GPU was asked for"
        cpus = list(getattr(self._monitor, "cpu_indices", []) or [])
        self.cpu_source = "cpu: zeus/rapl" if cpus else f"cpu: not measured ({rapl_problem() or 'RAPL not readable'})"

    @property
    def energy_source(self) -> str:
        """Where GPU and CPU energy come from, e.g. ``"zeus/nvml-energy-counter; cpu: zeus/rapl"``."""
        return f"{self.gpu_source}; {self.cpu_source}"

    @property
    def has_gpu_energy(self) -> bool:
        """Whether the windows measure GPU energy (False: times only, energy None)."""
        return bool(self.gpu_indices)

    def begin(self, name: str) -> None:
        """Open window ``name`` (after synchronising this process' GPU work); it must not be open already."""
        with self._lock:
            if name in self._open:
                raise ValueError(f"energy window {name!r} is already open")
            synchronize_devices()
            start = self.clock()
            if self._monitor is not None:
                self._monitor.begin_window(name, sync_execution=False)
            self._open[name] = start

    def end(self, name: str, sync: bool = True) -> WindowMeasurement:
        """Close window ``name`` and return what it measured (``sync``: synchronise this process' GPU work
        first); a counter that fails to read leaves the window's energy None, never 0 J."""
        with self._lock:
            if name not in self._open:
                raise ValueError(f"energy window {name!r} is not open")
            if sync:
                synchronize_devices()
            start = self._open.pop(name)
            source = self.energy_source
            gpu: dict[int, float | None] = {}
            cpu: dict[int, float | None] = {}
            dram: dict[int, float | None] = {}
            try:
                measured = self._monitor.end_window(name, sync_execution=False) if self._monitor else None
            except Exception as exc:  # noqa: BLE001  # a counter read failed: keep the window, lose its energy
                measured = None
                gpu = dict.fromkeys(self.gpu_indices)
                source = f"none: Zeus failed at window end ({type(exc).__name__}: {exc})"
            end = self.clock()
            if measured is not None:
                gpu = {i: _joules(measured.gpu_energy.get(i)) for i in self.gpu_indices}
                cpu = {int(i): _joules(v) for i, v in (measured.cpu_energy or {}).items()}
                dram = {int(i): _joules(v) for i, v in (measured.dram_energy or {}).items()}
            window = WindowMeasurement(
                name=name,
                start_time_s=start,
                end_time_s=end,
                gpu_energy_joules=gpu,
                cpu_energy_joules=cpu,
                dram_energy_joules=dram,
                energy_source=source,
            )
            self.windows[name] = window
            return window

    def open_windows(self) -> list[str]:
        """Names of the windows open now."""
        with self._lock:
            return list(self._open)

    def close(self) -> list[str]:
        """Cancel every window still open (after a failure); returns their names."""
        with self._lock:
            names = list(self._open)
            for name in names:
                self._open.pop(name)
                if self._monitor is not None:
                    with contextlib.suppress(Exception):  # a cancelled window: nothing to keep
                        self._monitor.end_window(name, sync_execution=False, cancel=True)
            return names


def rapl_problem() -> str | None:
    """Why Zeus reads no CPU package or DRAM energy (RAPL) on this host, or None when it can.

    Zeus reads ``<RAPL_DIR>/intel-rapl:<package>/energy_uj`` (and the ``dram`` sub-zone beside it) with
    ``RAPL_DIR = /sys/class/powercap/intel-rapl`` (``/zeus_sys/...`` in a container); one package it cannot
    read leaves every package unmeasured, so the reason names the first such package and the file.
    """
    import glob

    try:
        from zeus.device.cpu import rapl
    except Exception as exc:  # noqa: BLE001 -- Zeus missing or broken
        return f"Zeus unavailable ({type(exc).__name__}: {exc})"
    if not rapl.rapl_is_available():
        return f"no RAPL on this host: {rapl.RAPL_DIR} does not exist"
    folder = rapl.RAPL_DIR if os.path.exists(rapl.RAPL_DIR) else rapl.CONTAINER_RAPL_DIR
    packages = sorted(
        int(p.rsplit(":", 1)[1]) for p in glob.glob(f"{folder}/intel-rapl:*") if p.rsplit(":", 1)[1].isdigit()
    )
    if not packages:
        return f"no CPU package under {folder}"
    for index in packages:
        try:
            rapl.RAPLCPU(index, folder)
        except Exception as exc:  # noqa: BLE001 -- each of Zeus' reasons, named
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            if isinstance(cause, PermissionError):
                return (
                    f"RAPL package {index} cannot be read: permission denied on {cause.filename} "
                    f"(RAPL needs root or read access to energy_uj)"
                )
            return f"RAPL package {index} cannot be read ({type(exc).__name__}: {exc})"
    return None


def _joules(value: float | None) -> float | None:
    return None if value is None else float(value)


def open_meter(num_gpus: int | None = None, clock: Callable[[], float] = time.time) -> ZeusMeter:
    """A meter over GPUs ``0..num_gpus-1`` (all visible GPUs when ``None``)."""
    return ZeusMeter(None if num_gpus is None else list(range(num_gpus)), clock=clock)


class NvmlCounterMonitor:
    """The slice of ``zeus.monitor.ZeusMonitor`` that :class:`ZeusMeter` uses, over NVML's energy counter
    read directly (:class:`harness.measuring.telemetry.NvmlReader`): energy in J, no CPU or DRAM energy."""

    class _Gpus:
        def __init__(self, reader, count: int):
            self.reader, self.count = reader, count

        def __len__(self) -> int:
            return self.count

        def supports_get_total_energy_consumption(self, index: int) -> bool:
            return self.reader.energy_joules(index) is not None

    class _Measurement:
        def __init__(self, gpu_energy: dict[int, float | None]):
            self.gpu_energy, self.cpu_energy, self.dram_energy = gpu_energy, None, None

    def __init__(self, gpu_indices: list[int] | None = None):
        from harness.measuring.telemetry import NvmlReader

        everything = NvmlReader(None)
        count = len(everything.handles)
        self.reader = everything if gpu_indices is None else NvmlReader(list(gpu_indices))
        self.gpus = self._Gpus(everything, count)
        self.cpu_indices: list[int] = []
        self._open: dict[str, dict[int, float | None]] = {}

    def begin_window(self, name: str, sync_execution: bool = False) -> None:
        self._open[name] = {i: self.reader.energy_joules(i) for i in self.reader.handles}

    def end_window(self, name: str, sync_execution: bool = False, cancel: bool = False):
        start = self._open.pop(name)
        if cancel:
            return None
        out = {}
        for i, before in start.items():
            after = self.reader.energy_joules(i)
            out[i] = None if before is None or after is None else after - before
        return self._Measurement(out)


def open_meter_with_nvml_fallback(gpu_indices: list[int]) -> ZeusMeter:
    """A meter over ``gpu_indices`` (CUDA numbering): Zeus where it imports, else NVML's energy counter read
    directly, for a bare GPU host without Zeus' dependencies (the GPU check). ``energy_source`` says which."""
    indices = list(gpu_indices)
    meter = ZeusMeter(indices)
    if indices and not meter.has_gpu_energy and meter.gpu_source.startswith("none: Zeus unavailable"):
        reason = meter.gpu_source
        meter = ZeusMeter(indices, monitor_factory=NvmlCounterMonitor)
        if meter.has_gpu_energy:
            meter.gpu_source = f"nvml-energy-counter (read directly; {reason.removeprefix('none: ')})"
            meter.cpu_source = "cpu: not measured (Zeus unavailable)"
    return meter
