"""The book's study-wide figures: the framework's layered layout, the charts of the findings, prediction and
planning pages, and the numbered captions."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from harness.analysis import findings as F
from harness.report import framework_figure as FF
from harness.report import study_charts as S
from harness.report.captions import Figures


# --- the framework figure ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def geo():
    return FF.layout(F.FRAMEWORK_NODES, F.FRAMEWORK_EDGES)


def test_few_crossings_and_the_layers_in_columns(geo):
    assert geo.crossings <= 10  # the earlier drawing had about 25, through the labels
    nodes = geo.nodes.set_index("id")
    choices = nodes[nodes["layer"].isin(FF.CHOICE_LAYERS)]
    assert (choices["column"] == 0).all()
    assert (nodes.loc[nodes["layer"] == "latent", "column"] > 0).all()
    assert nodes.loc[nodes["layer"] == "end", "column"].min() > nodes.loc[nodes["layer"] == "latent", "column"].max()
    # the choices stay in their layer groups, top to bottom: algorithm, software, hardware
    order = list(choices.sort_values("cy")["layer"])
    assert order == sorted(order, key=list(FF.CHOICE_LAYERS).index)
    assert geo.width <= 1000  # the page's width


def test_no_box_overlaps_another(geo):
    boxes = geo.nodes[["x", "x2", "y", "y2"]].to_dict("records")
    for a, b in itertools.combinations(boxes, 2):
        apart = a["x2"] <= b["x"] or b["x2"] <= a["x"] or a["y2"] <= b["y"] or b["y2"] <= a["y"]
        assert apart, (a, b)


def test_edges_run_left_to_right_between_boxes(geo):
    boxes = geo.nodes.set_index("id")
    for edge, points in geo.edges.groupby("edge"):
        points = points.sort_values("order")
        first, last = points.iloc[0], points.iloc[-1]
        if points["vertical"].any():
            continue
        assert list(points["x"]) == sorted(points["x"]), edge
        assert first["x"] == pytest.approx(boxes.loc[first["source"], "x2"])
        assert last["x"] == pytest.approx(boxes.loc[last["target"], "x"] - 1)
        # between its ends, an edge never enters a box (its slots sit between the boxes of a column)
        for _, p in points.iloc[1:-1].iterrows():
            inside = boxes[
                (boxes["x"] < p["x"]) & (p["x"] < boxes["x2"]) & (boxes["y"] < p["y"]) & (p["y"] < boxes["y2"])
            ]
            assert inside.empty, (edge, p["x"], p["y"], list(inside.index))


def test_a_crossing_that_reordering_removes():
    nodes = [
        ("a", "A", "algorithm", ""),
        ("b", "B", "algorithm", ""),
        ("x", "X", "latent", ""),
        ("y", "Y", "latent", ""),
    ]
    # sorted by id the two edges would cross (a->y above b->x); the layout orders the targets to avoid it
    geo = FF.layout(nodes, [("a", "y", "", None), ("b", "x", "", None)])
    assert geo.crossings == 0
    ys = geo.nodes.set_index("id")["cy"]
    assert (ys["a"] < ys["b"]) == (ys["y"] < ys["x"])


def test_the_figure_draws_with_tooltips_naming_the_evidence():
    found = [F.Finding("moe-vs-dense", "MoE against dense", {}, {}, "", {}, "", "")]
    spec = FF.framework_figure(F.FRAMEWORK_NODES, F.FRAMEWORK_EDGES, found).to_dict()
    text = str(spec)
    assert "MoE against dense" in text and "an identity or a known mechanism" in text
    assert "Memory headroom" in text and "moe-vs-dense" in text


def test_labels_wrap_on_two_lines():
    assert FF._wrap("Output length (task, reasoning)") == "Output length\n(task, reasoning)"
    assert FF._wrap("Batch size reached") == "Batch size\nreached"
    assert FF._wrap("Time") == "Time"


# --- axes and charts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "low, high, expected",
    [
        (0.034, 18.9, (0.03, 20.0)),
        (338.0, 6679.0, (300.0, 10000.0)),
        (1.0, 5.0, (1.0, 5.0)),
        (11.7, 287.0, (10.0, 300.0)),
    ],
)
def test_log_bounds_bracket_the_data_at_round_values(low, high, expected):
    lo, hi = S.nice_log_bounds(low, high)
    assert (lo, hi) == pytest.approx(expected)
    assert lo <= low and hi >= high


def _axis_ticks(spec: dict, field: str) -> list:
    """The tick values of the first encoding of ``field`` found in a spec."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("field") == field and isinstance(node.get("axis"), dict) and "values" in node["axis"]:
                found.append((node["axis"]["values"], node.get("scale", {}).get("domain")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found


def test_the_planning_chart_pairs_each_batch_and_labels_the_targets():
    pred = pd.DataFrame(
        {
            "max_num_seqs": [8, 64, 512],
            "energy_per_request_joules": [900.0, 250.0, 90.0],
            "energy_per_request_joules_low": [700.0, 200.0, 70.0],
            "energy_per_request_joules_high": [1100.0, 300.0, 110.0],
            "median_itl_ms": [12.0, 20.0, 55.0],
            "measured_energy_per_request_joules": [1000.0, 230.0, 85.0],
            "measured_median_itl_ms": [11.7, 22.0, 60.0],
            "avg_power_watts": [400.0, 600.0, 800.0],
        }
    )
    spec = S.planning_chart(pred, [50, 100, 250], "plan").to_dict()
    text = str(spec)
    assert "50 ms target" in text and "250 ms target" in text
    ticks, domain = _axis_ticks(spec, "t")[0]
    assert domain[0] <= 11.7 and domain[1] >= 250  # the domain holds every point and every target
    assert min(ticks) <= 11.7 and max(ticks) >= 250  # ticks bracket the data
    assert any(layer.get("encoding", {}).get("x2", {}).get("field") == "m_t" for layer in spec["layer"])


def test_batch_effect_and_prediction_charts_build():
    series = pd.DataFrame(
        {
            "nickname": ["A", "B", "C"],
            "task_name": ["Chat", "Chat", "Reasoning"],
            "gpu_model": ["H100", "B200", "B200"],
            "num_gpus": [1, 1, 8],
            "small_batch": [16, 16, 16],
            "large_batch": [256, 512, 128],
            "ratio": [2.1, 6.0, 3.0],
            "paper_example": [False, False, True],
        }
    )
    spec = S.batch_effect_chart(series).to_dict()
    assert [p["title"]["text"] for p in spec["vconcat"]] == ["H100", "B200"]
    points = pd.DataFrame(
        {
            "kind": "llm",
            "split": ["batch", "model"],
            "family": ["chat", "code"],
            "actual": [0.1, 0.5],
            "predicted": [0.11, 0.4],
            "abs_rel_error": [0.1, 0.2],
        }
    )
    spec = S.predicted_vs_measured_chart(points).to_dict()
    assert "Between measured batches" in str(spec) and "Unseen model (facts only)" in str(spec)


def test_timeline_chart_shades_the_steady_window():
    from harness.analysis.timeline import RunTimeline

    frame = pd.DataFrame(
        {
            "time_since_start_s": [0.0, 1.0, 2.0] * 2,
            "metric": ["power_watts"] * 3 + ["num_requests_running"] * 3,
            "metric_title": ["GPU power, all GPUs (W)"] * 3 + ["Running requests (count)"] * 3,
            "value": [100.0, 500.0, 500.0, 0.0, 8.0, 8.0],
        }
    )
    spec = S.timeline_chart(RunTimeline("r1", "run", frame, 0.5, 1.5, True, None)).to_dict()
    assert len(spec["vconcat"]) == 2 and "steady window" in str(spec)
    spec = S.timeline_chart(RunTimeline("r1", "run", frame, None, None, True, None)).to_dict()
    assert "steady window" not in str(spec)


# --- numbered captions --------------------------------------------------------------------------------------
def test_figures_are_numbered_in_order_per_page():
    import altair as alt

    figures = Figures()
    chart = alt.Chart(pd.DataFrame({"x": [1]})).mark_point().encode(x="x:Q")
    first = figures.html(chart, "first", "A <caption> & more")
    assert "<strong>Figure 1.</strong> A &lt;caption&gt; &amp; more" in first and 'id="fig-first"' in first
    assert 'class="joules-chart"' in first  # drawn by the offline renderer, so the page loads the Vega bundle
    assert figures.ref("second") == '<a href="#fig-second">Figure 2</a>'  # a reference may come first
    assert "<strong>Figure 2.</strong>" in figures.html(chart, "second", "B")
    assert figures.number("first") == 1
    assert Figures().number("other") == 1  # a new page starts again at 1
