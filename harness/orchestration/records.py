"""The pieces of a run record (run.json) that every way of measuring writes alike.

Times are wall-clock seconds since the epoch (``time.time()``), energies joules, durations seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from harness.config import Configuration


def now() -> str:
    """The current UTC time, ISO 8601 to the second (``started_at``, ``finished_at``)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def window_dict(w: Any) -> dict:
    """A :class:`harness.measuring.energy.WindowMeasurement` as stored: times in s, energies in J by device."""
    return {
        "start_time_s": w.start_time_s,
        "end_time_s": w.end_time_s,
        "duration_s": w.duration_s,
        "gpu_energy_joules": w.gpu_energy_joules,
        "cpu_energy_joules": w.cpu_energy_joules,
        "dram_energy_joules": w.dram_energy_joules,
        "energy_source": w.energy_source,
    }


def measured_windows(meter: Any, result: Any) -> dict:
    """The run's energy windows by name: the meter's, then the backend's; without adaptive stopping's
    checkpoint window (its segments are kept in the backend's ``info["stop"]``)."""
    from harness.measuring.adaptive import SEGMENT_WINDOW

    windows = {**(meter.windows if meter else {}), **result.windows}
    windows.pop(SEGMENT_WINDOW, None)
    return windows


def window_dicts(windows: Mapping[str, Any]) -> dict[str, dict]:
    """Every window as :func:`window_dict` stores it, by name."""
    return {name: window_dict(w) for name, w in windows.items()}


def engine_info(cfg: Configuration) -> dict | None:
    """The serving engine a run uses (name, version, interpreter; :mod:`harness.workloads.engines`), or None."""
    from harness.config import ENGINE_BACKENDS
    from harness.workloads import engines

    return engines.describe(cfg.engine) if cfg.backend in ENGINE_BACKENDS else None


def started_record(cfg: Configuration, study: str, env: dict) -> dict:
    """The record of a run that has started: ``incomplete`` until its outcome replaces it."""
    return {
        "run_id": cfg.run_id,
        "study": study,
        "status": "incomplete",
        "cause": "started; the process stopped before the run finished",
        "is_stable": False,
        "unstable_reason": "incomplete",
        "config": cfg.as_dict(),
        "environment": env,
        "started_at": now(),
        "engine": engine_info(cfg),
    }


def skipped_record(cfg: Configuration, study: str, env: dict, reason: str) -> dict:
    """The record of a configuration skipped without being measured, with the reason."""
    return {
        "run_id": cfg.run_id,
        "study": study,
        "status": "skipped",
        "cause": reason,
        "is_stable": False,
        "unstable_reason": f"skipped: {reason}",
        "config": cfg.as_dict(),
        "environment": env,
        "started_at": now(),
        "finished_at": now(),
    }
