"""GPU energy from the telemetry timeline: NVML's cumulative energy counter samples, per GPU, interpolated to any
instant and summed over GPUs (the energy of a window that Zeus did not read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def _nvml(timeline: pd.DataFrame | None) -> pd.DataFrame | None:
    if timeline is None or not len(timeline) or "source" not in timeline:
        return None
    nvml = timeline[timeline["source"] == "nvml"]
    return nvml if len(nvml) else None


def counter_curves(timeline: pd.DataFrame | None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{gpu_index: (times in seconds, cumulative joules)}`` from NVML's energy counter samples ({} without them)."""
    nvml = _nvml(timeline)
    if nvml is None or "energy_counter_joules" not in nvml:
        return {}
    out = {}
    for index, rows in nvml.groupby("gpu_index"):
        rows = rows.dropna(subset=["energy_counter_joules"]).sort_values("time_s")
        if len(rows) >= 2:
            out[int(index)] = (rows["time_s"].to_numpy(float), rows["energy_counter_joules"].to_numpy(float))
    return out


def counter_energy(
    curves: Mapping[int, tuple[np.ndarray, np.ndarray]],
    edges: Sequence[float] | np.ndarray,
) -> np.ndarray | None:
    """Cumulative GPU energy in joules (summed over GPUs) at each of ``edges`` (seconds), or None if an edge lies
    outside the sampled span of some GPU."""
    import numpy as np

    if not curves:
        return None
    edges = np.asarray(edges, float)
    total = np.zeros(len(edges))
    for times, joules in curves.values():
        if edges.min() < times[0] - 1e-9 or edges.max() > times[-1] + 1e-9:
            return None
        total += np.interp(edges, times, joules)
    return total


def energy_between(timeline: pd.DataFrame | None, start: float, end: float) -> float | None:
    """GPU energy in joules over ``[start, end]`` (seconds) from the timeline's counter samples, or None."""
    cum = counter_energy(counter_curves(timeline), [start, end])
    return None if cum is None else float(cum[1] - cum[0])
