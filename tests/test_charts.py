"""harness.report.charts: offline rendering, tooltips on every mark, units in titles, GPU facets."""

from __future__ import annotations

import json
import re

import altair as alt
import pandas as pd
import pytest

from harness.report import charts
from harness.errors import HarnessError
from harness.report.sphinx_offline import _drop_thebe, _is_remote


@pytest.fixture()
def frame() -> pd.DataFrame:
    rows = []
    for gpu in ("B200", "H100"):
        for model, nickname in (("org/a-8b", "A 8B"), ("org/b-70b", "B 70B")):
            for batch in (8, 64, 512):
                rows.append({
                    "model_id": model, "nickname": nickname, "gpu_model": gpu, "num_gpus": 1,
                    "gpu": f"1 x {gpu}", "batch_size": batch, "weight_precision": "bfloat16",
                    "task": "lm-arena-chat", "task_name": "Text conversation", "output_unit": "response",
                    "energy_per_token_joules": 1.0 / batch, "median_itl_ms": 5.0 + batch / 10,
                    "energy_per_output_joules": 500.0 / batch, "unused_column": "x",
                })
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def offline():
    charts.enable_offline()


def _units(spec):
    """Every unit spec (one with a mark) inside a possibly layered / faceted spec."""
    if isinstance(spec, dict):
        if "mark" in spec:
            yield spec
        for value in spec.values():
            yield from _units(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from _units(item)


def _tooltip_titles(unit) -> list[str]:
    tips = unit["encoding"]["tooltip"]
    return [t["title"] for t in (tips if isinstance(tips, list) else [tips])]


# --- units and labels -------------------------------------------------------------------------------
@pytest.mark.parametrize("column, expected", [
    ("energy_per_token_joules", "Energy per token (J)"),
    ("median_itl_ms", "Median ITL (ms)"),
    ("avg_power_watts", "Avg power (W)"),
    ("batch_latency_s", "Batch latency (s)"),
    ("output_throughput_tokens_per_sec", "Output throughput (tokens/s)"),
    ("total_params_billions", "Total params (billion)"),
    ("energy_per_output_joules", "Energy per output (J)"),
    ("nickname", "Model"),
    ("weight_precision", "Weight precision"),
])
def test_label_puts_the_unit_in_parentheses(column, expected):
    assert charts.label(column) == expected


def test_unit_of_unitless_column_is_none():
    assert charts.unit("weight_precision") is None
    assert charts.unit("energy_per_image_joules") == "J"


# --- the offline renderer ---------------------------------------------------------------------------
def test_renderer_emits_a_div_and_a_vega_embed_call_without_any_url(frame):
    assert alt.renderers.active == charts.RENDERER
    bundle = charts.points(frame, "median_itl_ms", "energy_per_token_joules")._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    html = bundle["text/html"]
    assert f'<div class="{charts.CHART_CLASS}" id="' in html
    assert "window.vegaEmbed(el, spec" in html
    assert not re.search(r"(src|href)\s*=", html), "the fragment must not load anything"
    assert "cdn" not in html.lower() and "jsdelivr" not in html.lower()
    assert '"editor": false' in html  # no "open in the Vega editor" link (it would leave the page)


def test_fragment_escapes_script_end_and_gives_unique_ids():
    spec = {"title": "a </script> b", "mark": "point"}
    first, second = charts.html_fragment(spec), charts.html_fragment(spec)
    assert "</script> b" not in first
    ids = [re.search(r'id="([^"]+)"', html).group(1) for html in (first, second)]
    assert ids[0] != ids[1] and all(i.startswith(charts.CHART_CLASS) for i in ids)
    payload = re.search(r"var spec = (.*);\n", first).group(1).replace("<\\/", "</")
    assert json.loads(payload) == spec


def test_vega_bundle_is_wrapped_and_defines_vega_embed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    text = charts.vega_bundle()
    assert text.lstrip().startswith("/*") and "(function () {" in text[:200]
    assert text.rstrip().endswith("})();")
    assert "window.vegaEmbed=" in text.replace(" ", "")
    path = charts.write_bundle(tmp_path / "static")
    assert path.name == charts.bundle_filename() and path.read_text() == text
    mtime = path.stat().st_mtime_ns
    charts.write_bundle(tmp_path / "static")  # kept, not rewritten
    assert path.stat().st_mtime_ns == mtime
    cached = tmp_path / "cache" / "joules-study" / "vega" / charts.bundle_filename()
    assert cached.read_text() == text  # later fresh builds copy it instead of bundling again
    assert charts.write_bundle(tmp_path / "other").read_text() == text


# --- helpers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda f: charts.points(f, "median_itl_ms", "energy_per_token_joules"),
    lambda f: charts.lines(f, "batch_size", "energy_per_token_joules"),
    lambda f: charts.strip(f, "task_name", "energy_per_output_joules", color="output_unit"),
    lambda f: charts.bars(f, "nickname", "energy_per_output_joules"),
])
def test_every_mark_has_a_tooltip_with_model_gpu_batch_and_value_with_unit(frame, make):
    spec = make(frame).to_dict()
    units = list(_units(spec))
    assert units
    for unit in units:
        titles = _tooltip_titles(unit)
        assert {"Model", "GPU", "Batch size"} <= set(titles), titles
        assert any(re.search(r"\((J|ms)\)$", t) for t in titles), titles


def test_gpu_facets_side_by_side_h100_first(frame):
    spec = charts.points(frame, "median_itl_ms", "energy_per_token_joules").to_dict()
    column = spec["facet"]["column"]
    assert column["field"] == "gpu_model" and column["sort"] == ["H100", "B200"]


def test_log_axes_and_titles(frame):
    spec = charts.lines(frame, "batch_size", "energy_per_token_joules").to_dict()
    layer = spec["spec"]["layer"][0]["encoding"]
    assert layer["x"]["scale"]["type"] == "log" and layer["y"]["scale"]["type"] == "log"
    assert layer["y"]["title"] == "Energy per token (J)"
    linear = charts.points(frame, "median_itl_ms", "energy_per_token_joules", log_y=False).to_dict()
    assert linear["spec"]["encoding"]["y"]["scale"].get("type") is None


def test_chart_data_keeps_only_needed_columns_and_positive_values_on_log_axes(frame):
    frame.loc[0, "energy_per_token_joules"] = 0.0
    chart = charts.points(frame, "median_itl_ms", "energy_per_token_joules", facet=None)
    assert "unused_column" not in chart.data.columns
    assert len(chart.data) == len(frame) - 1


def test_unknown_column_is_a_clear_error(frame):
    with pytest.raises(HarnessError, match="chart column 'energy_per_video_joules' is not in the table"):
        charts.points(frame, "median_itl_ms", "energy_per_video_joules")


def test_strip_jitter_is_deterministic(frame):
    a = charts.strip(frame, "task_name", "energy_per_output_joules").to_dict()
    b = charts.strip(frame, "task_name", "energy_per_output_joules").to_dict()
    assert a == b


def test_specs_compile_and_render_to_svg(frame, tmp_path):
    chart = charts.strip(frame, "task_name", "energy_per_output_joules", color="output_unit", legend="bottom")
    svg = charts.save(chart, tmp_path / "strip.svg").read_text()
    assert svg.startswith("<svg") and "H100" in svg and "B200" in svg
    assert svg.count("<path") > len(frame)  # one symbol per configuration, plus axes


def test_save_formats(frame, tmp_path):
    chart = charts.points(frame, "median_itl_ms", "energy_per_token_joules")
    spec = json.loads(charts.save(chart, tmp_path / "c.json").read_text())
    assert spec["facet"]["column"]["field"] == "gpu_model"
    page = charts.save(chart, tmp_path / "c.html").read_text()
    assert "window.vegaEmbed" in page and not re.search(r"<script[^>]+src=", page)
    assert charts.save(chart, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"c.pdf"):
        charts.save(chart, tmp_path / "c.pdf")


# --- the Sphinx extension's guards ------------------------------------------------------------------
@pytest.mark.parametrize("url, remote", [
    ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", True),
    ("//unpkg.com/thebe", True),
    ("_static/vega-offline.js", False),
    ("file:///tmp/x.js", False),
])
def test_remote_asset_detection(url, remote):
    assert _is_remote(url) is remote


def test_thebe_assets_and_duplicate_inline_scripts_are_dropped():
    class Asset(str):
        def __new__(cls, filename, body=""):
            obj = super().__new__(cls, filename)
            obj.filename, obj.attributes = filename, ({"body": body} if body else {})
            return obj

    assets = [
        Asset("_static/doctools.js"),
        Asset("None", body='const THEBE_JS_URL = "https://unpkg.com/thebe"'),
        Asset("_static/sphinx-thebe.js"),
        Asset("None", body="var x = 1;"),
        Asset("None", body="var x = 1;"),
    ]
    _drop_thebe(assets)
    assert [(a.filename, a.attributes.get("body", "")) for a in assets] == [
        ("_static/doctools.js", ""), ("None", "var x = 1;"),
    ]


def test_many_categories_get_twenty_colours(frame):
    few = charts.points(frame, "median_itl_ms", "energy_per_token_joules").to_dict()
    assert "scale" not in few["spec"]["encoding"]["color"]
    many = pd.concat([frame.assign(nickname=f"M{i}", model_id=f"org/m{i}") for i in range(12)])
    spec = charts.points(many, "median_itl_ms", "energy_per_token_joules").to_dict()
    assert spec["spec"]["encoding"]["color"]["scale"]["scheme"] == "tableau20"


# --- axes, bars and factors that read right (issue 12) ---------------------------------------------
@pytest.mark.parametrize("low, high", [(0.0769, 0.31), (111.2, 471.3), (6.76, 606.0), (0.686, 1.46), (1.02, 1.09),
                                        (304.8, 9000.0), (0.001, 100.0), (3.9, 321.4)])
def test_log_ticks_give_at_least_three_inside_the_range(low, high):
    from harness.report import charts

    values = charts.log_ticks(low, high)
    assert len(values) >= 3, values
    assert all(low * (1 - 1e-9) <= v <= high * (1 + 1e-9) for v in values), values
    assert values == sorted(set(values)) and len(values) <= 9


def test_bars_on_a_log_axis_start_from_a_baseline_not_zero():
    import pandas as pd

    from harness.report import charts

    frame = pd.DataFrame({"nickname": ["a", "b"], "energy_per_output_joules": [338.0, 6679.0]})
    spec = charts.bars(frame, "nickname", "energy_per_output_joules", facet=None, log=True).to_dict()
    enc = spec["encoding"]
    assert enc["x"]["scale"]["type"] == "log" and enc["x2"] == {"datum": 100.0}
    assert enc["x"]["scale"]["domain"][0] == 100.0 and len(enc["x"]["axis"]["values"]) >= 3


def test_factor_words_say_the_direction_plainly():
    from harness.report import charts

    assert charts.change_words(1 / 28.4) == "fell 28.4x"
    assert charts.change_words(3.2) == "rose 3.2x"
    assert charts.change_words(1.001) == "same"
    assert charts.energy_effect_words(1 / 257) == "energy ÷257"
    assert charts.energy_effect_words(28.4) == "energy x28.4"


def test_tooltips_never_use_exponent_notation():
    import pandas as pd

    from harness.report import charts

    frame = pd.DataFrame({"avg_power_watts": [1213.4], "batch_size": [4]})
    formats = {t.to_dict()["field"]: t.to_dict()["format"] for t in charts.tooltips(frame, "avg_power_watts")}
    assert "e" not in formats["avg_power_watts"] and "r" in formats["avg_power_watts"]
    assert charts.label("tokens_per_sec_per_watt").endswith("(tokens/s/W)")


def test_cheapest_under_limits_has_a_deadline_slider_a_budget_and_a_gpu_toggle():
    import pandas as pd

    from harness.report import charts

    frame = pd.DataFrame({
        "nickname": ["m", "m", "m", "n"], "gpu_model": ["B200", "B200", "H100", "B200"], "gpu": ["1 x B200"] * 2 + ["1 x H100", "1 x B200"],
        "batch_size": [8, 256, 64, 16], "median_itl_ms": [10.0, 40.0, 30.0, 20.0],
        "energy_per_output_joules": [300.0, 60.0, 90.0, 120.0], "avg_power_watts": [400.0, 900.0, 600.0, 500.0]})
    spec = charts.cheapest_under_limits(frame, deadline=25, name="t").to_dict()
    params = {p["name"]: p for p in spec["params"]}
    assert params["t_deadline"]["value"] == 25 and params["t_deadline"]["bind"]["input"] == "range"
    assert params["t_budget"]["bind"]["input"] == "range"
    assert params["t_gpu"]["bind"]["options"] == ["H100", "B200"] and params["t_gpu"]["value"] == "B200"
    text = json.dumps(spec)
    assert "t_deadline" in text and "row_number" in text and '"legend"' in text
