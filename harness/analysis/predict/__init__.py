"""Predict a configuration's time and energy from its facts, with intervals, and validate the model.

The model follows the framework's structure rather than being a black box.

LLM (per series: model, task, GPU model and count; batch knob ``b`` = max_num_seqs):

* batch reached ``c(b)``: ``log c = log b + f_c(x, b)``, where the hinge terms of ``f_c`` switch on once the
  KV cache is full (memory headroom ``H = G * HBM - total params x bytes`` against the KV bytes a request needs,
  taken as growing with the model's size), so ``c`` saturates at a cap set by memory;
* decode step time: ``log ITL = f_t(x, b)`` (weights read per step ``A x bytes / G`` plus KV traffic growing with ``c``);
* power: ``log P = f_p(x, b)``; ratio of mean to median step time: ``log k = f_k(x, b)``;
* output throughput ``T = k c / ITL`` and energy per token ``e = P / T`` (the identities of the framework).

Each ``f`` is linear in physically named features of the facts (log2 batch and its square, log active weight
bytes per GPU, log memory headroom, GPU model, GPU count, task, architecture, precision, interactions with the
batch and the memory hinges), fitted by ridge least squares on the log quantities. Diffusion uses the same
structure with the batch latency and power (``energy per output = P x latency / batch``).

Where the fit holds measurements of the same series, a residual curve in log2 batch (linear between measured
batches, flat beyond them) corrects the fact-based prediction ("series" level); where it holds only other series
of the same model and task, their mean residual curve does ("model" level); otherwise facts alone do ("facts").
Intervals are split-conformal: quantiles of cross-validated log errors at the same level (leave one batch out,
leave one series out, leave one model out), the series level split into interior and edge batches and widened
with the distance in log2 batch to the nearest measured batch.

The modules, one concern each: :mod:`.features` (facts to columns, the identities), :mod:`.model` (the fit and
its residual corrections), :mod:`.calibration` (intervals), :mod:`.validation` (held-out splits and the
validation table), :mod:`.sources` (what the model is fitted on), :mod:`.selectors` (a configuration named on
the command line), :mod:`.deployment` (the planning chapter's predictions against measurements). This package
gathers their public names, so ``from harness.analysis import predict`` gives all of them.
"""  # noqa: E501

from __future__ import annotations

from .calibration import CALIBRATION_SPLIT, Calibration, calibrate, fit
from .deployment import best_under_targets, choices_table, fit_without_base_model, predict_series, published_series
from .features import (
    DIFFUSION,
    FACT_COLUMNS,
    LLM,
    OUTPUTS,
    Design,
    KindSpec,
    base_features,
    batch_values,
    derive,
    kind_of,
    make_design,
    model_task_id,
    observed,
    series_id,
    spec_of,
    targets,
)
from .model import (
    DEFAULT_COVERAGE,
    LEVELS,
    Fit,
    NormalEquations,
    ResidualIndex,
    residual_at,
    ridge,
    stratum,
    usable_rows,
)
from .selectors import QUERY_ALIASES, QUERY_NUMBERS, explain, predict_selector, query_row
from .sources import cached_fit, load_fit_table, with_model_facts
from .validation import (
    SPLIT_NAMES,
    SPLITS,
    VALIDATION_FAMILIES,
    family,
    folds,
    held_out_energy,
    held_out_errors,
    jackknife_coverage,
    summarize_validation,
    validation_table,
)

__all__ = [
    "CALIBRATION_SPLIT",
    "DEFAULT_COVERAGE",
    "DIFFUSION",
    "FACT_COLUMNS",
    "LEVELS",
    "LLM",
    "OUTPUTS",
    "QUERY_ALIASES",
    "QUERY_NUMBERS",
    "SPLITS",
    "SPLIT_NAMES",
    "VALIDATION_FAMILIES",
    "Calibration",
    "Design",
    "Fit",
    "KindSpec",
    "NormalEquations",
    "ResidualIndex",
    "base_features",
    "batch_values",
    "best_under_targets",
    "cached_fit",
    "calibrate",
    "choices_table",
    "derive",
    "explain",
    "family",
    "fit",
    "fit_without_base_model",
    "folds",
    "held_out_energy",
    "held_out_errors",
    "jackknife_coverage",
    "kind_of",
    "load_fit_table",
    "make_design",
    "model_task_id",
    "observed",
    "predict_selector",
    "predict_series",
    "published_series",
    "query_row",
    "residual_at",
    "ridge",
    "series_id",
    "spec_of",
    "stratum",
    "summarize_validation",
    "targets",
    "usable_rows",
    "validation_table",
    "with_model_facts",
]
