"""What the model is fitted on: the published data, a results folder of own runs, or a CSV table."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError

from .calibration import fit
from .model import Fit


@functools.lru_cache(maxsize=4)
def cached_fit(source: str, kind: str) -> Fit:
    """The fit of ``kind`` on ``source`` (see :func:`load_fit_table`), kept for the process's lifetime."""
    return fit(load_fit_table(source), kind)


def load_fit_table(source: str) -> pd.DataFrame:
    """``reference``, a results folder of own runs, or a CSV with the reference's columns."""
    if source == "reference":
        from harness.published import reference

        return reference.all_table()
    path = Path(source)
    if path.is_dir():
        from harness.measuring import store

        table = store.collect(path)
        table = table[table["status"] == "ok"]
        if table.empty:
            raise HarnessError(f"--fit {source}: no finished runs in that results folder")
        return with_model_facts(table)
    if path.is_file() and path.suffix == ".csv":
        return with_model_facts(pd.read_csv(path))
    raise HarnessError(f"--fit {source}: not 'reference', a results folder or a .csv table")


def with_model_facts(table: pd.DataFrame) -> pd.DataFrame:
    """Fill missing model facts (parameters, precision, architecture) from the reference's model index."""
    from harness.published import reference

    try:
        models = reference.model_index()["models"]
    except HarnessError:
        models = {}
    table = table.copy()
    for col in ("total_params_billions", "activated_params_billions", "weight_precision", "architecture"):
        facts = table["model_id"].map(lambda m, col=col: (models.get(str(m)) or {}).get(col))
        table[col] = table[col].where(table[col].notna(), facts) if col in table.columns else facts
    if "base_model_id" not in table.columns:
        table["base_model_id"] = table["model_id"]
    return table
