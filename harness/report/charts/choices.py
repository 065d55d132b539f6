"""Choices a reader makes in the page: a deadline, a power budget, a GPU, a highlighted model (no server)."""

from __future__ import annotations

import json
import re

import altair as alt

from harness.report.charts import encoding as enc
from harness.vocabulary.labels import label, unit


def _param_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


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
    width: int = 250,
    row_height: int = 22,
    name: str = "choice",
) -> alt.VConcatChart:
    """The lowest-energy configuration of each model within limits the reader sets, offline.

    Three controls under the chart, all Vega parameters (no server): a slider for the
    ``latency`` deadline (e.g. median ITL), a slider for the ``power`` budget, and a
    GPU toggle. Left: each model's cheapest configuration that meets both limits on
    the chosen GPU (a model with none disappears), with the configuration written
    beside its bar. Below: every configuration on that GPU, latency against energy,
    the deadline drawn as a dashed line and the chosen configurations ringed; those
    outside the limits are drawn small. Clicking a model in the legend highlights it.
    """
    import math

    enc.require(frame, latency, energy, power, model, gpu, "batch_size")
    cols = enc.present_columns(frame, [model, gpu, latency, energy, power, "batch_size", "num_gpus", "gpu",
                                       *enc.CONTEXT_FIELDS])
    data = enc.chart_data(frame, cols, [latency, energy, power]).dropna(subset=[model, gpu])
    if data.empty:
        from harness.errors import HarnessError

        raise HarnessError(f"no rows with positive {latency}, {energy} and {power} to choose from")
    where = data["gpu"] if "gpu" in data.columns else data[gpu]
    data = data.assign(configuration=[
        f"batch {b:,.0f}, {g}, {t:,.3g} {unit(latency) or ''}".strip()
        for b, g, t in zip(data["batch_size"], where, data[latency], strict=False)])
    gpus = [g for g in enc.GPU_ORDER if g in set(data[gpu])] + sorted(set(data[gpu]) - set(enc.GPU_ORDER))
    lat_lo, lat_hi = float(data[latency].min()), float(data[latency].max())
    pow_lo, pow_hi = float(data[power].min()), float(data[power].max())
    if deadline is None or not lat_lo <= deadline <= lat_hi:
        deadline = lat_hi
    p = _param_name(name)
    step = 10.0 ** math.floor(math.log10((lat_hi - lat_lo) / 100)) if lat_hi > lat_lo else 1.0
    step = min(step, 1.0)

    def snap(v: float, up: bool) -> float:
        return float(f"{(math.ceil(v / step) if up else math.floor(v / step)) * step:.12g}")

    deadline_param = alt.param(name=f"{p}_deadline", value=snap(deadline, True), bind=alt.binding_range(
        min=snap(lat_lo, False), max=snap(lat_hi, True), step=step, name=f"{label(latency)} at most "))
    budget_param = alt.param(name=f"{p}_budget", value=float(math.ceil(pow_hi)), bind=alt.binding_range(
        min=math.floor(pow_lo), max=math.ceil(pow_hi), step=10, name=f"{label(power)} at most "))
    gpu_param = alt.param(name=f"{p}_gpu", value=gpus[-1], bind=alt.binding_radio(options=gpus, name="GPU "))
    highlight = alt.selection_point(name=f"{p}_model", fields=[model], bind="legend")
    on_gpu = f"datum[{json.dumps(gpu)}] == {p}_gpu"
    within = (f"datum[{json.dumps(latency)}] <= {p}_deadline && datum[{json.dumps(power)}] <= {p}_budget")
    e_lo, e_hi = float(data[energy].min()), float(data[energy].max())
    base_e = 10.0 ** math.floor(math.log10(e_lo) - 1e-9)
    top_e = e_hi * 1.15
    e_scale = alt.Scale(type="log", domain=[base_e, top_e], nice=False)
    e_axis = alt.Axis(values=enc.log_ticks(base_e, top_e), format=enc.tick_format(base_e, top_e))
    tips = enc.tooltips(data, energy, latency, power, extra=["configuration"])
    order = alt.EncodingSortField(energy, op="min", order="ascending")
    n_models = max(1, data[model].nunique())
    model_color = alt.Color(f"{model}:N", title=enc.CONTEXT_FIELDS.get(model, label(model)),
                            scale=alt.Scale(scheme="tableau20") if n_models > 10 else alt.Undefined,
                            legend=alt.Legend(orient="bottom", columns=3, title="Model (click to highlight)",
                                              symbolLimit=0, labelLimit=200))

    chosen = (alt.Chart(data).transform_filter(on_gpu).transform_filter(within)
              .transform_window(rank="row_number()", sort=[alt.SortField(energy, order="ascending")], groupby=[model])
              .transform_filter("datum.rank == 1"))
    bars_ = chosen.mark_bar().encode(
        x=alt.X(f"{energy}:Q", title=label(energy), scale=e_scale, axis=e_axis), x2=alt.datum(base_e),
        y=alt.Y(f"{model}:N", title=None, sort=order),
        color=model_color,
        opacity=alt.condition(highlight, alt.value(0.9), alt.value(0.2)),
        tooltip=tips,
    ).properties(width=width, height=row_height * n_models,
                 title=alt.TitleParams("Cheapest configuration within the limits", fontSize=12))
    text = chosen.mark_text(align="left", fontSize=11).encode(
        x=alt.value(4), y=alt.Y(f"{model}:N", sort=order, axis=None), text="configuration:N", tooltip=tips,
    ).properties(width=170, height=row_height * n_models, view=alt.ViewBackground(stroke=None),
                 title=alt.TitleParams("Chosen configuration", fontSize=12))

    everything = alt.Chart(data).transform_filter(on_gpu)
    lat_scale = alt.Scale(type="log", nice=False, padding=12)
    lat_axis = alt.Axis(values=enc.log_ticks(lat_lo, lat_hi), format=enc.tick_format(lat_lo, lat_hi))
    e_axis_all = alt.Axis(values=enc.log_ticks(e_lo, e_hi), format=enc.tick_format(e_lo, e_hi))
    scatter = everything.mark_point().encode(
        x=alt.X(f"{latency}:Q", title=label(latency), scale=lat_scale, axis=lat_axis),
        y=alt.Y(f"{energy}:Q", title=label(energy), scale=alt.Scale(type="log", nice=False, padding=12), axis=e_axis_all),
        color=model_color,
        opacity=alt.condition(highlight, alt.value(0.85), alt.value(0.08)),
        size=alt.condition(within, alt.value(45), alt.value(10)),
        tooltip=tips,
    ).add_params(highlight)
    rings = chosen.mark_point(shape="diamond", size=150, filled=False, color="#222", strokeWidth=1.5).encode(
        x=alt.X(f"{latency}:Q", scale=lat_scale), y=alt.Y(f"{energy}:Q"), tooltip=tips)
    import pandas as pd

    rule = (alt.Chart(pd.DataFrame({"_": [0]})).transform_calculate(limit=f"{p}_deadline")
            .mark_rule(strokeDash=[5, 3], color="#b2182b", strokeWidth=1.5)
            .encode(x=alt.X("limit:Q", scale=lat_scale),
                    tooltip=[alt.Tooltip("limit:Q", title=label(latency).replace("(", "deadline ("), format=",.0f")]))
    frontier = alt.layer(scatter, rings, rule).properties(
        width=width + 170, height=260, title=alt.TitleParams("Every configuration; the dashed line is the deadline", fontSize=12))
    chart = alt.vconcat(alt.hconcat(bars_, text, spacing=4), frontier, spacing=24).add_params(
        deadline_param, budget_param, gpu_param)
    chart = chart.resolve_scale(color="shared")
    return chart.properties(title=title) if title else chart
