"""The energy ratio of two configurations as a causal chain of factors, drawn and read in words.

An :class:`~harness.analysis.tables.Attribution` splits energy per output B / A exactly into factors. Two of
them, read alone, cancel each other: for a language model the number of requests running together and the
token rate of each (a bigger batch runs more requests, each more slowly), for a diffusion model the batch size
and the batch's time per unit of work. The chart therefore reads the split as a chain, knob -> latent metric
-> time and power -> energy (:func:`causal_chain`): the batch reached is shown as the latent metric it is (no
factor of its own), and what it does to time is one factor, the throughput (tokens per second; for diffusion
the work done per second). The other factors are the work per output (output length; steps, pixels, frames)
and the average power. Their product is still exactly the energy ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import altair as alt

from harness.report.charts import encoding as enc
from harness.vocabulary.labels import label

if TYPE_CHECKING:
    from harness.analysis.tables import Attribution

# An attribution's factor names (harness.analysis.tables.attribute) that the chain merges.
_LLM_RATE, _LLM_CONCURRENCY = "token rate per running request", "concurrency reached"
_DIFF_BATCH, _DIFF_TIME = "batch size", "batch time per unit of work"
THROUGHPUT = "throughput"
WORK_RATE = "work done per second"
_WORK_TERMS = ("denoising steps", "pixels per frame", "frames")


@dataclass(frozen=True)
class Latent:
    """A latent metric of the chain: moved by the knob, acting on energy only through the factors after it."""

    name: str
    value_a: float
    value_b: float
    unit: str
    meaning: str

    @property
    def ratio(self) -> float:
        """B over A."""
        return self.value_b / self.value_a if self.value_a else float("nan")


def causal_chain(att: Attribution) -> tuple[Attribution, tuple[Latent, ...]]:
    """``att`` with the factors that cancel merged into one, and the latent metric they hid.

    Language models: *requests running* (the batch reached) becomes a latent metric and *token rate per running
    request* x *concurrency reached* one factor, the throughput (tokens/s of all requests; inverse: more
    throughput, less energy). Diffusion: *batch size* becomes a latent metric and *batch size* x *batch time per
    unit of work* one factor, the work done per second. The product of the factors is unchanged. An attribution
    without those factors comes back as it is, with no latent metric."""
    names = [f.name for f in att.factors]
    pair = (_LLM_RATE, _LLM_CONCURRENCY) if att.kind == "llm" else (_DIFF_BATCH, _DIFF_TIME)
    if not all(n in names for n in pair):
        return att, ()
    first, second = (next(f for f in att.factors if f.name == n) for n in pair)
    from harness.analysis.tables import Factor

    def v(x: float | None) -> float:
        return float("nan") if x is None else float(x)

    if att.kind == "llm":
        rate, running = first, second
        latent = Latent(
            "requests running",
            v(running.value_a),
            v(running.value_b),
            "requests (mean)",
            "the batch the knob and memory allowed",
        )
        merged = Factor(
            THROUGHPUT,
            rate.ratio * running.ratio,
            v(rate.value_a) * v(running.value_a),
            v(rate.value_b) * v(running.value_b),
            "tokens/s, all requests (inverse)",
            "more tokens per second share the same power draw; a bigger batch raises it, though each "
            "request decodes more slowly",
        )
    else:
        batch, time = first, second
        latent = Latent(
            "batch size", v(batch.value_a), v(batch.value_b), "outputs per batch", "outputs generated together"
        )
        # work per second = batch / (time per billion step-pixel-frames), here in millions per second
        merged = Factor(
            WORK_RATE,
            batch.ratio * time.ratio,
            1e3 * v(batch.value_a) / v(time.value_a),
            1e3 * v(batch.value_b) / v(time.value_b),
            "million step-pixel-frames per second (inverse)",
            "how much denoising work the GPUs finish per second: batch size, parallelism, model size and GPU speed",
        )
    at = names.index(pair[0])
    factors = [f for f in att.factors if f.name not in pair]
    factors.insert(min(at, len(factors)), merged)
    # the work terms first, then power and the rate: the order of the chain
    order = {
        "output length": 0,
        "denoising steps": 0,
        "pixels per frame": 1,
        "frames": 2,
        "average power": 3,
        THROUGHPUT: 4,
        WORK_RATE: 4,
        "measurement residual": 9,
    }
    factors.sort(key=lambda f: order.get(f.name, 5))
    return replace(att, factors=tuple(factors)), (latent,)


def change_words(ratio: float, *, same_within: float = 0.005) -> str:
    """How a quantity moved from A to B, in words: ``"rose 3.2x"``, ``"fell 28x"``, ``"same"``."""
    if not (ratio > 0 and math.isfinite(ratio)):
        return "n/a"
    if abs(math.log(ratio)) < same_within:
        return "same"
    return f"rose {ratio:.3g}x" if ratio > 1 else f"fell {1 / ratio:.3g}x"


def energy_effect_words(ratio: float, *, same_within: float = 0.005) -> str:
    """A factor's effect on the energy ratio: ``"energy x3.2"``, ``"energy ÷28"``, ``"no effect"``."""
    if not (ratio > 0 and math.isfinite(ratio)):
        return "n/a"
    if abs(math.log(ratio)) < same_within:
        return "no effect"
    return f"energy x{ratio:.3g}" if ratio > 1 else f"energy ÷{1 / ratio:.3g}"


def _number(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.3g}"


def times_words(ratio: float) -> str:
    """A ratio in words: ``5.37 times less`` / ``3.2 times more`` / ``the same``."""
    if not (ratio > 0 and math.isfinite(ratio)):
        return "n/a"
    if abs(math.log(ratio)) < 0.005:
        return "the same"
    return f"{ratio:.3g} times more" if ratio > 1 else f"{1 / ratio:.3g} times less"


def chain_words(att: Attribution, unit: str | None = None) -> str:
    """The chain in one paragraph, numbers only (how to read it is explained once, in the chat chapter):

    "B uses 18.5 J per response against 99.1 J for A: 5.37 times less. Knob to latent metric: requests running
    rose 128x (15.9 -> 2,043). Then output length fell 1.03x (409 -> 396), energy ÷1.03; ..." ``unit``:
    the output's name (default from the rows)."""
    chained, latents = causal_chain(att)
    if unit is None:
        units = {att.config_a.get("output_unit"), att.config_b.get("output_unit")}
        unit = "response" if att.kind == "llm" else (units.pop() if len(units) == 1 and None not in units else "output")
    head = (
        f"B uses {_number(att.energy_b)} J per {unit} against {_number(att.energy_a)} J for A: "
        f"{times_words(att.ratio)}."
    )

    def short(unit_text: str) -> str:
        return unit_text.replace(" (inverse)", "").split(" (")[0]

    parts = [
        f"{l.name} {change_words(l.ratio)} ({_number(l.value_a)} -> {_number(l.value_b)} {short(l.unit)})"
        for l in latents  # noqa: E741
        if change_words(l.ratio) != "same"
    ]
    steps = []
    for f in chained.factors:
        effect = energy_effect_words(f.ratio)
        if effect == "no effect" or (f.name == "measurement residual" and abs(f.ratio - 1) < 1e-3):
            continue
        if f.value_a is not None and f.value_b is not None and f.value_a and f.value_b:
            steps.append(
                f"{f.name} {change_words(f.value_b / f.value_a)} ({_number(f.value_a)} -> "
                f"{_number(f.value_b)} {short(f.unit)}), {effect}"
            )
        else:
            steps.append(f"{f.name}, {effect}")
    text = head
    if parts:
        text += " Knob to latent metric: " + "; ".join(parts) + "."
    if steps:
        text += (" Then " if parts else " Factors: ") + "; ".join(steps) + "."
    return text


def factor_chart(att: Attribution, title: str | None = None, width: int = 360, chain: bool = True) -> alt.HConcatChart:
    """The energy ratio B / A of an attribution as a chain of factors, read plainly.

    With ``chain`` (the default) the factors that cancel are merged first (:func:`causal_chain`): the batch
    reached is a row of its own, marked as the latent metric, with no bar; then one bar per factor on a log axis
    around 1 (red raises B's energy, blue lowers it), then the total. Beside each bar, two columns in words: how
    the quantity itself moved from A to B ("rose 8x": for a throughput, a rise lowers the energy) and its
    effect on the energy ("energy ÷8"). A factor too close to 1 for a visible bar is drawn as a tick at 1.
    Work terms the two share exactly (the same steps, pixels or frames) are left out. Hover for the values and
    units of A and B.
    """
    import numpy as np
    import pandas as pd

    latents: tuple[Latent, ...] = ()
    if chain:
        att, latents = causal_chain(att)
    frame = att.to_frame()
    frame = frame[(frame["name"] != "measurement residual") | ((frame["ratio"] - 1).abs() > 1e-6)].copy()
    # a work term the two configurations share exactly (the same steps, pixels or frames) says nothing: left out
    same = (
        frame["name"].isin(_WORK_TERMS) & ((frame["ratio"] - 1).abs() < 1e-9) & (frame["value_a"] == frame["value_b"])
    )
    frame = frame[~same].copy()
    total = pd.DataFrame(
        [
            {
                "name": "= energy ratio B / A",
                "ratio": att.ratio,
                "value_a": att.energy_a,
                "value_b": att.energy_b,
                "unit": label(att.energy_column),
                "meaning": "the product of the factors above",
            }
        ]
    )
    latent_rows = pd.DataFrame(
        [
            {
                "name": f"{l.name} (latent)",
                "ratio": np.nan,
                "value_a": l.value_a,
                "value_b": l.value_b,
                "unit": l.unit,
                "meaning": f"{l.meaning}; it acts on energy through the factors below",
            }
            for l in latents  # noqa: E741
        ]
    )
    frame = (
        pd.concat([latent_rows, frame, total], ignore_index=True)
        if len(latent_rows)
        else pd.concat([frame, total], ignore_index=True)
    )
    frame["a"], frame["b"] = att.label_a, att.label_b
    quantity = []
    for _, row in frame.iterrows():
        va, vb = row.get("value_a"), row.get("value_b")
        known = all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (va, vb))
        quantity.append(vb / va if known else row["ratio"])
    frame["quantity_ratio"] = quantity
    frame["latent"] = frame["ratio"].isna()
    frame["change"] = [change_words(q) for q in frame["quantity_ratio"]]
    frame["effect"] = [
        "(through the factors below)" if lat else energy_effect_words(r)
        for lat, r in zip(frame["latent"], frame["ratio"], strict=False)
    ]
    ratios = frame.loc[~frame["latent"], "ratio"].astype(float)
    lo, hi = float(ratios.min()), float(ratios.max())
    domain = [min(lo, 1 / max(hi, 1.0001), 0.5) / 1.3, max(hi, 1 / min(lo, 0.9999), 2.0) * 1.3]
    px_per_log = width / (math.log(domain[1]) - math.log(domain[0]))
    # a factor whose bar would be under 2 px wide is drawn as a tick at 1
    frame["flat"] = ~frame["latent"] & (np.abs(np.log(frame["ratio"].astype(float).fillna(1.0))) * px_per_log < 2)
    frame["ratio"] = frame["ratio"].astype(float)
    frame["direction"] = np.where(
        frame["name"].str.startswith("="),
        "total",
        np.where(
            frame["effect"] == "no effect",
            "no effect",
            np.where(frame["ratio"] >= 1, "raises B's energy", "lowers B's energy"),
        ),
    )
    order = frame["name"].tolist()
    height = 26 * len(frame)
    y = alt.Y("name:N", sort=order, title=None, axis=alt.Axis(labelLimit=260))
    tooltip = [
        alt.Tooltip("name:N", title="Factor"),
        alt.Tooltip("change:N", title="B against A"),
        alt.Tooltip("effect:N", title="Effect on energy"),
        alt.Tooltip("ratio:Q", title="Factor (B / A, energy)", format=",.3~r"),
        alt.Tooltip("value_a:Q", title="A", format=",.4~r"),
        alt.Tooltip("value_b:Q", title="B", format=",.4~r"),
        alt.Tooltip("unit:N", title="Unit"),
        alt.Tooltip("a:N", title="A (model, task, GPU, batch)"),
        alt.Tooltip("b:N", title="B (model, task, GPU, batch)"),
        alt.Tooltip("meaning:N", title="Why"),
    ]
    colors = alt.Color(
        "direction:N",
        title=None,
        legend=alt.Legend(orient="bottom", columns=4),
        scale=alt.Scale(
            domain=["raises B's energy", "lowers B's energy", "no effect", "total"],
            range=["#d6604d", "#4393c3", "#999999", "#555555"],
        ),
    )
    x = alt.X(
        "ratio:Q",
        scale=alt.Scale(type="log", domain=domain, nice=False),
        title="Factor on the energy (B / A, log scale)",
        axis=alt.Axis(values=enc.log_ticks(domain[0], domain[1]), format="~g", labelOverlap="greedy"),
    )
    base = alt.Chart(frame, width=width, height=height)
    factors_only = base.transform_filter("!datum.latent")
    bars = (
        factors_only.transform_filter("!datum.flat")
        .mark_bar()
        .encode(y=y, x=x, x2=alt.datum(1), color=colors, tooltip=tooltip)
    )
    ticks = (
        factors_only.transform_filter("datum.flat")
        .mark_tick(thickness=3, size=16)
        .encode(y=y, x=x, color=colors, tooltip=tooltip)
    )
    latent_marks = (
        base.transform_filter("datum.latent")
        .mark_text(
            text="latent metric: acts through the rows below",
            align="left",
            dx=6,
            fontStyle="italic",
            color="#555",
            fontSize=11,
        )
        .encode(y=y, x=alt.datum(1.0, scale=alt.Scale(type="log", domain=domain, nice=False)), tooltip=tooltip)
    )
    rule = (
        factors_only.transform_aggregate(rows="count()")
        .transform_calculate(one="1")
        .mark_rule(color="#333")
        .encode(
            x=alt.X("one:Q", scale=alt.Scale(type="log", domain=domain, nice=False)),
            tooltip=[alt.Tooltip("one:Q", title="No change (factor 1)")],
        )
    )
    plot = alt.layer(bars, ticks, rule, latent_marks)

    def column(field: str, heading: str, w: int):
        return (
            alt.Chart(
                frame,
                width=w,
                height=height,
                view=alt.ViewBackground(stroke=None),
                title=alt.TitleParams(heading, fontSize=11, anchor="start"),
            )
            .mark_text(align="left", fontSize=11)
            .encode(x=alt.value(2), y=alt.Y("name:N", sort=order, axis=None), text=f"{field}:N", tooltip=tooltip)
        )

    heading = alt.TitleParams(
        text=title or "Energy ratio B / A as a chain of factors", subtitle=[f"A = {att.label_a}", f"B = {att.label_b}"]
    )
    chart = alt.hconcat(
        plot, column("change", "B against A", 90), column("effect", "On the energy", 170 if latents else 96), spacing=8
    )
    return chart.resolve_scale(color="independent").properties(title=heading)
