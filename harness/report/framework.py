"""The study's framework drawn as a Vega-Lite graph (the data and layout come from
:func:`harness.analysis.findings.framework.framework_graph`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.analysis.findings.framework import framework_graph

if TYPE_CHECKING:
    import altair as alt

    from harness.analysis.findings.record import Finding


def framework_chart(found: list[Finding] | None = None, width: int = 590, height: int = 470) -> alt.LayerChart:
    """The causal picture as a Vega-Lite graph: layers -> latent metrics -> end metrics; ``width`` and ``height``
    in pixels. ``found`` (the recomputed findings) fills each edge's tooltip with its evidence."""
    import altair as alt

    nodes, edges = framework_graph(found)
    xs = alt.Scale(domain=[-0.45, 2.6])
    ys = alt.Scale(domain=[float(nodes["y"].max()) + 0.6, -0.4])
    layer_colors = alt.Scale(
        domain=["algorithm", "software", "hardware", "latent", "end"],
        range=["#1b9e77", "#7570b3", "#d95f02", "#e7298a", "#444444"],
    )
    lines = (
        alt.Chart(edges)
        .mark_rule(opacity=0.35, strokeWidth=1.6)
        .encode(
            x=alt.X("x:Q", scale=xs, axis=None),
            y=alt.Y("y:Q", scale=ys, axis=None),
            x2="x2:Q",
            y2="y2:Q",
            tooltip=[
                alt.Tooltip("edge:N", title="edge"),
                alt.Tooltip("mechanism:N"),
                alt.Tooltip("finding:N", title="evidence (finding)"),
                alt.Tooltip("evidence:N", title="what the data say"),
            ],
        )
    )
    # arrowheads: a triangle turned along its edge in screen space (y grows downwards)
    span_x, span_y = xs.domain[1] - xs.domain[0], ys.domain[0] - ys.domain[1]
    dx_px = (edges["x2"] - edges["x"]) * width / span_x
    dy_px = (edges["y2"] - edges["y"]) * height / span_y
    edges["angle"] = np.degrees(np.arctan2(dy_px, dx_px)) % 360
    frac = (1 - 16 / np.hypot(dx_px, dy_px)).clip(lower=0.5)  # just outside the target's circle
    edges["ax"] = edges["x"] + frac * (edges["x2"] - edges["x"])
    edges["ay"] = edges["y"] + frac * (edges["y2"] - edges["y"])
    arrows = (
        alt.Chart(edges)
        .mark_point(shape="triangle-right", filled=True, size=60, opacity=0.6, color="#555")
        .encode(
            x=alt.X("ax:Q", scale=xs, axis=None),
            y=alt.Y("ay:Q", scale=ys, axis=None),
            angle=alt.Angle("angle:Q", scale=None),
            tooltip=[
                alt.Tooltip("edge:N", title="edge"),
                alt.Tooltip("mechanism:N"),
                alt.Tooltip("finding:N", title="evidence (finding)"),
            ],
        )
    )
    dots = (
        alt.Chart(nodes)
        .mark_circle(size=260, opacity=1)
        .encode(
            x=alt.X("x:Q", scale=xs, axis=None),
            y=alt.Y("y:Q", scale=ys, axis=None),
            color=alt.Color("layer:N", scale=layer_colors, title="layer", legend=alt.Legend(orient="bottom")),
            tooltip=[alt.Tooltip("label:N", title="node"), alt.Tooltip("layer:N"), alt.Tooltip("description:N")],
        )
    )
    text = (
        alt.Chart(nodes)
        .mark_text(dy=-14, fontSize=11)
        .encode(
            x=alt.X("x:Q", scale=xs, axis=None),
            y=alt.Y("y:Q", scale=ys, axis=None),
            text="label:N",
            tooltip=[alt.Tooltip("label:N", title="node"), alt.Tooltip("description:N")],
        )
    )
    heads = pd.DataFrame(
        {
            "x": [0.0, 1.0, 2.0],
            "y": [-0.3] * 3,
            "title": ["Algorithm, software, hardware", "Latent metrics", "End metrics"],
        }
    )
    header = (
        alt.Chart(heads)
        .mark_text(fontSize=13, fontWeight="bold")
        .encode(
            x=alt.X("x:Q", scale=xs, axis=None),
            y=alt.Y("y:Q", scale=ys, axis=None),
            text="title:N",
            tooltip=[alt.Tooltip("title:N", title="column")],
        )
    )
    return (
        alt.layer(lines, arrows, dots, text, header).properties(width=width, height=height).configure_view(stroke=None)
    )
