"""Shares of two or more distributions on the same bins, so that their bars compare (e.g. output lengths).

Published histograms come with their own bin edges (chat answers in bins of about 80 tokens, reasoning answers
in bins of about 640). :func:`rebin` moves counts onto common edges, assuming the values spread evenly inside a
published bin; :func:`histogram` draws each group's shares as bars from zero on those edges (log-spaced by
default, so a tenfold gap shows as a shift of one decade), one panel per group, the mean marked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise

import altair as alt

from harness.report.charts import encoding as enc


def log_edges(low: float, high: float, per_decade: int = 6) -> list[float]:
    """Bin edges evenly spaced on a log scale, ``per_decade`` bins a decade, covering [low, high]."""
    if not (0 < low < high):
        raise ValueError(f"log bins need 0 < low < high, not {low} and {high}")
    first = math.floor(math.log10(low) * per_decade)
    last = math.ceil(math.log10(high) * per_decade)
    return [float(f"{10.0 ** (k / per_decade):.6g}") for k in range(first, last + 1)]


def linear_edges(high: float, width: float, low: float = 0.0) -> list[float]:
    """Bin edges ``width`` apart from ``low`` to the first edge at or above ``high``."""
    n = max(1, math.ceil((high - low) / width))
    return [float(f"{low + k * width:.12g}") for k in range(n + 1)]


def rebin(edges: Sequence[float], counts: Sequence[float], new_edges: Sequence[float]) -> list[float]:
    """``counts`` over bins ``edges`` moved onto ``new_edges``: each old bin's count is split in proportion to
    its overlap with each new bin (values spread evenly inside an old bin). The total is kept where the new
    edges cover the old ones."""
    out = [0.0] * (len(new_edges) - 1)
    for (lo, hi), n in zip(pairwise(edges), counts, strict=False):
        width = hi - lo
        if n == 0 or width <= 0:
            continue
        for j, (a, b) in enumerate(pairwise(new_edges)):
            overlap = min(hi, b) - max(lo, a)
            if overlap > 0:
                out[j] += n * overlap / width
    return out


def rebin_frame(
    distributions: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    edges: Sequence[float] | None = None,
    *,
    group: str = "group",
    per_decade: int = 6,
):
    """One row per group and common bin: ``group``, ``bin_from``, ``bin_to``, ``count`` and ``share`` (of the
    group's total). ``distributions``: group -> (edges, counts); ``edges``: the common edges (default: log-spaced
    over all groups' ranges)."""
    import pandas as pd

    if edges is None:
        low = min(float(e[0]) for e, _ in distributions.values())
        high = max(float(e[-1]) for e, _ in distributions.values())
        edges = log_edges(max(low, 1e-9), high, per_decade)
    rows = []
    for name, (old_edges, counts) in distributions.items():
        moved = rebin(old_edges, counts, edges)
        total = sum(moved) or 1.0
        rows += [
            {group: name, "bin_from": a, "bin_to": b, "count": n, "share": n / total}
            for (a, b), n in zip(pairwise(edges), moved, strict=False)
        ]
    return pd.DataFrame(rows)


def mean_from_bins(frame, group: str = "group"):
    """Each group's mean, from its bins' midpoints weighted by share."""
    mid = (frame["bin_from"] + frame["bin_to"]) / 2
    return frame.assign(weighted=mid * frame["share"]).groupby(group, sort=False)["weighted"].sum()


def histogram(
    frame,
    *,
    group: str = "group",
    value_title: str = "Value",
    share_title: str = "Share",
    log_x: bool = True,
    title: str | None = None,
    width: int | None = None,
    height: int = 150,
    means: Mapping[str, float] | None = None,
    unit: str = "",
    min_share: float = 0.005,
) -> alt.FacetChart:
    """Bars of each group's shares on the common bins of ``frame`` (from :func:`rebin_frame`), y from zero.

    One panel per group, stacked, the same x axis (log by default) and the same y axis, so that shares compare
    bin by bin; each group in its fixed colour (:mod:`harness.vocabulary.palette`: a task keeps its colour);
    ``means``: group -> value, drawn as a dashed rule and named in its tooltip. Bins holding less than
    ``min_share`` of their group (too short to see) are left out; say so where the chart is shown."""
    import pandas as pd

    data = frame[frame["share"] >= min_share].copy()
    width = width or enc.plot_width(1)
    shown = frame[frame["share"] > 0]  # the axis spans every bin with a response, drawn or too short to draw
    low, high = float(shown["bin_from"].min()), float(shown["bin_to"].max())
    if log_x:
        domain, ticks = enc.log_domain(low, high, max_ticks=max(3, width // 55))
        x_scale = alt.Scale(type="log", domain=domain, nice=False)
        x_axis = alt.Axis(values=ticks, format=enc.tick_format(*domain), labelOverlap=False)
    else:
        x_scale = alt.Scale(domain=[min(0.0, low), high], nice=False)
        x_axis = alt.Axis(values=enc.linear_ticks(min(0.0, low), high, 3), format=",.0f", labelOverlap="greedy")
    tooltip = [
        alt.Tooltip(f"{group}:N", title="Group" if group == "group" else group.replace("_", " ").capitalize()),
        alt.Tooltip("bin_from:Q", title=f"From{f' ({unit})' if unit else ''}", format=",.0f"),
        alt.Tooltip("bin_to:Q", title=f"To{f' ({unit})' if unit else ''}", format=",.0f"),
        alt.Tooltip("share:Q", title=share_title, format=".1%"),
    ]
    color = alt.Color(f"{group}:N", title=None, scale=enc.color_scale(data[group].tolist()), legend=None)
    bars = (
        alt.Chart()
        .mark_bar(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("bin_from:Q", title=value_title, scale=x_scale, axis=x_axis),
            x2="bin_to:Q",
            y=alt.Y("share:Q", title=share_title, scale=alt.Scale(zero=True, nice=True), axis=alt.Axis(format="%")),
            y2=alt.datum(0),
            color=color,
            tooltip=tooltip,
        )
    )
    layers = [bars]
    if means:
        data = data.merge(pd.DataFrame({group: list(means), "mean_value": list(means.values())}), on=group, how="left")
        layers.append(
            alt.Chart()
            .transform_aggregate(mean_value="max(mean_value)", groupby=[group])
            .mark_rule(strokeDash=[5, 3], color="#222", strokeWidth=1.5)
            .encode(
                x=alt.X("mean_value:Q", scale=x_scale),
                tooltip=[
                    alt.Tooltip(
                        f"{group}:N", title="Group" if group == "group" else group.replace("_", " ").capitalize()
                    ),
                    alt.Tooltip("mean_value:Q", title=f"Mean{f' ({unit})' if unit else ''}", format=",.0f"),
                ],
            )
        )
    order = list(dict.fromkeys(frame[group]))
    chart = (
        alt.layer(*layers, data=data)
        .properties(width=width, height=height)
        .facet(
            row=alt.Row(
                f"{group}:N",
                sort=order,
                title=None,
                header=alt.Header(
                    labelAngle=0,
                    labelAlign="left",
                    labelAnchor="start",
                    labelOrient="top",
                    labelFontWeight="bold",
                    labelFontSize=12,
                ),
            )
        )
    )
    chart = chart.resolve_scale(y="shared")
    return chart.properties(title=title) if title else chart
