"""Altair charts that render offline, and helpers for the study's common chart patterns.

Every notebook calls :func:`enable_offline` first. It registers an Altair renderer
that emits a ``<div>`` plus a small script calling ``vegaEmbed``; the Vega,
Vega-Lite and Vega-Embed libraries come from vl-convert's
``javascript_bundle()`` (installed with the Python package, no CDN), which the
book's Sphinx extension (:mod:`harness.report.sphinx_offline`) writes into
``_build/html/_static`` and loads on every page that holds a chart. No request
leaves the page.

The helpers build the study's usual charts from tidy tables (units in column
names): every mark has a tooltip naming the model, GPU, batch size and the
plotted values with their units; axes are titled from the column names;
``facet="gpu_model"`` puts H100 and B200 side by side.

* :func:`points` -- scatter, e.g. energy per token against median ITL;
* :func:`lines` -- one line (with points) per series, e.g. energy against batch size;
* :func:`strip` -- one row per category, one point per configuration (log scale);
* :func:`bars` -- one bar per category;
* :func:`save` -- write a chart to ``.svg``, ``.png``, ``.json`` or offline ``.html``.
"""

from __future__ import annotations

import functools
import hashlib
import html
import itertools
import json
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import altair as alt

from harness.vocabulary.labels import label, unit

RENDERER = "joules_offline"
THEME = "joules"
CHART_CLASS = "joules-chart"
GPU_ORDER = ("H100", "B200")

# Fields shown in every tooltip when the table has them: column -> title.
CONTEXT_FIELDS = {
    "nickname": "Model",
    "gpu": "GPU",
    "batch_size": "Batch size",
    "weight_precision": "Precision",
    "task": "Task",
}


# --- the offline renderer -----------------------------------------------------------------------
def _vl_version() -> str | None:
    import vl_convert as vlc

    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return f"v{wanted}" if wanted in vlc.get_vegalite_versions() else None


def bundle_filename() -> str:
    """File name of the JavaScript bundle, versioned so that browsers never use a stale copy."""
    import vl_convert as vlc

    version = _vl_version() or "latest"
    return f"vega-offline-{vlc.__version__}-vl{version.lstrip('v')}.js"


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed in one script that defines ``window.vegaEmbed``.

    Built by vl-convert from the packages installed here (no network). The bundle
    is wrapped in a function so that its top-level names (for example ``_``) do
    not clobber the page's own globals (Sphinx's ``_`` translation function).
    """
    import vl_convert as vlc

    body = vlc.javascript_bundle(vl_version=_vl_version())
    return "/* Vega, Vega-Lite, Vega-Embed: bundled by vl-convert */\n(function () {\n" + body + "\n})();\n"


def _bundle_cache() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "joules-study" / "vega" / bundle_filename()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_bundle(directory: str | Path) -> Path:
    """Write :func:`vega_bundle` into ``directory`` once (kept while its versioned name matches).

    Building the bundle takes vl-convert a second or two, so a copy is kept in the
    user cache (``$XDG_CACHE_HOME/joules-study/vega``) for later fresh builds.
    """
    path = Path(directory) / bundle_filename()
    if path.is_file():
        return path
    cached = _bundle_cache()
    try:
        text = cached.read_text(encoding="utf-8") if cached.is_file() else None
    except OSError:
        text = None
    if text is None:
        text = vega_bundle()
        try:
            _write_atomic(cached, text)
        except OSError:
            pass  # a read-only home only costs the next build a second or two
    _write_atomic(path, text)
    return path


_counter = itertools.count(1)

_EMBED_OPTIONS = {
    "renderer": "svg",
    # export buttons only: "open in the Vega editor" would leave the page
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}

_SCRIPT = """(function () {
  var el = document.getElementById(%(id)s);
  var spec = %(spec)s;
  function fail(msg) { el.textContent = msg; el.classList.add("joules-chart-error"); console.error(msg); }
  function draw() {
    if (!window.vegaEmbed) { fail("chart not drawn: the Vega bundle is not loaded on this page"); return; }
    window.vegaEmbed(el, spec, %(options)s).catch(function (err) { fail("chart not drawn: " + err); });
  }
  if (window.vegaEmbed || document.readyState === "complete") { draw(); }
  else { window.addEventListener("load", draw); }
})();"""


def html_fragment(spec: dict, element_id: str | None = None) -> str:
    """A ``<div>`` and a script that draws ``spec`` with ``vegaEmbed`` (which the page must load)."""
    payload = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    if element_id is None:
        digest = hashlib.sha256(payload.encode()).hexdigest()[:10]
        element_id = f"{CHART_CLASS}-{digest}-{next(_counter)}"
    # "</" inside a JSON string would close the script element early
    payload = payload.replace("</", "<\\/")
    script = _SCRIPT % {"id": json.dumps(element_id), "spec": payload, "options": json.dumps(_EMBED_OPTIONS)}
    return (
        f'<div class="{CHART_CLASS}" id="{html.escape(element_id)}"></div>\n'
        f'<script type="text/javascript">\n{script}\n</script>'
    )


def _render(spec: dict, **metadata: Any) -> dict:
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    text = f"<Altair chart{': ' + str(title) if title else ''}>"
    return {"text/html": html_fragment(spec), "text/plain": text}


def _theme() -> dict:
    return {
        "config": {
            "font": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
            "view": {"continuousWidth": 320, "continuousHeight": 260, "stroke": "#ddd"},
            "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#eee"},
            "header": {"labelFontSize": 12, "titleFontSize": 12, "labelFontWeight": "bold"},
            "legend": {"labelFontSize": 11, "titleFontSize": 12, "labelLimit": 240},
            "title": {"fontSize": 14, "anchor": "start"},
            "point": {"size": 40, "filled": True, "opacity": 0.75},
        }
    }


def enable_offline(max_rows: int | None = 20_000) -> None:
    """Render every Altair chart through the offline renderer, with the study's theme.

    Call once at the top of every notebook. ``max_rows`` caps the rows Altair
    inlines into one chart (None lifts the cap). Idempotent.
    """
    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, _render)
    alt.renderers.enable(RENDERER)
    if THEME not in alt.theme.names():
        alt.theme.register(THEME, enable=False)(_theme)
    alt.theme.enable(THEME)
    if max_rows is None:
        alt.data_transformers.disable_max_rows()
    else:
        alt.data_transformers.enable("default", max_rows=max_rows)


# --- chart helpers ------------------------------------------------------------------------------
def _fmt(column: str) -> str:
    """Tooltip number format: whole numbers for counts, else 3 significant digits, never 1.21e+3."""
    return ",.0f" if column in ("batch_size", "max_num_seqs", "num_gpus") else ",.3~r"


def tooltips(frame, *value_columns: str, extra: Iterable[str] = ()) -> list[alt.Tooltip]:
    """Tooltip fields: model, GPU, batch size, precision, task (those present), then the values with units."""
    seen: list[str] = []
    out: list[alt.Tooltip] = []
    for column in [*CONTEXT_FIELDS, *extra, *value_columns]:
        if column in seen or column not in frame.columns:
            continue
        seen.append(column)
        if column in value_columns or column in ("batch_size",) or _is_number(frame, column):
            out.append(alt.Tooltip(f"{column}:Q", title=CONTEXT_FIELDS.get(column, label(column)), format=_fmt(column)))
        else:
            out.append(alt.Tooltip(f"{column}:N", title=CONTEXT_FIELDS.get(column, label(column))))
    return out


def _is_number(frame, column: str) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])


def _scale(log: bool, **kwargs) -> alt.Scale:
    return alt.Scale(type="log", nice=False, padding=12, **kwargs) if log else alt.Scale(zero=False, **kwargs)


_MANTISSAS = ((1,), (1, 3), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), tuple(range(1, 10)))


def log_ticks(low: float, high: float, min_ticks: int = 3, max_ticks: int = 8) -> list[float]:
    """Tick values for a log axis over [low, high]: at least ``min_ticks`` of them, all inside the range.

    Powers of ten where the range spans enough decades (every other decade when it
    spans many), else 1-3, 1-2-5, ... steps within each decade; a range too narrow
    even for 1..9 steps gets evenly spaced round values.
    """
    import math

    if not (low > 0 and high > low and math.isfinite(high)):
        return []
    eps = 1e-9 * high
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in _MANTISSAS:
        values = [float(f"{m * 10.0 ** k:.12g}") for k in range(first, last + 1) for m in mantissas]
        values = [v for v in values if low - eps <= v <= high + eps]
        if len(values) >= min_ticks:
            if mantissas == (1,) and len(values) > max_ticks:
                values = values[:: math.ceil(len(values) / max_ticks)]
            return values
    return linear_ticks(low, high, min_ticks)


def linear_ticks(low: float, high: float, min_ticks: int = 3) -> list[float]:
    """Evenly spaced round values inside [low, high], at least ``min_ticks`` of them (for narrow ranges)."""
    import math

    span = high - low
    if not span > 0:
        return [low]
    step = 10.0 ** math.floor(math.log10(span))
    for divisor in (1, 2, 5, 10, 20, 50, 100):
        s = step / divisor
        start = math.ceil(low / s - 1e-9) * s
        values = []
        v = start
        while v <= high + 1e-9 * abs(high):
            values.append(float(f"{v:.12g}"))
            v += s
        if len(values) >= min_ticks:
            return values
    return [low, (low + high) / 2, high]


def _tick_format(low: float, high: float) -> str:
    """SI prefixes (1.5k, 200k) for large values, plain numbers (0.02, 1.5) below one."""
    return "~s" if low >= 1 and high >= 1000 else "~g"


def _axis(frame, column: str, log: bool):
    """Log axes: at least three labelled ticks (:func:`log_ticks`); large linear values with SI labels."""
    if not len(frame):
        return alt.Undefined
    import math

    low, high = float(frame[column].min()), float(frame[column].max())
    if not (math.isfinite(low) and math.isfinite(high)):
        return alt.Undefined
    if not log:
        return alt.Axis(format="~s") if max(abs(low), abs(high)) >= 10_000 else alt.Undefined
    values = log_ticks(low, high)
    if not values:
        return alt.Undefined
    return alt.Axis(values=values, format=_tick_format(low, high))


def _columns(frame, wanted: Iterable[str | None]) -> list[str]:
    out: list[str] = []
    for column in wanted:
        if column and column in frame.columns and column not in out:
            out.append(column)
    return out


def _require(frame, *columns: str | None) -> None:
    for column in columns:
        if column and column not in frame.columns:
            from harness.errors import HarnessError

            raise HarnessError(f"chart column {column!r} is not in the table (columns: {', '.join(map(str, frame.columns))})")


def _data(frame, columns: Sequence[str], log_columns: Sequence[str] = ()):
    """Only the columns a chart needs; rows with non-positive values dropped from log axes."""
    _require(frame, *columns)
    data = frame.loc[:, list(columns)]
    for column in log_columns:
        data = data[data[column] > 0]
    return data.reset_index(drop=True)


def _facet(chart, facet: str | None, frame, columns: int | None = None):
    if not facet:
        return chart
    present = list(dict.fromkeys(frame[facet].dropna().tolist()))
    order = [g for g in GPU_ORDER if g in present] + sorted(g for g in present if g not in GPU_ORDER)
    header = alt.Header(title=None, labelFontSize=13, labelFontWeight="bold")
    kwargs = {"columns": columns} if columns else {}
    spec = alt.Facet(f"{facet}:N", sort=order, header=header, title=None)
    return chart.facet(spec, **kwargs) if columns else chart.facet(column=spec)


def _color(column: str | None, frame, *, legend: str = "right", sort=None):
    if not column:
        return alt.Undefined
    kind = "Q" if _is_number(frame, column) and column not in ("batch_size", "num_gpus") else "N"
    title = CONTEXT_FIELDS.get(column, label(column))
    # more than ten categories: twenty distinct colours instead of ten repeated ones
    scale = alt.Scale(scheme="tableau20") if kind == "N" and frame[column].nunique() > 10 else alt.Undefined
    return alt.Color(f"{column}:{kind}", title=title, sort=sort, scale=scale, legend=alt.Legend(orient=legend))


def points(
    frame,
    x: str,
    y: str,
    *,
    color: str | None = "nickname",
    legend: str = "right",
    shape: str | None = None,
    facet: str | None = "gpu_model",
    log_x: bool = False,
    log_y: bool = True,
    title: str | None = None,
    width: int = 320,
    height: int = 260,
    extra_tooltip: Iterable[str] = (),
    interactive: bool = True,
) -> alt.Chart:
    """A scatter of ``y`` against ``x``, one point per row, GPUs side by side."""
    extra_tooltip = list(extra_tooltip)
    _require(frame, x, y, color, shape, facet, *extra_tooltip)
    cols = _columns(frame, [x, y, color, shape, facet, *CONTEXT_FIELDS, *extra_tooltip])
    data = _data(frame, cols, [c for c, log in ((x, log_x), (y, log_y)) if log])
    chart = (
        alt.Chart(data, width=width, height=height)
        .mark_point()
        .encode(
            x=alt.X(f"{x}:Q", title=label(x), scale=_scale(log_x), axis=_axis(data, x, log_x)),
            y=alt.Y(f"{y}:Q", title=label(y), scale=_scale(log_y), axis=_axis(data, y, log_y)),
            color=_color(color, data, legend=legend),
            shape=alt.Shape(f"{shape}:N", title=label(shape)) if shape else alt.Undefined,
            tooltip=tooltips(data, x, y, extra=extra_tooltip),
        )
    )
    if interactive:
        chart = chart.interactive()
    chart = _facet(chart, facet, data)
    return chart.properties(title=title) if title else chart


def lines(
    frame,
    x: str,
    y: str,
    *,
    series: str = "nickname",
    color: str | None = None,
    legend: str = "right",
    facet: str | None = "gpu_model",
    log_x: bool = True,
    log_y: bool = True,
    title: str | None = None,
    width: int = 320,
    height: int = 260,
    extra_tooltip: Iterable[str] = (),
    low: str | None = None,
    high: str | None = None,
) -> alt.Chart:
    """One line per ``series`` (sorted along ``x``) with a point per row, e.g. energy against batch size.

    ``low`` / ``high``: columns with an interval on ``y``, drawn as error bars where both are known
    (rows without one, such as published single runs, get none)."""
    color = color or series
    extra_tooltip = list(extra_tooltip)
    _require(frame, x, y, series, color, facet, low, high, *extra_tooltip)
    cols = _columns(frame, [x, y, series, color, facet, low, high, *CONTEXT_FIELDS, *extra_tooltip])
    data = _data(frame, cols, [c for c, log in ((x, log_x), (y, log_y)) if log])
    base = alt.Chart(data, width=width, height=height).encode(
        x=alt.X(f"{x}:Q", title=label(x), scale=_scale(log_x), axis=_axis(data, x, log_x)),
        y=alt.Y(f"{y}:Q", title=label(y), scale=_scale(log_y), axis=_axis(data, y, log_y)),
        color=_color(color, data, legend=legend),
        detail=alt.Detail(f"{series}:N"),
        order=alt.Order(f"{x}:Q"),
        tooltip=tooltips(data, x, y, extra=[series, *extra_tooltip]),
    )
    # a series of one point has no line to draw (an empty path): its point alone shows it
    line = base.transform_joinaggregate(points_in_series="count()", groupby=_columns(data, [series, facet])).transform_filter(
        "datum.points_in_series >= 2").mark_line(strokeWidth=1.5, opacity=0.8)
    layers = [line, base.mark_point()]
    if low and high and data[[low, high]].notna().all(axis=1).any():
        known = f"isValid(datum['{low}']) && isValid(datum['{high}'])" + (f" && datum['{low}'] > 0" if log_y else "")
        layers.append(base.transform_filter(known).mark_rule(strokeWidth=1.5).encode(
            y=alt.Y(f"{low}:Q", title=label(y), scale=_scale(log_y), axis=_axis(data, y, log_y)),
            y2=alt.Y2(f"{high}:Q"), tooltip=tooltips(data, x, y, extra=[series, low, high, *extra_tooltip])))
    chart = alt.layer(*layers)
    chart = _facet(chart, facet, data)
    return chart.properties(title=title) if title else chart


def strip(
    frame,
    category: str,
    value: str,
    *,
    color: str | None = None,
    legend: str = "right",
    facet: str | None = "gpu_model",
    log: bool = True,
    category_sort: Sequence[str] | None = None,
    category_title: str | None = None,
    title: str | None = None,
    width: int = 320,
    row_height: int = 34,
    extra_tooltip: Iterable[str] = (),
) -> alt.Chart:
    """One row per ``category``, one jittered point per row of ``frame`` along ``value``.

    The jitter is a fixed function of the row order, so the same table draws
    the same chart.
    """
    extra_tooltip = list(extra_tooltip)
    _require(frame, category, value, color, facet, *extra_tooltip)
    cols = _columns(frame, [category, value, color, facet, *CONTEXT_FIELDS, *extra_tooltip])
    data = _data(frame, cols, [value] if log else [])
    data = data.assign(jitter=[((i * 0.6180339887) % 1.0) for i in range(len(data))])
    sort = list(category_sort) if category_sort is not None else alt.Undefined
    n_rows = max(1, data[category].nunique())
    chart = (
        alt.Chart(data, width=width, height=row_height * n_rows)
        .mark_point()
        .encode(
            x=alt.X(f"{value}:Q", title=label(value), scale=_scale(log), axis=_axis(data, value, log)),
            y=alt.Y(f"{category}:N", title=category_title if category_title is not None else label(category), sort=sort),
            yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-0.3, 1.3])),
            color=_color(color, data, legend=legend) if color else alt.Undefined,
            tooltip=tooltips(data, value, extra=extra_tooltip),
        )
    )
    chart = _facet(chart, facet, data)
    return chart.properties(title=title) if title else chart


def bars(
    frame,
    category: str,
    value: str,
    *,
    color: str | None = None,
    legend: str = "right",
    facet: str | None = "gpu_model",
    log: bool = False,
    category_sort: Sequence[str] | str | None = "-x",
    title: str | None = None,
    width: int = 320,
    row_height: int = 20,
    extra_tooltip: Iterable[str] = (),
) -> alt.Chart:
    """Horizontal bars: one per ``category``, length ``value``."""
    extra_tooltip = list(extra_tooltip)
    _require(frame, category, value, color, facet, *extra_tooltip)
    cols = _columns(frame, [category, value, color, facet, *CONTEXT_FIELDS, *extra_tooltip])
    data = _data(frame, cols, [value] if log else [])
    sort = category_sort if category_sort is not None else alt.Undefined
    n_rows = max(1, data[category].nunique())
    if log and len(data):
        # a log axis has no zero: bars start at the power of ten below the smallest value
        import math

        low, high = float(data[value].min()), float(data[value].max())
        base = 10.0 ** math.floor(math.log10(low) - 1e-9)
        top = high * 1.15
        x = alt.X(f"{value}:Q", title=label(value), scale=alt.Scale(type="log", domain=[base, top], nice=False),
                  axis=alt.Axis(values=log_ticks(base, top), format=_tick_format(base, top)))
        x2 = alt.datum(base)
    else:
        x, x2 = alt.X(f"{value}:Q", title=label(value), axis=_axis(data, value, False)), alt.Undefined
    chart = (
        alt.Chart(data, width=width, height=row_height * n_rows)
        .mark_bar()
        .encode(
            x=x,
            x2=x2,
            y=alt.Y(f"{category}:N", title=label(category), sort=sort),
            color=_color(color, data, legend=legend) if color else alt.Undefined,
            tooltip=tooltips(data, value, extra=extra_tooltip),
        )
    )
    chart = _facet(chart, facet, data)
    return chart.properties(title=title) if title else chart


# --- static export ------------------------------------------------------------------------------
def save(chart, path: str | Path) -> Path:
    """Write ``chart`` to ``path``: ``.svg``/``.png`` through vl-convert, ``.json`` (the spec),
    or ``.html`` (a standalone page with the Vega bundle inlined: opens offline)."""
    import vl_convert as vlc

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = chart.to_dict()
    suffix = path.suffix.lower()
    version = _vl_version()
    if suffix == ".svg":
        path.write_text(vlc.vegalite_to_svg(spec, vl_version=version), encoding="utf-8")
    elif suffix == ".png":
        path.write_bytes(vlc.vegalite_to_png(spec, vl_version=version, scale=2))
    elif suffix == ".json":
        path.write_text(json.dumps(spec, indent=1, sort_keys=True), encoding="utf-8")
    elif suffix == ".html":
        bundle = vega_bundle().replace("</script", "<\\/script")
        page = (
            "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            f"<script type='text/javascript'>{bundle}</script></head>\n"
            f"<body>\n{html_fragment(spec)}\n</body></html>\n"
        )
        path.write_text(page, encoding="utf-8")
    else:
        raise ValueError(f"cannot save a chart as {path.name}: use .svg, .png, .json or .html")
    return path


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower()


# --- energy ratio as a product of factors ---------------------------------------------------------
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


def factor_chart(att, title: str | None = None, width: int = 240):
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
              axis=alt.Axis(values=log_ticks(*domain), format="~g", labelOverlap="greedy"))
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


# --- choices a reader makes: deadline, budget, GPU, highlighted model -----------------------------
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

    _require(frame, latency, energy, power, model, gpu, "batch_size")
    cols = _columns(frame, [model, gpu, latency, energy, power, "batch_size", "num_gpus", "gpu", *CONTEXT_FIELDS])
    data = _data(frame, cols, [latency, energy, power]).dropna(subset=[model, gpu])
    if data.empty:
        from harness.errors import HarnessError

        raise HarnessError(f"no rows with positive {latency}, {energy} and {power} to choose from")
    where = data["gpu"] if "gpu" in data.columns else data[gpu]
    data = data.assign(configuration=[
        f"batch {b:,.0f}, {g}, {t:,.3g} {unit(latency) or ''}".strip()
        for b, g, t in zip(data["batch_size"], where, data[latency])])
    gpus = [g for g in GPU_ORDER if g in set(data[gpu])] + sorted(set(data[gpu]) - set(GPU_ORDER))
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
    e_axis = alt.Axis(values=log_ticks(base_e, top_e), format=_tick_format(base_e, top_e))
    tips = tooltips(data, energy, latency, power, extra=["configuration"])
    order = alt.EncodingSortField(energy, op="min", order="ascending")
    n_models = max(1, data[model].nunique())
    model_color = alt.Color(f"{model}:N", title=CONTEXT_FIELDS.get(model, label(model)),
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
    lat_axis = alt.Axis(values=log_ticks(lat_lo, lat_hi), format=_tick_format(lat_lo, lat_hi))
    e_axis_all = alt.Axis(values=log_ticks(e_lo, e_hi), format=_tick_format(e_lo, e_hi))
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
