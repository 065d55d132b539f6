"""The tables the analysis works on: the published rows, the harness's own runs in the same columns, and both
stacked in one table (own runs come from :func:`harness.measuring.store.collect`; nothing here parses a run)."""

from __future__ import annotations

import warnings

import pandas as pd

from harness.errors import HarnessError
from harness.vocabulary.tasks import TASK_NAMES


def published(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the published reference rows of a table that may also hold own runs."""
    if "is_reference" not in frame.columns:
        return frame
    return frame[frame["is_reference"].eq(True)]


def stack_rows(reference_rows: pd.DataFrame, own: pd.DataFrame) -> pd.DataFrame:
    """Published rows and own runs in one table (columns either lacks are left empty)."""
    own = own.dropna(axis=1, how="all")  # an all-empty column would only blur the dtypes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return pd.concat([reference_rows, own], ignore_index=True)


def load_rows(results_dir: str | None = None) -> pd.DataFrame:
    """Reference rows, plus the harness's own runs from ``results_dir`` when given (same columns)."""
    from harness.published import reference

    table = reference.all_table()
    if results_dir is None:
        return table
    try:
        from harness.measuring import store
    except ModuleNotFoundError as exc:
        if exc.name == "harness.measuring.store":
            raise HarnessError(
                "own runs need harness.measuring.store, which is not installed in this checkout"
            ) from None
        raise
    own = store.collect(results_dir)
    if own is None or len(own) == 0:
        raise HarnessError(f"no runs found under {results_dir}")
    return stack_rows(table, own)


def load_rows_own(results_dir: str) -> pd.DataFrame:
    """The harness's own runs under ``results_dir`` that finished (status ok), in the reference's columns."""
    from harness.measuring import store

    own = store.collect(results_dir)
    own = own[own["status"] == "ok"].copy()
    if "nickname" not in own.columns or own["nickname"].isna().all():
        own["nickname"] = own["model_id"].astype(str).str.split("/").str[-1] + " (own)"
    return own


def load_table(
    source: str = "reference", reference_dir: str | None = None, results_dir: str | None = None
) -> pd.DataFrame:
    """The table a notebook works on: the published rows, plus own runs (status ok) from ``results_dir``."""
    from harness.analysis import summary

    table = summary.load(source, reference_dir)
    if results_dir:
        own = load_rows_own(results_dir)
        if len(own):
            own = own.assign(task_name=own["task"].map(TASK_NAMES))
            table = stack_rows(table, own)
    return table
