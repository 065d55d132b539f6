"""Does a claim's effect differ materially across a condition its data cover, and does its sentence say so?

A claim the chapters make from data (a row of the findings at a glance, a condition of "The paper and the data")
carries two things besides its words:

* its :class:`Evidence`: the rows the effect is computed from, the effect column (a ratio, no unit, 1 meaning no
  effect), the statistic the sentence states (median, or the largest for "at most") and the condition columns the
  rows could be split by (GPU generation, GPU count, precision, and a claim's own such as the batch band);
* ``stated``: per condition column, the levels the sentence states the effect for and the words that name each one
  in the sentence (``{"num_gpus": {1: "1 x B200", 8: "8 x B200"}}``).

:func:`material_splits` computes, from the evidence alone, the conditions under which the effect differs
materially; :func:`missing_conditions` lists what the claim fails to state of them. No prose is parsed: the only
look at the sentence is whether the words ``stated`` names are in it.

A condition splits the effect materially when, over its levels that hold at least :data:`MIN_ITEMS` items, the
statistic at one level is at least :data:`MATERIAL_FACTOR` times that at another, or the effect goes at least
:data:`REVERSAL` one way at one level and as far the other way at another (FP8 dearer at one batch band, cheaper at
another).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

CONDITIONS: tuple[str, ...] = ("gpu_model", "num_gpus", "weight_precision")  # generation, count, precision
MATERIAL_FACTOR = 1.5  # the statistic at one level over that at another (ratios, no unit)
REVERSAL = 1.1  # an effect of at least 10% one way at one level and at least 10% the other way at another
MIN_ITEMS = 3  # a level with fewer items is a single case, not a condition the data cover
STATISTICS = ("median", "max")

Stated = Mapping[str, Mapping[Any, str]]  # condition column -> level -> the words naming it in the sentence


@dataclass(frozen=True)
class Evidence:
    """The rows a claim is computed from: ``value`` is a ratio (no unit, 1 = no effect), ``statistic`` the one the
    sentence states ("median", or "max" for "at most"), ``conditions`` the columns to split by (absent ones skipped)."""

    frame: pd.DataFrame
    value: str
    statistic: str = "median"
    conditions: tuple[str, ...] = CONDITIONS

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, not {self.statistic!r}")


def levels(evidence: Evidence, column: str) -> pd.DataFrame:
    """The effect per level of one condition: columns ``level``, ``n`` (items) and ``stat`` (the evidence's
    statistic of its ratio), levels with at least :data:`MIN_ITEMS` items only, in the order of the levels."""
    frame = evidence.frame
    if column not in frame.columns or evidence.value not in frame.columns:
        return pd.DataFrame(columns=["level", "n", "stat"])
    rows = frame.dropna(subset=[evidence.value, column])
    grouped = rows.groupby(column, sort=True)[evidence.value].agg(n="count", stat=evidence.statistic).reset_index()
    grouped = grouped.rename(columns={column: "level"})
    return grouped[grouped["n"] >= MIN_ITEMS].reset_index(drop=True)


def is_material(stats: pd.Series | list[float]) -> bool:
    """Whether effects (ratios, no unit) differ materially: the largest at least :data:`MATERIAL_FACTOR` times the
    smallest, or at least :data:`REVERSAL` one way and as far the other way."""
    values = [float(v) for v in stats if float(v) > 0 and math.isfinite(float(v))]
    if len(values) < 2:
        return False
    high, low = max(values), min(values)
    return high / low >= MATERIAL_FACTOR or (high >= REVERSAL and low <= 1 / REVERSAL)


def material_splits(evidence: Evidence) -> dict[str, pd.DataFrame]:
    """The conditions under which the evidence's effect differs materially, each with its :func:`levels`."""
    out = {}
    for column in evidence.conditions:
        table = levels(evidence, column)
        if is_material(table["stat"]):
            out[column] = table
    return out


def extremes(table: pd.DataFrame) -> tuple[Any, Any]:
    """The levels of a :func:`levels` table where the effect is weakest and strongest (smallest and largest stat)."""
    return table.loc[table["stat"].idxmin(), "level"], table.loc[table["stat"].idxmax(), "level"]


def missing_conditions(sentence: str, stated: Stated, evidence: Evidence | None) -> list[str]:
    """What a claim fails to state: for every condition that splits its effect materially, the condition itself,
    its weakest and strongest levels, and the words naming them in ``sentence``; empty when nothing is missing."""
    if evidence is None:
        return []
    missing = []
    for column, table in material_splits(evidence).items():
        numbers = ", ".join(f"{level}: {stat:.2f}" for level, stat in zip(table["level"], table["stat"], strict=True))
        if column not in stated:
            missing.append(f"{column} splits the effect ({numbers}) but the claim states no {column}")
            continue
        for level in extremes(table):
            words = stated[column].get(level)
            if words is None:
                missing.append(f"{column} {level} ({numbers}) is not among the levels the claim states")
            elif words not in sentence:
                missing.append(f"{column} {level}: the words {words!r} are not in the sentence")
    return missing


def gpus_text(count: Any) -> str:
    """``1`` -> ``"1 GPU"``, ``8`` -> ``"8 GPUs"``."""
    n = int(count)
    return f"{n} GPU" if n == 1 else f"{n} GPUs"
