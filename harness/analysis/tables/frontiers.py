"""Minimum energy and the time-energy frontier: which configuration to run.

Energy is J per token (LLM rows) or J per image/video (diffusion rows); time is median ITL in ms (LLM)
or whole-batch time in s (diffusion), unless a caller names other columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.tables.columns import (
    DIFFUSION_TIME,
    LLM_TIME,
    SERIES_KEYS,
    energy_column,
    group_keys,
    present_columns,
    split_kinds,
    time_column,
)


def min_energy_configs(df: pd.DataFrame, by: Iterable[str] = SERIES_KEYS, energy: str | None = None) -> pd.DataFrame:
    """The lowest-energy configuration of every group (default: model, task, GPU model, GPU count).

    LLM rows are ranked on energy per token (J) and diffusion rows on energy per output (J per image or
    video) unless ``energy`` names another column. Rows without energy (no counter) are skipped.
    """
    out = []
    for part in split_kinds(df):
        col = energy or energy_column(part)
        part = part.dropna(subset=[col])
        if part.empty:
            continue
        keys = group_keys(by, part)
        idx = part.groupby(keys, sort=True, dropna=False)[col].idxmin() if keys else [part[col].idxmin()]
        out.append(part.loc[list(idx)])
    if not out:
        return df.iloc[0:0].copy()
    return pd.concat(out).reset_index(drop=True)


def pareto_mask(time: pd.Series, energy: pd.Series) -> pd.Series:
    """True where no other point is at least as fast and at least as cheap, and strictly better in one.

    ``time`` and ``energy`` are in any units (lower is better on both)."""
    order = np.lexsort((energy.to_numpy(), time.to_numpy()))
    mask = np.zeros(len(time), dtype=bool)
    best = math.inf
    for i in order:
        e = energy.iloc[i]
        if e < best:
            mask[i] = True
            best = e
    return pd.Series(mask, index=time.index)


def frontier(
    df: pd.DataFrame,
    by: Iterable[str] = ("model_id", "task", "gpu_model"),
    time: str | None = None,
    energy: str | None = None,
) -> pd.DataFrame:
    """The table with an ``on_frontier`` column: the time-energy Pareto frontier of each group.

    Default axes: median ITL (ms) vs energy per token (J) for LLMs, whole-batch time (s) vs energy
    per output (J) for diffusion. The default group pools GPU counts and batch sizes of
    one model, task and GPU model, so the frontier says which configuration to run
    for each latency.
    """
    parts = []
    for part in split_kinds(df):
        t, e = time or time_column(part), energy or energy_column(part)
        part = part.dropna(subset=[t, e]).copy()
        keys = group_keys(by, part)
        flags = []
        for _, group in part.groupby(keys, sort=False, dropna=False) if keys else [(None, part)]:
            flags.append(pareto_mask(group[t], group[e]))
        part["on_frontier"] = pd.concat(flags) if flags else pd.Series(dtype=bool)
        parts.append(part)
    if not parts:
        return df.assign(on_frontier=pd.Series(dtype=bool))
    return pd.concat(parts).sort_index()


def frontier_points(df: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """Only the configurations on the frontier (``kwargs`` as :func:`frontier`), sorted by group and latency."""
    marked = frontier(df, **kwargs)
    on = marked[marked["on_frontier"]]
    keys = present_columns(kwargs.get("by", ("model_id", "task", "gpu_model")), on)
    sort_time = [c for c in (LLM_TIME, DIFFUSION_TIME) if c in on.columns]
    return on.sort_values(keys + sort_time[:1]).reset_index(drop=True)
