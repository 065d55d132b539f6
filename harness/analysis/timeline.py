"""One run as the harness saw it: power, running requests and KV-cache use over time, with the steady window.

:func:`find_run` picks a finished language-model run below a results folder (the one with the longest steady
window); :func:`run_timeline` reads its ``timeline.parquet`` and ``run.json`` (through :mod:`harness.measuring.store`)
into a :class:`RunTimeline`; :func:`tidy_timeline` is the pure part, testable on any telemetry table.

Times are seconds since the first sample (``time_since_start_s``); power is summed over the GPUs at each tick
(watts); running requests are vLLM's ``num_requests_running`` (a count); KV-cache use is a fraction (0 to 1).
A run on a host without an energy counter (a CPU run) has no power rows: its timeline shows the engine's
metrics only, and :attr:`RunTimeline.has_power` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.vocabulary.tasks import TASK_NAMES, TEXT_LLM_TASKS

# Timeline columns drawn, with the panel title each gets (unit in the title).
METRICS: dict[str, str] = {
    "power_watts": "GPU power, all GPUs (W)",
    "num_requests_running": "Running requests (count)",
    "kv_cache_usage_fraction": "KV-cache use (fraction)",
}


@dataclass(frozen=True)
class RunTimeline:
    """One run's telemetry in long form and its steady window (seconds since the first sample)."""

    run_id: str
    label: str  # the configuration in words: model, task, batch, hardware
    frame: pd.DataFrame  # time_since_start_s, metric, metric_title, value
    steady_start_s: float | None
    steady_end_s: float | None
    has_power: bool
    energy_source: str | None  # why energy is what it is (e.g. no counter on a CPU host)


def tidy_timeline(
    timeline: pd.DataFrame, steady_start_time_s: float | None = None, steady_end_time_s: float | None = None
) -> tuple[pd.DataFrame, float | None, float | None]:
    """The drawn metrics of a telemetry table (``time_s`` wall clock) in long form, and the steady window.

    Power is summed over GPUs per tick; the engine's metrics are averaged per tick (several engines); rows
    without a value are dropped. Returns ``(frame, start, end)`` with times in seconds since the first sample."""
    if timeline is None or timeline.empty or "time_s" not in timeline.columns:
        return pd.DataFrame(columns=["time_since_start_s", "metric", "metric_title", "value"]), None, None
    t0 = float(timeline["time_s"].min())
    parts = []
    for column, title in METRICS.items():
        if column not in timeline.columns:
            continue
        rows = timeline[["time_s", column]].dropna()
        if rows.empty:
            continue
        how = "sum" if column == "power_watts" else "mean"
        per_tick = rows.groupby("time_s")[column].agg(how).reset_index()
        parts.append(
            pd.DataFrame(
                {
                    "time_since_start_s": per_tick["time_s"] - t0,
                    "metric": column,
                    "metric_title": title,
                    "value": per_tick[column].astype(float),
                }
            )
        )
    frame = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["time_since_start_s", "metric", "metric_title", "value"])
    )
    start = None if steady_start_time_s is None else float(steady_start_time_s) - t0
    end = None if steady_end_time_s is None else float(steady_end_time_s) - t0
    return frame, start, end


def _label(record: dict) -> str:
    cfg = record.get("config") or {}
    env = record.get("environment") or {}
    hardware = env.get("gpu_model") or "CPU"
    count = cfg.get("num_gpus") or 1
    batch = cfg.get("max_num_seqs") or cfg.get("batch_size")
    task = TASK_NAMES.get(str(cfg.get("task")), cfg.get("task"))
    return f"{cfg.get('model')} on {str(task).lower()}, batch {batch}, {count} x {hardware}"


def run_timeline(run_dir: str | Path) -> RunTimeline | None:
    """The timeline of one run folder, or None when it has no ``timeline.parquet`` or no ``run.json``."""
    from harness.measuring import store

    run_dir = Path(run_dir)
    record = store.read_record(run_dir)
    path = run_dir / "timeline.parquet"
    if record is None or not path.is_file():
        return None
    metrics = record.get("metrics") or {}
    frame, start, end = tidy_timeline(
        pd.read_parquet(path), metrics.get("steady_start_time_s"), metrics.get("steady_end_time_s")
    )
    return RunTimeline(
        record.get("run_id", run_dir.name),
        _label(record),
        frame,
        start,
        end,
        bool((frame["metric"] == "power_watts").any()),
        metrics.get("energy_source"),
    )


def find_run(results_dir: str | Path) -> Path | None:
    """The finished language-model run below ``results_dir`` with the longest steady window and a telemetry file
    (GPU runs before CPU runs); None when there is none."""
    from harness.analysis.measurements import result_roots
    from harness.measuring import store

    best: tuple[tuple, Path] | None = None
    for root in result_roots(results_dir):
        for run_dir in store.iter_run_dirs(root):
            record = store.read_record(run_dir) or {}
            cfg, metrics = record.get("config") or {}, record.get("metrics") or {}
            if record.get("status") != "ok" or cfg.get("task") not in TEXT_LLM_TASKS:
                continue
            if not (run_dir / "timeline.parquet").is_file():
                continue
            on_gpu = bool((record.get("environment") or {}).get("gpu_model"))
            key = (on_gpu, float(metrics.get("steady_duration_s") or 0.0), str(run_dir))
            if best is None or key > best[0]:
                best = (key, run_dir)
    return best[1] if best else None
