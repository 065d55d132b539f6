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

# Unit suffixes of column names, longest first: suffix -> unit shown to readers.
_UNITS = (
    ("_tokens_per_sec_per_watt", "tokens/s/W"),
    ("_tokens_per_sec", "tokens/s"),
    ("_outputs_per_sec", "outputs/s"),
    ("_images_per_sec", "images/s"),
    ("_videos_per_sec", "videos/s"),
    ("_per_sec", "/s"),
    ("_joules", "J"),
    ("_watts", "W"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_billions", "billion"),
    ("_pixels", "px"),
    ("_celsius", "°C"),
    ("_percent", "%"),
    ("_bytes", "B"),
    ("_gib", "GiB"),
)
_WORDS = {"itl": "ITL", "ttft": "TTFT", "gpu": "GPU", "gpus": "GPUs", "p90": "P90", "p95": "P95", "p99": "P99"}
_LABELS = {
    "nickname": "Model",
    "model_id": "Model",
    "gpu": "GPU",
    "gpu_model": "GPU",
    "num_gpus": "GPUs",
    "max_num_seqs": "Batch size (max_num_seqs)",
    "avg_output_len": "Mean output length (tokens)",
    "energy_per_output_joules": "Energy per output (J)",
}


# --- units and labels ---------------------------------------------------------------------------
def unit(column: str) -> str | None:
    """The unit carried by a column name (``energy_per_token_joules`` -> ``J``), or None."""
    for suffix, name in _UNITS:
        if column.endswith(suffix):
            return name
    return None


def label(column: str) -> str:
    """A reader's title for a column: words from its name, the unit in parentheses."""
    if column in _LABELS:
        return _LABELS[column]
    stem, name = column, unit(column)
    if name is not None:
        suffix = next(s for s, u in _UNITS if column.endswith(s))
        stem = column[: -len(suffix)]
    words = [_WORDS.get(w, w) for w in stem.split("_") if w]
    text = " ".join(words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({name})" if name else text


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
    return ".0f" if column in ("batch_size", "max_num_seqs", "num_gpus") else ".3~g"


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


def _axis(frame, column: str, log: bool):
    """Log axes: ticks and grid at powers of ten only; SI labels (1k, 1M) for large values."""
    if not log or not len(frame):
        return alt.Undefined
    import math

    low, high = float(frame[column].min()), float(frame[column].max())
    if not (low > 0 and math.isfinite(high)):
        return alt.Undefined
    values = [10.0**k for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]
    if len(values) < 3:  # less than two decades: let Vega choose ticks
        return alt.Undefined
    return alt.Axis(values=values, format="~s" if low >= 1 else "~g")


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
    layers = [base.mark_line(strokeWidth=1.5, opacity=0.8), base.mark_point()]
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
    chart = (
        alt.Chart(data, width=width, height=row_height * n_rows)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title=label(value), scale=alt.Scale(type="log") if log else alt.Undefined),
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
