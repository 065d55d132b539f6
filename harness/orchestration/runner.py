"""The sweep: ``python -m harness measure CONFIG [--results DIR] [--index I] [--dry-run] [--force]``.

For each Configuration of the study (or only configuration ``I``):

1. skip it when its folder already holds a result (status ok, failed or skipped, checksums intact);
   ``--force`` moves that folder to ``<study>/.replaced/`` and measures again; a damaged folder
   (files that fail their checksums) is moved there too, never deleted, and measured again;
2. skip it, recorded as ``skipped`` with the reason, when a smaller batch of the same series
   (same model, task, GPU count and other knobs) failed with cause ``oom`` or was unstable for a
   batch reason (no steady state, too short, unsaturated) -- the reference's rule;
3. otherwise measure it: mark the folder ``incomplete``, start the backend (not measured), start
   the telemetry sampler, ``backend.run(cfg, meter)``, stop the sampler, ``backend.stop()``
   (always), compute metrics and validity flags (:mod:`harness.measuring.steady`) and write the run
   (:mod:`harness.measuring.store`).

Before anything starts, :mod:`harness.orchestration.preflight` checks every configuration to measure
against this host (GPUs after ``CUDA_VISIBLE_DEVICES``, weights against their memory, parallelism
against the model's heads and experts): any problem refuses the sweep, one line per problem, nothing
written; ``--dry-run`` prints the same verdicts. Idle power is measured once per sweep before the first run (GPU hosts). A WorkloadError, a
timeout or a crash of the backend fails that run (cause and log tail stored) and the sweep goes
on. A telemetry sampler that raises does not stop the run: the run is flagged (``telemetry-errors``).
SIGINT and SIGTERM stop the sweep: the run in progress stays ``incomplete``, finished runs are
untouched, and the next ``measure`` resumes with exactly the runs that are not done. A results
folder that cannot be written (disk full) stops the sweep with :class:`StoreWriteError`, one line
naming the folder and the cause; runs already written stay intact.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from harness.measuring import store
from harness.measuring.adaptive import SEGMENT_WINDOW
from harness.config import Configuration, Study
from harness.orchestration.study import load_study
from harness.errors import HarnessError
from harness.vocabulary.tasks import OUTPUT_UNIT
from harness.measuring.steady import BATCH_CODES
from harness.workloads.base import WorkloadError


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during a sweep."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _SignalState:
    depth = 0  # > 0 while cleanup that must not be cut short runs
    pending: int | None = None


def _on_signal(signum, frame):
    if _SignalState.depth:
        _SignalState.pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def _handle_signals():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SignalState.depth, _SignalState.pending = 0, None
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _SignalState.pending = None


@contextlib.contextmanager
def _signals_deferred(hold: bool = False):
    """Hold SIGINT/SIGTERM back while stopping a backend or saving a run; raise Interrupted after.

    ``hold=True`` keeps a signal that arrived pending for the next deferred block (the run's outcome
    is saved first, then the sweep stops).
    """
    _SignalState.depth += 1
    try:
        yield
    finally:
        _SignalState.depth -= 1
    if not hold and _SignalState.depth == 0 and _SignalState.pending is not None:
        signum, _SignalState.pending = _SignalState.pending, None
        raise Interrupted(signum)


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise WorkloadError(cause="timeout") in the main thread after ``seconds``."""
    if threading.current_thread() is not threading.main_thread() or not seconds:
        yield
        return

    def handler(signum, frame):
        raise WorkloadError(f"run exceeded run_timeout_s={seconds:g}", cause="timeout")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _series_key(cfg: Configuration) -> tuple:
    d = cfg.as_dict()
    d.pop(cfg.batch_knob)
    d.pop("study")
    d.pop("repeat", None)  # a smaller batch that failed in any repeat rules this one out
    return tuple(sorted((k, repr(v)) for k, v in d.items()))


def blocking_reason(cfg: Configuration, study: Study, results_dir: Path) -> str | None:
    """Why a smaller batch of the same series rules this configuration out, or None."""
    key = _series_key(cfg)
    for other in study.configurations:
        if other.batch_value >= cfg.batch_value or _series_key(other) != key:
            continue
        state, record = store.result_state(store.run_path(results_dir, study.name, other.run_id))
        knob = f"{other.batch_knob}={other.batch_value}"
        if state == "failed" and record.get("cause") == "oom":
            return f"{knob} ran out of memory (run {other.run_id})"
        # The reference drops larger batches after an unstable one, a rule about energy measurements. Where
        # nothing was measured with an energy counter (a CPU host) the unstable run stays flagged, but it does
        # not rule out the larger batches: their times and latent metrics are still worth having.
        if (state == "ok" and not record.get("is_stable")
                and (record.get("metrics") or {}).get("gpu_energy_joules") is not None
                and set(record.get("failed_checks") or ()) & set(BATCH_CODES)):
            return f"{knob} was unstable ({record.get('unstable_reason')}; run {other.run_id})"
    return None


def _window_dict(w) -> dict:
    return {"start_time_s": w.start_time_s, "end_time_s": w.end_time_s, "duration_s": w.duration_s,
            "gpu_energy_joules": w.gpu_energy_joules, "cpu_energy_joules": w.cpu_energy_joules,
            "dram_energy_joules": w.dram_energy_joules, "energy_source": w.energy_source}


def _timeline_metrics(frame, start, end) -> dict:
    if frame is None or not len(frame) or start is None:
        return {}
    inside = frame[(frame["time_s"] >= start) & (frame["time_s"] <= end)]
    nvml = inside[inside["source"] == "nvml"]
    vllm = inside[inside["source"] == "vllm"]
    host = inside[inside["source"] == "host"]

    def mean(series):
        series = series.dropna()
        return float(series.mean()) if len(series) else None

    return {
        "avg_gpu_utilization_percent": mean(nvml["gpu_utilization_percent"]),
        "max_temperature_celsius": float(nvml["temperature_celsius"].max()) if nvml["temperature_celsius"].notna().any() else None,
        "avg_sampled_power_watts": mean(nvml.groupby("time_s")["power_watts"].sum()) if len(nvml) else None,
        "avg_kv_cache_usage_fraction": mean(vllm["kv_cache_usage_fraction"]),
        "avg_num_requests_running": mean(vllm["num_requests_running"]),
        "avg_process_cpu_percent": mean(host["process_cpu_percent"]),
    }


def measure_one(cfg: Configuration, study: Study, run_dir: Path, env: dict, idle_power: dict[int, float]) -> dict:
    """Measure one configuration into ``run_dir``; returns its record. Raises Interrupted after saving."""
    from harness.measuring.energy import ZeusMeter
    from harness.measuring.telemetry import Telemetry
    from harness.workloads import registry

    settings = study.settings
    started, t0 = _now(), time.monotonic()
    record = {"run_id": cfg.run_id, "study": study.name, "status": "incomplete",
              "cause": "started; the process stopped before the run finished", "is_stable": False,
              "unstable_reason": "incomplete", "config": cfg.as_dict(), "environment": env, "started_at": started,
              "engine": _engine_info(cfg)}
    store.write_run(run_dir, record)
    on_gpu = env.get("gpu_count", 0) > 0
    gpu_indices = list(range(cfg.num_gpus)) if on_gpu else []
    chosen = registry.measured_gpus(cfg, env.get("gpu_count", 0))  # the endpoint backend names its own
    gpu_indices = gpu_indices if chosen is None else chosen
    backend = telemetry = meter = result = timeline = None
    status, cause, message, log_tail, interrupted = "ok", None, None, "", None
    try:
        try:
            with _time_limit(settings.run_timeout_s):
                if on_gpu and cfg.num_gpus > env["gpu_count"]:
                    raise WorkloadError(f"needs {cfg.num_gpus} GPUs, this host has {env['gpu_count']}",
                                        cause="insufficient-gpus")
                meter = ZeusMeter(gpu_indices)
                backend = registry.get_backend(cfg.backend)
                backend.start(cfg, run_dir)
                telemetry = Telemetry(settings.sampler_hz, gpu_indices, getattr(backend, "metrics_url", None))
                telemetry.start()
                result = backend.run(cfg, meter)
        finally:
            with _signals_deferred(hold=True):  # a signal now stops the sweep after this run is saved
                if telemetry is not None:
                    try:
                        timeline = telemetry.stop()
                    except Exception as exc:  # a broken sampler must not leave the server running
                        telemetry.errors.append(f"stop: {type(exc).__name__}: {exc}")
                        telemetry.info.update(error_count=len(telemetry.errors), errors=telemetry.errors[:5])
                if backend is not None:
                    try:
                        backend.stop()
                    except Exception as exc:
                        record["stop_error"] = f"{type(exc).__name__}: {exc}"
    except Interrupted as exc:
        status, cause, interrupted = "incomplete", f"interrupted by {exc}", exc
    except WorkloadError as exc:
        status, cause, message, log_tail = "failed", exc.cause, str(exc), exc.log_tail
    except Exception as exc:  # a backend bug or a broken host must not end the sweep
        status, cause, message = "failed", f"crash: {type(exc).__name__}", str(exc)
        log_tail = traceback.format_exc(limit=8)
    finally:
        if meter is not None:
            meter.close()

    with _signals_deferred():  # the outcome is saved even if a signal arrives now
        record.update(status=status, cause=cause, message=message, log_tail=log_tail or None,
                      finished_at=_now(), wall_time_s=time.monotonic() - t0,
                      idle_power_watts={str(i): idle_power[i] for i in gpu_indices if i in idle_power})
        tables = {"timeline.parquet": timeline}
        if telemetry is not None:
            record["telemetry"] = telemetry.info
        if status == "ok":
            try:
                _summarize(cfg, study, record, tables, result, meter, telemetry, timeline, on_gpu, gpu_indices,
                           idle_power)
            except Exception as exc:  # bad records from a backend: keep the evidence, fail the run
                record.update(status="failed", cause=f"crash: metrics: {type(exc).__name__}", message=str(exc),
                              log_tail=traceback.format_exc(limit=8))
        if record["status"] != "ok":
            record.update(is_stable=False, unstable_reason=f"{record['status']}: {record['cause']}")
        server_log = getattr(result, "server_log", None) if result is not None else None
        store.write_run(run_dir, record, tables, server_log=server_log)
    if interrupted is not None:
        raise interrupted
    return record


def _engine_info(cfg: Configuration) -> dict | None:
    """The serving engine a run uses (name, version, interpreter; :mod:`harness.workloads.engines`), or None."""
    from harness.config import ENGINE_BACKENDS
    from harness.workloads import engines

    return engines.describe(cfg.engine) if cfg.backend in ENGINE_BACKENDS else None


def engine_problems(configurations) -> list[str]:
    """One line per serving engine these configurations need that has no usable environment here."""
    from harness.config import ENGINE_BACKENDS
    from harness.workloads import engines

    return engines.check(c.engine for c in configurations if c.backend in ENGINE_BACKENDS)


def _summarize(cfg, study, record, tables, result, meter, telemetry, timeline, on_gpu, gpu_indices, idle_power):
    """Metrics, per-request or per-iteration rows and validity flags of a finished run (into ``record``)."""
    import pandas as pd

    from harness.measuring import steady
    from harness.measuring.telemetry import coverage_fraction

    settings = study.settings
    windows = {**(meter.windows if meter else {}), **result.windows}
    windows.pop(SEGMENT_WINDOW, None)  # adaptive stopping's checkpoints: kept in record["stop"]
    record["windows"] = {name: _window_dict(w) for name, w in windows.items()}
    record["backend_info"] = {k: v for k, v in result.info.items() if k != "stop"}
    if cfg.is_llm:
        stop = result.info.get("stop")
        stop_time = stop.get("stop_time_s") if stop else None  # set when the load was stopped early
        metrics, rows = steady.llm_metrics(result.requests, windows, cfg.max_num_seqs, stop_time_s=stop_time,
                                           load=result.info.get("load"))
        stop_metrics, record["stop"] = _stop_outcome(cfg, stop)
        metrics.update(stop_metrics)
        tables["requests.parquet"] = pd.DataFrame(rows)
    else:
        metrics, rows = steady.diffusion_metrics(result.iterations, windows, OUTPUT_UNIT[cfg.task])
        tables["iterations.parquet"] = pd.DataFrame(rows)
    start, end = metrics.get("steady_start_time_s"), metrics.get("steady_end_time_s")
    coverage = None
    if start is not None and end is not None and timeline is not None:
        coverage = coverage_fraction(timeline, start, end, settings.sampler_hz, telemetry.info["gpu_indices"],
                                     telemetry.metrics_url)
    metrics.update(_timeline_metrics(timeline, start, end))
    metrics["telemetry_coverage_fraction"] = coverage
    idle = [idle_power[i] for i in gpu_indices if i in idle_power]
    metrics["idle_power_watts"] = sum(idle) / len(idle) if idle else None
    limits = (telemetry.info.get("power_limit_watts") or {}).values() if telemetry else ()
    stable, reason, codes = steady.validity(
        metrics, is_llm=cfg.is_llm, on_gpu=on_gpu, max_num_seqs=cfg.max_num_seqs, num_gpus=len(gpu_indices) or 1,
        idle_power_watts=idle, power_limit_watts=limits, coverage=coverage,
        sampler_errors=len(telemetry.errors) if telemetry else 0)
    record.update(metrics=metrics, is_stable=stable, unstable_reason=reason, failed_checks=codes)
    _assess(cfg, record, result, windows, metrics, timeline, telemetry, on_gpu, gpu_indices, rows)
    _split_energy(cfg, record, timeline, tables.get("requests.parquet"),
                  {str(i): idle_power[i] for i in gpu_indices if i in idle_power})


def _split_energy(cfg: Configuration, record: dict, timeline, requests, idle_power_watts: dict[str, float]) -> None:
    """Static against dynamic energy and the phase split of a finished run (:mod:`harness.analysis.energy_split`)
    into ``record["energy_split"]`` and its tidy columns into the metrics. A failure of the estimator is recorded
    as the split's reason; it never fails the run."""
    from harness.analysis import energy_split
    from harness.analysis.engine_steps import EngineLimits

    metrics = record["metrics"]
    # The replay of the engine's schedule needs its limits: the vLLM backend starts the server with these.
    engine = EngineLimits(cfg.max_num_seqs, cfg.max_num_batched_tokens) if cfg.backend == "vllm" else EngineLimits()
    try:
        section = energy_split.split_run(energy_split.RunEnergyInputs(metrics, idle_power_watts, timeline, requests,
                                                                      cfg.is_llm, engine))
    except Exception as exc:  # noqa: BLE001 -- a broken estimate must not lose a measured run
        section = {"phases": {"reason": f"the energy split failed: {type(exc).__name__}: {exc}"}}
    record["energy_split"] = section
    metrics.update(energy_split.tidy_columns(section))


def _assess(cfg, record, result, windows, metrics, timeline, telemetry, on_gpu, gpu_indices, rows):
    """Intervals, window sensitivity, error budget (:mod:`harness.measuring.fidelity`) and the reference
    validator's flags (:mod:`harness.measuring.validator`) of a finished run (into ``record``)."""
    from harness.measuring import fidelity, validator
    from harness.measuring.telemetry import coverage_fraction

    info = telemetry.info if telemetry else {}
    hz = info.get("sampler_hz") or 10.0
    assessed = fidelity.assess(cfg.is_llm, result.requests, rows, windows, metrics, timeline,
                               OUTPUT_UNIT.get(cfg.task), sampler_hz=hz)
    record["fidelity"] = assessed
    metrics.update(fidelity.tidy_columns(assessed))
    run = windows.get("run")
    run_window = (run.start_time_s, run.end_time_s) if run is not None else None
    run_coverage = None
    if run_window and timeline is not None and telemetry is not None:
        run_coverage = coverage_fraction(timeline, *run_window, hz, info.get("gpu_indices") or [],
                                         telemetry.metrics_url)
    cap = cfg.max_output_tokens or ((record.get("backend_info") or {}).get("options") or {}).get("max_output_tokens")
    flags = validator.validate(
        metrics, is_llm=cfg.is_llm, on_gpu=on_gpu, max_num_seqs=cfg.max_num_seqs, output_cap=cap,
        requests=result.requests if cfg.is_llm else (), timeline=timeline, run_window=run_window,
        run_coverage=run_coverage, power_source=info.get("power_source"),
        gpu_model=(record.get("environment") or {}).get("gpu_model"),
        power_limit_watts=(info.get("power_limit_watts") or {}).values(), num_gpus=len(gpu_indices) or 1)
    record["validation"] = validator.summary(flags)


def _stop_outcome(cfg: Configuration, stop: dict | None) -> tuple[dict, dict]:
    """(metrics, record["stop"]) of an LLM run: how it ended and the estimate's half-width.

    ``stop`` is the backend's ``adaptive.AdaptiveStopper.summary()`` (``result.info["stop"]``), or None
    from a backend without the adaptive-stopping hook (then the run drained every request).
    """
    method = cfg.stop or "fixed"
    if not stop:
        note = f"backend {cfg.backend} reports no stopping estimate"
        if method == "adaptive":
            note += "; stop: adaptive was not honoured (every request drained)"
        stop = {"method": method, "stopped_by": "fixed-count", "estimate": None, "note": note}
    est = stop.get("estimate") or {}
    quantity = est.get("quantity")
    metrics = {
        "stop_method": method,
        "stopped_by": stop.get("stopped_by"),
        "stop_estimate_quantity": quantity,
        "stop_estimate_rel_halfwidth": est.get("rel_halfwidth"),
        "energy_per_token_halfwidth_joules": est.get("halfwidth") if quantity == "energy_per_token_joules" else None,
        "time_per_token_halfwidth_s": est.get("halfwidth") if quantity == "time_per_token_s" else None,
    }
    return metrics, stop


def _skip(cfg: Configuration, study: Study, run_dir: Path, env: dict, reason: str) -> dict:
    record = {"run_id": cfg.run_id, "study": study.name, "status": "skipped", "cause": reason, "is_stable": False,
              "unstable_reason": f"skipped: {reason}", "config": cfg.as_dict(), "environment": env,
              "started_at": _now(), "finished_at": _now()}
    with _signals_deferred():
        store.write_run(run_dir, record)
    return record


def _clear(run_dir: Path) -> None:
    """Empty a run folder that holds no result (an incomplete run) before measuring again."""
    for path in run_dir.iterdir():
        if path.is_file() and path.name != ".lock":
            path.unlink()


def _move_aside(run_dir: Path, why: str) -> Path:
    """Move a run folder's files to ``<study>/.replaced/<run-id>-<time>-<why>/`` (kept, never deleted)."""
    base = run_dir.parent / ".replaced" / f"{run_dir.name}-{time.strftime('%Y%m%dT%H%M%S')}-{why}"
    keep, n = base, 1
    while keep.exists():
        n += 1
        keep = base.with_name(f"{base.name}~{n}")
    keep.mkdir(parents=True)
    for path in run_dir.iterdir():
        if path.name != ".lock":
            os.replace(path, keep / path.name)
    return keep


class StoreWriteError(HarnessError):
    """The results folder could not be written (disk full, read-only, permissions)."""


@contextlib.contextmanager
def _run_lock(run_dir: Path):
    """Hold an exclusive lock on a run folder (two processes never measure one configuration)."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def summary_line(cfg: Configuration, record: dict) -> str:
    m = record.get("metrics") or {}
    status = record["status"]
    parts = [f"{status:10s}", cfg.run_id, cfg.label()]
    if status == "ok":
        def fmt(key, unit):
            value = m.get(key)
            return f"{value:.4g} {unit}" if isinstance(value, (int, float)) else f"- {unit}"

        if cfg.is_llm:
            parts += [fmt("energy_per_token_joules", "J/token"), fmt("output_throughput_tokens_per_sec", "tok/s"),
                      fmt("avg_batch_size", "avg batch"), fmt("median_itl_ms", "ms ITL")]
        else:
            parts += [fmt("energy_per_output_joules", "J/output"), fmt("batch_latency_s", "s/batch")]
        parts.append("stable" if record.get("is_stable") else f"UNSTABLE ({record.get('unstable_reason')})")
        rel = m.get("stop_estimate_rel_halfwidth")
        rel = f", +/-{100 * rel:.1f}%" if isinstance(rel, float) else ""
        if cfg.is_llm and m.get("stopped_by") == "adaptive":
            parts.append(f"stopped early (estimate stable{rel})")
        elif cfg.is_llm and m.get("stopped_by") == "window-closed":
            parts.append(f"stopped at the window's end (tail not drained{rel})")
    else:
        parts.append(f"cause: {record.get('cause')}")
    return "  ".join(parts)


def plan(study: Study, results_dir: Path, index: int | None = None) -> list[tuple[Configuration, str]]:
    """(configuration, state) for the configurations in scope; state is the stored result's state."""
    configs = list(study.configurations)
    if index is not None:
        if not 0 <= index < len(configs):
            raise HarnessError(f"--index {index} is out of range: {study.path} has {len(configs)} configurations (0..{len(configs) - 1})")
        configs = [configs[index]]
    return [(cfg, store.result_state(store.run_path(results_dir, study.name, cfg.run_id))[0]) for cfg in configs]


def measure_study(study: Study, results_dir: Path | str, *, index: int | None = None, dry_run: bool = False,
                  force: bool = False, progress: bool = True, out=None, strategy: str = "grid") -> dict[str, int]:
    """Measure the configurations that have no result; returns counts by outcome."""
    from tqdm import tqdm

    out = out or sys.stdout
    results_dir = store.results_folder(results_dir)
    planned = plan(study, results_dir, index)
    todo = [(cfg, state) for cfg, state in planned if force or state not in store.DONE_STATUSES]
    counts = {"already done": len(planned) - len(todo)} if len(planned) > len(todo) else {}
    from harness.orchestration import preflight

    host = preflight.host_facts() if todo else None
    if dry_run:
        verdicts = preflight.check_study(study, host, [cfg for cfg, _ in todo]) if todo else {}
        for cfg, state in planned:
            blocked = blocking_reason(cfg, study, results_dir)
            if state in store.DONE_STATUSES and not force:
                action = f"done ({state})"
            elif verdicts.get(cfg.run_id):
                action = f"refused: {'; '.join(verdicts[cfg.run_id])}"
            elif blocked:
                action = f"would skip: {blocked}"
            else:
                action = {"missing": "measure", "incomplete": "measure again (incomplete)",
                          "corrupt": "measure again (damaged)"}.get(state, f"measure again (--force; was {state})")
            print(f"{study.configurations.index(cfg):4d}  {cfg.run_id}  {cfg.label():40s}  {action}", file=out)
        for problem in engine_problems(c for c, _ in todo):
            print(f"would refuse: {problem}", file=out)
        print(f"{len(todo)} of {len(planned)} configurations to measure (dry run: nothing written)", file=out)
        lines = preflight.report_lines(study, verdicts, [cfg for cfg, _ in todo])
        if lines:
            refused = sum(bool(v) for v in verdicts.values())
            print(f"preflight: {refused} of {len(todo)} would be refused on this host ({host.describe()}); "
                  f"measure stops before starting anything:", file=out)
            for line in lines:
                print(f"  {line}", file=out)
            return counts | {"to measure": len(todo), "refused": refused}
        return counts | {"to measure": len(todo)}
    if not todo:
        print(f"nothing to measure: all {len(planned)} configurations of {study.name} have results in {results_dir}", file=out)
        return counts
    preflight.refuse_if_any(study, host, [cfg for cfg, _ in todo])  # before anything starts or is written
    problems = engine_problems(c for c, _ in todo)
    if problems:  # before anything is measured or written
        raise HarnessError("\n".join(problems))
    from harness.measuring import envinfo
    from harness.measuring.telemetry import measure_idle_power

    env = envinfo.capture()
    print(energy_notice(env), file=out, flush=True)
    idle_power: dict[int, float] = {}
    with _handle_signals():
        try:
            if env.get("gpu_count", 0) > 0 and study.settings.idle_power_s > 0:
                print(f"measuring idle power for {study.settings.idle_power_s:g} s ...", file=out, flush=True)
                idle_power = measure_idle_power(study.settings.idle_power_s, hz=study.settings.sampler_hz)
            order = todo
            if strategy == "frontier":  # the planner picks each series' next batch from what is measured so far
                from harness.orchestration.planner import frontier_order

                order = frontier_order(todo, results_dir, study, env.get("gpu_model"), out=out)
            bar = tqdm(order, desc=study.name, unit="run", disable=not progress, file=sys.stderr, dynamic_ncols=True,
                       total=len(todo))
            measured = 0
            for cfg, state in bar:
                run_dir = store.run_path(results_dir, study.name, cfg.run_id)
                try:
                    with _run_lock(run_dir) as locked:
                        if not locked:
                            tqdm.write(f"busy        {cfg.run_id}  another process is measuring it", file=out)
                            counts["busy"] = counts.get("busy", 0) + 1
                            continue
                        state = store.result_state(run_dir)[0]  # again, now that this process holds the folder
                        if state in store.DONE_STATUSES and not force:
                            counts["already done"] = counts.get("already done", 0) + 1
                            continue
                        if state in store.DONE_STATUSES:
                            _move_aside(run_dir, "forced")
                        elif state == "corrupt":  # a damaged result is kept as evidence, then measured again
                            kept = _move_aside(run_dir, "damaged")
                            tqdm.write(f"damaged     {cfg.run_id}  files moved to {kept}; measuring again", file=out)
                        elif run_dir.exists():
                            _clear(run_dir)
                        reason = blocking_reason(cfg, study, results_dir)
                        if reason:
                            record = _skip(cfg, study, run_dir, env, reason)
                        else:
                            if measured and study.settings.cooldown_s:
                                time.sleep(study.settings.cooldown_s)
                            measured += 1
                            record = measure_one(cfg, study, run_dir, env, idle_power)
                except OSError as exc:  # disk full, read-only or unwritable results folder
                    done = sum(n for k, n in counts.items() if k in store.DONE_STATUSES or k == "already done")
                    where = f" ({exc.filename})" if exc.filename else ""
                    raise StoreWriteError(
                        f"cannot write run {cfg.run_id} in {run_dir.parent}: {exc.strerror or exc}{where}; "
                        f"the {done} run(s) finished before it are intact; fix this and run the same command "
                        f"again to resume") from exc
                counts[record["status"]] = counts.get(record["status"], 0) + 1
                tqdm.write(summary_line(cfg, record), file=out)
                out.flush()
            bar.close()
        except Interrupted as exc:
            counts["interrupted"] = 1
            print(f"interrupted by {exc}: finished runs are kept; run the same command again to resume", file=out, flush=True)
            raise
    print(", ".join(f"{n} {k}" for k, n in counts.items()), file=out, flush=True)
    return counts


def energy_notice(env: dict) -> str:
    """One plain line, printed before a sweep, on what this host can and cannot measure."""
    if env.get("gpu_count", 0) > 0:
        return (f"energy: GPU energy from NVML's counter through Zeus on {env['gpu_count']} x "
                f"{env.get('gpu_model') or 'GPU'}; idle power is recorded before the sweep")
    return (f"energy: this host has no GPU energy counter ({env.get('nvml', 'NVML unavailable')}): time and latent "
            f"metrics (batch reached, throughput, latencies, KV-cache use) are measured, energy is not "
            f"(recorded as null with its reason, never as 0 J)")


def _cmd_measure(args) -> int:
    study = load_study(args.config)
    try:
        counts = measure_study(study, args.results, index=args.index, dry_run=args.dry_run, force=args.force,
                               progress=not args.no_progress, strategy=getattr(args, "strategy", "grid"))
    except Interrupted as exc:
        return 128 + exc.signum
    # A single configuration (a Slurm array task) that failed exits 1, so the scheduler's accounting agrees with
    # the store. A whole sweep exits 0 once every configuration has an outcome: failures are results there.
    if args.index is not None and counts.get("failed"):
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("measure", help="measure a study config's grid (resumable)",
                       description="Measure every configuration of a study config that has no result yet. "
                                   "Results go to RESULTS/<study>/<run-id>/. An interrupted sweep resumes where "
                                   "it stopped when run again.")
    p.add_argument("config", metavar="CONFIG", help="study config (YAML)")
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--index", type=int, metavar="I", help="measure only configuration I (0-based; Slurm array tasks)")
    p.add_argument("--dry-run", action="store_true", help="list what would be measured; write nothing")
    p.add_argument("--force", action="store_true",
                   help="measure again even where a result exists (the old folder moves to <study>/.replaced/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per run still printed)")
    p.add_argument("--strategy", choices=("grid", "frontier"), default="grid",
                   help="grid: every configuration; frontier: per series, the batches the energy model's "
                        "uncertainty points at, until the lowest energy under each ITL target is settled")
    p.set_defaults(func=_cmd_measure)
