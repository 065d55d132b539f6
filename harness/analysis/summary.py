"""Selecting and summarizing tidy tables of configurations (reference data or own runs).

Pure functions over DataFrames; used by the book's overview chapter.

* :func:`load` -- the table behind a notebook's ``source`` parameter;
* :func:`select` -- keep the rows of some GPUs, tasks and models (one-line error if none is left);
* :func:`coverage` -- models and configurations per task and GPU, with totals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from harness.errors import SelectorError

SOURCES = ("reference",)


def load(source: str = "reference", reference_dir: str | None = None) -> pd.DataFrame:
    """The table of configurations named by ``source`` (``"reference"``: the published data)."""
    if source != "reference":
        raise SelectorError(f"unknown data source {source!r} (known: {', '.join(SOURCES)})")
    from pathlib import Path

    from harness.published import reference

    table = reference.all_table(Path(reference_dir) if reference_dir else None)
    table["task_name"] = table["task"].map(reference.TASK_NAMES)
    return table


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def select(
    frame: pd.DataFrame,
    gpus: str | Iterable[str] | None = None,
    tasks: str | Iterable[str] | None = None,
    models: str | Iterable[str] | None = None,
) -> pd.DataFrame:
    """Rows whose GPU model, task and model match.

    ``gpus`` and ``tasks`` are exact names (a list, or one comma-separated string);
    ``models`` are case-insensitive regular expressions searched in ``model_id``
    and ``nickname``. None keeps everything. A name that matches nothing is an
    error naming it.
    """
    out = frame
    for column, wanted in (("gpu_model", _as_list(gpus)), ("task", _as_list(tasks))):
        if wanted is None:
            continue
        known = sorted(frame[column].dropna().unique())
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise SelectorError(f"no {column} named {', '.join(unknown)} (known: {', '.join(known)})")
        out = out[out[column].isin(wanted)]
    patterns = _as_list(models)
    if patterns is not None:
        keep = pd.Series(False, index=out.index)
        for pattern in patterns:
            try:
                rx = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise SelectorError(f"model filter {pattern!r} is not a regular expression: {exc}") from None
            hit = out["model_id"].str.contains(rx) | out["nickname"].fillna("").str.contains(rx)
            if not hit.any():
                raise SelectorError(f"model filter {pattern!r} matches no model in the selected rows")
            keep |= hit
        out = out[keep]
    if out.empty:
        raise SelectorError("the selection (gpus, tasks, models) leaves no configuration")
    return out


def coverage(
    frame: pd.DataFrame, task_order: Iterable[str] | None = None, gpu_order: Iterable[str] = ("H100", "B200")
) -> pd.DataFrame:
    """Models and configurations per task (rows) and GPU model (columns), with totals.

    Columns are ``(gpu, "models")`` and ``(gpu, "configurations")`` for each GPU
    model and ``("all GPUs", ...)``; the last row, ``"all tasks"``, counts each
    model once however many tasks it ran.
    """
    gpus = [g for g in gpu_order if g in set(frame["gpu_model"])]
    gpus += sorted(set(frame["gpu_model"]) - set(gpus))
    tasks = [t for t in (task_order or []) if t in set(frame["task"])]
    tasks += sorted(set(frame["task"]) - set(tasks))

    def counts(part: pd.DataFrame) -> tuple[int, int]:
        return int(part["model_id"].nunique()), len(part)

    rows = {}
    for task in [*tasks, None]:
        part = frame if task is None else frame[frame["task"] == task]
        row = {}
        for gpu in [*gpus, None]:
            cell = part if gpu is None else part[part["gpu_model"] == gpu]
            models, configs = counts(cell)
            name = "all GPUs" if gpu is None else gpu
            row[(name, "models")] = models
            row[(name, "configurations")] = configs
        rows["all tasks" if task is None else task] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["gpu_model", "count"])
    table.index.name = "task"
    return table
