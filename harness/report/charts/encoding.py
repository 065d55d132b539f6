"""Encodings shared by every chart kind: tooltips, scales and axes with readable ticks, colours, GPU facets.

Tooltips name the model, GPU, batch size, precision and task (those the table has), then the plotted values
with their units; axes are titled from the column names (:func:`harness.vocabulary.labels.label`); log axes
get at least three labelled ticks; ``facet_by(chart, "gpu_model", ...)`` puts H100 and B200 side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import altair as alt

from harness.vocabulary.labels import label

if TYPE_CHECKING:
    import pandas as pd

GPU_ORDER = ("H100", "B200")
# Where a colour legend may sit (Vega-Lite's legend ``orient`` values).
LegendOrient = Literal["none", "left", "right", "top", "bottom", "top-left", "top-right", "bottom-left", "bottom-right"]

# Fields shown in every tooltip when the table has them: column -> title.
CONTEXT_FIELDS = {
    "nickname": "Model",
    "gpu": "GPU",
    "batch_size": "Batch size",
    "weight_precision": "Precision",
    "task": "Task",
}


def number_format(column: str) -> str:
    """Tooltip number format: whole numbers for counts, else 3 significant digits, never 1.21e+3."""
    return ",.0f" if column in ("batch_size", "max_num_seqs", "num_gpus") else ",.3~r"


def tooltips(frame: pd.DataFrame, *value_columns: str, extra: Iterable[str] = ()) -> list[alt.Tooltip]:
    """Tooltip fields: model, GPU, batch size, precision, task (those present), then the values with units."""
    seen: list[str] = []
    out: list[alt.Tooltip] = []
    for column in [*CONTEXT_FIELDS, *extra, *value_columns]:
        if column in seen or column not in frame.columns:
            continue
        seen.append(column)
        if column in value_columns or column in ("batch_size",) or is_number(frame, column):
            out.append(alt.Tooltip(f"{column}:Q", title=CONTEXT_FIELDS.get(column, label(column)),
                                   format=number_format(column)))
        else:
            out.append(alt.Tooltip(f"{column}:N", title=CONTEXT_FIELDS.get(column, label(column))))
    return out


def is_number(frame: pd.DataFrame, column: str) -> bool:
    """Whether ``column`` holds numbers (booleans are not numbers here)."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])


def scale(log: bool, **kwargs: Any) -> alt.Scale:
    """A log scale (no zero, padded) or a linear one that need not start at zero."""
    return alt.Scale(type="log", nice=False, padding=12, **kwargs) if log else alt.Scale(zero=False, **kwargs)


_MANTISSAS = ((1,), (1, 3), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), tuple(range(1, 10)))


def log_ticks(low: float, high: float, min_ticks: int = 3, max_ticks: int = 8) -> list[float]:
    """Tick values for a log axis over [low, high]: at least ``min_ticks`` of them, all inside the range.

    Powers of ten where the range spans enough decades (every other decade when it
    spans many), else 1-3, 1-2-5, ... steps within each decade; a range too narrow
    even for 1..9 steps gets evenly spaced round values.
    """
    import math

    if not (low > 0 and high > low and math.isfinite(high)):
        return []
    eps = 1e-9 * high
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in _MANTISSAS:
        values = [float(f"{m * 10.0 ** k:.12g}") for k in range(first, last + 1) for m in mantissas]
        values = [v for v in values if low - eps <= v <= high + eps]
        if len(values) >= min_ticks:
            if mantissas == (1,) and len(values) > max_ticks:
                values = values[:: math.ceil(len(values) / max_ticks)]
            return values
    return linear_ticks(low, high, min_ticks)


def linear_ticks(low: float, high: float, min_ticks: int = 3) -> list[float]:
    """Evenly spaced round values inside [low, high], at least ``min_ticks`` of them (for narrow ranges)."""
    import math

    span = high - low
    if not span > 0:
        return [low]
    step = 10.0 ** math.floor(math.log10(span))
    for divisor in (1, 2, 5, 10, 20, 50, 100):
        s = step / divisor
        start = math.ceil(low / s - 1e-9) * s
        values = []
        v = start
        while v <= high + 1e-9 * abs(high):
            values.append(float(f"{v:.12g}"))
            v += s
        if len(values) >= min_ticks:
            return values
    return [low, (low + high) / 2, high]


def tick_format(low: float, high: float) -> str:
    """SI prefixes (1.5k, 200k) for large values, plain numbers (0.02, 1.5) below one."""
    return "~s" if low >= 1 and high >= 1000 else "~g"


def axis(frame: pd.DataFrame, column: str, log: bool) -> Any:
    """Log axes: at least three labelled ticks (:func:`log_ticks`); large linear values with SI labels."""
    if not len(frame):
        return alt.Undefined
    import math

    low, high = float(frame[column].min()), float(frame[column].max())
    if not (math.isfinite(low) and math.isfinite(high)):
        return alt.Undefined
    if not log:
        return alt.Axis(format="~s") if max(abs(low), abs(high)) >= 10_000 else alt.Undefined
    values = log_ticks(low, high)
    if not values:
        return alt.Undefined
    return alt.Axis(values=values, format=tick_format(low, high))


def present_columns(frame: pd.DataFrame, wanted: Iterable[str | None]) -> list[str]:
    """The wanted columns the table has, each once, in order (``None`` entries skipped)."""
    out: list[str] = []
    for column in wanted:
        if column and column in frame.columns and column not in out:
            out.append(column)
    return out


def require(frame: pd.DataFrame, *columns: str | None) -> None:
    """Raise :class:`HarnessError` naming the first column a chart needs that the table lacks."""
    for column in columns:
        if column and column not in frame.columns:
            from harness.errors import HarnessError

            raise HarnessError(f"chart column {column!r} is not in the table (columns: {', '.join(map(str, frame.columns))})")


def chart_data(frame: pd.DataFrame, columns: Sequence[str], log_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Only the columns a chart needs; rows with non-positive values dropped from log axes."""
    require(frame, *columns)
    data = frame.loc[:, list(columns)]
    for column in log_columns:
        data = data[data[column] > 0]
    return data.reset_index(drop=True)


def facet_by(chart: Any, facet: str | None, frame: pd.DataFrame, columns: int | None = None) -> Any:
    """``chart`` faceted by ``facet`` (H100 before B200, others sorted after); ``columns`` wraps the panels."""
    if not facet:
        return chart
    present = list(dict.fromkeys(frame[facet].dropna().tolist()))
    order = [g for g in GPU_ORDER if g in present] + sorted(g for g in present if g not in GPU_ORDER)
    header = alt.Header(title=None, labelFontSize=13, labelFontWeight="bold")
    kwargs = {"columns": columns} if columns else {}
    spec = alt.Facet(f"{facet}:N", sort=order, header=header, title=None)
    return chart.facet(spec, **kwargs) if columns else chart.facet(column=spec)


def color_encoding(column: str | None, frame: pd.DataFrame, *, legend: LegendOrient = "right", sort: Any = None) -> Any:
    """Colour by ``column``: a quantitative scale for measured numbers, categories otherwise (20 colours past 10)."""
    if not column:
        return alt.Undefined
    kind = "Q" if is_number(frame, column) and column not in ("batch_size", "num_gpus") else "N"
    title = CONTEXT_FIELDS.get(column, label(column))
    # more than ten categories: twenty distinct colours instead of ten repeated ones
    scale = alt.Scale(scheme="tableau20") if kind == "N" and frame[column].nunique() > 10 else alt.Undefined
    return alt.Color(f"{column}:{kind}", title=title, sort=sort, scale=scale, legend=alt.Legend(orient=legend))
