"""A chapter's claims under every condition its data cover: a number per GPU generation and GPU count, in words
or as a small table, so that no sentence states as general what holds under one condition only.

    from harness.report.claims import condition_table, spread
    display(HTML(condition_table(effect, "ratio", by=("gpu_model", "num_gpus"), fmt="{:.2f}x")))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from harness.report.charts.encoding import GPU_ORDER
from harness.vocabulary.labels import label, value_names
from harness.vocabulary.tasks import TASK_NAMES

Format = str | Callable[[float], str]


def _fmt(value: float, fmt: Format) -> str:
    return fmt(value) if callable(fmt) else fmt.format(value)


def gpus_words(count: Any, gpu: str | None = None) -> str:
    """``1`` -> ``"1 GPU"``, ``8, "B200"`` -> ``"8 x B200"``."""
    n = int(count)
    if gpu:
        return f"{n} x {gpu}"
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def spread(values: pd.Series | Sequence[float], fmt: Format = "{:.2f}", *, what: str = "series") -> str:
    """``"median 4.81 (2.23 to 9.40 over 9 series)"``; one value alone is just that value."""
    s = pd.Series(values, dtype=float).dropna()
    if s.empty:
        return "no data"
    if len(s) == 1:
        return f"{_fmt(float(s.iloc[0]), fmt)} (one {what.rstrip('s') if what.endswith('s') else what})"
    return (
        f"median {_fmt(float(s.median()), fmt)} ({_fmt(float(s.min()), fmt)} to {_fmt(float(s.max()), fmt)} "
        f"over {len(s)} {what})"
    )


def _order_key(column: str, value: Any, orders: Mapping[str, Sequence] | None = None) -> tuple:
    if orders and column in orders and value in list(orders[column]):
        return (0, list(orders[column]).index(value), "")
    if column in ("gpu_model", "gpu") and value in GPU_ORDER:
        return (0, GPU_ORDER.index(value), "")
    if isinstance(value, (int, float)):
        return (1, float(value), "")
    return (2, 0, str(value))


def condition_rows(
    frame: pd.DataFrame,
    value: str,
    by: Sequence[str] = ("gpu_model", "num_gpus"),
    orders: Mapping[str, Sequence] | None = None,
) -> pd.DataFrame:
    """One row per condition (each combination of ``by`` the data hold): count, median, min and max of ``value``,
    H100 before B200, numbers ascending, and the values of a column in ``orders`` in that order."""
    groups = frame.dropna(subset=[value]).groupby(list(by), sort=False)[value]
    out = groups.agg(n="count", median="median", low="min", high="max").reset_index()
    keys = [
        tuple(_order_key(c, v, orders) for c, v in zip(by, row, strict=False))
        for row in out[list(by)].itertuples(index=False)
    ]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return out.iloc[order].reset_index(drop=True)


def _cell(column: str, v: Any) -> str:
    if column == "task":
        return TASK_NAMES.get(v, v)
    if column == "num_gpus":
        return f"{int(v)}"
    return value_names(column).get(v, str(v)) if isinstance(v, str) else str(v)


def condition_frame(
    frame: pd.DataFrame,
    value: str,
    by: Sequence[str] = ("gpu_model", "num_gpus"),
    *,
    fmt: Format = "{:.2f}",
    what: str = "Series",
    value_title: str | None = None,
    orders: Mapping[str, Sequence] | None = None,
) -> pd.DataFrame:
    """``value`` per condition as a table a reader can read: the conditions, how many rows (``what``), median and
    range, formatted (``orders``: the order of a column's values, e.g. batch bands)."""
    rows = condition_rows(frame, value, by, orders)
    out = pd.DataFrame({label(c): [_cell(c, v) for v in rows[c]] for c in by})
    out[what] = [f"{int(n)}" for n in rows["n"]]
    out[f"Median {value_title or label(value)}".strip()] = [_fmt(v, fmt) for v in rows["median"]]
    out["From"] = [_fmt(v, fmt) for v in rows["low"]]
    out["To"] = [_fmt(v, fmt) for v in rows["high"]]
    return out


def condition_table(
    frame: pd.DataFrame,
    value: str,
    by: Sequence[str] = ("gpu_model", "num_gpus"),
    *,
    fmt: Format = "{:.2f}",
    what: str = "Series",
    value_title: str | None = None,
    orders: Mapping[str, Sequence] | None = None,
) -> str:
    """:func:`condition_frame` as an HTML table (class ``table``, no index) for ``IPython.display.HTML``: the
    book renders a notebook's Markdown output without tables."""
    table = condition_frame(frame, value, by, fmt=fmt, what=what, value_title=value_title, orders=orders)
    return table.to_html(index=False, border=0, classes="table")


def per_condition_words(
    frame: pd.DataFrame,
    value: str,
    by: Sequence[str] = ("gpu_model", "num_gpus"),
    *,
    fmt: Format = "{:.2f}",
    what: str = "series",
    join: str = "; ",
    orders: Mapping[str, Sequence] | None = None,
) -> str:
    """The same per condition in words: ``"1 x H100: median 2.52 (1.54 to 3.68 over 9 series); ..."``."""
    rows = condition_rows(frame, value, by, orders)
    parts = []
    for _, r in rows.iterrows():
        where = ", ".join(_cell(c, r[c]) if c != "num_gpus" else gpus_words(r[c]) for c in by)
        if {"gpu_model", "num_gpus"} <= set(by):
            rest = [_cell(c, r[c]) for c in by if c not in ("gpu_model", "num_gpus")]
            where = ", ".join([gpus_words(r["num_gpus"], r["gpu_model"]), *rest])
        values = frame.dropna(subset=[value])
        for c in by:
            values = values[values[c] == r[c]]
        parts.append(f"{where}: {spread(values[value], fmt, what=what)}")
    return join.join(parts)
