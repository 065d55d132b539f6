"""Altair charts that render offline, and helpers for the study's common chart patterns.

Every notebook calls :func:`enable_offline` first; then ``charts.points``, ``charts.lines``, ... build the
study's usual charts from tidy tables. The package holds one concern per module; this module gathers their
names so that ``charts.X`` reads the same everywhere:

* :mod:`.offline` -- the offline renderer and theme (:func:`enable_offline`, :func:`html_fragment`, the Vega
  bundle) and static export (:func:`save` to ``.svg``, ``.png``, ``.json`` or offline ``.html``);
* :mod:`.encoding` -- tooltips, scales and axes (:func:`log_domain`), the book's colours
  (:mod:`harness.vocabulary.palette`), legend highlighting, GPU facets, the page's width;
* :mod:`.kinds` -- :func:`points`, :func:`lines`, :func:`strip`, :func:`bars`;
* :mod:`.factors` -- an energy ratio as a causal chain of factors (:func:`factor_chart`, :func:`chain_words`);
* :mod:`.histograms` -- shares of two or more distributions on common bins (:func:`histogram`);
* :mod:`.choices` -- the cheapest configuration within a deadline and a power budget the reader sets.
"""

from __future__ import annotations

from harness.report.charts.choices import cheapest_under_limits
from harness.report.charts.encoding import (
    CONTEXT_FIELDS,
    GPU_ORDER,
    PAGE_WIDTH_PX,
    color_scale,
    linear_ticks,
    log_domain,
    log_ticks,
    tooltips,
)
from harness.report.charts.factors import (
    Latent,
    causal_chain,
    chain_words,
    change_words,
    energy_effect_words,
    factor_chart,
)
from harness.report.charts.histograms import (
    histogram,
    linear_edges,
    mean_from_bins,
    rebin,
    rebin_frame,
)
from harness.report.charts.kinds import bars, lines, points, strip
from harness.report.charts.offline import (
    CHART_CLASS,
    RENDERER,
    THEME,
    bundle_filename,
    enable_offline,
    html_fragment,
    save,
    slug,
    vega_bundle,
    write_bundle,
)
from harness.vocabulary.labels import label, unit

__all__ = [
    "CHART_CLASS",
    "CONTEXT_FIELDS",
    "GPU_ORDER",
    "PAGE_WIDTH_PX",
    "RENDERER",
    "THEME",
    "Latent",
    "bars",
    "bundle_filename",
    "causal_chain",
    "chain_words",
    "change_words",
    "cheapest_under_limits",
    "color_scale",
    "enable_offline",
    "energy_effect_words",
    "factor_chart",
    "histogram",
    "html_fragment",
    "label",
    "linear_edges",
    "linear_ticks",
    "lines",
    "log_domain",
    "log_ticks",
    "mean_from_bins",
    "points",
    "rebin",
    "rebin_frame",
    "save",
    "slug",
    "strip",
    "tooltips",
    "unit",
    "vega_bundle",
    "write_bundle",
]
