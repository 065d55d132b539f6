"""A finished sweep run's figures: metrics, per-request or per-iteration rows, validity flags, intervals.

:func:`summarize` fills ``run.record`` (``windows``, ``backend_info``, ``metrics``, ``stop``,
``is_stable``, ``failed_checks``, ``fidelity``, ``validation``) and ``run.tables`` (requests.parquet or
iterations.parquet) from :mod:`harness.measuring.steady`, :mod:`harness.measuring.fidelity` and
:mod:`harness.measuring.validator`. Units are in the names: seconds, joules, watts, percent, fractions.
"""

from __future__ import annotations

from typing import Any

from harness.config import Configuration
from harness.orchestration import execute, records
from harness.orchestration.execute import Run
from harness.vocabulary.tasks import OUTPUT_UNIT


def summarize(run: Run) -> None:
    """Metrics, per-request or per-iteration rows and validity flags of a finished run (into ``run``)."""
    import pandas as pd

    from harness.measuring import steady
    from harness.measuring.telemetry import coverage_fraction

    cfg, result, record, timeline, telemetry = run.cfg, run.result, run.record, run.timeline, run.telemetry
    windows = records.measured_windows(run.meter, result)
    record["windows"] = records.window_dicts(windows)
    record["backend_info"] = {k: v for k, v in result.info.items() if k != "stop"}
    if cfg.is_llm:
        stop = result.info.get("stop")
        stop_time = stop.get("stop_time_s") if stop else None  # set when the load was stopped early
        metrics, rows = steady.llm_metrics(
            result.requests, windows, cfg.knob("max_num_seqs"), stop_time_s=stop_time, load=result.info.get("load")
        )
        stop_metrics, record["stop"] = stop_outcome(cfg, stop)
        metrics.update(stop_metrics)
        run.tables["requests.parquet"] = pd.DataFrame(rows)
    else:
        metrics, rows = steady.diffusion_metrics(result.iterations, windows, OUTPUT_UNIT[cfg.task])
        run.tables["iterations.parquet"] = pd.DataFrame(rows)
    start, end = metrics.get("steady_start_time_s"), metrics.get("steady_end_time_s")
    coverage = None
    if start is not None and end is not None and timeline is not None:
        coverage = coverage_fraction(
            timeline, start, end, telemetry.hz, telemetry.info["gpu_indices"], telemetry.metrics_url
        )
    metrics.update(timeline_metrics(timeline, start, end))
    metrics.update(
        server_cpu_metrics(timeline, start, end, metrics.get("steady_output_tokens"), metrics.get("avg_output_len"))
    )
    if cfg.is_llm:
        metrics["input_wait_fraction"] = input_wait_fraction(timeline, start, end, result.requests)
    metrics["telemetry_coverage_fraction"] = coverage
    idle = run.idle_watts
    metrics["idle_power_watts"] = sum(idle) / len(idle) if idle else None
    execute.validity(run, metrics, coverage)
    _assess(run, windows, metrics, rows)
    split_energy(run)


def split_energy(run: Run) -> None:
    """Static against dynamic energy and the phase split of a finished run (:mod:`harness.analysis.energy_split`)
    into ``run.record["energy_split"]`` and its tidy columns into the metrics. A failure of the estimator is
    recorded as the split's reason; it never fails the run."""
    from harness.analysis import energy_split
    from harness.analysis.engine_steps import EngineLimits

    cfg, record = run.cfg, run.record
    metrics = record["metrics"]
    # The replay of the engine's schedule needs its limits: the vLLM backend starts the server with these.
    engine = EngineLimits(cfg.max_num_seqs, cfg.max_num_batched_tokens) if cfg.backend == "vllm" else EngineLimits()
    idle = run.start.idle_power_watts
    idle_power_watts = {str(i): idle[i] for i in run.gpu_indices if i in idle}
    try:
        section = energy_split.split_run(
            energy_split.RunEnergyInputs(
                metrics, idle_power_watts, run.timeline, run.tables.get("requests.parquet"), cfg.is_llm, engine
            )
        )
    except Exception as exc:  # noqa: BLE001 -- a broken estimate must not lose a measured run
        section = {"phases": {"reason": f"the energy split failed: {type(exc).__name__}: {exc}"}}
    record["energy_split"] = section
    metrics.update(energy_split.tidy_columns(section))


def timeline_metrics(frame: Any, start: float | None, end: float | None) -> dict:
    """Means over the telemetry timeline (a DataFrame) between ``start`` and ``end`` (s): GPU utilisation
    (%), the hottest temperature (°C), summed sampled GPU power (W), KV-cache use (fraction), requests
    running and the process tree's CPU use (%). {} without samples."""
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
        "max_temperature_celsius": float(nvml["temperature_celsius"].max())
        if nvml["temperature_celsius"].notna().any()
        else None,
        "avg_sampled_power_watts": mean(nvml.groupby("time_s")["power_watts"].sum()) if len(nvml) else None,
        "avg_kv_cache_usage_fraction": mean(vllm["kv_cache_usage_fraction"]),
        "avg_num_requests_running": mean(vllm["num_requests_running"]),
        "avg_process_cpu_percent": mean(host["process_cpu_percent"]),
    }


SERVER_CPU_COLUMNS = ("server_cpu_time_s", "server_cpu_cores", "cpu_time_per_output_token_ms", "cpu_time_per_request_s")


def server_cpu_metrics(
    frame: Any, start: float | None, end: float | None, tokens: int | None, avg_output_len: float | None
) -> dict:
    """The serving process tree's CPU time over the steady window ``[start, end]`` (s), from the timeline's
    cumulative ``server_cpu_time_s`` (interpolated at the window's ends; samples that stop short of an end by less than
    half a sampling period are scaled to the whole window): its seconds, the CPU cores it kept
    busy on average, milliseconds per output token (over the window's ``tokens``) and seconds per request (per
    token times ``avg_output_len``, as energy per request is). Every value None without such samples (a
    backend without a server process)."""
    out: dict = dict.fromkeys(SERVER_CPU_COLUMNS)
    if frame is None or not len(frame) or start is None or end is None or end <= start:
        return out
    if "server_cpu_time_s" not in frame.columns:
        return out
    host = frame[(frame["source"] == "host") & frame["server_cpu_time_s"].notna()].sort_values("time_s")
    if len(host) < 2:
        return out
    import numpy as np

    times, seconds = host["time_s"].to_numpy(float), host["server_cpu_time_s"].to_numpy(float)
    # The samples must span the window, but for less than half a sampling period at either end (the sampler's
    # last reading may precede the window's close by a fraction of its period): the CPU time over the span
    # covered, scaled to the whole window at that span's rate. A larger gap gives no figures (no extrapolation).
    slack = 0.5 * float(np.median(np.diff(times)))
    first, last = max(start, times[0]), min(end, times[-1])
    if first - start >= slack or end - last >= slack or last <= first:
        return out
    used = float(np.interp(last, times, seconds) - np.interp(first, times, seconds)) * (end - start) / (last - first)
    out["server_cpu_time_s"] = used
    out["server_cpu_cores"] = used / (end - start)
    if tokens:
        per_token = used / tokens
        out["cpu_time_per_output_token_ms"] = per_token * 1000.0
        out["cpu_time_per_request_s"] = per_token * avg_output_len if avg_output_len is not None else None
    return out


def input_wait_fraction(frame: Any, start: float | None, end: float | None, requests: Any) -> float | None:
    """Share of the steady window ``[start, end]`` (s) the engine waited on its input: the share of vLLM's
    /metrics scrapes (1 Hz) in the window at which the engine held no request (none running, none waiting)
    while some request had been sent and had no first token yet -- it was still in the API server, being
    tokenized and its images or frames preprocessed. vLLM 0.32 exports no preprocessing time of its own
    (its multimodal gauges count cache queries and hits only), hence this reading of the timeline. None
    without scrapes in the window."""
    if frame is None or not len(frame) or start is None or end is None:
        return None
    vllm = frame[(frame["source"] == "vllm") & (frame["time_s"] >= start) & (frame["time_s"] <= end)]
    if not len(vllm):
        return None
    spans = [
        (r.submit_time_s, r.first_token_time_s if r.first_token_time_s is not None else end)
        for r in requests
        if r.submit_time_s is not None
    ]
    waited = 0
    for t, running, queued in zip(
        vllm["time_s"], vllm["num_requests_running"], vllm["num_requests_waiting"], strict=True
    ):
        idle = (running or 0) + (queued or 0) == 0
        if idle and any(sent <= t < first for sent, first in spans):
            waited += 1
    return waited / len(vllm)


def _assess(run: Run, windows: dict, metrics: dict, rows: list[dict]) -> None:
    """Intervals, window sensitivity, error budget (:mod:`harness.measuring.fidelity`) and the reference
    validator's flags (:mod:`harness.measuring.validator`) of a finished run (into ``run.record``)."""
    from harness.measuring import fidelity, validator
    from harness.measuring.telemetry import coverage_fraction

    cfg, result, record, timeline, telemetry = run.cfg, run.result, run.record, run.timeline, run.telemetry
    info = telemetry.info if telemetry else {}
    hz = info.get("sampler_hz") or 10.0
    assessed = fidelity.assess(
        cfg.is_llm, result.requests, rows, windows, metrics, timeline, OUTPUT_UNIT.get(cfg.task), sampler_hz=hz
    )
    record["fidelity"] = assessed
    metrics.update(fidelity.tidy_columns(assessed))
    whole = windows.get("run")
    run_window = (whole.start_time_s, whole.end_time_s) if whole is not None else None
    run_coverage = None
    if run_window and timeline is not None and telemetry is not None:
        run_coverage = coverage_fraction(
            timeline, *run_window, hz, info.get("gpu_indices") or [], telemetry.metrics_url
        )
    cap = cfg.max_output_tokens or ((record.get("backend_info") or {}).get("options") or {}).get("max_output_tokens")
    flags = validator.validate(
        metrics,
        is_llm=cfg.is_llm,
        on_gpu=run.on_gpu,
        max_num_seqs=cfg.max_num_seqs,
        output_cap=cap,
        requests=result.requests if cfg.is_llm else (),
        timeline=timeline,
        run_window=run_window,
        run_coverage=run_coverage,
        power_source=info.get("power_source"),
        gpu_model=(record.get("environment") or {}).get("gpu_model"),
        power_limit_watts=(info.get("power_limit_watts") or {}).values(),
        num_gpus=len(run.gpu_indices) or 1,
    )
    record["validation"] = validator.summary(flags)


def stop_outcome(cfg: Configuration, stop: dict | None) -> tuple[dict, dict]:
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
