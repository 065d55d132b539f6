"""The offline renderer: Altair charts drawn in the page with no request leaving it, and static export.

:func:`enable_offline` registers an Altair renderer that emits a ``<div>`` plus a small script calling
``vegaEmbed``; the Vega, Vega-Lite and Vega-Embed libraries come from vl-convert's ``javascript_bundle()``
(installed with the Python package, no CDN), which the book's Sphinx extension
(:mod:`harness.report.sphinx_offline`) writes into ``_build/html/_static`` and loads on every page that holds
a chart. :func:`save` writes a chart to ``.svg``, ``.png``, ``.json`` or offline ``.html``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
import itertools
import json
import re
from pathlib import Path
from typing import Any

import altair as alt

RENDERER = "joules_offline"
THEME = "joules"
CHART_CLASS = "joules-chart"


# --- the offline renderer -----------------------------------------------------------------------
def _vl_version() -> str | None:
    import vl_convert as vlc

    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return f"v{wanted}" if wanted in vlc.get_vegalite_versions() else None


def bundle_filename() -> str:
    """File name of the JavaScript bundle, versioned so that browsers never use a stale copy."""
    import vl_convert as vlc

    version = _vl_version() or "latest"
    vl_convert_version = vlc.__version__  # type: ignore[attr-defined]  # vl-convert's stub leaves it out
    return f"vega-offline-{vl_convert_version}-vl{version.lstrip('v')}.js"


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed in one script that defines ``window.vegaEmbed``.

    Built by vl-convert from the packages installed here (no network). The bundle
    is wrapped in a function so that its top-level names (for example ``_``) do
    not clobber the page's own globals (Sphinx's ``_`` translation function).
    """
    import vl_convert as vlc

    body = vlc.javascript_bundle(vl_version=_vl_version())  # type: ignore[call-arg]  # the stub omits snippet's default
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
        with contextlib.suppress(OSError):  # a read-only home only costs the next build a second or two
            _write_atomic(cached, text)
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
  // a chart spans the text column and the margin (the book theme's full-width cell, which hides the page's
  // table of contents while it is on screen); set now, before the theme looks for full-width cells
  var cell = el.closest ? el.closest("div.cell") : null;
  if (cell) { cell.classList.add("full-width", "tag_full-width"); }
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


def _theme() -> alt.theme.ThemeConfig:
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
