"""Charts of the book's study-wide pages: the batch effect over every published series, one run's timeline with
its steady window, predictions against measurements, and the planning chart.

Each takes the tidy table an analysis function returns (units in the column names) and follows the book's
conventions (:mod:`harness.report.charts`): human names in axes and tooltips, log axes whose ticks bracket the
data, a reference line or band where a ratio is read against one.

* :func:`batch_effect_chart` -- :func:`harness.analysis.takeaways.batch_effect_series`;
* :func:`timeline_chart` -- :class:`harness.analysis.timeline.RunTimeline`;
* :func:`predicted_vs_measured_chart` -- :func:`harness.analysis.predict.held_out_energy`;
* :func:`planning_chart` -- :func:`harness.analysis.predict.predict_series`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import altair as alt
import pandas as pd

from harness.report.charts.encoding import GPU_ORDER, log_ticks, tick_format
from harness.vocabulary import palette

PAGE_WIDTH = 760  # pixels: a chart as wide as the book's text column


_NICE = (1.0, 2.0, 3.0, 5.0)


def nice_log_bounds(low: float, high: float) -> tuple[float, float]:
    """``low`` rounded down and ``high`` rounded up to 1, 2, 3 or 5 times a power of ten, so that a log axis
    over them has a labelled tick at (or beyond) each end of the data."""

    def candidates(value: float) -> list[float]:
        k = math.floor(math.log10(value))
        return [m * 10.0**e for e in (k - 1, k, k + 1) for m in _NICE]

    return (
        max(c for c in candidates(low) if c <= low * (1 + 1e-9)),
        min(c for c in candidates(high) if c >= high * (1 - 1e-9)),
    )


def _log_axis(values: Iterable[float], title: str, *, pad: float = 1.15, extra: Iterable[float] = ()) -> tuple:
    """A log scale whose domain brackets ``values`` (and ``extra``) between labelled ticks: the domain runs from
    a round value below the data to one above it (``pad``: the least room left on either side, as a factor)."""
    data = [float(v) for v in [*values, *extra] if v is not None and float(v) > 0 and math.isfinite(float(v))]
    low, high = nice_log_bounds(min(data) / pad, max(data) * pad)
    ticks = sorted({*log_ticks(low, high), low, high})  # a labelled tick at each end, beyond the data
    return (
        alt.Scale(type="log", domain=[low, high], nice=False),
        alt.Axis(title=title, values=ticks, format=tick_format(low, high), grid=True),
    )


def batch_effect_chart(
    series: pd.DataFrame, band: Sequence[float] = (3.0, 5.0), width: int = PAGE_WIDTH
) -> alt.VConcatChart:
    """Every series' batch effect (energy per token at the smallest batch of at least 16 over that at the largest)
    on a log axis, one row per task, H100 above B200; the paper's 3-5x band shaded, its two series ringed, each
    row's median marked."""
    data = series.assign(
        batches=series["small_batch"].astype(int).astype(str) + " to " + series["large_batch"].astype(int).astype(str),
        gpus=series["num_gpus"].astype(int).astype(str) + " x " + series["gpu_model"].astype(str),
        jitter=[(i * 0.6180339887) % 1.0 for i in range(len(series))],
    )[["nickname", "task_name", "gpu_model", "gpus", "batches", "ratio", "paper_example", "jitter"]]
    scale, axis = _log_axis(
        data["ratio"],
        "Energy per token, smallest batch of at least 16 over the largest (x)",
        pad=1.1,
        extra=[1.0, *band],
    )
    order = list(dict.fromkeys(data.sort_values("task_name")["task_name"]))
    tips = [
        alt.Tooltip("nickname:N", title="Model"),
        alt.Tooltip("task_name:N", title="Task"),
        alt.Tooltip("gpus:N", title="GPUs"),
        alt.Tooltip("batches:N", title="Batch sizes"),
        alt.Tooltip("ratio:Q", title="Batch effect (x)", format=".2f"),
    ]
    panels = []
    for gpu in [g for g in GPU_ORDER if g in set(data["gpu_model"])] + sorted(set(data["gpu_model"]) - set(GPU_ORDER)):
        part = data[data["gpu_model"] == gpu]
        rows = alt.Y("task_name:N", title=None, sort=order, axis=alt.Axis(labelLimit=220))
        base = alt.Chart(part)
        shade = (
            alt.Chart(
                pd.DataFrame(
                    {"low": [band[0]], "high": [band[1]], "what": [f"the paper's {band[0]:g} to {band[1]:g}x"]}
                )
            )
            .mark_rect(color="#f2c14e", opacity=0.25)
            .encode(
                x=alt.X("low:Q", scale=scale, axis=axis), x2="high:Q", tooltip=[alt.Tooltip("what:N", title="Band")]
            )
        )
        one = (
            alt.Chart(pd.DataFrame({"x": [1.0]}))
            .mark_rule(color="#888", strokeDash=[3, 3])
            .encode(x=alt.X("x:Q", scale=scale, axis=axis))
        )
        dots = base.mark_point(filled=True, size=42, opacity=0.7, color="#4c78a8").encode(
            x=alt.X("ratio:Q", scale=scale, axis=axis),
            y=rows,
            yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-0.4, 1.4])),
            tooltip=tips,
        )
        ringed = (
            base.transform_filter("datum.paper_example")
            .mark_point(shape="circle", size=200, strokeWidth=2, color="#d62728", filled=False)
            .encode(
                x=alt.X("ratio:Q", scale=scale, axis=axis),
                y=rows,
                yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-0.4, 1.4])),
                tooltip=tips,
            )
        )
        medians = base.mark_tick(color="#222", thickness=2.5, size=26).encode(
            x=alt.X("median(ratio):Q", scale=scale, axis=axis),
            y=rows,
            tooltip=[
                alt.Tooltip("task_name:N", title="Task"),
                alt.Tooltip("median(ratio):Q", title="Median batch effect (x)", format=".2f"),
                alt.Tooltip("count():Q", title="Series"),
            ],
        )
        panels.append(
            alt.layer(shade, one, dots, medians, ringed).properties(
                width=width - 200,
                height=38 * max(1, part["task_name"].nunique()),
                title=alt.TitleParams(gpu, anchor="start", fontSize=13),
            )
        )
    return alt.vconcat(*panels, spacing=14).resolve_scale(x="shared")


def timeline_chart(timeline, width: int = PAGE_WIDTH) -> alt.VConcatChart:
    """One run's power, running requests and KV-cache use over time (one panel each, a shared time axis), with its
    steady window shaded; ``timeline`` is a :class:`harness.analysis.timeline.RunTimeline`."""
    frame = timeline.frame
    span = float(frame["time_since_start_s"].max()) if len(frame) else 1.0
    x_scale = alt.Scale(domain=[0, span], nice=False)
    window = None
    if timeline.steady_start_s is not None and timeline.steady_end_s is not None:
        window = pd.DataFrame(
            {
                "start": [timeline.steady_start_s],
                "end": [timeline.steady_end_s],
                "what": ["steady window: energy per token is measured here"],
            }
        )
    panels = []
    titles = list(dict.fromkeys(frame["metric_title"]))
    for i, title in enumerate(titles):
        part = frame[frame["metric_title"] == title]
        last = i == len(titles) - 1
        x = alt.X(
            "time_since_start_s:Q",
            scale=x_scale,
            axis=alt.Axis(title="Time since the run started (s)" if last else None),  # every panel labels its times
        )
        line = (
            alt.Chart(part)
            .mark_line(strokeWidth=1.6, color="#4c78a8", interpolate="step-after")
            .encode(
                x=x,
                y=alt.Y("value:Q", title=title, axis=alt.Axis(titleLimit=200)),
                tooltip=[
                    alt.Tooltip("time_since_start_s:Q", title="Time (s)", format=".1f"),
                    alt.Tooltip("value:Q", title=title, format=",.3~r"),
                ],
            )
        )
        layers = [line]
        if window is not None:
            layers.insert(
                0,
                alt.Chart(window)
                .mark_rect(color="#59a14f", opacity=0.15)
                .encode(x=alt.X("start:Q", scale=x_scale), x2="end:Q", tooltip=[alt.Tooltip("what:N", title="Window")]),
            )
        panels.append(alt.layer(*layers).properties(width=width - 120, height=110))
    return alt.vconcat(*panels, spacing=6).properties(title=alt.TitleParams(timeline.label, anchor="start"))


SPLIT_NAMES = {
    "batch": "Between measured batches",
    "gpu-count": "Another GPU count",
    "model": "Unseen model (facts only)",
    "transfer": "H100 to B200",
}
FAMILY_NAMES = {
    "chat": "Chat",
    "reasoning": "Reasoning",
    "code": "Code",
    "multimodal": "Image and video chat",
    "image": "Text to image",
    "video": "Text to video",
}
# One colour per task family on the prediction page (its two charts and its error bars use the same): each
# family takes its task's colour of the book's one visual system (harness.vocabulary.palette).
FAMILY_COLORS = {
    "Chat": palette.colour("lm-arena-chat"),
    "Reasoning": palette.colour("gpqa"),
    "Code": palette.colour("sourcegraph-fim"),
    "Image and video chat": palette.colour("image-chat"),
    "Text to image": palette.colour("text-to-image"),
    "Text to video": palette.colour("text-to-video"),
}


def family_scale() -> alt.Scale:
    """The fixed colour of each task family (:data:`FAMILY_COLORS`)."""
    return alt.Scale(domain=list(FAMILY_COLORS), range=list(FAMILY_COLORS.values()))


def predicted_vs_measured_chart(
    points: pd.DataFrame, kind: str = "llm", columns: int = 2, width: int = PAGE_WIDTH
) -> alt.FacetChart | alt.LayerChart:
    """Held-out predictions against measurements, one panel per split, log-log, with the line of perfect
    prediction and lines at a factor 1.25 either side (``points``: :func:`harness.analysis.predict.held_out_energy`;
    ``kind``: "llm" (J per token) or "diffusion" (J per image or video))."""
    part = points[points["kind"] == kind]
    data = pd.DataFrame(
        {
            "split_name": part["split"].map(SPLIT_NAMES).fillna(part["split"]),
            "family_name": part["family"].map(FAMILY_NAMES).fillna(part["family"]),
            "measured": part["actual"].astype(float).map(lambda v: float(f"{v:.4g}")),
            "predicted": part["predicted"].astype(float).map(lambda v: float(f"{v:.4g}")),
            "error": (part["predicted"] / part["actual"] - 1).astype(float).round(4),
        }
    )
    unit = "J per token" if kind == "llm" else "J per image or video"
    scale, axis = _log_axis(pd.concat([data["measured"], data["predicted"]]), f"Predicted energy ({unit})", pad=1.2)
    _, y_axis = _log_axis(pd.concat([data["measured"], data["predicted"]]), f"Measured energy ({unit})", pad=1.2)
    low, high = scale.domain
    guide = pd.DataFrame(
        [
            {"x": low, "y": low * f, "line": name}
            for f, name in ((1.0, "perfect"), (1.25, "25% under"), (1 / 1.25, "25% over"))
        ]
        + [
            {"x": high, "y": high * f, "line": name}
            for f, name in ((1.0, "perfect"), (1.25, "25% under"), (1 / 1.25, "25% over"))
        ]
    )
    order = [s for s in SPLIT_NAMES.values() if s in set(data["split_name"])]
    families = [f for f in FAMILY_NAMES.values() if f in set(data["family_name"])]
    dots = (
        alt.Chart()
        .mark_point(filled=True, size=14, opacity=0.45)
        .encode(
            x=alt.X("predicted:Q", scale=scale, axis=axis),
            y=alt.Y("measured:Q", scale=scale, axis=y_axis),
            color=alt.Color(
                "family_name:N",
                title="Tasks",
                scale=family_scale(),
                legend=alt.Legend(orient="bottom", values=families),
            ),
            tooltip=[
                alt.Tooltip("family_name:N", title="Tasks"),
                alt.Tooltip("split_name:N", title="Held out"),
                alt.Tooltip("measured:Q", title=f"Measured ({unit})", format=".3~r"),
                alt.Tooltip("predicted:Q", title=f"Predicted ({unit})", format=".3~r"),
                alt.Tooltip("error:Q", title="Error (%)", format="+.1%"),
            ],
        )
    )
    lines = (
        alt.Chart(guide)
        .mark_line(color="#555", strokeWidth=1, clip=True)
        .encode(
            x=alt.X("x:Q", scale=scale),
            y=alt.Y("y:Q", scale=scale),
            detail="line:N",
            strokeDash=alt.condition("datum.line == 'perfect'", alt.value([1, 0]), alt.value([4, 3])),
        )
    )
    size = (width - 120) // columns
    return (
        alt.layer(lines, dots, data=data)
        .properties(width=size, height=size)
        .facet(
            facet=alt.Facet(
                "split_name:N",
                sort=order,
                title=None,
                header=alt.Header(labelFontWeight="bold", labelFontSize=12, labelAnchor="start"),
            ),
            columns=columns,
        )
    )


def planning_chart(
    pred: pd.DataFrame, itl_targets_ms: Iterable[float], title: str, width: int = PAGE_WIDTH
) -> alt.LayerChart | alt.FacetChart:
    """Predicted energy per response against median ITL (a line over the batches, with 80% intervals), each
    batch's measurement beside its prediction (a thin line joins the pair), and the ITL targets labelled."""
    data = pd.DataFrame(
        {
            "batch": pred["max_num_seqs"].astype(int),
            "e": pred["energy_per_request_joules"],
            "e_lo": pred["energy_per_request_joules_low"],
            "e_hi": pred["energy_per_request_joules_high"],
            "t": pred["median_itl_ms"],
            "m_e": pred["measured_energy_per_request_joules"],
            "m_t": pred["measured_median_itl_ms"],
            "p": pred["avg_power_watts"],
        }
    )
    targets = [float(t) for t in itl_targets_ms]
    x_scale, x_axis = _log_axis(
        pd.concat([data["t"], data["m_t"]]), "Median inter-token latency (ms)", pad=1.2, extra=targets
    )
    y_scale, y_axis = _log_axis(
        pd.concat([data["e_lo"], data["e_hi"], data["m_e"]]), "Energy per response (J)", pad=1.2
    )
    tips = [
        alt.Tooltip("batch:Q", title="Batch size", format=",.0f"),
        alt.Tooltip("e:Q", title="Predicted energy per response (J)", format=",.0f"),
        alt.Tooltip("e_lo:Q", title="80% interval, low (J)", format=",.0f"),
        alt.Tooltip("e_hi:Q", title="80% interval, high (J)", format=",.0f"),
        alt.Tooltip("t:Q", title="Predicted median ITL (ms)", format=",.1f"),
        alt.Tooltip("p:Q", title="Predicted average power (W)", format=",.0f"),
        alt.Tooltip("m_e:Q", title="Measured energy per response (J)", format=",.0f"),
        alt.Tooltip("m_t:Q", title="Measured median ITL (ms)", format=",.1f"),
    ]
    x = alt.X("t:Q", scale=x_scale, axis=x_axis)
    base = alt.Chart(data)
    pair = base.mark_rule(color="#999", strokeWidth=1, strokeDash=[2, 2]).encode(  # prediction -> measurement
        x=x, x2="m_t:Q", y=alt.Y("e:Q", scale=y_scale, axis=y_axis), y2="m_e:Q", tooltip=tips
    )
    band = base.mark_rule(strokeWidth=2, opacity=0.5, color="#4c78a8").encode(
        x=x, y=alt.Y("e_lo:Q", scale=y_scale, axis=y_axis), y2="e_hi:Q", tooltip=tips
    )
    predicted = base.mark_line(point=alt.OverlayMarkDef(size=40, color="#4c78a8"), color="#4c78a8").encode(
        x=x, y=alt.Y("e:Q", scale=y_scale, axis=y_axis), order="batch:Q", tooltip=tips
    )
    labels = base.mark_text(dx=8, dy=-6, fontSize=10, align="left", color="#4c78a8").encode(
        x=x, y=alt.Y("e:Q", scale=y_scale, axis=y_axis), text=alt.Text("batch:Q", format=",.0f")
    )
    measured = base.mark_point(shape="diamond", size=70, filled=True, color="#e45756").encode(
        x=alt.X("m_t:Q", scale=x_scale, axis=x_axis), y=alt.Y("m_e:Q", scale=y_scale, axis=y_axis), tooltip=tips
    )
    target_data = pd.DataFrame({"target": targets, "label": [f"{t:g} ms target" for t in targets]})
    rules = (
        alt.Chart(target_data)
        .mark_rule(strokeDash=[5, 4], color="#777")
        .encode(
            x=alt.X("target:Q", scale=x_scale, axis=x_axis), tooltip=[alt.Tooltip("target:Q", title="ITL target (ms)")]
        )
    )
    rule_labels = (
        alt.Chart(target_data)
        .mark_text(angle=270, align="right", baseline="bottom", dx=-4, dy=-3, fontSize=10, color="#555")
        .encode(x=alt.X("target:Q", scale=x_scale, axis=x_axis), y=alt.value(0), text="label:N")
    )
    return alt.layer(rules, rule_labels, pair, band, predicted, labels, measured).properties(
        width=width - 140, height=360, title=alt.TitleParams(title, anchor="start")
    )
