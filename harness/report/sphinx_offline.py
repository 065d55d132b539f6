"""Sphinx extension that keeps the book offline.

* Writes the Vega bundle (:func:`harness.report.charts.vega_bundle`, from vl-convert)
  into ``_static`` and loads it on every page that holds an Altair chart
  rendered by :func:`harness.report.charts.enable_offline`.
* Copies MathJax 3 (the single-file ``tex-svg.js`` component, which needs no
  font files) from the installed ``sphinx-mathjax-offline`` package into
  ``_static/mathjax`` and points Sphinx's ``mathjax_path`` at it, so ``$...$``
  and ``$$...$$`` (MyST dollarmath) render without a CDN.
* Writes the charts' style sheet (:data:`CHART_CSS`): a chart too wide for a narrow window scrolls, and a
  slider over the log of a value hides its raw log read-out (the chart states the value). (A cell that holds
  a chart spans the text column and the margin, as the theme's full-width cells do: the chart's own script
  marks it, see :mod:`harness.report.charts.offline`.)
* Warns -- an error under ``-W`` -- when a page would load a script or style
  sheet from another host (a CDN), so a new extension cannot quietly make the
  book depend on the network.

Enabled from ``_config.yml`` (``sphinx: extra_extensions: [harness.report.sphinx_offline]``).
"""

from __future__ import annotations

from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _is_remote(url: str) -> bool:
    url = url.strip().lower()
    return url.startswith("//") or ("://" in url and not url.startswith("file://"))


def _asset_name(asset) -> str:
    return str(getattr(asset, "filename", asset))


def _drop_thebe(assets: list) -> None:
    """Remove sphinx-thebe's assets (Jupyter Book loads it even with thebe off; it points at a public CDN
    and its inline ``const`` config is emitted twice per page, a SyntaxError in the console)."""
    keep, seen = [], set()
    for asset in assets:
        name = _asset_name(asset)
        body = str(getattr(asset, "attributes", {}).get("body", ""))
        if "sphinx-thebe" in name or "THEBE_JS_URL" in body:
            continue
        key = (name, body)
        if not name or name == "None":
            if key in seen:  # the same inline script twice
                continue
            seen.add(key)
        keep.append(asset)
    assets[:] = keep


def _page_context(app, pagename, templatename, context, doctree) -> None:
    from harness.report import charts

    for key in ("script_files", "css_files"):
        if isinstance(context.get(key), list):
            _drop_thebe(context[key])

    body = context.get("body") or ""
    if f'class="{charts.CHART_CLASS}"' in body:
        app.add_js_file(charts.bundle_filename(), priority=400)  # this page only
    for key in ("script_files", "css_files"):
        for asset in context.get(key) or []:
            name = _asset_name(asset)
            if _is_remote(name):
                logger.warning(
                    "page %s loads %s from the network; the book must work offline",
                    pagename,
                    name,
                    type="joules",
                    subtype="remote",
                    location=pagename,
                )


CHART_CSS_FILE = "joules-charts.css"
CHART_CSS = """/* harness.report.sphinx_offline: the charts' room on the page */
div.joules-chart { overflow-x: auto; }
/* a slider over log10 of a value (its parameter ends in _log): the chart states the value, not its log */
.vega-bind input[type="range"][name$="_log"] + span { display: none; }
.vega-bind { margin: 2px 0; }
.vega-bind-name { display: inline-block; min-width: 16em; }
"""


MATHJAX_DIST = "sphinx-mathjax-offline"
MATHJAX_FILE = "tex-svg.js"
MATHJAX_PATH = f"mathjax/{MATHJAX_FILE}"  # relative to _static


def mathjax_source() -> Path:
    """MathJax's ``tex-svg.js`` as installed with the ``sphinx-mathjax-offline`` package (no network)."""
    from importlib import metadata

    from harness.errors import ConfigError

    try:
        dist = metadata.distribution(MATHJAX_DIST)
    except metadata.PackageNotFoundError:
        raise ConfigError(
            f"the book's equations need the {MATHJAX_DIST} package (requirements/base.in): "
            "it ships MathJax, so that no page loads it from a CDN"
        ) from None
    for entry in dist.files or ():
        if entry.name == MATHJAX_FILE and "mathjax" in entry.parts:
            path = Path(str(dist.locate_file(entry)))  # a path-like (importlib.metadata.SimplePath)
            if path.is_file():
                return path
    raise ConfigError(f"the installed {MATHJAX_DIST} package has no {MATHJAX_FILE}: reinstall it")


def _config_inited(app, config) -> None:
    config.mathjax_path = MATHJAX_PATH  # a relative path: served from _static, not a CDN


def _builder_inited(app) -> None:
    if app.builder.format == "html":
        import shutil

        from harness.report import charts

        static = Path(app.outdir) / "_static"
        charts.write_bundle(static)
        css = static / CHART_CSS_FILE
        if not css.is_file() or css.read_text(encoding="utf-8") != CHART_CSS:
            css.parent.mkdir(parents=True, exist_ok=True)
            css.write_text(CHART_CSS, encoding="utf-8")
        target = static / MATHJAX_PATH
        source = mathjax_source()
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def setup(app):
    app.add_css_file(CHART_CSS_FILE)
    app.connect("config-inited", _config_inited)
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _page_context, priority=900)  # after other extensions
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
