"""A finding as data: what was computed, how, and what the paper says, in plain JSON types on request."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings recomputed from a table.

    ``agrees`` is set by :func:`harness.analysis.paper.judge` alone (the paper comparison); a finding's function
    leaves it None. ``comparison`` starts as the finding's own sentence (its direction or mechanism, empty when
    there is none) and :func:`~harness.analysis.paper.judge` puts the verdict on the paper's figures in front.
    """

    id: str
    title: str
    values: dict  # the computed numbers, units in their keys (``..._joules``, ``..._ratio``)
    filters: dict
    method: str
    paper: dict  # what the paper reports: "claim" (words) and its numbers where published
    comparison: str  # computed sentence: ours against the paper's
    summary: str  # computed sentence: the finding in words and numbers
    agrees: bool | None = None  # None where the paper gives no number to check against
    rows: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def as_dict(self, with_rows: bool = True) -> dict:
        """The finding in plain JSON types; ``rows`` (one record per item) only when ``with_rows``."""
        out = {
            "id": self.id,
            "title": self.title,
            "summary": self.summary,
            "values": self.values,
            "filters": self.filters,
            "method": self.method,
            "paper": self.paper,
            "comparison": self.comparison,
            "agrees": self.agrees,
        }
        if with_rows and self.rows is not None:
            out["rows"] = self.rows.to_dict(orient="records")
        return jsonable(out)


def jsonable(obj: Any) -> Any:
    """Plain JSON types (numpy scalars to Python, NaN to None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(obj, np.bool_):
        return bool(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj
