"""Pure functions over tidy run tables: the diagnosis toolkit.

Every function takes the tidy tables of :mod:`harness.published.reference` (or the
harness's own runs, which carry the same columns) and returns new DataFrames or
small immutable records. Nothing here reads files. One module per concern:

* :mod:`~harness.analysis.tables.columns` -- row kinds (LLM or diffusion), the energy and time columns each
  is compared on, grouping keys, a configuration's label;
* :mod:`~harness.analysis.tables.frontiers` -- minimum energy and the time-energy frontier;
* :mod:`~harness.analysis.tables.identities` -- the identities every row satisfies;
* :mod:`~harness.analysis.tables.attribution` -- an energy gap as a product of factors;
* :mod:`~harness.analysis.tables.power` -- static power, throughput per watt, power budgets;
* :mod:`~harness.analysis.tables.choice` -- the batch effect, batch extremes, latency targets, a model to show;
* :mod:`~harness.analysis.tables.selectors` -- one row named by ``key=value`` terms.

``from harness.analysis import tables as an`` keeps every name in one place (the book's notebooks use it).
"""

from __future__ import annotations

from harness.analysis.tables.attribution import (
    Attribution,
    Factor,
    attribute,
    diagnose,
    format_number,
)
from harness.analysis.tables.choice import (
    BATCH_EFFECT_DEFINITION,
    BATCH_EFFECT_MIN_BATCH,
    batch_effect_pair,
    best_under_latency,
    compare_at_latency,
    largest_batch_rows,
    pick_model,
    smallest_batch_rows,
)
from harness.analysis.tables.columns import (
    CONFIG_KEYS,
    DIFFUSION_TIME,
    ENERGY_PER_OUTPUT,
    ENERGY_PER_TOKEN,
    LLM_TIME,
    SERIES_KEYS,
    config_label,
    energy_column,
    is_llm,
    time_column,
)
from harness.analysis.tables.frontiers import (
    frontier,
    frontier_points,
    min_energy_configs,
    pareto_mask,
)
from harness.analysis.tables.identities import check_identities, identity_errors
from harness.analysis.tables.power import (
    best_under_power_budget,
    estimate_floor_power,
    share_bound,
    static_power_share,
    throughput_per_watt,
)
from harness.analysis.tables.selectors import (
    DISTINGUISHING,
    SELECTOR_ALIASES,
    parse_selector,
    select_row,
)

__all__ = [
    "BATCH_EFFECT_DEFINITION",
    "BATCH_EFFECT_MIN_BATCH",
    "CONFIG_KEYS",
    "DIFFUSION_TIME",
    "DISTINGUISHING",
    "ENERGY_PER_OUTPUT",
    "ENERGY_PER_TOKEN",
    "LLM_TIME",
    "SELECTOR_ALIASES",
    "SERIES_KEYS",
    "Attribution",
    "Factor",
    "attribute",
    "batch_effect_pair",
    "best_under_latency",
    "best_under_power_budget",
    "check_identities",
    "compare_at_latency",
    "config_label",
    "diagnose",
    "energy_column",
    "estimate_floor_power",
    "format_number",
    "frontier",
    "frontier_points",
    "identity_errors",
    "is_llm",
    "largest_batch_rows",
    "min_energy_configs",
    "pareto_mask",
    "parse_selector",
    "pick_model",
    "select_row",
    "share_bound",
    "smallest_batch_rows",
    "static_power_share",
    "throughput_per_watt",
    "time_column",
]
