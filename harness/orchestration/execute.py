"""One run's life, shared by the sweep (:mod:`harness.orchestration.runner`) and the GPU check.

    run = begin(RunStart(cfg, study.name, run_dir, env, idle_power, on_gpu))  # run.json says "incomplete"
    execute(run, instruments)       # meter, backend.start, sampler, backend.run, sampler stop, backend.stop
    with signals_deferred():
        conclude(run)               # status, cause, times, idle power and telemetry facts into run.record
        ...                         # metrics of an ok run (the caller's), then the files
        mark_unstable_unless_ok(run)

:class:`Run` carries the pieces from step to step; :class:`Instruments` says how a run is instrumented
(the sweep's Zeus meter and pandas timeline, or the check's NVML fallback and plain rows). A
WorkloadError, a timeout or a crash of the backend fails the run (cause and log tail kept); SIGINT or
SIGTERM leaves it incomplete and is raised again once the caller has saved it.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import Configuration
from harness.measuring import store
from harness.orchestration import gpu_knobs, records
from harness.orchestration.signals import Interrupted, signals_deferred, time_limit
from harness.workloads.base import WorkloadError


@dataclass(frozen=True)
class Instruments:
    """How a run is instrumented.

    ``open_meter(gpu_indices)``: the energy meter over those GPUs (a :class:`harness.measuring.energy.ZeusMeter`);
    ``read_timeline(telemetry)``: the stopped sampler's samples (``Telemetry.stop``: a DataFrame, or
    ``Telemetry.stop_rows``: tuples); ``sampler_hz``: telemetry samples per second; ``run_timeout_s``: a run
    that takes longer fails with cause "timeout" (0: no limit).
    """

    open_meter: Callable[[list[int]], Any]
    read_timeline: Callable[[Any], Any]
    sampler_hz: float
    run_timeout_s: float


@dataclass(frozen=True)
class RunStart:
    """What a run starts from: the configuration, where it is written and what the host is.

    ``idle_power_watts``: each GPU's idle power measured before the sweep (W, by GPU index);
    ``on_gpu``: energy and GPU telemetry are measured (False on a CPU host and in the check's dry run).
    """

    cfg: Configuration
    study: str
    run_dir: Path
    env: dict
    idle_power_watts: dict[int, float]
    on_gpu: bool


@dataclass
class Run:
    """One configuration being measured, and what measuring it has produced so far."""

    start: RunStart
    record: dict  # run.json as it grows
    gpu_indices: list[int]  # the GPUs measured, in CUDA's numbering
    started_monotonic_s: float
    meter: Any = None  # harness.measuring.energy.ZeusMeter
    backend: Any = None  # harness.workloads.base.Backend
    telemetry: Any = None  # harness.measuring.telemetry.Telemetry
    result: Any = None  # harness.workloads.base.WorkloadResult of a run that finished
    timeline: Any = None  # what Instruments.read_timeline returned
    status: str = "ok"
    cause: str | None = None
    message: str | None = None
    log_tail: str | None = ""
    interrupted: Interrupted | None = None
    held: Any = None  # harness.measuring.gpu_settings.Held: the power cap / locked clock set for this run
    tables: dict[str, Any] = field(default_factory=dict)  # file name -> DataFrame, written with the run

    @property
    def cfg(self) -> Configuration:
        return self.start.cfg

    @property
    def run_dir(self) -> Path:
        return self.start.run_dir

    @property
    def on_gpu(self) -> bool:
        return self.start.on_gpu

    @property
    def idle_watts(self) -> list[float]:
        """Idle power of each measured GPU that has one (W)."""
        idle = self.start.idle_power_watts
        return [idle[i] for i in self.gpu_indices if i in idle]


def begin(start: RunStart) -> Run:
    """Mark the run's folder ``incomplete`` (run.json written) and choose the GPUs it measures."""
    from harness.workloads import registry

    cfg, env = start.cfg, start.env
    record = records.started_record(cfg, start.study, env)
    run = Run(start=start, record=record, gpu_indices=[], started_monotonic_s=time.monotonic())
    store.write_run(start.run_dir, record)
    run.gpu_indices = list(range(cfg.num_gpus)) if start.on_gpu else []
    chosen = registry.measured_gpus(cfg, env.get("gpu_count", 0))  # the endpoint backend names its own
    run.gpu_indices = run.gpu_indices if chosen is None else chosen
    return run


def execute(run: Run, instruments: Instruments) -> None:
    """Open the meter, start the backend (not measured), start the sampler, ``backend.run``, then stop the
    sampler and the backend (always). The outcome goes into ``run``; nothing is raised (an interruption is
    kept in ``run.interrupted`` for the caller to raise after saving)."""
    from harness.measuring.telemetry import Telemetry
    from harness.workloads import registry

    cfg, env = run.cfg, run.start.env
    try:
        try:
            with time_limit(instruments.run_timeout_s):
                if run.on_gpu and cfg.num_gpus > env["gpu_count"]:
                    raise WorkloadError(
                        f"needs {cfg.num_gpus} GPUs, this host has {env['gpu_count']}", cause="insufficient-gpus"
                    )
                run.meter = instruments.open_meter(run.gpu_indices)
                run.held = gpu_knobs.set_for_run(run)  # power cap, locked clock (originals kept on disk)
                run.backend = registry.get_backend(cfg.backend)
                run.backend.start(cfg, run.run_dir)
                run.telemetry = Telemetry(
                    instruments.sampler_hz,
                    run.gpu_indices,
                    getattr(run.backend, "metrics_url", None),
                    server_pid=getattr(run.backend, "server_pid", None),
                )
                run.telemetry.start()
                run.result = run.backend.run(cfg, run.meter)
        finally:
            with signals_deferred(hold=True):  # a signal now stops the sweep after this run is saved
                _stop_pieces(run, instruments)
    except Interrupted as exc:
        run.status, run.cause, run.interrupted = "incomplete", f"interrupted by {exc}", exc
    except WorkloadError as exc:
        run.status, run.cause, run.message, run.log_tail = "failed", exc.cause, str(exc), exc.log_tail
    except Exception as exc:  # noqa: BLE001  # a backend bug or a broken host must not end the sweep
        run.status, run.cause, run.message = "failed", f"crash: {type(exc).__name__}", str(exc)
        run.log_tail = traceback.format_exc(limit=8)
    finally:
        if run.meter is not None:
            run.meter.close()


def _stop_pieces(run: Run, instruments: Instruments) -> None:
    """Stop the sampler, then the backend; an error in either is recorded, never raised."""
    telemetry = run.telemetry
    if telemetry is not None:
        try:
            run.timeline = instruments.read_timeline(telemetry)
        except Exception as exc:  # noqa: BLE001  # a broken sampler must not leave the server running
            telemetry.errors.append(f"stop: {type(exc).__name__}: {exc}")
            telemetry.info.update(error_count=len(telemetry.errors), errors=telemetry.errors[:5])
    if run.backend is not None:
        try:
            run.backend.stop()
        except Exception as exc:  # noqa: BLE001  # recorded as stop_error: the run's record is still written
            run.record["stop_error"] = f"{type(exc).__name__}: {exc}"
    gpu_knobs.restore_after_run(run)  # the GPUs as they were, once nothing runs on them


def conclude(run: Run) -> None:
    """The outcome, times (``wall_time_s`` in s), idle power (W per GPU) and telemetry facts into the record."""
    idle = run.start.idle_power_watts
    run.record.update(
        status=run.status,
        cause=run.cause,
        message=run.message,
        log_tail=run.log_tail or None,
        finished_at=records.now(),
        wall_time_s=time.monotonic() - run.started_monotonic_s,
        idle_power_watts={str(i): idle[i] for i in run.gpu_indices if i in idle},
    )
    if run.telemetry is not None:
        run.record["telemetry"] = run.telemetry.info


def fail_in_metrics(run: Run, exc: Exception) -> None:
    """Bad records from a backend: keep the evidence, fail the run."""
    run.record.update(
        status="failed",
        cause=f"crash: metrics: {type(exc).__name__}",
        message=str(exc),
        log_tail=traceback.format_exc(limit=8),
    )


def mark_unstable_unless_ok(run: Run) -> None:
    """A run that did not finish ok is not stable; its reason is its status and cause."""
    record = run.record
    if record["status"] != "ok":
        record.update(is_stable=False, unstable_reason=f"{record['status']}: {record['cause']}")


def validity(run: Run, metrics: dict, coverage: float | None) -> None:
    """Validity flags of a finished run (:func:`harness.measuring.steady.validity`) into its record.

    ``coverage``: the share of expected telemetry samples present in the steady window (0..1), or None.
    """
    from harness.measuring import steady

    telemetry = run.telemetry
    limits = (telemetry.info.get("power_limit_watts") or {}).values() if telemetry else ()
    stable, reason, codes = steady.validity(
        metrics,
        is_llm=run.cfg.is_llm,
        on_gpu=run.on_gpu,
        max_num_seqs=run.cfg.max_num_seqs,
        num_gpus=len(run.gpu_indices) or 1,
        idle_power_watts=run.idle_watts,
        power_limit_watts=limits,
        coverage=coverage,
        sampler_errors=len(telemetry.errors) if telemetry else 0,
    )
    run.record.update(metrics=metrics, is_stable=stable, unstable_reason=reason, failed_checks=codes)
