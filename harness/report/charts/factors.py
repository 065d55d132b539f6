"""The energy ratio of two configurations as a product of factors, drawn and read in words."""

from __future__ import annotations

from typing import TYPE_CHECKING

import altair as alt

from harness.report.charts import encoding as enc
from harness.vocabulary.labels import label

if TYPE_CHECKING:
    from harness.analysis.tables import Attribution


def change_words(ratio: float, *, same_within: float = 0.005) -> str:
    """How a quantity moved from A to B, in words: ``"rose 3.2x"``, ``"fell 28x"``, ``"same"``."""
    import math

    if not (ratio > 0 and math.isfinite(ratio)):
        return "n/a"
    if abs(math.log(ratio)) < same_within:
        return "same"
    return f"rose {ratio:.3g}x" if ratio > 1 else f"fell {1 / ratio:.3g}x"


def energy_effect_words(ratio: float, *, same_within: float = 0.005) -> str:
    """A factor's effect on the energy ratio: ``"energy x3.2"``, ``"energy ÷28"``, ``"no effect"``."""
    import math

    if not (ratio > 0 and math.isfinite(ratio)):
        return "n/a"
    if abs(math.log(ratio)) < same_within:
        return "no effect"
    return f"energy x{ratio:.3g}" if ratio > 1 else f"energy ÷{1 / ratio:.3g}"


def factor_chart(att: Attribution, title: str | None = None, width: int = 240) -> alt.HConcatChart:
    """The energy ratio B / A of an attribution as a product of factors, read plainly.

    One bar per factor on a log axis around 1 (red raises B's energy, blue lowers it),
    then the total. Beside each bar, two columns in words: how the quantity itself
    moved from A to B ("fell 28x": for the token rate, a fall raises the energy) and
    its effect on the energy ("energy x28"). A factor too close to 1 for a visible bar
    is drawn as a tick at 1. Hover for the values and units of A and B.
    """
    import math

    import numpy as np
    import pandas as pd

    frame = att.to_frame()
    frame = frame[(frame["name"] != "measurement residual") | ((frame["ratio"] - 1).abs() > 1e-6)].copy()
    total = pd.DataFrame([{"name": "= energy ratio B / A", "ratio": att.ratio, "value_a": att.energy_a,
                           "value_b": att.energy_b, "unit": label(att.energy_column),
                           "meaning": "the product of the factors above"}])
    frame = pd.concat([frame, total], ignore_index=True)
    frame["a"], frame["b"] = att.label_a, att.label_b
    quantity = []
    for _, row in frame.iterrows():
        va, vb = row.get("value_a"), row.get("value_b")
        known = all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (va, vb))
        quantity.append(vb / va if known else row["ratio"])
    frame["quantity_ratio"] = quantity
    frame["change"] = [change_words(q) for q in frame["quantity_ratio"]]
    frame["effect"] = [energy_effect_words(r) for r in frame["ratio"]]
    lo, hi = float(frame["ratio"].min()), float(frame["ratio"].max())
    domain = [min(lo, 1 / max(hi, 1.0001), 0.5) / 1.3, max(hi, 1 / min(lo, 0.9999), 2.0) * 1.3]
    px_per_log = width / (math.log(domain[1]) - math.log(domain[0]))
    # a factor whose bar would be under 2 px wide is drawn as a tick at 1
    frame["flat"] = np.abs(np.log(frame["ratio"].astype(float))) * px_per_log < 2
    frame["direction"] = np.where(frame["name"].str.startswith("="), "total",
                                  np.where(frame["effect"] == "no effect", "no effect",
                                           np.where(frame["ratio"] >= 1, "raises B's energy", "lowers B's energy")))
    order = frame["name"].tolist()
    height = 24 * len(frame)
    y = alt.Y("name:N", sort=order, title=None)
    tooltip = [alt.Tooltip("name:N", title="Factor"), alt.Tooltip("change:N", title="B against A"),
               alt.Tooltip("effect:N", title="Effect on energy"),
               alt.Tooltip("ratio:Q", title="Factor (B / A, energy)", format=",.3~r"),
               alt.Tooltip("value_a:Q", title="A", format=",.4~r"), alt.Tooltip("value_b:Q", title="B", format=",.4~r"),
               alt.Tooltip("unit:N", title="Unit"), alt.Tooltip("a:N", title="A (model, task, GPU, batch)"),
               alt.Tooltip("b:N", title="B (model, task, GPU, batch)"), alt.Tooltip("meaning:N", title="Why")]
    colors = alt.Color("direction:N", title=None, legend=alt.Legend(orient="bottom", columns=2),
                       scale=alt.Scale(domain=["raises B's energy", "lowers B's energy", "no effect", "total"],
                                       range=["#d6604d", "#4393c3", "#999999", "#555555"]))
    x = alt.X("ratio:Q", scale=alt.Scale(type="log", domain=domain, nice=False),
              title="Factor on the energy (B / A, log scale)",
              axis=alt.Axis(values=enc.log_ticks(domain[0], domain[1]), format="~g", labelOverlap="greedy"))
    base = alt.Chart(frame, width=width, height=height)
    bars = base.transform_filter("!datum.flat").mark_bar().encode(y=y, x=x, x2=alt.datum(1), color=colors,
                                                                   tooltip=tooltip)
    ticks = base.transform_filter("datum.flat").mark_tick(thickness=3, size=16).encode(y=y, x=x, color=colors,
                                                                                      tooltip=tooltip)
    rule = alt.Chart(pd.DataFrame({"one": [1.0]})).mark_rule(color="#333").encode(
        x=alt.X("one:Q", scale=alt.Scale(type="log", domain=domain, nice=False)),
        tooltip=[alt.Tooltip("one:Q", title="No change (factor 1)")])
    plot = alt.layer(bars, ticks, rule)

    def column(field: str, heading: str, w: int):
        return alt.Chart(frame, width=w, height=height, view=alt.ViewBackground(stroke=None),
                         title=alt.TitleParams(heading, fontSize=11, anchor="start")).mark_text(
            align="left", fontSize=11).encode(x=alt.value(2), y=alt.Y("name:N", sort=order, axis=None),
                                              text=f"{field}:N", tooltip=tooltip)

    heading = alt.TitleParams(text=title or "Energy ratio B / A as a product of factors",
                              subtitle=[f"A = {att.label_a}", f"B = {att.label_b}"])
    chart = alt.hconcat(plot, column("change", "B against A", 82), column("effect", "On the energy", 92), spacing=8)
    return chart.resolve_scale(color="independent").properties(title=heading)
