"""The study's usual charts from tidy tables (units in column names), GPUs side by side.

Every mark has a tooltip naming the model, GPU, batch size and the plotted values with their units; axes are
titled from the column names; ``facet="gpu_model"`` puts H100 and B200 side by side. Colours are the book's
fixed ones (a model, task or GPU generation has one colour on every page), a click on a legend entry highlights
that series, and a chart fills the page's width unless given one.

* :func:`points` -- scatter, e.g. energy per token against median ITL;
* :func:`lines` -- one line (with points) per series, e.g. energy against batch size;
* :func:`strip` -- one row per category, one point per configuration (log scale);
* :func:`bars` -- one bar per category (dots on a log axis: a bar's length means nothing there).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import altair as alt

from harness.report.charts import encoding as enc
from harness.vocabulary.labels import label


def _reference_rule(
    data: Any, value: float | None, channel: str, scale: Any, text: str | None = None
) -> list[alt.Chart]:
    """A grey rule at ``value`` (e.g. 1 on a ratio axis), drawn under the data; none without a value.

    It reads the chart's own table (one row after aggregating), so that a faceted chart draws it in every panel."""
    if value is None:
        return []
    position = alt.X if channel == "x" else alt.Y
    rule = (
        alt.Chart(data)
        .transform_aggregate(rows="count()")
        .transform_calculate(reference=f"{float(value)!r}")
        .mark_rule(color="#555", strokeWidth=1.2)
        .encode(
            **{channel: position("reference:Q", scale=scale)},
            tooltip=[alt.Tooltip("reference:Q", title=text or "Reference", format=",.3~r")],
        )
    )
    return [rule]


def _with_title(chart: Any, title: str | None) -> Any:
    return chart.properties(title=title) if title else chart


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
    width: int | None = None,
    height: int = 300,
    extra_tooltip: Iterable[str] = (),
    interactive: bool = True,
    detail: str | None = None,
    reference_y: float | None = None,
) -> alt.Chart:
    """A scatter of ``y`` against ``x``, one point per row, GPUs side by side.

    ``shape``: a column (GPU count, precision) drawn as the point's shape; ``detail``: a column whose rows are
    joined by a thin line (e.g. one model's points on two tasks); ``reference_y``: a rule across the plot (1 on a
    ratio axis). Clicking a legend entry highlights its points."""
    extra_tooltip = list(extra_tooltip)
    enc.require(frame, x, y, color, shape, facet, detail, *extra_tooltip)
    cols = enc.present_columns(frame, [x, y, color, shape, facet, detail, *enc.CONTEXT_FIELDS, *extra_tooltip])
    data = enc.chart_data(frame, cols, [c for c, log in ((x, log_x), (y, log_y)) if log])
    panels = enc.panel_count(data, facet)
    width = width or enc.plot_width(panels, enc.legend_right(data, legend, color, shape))
    x_scale, x_axis = enc.position(data, x, log_x, length_px=width)
    y_scale, y_axis = enc.position(data, y, log_y, reference=reference_y, length_px=height, vertical=True)
    pick = enc.legend_highlight(color if color and not enc.is_number(data, color) else None)
    xe = alt.X(f"{x}:Q", title=label(x), scale=x_scale, axis=x_axis)
    ye = alt.Y(f"{y}:Q", title=label(y), scale=y_scale, axis=y_axis)
    dots = (
        alt.Chart(data)
        .mark_point(size=60)
        .encode(
            x=xe,
            y=ye,
            color=enc.color_encoding(color, data, legend=legend),
            shape=enc.shape_encoding(shape, data, legend=legend) if shape else alt.Undefined,
            opacity=enc.highlight_opacity(pick),
            tooltip=enc.tooltips(data, x, y, extra=extra_tooltip),
        )
    )
    if pick is not alt.Undefined:
        dots = dots.add_params(pick)  # on the first layer: a legend binds only a selection of the first layer
    if interactive:
        dots = dots.interactive()
    layers: list[Any] = _reference_rule(data, reference_y, "y", y_scale)
    if detail:  # a thin line through each detail's points (one point alone has no line to draw)
        in_detail = enc.present_columns(data, [detail, facet])
        layers.append(
            alt.Chart(data)
            .transform_joinaggregate(points_in_detail="count()", groupby=list[Any](in_detail))
            .transform_filter("datum.points_in_detail >= 2")
            .mark_line(strokeWidth=1, color="#bbb")
            .encode(
                x=xe,
                y=ye,
                detail=f"{detail}:N",
                order=alt.Order(f"{x}:Q"),
                opacity=enc.highlight_opacity(pick, on=0.8, off=0.1),
            )
        )
    chart = (
        alt.layer(dots, *layers).properties(width=width, height=height)
        if layers
        else dots.properties(width=width, height=height)
    )
    chart = enc.facet_by(chart, facet, data, label_limit=width)
    return _with_title(chart, title)


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
    width: int | None = None,
    height: int = 300,
    extra_tooltip: Iterable[str] = (),
    low: str | None = None,
    high: str | None = None,
    style: str | None = None,
    facet_columns: int | None = None,
    reference_y: float | None = None,
) -> alt.Chart:
    """One line per ``series`` (sorted along ``x``) with a point per row, e.g. energy against batch size.

    ``color`` (default: ``series``) takes the book's fixed colours; ``style``: a column (GPU count, precision)
    drawn as the line's dash and the points' shape, so several series of one model stay apart;
    ``facet_columns``: wrap the facet's panels (small multiples, e.g. one panel per model);
    ``low`` / ``high``: columns with an interval on ``y``, drawn as error bars where both are known
    (rows without one, such as published single runs, get none); ``reference_y``: a rule across the plot.
    Clicking a legend entry highlights its lines."""
    color = color or series
    extra_tooltip = list(extra_tooltip)
    enc.require(frame, x, y, series, color, facet, low, high, style, *extra_tooltip)
    cols = enc.present_columns(
        frame, [x, y, series, color, facet, low, high, style, *enc.CONTEXT_FIELDS, *extra_tooltip]
    )
    data = enc.chart_data(frame, cols, [c for c, log in ((x, log_x), (y, log_y)) if log])
    panels = enc.panel_count(data, facet, facet_columns)
    if facet_columns:  # small multiples: short panels, the legend below them
        height, legend = min(height, 160), "bottom"
    width = width or enc.plot_width(panels, enc.legend_right(data, legend, color, style))
    x_scale, x_axis = enc.position(data, x, log_x, length_px=width)
    y_scale, y_axis = enc.position(data, y, log_y, reference=reference_y, length_px=height, vertical=True)
    pick = enc.legend_highlight(color if not enc.is_number(data, color) else None)
    base = alt.Chart(data).encode(
        x=alt.X(f"{x}:Q", title=label(x), scale=x_scale, axis=x_axis),
        y=alt.Y(f"{y}:Q", title=label(y), scale=y_scale, axis=y_axis),
        color=enc.color_encoding(color, data, legend=legend),
        detail=alt.Detail(f"{series}:N"),
        order=alt.Order(f"{x}:Q"),
        tooltip=enc.tooltips(data, x, y, extra=[series, *extra_tooltip]),
    )
    # a series of one point has no line to draw (an empty path): its point alone shows it
    in_series = enc.present_columns(data, [series, facet])
    line = (
        base.transform_joinaggregate(points_in_series="count()", groupby=list[Any](in_series))
        .transform_filter("datum.points_in_series >= 2")
        .mark_line(strokeWidth=1.8)
        .encode(
            opacity=enc.highlight_opacity(pick, on=0.85, off=0.08),
            strokeDash=enc.dash_encoding(style, data, legend=legend) if style else alt.Undefined,
        )
    )
    dots = base.mark_point(size=36).encode(
        opacity=enc.highlight_opacity(pick, on=0.9, off=0.08),
        shape=enc.shape_encoding(style, data, legend=legend) if style else alt.Undefined,
    )
    if pick is not alt.Undefined:
        line = line.add_params(pick)  # on the first layer: a legend binds only a selection of the first layer
    layers: list[Any] = [line, dots, *_reference_rule(data, reference_y, "y", y_scale)]
    if low and high and data[[low, high]].notna().all(axis=1).any():
        known = f"isValid(datum['{low}']) && isValid(datum['{high}'])" + (f" && datum['{low}'] > 0" if log_y else "")
        layers.append(
            base.transform_filter(known)
            .mark_rule(strokeWidth=1.5)
            .encode(
                y=alt.Y(f"{low}:Q", title=label(y), scale=y_scale, axis=y_axis),
                y2=alt.Y2(f"{high}:Q"),
                opacity=enc.highlight_opacity(pick, on=0.9, off=0.08),
                tooltip=enc.tooltips(data, x, y, extra=[series, low, high, *extra_tooltip]),
            )
        )
    chart = alt.layer(*layers).properties(width=width, height=height)
    chart = enc.facet_by(chart, facet, data, columns=facet_columns, label_limit=width)
    return _with_title(chart, title)


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
    width: int | None = None,
    row_height: int = 34,
    extra_tooltip: Iterable[str] = (),
    reference: float | None = None,
    reference_title: str | None = None,
    shape: str | None = None,
) -> alt.Chart:
    """One row per ``category``, one jittered point per row of ``frame`` along ``value``.

    The jitter is a fixed function of the row order, so the same table draws the same chart. ``reference``:
    a rule at that value (1 on a ratio axis, 0 on a saving), named ``reference_title`` in its tooltip;
    ``shape``: a column drawn as the points' shape. Clicking a legend entry highlights its points.
    """
    extra_tooltip = list(extra_tooltip)
    enc.require(frame, category, value, color, facet, shape, *extra_tooltip)
    cols = enc.present_columns(frame, [category, value, color, facet, shape, *enc.CONTEXT_FIELDS, *extra_tooltip])
    data = enc.chart_data(frame, cols, [value] if log else [])
    data = data.assign(jitter=[((i * 0.6180339887) % 1.0) for i in range(len(data))])
    sort = list(category_sort) if category_sort is not None else alt.Undefined
    n_rows = max(1, data[category].nunique())
    panels = enc.panel_count(data, facet)
    width = width or enc.plot_width(panels, enc.legend_right(data, legend, color, shape)) - 120 // panels
    x_scale, x_axis = enc.position(data, value, log, reference=reference, length_px=width)
    pick = enc.legend_highlight(color if color and not enc.is_number(data, color) else None)
    dots = (
        alt.Chart(data)
        .mark_point(size=50)
        .encode(
            x=alt.X(f"{value}:Q", title=label(value), scale=x_scale, axis=x_axis),
            y=alt.Y(
                f"{category}:N",
                title=category_title if category_title is not None else label(category),
                sort=sort,
                axis=alt.Axis(labelLimit=260),
            ),
            yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-0.3, 1.3])),
            color=enc.color_encoding(color, data, legend=legend) if color else alt.Undefined,
            shape=enc.shape_encoding(shape, data, legend=legend) if shape else alt.Undefined,
            opacity=enc.highlight_opacity(pick, on=0.8, off=0.08),
            tooltip=enc.tooltips(data, value, extra=extra_tooltip),
        )
    )
    if pick is not alt.Undefined:
        dots = dots.add_params(pick)
    layers = [dots, *_reference_rule(data, reference, "x", x_scale, reference_title)]
    chart = (
        alt.layer(*layers).properties(width=width, height=row_height * n_rows)
        if len(layers) > 1
        else dots.properties(width=width, height=row_height * n_rows)
    )
    chart = enc.facet_by(chart, facet, data, label_limit=width)
    return _with_title(chart, title)


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
    width: int | None = None,
    row_height: int = 22,
    extra_tooltip: Iterable[str] = (),
    category_title: str | None = None,
) -> alt.Chart:
    """Horizontal bars: one per ``category``, length ``value``, from zero (``category_title=""``: no axis title,
    for long category labels that name themselves).

    On a log axis (``log=True``) a bar's length would depend on where the axis starts, so each category gets a
    dot instead (a dot plot), on an axis whose labelled ticks bracket the values. Clicking a legend entry
    highlights its rows."""
    extra_tooltip = list(extra_tooltip)
    enc.require(frame, category, value, color, facet, *extra_tooltip)
    cols = enc.present_columns(frame, [category, value, color, facet, *enc.CONTEXT_FIELDS, *extra_tooltip])
    data = enc.chart_data(frame, cols, [value] if log else [])
    sort = category_sort if category_sort is not None else alt.Undefined
    n_rows = max(1, data[category].nunique())
    panels = enc.panel_count(data, facet)
    width = width or enc.plot_width(panels, enc.legend_right(data, legend, color)) - 160 // panels
    pick = enc.legend_highlight(color if color and not enc.is_number(data, color) else None)
    if log:
        x_scale, x_axis = enc.position(data, value, True, length_px=width)
        x = alt.X(f"{value}:Q", title=label(value), scale=x_scale, axis=x_axis)
        mark = alt.Chart(data).mark_point(filled=True, size=90, opacity=0.9)
        y_axis = alt.Axis(grid=True, labelLimit=260, gridDash=[2, 2])
    else:
        x = alt.X(f"{value}:Q", title=label(value), axis=enc.axis(data, value, False))
        mark = alt.Chart(data).mark_bar()
        y_axis = alt.Axis(labelLimit=260)
    chart = mark.encode(
        x=x,
        y=alt.Y(
            f"{category}:N",
            title=(category_title or None) if category_title is not None else label(category),
            sort=sort,
            axis=y_axis,
        ),
        color=enc.color_encoding(color, data, legend=legend) if color else alt.Undefined,
        opacity=enc.highlight_opacity(pick, on=0.9, off=0.15),
        tooltip=enc.tooltips(data, value, extra=extra_tooltip),
    ).properties(width=width, height=row_height * n_rows)
    if pick is not alt.Undefined:
        chart = chart.add_params(pick)
    chart = enc.facet_by(chart, facet, data, label_limit=width)
    return _with_title(chart, title)
