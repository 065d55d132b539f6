"""Shared fixtures. Keep each section small and say which tests use it."""

from __future__ import annotations

import bisect
import threading
import time
from types import SimpleNamespace

import pytest

# --- Fake NVML (harness energy/telemetry/runner tests) ----------------------------------------------
# The hardware boundary is NVML: these fakes replace pynvml's functions (with pynvml's signatures), so
# Zeus' ZeusMonitor and the harness' device layer (harness.measuring.device, the only harness module that
# calls NVML; the telemetry sampler, the environment capture and preflight read through it) all run their
# real code against a replayed trace.


class FakeClock:
    """A clock that only moves when told to (for exact accounting with ZeusMeter(clock=...))."""

    def __init__(self, t: float = 1_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeGPU:
    """A GPU replaying a piecewise-constant power trace ``[(time_s, watts), ...]``.

    ``watts`` holds from its time until the next point. The energy counter (mJ, like NVML's) is the
    exact integral of the trace since its first point, on top of an arbitrary base. ``set_power``
    appends a point (live traces driven by a test). From ``fail_from_s`` on, utilization reads raise
    an NVML error (a sampler fault while the energy counter still works).
    """

    BASE_MJ = 987_654_321

    def __init__(
        self,
        trace,
        clock=time.time,
        name="NVIDIA H100 80GB HBM3",
        power_limit_watts=700.0,
        instant_field=True,
        fail_from_s: float | None = None,
        uuid: str | None = None,
        memory_total_bytes: int = 80 * 2**30,
        missing=(),
        migs=(),
    ):
        self.times = [float(t) for t, _ in trace]
        self.watts = [float(w) for _, w in trace]
        self.clock, self.name, self.power_limit_watts = clock, name, power_limit_watts
        self.instant_field, self.fail_from_s = instant_field, fail_from_s
        self.uuid = uuid or f"GPU-{id(self):032x}"
        self.memory_total_bytes = memory_total_bytes
        self.missing = set(missing)  # NVML functions this fake driver lacks (NVMLError_FunctionNotFound)
        self.migs = {m: SimpleNamespace(parent=self, uuid=m, memory_total_bytes=memory_total_bytes // 7) for m in migs}
        self.temperatures: list[tuple[float, float]] = []  # [(time_s, celsius)]: steps; 55 C before the first

    def temperature_at(self, t: float) -> float:
        current = 55.0
        for since, celsius in self.temperatures:
            if t >= since:
                current = celsius
        return current

    def set_power(self, watts: float, t: float | None = None) -> None:
        t = self.clock() if t is None else t
        assert t >= self.times[-1]
        self.times.append(t)
        self.watts.append(float(watts))

    def power_at(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t) - 1
        return self.watts[max(i, 0)]

    def energy_joules_between(self, a: float, b: float) -> float:
        """Exact integral of the trace over [a, b] (the expected value in tests)."""
        total = 0.0
        points = [*self.times, float("inf")]
        for i, watts in enumerate(self.watts):
            lo, hi = max(a, points[i]), min(b, points[i + 1])
            if hi > lo:
                total += watts * (hi - lo)
        return total

    def counter_mj(self) -> int:
        t = self.clock()
        value = self.BASE_MJ + round(1000 * self.energy_joules_between(self.times[0], t))
        self.reads.append((threading.get_ident(), t, value))
        return value

    @property
    def reads(self) -> list[tuple[int, float, int]]:
        """Every energy-counter read: ``(thread id, time, counter in mJ)``, in order."""
        if not hasattr(self, "_reads"):
            self._reads = []
        return self._reads

    def reads_within(self, start: float, end: float, thread: int | None = None) -> tuple[tuple, tuple]:
        """The first and the last counter read of ``thread`` (default: the caller's) inside ``[start, end]``.

        A meter stamps a window's start before its opening read and its end after its closing read, so for
        a window measured in one thread these are that window's own two reads: the exact expected energy is
        ``(last - first) / 1000`` J, however long the host stalled between a stamp and its read.
        """
        thread = threading.get_ident() if thread is None else thread
        inside = [r for r in self.reads if r[0] == thread and start <= r[1] <= end]
        assert inside, f"no counter read by this thread within [{start}, {end}]"
        return inside[0], inside[-1]


class FakeNVML:
    """Installs fake pynvml functions for ``gpus``; resets Zeus' cached device objects both ways."""

    def __init__(self, monkeypatch, gpus: list[FakeGPU]):
        import pynvml

        self.gpus, self.nvml = gpus, pynvml
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        ok = pynvml.NVML_SUCCESS

        def error(code):
            return pynvml.NVMLError(code)

        def field_values(handle, fields):
            out = []
            for _ in fields:
                if handle.instant_field:
                    mw = int(handle.power_at(handle.clock()) * 1000)
                    out.append(SimpleNamespace(nvmlReturn=ok, value=SimpleNamespace(uiVal=mw)))
                else:
                    out.append(SimpleNamespace(nvmlReturn=pynvml.NVML_ERROR_NOT_SUPPORTED, value=None))
            return out

        def utilization(handle):
            if handle.fail_from_s is not None and handle.clock() >= handle.fail_from_s:
                raise error(pynvml.NVML_ERROR_GPU_IS_LOST)
            busy = handle.power_at(handle.clock()) > 100
            return SimpleNamespace(gpu=95 if busy else 0, memory=40 if busy else 0)

        def c2c(handle):
            raise error(pynvml.NVML_ERROR_NOT_SUPPORTED)

        def by_index(i):
            if not 0 <= i < len(gpus):
                raise error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return gpus[i]

        def by_uuid(uuid):
            for gpu in gpus:
                if uuid == gpu.uuid:
                    return gpu
                if uuid in gpu.migs:
                    return gpu.migs[uuid]
            raise error(pynvml.NVML_ERROR_NOT_FOUND)

        def unless_missing(name, fn):
            def call(h, *args):
                if name in getattr(h, "missing", ()):
                    raise error(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
                return fn(h, *args)

            return call

        def memory(h):
            total = h.memory_total_bytes
            return SimpleNamespace(
                used=min(30 * 2**30, total // 2), total=total, free=total - min(30 * 2**30, total // 2)
            )

        fakes = {
            "nvmlInit": lambda: None,
            "nvmlShutdown": lambda: None,
            "nvmlDeviceGetCount": lambda: len(gpus),
            "nvmlDeviceGetHandleByIndex": by_index,
            "nvmlDeviceGetName": lambda h: h.name,
            "nvmlDeviceGetArchitecture": lambda h: pynvml.NVML_DEVICE_ARCH_HOPPER,
            "nvmlDeviceGetC2cModeInfoV": c2c,
            "nvmlDeviceGetTotalEnergyConsumption": lambda h: h.counter_mj(),
            "nvmlDeviceGetFieldValues": field_values,
            "nvmlDeviceGetPowerUsage": lambda h: int(h.power_at(h.clock()) * 1000),
            "nvmlDeviceGetEnforcedPowerLimit": lambda h: int(h.power_limit_watts * 1000),
            "nvmlDeviceGetUtilizationRates": utilization,
            "nvmlDeviceGetMemoryInfo": memory,
            "nvmlDeviceGetClockInfo": lambda h, kind: 1980,
            "nvmlDeviceGetTemperature": unless_missing(
                "nvmlDeviceGetTemperature", lambda h, sensor: h.temperature_at(h.clock())
            ),
            "nvmlDeviceGetTemperatureV": unless_missing("nvmlDeviceGetTemperatureV", lambda h, sensor: 56),
            "nvmlDeviceGetCurrentClocksEventReasons": unless_missing(
                "nvmlDeviceGetCurrentClocksEventReasons", lambda h: 0
            ),
            "nvmlDeviceGetCurrentClocksThrottleReasons": unless_missing(
                "nvmlDeviceGetCurrentClocksThrottleReasons", lambda h: 0
            ),
            "nvmlDeviceGetUUID": lambda h: h.uuid,
            "nvmlDeviceGetHandleByUUID": by_uuid,
            "nvmlDeviceGetIndex": lambda h: gpus.index(h),
            "nvmlDeviceGetDeviceHandleFromMigDeviceHandle": lambda m: m.parent,
            "nvmlSystemGetDriverVersion": lambda: "580.65.06",
            "nvmlSystemGetCudaDriverVersion": lambda: 13000,
        }
        for name, fn in fakes.items():
            monkeypatch.setattr(pynvml, name, fn)
        reset_device_caches()


def reset_device_caches() -> None:
    """Forget Zeus' singleton GPU object and NVML probe, and the cached environment capture."""
    import zeus.device.gpu as zeus_gpu
    from zeus.device.gpu.nvidia import nvml_is_available

    from harness.measuring import envinfo

    zeus_gpu._gpus = None
    nvml_is_available.cache_clear()
    envinfo.capture.cache_clear()


@pytest.fixture
def fake_nvml(monkeypatch):
    """``install(gpus) -> FakeNVML``: fake NVML devices for this test only."""
    installed = []

    def install(gpus):
        fake = FakeNVML(monkeypatch, gpus)
        installed.append(fake)
        return fake

    yield install
    monkeypatch.undo()
    reset_device_caches()


@pytest.fixture
def no_nvml(monkeypatch):
    """A host without NVML (as on CPU machines), whatever this machine has."""
    import pynvml

    def missing():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", missing)
    reset_device_caches()
    yield
    monkeypatch.undo()
    reset_device_caches()


# --- The vLLM backend against a fake server (test_faults.py, test_safety.py) -----------------------


@pytest.fixture
def vllm_env(tmp_path_factory, monkeypatch):
    """Reference lengths and a model-folder cache for the vLLM backend; skips without reference data.
    Afterwards, no fake server may still be running."""
    import fake_vllm
    from harness.errors import ReferenceDataError
    from harness.published import reference
    from support import REFERENCE_DIR

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harness-cache"))
    if REFERENCE_DIR.is_dir():
        monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(REFERENCE_DIR))
    try:
        reference.output_length_distribution("meta-llama/Llama-3.1-8B-Instruct", "lm-arena-chat")
    except (ReferenceDataError, KeyError) as exc:
        pytest.skip(f"reference output lengths unavailable: {exc}")
    yield
    assert fake_vllm.leftovers() == [], "a server outlived its test"


# --- the published tables (test_findings, test_takeaways, test_claim_conditions) ---------------------------------
@pytest.fixture(scope="session")
def tables():
    """The reference's language-model and diffusion tables, read once for the whole run."""
    from harness.errors import ReferenceDataError
    from harness.published import reference

    try:
        return reference.llm_table(), reference.diffusion_table()
    except ReferenceDataError as exc:
        pytest.fail(f"reference data needed (set HARNESS_REFERENCE_DIR): {exc}")
