"""Encodings shared by every chart kind: tooltips, scales and axes with readable ticks, colours, GPU facets.

Tooltips name the model, GPU, batch size, precision and task (those the table has, in the reader's words),
then the plotted values with their units; axes are titled from the column names
(:func:`harness.vocabulary.labels.label`); a log axis runs between two labelled ticks that bracket the data
(:func:`log_domain`); colours come from the book's one palette (:mod:`harness.vocabulary.palette`), a click on
a legend entry highlights its series (:func:`legend_highlight`); ``facet_by(chart, "gpu_model", ...)`` puts
H100 and B200 side by side. Sizes follow the page (:data:`PAGE_WIDTH_PX`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import altair as alt

from harness.vocabulary import palette
from harness.vocabulary.labels import label, value_names
from harness.vocabulary.tasks import TASK_NAMES

if TYPE_CHECKING:
    import pandas as pd

GPU_ORDER = ("H100", "B200")
# Where a colour legend may sit (Vega-Lite's legend ``orient`` values).
LegendOrient = Literal["none", "left", "right", "top", "bottom", "top-left", "top-right", "bottom-left", "bottom-right"]

# The width a chart may take on a book page, in CSS pixels (axes, legend and panels included): the text column
# and the margin beside it (the book's style sheet widens a cell that holds a chart to it).
PAGE_WIDTH_PX = 900
AXIS_WIDTH_PX = 64  # an axis' labels and title beside a plot
RIGHT_LEGEND_PX = 230  # a legend to the right of a plot
MAX_RIGHT_LEGEND = 8  # more entries than this go below the plot, in columns
RIGHT_LEGEND_CHARS = 34  # a right legend shows labels of up to this many characters whole (220 px at 11 px type)
LEGEND_CHAR_PX = 6.5  # the width of one character of a legend label (px, 11 px type)
FACET_SPACING_PX = 16

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
            out.append(
                alt.Tooltip(
                    f"{column}:Q", title=CONTEXT_FIELDS.get(column, label(column)), format=number_format(column)
                )
            )
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
_BRACKETS = ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))


def log_ticks(low: float, high: float, min_ticks: int = 3, max_ticks: int = 8) -> list[float]:
    """Tick values for a log axis over [low, high]: at least ``min_ticks`` of them, all inside the range.

    Powers of ten where the range spans enough decades (every other decade when it
    spans many), else 1-3, 1-2-5, ... steps within each decade; a range too narrow
    even for 1..9 steps gets evenly spaced round values. (A chart's own axes use
    :func:`log_domain`, whose ticks bracket the data.)
    """
    import math

    if not (low > 0 and high > low and math.isfinite(high)):
        return []
    eps = 1e-9 * high
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in _MANTISSAS:
        values = [float(f"{m * 10.0**k:.12g}") for k in range(first, last + 1) for m in mantissas]
        values = [v for v in values if low - eps <= v <= high + eps]
        if len(values) >= min_ticks:
            if mantissas == (1,) and len(values) > max_ticks:
                values = values[:: math.ceil(len(values) / max_ticks)]
            return values
    return linear_ticks(low, high, min_ticks)


def _steps(low: float, high: float, mantissas: Sequence[float]) -> list[float]:
    """Every ``m x 10^k`` from the largest at or below ``low`` to the smallest at or above ``high``."""
    import math

    first, last = math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1
    values = sorted({float(f"{m * 10.0**k:.12g}") for k in range(first, last + 1) for m in mantissas})
    eps = 1e-9
    below = [v for v in values if v <= low * (1 + eps)]
    above = [v for v in values if v >= high * (1 - eps)]
    lo, hi = below[-1], above[0]
    return [v for v in values if lo <= v <= hi]


def log_domain(low: float, high: float, min_ticks: int = 3, max_ticks: int = 9) -> tuple[list[float], list[float]]:
    """A log axis for data in [low, high]: its domain ``[first, last]`` and labelled ticks that bracket the data.

    The lowest tick is at or below ``low`` and the highest at or above ``high``; both ends of the domain are
    labelled, so no point lies beyond the last number a reader can see. Ticks step 1-2-5 within a decade; where
    that makes more than ``max_ticks`` (a wide range, or a small plot), whole decades inside and 1-2-5 values at
    the ends (every other decade if still too many); where it makes fewer than ``min_ticks`` (a narrow range),
    finer steps (1-1.5-2-3-5-7, then 1..9, then even round values).
    """
    import math

    if not (low > 0 and high >= low and math.isfinite(high)):
        return [], []
    if high == low:
        low, high = low / 1.5, high * 1.5
    ticks = _steps(low, high, (1, 2, 5))
    if min_ticks <= len(ticks) <= max_ticks:
        return [ticks[0], ticks[-1]], ticks
    if len(ticks) > max_ticks:
        lo, hi = ticks[0], ticks[-1]
        powers = [
            float(f"{10.0**k:.12g}")
            for k in range(math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9) + 1)
        ]
        # a power of ten too close to an end would crowd the end's label (labels about a tick's room apart)
        gap = 0.9 * math.log10(hi / lo) / max_ticks
        powers = [t for t in powers if t in (lo, hi) or min(math.log10(t / lo), math.log10(hi / t)) > gap]
        inner = [t for t in powers if t not in (lo, hi)]
        room = max(1, max_ticks - 2)
        if len(inner) > room:
            inner = inner[:: math.ceil(len(inner) / room)]
        return [lo, hi], sorted({lo, hi, *inner})
    for mantissas in _BRACKETS[1:]:
        ticks = _steps(low, high, mantissas)
        if len(ticks) >= min_ticks:
            return [ticks[0], ticks[-1]], ticks
    ticks = linear_ticks(low, high, min_ticks, bracket=True)
    return [ticks[0], ticks[-1]], ticks


def linear_ticks(low: float, high: float, min_ticks: int = 3, bracket: bool = False) -> list[float]:
    """Evenly spaced round values inside [low, high], at least ``min_ticks`` of them (for narrow ranges).

    ``bracket``: one step beyond each end instead, so that the first value is at or below ``low`` and the
    last at or above ``high``."""
    import math

    span = high - low
    if not span > 0:
        return [low]
    step = 10.0 ** math.floor(math.log10(span))
    # bracketing: the coarsest round step that still gives enough values (fewer labels to crowd the axis)
    divisors = (0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if bracket else (1, 2, 5, 10, 20, 50, 100)
    for divisor in divisors:
        s = step / divisor
        if bracket:
            start, stop = math.floor(low / s + 1e-9) * s, math.ceil(high / s - 1e-9) * s
            if start <= 0 < low:
                continue
        else:
            start, stop = math.ceil(low / s - 1e-9) * s, high
        values = []
        v = start
        while v <= stop + 1e-9 * abs(stop):
            values.append(float(f"{v:.12g}"))
            v += s
        if len(values) >= min_ticks:
            return values
    return [low, (low + high) / 2, high]


def tick_format(low: float, high: float) -> str:
    """SI prefixes (1.5k, 200k) for large values, plain numbers (0.02, 1.5) below one."""
    return "~s" if low >= 1 and high >= 1000 else "~g"


def axis(frame: pd.DataFrame, column: str, log: bool) -> Any:
    """Log axes: labelled ticks that bracket the data (:func:`log_domain`); large linear values with SI labels."""
    return position(frame, column, log)[1]


def position(
    frame: pd.DataFrame,
    column: str,
    log: bool,
    *,
    reference: float | None = None,
    length_px: int | None = None,
    vertical: bool = False,
) -> tuple[Any, Any]:
    """The scale and axis of a position channel showing ``column``.

    Log: the domain runs between two labelled ticks that bracket the data (:func:`log_domain`), as many ticks
    as ``length_px`` (the axis' length; ``vertical`` labels need less room) has room for; linear: the scale need not start at zero, large values
    get SI labels. ``reference`` (e.g. 1 on a ratio axis) is kept inside the domain."""  # noqa: E501
    import math

    if not len(frame):
        return scale(log), alt.Undefined
    low, high = float(frame[column].min()), float(frame[column].max())
    if reference is not None:
        low, high = min(low, reference), max(high, reference)
    if not (math.isfinite(low) and math.isfinite(high)):
        return scale(log), alt.Undefined
    if not log:
        share = column.endswith("_share") or column.startswith("share_")
        axis_ = (
            alt.Axis(format="%")
            if share
            else alt.Axis(format="~s")
            if max(abs(low), abs(high)) >= 10_000
            else alt.Undefined
        )
        return (alt.Scale(zero=False, domain=[low, high], nice=True) if reference is not None else scale(False), axis_)
    spacing = 28 if vertical else 40
    domain, ticks = log_domain(low, high, max_ticks=max(3, min(9, (length_px or 400) // spacing)))
    if not ticks:
        return scale(True), alt.Undefined
    return (
        alt.Scale(type="log", domain=domain, nice=False),
        alt.Axis(values=ticks, format=tick_format(domain[0], domain[1]), labelOverlap=False),
    )


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

            raise HarnessError(
                f"chart column {column!r} is not in the table (columns: {', '.join(map(str, frame.columns))})"
            )


def chart_data(frame: pd.DataFrame, columns: Sequence[str], log_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Only the columns a chart needs, values in the reader's words (task names, ``FP8``); rows with non-positive
    values dropped from log axes."""
    require(frame, *columns)
    data = frame.loc[:, list(columns)]
    for column in log_columns:
        data = data[data[column] > 0]
    data = data.reset_index(drop=True)
    for column in data.columns:
        names = TASK_NAMES if column == "task" else value_names(column)
        if names and not is_number(data, column):
            data[column] = data[column].map(lambda v, n=names: n.get(v, v) if isinstance(v, str) else v)
    return data


def facet_order(frame: pd.DataFrame, facet: str) -> list:
    """The panels of ``facet``: H100 before B200, others sorted after."""
    present = list(dict.fromkeys(frame[facet].dropna().tolist()))
    return [g for g in GPU_ORDER if g in present] + sorted(g for g in present if g not in GPU_ORDER)


def facet_by(
    chart: Any, facet: str | None, frame: pd.DataFrame, columns: int | None = None, label_limit: int | None = None
) -> Any:
    """``chart`` faceted by ``facet`` (H100 before B200, others sorted after); ``columns`` wraps the panels;
    ``label_limit``: the widest a panel's heading may be (px), e.g. the panel's width."""
    if not facet:
        return chart
    order = facet_order(frame, facet)
    header = alt.Header(
        title=None,
        labelFontSize=12 if columns else 13,
        labelFontWeight="bold",
        labelLimit=label_limit or PAGE_WIDTH_PX // 3,
    )
    kwargs = {"columns": columns} if columns else {}
    spec = alt.Facet(f"{facet}:N", sort=order, header=header, title=None)
    return chart.facet(spec, **kwargs) if columns else chart.facet(column=spec)


def panel_count(frame: pd.DataFrame, facet: str | None, columns: int | None = None) -> int:
    """How many panels sit side by side: 1 without a facet, else the facet's values (at most ``columns``)."""
    if not facet or facet not in frame.columns:
        return 1
    n = max(1, frame[facet].nunique())
    return min(n, columns) if columns else n


def plot_width(panels: int = 1, legend_right: bool = False, axis_each: bool = False) -> int:
    """The width of one plot so that ``panels`` of them, their left axis (each its own with ``axis_each``) and a
    right legend fill the page."""
    axes = AXIS_WIDTH_PX * (panels if axis_each else 1)
    free = PAGE_WIDTH_PX - axes - (RIGHT_LEGEND_PX if legend_right else 0) - FACET_SPACING_PX * (panels - 1)
    return max(100, int(free / panels))


def legend_entries(frame: pd.DataFrame, *columns: str | None) -> int:
    """The number of legend entries the nominal ``columns`` make (the largest of them)."""
    counts = [frame[c].nunique() for c in columns if c and c in frame.columns and not is_number(frame, c)]
    return max(counts, default=0)


def legend_for(
    entries: int, legend: str = "right", title: str | None = None, clickable: bool = True, longest: int = 0
) -> alt.Legend:
    """A legend at ``legend``. More than :data:`MAX_RIGHT_LEGEND` entries, or labels longer than
    :data:`RIGHT_LEGEND_CHARS` (``longest``, in characters), go below the plot, in as many columns as the widest
    label leaves room for, so that no label is cut."""
    below = legend == "bottom" or entries > MAX_RIGHT_LEGEND or longest > RIGHT_LEGEND_CHARS
    label_px = max(220, min(PAGE_WIDTH_PX - 60, int(longest * LEGEND_CHAR_PX) + 10))
    kwargs: dict[str, Any] = (
        {
            "orient": "bottom",
            "columns": max(1, PAGE_WIDTH_PX // (label_px + 20)),
            "symbolLimit": 0,
            "labelLimit": label_px,
        }
        if below
        else {"orient": legend, "symbolLimit": 0, "labelLimit": 220}
    )
    if title is not None:
        kwargs["title"] = title
    if clickable:
        kwargs["symbolStrokeWidth"] = 2
    return alt.Legend(**kwargs)


def legend_right(frame: pd.DataFrame, legend: str, *columns: str | None) -> bool:
    """Whether a chart's legend takes width beside the plot (a right legend of few entries)."""
    entries = legend_entries(frame, *columns)
    return (
        bool(entries)
        and legend == "right"
        and entries <= MAX_RIGHT_LEGEND
        and longest_label(frame, *columns) <= RIGHT_LEGEND_CHARS
    )


def longest_label(frame: pd.DataFrame, *columns: str | None) -> int:
    """The longest legend label (characters) the nominal ``columns`` make."""
    lengths = [
        int(frame[c].dropna().astype(str).str.len().max() or 0)
        for c in columns
        if c and c in frame.columns and not is_number(frame, c) and frame[c].notna().any()
    ]
    return max(lengths, default=0)


def color_scale(values: Iterable[Any]) -> alt.Scale:
    """The book's colours for these categories (:mod:`harness.vocabulary.palette`): the same model, task or GPU
    generation gets the same colour in every chart."""
    import pandas as pd

    domain = [v for v in dict.fromkeys(values) if not pd.isna(v)]
    gpus = {g: i for i, g in enumerate(GPU_ORDER)}
    domain = sorted(domain, key=lambda v: (palette.known_colour(str(v)) is None, gpus.get(str(v), len(gpus)), str(v)))
    return alt.Scale(domain=domain, range=palette.colours(str(v) for v in domain))


def color_encoding(
    column: str | None, frame: pd.DataFrame, *, legend: str = "right", sort: Any = None, condition: Any = None
) -> Any:
    """Colour by ``column``: a quantitative scale for measured numbers, the book's fixed colours otherwise.

    ``condition``: a selection (:func:`legend_highlight`); marks outside it turn grey."""
    if not column:
        return alt.Undefined
    kind = "Q" if is_number(frame, column) and column not in ("batch_size", "num_gpus") else "N"
    title = CONTEXT_FIELDS.get(column, label(column))
    if kind == "Q":
        return alt.Color(f"{column}:Q", title=title, legend=alt.Legend(orient=legend))  # type: ignore[arg-type]
    values = frame[column].dropna()
    if column == "num_gpus":
        values = values.astype(int)
    color = alt.Color(
        f"{column}:N",
        title=title,
        sort=sort,
        scale=color_scale(values.tolist()),
        legend=legend_for(frame[column].nunique(), legend, longest=longest_label(frame, column)),
    )
    return color


def legend_highlight(column: str | None, name: str = "legend") -> Any:
    """A selection bound to the legend of ``column``: clicking an entry highlights its series (shift-click adds
    another; clicking an empty spot shows all again). ``alt.Undefined`` without a column."""
    if not column:
        return alt.Undefined
    import re

    return alt.selection_point(name=f"{name}_{re.sub(r'[^A-Za-z0-9_]', '_', column)}", fields=[column], bind="legend")


def highlight_opacity(selection: Any, on: float = 0.85, off: float = 0.1) -> Any:
    """Opacity that keeps the selected series (all of them when nothing is selected) and fades the rest."""
    if selection is alt.Undefined:
        return alt.value(on)
    return alt.condition(selection, alt.value(on), alt.value(off))


def _count(value: Any) -> int | None:
    import math
    import re

    if isinstance(value, (int, float)) and not math.isnan(value):
        return int(value)
    found = re.match(r"\s*(\d+)\s*x\s", str(value))
    return int(found.group(1)) if found else None


def _style_order(value: Any) -> tuple:
    """GPU counts ascending, H100 before B200, then by name."""
    gpu = GPU_ORDER.index(value) if value in GPU_ORDER else len(GPU_ORDER)
    return (_count(value) or 0, gpu, str(value))


def dash_encoding(column: str | None, frame: pd.DataFrame, *, legend: str = "right") -> Any:
    """Line dashes by GPU count (``num_gpus``, or ``gpu`` such as ``2 x B200``) or by precision: the same dash
    for the same count or precision in every chart."""
    if not column:
        return alt.Undefined
    values = sorted(dict.fromkeys(frame[column].dropna().tolist()), key=_style_order)
    dashes = [
        palette.GPU_COUNT_DASHES.get(_count(v) or 0) or palette.PRECISION_DASHES.get(str(v).lower()) or [3, 1 + 2 * i]
        for i, v in enumerate(values)
    ]
    kind = "O" if is_number(frame, column) else "N"
    return alt.StrokeDash(
        f"{column}:{kind}",
        title=CONTEXT_FIELDS.get(column, label(column)),
        scale=alt.Scale(domain=values, range=dashes),
        legend=legend_for(len(values), legend),
    )


def shape_encoding(column: str | None, frame: pd.DataFrame, *, legend: str = "right") -> Any:
    """Point shapes by GPU count or precision (circle: 1 GPU or BF16), fixed across the book."""
    if not column:
        return alt.Undefined
    values = sorted(dict.fromkeys(frame[column].dropna().tolist()), key=_style_order)
    spare = ["cross", "triangle-down", "wedge", "stroke"]
    shapes = [
        palette.GPU_COUNT_SHAPES.get(_count(v) or 0)
        or palette.PRECISION_SHAPES.get(str(v).lower())
        or spare[i % len(spare)]
        for i, v in enumerate(values)
    ]
    return alt.Shape(
        f"{column}:N",
        title=CONTEXT_FIELDS.get(column, label(column)),
        scale=alt.Scale(domain=values, range=shapes),
        legend=legend_for(len(values), legend),
    )
