"""Sphinx extension that keeps the book offline.

* Writes the Vega bundle (:func:`harness.report.charts.vega_bundle`, from vl-convert)
  into ``_static`` and loads it on every page that holds an Altair chart
  rendered by :func:`harness.report.charts.enable_offline`.
* Warns -- an error under ``-W`` -- when a page would load a script or style
  sheet from another host (a CDN), so a new extension or a page with LaTeX math
  (MathJax comes from a CDN; write math in plain text or Unicode) cannot quietly
  make the book depend on the network.

Enabled from ``_config.yml`` (``sphinx: extra_extensions: [harness.report.sphinx_offline]``).
"""

from __future__ import annotations

from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _is_remote(url: str) -> bool:
    url = url.strip().lower()
    return url.startswith("//") or "://" in url and not url.startswith("file://")


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
                    "page %s loads %s from the network; the book must work offline", pagename, name,
                    type="joules", subtype="remote", location=pagename,
                )


def _builder_inited(app) -> None:
    if app.builder.format == "html":
        from harness.report import charts

        charts.write_bundle(Path(app.outdir) / "_static")


def setup(app):
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _page_context, priority=900)  # after other extensions
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
