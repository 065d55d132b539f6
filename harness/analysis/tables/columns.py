"""Row kinds, the columns each kind is compared on, grouping keys and a configuration's label.

Two kinds of rows share one tidy table (the published data and the harness's own runs alike):

* LLM rows (``output_unit == "response"``): the energy to compare is
  ``energy_per_token_joules`` (J per output token), the time is ``median_itl_ms`` (ms);
* diffusion rows (``output_unit`` ``image`` or ``video``): the energy is
  ``energy_per_output_joules`` (J per image or per video), the time is
  ``batch_latency_s`` (s for one whole batch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from harness.errors import HarnessError
from harness.vocabulary.tasks import LLM_TASKS, TASK_NAMES

ENERGY_PER_TOKEN = "energy_per_token_joules"  # noqa: S105  # a column name, not a password
ENERGY_PER_OUTPUT = "energy_per_output_joules"
LLM_TIME = "median_itl_ms"
DIFFUSION_TIME = "batch_latency_s"
SERIES_KEYS = ("model_id", "task", "gpu_model", "num_gpus")
CONFIG_KEYS = (*SERIES_KEYS, "max_num_seqs", "batch_size", "ulysses_degree", "ring_degree")


def is_llm(df: pd.DataFrame) -> pd.Series:
    """Mask of LLM-type rows (a response is the unit of output)."""
    if "output_unit" in df.columns:
        return df["output_unit"].eq("response")
    return df["task"].isin(LLM_TASKS)


def table_kind(df: pd.DataFrame) -> str:
    """``"llm"`` or ``"diffusion"``: the one kind of row a table holds (an error when it mixes both)."""
    mask = is_llm(df)
    if mask.all():
        return "llm"
    if not mask.any():
        return "diffusion"
    raise HarnessError("the table mixes LLM and diffusion rows; split it with analysis.is_llm first")


def energy_column(df: pd.DataFrame) -> str:
    """The energy a table's rows are compared on: J per token (LLM) or J per image/video (diffusion)."""
    return ENERGY_PER_TOKEN if table_kind(df) == "llm" else ENERGY_PER_OUTPUT


def time_column(df: pd.DataFrame) -> str:
    """The latency a table's rows are compared on: median ITL in ms (LLM) or whole-batch time in s (diffusion)."""
    return LLM_TIME if table_kind(df) == "llm" else DIFFUSION_TIME


def split_kinds(df: pd.DataFrame) -> list[pd.DataFrame]:
    """The table's LLM rows and its diffusion rows, as separate tables (empty parts left out)."""
    mask = is_llm(df)
    return [part for part in (df[mask], df[~mask]) if len(part)]


def present_columns(keys: Iterable[str], df: pd.DataFrame) -> list[str]:
    """The ``keys`` that are columns of ``df``, in order."""
    return [k for k in keys if k in df.columns]


def group_keys(keys: Iterable[str], df: pd.DataFrame) -> list[str]:
    """Grouping columns present in ``df``; published rows and own runs never share a group."""
    out = present_columns(keys, df)
    if "source" in df.columns and "source" not in out and df["source"].nunique(dropna=False) > 1:
        out = ["source", *out]
    return out


def config_label(row: Mapping[str, Any] | pd.Series) -> str:
    """Short human label of one configuration, e.g. ``Qwen3 32B, problem solving (reasoning), 1 x B200, batch 128``."""
    model = str(row.get("nickname") or str(row["model_id"]).split("/")[-1])
    batch: Any = row.get("max_num_seqs") if row_is_llm(row) else row.get("batch_size")  # cells: Any
    task = TASK_NAMES.get(row["task"], row["task"]).lower()
    label = f"{model}, {task}, {int(row['num_gpus'])} x {row['gpu_model']}, batch {int(batch)}"
    uly: Any = row.get("ulysses_degree")
    ring: Any = row.get("ring_degree")
    if is_number(uly) and is_number(ring) and (uly > 1 or ring > 1):
        label += f" (Ulysses {int(uly)} x Ring {int(ring)})"
    return label


def row_is_llm(row: Mapping[str, Any] | pd.Series) -> bool:
    """Whether one row is an LLM row (its output unit is a response)."""
    unit = row.get("output_unit")
    if isinstance(unit, str):
        return unit == "response"
    return row.get("task") in LLM_TASKS


def is_number(value: Any) -> bool:
    """Whether a cell holds a value: not None and not NaN."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))
