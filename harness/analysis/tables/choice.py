"""Choosing configurations: the batch effect (one definition), each series' smallest and largest batch,
the cheapest configuration under a latency target, two sides compared at matched latency, and a model to show.

Energy is J per token (LLM rows) or J per image/video (diffusion rows); latency is median ITL in ms (LLM) or
whole-batch time in s (diffusion), unless a caller names other columns.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from harness.analysis.tables.columns import (
    SERIES_KEYS,
    config_label,
    energy_column,
    group_keys,
    split_kinds,
    time_column,
)
from harness.errors import SelectorError

# The batch effect (one definition for every chapter and finding).
BATCH_EFFECT_MIN_BATCH = 16
BATCH_EFFECT_DEFINITION = (
    "energy per token at a series' smallest batch of at least 16 divided by energy per token "
    "at its largest batch, a series being one model on one task, GPU model and GPU count"
)


def batch_effect_pair(series: pd.DataFrame) -> tuple[pd.Series, pd.Series] | None:
    """The two rows of one series the batch effect compares: its smallest batch of at least
    :data:`BATCH_EFFECT_MIN_BATCH`, and its largest batch; None when they are the same row or do not exist."""
    small = series[series["batch_size"] >= BATCH_EFFECT_MIN_BATCH]
    if small.empty or series["batch_size"].nunique() < 2:
        return None
    lo, hi = small.loc[small["batch_size"].idxmin()], series.loc[series["batch_size"].idxmax()]
    if lo.name == hi.name:
        return None
    return lo, hi


def smallest_batch_rows(df: pd.DataFrame, by: Iterable[str] = SERIES_KEYS) -> pd.DataFrame:
    """The smallest-batch row of every series (model, task, GPU model, GPU count)."""
    keys = group_keys(by, df)
    idx = df.groupby(keys, sort=True)["batch_size"].idxmin()
    return df.loc[list(idx)].reset_index(drop=True)


def largest_batch_rows(df: pd.DataFrame, by: Iterable[str] = SERIES_KEYS) -> pd.DataFrame:
    """The largest-batch row of every series."""
    keys = group_keys(by, df)
    idx = df.groupby(keys, sort=True)["batch_size"].idxmax()
    return df.loc[list(idx)].reset_index(drop=True)


def best_under_latency(
    df: pd.DataFrame,
    target: float,
    by: Iterable[str] = ("model_id", "task", "gpu_model"),
    time: str | None = None,
    energy: str | None = None,
) -> pd.DataFrame:
    """Per group, the lowest-energy configuration (any GPU count, any batch) whose latency meets ``target``.

    ``target`` is in the time column's unit: ms of median ITL (LLM) or s of whole-batch time (diffusion).
    """
    out = []
    for part in split_kinds(df):
        t, e = time or time_column(part), energy or energy_column(part)
        part = part.dropna(subset=[t, e])
        part = part[part[t] <= target]
        if part.empty:
            continue
        keys = group_keys(by, part)
        out.append(part.loc[list(part.groupby(keys, sort=True)[e].idxmin())])
    return pd.concat(out).reset_index(drop=True) if out else df.iloc[0:0].copy()


def compare_at_latency(
    df: pd.DataFrame,
    side: str,
    a: str,
    b: str,
    targets: Iterable[float],
    by: Iterable[str] = ("model_id", "task"),
    time: str | None = None,
    energy: str | None = None,
) -> pd.DataFrame:
    """For every group and target, each side's lowest-energy configuration that meets the target.

    ``targets`` are in the time column's unit (ms of median ITL, or s of whole-batch time). ``side`` is the column
    that tells the sides apart (e.g. ``gpu_model`` with ``a="H100"``,
    ``b="B200"``). Returns one row per (group, target) where both sides have a
    qualifying configuration: ``energy_a``, ``energy_b``, their labels and
    ``gain = (energy_a - energy_b) / energy_a`` (positive when B uses less).
    """
    rows = []
    for part in split_kinds(df):
        t, e = time or time_column(part), energy or energy_column(part)
        keys = group_keys(by, part)
        for key, group in part.groupby(keys, sort=True):
            sa, sb = group[group[side] == a], group[group[side] == b]
            if sa.empty or sb.empty:
                continue
            for target in targets:
                qa = sa[sa[t] <= target].dropna(subset=[e])
                qb = sb[sb[t] <= target].dropna(subset=[e])
                if qa.empty or qb.empty:
                    continue
                ra, rb = qa.loc[qa[e].idxmin()], qb.loc[qb[e].idxmin()]
                key = key if isinstance(key, tuple) else (key,)
                row = dict(zip(keys, key, strict=False))
                row.update(
                    {
                        "target": target,
                        "time_column": t,
                        "energy_column": e,
                        "energy_a": float(ra[e]),
                        "energy_b": float(rb[e]),
                        "time_a": float(ra[t]),
                        "time_b": float(rb[t]),
                        "config_a": config_label(ra),
                        "config_b": config_label(rb),
                        "row_a": ra.name,
                        "row_b": rb.name,
                        "gain": (float(ra[e]) - float(rb[e])) / float(ra[e]),
                    }
                )
                rows.append(row)
    return pd.DataFrame(rows)


def pick_model(df: pd.DataFrame, preferred: str | None = None) -> str:
    """The model id matching ``preferred`` (a case-insensitive regular expression on id or nickname);
    if none matches, the model with the most configurations in ``df``."""
    if df.empty:
        raise SelectorError("no configuration left to pick a model from")
    if preferred:
        names = df["model_id"].astype(str)
        nick = df["nickname"].fillna("").astype(str) if "nickname" in df.columns else names
        hit = names.str.contains(preferred, case=False, regex=True) | nick.str.contains(
            preferred, case=False, regex=True
        )
        if hit.any():
            exact = df.loc[hit & (names.str.lower() == preferred.lower()), "model_id"]
            return str(exact.iloc[0]) if len(exact) else str(df.loc[hit, "model_id"].value_counts().index[0])
    return str(df["model_id"].value_counts().index[0])
