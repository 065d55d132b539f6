"""Own runs across power caps and the whole node: tables for the throughput-per-watt chapter.

Pure functions over the tidy table of own runs (:func:`harness.analysis.measurements.own_runs`, whose columns
:mod:`harness.measuring.store` defines); nothing here reads a file.

* :func:`cap_points` -- the LLM runs with GPU energy, one point each for the time-energy plane: median ITL (ms)
  against energy per token (J), labelled by the power cap (``power_limit_watts``; "host limit" where none was set)
  and the locked SM clock;
* :func:`frontier` -- the points no other point of the same model, task and GPU beats on both time and energy
  (the time-energy frontier across caps and batch sizes);
* :func:`node_table` -- GPU energy beside CPU package and DRAM energy per run, and the GPU's share of the node;
* :func:`cpu_only_note` -- what a host without a GPU energy counter cannot measure, in one paragraph.
"""

from __future__ import annotations

import pandas as pd

SERIES_KEYS = ("model_id", "task", "gpu")


def _cap_label(watts: float | None, clock: float | None) -> str:
    cap = "host limit" if watts is None or pd.isna(watts) else f"{watts:g} W"
    return cap if clock is None or pd.isna(clock) else f"{cap}, SM {clock:g} MHz"


def cap_points(own: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """Finished LLM runs (``status`` ok) with GPU energy per token and a median ITL, for the time-energy plane.

    Adds ``cap`` (e.g. ``"300 W"``, ``"host limit"``), ``series`` (one line per model, task, GPU and batch size,
    across caps) and ``tokens_per_sec_per_watt`` (1 / energy per token). ``task``: keep only that task.
    """
    rows = own.iloc[0:0]
    if not own.empty and "power_limit_watts" in own.columns:
        rows = own[(own["status"] == "ok") & own["energy_per_token_joules"].notna() & own["median_itl_ms"].notna()]
        if "is_llm" in rows.columns:
            rows = rows[rows["is_llm"].astype(bool)]
        if task is not None:
            rows = rows[rows["task"] == task]
    if rows.empty:
        return rows.assign(
            cap=pd.Series(dtype=object), series=pd.Series(dtype=object), tokens_per_sec_per_watt=pd.Series(dtype=float)
        )
    rows = rows.copy()
    rows["cap"] = [_cap_label(w, c) for w, c in zip(rows["power_limit_watts"], rows["sm_clock_mhz"], strict=False)]
    rows["series"] = (
        rows["model_id"].astype(str)
        + ", "
        + rows["task"].astype(str)
        + ", "
        + rows["gpu"].astype(str)
        + ", batch "
        + rows["batch_size"].map(lambda b: f"{b:g}")
    )
    rows["tokens_per_sec_per_watt"] = 1.0 / rows["energy_per_token_joules"]
    return rows.sort_values([*SERIES_KEYS, "batch_size", "median_itl_ms"]).reset_index(drop=True)


def frontier(
    points: pd.DataFrame,
    time: str = "median_itl_ms",
    energy: str = "energy_per_token_joules",
    by: tuple[str, ...] = SERIES_KEYS,
) -> pd.DataFrame:
    """The points of ``points`` on their group's time-energy frontier: none other in the group is at least as
    fast and at least as frugal, and strictly better in one (``time`` in its column's unit, ``energy`` in J)."""
    keep: list = []
    for _, group in points.groupby(list(by), dropna=False, sort=False):
        ordered = group.sort_values([time, energy])
        best = float("inf")
        for index, row in ordered.iterrows():
            if row[energy] < best:
                keep.append(index)
                best = row[energy]
    return points.loc[sorted(keep)].sort_values([*by, time]).reset_index(drop=True)


NODE_COLUMNS = [
    "model_id",
    "task",
    "gpu",
    "batch_size",
    "cap",
    "energy_per_token_joules",
    "node_energy_per_token_joules",
    "gpu_share_of_node_fraction",
    "avg_power_watts",
    "avg_cpu_power_watts",
    "avg_dram_power_watts",
]


def node_table(own: pd.DataFrame) -> pd.DataFrame:
    """Finished runs whose node energy was measured (GPU, CPU packages and DRAM), with GPU and node energy per
    token (J), the GPU's share of the node (fraction) and average GPU, CPU and DRAM power (W)."""
    if own.empty or "node_energy_joules" not in own.columns:
        return pd.DataFrame(columns=NODE_COLUMNS)
    rows = own[(own["status"] == "ok") & own["node_energy_joules"].notna()].copy()
    rows["cap"] = [_cap_label(w, c) for w, c in zip(rows["power_limit_watts"], rows["sm_clock_mhz"], strict=False)]
    return rows[NODE_COLUMNS].sort_values(["model_id", "task", "gpu", "batch_size"]).reset_index(drop=True)


def cpu_only_note(own: pd.DataFrame) -> str | None:
    """A paragraph on what these own runs could not measure, when none of them has GPU energy; else None."""
    if own.empty:
        return None
    ok = own[own["status"] == "ok"]
    if ok["energy_per_token_joules"].notna().any() or ok["energy_per_output_joules"].notna().any():
        return None
    reasons = sorted({str(n) for n in ok.get("node_energy_note", pd.Series(dtype=object)).dropna()})
    cpu = f" CPU package and DRAM energy: {'; '.join(reasons)}." if reasons else ""
    return (
        f"These own runs ({len(own)}) come from a host without a GPU energy counter (a CPU-only host): their GPU "
        f"energy is null, never 0 J, so they add no point to a time-energy frontier, and no power cap or locked "
        f"SM clock could be set (both need a GPU that NVML controls; preflight refuses them on such a host). "
        f"Their times, throughputs and latencies are measured.{cpu}"
    )
