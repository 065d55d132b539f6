"""The contract every workload backend follows (vLLM, transformers, diffusers, trivial CPU).

A backend never reads energy counters itself: it is handed a :class:`Meter`
and opens and closes named windows around the regions that are measured. The
runner owns the meter, the telemetry sampler and the store; the backend owns
the load.

LLM backends open the window ``"steady"`` when ``max_num_seqs`` requests have
received their first token and close it when the requests still running can no
longer fill the batch (see :mod:`harness.measuring.steady`). Diffusion backends run one
warm-up call outside any window, then open ``"iter-0"``, ``"iter-1"``, ... around
each timed generation (device synchronised before each end). Every backend may
also open ``"run"`` around the whole measured load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.measuring.energy import WindowMeasurement


@runtime_checkable
class Meter(Protocol):
    """Energy windows, implemented by :mod:`harness.measuring.energy` (Zeus) and by fakes in tests."""

    def begin(self, name: str) -> None: ...

    def end(self, name: str, sync: bool = True) -> WindowMeasurement: ...


@dataclass
class RequestRecord:
    """One LLM request as the load generator saw it. Times are wall clock seconds (time.time())."""

    request_id: int
    prompt_tokens: int
    target_output_tokens: int  # the drawn length the request was forced to
    output_tokens: int  # what actually came back (usage), 0 on failure
    submit_time_s: float
    first_token_time_s: float | None
    finish_time_s: float | None
    token_times_s: list[float] = field(default_factory=list)  # arrival time of every output token
    success: bool = True
    error: str | None = None


@dataclass
class IterationRecord:
    """One timed diffusion generation (a whole batch)."""

    index: int
    start_time_s: float
    end_time_s: float
    batch_size: int
    outputs: int  # images or videos produced


@dataclass
class WorkloadResult:
    requests: list[RequestRecord] = field(default_factory=list)
    iterations: list[IterationRecord] = field(default_factory=list)
    windows: dict[str, WindowMeasurement] = field(default_factory=dict)
    server_log: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)  # backend facts worth storing (versions, args, KV blocks...)


class WorkloadError(RuntimeError):
    """The workload failed (server died, never healthy, out of memory). ``log_tail`` holds the evidence."""

    def __init__(self, message: str, log_tail: str = "", cause: str = "error"):
        super().__init__(message)
        self.log_tail = log_tail
        self.cause = cause  # short machine-readable cause: "server-died", "unhealthy", "oom", "timeout", ...


class Backend(Protocol):
    """Lifecycle: ``start`` (not measured) -> ``run`` (measured through the meter) -> ``stop`` (always called)."""

    name: str
    metrics_url: str | None  # Prometheus endpoint while started (vLLM), else None

    def start(self, cfg: Any, run_dir: Path) -> None: ...

    def run(self, cfg: Any, meter: Meter) -> WorkloadResult: ...

    def stop(self) -> None: ...


class LoggingBackend:
    """Shared plumbing of the in-process backends: a run log (``server.log``) and option checking."""

    name = "backend"
    log_path: Path | None = None

    def _log(self, line: str) -> None:
        if self.log_path is not None:
            import time

            with open(self.log_path, "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def _merge_options(self, given, defaults: dict) -> dict:
        """The backend's defaults updated with a config's options; an unknown name is a ``bad-option`` failure."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise WorkloadError(f"unknown {self.name} option(s) {unknown} (known: {sorted(defaults)})", cause="bad-option")
        return defaults | given

    def _release_device(self) -> None:
        """Drop the model and return its memory (CUDA cache too) before the next run starts."""
        torch, device = getattr(self, "torch", None), getattr(self, "device", None)
        if torch is not None and device is not None and device.type == "cuda":
            torch.cuda.empty_cache()
        import gc

        gc.collect()


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None
