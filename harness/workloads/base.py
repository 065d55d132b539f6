"""The contract every workload backend follows (vLLM, an existing server, transformers, diffusers, trivial CPU).

A backend is a subclass of :class:`Backend`. Its class declares what it offers before anything starts:
its ``name``, the ``tasks`` it drives, its one option table (``option_table``, :mod:`harness.workloads.options`),
whether it takes any model name (``any_model``: a server the user runs), the models it can build
(:meth:`Backend.known_models`), the GPUs a run measures (:meth:`Backend.measured_gpus`) and why it cannot run a
configuration's layout (:meth:`Backend.preflight_problems`). :mod:`harness.workloads.registry` builds the study
reader's catalogue from these, and :mod:`harness.orchestration.preflight` and the runner ask them.

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

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from harness.config import Configuration
from harness.errors import ConfigError
from harness.measuring.energy import WindowMeasurement
from harness.workloads.options import OptionTable, defaults, problems, unknown

if TYPE_CHECKING:
    from harness.workloads.archs import LLMFacts

__all__ = [
    "Backend",
    "BadOption",
    "IterationRecord",
    "LoggingBackend",
    "Meter",
    "RequestRecord",
    "StampClock",
    "WindowMeasurement",
    "WorkloadError",
    "WorkloadResult",
    "one_device_problems",
    "package_version",
]


@runtime_checkable
class Meter(Protocol):
    """Energy windows, implemented by :mod:`harness.measuring.energy` (Zeus) and by fakes in tests."""

    def begin(self, name: str) -> None:
        """Open the window ``name``."""
        ...

    def end(self, name: str, sync: bool = True) -> WindowMeasurement:
        """Close the window ``name`` (after a device synchronisation when ``sync``); its time and energy."""
        ...


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
    """One timed diffusion generation (a whole batch). Times are wall clock seconds (time.time())."""

    index: int
    start_time_s: float
    end_time_s: float
    batch_size: int
    outputs: int  # images or videos produced


@dataclass
class WorkloadResult:
    """What a backend's ``run`` returns: per-request or per-iteration records, the meter's windows, the log."""

    requests: list[RequestRecord] = field(default_factory=list)
    iterations: list[IterationRecord] = field(default_factory=list)
    windows: dict[str, WindowMeasurement] = field(default_factory=dict)
    server_log: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)  # backend facts worth storing (versions, args, KV blocks...)


class WorkloadError(RuntimeError):
    """The workload failed (server died, never healthy, out of memory). ``log_tail`` holds the evidence."""

    def __init__(self, message: str, log_tail: str = "", cause: str = "error") -> None:
        super().__init__(message)
        self.log_tail = log_tail
        self.cause = cause  # short machine-readable cause: "server-died", "unhealthy", "oom", "timeout", ...


class BadOption(WorkloadError, ConfigError):
    """An option the backend refuses: fails the run (cause ``bad-option`` unless given) and reads as a config
    error."""

    def __init__(self, message: str, cause: str = "bad-option") -> None:
        WorkloadError.__init__(self, message, cause=cause)


class StampClock:
    """Wall-clock stamps in seconds (``time.time()``) that never repeat or go backwards, so that the order of
    events is the order of their times (online steady-window tracking and a replay afterwards agree)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = max(time.time(), self.last + 1e-6)
        return self.last


def one_device_problems(backend: str, cfg: Configuration) -> list[str]:
    """Why a backend that runs on one device cannot run ``cfg`` (a layout over several GPUs), one line each."""
    if int(cfg.num_gpus or 1) != 1 or int(cfg.tensor_parallel or 1) != 1 or int(cfg.expert_parallel or 1) != 1:
        return [f"the {backend} backend runs on one device (num_gpus, tensor_parallel and expert_parallel must be 1)"]
    return []


class Backend(ABC):
    """A workload backend. Lifecycle: ``start`` (not measured) -> ``run`` (measured through the meter) ->
    ``stop`` (always called, also after a failed start).

    Class attributes, the backend's offer: ``name``; ``tasks`` it drives (:mod:`harness.vocabulary.tasks`);
    ``option_table``, its options' types, defaults, ranges and meanings (:mod:`harness.workloads.options`);
    ``any_model``, true where the models are whatever a server the user runs serves.
    """

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]]
    option_table: ClassVar[OptionTable]
    any_model: ClassVar[bool] = False
    metrics_url: str | None = None  # Prometheus endpoint while started (a serving engine), else None

    # --- the offer, asked before anything starts -------------------------------------------------------

    @classmethod
    def known_models(cls, task: str | None = None) -> tuple[str, ...]:
        """Architecture names this backend can build without downloading anything (:mod:`harness.workloads.archs`);
        with ``task``, only those that can serve it (a diffusion pipeline makes either images or videos; every
        LLM architecture serves every LLM task)."""
        try:
            from harness.workloads import archs
        except ModuleNotFoundError:
            return ()
        names = archs.names(cls.name)
        if task is not None:
            names = tuple(n for n in names if archs.get(n).task in (None, task))
        return tuple(names)

    @classmethod
    def measured_gpus(cls, cfg: Configuration, visible: int) -> list[int] | None:
        """This host's GPUs (indices among the ``visible`` ones) a run measures when the backend chooses them,
        else None: the runner's default, GPUs ``0 .. num_gpus - 1``."""
        return None

    @classmethod
    def preflight_problems(cls, cfg: Configuration, facts: LLMFacts | None = None) -> list[str]:
        """Why this backend cannot run ``cfg``'s GPU layout (one line each; [] when it can). ``facts`` are the
        LLM's heads and experts (:func:`harness.workloads.archs.llm_facts`) where known."""
        return []

    @classmethod
    def model_parameters(cls, model: str) -> int | None:
        """Parameters of a named model that the architecture's facts do not give (a diffusion pipeline), counted
        without building it in memory; None where the backend cannot say."""
        return None

    # --- options -----------------------------------------------------------------------------------------

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Every option with its default (:func:`harness.workloads.options.defaults` of ``option_table``)."""
        return defaults(cls.option_table)

    def resolve_options(self, cfg: Configuration) -> dict[str, Any]:
        """``cfg``'s options over the defaults, checked: an unknown name or a value outside its type and range is a
        one-line :class:`BadOption`, as is whatever :meth:`check_options` refuses."""
        given = dict(cfg.options or {})
        names = unknown(self.option_table, given)
        if names:
            raise BadOption(f"unknown {self.name} option(s) {names} (known: {sorted(self.option_table)})")
        bad = problems(self.option_table, given)
        if bad:
            raise BadOption("; ".join(f"options.{name}: {why}" for name, why in bad))
        opts = self.option_defaults() | given
        self.check_options(opts)
        return opts

    def check_options(self, opts: Mapping[str, Any]) -> None:  # noqa: B027  # a hook: optional, no-op by default
        """Checks beyond each option's type and range (options that need one another, required ones): raise
        :class:`BadOption`. Nothing by default."""

    # --- lifecycle --------------------------------------------------------------------------------------

    @abstractmethod
    def start(self, cfg: Configuration, run_dir: Path) -> None:
        """Build or reach what serves the load (not measured); the backend's log goes to ``run_dir/server.log``."""

    @abstractmethod
    def run(self, cfg: Configuration, meter: Meter) -> WorkloadResult:
        """Drive the load, opening and closing ``meter``'s windows around the measured regions."""

    @abstractmethod
    def stop(self) -> None:
        """Release everything ``start`` took (processes, device memory); safe to call more than once."""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the backend's log ("" where there is none)."""
        return ""


class LoggingBackend(Backend):
    """Shared plumbing of the in-process backends: a run log (``server.log``)."""

    log_path: Path | None = None

    def _log(self, line: str) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of ``server.log``."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

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
