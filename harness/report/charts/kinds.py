"""The study's usual charts from tidy tables (units in column names), GPUs side by side.

Every mark has a tooltip naming the model, GPU, batch size and the plotted values with their units; axes are
titled from the column names; ``facet="gpu_model"`` puts H100 and B200 side by side.

* :func:`points` -- scatter, e.g. energy per token against median ITL;
* :func:`lines` -- one line (with points) per series, e.g. energy against batch size;
* :func:`strip` -- one row per category, one point per configuration (log scale);
* :func:`bars` -- one bar per category.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import altair as alt

from harness.report.charts import encoding as enc
from harness.vocabulary.labels import label


def points(
    frame,
    x: str,
    y: str,
    *,
    color: str | None = "nickname",
    legend: enc.LegendOrient = "right",
    shape: str | None = None,
    facet: str | None = "gpu_model",
    log_x: bool = False,
    log_y: bool = True,
    title: str | None = None,
    width: int = 320,
    height: int = 260,
    extra_tooltip: Iterable[str] = (),
    interactive: bool = True,
) -> alt.Chart:
    """A scatter of ``y`` against ``x``, one point per row, GPUs side by side."""
    extra_tooltip = list(extra_tooltip)
    enc.require(frame, x, y, color, shape, facet, *extra_tooltip)
    cols = enc.present_columns(frame, [x, y, color, shape, facet, *enc.CONTEXT_FIELDS, *extra_tooltip])
    data = enc.chart_data(frame, cols, [c for c, log in ((x, log_x), (y, log_y)) if log])
    chart = (
        alt.Chart(data, width=width, height=height)
        .mark_point()
        .encode(
            x=alt.X(f"{x}:Q", title=label(x), scale=enc.scale(log_x), axis=enc.axis(data, x, log_x)),
            y=alt.Y(f"{y}:Q", title=label(y), scale=enc.scale(log_y), axis=enc.axis(data, y, log_y)),
            color=enc.color_encoding(color, data, legend=legend),
            shape=alt.Shape(f"{shape}:N", title=label(shape)) if shape else alt.Undefined,
            tooltip=enc.tooltips(data, x, y, extra=extra_tooltip),
        )
    )
    if interactive:
        chart = chart.interactive()
    chart = enc.facet_by(chart, facet, data)
    return chart.properties(title=title) if title else chart


def lines(
    frame,
    x: str,
    y: str,
    *,
    series: str = "nickname",
    color: str | None = None,
    legend: enc.LegendOrient = "right",
    facet: str | None = "gpu_model",
    log_x: bool = True,
    log_y: bool = True,
    title: str | None = None,
    width: int = 320,
    height: int = 260,
    extra_tooltip: Iterable[str] = (),
    low: str | None = None,
    high: str | None = None,
) -> alt.Chart:
    """One line per ``series`` (sorted along ``x``) with a point per row, e.g. energy against batch size.

    ``low`` / ``high``: columns with an interval on ``y``, drawn as error bars where both are known
    (rows without one, such as published single runs, get none)."""
    color = color or series
    extra_tooltip = list(extra_tooltip)
    enc.require(frame, x, y, series, color, facet, low, high, *extra_tooltip)
    cols = enc.present_columns(frame, [x, y, series, color, facet, low, high, *enc.CONTEXT_FIELDS, *extra_tooltip])
    data = enc.chart_data(frame, cols, [c for c, log in ((x, log_x), (y, log_y)) if log])
    base = alt.Chart(data, width=width, height=height).encode(
        x=alt.X(f"{x}:Q", title=label(x), scale=enc.scale(log_x), axis=enc.axis(data, x, log_x)),
        y=alt.Y(f"{y}:Q", title=label(y), scale=enc.scale(log_y), axis=enc.axis(data, y, log_y)),
        color=enc.color_encoding(color, data, legend=legend),
        detail=alt.Detail(f"{series}:N"),
        order=alt.Order(f"{x}:Q"),
        tooltip=enc.tooltips(data, x, y, extra=[series, *extra_tooltip]),
    )
    # a series of one point has no line to draw (an empty path): its point alone shows it
    in_series = enc.present_columns(data, [series, facet])
    line = base.transform_joinaggregate(points_in_series="count()", groupby=list(in_series)).transform_filter(
        "datum.points_in_series >= 2").mark_line(strokeWidth=1.5, opacity=0.8)
    layers = [line, base.mark_point()]
    if low and high and data[[low, high]].notna().all(axis=1).any():
        known = f"isValid(datum['{low}']) && isValid(datum['{high}'])" + (f" && datum['{low}'] > 0" if log_y else "")
        layers.append(base.transform_filter(known).mark_rule(strokeWidth=1.5).encode(
            y=alt.Y(f"{low}:Q", title=label(y), scale=enc.scale(log_y), axis=enc.axis(data, y, log_y)),
            y2=alt.Y2(f"{high}:Q"), tooltip=enc.tooltips(data, x, y, extra=[series, low, high, *extra_tooltip])))
    chart = alt.layer(*layers)
    chart = enc.facet_by(chart, facet, data)
    return chart.properties(title=title) if title else chart


def strip(
    frame,
    category: str,
    value: str,
    *,
    color: str | None = None,
    legend: enc.LegendOrient = "right",
    facet: str | None = "gpu_model",
    log: bool = True,
    category_sort: Sequence[str] | None = None,
    category_title: str | None = None,
    title: str | None = None,
    width: int = 320,
    row_height: int = 34,
    extra_tooltip: Iterable[str] = (),
) -> alt.Chart:
    """One row per ``category``, one jittered point per row of ``frame`` along ``value``.

    The jitter is a fixed function of the row order, so the same table draws
    the same chart.
    """
    extra_tooltip = list(extra_tooltip)
    enc.require(frame, category, value, color, facet, *extra_tooltip)
    cols = enc.present_columns(frame, [category, value, color, facet, *enc.CONTEXT_FIELDS, *extra_tooltip])
    data = enc.chart_data(frame, cols, [value] if log else [])
    data = data.assign(jitter=[((i * 0.6180339887) % 1.0) for i in range(len(data))])
    sort = list(category_sort) if category_sort is not None else alt.Undefined
    n_rows = max(1, data[category].nunique())
    chart = (
        alt.Chart(data, width=width, height=row_height * n_rows)
        .mark_point()
        .encode(
            x=alt.X(f"{value}:Q", title=label(value), scale=enc.scale(log), axis=enc.axis(data, value, log)),
            y=alt.Y(f"{category}:N", title=category_title if category_title is not None else label(category), sort=sort),
            yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-0.3, 1.3])),
            color=enc.color_encoding(color, data, legend=legend) if color else alt.Undefined,
            tooltip=enc.tooltips(data, value, extra=extra_tooltip),
        )
    )
    chart = enc.facet_by(chart, facet, data)
    return chart.properties(title=title) if title else chart


def bars(
    frame,
    category: str,
    value: str,
    *,
    color: str | None = None,
    legend: enc.LegendOrient = "right",
    facet: str | None = "gpu_model",
    log: bool = False,
    category_sort: Sequence[str] | str | None = "-x",
    title: str | None = None,
    width: int = 320,
    row_height: int = 20,
    extra_tooltip: Iterable[str] = (),
) -> alt.Chart:
    """Horizontal bars: one per ``category``, length ``value``."""
    extra_tooltip = list(extra_tooltip)
    enc.require(frame, category, value, color, facet, *extra_tooltip)
    cols = enc.present_columns(frame, [category, value, color, facet, *enc.CONTEXT_FIELDS, *extra_tooltip])
    data = enc.chart_data(frame, cols, [value] if log else [])
    sort = category_sort if category_sort is not None else alt.Undefined
    n_rows = max(1, data[category].nunique())
    x2: object  # a datum at the axis' base (log) or alt.Undefined
    if log and len(data):
        # a log axis has no zero: bars start at the power of ten below the smallest value
        import math

        low, high = float(data[value].min()), float(data[value].max())
        base = 10.0 ** math.floor(math.log10(low) - 1e-9)
        top = high * 1.15
        x = alt.X(f"{value}:Q", title=label(value), scale=alt.Scale(type="log", domain=[base, top], nice=False),
                  axis=alt.Axis(values=enc.log_ticks(base, top), format=enc.tick_format(base, top)))
        x2 = alt.datum(base)
    else:
        x, x2 = alt.X(f"{value}:Q", title=label(value), axis=enc.axis(data, value, False)), alt.Undefined
    chart = (
        alt.Chart(data, width=width, height=row_height * n_rows)
        .mark_bar()
        .encode(
            x=x,
            x2=x2,
            y=alt.Y(f"{category}:N", title=label(category), sort=sort),
            color=enc.color_encoding(color, data, legend=legend) if color else alt.Undefined,
            tooltip=enc.tooltips(data, value, extra=extra_tooltip),
        )
    )
    chart = enc.facet_by(chart, facet, data)
    return chart.properties(title=title) if title else chart
