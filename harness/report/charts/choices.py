"""Choices a reader makes in the page: a deadline, a power budget, a GPU, a highlighted model (no server)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import altair as alt

from harness.report.charts import encoding as enc
from harness.vocabulary.labels import label, unit


def _param_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _words(title: str) -> str:
    """A column's title inside a sentence: "Median ITL (ms)" -> "median ITL" (acronyms kept)."""
    stem = title.split(" (")[0]
    return stem[:1].lower() + stem[1:] if stem[1:2].islower() else stem


@dataclass(frozen=True)
class Slider:
    """A range slider over a value's log10 (values spanning decades) or the value itself, and the Vega
    expression that reads the value back."""

    param: Any
    value_expr: str


def limit_slider(name: str, low: float, high: float, start: float, title: str, *, log: bool | None = None) -> Slider:
    """A slider from ``low`` to ``high`` starting at ``start``.

    ``log`` (default: when ``high / low`` is over 10) moves it over log10 of the value, so that each decade gets
    the same length of track (a deadline of 5 to 60 ms is as easy to set as one of 60 to 326 ms); its Vega
    parameter is then ``<name>_log`` and the value is ``pow(10, <name>_log)``. The page's style sheet hides the
    slider's raw log10 read-out; the chart shows the value itself."""
    if log is None:
        log = low > 0 and high / low > 10
    if log:
        lo, hi = math.floor(math.log10(low) * 100) / 100, math.ceil(math.log10(high) * 100) / 100
        value = min(max(math.log10(start), lo), hi)
        param = alt.param(
            name=f"{name}_log",
            value=round(value, 2),
            bind=alt.binding_range(min=lo, max=hi, step=0.01, name=f"{title} (log scale) "),
        )
        return Slider(param, f"pow(10, {name}_log)")
    step = 10.0 ** math.floor(math.log10((high - low) / 100)) if high > low else 1.0

    def snap(v: float, up: bool) -> float:
        return float(f"{(math.ceil(v / step) if up else math.floor(v / step)) * step:.12g}")

    param = alt.param(
        name=name,
        value=snap(min(max(start, low), high), True),
        bind=alt.binding_range(min=snap(low, False), max=snap(high, True), step=step, name=f"{title} "),
    )
    return Slider(param, name)


def cheapest_under_limits(
    frame,
    *,
    latency: str = "median_itl_ms",
    energy: str = "energy_per_output_joules",
    power: str = "avg_power_watts",
    model: str = "nickname",
    gpu: str = "gpu_model",
    deadline: float | None = None,
    title: str | None = None,
    width: int | None = None,
    row_height: int = 22,
    name: str = "choice",
) -> alt.VConcatChart:
    """The lowest-energy configuration of each model within limits the reader sets, offline.

    Three controls under the chart, all Vega parameters (no server): a slider for the ``latency`` deadline
    (e.g. median ITL) and one for the ``power`` budget, each over the log of the value where the values span
    decades, and a GPU toggle. The first line says the limits set. Upper panel: one row per model on the chosen
    GPU, a dot at its cheapest configuration within both limits and the configuration written beside it; a
    model with none says so and why (its fastest configuration, its least power), so no model vanishes
    unnamed. Lower panels: every configuration on that GPU, latency and power against energy, the deadline and
    the power budget drawn as dashed rules, the chosen configurations ringed, those outside the limits faded.
    Clicking a model in the legend highlights it.
    """
    enc.require(frame, latency, energy, power, model, gpu, "batch_size")
    cols = enc.present_columns(
        frame, [model, gpu, latency, energy, power, "batch_size", "num_gpus", "gpu", *enc.CONTEXT_FIELDS]
    )
    data = enc.chart_data(frame, cols, [latency, energy, power]).dropna(subset=[model, gpu])
    if data.empty:
        from harness.errors import HarnessError

        raise HarnessError(f"no rows with positive {latency}, {energy} and {power} to choose from")
    where = data["gpu"] if "gpu" in data.columns else data[gpu]
    lat_unit, pow_unit = unit(latency) or "", unit(power) or ""
    data = data.assign(
        configuration=[
            f"batch {b:,.0f}, {g}, {t:,.3g} {lat_unit}".strip()
            for b, g, t in zip(data["batch_size"], where, data[latency], strict=False)
        ]
    )
    gpus = [g for g in enc.GPU_ORDER if g in set(data[gpu])] + sorted(set(data[gpu]) - set(enc.GPU_ORDER))
    lat_lo, lat_hi = float(data[latency].min()), float(data[latency].max())
    pow_lo, pow_hi = float(data[power].min()), float(data[power].max())
    if deadline is None or not lat_lo <= deadline <= lat_hi:
        deadline = lat_hi
    p = _param_name(name)
    lat_slider = limit_slider(f"{p}_deadline", lat_lo, lat_hi, deadline, f"{label(latency)} at most")
    pow_slider = limit_slider(f"{p}_budget", pow_lo, pow_hi, pow_hi, f"{label(power)} at most")
    deadline_param = (
        alt.param(name=f"{p}_deadline", expr=lat_slider.value_expr)
        if lat_slider.value_expr != f"{p}_deadline"
        else None
    )
    budget_param = (
        alt.param(name=f"{p}_budget", expr=pow_slider.value_expr) if pow_slider.value_expr != f"{p}_budget" else None
    )
    gpu_param = alt.param(name=f"{p}_gpu", value=gpus[-1], bind=alt.binding_radio(options=gpus, name="GPU "))
    highlight = alt.selection_point(name=f"{p}_model", fields=[model], bind="legend")
    on_gpu = f"datum[{json.dumps(gpu)}] == {p}_gpu"
    within = f"datum[{json.dumps(latency)}] <= {p}_deadline && datum[{json.dumps(power)}] <= {p}_budget"
    width = width or enc.PAGE_WIDTH_PX - 250 - 250
    e_lo, e_hi = float(data[energy].min()), float(data[energy].max())
    e_domain, e_ticks = enc.log_domain(e_lo, e_hi, max_ticks=max(3, width // 50))
    e_scale = alt.Scale(type="log", domain=e_domain, nice=False)
    e_axis = alt.Axis(values=e_ticks, format=enc.tick_format(*e_domain), labelOverlap=False)
    tips = enc.tooltips(data, energy, latency, power, extra=["configuration"])
    n_models = max(1, data.groupby(gpu)[model].nunique().max())
    model_color = alt.Color(
        f"{model}:N",
        title=enc.CONTEXT_FIELDS.get(model, label(model)),
        scale=enc.color_scale(data[model].tolist()),
        legend=enc.legend_for(data[model].nunique(), "bottom", title="Model (click to highlight)"),
    )

    # one row per model on the chosen GPU: its cheapest configuration within the limits, or its closest miss
    per_model = (
        alt.Chart(data)
        .transform_filter(on_gpu)
        .transform_calculate(ok=f"({within}) ? 1 : 0")
        .transform_joinaggregate(fastest=f"min({latency})", least_power=f"min({power})", groupby=[model])
        .transform_window(
            rank="row_number()",
            groupby=[model],
            sort=[alt.SortField("ok", order="descending"), alt.SortField(energy, order="ascending")],
        )
        .transform_filter("datum.rank == 1")
        .transform_calculate(
            chosen=(
                f"datum.ok ? datum.configuration : 'nothing within the limits (fastest ' + "
                f"format(datum.fastest, ',.3~r') + ' {lat_unit}, least power ' + "
                f"format(datum.least_power, ',.0f') + ' {pow_unit})'"
            )
        )
    )
    order = alt.EncodingSortField(energy, op="min", order="ascending")
    y_models = alt.Y(f"{model}:N", title=None, sort=order, axis=alt.Axis(labelLimit=230, grid=True, gridDash=[2, 2]))
    dots = (
        per_model.transform_filter("datum.ok == 1")
        .mark_point(filled=True, size=110)
        .encode(
            x=alt.X(f"{energy}:Q", title=label(energy), scale=e_scale, axis=e_axis),
            y=y_models,
            color=model_color,
            opacity=alt.condition(highlight, alt.value(0.95), alt.value(0.2)),
            tooltip=tips,
        )
    )
    frame_rows = per_model.mark_point(opacity=0).encode(y=y_models, x=alt.X(f"{energy}:Q", scale=e_scale))
    # the legend binds the selection of the first view that draws it: these dots
    bars_ = alt.layer(dots.add_params(highlight), frame_rows).properties(
        width=width,
        height=row_height * n_models,
        title=alt.TitleParams("Cheapest configuration within the limits", fontSize=12),
    )
    text = (
        per_model.mark_text(align="left", fontSize=11)
        .encode(
            x=alt.value(4),
            y=alt.Y(f"{model}:N", sort=order, axis=None),
            text="chosen:N",
            color=alt.when("datum.ok == 1").then(alt.value("#222")).otherwise(alt.value("#b2182b")),
            tooltip=tips,
        )
        .properties(
            width=250,
            height=row_height * n_models,
            view=alt.ViewBackground(stroke=None),
            title=alt.TitleParams("Chosen configuration", fontSize=12),
        )
    )

    import pandas as pd

    one = pd.DataFrame({"_": [0]})
    lat_words, pow_words = _words(label(latency)), _words(label(power))
    counts = (
        alt.Chart(data)
        .transform_filter(on_gpu)
        .transform_calculate(
            late=f"datum[{json.dumps(latency)}] > {p}_deadline ? 1 : 0",
            hot=f"datum[{json.dumps(power)}] > {p}_budget ? 1 : 0",
        )
        .transform_aggregate(late="sum(late)", hot="sum(hot)", rows="count()")
    )
    first = (
        counts.transform_calculate(
            line=(
                f"'Deadline: {lat_words} at most ' + format({p}_deadline, ',.3~r') + ' {lat_unit}. Power budget: "
                f"{pow_words} at most ' + format({p}_budget, ',.0f') + ' {pow_unit}. GPU: ' + {p}_gpu + '.'"
            )
        )
        .mark_text(align="left", fontSize=12, fontWeight="bold")
        .encode(x=alt.value(0), y=alt.value(8), text="line:N")
    )
    second = (
        counts.transform_calculate(
            line=(
                "'Of the ' + datum.rows + ' configurations on this GPU, ' + datum.late + ' miss the deadline and ' + "
                "datum.hot + ' draw more than the power budget (faded below).'"
            )
        )
        .mark_text(align="left", fontSize=12)
        .encode(x=alt.value(0), y=alt.value(26), text="line:N")
    )
    summary = alt.layer(first, second).properties(
        width=enc.PAGE_WIDTH_PX - 120, height=34, view=alt.ViewBackground(stroke=None)
    )

    everything = alt.Chart(data).transform_filter(on_gpu)
    lat_domain, lat_ticks = enc.log_domain(lat_lo, lat_hi, max_ticks=6)
    pow_domain, pow_ticks = enc.log_domain(pow_lo, pow_hi, max_ticks=6)
    lat_scale = alt.Scale(type="log", domain=lat_domain, nice=False)
    pow_scale = alt.Scale(type="log", domain=pow_domain, nice=False)
    lat_axis = alt.Axis(values=lat_ticks, format=enc.tick_format(*lat_domain), labelOverlap=False)
    pow_axis = alt.Axis(values=pow_ticks, format=enc.tick_format(*pow_domain), labelOverlap=False)
    e_axis_all = alt.Axis(values=e_ticks, format=enc.tick_format(*e_domain), labelOverlap=False)
    small_width = (enc.PAGE_WIDTH_PX - 2 * enc.AXIS_WIDTH_PX - 40) // 2

    def scatter(x_field: str, x_scale: Any, x_axis: Any, limit: str, limit_title: str, panel_title: str):
        marks = everything.mark_point().encode(
            x=alt.X(f"{x_field}:Q", title=label(x_field), scale=x_scale, axis=x_axis),
            y=alt.Y(f"{energy}:Q", title=label(energy), scale=e_scale, axis=e_axis_all),
            color=model_color,
            opacity=alt.when(~highlight)
            .then(alt.value(0.05))
            .when(within)
            .then(alt.value(0.85))
            .otherwise(alt.value(0.25)),
            size=alt.when(within).then(alt.value(45)).otherwise(alt.value(12)),
            tooltip=tips,
        )
        rings = (
            everything.transform_filter(within)
            .transform_window(rank="row_number()", sort=[alt.SortField(energy, order="ascending")], groupby=[model])
            .transform_filter("datum.rank == 1")
            .mark_point(shape="diamond", size=150, filled=False, color="#222", strokeWidth=1.5)
            .encode(x=alt.X(f"{x_field}:Q", scale=x_scale), y=alt.Y(f"{energy}:Q", scale=e_scale), tooltip=tips)
        )
        rule = (
            alt.Chart(one)
            .transform_calculate(limit=limit)
            .mark_rule(strokeDash=[5, 3], color="#b2182b", strokeWidth=1.5)
            .encode(
                x=alt.X("limit:Q", scale=x_scale), tooltip=[alt.Tooltip("limit:Q", title=limit_title, format=",.3~r")]
            )
        )
        return alt.layer(marks, rings, rule).properties(
            width=small_width, height=260, title=alt.TitleParams(panel_title, fontSize=12)
        )

    frontier = scatter(
        latency,
        lat_scale,
        lat_axis,
        f"{p}_deadline",
        label(latency).replace("(", "deadline (") if "(" in label(latency) else "Deadline",
        "Every configuration against the deadline (dashed)",
    )
    power_panel = scatter(
        power,
        pow_scale,
        pow_axis,
        f"{p}_budget",
        label(power).replace("(", "budget (") if "(" in label(power) else "Power budget",
        "... and against the power budget (dashed)",
    )
    params = [lat_slider.param, pow_slider.param, gpu_param] + [q for q in (deadline_param, budget_param) if q]
    chart = alt.vconcat(
        summary, alt.hconcat(bars_, text, spacing=4), alt.hconcat(frontier, power_panel, spacing=24), spacing=18
    ).add_params(*params)
    chart = chart.resolve_scale(color="shared")
    return chart.properties(title=title) if title else chart
