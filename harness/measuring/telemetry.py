"""Telemetry off the measured thread: an NVML sampler, a vLLM /metrics scraper, idle power.

    from harness.measuring.telemetry import Telemetry, measure_idle_power
    idle = measure_idle_power(5.0, gpu_indices=[0])      # {0: 68.2} watts; {} without NVML
    tel = Telemetry(hz=10, gpu_indices=[0], metrics_url="http://127.0.0.1:8000/metrics")
    tel.start()
    ...                                                  # the run
    frame = tel.stop()                                   # the timeline (pandas DataFrame)
    tel.info                                             # sources, power limits, errors

The timeline is one tidy table with a ``source`` column:

* ``nvml`` (one row per GPU per tick): ``power_watts`` (instantaneous,
  ``NVML_FI_DEV_POWER_INSTANT`` where the driver has it, else
  ``nvmlDeviceGetPowerUsage``, a 1-second average on Ampere and newer),
  ``gpu_utilization_percent``, ``memory_used_mib``, ``sm_clock_mhz``,
  ``temperature_celsius``, ``throttle_reasons`` (NVML's clock-event bitmask)
  and ``energy_counter_joules`` (NVML's cumulative counter);
* ``host`` (one row per tick): ``process_cpu_percent`` and ``process_rss_mib``
  of this process and its children (a vLLM server is a child);
* ``vllm`` (one row per second): ``num_requests_running``,
  ``num_requests_waiting``, ``kv_cache_usage_fraction``.

Every row has ``time_s`` (wall clock, ``time.time()``). A host without NVML
records ``host`` rows only and ``info["nvml"]`` says why. An error while
sampling never reaches the run: it is counted in ``info["errors"]`` (first
messages kept) and the run is flagged by :mod:`harness.measuring.steady`.

:class:`NvmlReader` is the only code here that calls ``pynvml``; tests replace
``pynvml``'s functions with a fake device.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

NVML_COLUMNS = ("power_watts", "gpu_utilization_percent", "memory_used_mib", "sm_clock_mhz",
                "temperature_celsius", "throttle_reasons", "energy_counter_joules")
HOST_COLUMNS = ("process_cpu_percent", "process_rss_mib")
VLLM_COLUMNS = ("num_requests_running", "num_requests_waiting", "kv_cache_usage_fraction")
COLUMNS = ("time_s", "source", "gpu_index") + NVML_COLUMNS + HOST_COLUMNS + VLLM_COLUMNS
# vLLM metric names (older releases call KV-cache usage gpu_cache_usage_perc; both are fractions 0..1).
VLLM_METRICS = {
    "vllm:num_requests_running": "num_requests_running",
    "vllm:num_requests_waiting": "num_requests_waiting",
    "vllm:kv_cache_usage_perc": "kv_cache_usage_fraction",
    "vllm:gpu_cache_usage_perc": "kv_cache_usage_fraction",
}
MEAN_OVER_ENGINES = ("kv_cache_usage_fraction",)
MAX_KEPT_ERRORS = 5


class NvmlReader:
    """Reads one GPU's instantaneous state through NVML. ``available`` is False (with ``problem``) without NVML."""

    def __init__(self, gpu_indices: list[int] | None = None):
        self.handles: dict[int, object] = {}
        self.power_source: dict[int, str] = {}
        self.problem: str | None = None
        self.unsupported: set[tuple[int, str]] = set()
        self._chosen: dict[tuple[int, str], str] = {}  # (gpu, reading) -> the NVML function that works here
        try:
            import pynvml

            self.nvml = pynvml
            pynvml.nvmlInit()
            physical = _visible_devices(pynvml)
        except ImportError:
            self.problem = "nvidia-ml-py is not installed"
            return
        except Exception as exc:  # NVMLError: no driver, no library
            self.problem = f"NVML: {exc}"
            return
        indices = list(range(len(physical))) if gpu_indices is None else list(gpu_indices)
        missing = [i for i in indices if i >= len(physical)]
        if missing:
            self.problem = f"GPUs {missing} not visible ({len(physical)} visible)"
            return
        for index in indices:
            handle = physical[index]
            self.handles[index] = handle
            self.power_source[index] = ("nvml/power-instant-field" if self._instant_power_mw(handle) is not None
                                        else "nvml/power-usage (1 s average on Ampere and newer)")
        if not self.handles:
            self.problem = "NVML found no devices"

    @property
    def available(self) -> bool:
        return bool(self.handles)

    def _instant_power_mw(self, handle) -> float | None:
        nvml = self.nvml
        try:
            value = nvml.nvmlDeviceGetFieldValues(handle, [nvml.NVML_FI_DEV_POWER_INSTANT])[0]
        except Exception:
            return None
        if value.nvmlReturn != nvml.NVML_SUCCESS:
            return None
        return float(value.value.uiVal)

    def power_watts(self, index: int) -> float:
        handle = self.handles[index]
        if self.power_source[index].startswith("nvml/power-instant"):
            milliwatts = self._instant_power_mw(handle)
            if milliwatts is not None:
                return milliwatts / 1000.0
        return self.nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0

    def energy_joules(self, index: int) -> float | None:
        try:
            return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handles[index]) / 1000.0
        except self.nvml.NVMLError:  # pre-Volta GPUs have no counter
            return None

    def power_limit_watts(self, index: int) -> float | None:
        try:
            return self.nvml.nvmlDeviceGetEnforcedPowerLimit(self.handles[index]) / 1000.0
        except self.nvml.NVMLError:
            return None

    def sample(self, index: int) -> tuple:
        """Values in the order of :data:`NVML_COLUMNS`; a field the GPU does not support reads None."""
        nvml, handle = self.nvml, self.handles[index]
        readers = (
            lambda: self.power_watts(index),
            lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
            lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
            lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
            lambda: self._first_available(index, "temperature", (
                ("nvmlDeviceGetTemperature", lambda f: f(handle, nvml.NVML_TEMPERATURE_GPU)),  # deprecated
                ("nvmlDeviceGetTemperatureV", lambda f: f(handle, nvml.NVML_TEMPERATURE_GPU)))),
            lambda: self._first_available(index, "reasons", (
                ("nvmlDeviceGetCurrentClocksEventReasons", lambda f: f(handle)),
                ("nvmlDeviceGetCurrentClocksThrottleReasons", lambda f: f(handle)))),
            lambda: self.energy_joules(index),
        )
        values = []
        for column, read in zip(NVML_COLUMNS, readers):
            if (index, column) in self.unsupported:
                values.append(None)
                continue
            try:
                value = read()
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) not in self._absent_codes():
                    raise
                self.unsupported.add((index, column))  # this GPU or driver lacks it: None from now on
                value = None
            values.append(None if value is None else float(value))
        return tuple(values)

    def _absent_codes(self) -> tuple:
        """NVML errors that mean "this driver or GPU has no such reading" (not a fault of the sampler)."""
        nvml = self.nvml
        return tuple(getattr(nvml, name) for name in ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")
                     if hasattr(nvml, name))

    def _first_available(self, index: int, what: str, calls):
        """The first of several NVML functions (in order of preference) this driver has, remembered per GPU.

        A function missing from the Python binding or raising NVMLError_FunctionNotFound (an older driver)
        moves on to the next; when none is left, the last not-found error propagates (column set to None).
        """
        chosen = self._chosen.get((index, what))
        order = [c for c in calls if chosen is None or c[0] == chosen]
        error = None
        for name, call in order:
            fn = getattr(self.nvml, name, None)
            if fn is None:
                continue
            try:
                value = call(fn)
            except self.nvml.NVMLError as exc:
                if getattr(exc, "value", None) != getattr(self.nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", object()):
                    raise
                error = exc
                continue
            self._chosen[(index, what)] = name
            return value
        raise error if error is not None else self.nvml.NVMLError(self.nvml.NVML_ERROR_FUNCTION_NOT_FOUND)


def _visible_devices(pynvml) -> list:
    """NVML handles in CUDA's numbering (:mod:`harness.measuring.gpus` reads CUDA_VISIBLE_DEVICES)."""
    from harness.measuring.gpus import visible_gpus

    return [gpu.handle for gpu in visible_gpus(pynvml)]


class _Loop(threading.Thread):
    """Calls ``tick(now)`` every ``period_s`` until stopped; an exception in a tick is recorded, not raised."""

    def __init__(self, name: str, period_s: float, tick: Callable[[float], None], errors: list, clock):
        super().__init__(name=name, daemon=True)
        self.period_s, self.tick, self.errors, self.clock = period_s, tick, errors, clock
        self.stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic()
        while True:
            try:
                self.tick(self.clock())
            except Exception as exc:
                self.errors.append(f"{self.name}: {type(exc).__name__}: {exc}")
            deadline += self.period_s
            now = time.monotonic()
            if deadline < now:  # fell behind: skip the missed ticks instead of bursting
                deadline = now + self.period_s
            if self.stop_event.wait(deadline - now):
                return


class _HostProbe:
    """CPU% and RSS of this process and its children (children refreshed once a second)."""

    def __init__(self):
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.children: dict[int, object] = {}
        self.refreshed = 0.0
        self.me.cpu_percent(None)

    def sample(self) -> tuple[float, float]:
        now = time.monotonic()
        if now - self.refreshed >= 1.0:
            self.refreshed = now
            try:
                current = {p.pid: p for p in self.me.children(recursive=True)}
            except self.psutil.Error:
                current = {}
            for pid, proc in current.items():
                if pid not in self.children:
                    self.children[pid] = proc
                    try:
                        proc.cpu_percent(None)
                    except self.psutil.Error:
                        pass
            for pid in list(self.children):
                if pid not in current:
                    del self.children[pid]
        cpu = self.me.cpu_percent(None)
        rss = self.me.memory_info().rss
        for proc in list(self.children.values()):
            try:
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
            except self.psutil.Error:
                pass
        return cpu, rss / 2**20


def parse_vllm_metrics(text: str) -> dict[str, float]:
    """The vLLM gauges we log, from Prometheus text: with data parallel vLLM exports one label set per engine;
    request counts are summed over them, the KV-cache usage fraction is their mean (never above 1)."""
    from prometheus_client.parser import text_string_to_metric_families

    # Keep only the lines of the gauges we log (and their HELP/TYPE lines) before parsing: a vLLM page is
    # tens of kilobytes of histograms, and parsing all of it costs more than the rest of the sampler.
    wanted = tuple(VLLM_METRICS)
    text = "".join(
        line + "\n" for line in text.splitlines() if line.startswith(wanted) or (line.startswith("#") and any(w in line for w in wanted))
    )
    by_name: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in VLLM_METRICS:
                by_name.setdefault(sample.name, []).append(float(sample.value))
    out: dict[str, float] = {}
    for name, column in VLLM_METRICS.items():  # the current name before its older alias, never both
        values = by_name.get(name)
        if not values or column in out:
            continue
        # counts add up over engines; a usage fraction is per engine (each has its own KV cache): the mean
        out[column] = sum(values) / len(values) if column in MEAN_OVER_ENGINES else sum(values)
    return out


class Telemetry:
    """NVML (or host-only) samples at ``hz`` and, given ``metrics_url``, vLLM gauges once a second."""

    def __init__(self, hz: float = 10.0, gpu_indices: list[int] | None = None, metrics_url: str | None = None,
                 clock: Callable[[], float] = time.time, scrape_period_s: float = 1.0):
        self.hz, self.metrics_url, self.clock = float(hz), metrics_url, clock
        self.scrape_period_s = scrape_period_s
        self.gpu_indices = gpu_indices
        self.rows: list[tuple] = []
        self.errors: list[str] = []
        self._threads: list[_Loop] = []
        self.info: dict = {}

    def start(self, metrics_url: str | None = None) -> None:
        if metrics_url is not None:
            self.metrics_url = metrics_url
        self.reader = NvmlReader(self.gpu_indices)
        try:
            self.host: _HostProbe | None = _HostProbe()
        except ImportError:  # psutil absent (a bare GPU host running the GPU check): no host rows
            self.host = None
        self.info = {
            "sampler_hz": self.hz,
            "nvml": "ok" if self.reader.available else f"unavailable: {self.reader.problem}; host samples only",
            "gpu_indices": sorted(self.reader.handles),
            "power_source": {str(i): s for i, s in self.reader.power_source.items()},
            "power_limit_watts": {str(i): self.reader.power_limit_watts(i) for i in self.reader.handles},
            "metrics_url": self.metrics_url,
        }
        self._threads = [_Loop("nvml-sampler", 1.0 / self.hz, self._tick, self.errors, self.clock)]
        if self.metrics_url:
            import httpx

            self._http = httpx.Client(timeout=min(0.9, self.scrape_period_s), trust_env=False)  # loopback: no proxy
            self._threads.append(_Loop("vllm-scraper", self.scrape_period_s, self._scrape, self.errors, self.clock))
        self.info["started_at_s"] = self.clock()
        for thread in self._threads:
            thread.start()

    def _tick(self, now: float) -> None:
        blank_nvml = (None,) * len(NVML_COLUMNS)
        blank_vllm = (None,) * len(VLLM_COLUMNS)
        if self.host is not None:
            cpu, rss = self.host.sample()
            self.rows.append((now, "host", None) + blank_nvml + (cpu, rss) + blank_vllm)
        for index in self.reader.handles:
            values = self.reader.sample(index)
            self.rows.append((now, "nvml", index) + values + (None, None) + blank_vllm)

    def _scrape(self, now: float) -> None:
        response = self._http.get(self.metrics_url)
        response.raise_for_status()
        gauges = parse_vllm_metrics(response.text)
        values = tuple(gauges.get(c) for c in VLLM_COLUMNS)
        self.rows.append((now, "vllm", None) + (None,) * (len(NVML_COLUMNS) + len(HOST_COLUMNS)) + values)

    def stop(self):
        """Stop the threads; returns the timeline DataFrame (columns :data:`COLUMNS`)."""
        import pandas as pd

        rows = self.stop_rows()
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frame["gpu_index"] = frame["gpu_index"].astype("Int64")
        for column in COLUMNS[3:]:
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
        return frame

    def stop_rows(self) -> list[tuple]:
        """Stop the threads; returns the samples as tuples in the order of :data:`COLUMNS` (no pandas needed)."""
        for thread in self._threads:
            thread.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        if getattr(self, "_http", None) is not None:
            self._http.close()
        self.info["stopped_at_s"] = self.clock()
        self.info["error_count"] = len(self.errors)
        self.info["errors"] = self.errors[:MAX_KEPT_ERRORS]
        return self.rows


def coverage_fraction(frame, start_s: float, end_s: float, hz: float, gpu_indices, metrics_url: str | None,
                      min_expected: int = 10) -> float | None:
    """Worst share of expected samples present in ``[start_s, end_s]`` over the streams that should exist.

    Streams: each GPU at ``hz`` (or the host stream at ``hz`` without GPUs) and vLLM at 1 Hz when
    scraped. ``None`` when the window is too short to judge (fewer than ``min_expected`` samples).
    """
    duration = end_s - start_s
    inside = frame[(frame["time_s"] >= start_s) & (frame["time_s"] <= end_s)] if len(frame) else frame
    streams = []
    if gpu_indices:
        for index in gpu_indices:
            count = int(((inside["source"] == "nvml") & (inside["gpu_index"] == index)).sum()) if len(inside) else 0
            streams.append((count, duration * hz))
    else:
        streams.append((int((inside["source"] == "host").sum()) if len(inside) else 0, duration * hz))
    if metrics_url:
        streams.append((int((inside["source"] == "vllm").sum()) if len(inside) else 0, duration * 1.0))
    judged = [min(1.0, count / int(expected)) for count, expected in streams if int(expected) >= min_expected]
    return min(judged) if judged else None


def measure_idle_power(seconds: float, gpu_indices: list[int] | None = None, hz: float = 10.0,
                       sleep: Callable[[float], None] = time.sleep,
                       clock: Callable[[], float] = time.monotonic) -> dict[int, float]:
    """Average power of each idle GPU over ``seconds`` ({} without NVML).

    From NVML's energy counter (energy difference / time) where the GPU has one, else the mean of
    power samples taken at ``hz``. The counter reads lie inside the timed span (start stamped before
    the first reads, end after the last), so a stall between a stamp and a read can only lower the
    figure, never raise it above the true average.
    """
    reader = NvmlReader(gpu_indices)
    if not reader.available or seconds <= 0:
        return {}
    start = clock()
    first = {i: reader.energy_joules(i) for i in reader.handles}
    samples: dict[int, list[float]] = {i: [] for i in reader.handles}
    while True:
        for index in reader.handles:
            samples[index].append(reader.power_watts(index))
        if clock() - start >= seconds:
            break
        sleep(1.0 / hz)
    lasts = {i: reader.energy_joules(i) for i in reader.handles}
    elapsed = clock() - start
    out = {}
    for index in reader.handles:
        last = lasts[index]
        if first[index] is not None and last is not None and elapsed > 0 and last > first[index]:
            out[index] = (last - first[index]) / elapsed
        else:
            out[index] = sum(samples[index]) / len(samples[index])
    return out
