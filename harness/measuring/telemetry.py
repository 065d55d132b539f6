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
  of this process and its children (a vLLM server is a child), and, given a
  ``server_pid``, ``server_cpu_time_s``: the cumulative CPU time (user + system,
  seconds) of the server's process tree (the root and every descendant seen; a
  process that exits keeps its last reading, so the sum never falls);
* ``vllm`` (one row per second): ``num_requests_running``,
  ``num_requests_waiting``, ``kv_cache_usage_fraction``.

Every row has ``time_s`` (wall clock, ``time.time()``). A host without NVML
records ``host`` rows only and ``info["nvml"]`` says why. An error while
sampling never reaches the run: it is counted in ``info["errors"]`` (first
messages kept) and the run is flagged by :mod:`harness.measuring.steady`.

:class:`NvmlReader` reads the GPUs through :mod:`harness.measuring.device` (the only module that
calls NVML); tests replace ``pynvml``'s functions with a fake device.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from harness.measuring.device import GPU, NvmlUnavailable, ReadingUnsupported, visible_gpus

if TYPE_CHECKING:
    import pandas as pd

NVML_COLUMNS = (
    "power_watts",
    "gpu_utilization_percent",
    "memory_used_mib",
    "sm_clock_mhz",
    "temperature_celsius",
    "throttle_reasons",
    "energy_counter_joules",
)
HOST_COLUMNS = ("process_cpu_percent", "process_rss_mib", "server_cpu_time_s")
VLLM_COLUMNS = ("num_requests_running", "num_requests_waiting", "kv_cache_usage_fraction")
COLUMNS = ("time_s", "source", "gpu_index", *NVML_COLUMNS, *HOST_COLUMNS, *VLLM_COLUMNS)
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
    """Reads the visible GPUs' instantaneous state through :mod:`harness.measuring.device`.

    ``gpu_indices`` are CUDA device numbers (None: every visible GPU). ``available`` is False (with
    ``problem``) without NVML. ``handles`` maps each sampled CUDA index to its :class:`~harness.measuring.device.GPU`.
    """

    def __init__(self, gpu_indices: list[int] | None = None):
        self.handles: dict[int, GPU] = {}
        self.power_source: dict[int, str] = {}
        self.problem: str | None = None
        self.unsupported: set[tuple[int, str]] = set()  # (gpu, column) this GPU or driver lacks: None from now on
        try:
            physical = visible_gpus()
        except NvmlUnavailable as exc:  # no nvidia-ml-py, no driver, no library
            self.problem = str(exc)
            return
        except Exception as exc:  # noqa: BLE001 -- whatever the library raised, the sampler runs host-only
            self.problem = f"NVML: {exc}"
            return
        indices = list(range(len(physical))) if gpu_indices is None else list(gpu_indices)
        missing = [i for i in indices if i >= len(physical)]
        if missing:
            self.problem = f"GPUs {missing} not visible ({len(physical)} visible)"
            return
        for index in indices:
            gpu = physical[index]
            self.handles[index] = gpu
            self.power_source[index] = (
                "nvml/power-instant-field"
                if gpu.instant_power_watts() is not None
                else "nvml/power-usage (1 s average on Ampere and newer)"
            )
        if not self.handles:
            self.problem = "NVML found no devices"

    @property
    def available(self) -> bool:
        """Whether any GPU is sampled (False: host samples only, ``problem`` says why)."""
        return bool(self.handles)

    def power_watts(self, index: int) -> float:
        """GPU ``index``'s power draw in watts: instantaneous where the driver has it, else its 1 s average."""
        gpu = self.handles[index]
        if self.power_source[index].startswith("nvml/power-instant"):
            watts = gpu.instant_power_watts()
            if watts is not None:
                return watts
        return gpu.power_usage_watts()

    def energy_joules(self, index: int) -> float | None:
        """GPU ``index``'s cumulative energy counter in joules, or None where it has none (pre-Volta)."""
        millijoules = self.handles[index].energy_millijoules()
        return None if millijoules is None else millijoules / 1000.0

    def power_limit_watts(self, index: int) -> float | None:
        """GPU ``index``'s enforced power limit in watts, or None when it cannot be read."""
        return self.handles[index].power_limit_watts()

    def sample(self, index: int) -> tuple:
        """Values in the order of :data:`NVML_COLUMNS`; a field the GPU does not support reads None.

        A device fault (not a missing reading) raises the device's own error.
        """
        gpu = self.handles[index]
        readers = (
            lambda: self.power_watts(index),
            gpu.utilization_percent,
            lambda: gpu.memory_used_bytes() / 2**20,
            gpu.sm_clock_mhz,
            gpu.temperature_celsius,
            gpu.throttle_reasons,
            lambda: self.energy_joules(index),
        )
        values: list[float | None] = []
        for column, read in zip(NVML_COLUMNS, readers, strict=False):
            if (index, column) in self.unsupported:
                values.append(None)
                continue
            try:
                value = read()
            except ReadingUnsupported:
                self.unsupported.add((index, column))
                value = None
            values.append(None if value is None else float(value))
        return tuple(values)


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
            except Exception as exc:  # noqa: BLE001  # recorded in errors, the loop goes on (the class docstring)
                self.errors.append(f"{self.name}: {type(exc).__name__}: {exc}")
            deadline += self.period_s
            now = time.monotonic()
            if deadline < now:  # fell behind: skip the missed ticks instead of bursting
                deadline = now + self.period_s
            if self.stop_event.wait(deadline - now):
                return


class ProcessTreeCpu:
    """Cumulative CPU time (user + system, seconds) of the process tree rooted at ``root_pid``.

    ``processes(root_pid)`` lists the tree's live processes as objects with ``pid`` and ``cpu_times()``
    (psutil's by default; tests hand in a fake tree). Each process's last reading is kept after it exits,
    so :meth:`seconds` never falls; descendants are re-listed at most every ``refresh_s``.
    """

    def __init__(
        self,
        root_pid: int,
        processes: Callable[[int], list] | None = None,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.root_pid, self.refresh_s, self.clock = root_pid, refresh_s, clock
        self.processes = processes or _psutil_tree
        self.live: dict[int, Any] = {}
        self.last_s: dict[int, float] = {}  # pid -> its last CPU time reading (seconds)
        self.refreshed: float | None = None

    def seconds(self) -> float:
        """The tree's CPU time so far in seconds (every process seen, exited ones at their last reading)."""
        now = self.clock()
        if self.refreshed is None or now - self.refreshed >= self.refresh_s:
            self.refreshed = now
            try:
                self.live = {p.pid: p for p in self.processes(self.root_pid)}
            except Exception:  # noqa: BLE001 -- the root is gone: keep the readings we have
                self.live = {}
        for pid, proc in list(self.live.items()):
            try:
                times = proc.cpu_times()
            except Exception:  # noqa: BLE001 -- exited between listing and reading: its last reading stays
                del self.live[pid]
                continue
            self.last_s[pid] = max(self.last_s.get(pid, 0.0), float(times.user) + float(times.system))
        return sum(self.last_s.values())


def _psutil_tree(root_pid: int) -> list:
    """The live processes of the tree rooted at ``root_pid`` (psutil objects, the root first)."""
    import psutil

    root = psutil.Process(root_pid)
    return [root, *root.children(recursive=True)]


class _HostProbe:
    """CPU% and RSS of this process and its children (children refreshed once a second), and the CPU time of
    the server's process tree when ``server_pid`` is given."""

    def __init__(self, server_pid: int | None = None):
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.children: dict[int, Any] = {}  # psutil.Process (untyped) by pid
        self.refreshed = 0.0
        self.me.cpu_percent(None)
        self.server = ProcessTreeCpu(server_pid) if server_pid else None

    def sample(self) -> tuple[float, float, float | None]:
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
                    with contextlib.suppress(self.psutil.Error):
                        proc.cpu_percent(None)
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
        return cpu, rss / 2**20, (self.server.seconds() if self.server is not None else None)


def parse_vllm_metrics(text: str) -> dict[str, float]:
    """The vLLM gauges we log, from Prometheus text: with data parallel vLLM exports one label set per engine;
    request counts are summed over them, the KV-cache usage fraction is their mean (never above 1)."""
    from prometheus_client.parser import text_string_to_metric_families

    # Keep only the lines of the gauges we log (and their HELP/TYPE lines) before parsing: a vLLM page is
    # tens of kilobytes of histograms, and parsing all of it costs more than the rest of the sampler.
    wanted = tuple(VLLM_METRICS)
    text = "".join(
        line + "\n"
        for line in text.splitlines()
        if line.startswith(wanted) or (line.startswith("#") and any(w in line for w in wanted))
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
    """NVML (or host-only) samples at ``hz`` and, given ``metrics_url``, vLLM gauges once a second; given
    ``server_pid``, the CPU time of that server's process tree in the host rows."""

    def __init__(
        self,
        hz: float = 10.0,
        gpu_indices: list[int] | None = None,
        metrics_url: str | None = None,
        clock: Callable[[], float] = time.time,
        scrape_period_s: float = 1.0,
        server_pid: int | None = None,
    ):
        self.hz, self.metrics_url, self.clock = float(hz), metrics_url, clock
        self.server_pid = server_pid
        self.scrape_period_s = scrape_period_s
        self.gpu_indices = gpu_indices
        self.rows: list[tuple] = []
        self.errors: list[str] = []
        self._threads: list[_Loop] = []
        self.info: dict = {}

    def start(self, metrics_url: str | None = None) -> None:
        """Start sampling (and scraping ``metrics_url``, when given here or at construction); fills :attr:`info`."""
        if metrics_url is not None:
            self.metrics_url = metrics_url
        self.reader = NvmlReader(self.gpu_indices)
        try:
            self.host: _HostProbe | None = _HostProbe(self.server_pid)
        except ImportError:  # psutil absent (a bare GPU host running the GPU check): no host rows
            self.host = None
        self.info = {
            "sampler_hz": self.hz,
            "nvml": "ok" if self.reader.available else f"unavailable: {self.reader.problem}; host samples only",
            "gpu_indices": sorted(self.reader.handles),
            "power_source": {str(i): s for i, s in self.reader.power_source.items()},
            "power_limit_watts": {str(i): self.reader.power_limit_watts(i) for i in self.reader.handles},
            "metrics_url": self.metrics_url,
            "server_pid": self.server_pid,
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
            self.rows.append((now, "host", None, *blank_nvml, *self.host.sample(), *blank_vllm))
        for index in self.reader.handles:
            values = self.reader.sample(index)
            self.rows.append((now, "nvml", index) + values + (None,) * len(HOST_COLUMNS) + blank_vllm)

    def _scrape(self, now: float) -> None:
        response = self._http.get(cast(str, self.metrics_url))  # the scraper runs only with a URL
        response.raise_for_status()
        gauges = parse_vllm_metrics(response.text)
        values = tuple(gauges.get(c) for c in VLLM_COLUMNS)
        self.rows.append((now, "vllm", None) + (None,) * (len(NVML_COLUMNS) + len(HOST_COLUMNS)) + values)

    def stop(self) -> pd.DataFrame:
        """Stop the threads; returns the timeline DataFrame (columns :data:`COLUMNS`, units in their names)."""
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


def coverage_fraction(
    frame: pd.DataFrame,
    start_s: float,
    end_s: float,
    hz: float,
    gpu_indices: Iterable[int] | None,
    metrics_url: str | None,
    min_expected: int = 10,
) -> float | None:
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


def measure_idle_power(
    seconds: float,
    gpu_indices: list[int] | None = None,
    hz: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[int, float]:
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
        begin, last = first[index], lasts[index]
        if begin is not None and last is not None and elapsed > 0 and last > begin:
            out[index] = (last - begin) / elapsed
        else:
            out[index] = sum(samples[index]) / len(samples[index])
    return out
