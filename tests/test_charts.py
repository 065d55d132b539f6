"""harness.report.charts: offline rendering, tooltips on every mark, units in titles, GPU facets."""

from __future__ import annotations

import json
import re

import altair as alt
import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.report import charts
from harness.report.sphinx_offline import _drop_thebe, _is_remote


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = []
    for gpu in ("B200", "H100"):
        for model, nickname in (("org/a-8b", "A 8B"), ("org/b-70b", "B 70B")):
            for batch in (8, 64, 512):
                rows.append(
                    {
                        "model_id": model,
                        "nickname": nickname,
                        "gpu_model": gpu,
                        "num_gpus": 1,
                        "gpu": f"1 x {gpu}",
                        "batch_size": batch,
                        "weight_precision": "bfloat16",
                        "task": "lm-arena-chat",
                        "task_name": "Text conversation",
                        "output_unit": "response",
                        "energy_per_token_joules": 1.0 / batch,
                        "median_itl_ms": 5.0 + batch / 10,
                        "energy_per_output_joules": 500.0 / batch,
                        "unused_column": "x",
                    }
                )
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
@pytest.mark.parametrize(
    "column, expected",
    [
        ("energy_per_token_joules", "Energy per token (J)"),
        ("median_itl_ms", "Median ITL (ms)"),
        ("avg_power_watts", "Average power (W)"),
        ("batch_latency_s", "Time per batch (s)"),
        ("output_throughput_tokens_per_sec", "Output throughput (tokens/s)"),
        ("total_params_billions", "Parameters (billion)"),
        ("p90_itl_ms", "P90 ITL (ms)"),
        ("energy_per_output_joules", "Energy per output (J)"),
        ("nickname", "Model"),
        ("weight_precision", "Precision"),
        ("giga_step_pixel_frames", "Work per video (billion step-pixel-frames)"),
        ("energy_saved_by_b200_percent", "Energy B200 saves against H100 (%)"),
        ("fp8_over_bf16_energy_per_token", "FP8 / BF16, energy per token"),
    ],
)
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
@pytest.mark.parametrize(
    "make",
    [
        lambda f: charts.points(f, "median_itl_ms", "energy_per_token_joules"),
        lambda f: charts.lines(f, "batch_size", "energy_per_token_joules"),
        lambda f: charts.strip(f, "task_name", "energy_per_output_joules", color="output_unit"),
        lambda f: charts.bars(f, "nickname", "energy_per_output_joules"),
    ],
)
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
@pytest.mark.parametrize(
    "url, remote",
    [
        ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", True),
        ("//unpkg.com/thebe", True),
        ("_static/vega-offline.js", False),
        ("file:///tmp/x.js", False),
    ],
)
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
        ("_static/doctools.js", ""),
        ("None", "var x = 1;"),
    ]


def test_a_model_has_the_same_colour_in_every_chart(frame):
    from harness.vocabulary import palette

    def colours(spec):
        scale = spec["spec"]["encoding"]["color"]["scale"]
        return dict(zip(scale["domain"], scale["range"], strict=False))

    published = frame.assign(nickname=frame["nickname"].map({"A 8B": "Qwen 3 8B", "B 70B": "Llama 3.1 70B Instruct"}))
    both = colours(charts.points(published, "median_itl_ms", "energy_per_token_joules").to_dict())
    one = colours(
        charts.points(
            published[published["nickname"] == "Qwen 3 8B"], "median_itl_ms", "energy_per_token_joules"
        ).to_dict()
    )
    many = pd.concat([published] + [frame.assign(nickname=f"M{i}", model_id=f"org/m{i}") for i in range(12)])
    crowd = colours(charts.points(many, "median_itl_ms", "energy_per_token_joules").to_dict())
    assert both["Qwen 3 8B"] == one["Qwen 3 8B"] == crowd["Qwen 3 8B"] == palette.MODEL_COLOURS["Qwen 3 8B"]
    assert both["Llama 3.1 70B Instruct"] == palette.MODEL_COLOURS["Llama 3.1 70B Instruct"]
    assert crowd["M3"] == palette.colour("M3")  # an unknown name: a stable colour of its own
    # an own run of a published model takes the model's colour; tasks and GPU generations have theirs
    assert palette.colour("Qwen3-8B (own)") == palette.MODEL_COLOURS["Qwen 3 8B"]
    assert palette.colour("Text conversation") == palette.colour("lm-arena-chat")
    assert palette.colour("H100") != palette.colour("B200")


def test_the_palette_tells_apart_the_models_of_one_task():
    import itertools
    import math

    from harness.vocabulary import palette

    def lab(hex_colour):
        rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        x = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047
        y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
        z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883
        f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
        return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])

    assert len(palette.MODEL_COLOURS) == 46 and len(set(palette.MODEL_COLOURS.values())) == 46
    chat = [
        n
        for n in palette.MODEL_COLOURS
        if not any(
            w in n
            for w in (
                "VL",
                "Omni",
                "Coder",
                "Thinking",
                "OSS",
                "R1",
                "FLUX",
                "SANA",
                "Diffusion",
                "DiT",
                "PixArt",
                "Cog",
                "Wan",
                "Hunyuan",
            )
        )
    ]
    closest = min(
        math.dist(lab(palette.MODEL_COLOURS[a]), lab(palette.MODEL_COLOURS[b]))
        for a, b in itertools.combinations(chat, 2)
    )
    assert len(chat) >= 16 and closest > 12, closest


def test_a_click_on_the_legend_highlights_a_series(frame):
    for chart in (
        charts.points(frame, "median_itl_ms", "energy_per_token_joules"),
        charts.lines(frame, "batch_size", "energy_per_token_joules"),
        charts.strip(frame, "task_name", "energy_per_output_joules", color="nickname"),
        charts.bars(frame, "nickname", "energy_per_output_joules", color="nickname", log=True),
    ):
        spec = chart.to_dict()
        text = json.dumps(spec)
        params = [p for unit in _units(spec) for p in unit.get("params", [])] + spec.get("params", [])
        legend = [p for p in params if p.get("bind") == "legend"]
        assert legend and legend[0]["select"]["fields"] == ["nickname"], params
        assert f'"param": "{legend[0]["name"]}"' in text  # the marks' opacity follows the selection
        # Vega-Lite binds a legend only to a selection of the first layer (a later one is silently ignored)
        inner = spec.get("spec", spec)
        if "layer" in inner:
            first = inner["layer"][0]
            views = legend[0].get("views")  # Altair may lift a faceted chart's selection to the top, naming its view
            assert (
                views == [first.get("name")]
                if views
                else any(p.get("bind") == "legend" for p in first.get("params", []))
            ), (legend[0], first)


def test_several_series_of_one_model_differ_by_dash_and_shape(frame):
    spec = charts.lines(
        frame, "batch_size", "energy_per_token_joules", series="gpu", color="nickname", style="num_gpus"
    ).to_dict()
    layers = spec["spec"]["layer"]
    dash = next(u["encoding"]["strokeDash"] for u in layers if "strokeDash" in u["encoding"])
    shape = next(u["encoding"]["shape"] for u in layers if "shape" in u["encoding"])
    assert dash["scale"]["range"] == [[1, 0]] and shape["scale"]["range"] == ["circle"]  # one GPU: solid, circle
    many = pd.concat([frame, frame.assign(num_gpus=8, gpu="8 x B200")])
    spec = charts.lines(
        many,
        "batch_size",
        "energy_per_token_joules",
        series="gpu",
        color="nickname",
        style="num_gpus",
        facet="nickname",
        facet_columns=4,
    ).to_dict()
    assert spec["columns"] == 4 and spec["facet"]["field"] == "nickname"
    dash = next(u["encoding"]["strokeDash"] for u in spec["spec"]["layer"] if "strokeDash" in u["encoding"])
    assert dash["scale"]["domain"] == [1, 8] and dash["scale"]["range"][1] == [8, 3, 2, 3]


def test_tooltips_and_legends_show_task_names_and_precisions_not_ids(frame):
    frame = frame.assign(weight_precision="fp8")
    chart = charts.points(frame, "median_itl_ms", "energy_per_token_joules", color="task")
    values = chart.data
    assert set(values["task"]) == {"Text conversation"} and set(values["weight_precision"]) == {"FP8"}


def test_charts_fill_the_page_width(frame):
    single = charts.points(frame, "median_itl_ms", "energy_per_token_joules", facet=None).to_dict()
    faceted = charts.points(frame, "median_itl_ms", "energy_per_token_joules").to_dict()
    assert single["width"] >= 500 and faceted["spec"]["width"] >= 250
    assert single["width"] + 64 <= charts.PAGE_WIDTH_PX


# --- axes, bars and factors that read right (issue 12) ---------------------------------------------
@pytest.mark.parametrize(
    "low, high",
    [
        (0.0769, 0.31),
        (111.2, 471.3),
        (6.76, 606.0),
        (0.686, 1.46),
        (1.02, 1.09),
        (304.8, 9000.0),
        (0.001, 100.0),
        (3.9, 321.4),
        (338.0, 26071.0),
        (1, 4096),
        (18.0, 1.5e6),
    ],
)
@pytest.mark.parametrize("max_ticks", [4, 9])
def test_log_axes_bracket_the_data_with_labelled_ticks(low, high, max_ticks):
    domain, ticks = charts.log_domain(low, high, max_ticks=max_ticks)
    assert ticks[0] == domain[0] <= low * (1 + 1e-9) and ticks[-1] == domain[1] >= high * (1 - 1e-9), (domain, ticks)
    assert 3 <= len(ticks) <= max(max_ticks, 3) + 1 and ticks == sorted(set(ticks)), ticks
    assert domain[1] / domain[0] <= 10 * high / low  # no more than a decade of empty axis beyond the data


def test_an_image_chart_axis_reaches_below_its_cheapest_point():
    frame = pd.DataFrame({"nickname": ["a", "b"], "energy_per_output_joules": [340.0, 12000.0], "gpu_model": "B200"})
    spec = charts.points(
        frame, "energy_per_output_joules", "energy_per_output_joules", color=None, facet=None, log_x=True
    ).to_dict()
    x = spec["encoding"]["x"]
    assert x["scale"]["domain"][0] <= 340 and x["axis"]["values"][0] <= 340 and x["axis"]["values"][-1] >= 12000


@pytest.mark.parametrize(
    "low, high",
    [
        (0.0769, 0.31),
        (111.2, 471.3),
        (6.76, 606.0),
        (0.686, 1.46),
        (1.02, 1.09),
        (304.8, 9000.0),
        (0.001, 100.0),
        (3.9, 321.4),
    ],
)
def test_log_ticks_give_at_least_three_inside_the_range(low, high):
    from harness.report import charts

    values = charts.log_ticks(low, high)
    assert len(values) >= 3, values
    assert all(low * (1 - 1e-9) <= v <= high * (1 + 1e-9) for v in values), values
    assert values == sorted(set(values)) and len(values) <= 9


def test_no_bars_on_a_log_axis_but_dots():
    frame = pd.DataFrame({"nickname": ["a", "b"], "energy_per_output_joules": [338.0, 6679.0]})
    spec = charts.bars(frame, "nickname", "energy_per_output_joules", facet=None, log=True).to_dict()
    enc = spec["encoding"]
    assert spec["mark"]["type"] == "point" and "x2" not in enc
    assert enc["x"]["scale"]["type"] == "log" and enc["x"]["scale"]["domain"][0] <= 338.0
    assert len(enc["x"]["axis"]["values"]) >= 3
    linear = charts.bars(frame, "nickname", "energy_per_output_joules", facet=None).to_dict()
    assert linear["mark"]["type"] == "bar"


def test_ratio_charts_draw_a_line_at_one(frame):
    frame = frame.assign(fp8_over_bf16_energy_per_token=[0.8, 1.2, 0.9] * 4)
    spec = charts.strip(
        frame, "nickname", "fp8_over_bf16_energy_per_token", color="nickname", facet=None, reference=1.0
    ).to_dict()
    rule = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "rule")
    assert rule["transform"][-1] == {"calculate": "1.0", "as": "reference"}
    assert spec["layer"][0]["encoding"]["x"]["title"] == "FP8 / BF16, energy per token"


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

    frame = pd.DataFrame(
        {
            "nickname": ["m", "m", "m", "n"],
            "gpu_model": ["B200", "B200", "H100", "B200"],
            "gpu": ["1 x B200"] * 2 + ["1 x H100", "1 x B200"],
            "batch_size": [8, 256, 64, 16],
            "median_itl_ms": [10.0, 40.0, 30.0, 20.0],
            "energy_per_output_joules": [300.0, 60.0, 90.0, 120.0],
            "avg_power_watts": [400.0, 900.0, 600.0, 500.0],
        }
    )
    spec = charts.cheapest_under_limits(frame, deadline=25, name="t").to_dict()
    params = {p["name"]: p for p in spec["params"]}
    assert params["t_deadline"]["value"] == 25 and params["t_deadline"]["bind"]["input"] == "range"
    assert params["t_budget"]["bind"]["input"] == "range"
    assert params["t_gpu"]["bind"]["options"] == ["H100", "B200"] and params["t_gpu"]["value"] == "B200"
    text = json.dumps(spec)
    assert "t_deadline" in text and "row_number" in text and '"legend"' in text


def test_a_run_series_takes_its_models_colour_shaded_by_task_whatever_the_chart():
    from harness.vocabulary import palette

    chat = "Qwen 3 8B (published), text conversation, 1 x H100"
    gpqa = "Qwen 3 8B (published), problem solving (reasoning), 1 x H100"
    assert palette.colour(chat) == palette.MODEL_COLOURS["Qwen 3 8B"]  # a model's first task: the model's colour
    assert palette.colour(gpqa) not in (palette.colour(chat), palette.FALLBACK_COLOURS)
    own = "tiny-qwen3 (own), text conversation, 1 x CPU"
    other = "tiny-qwen3 (own), problem solving (reasoning), 1 x CPU"
    # one label, one colour, whichever other series share its chart (no chart-dependent reassignment)
    assert palette.colours([own, other]) == palette.colours([other, own])[::-1]
    assert palette.colours([own, "anything else"])[0] == palette.colours([own])[0] == palette.colour(own)
    assert palette.colour(own) != palette.colour(other)
    assert palette.series_colour("Qwen 3 8B") is None  # not a run series
