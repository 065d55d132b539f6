"""Planning a deployment from predictions: a published series predicted as if it had never been measured, and
the lowest predicted energy per response under latency targets and a power budget, beside the measured best.

The planning chapter (``notebooks/planning.ipynb``) calls these; :mod:`harness.orchestration.planner` chooses
which of a series' runs to measure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import HarnessError

from .calibration import fit
from .features import OUTPUTS
from .model import DEFAULT_COVERAGE, Fit


def published_series(table: pd.DataFrame, model_id: str, task: str, gpu_model: str, num_gpus: int) -> pd.DataFrame:
    """One published LLM series (a model, task, GPU model and count over ``max_num_seqs``), by batch."""
    rows = table[
        (table["model_id"] == model_id)
        & (table["task"] == task)
        & (table["gpu_model"] == gpu_model)
        & (table["num_gpus"] == num_gpus)
    ].sort_values("max_num_seqs")
    if rows.empty:
        raise HarnessError(f"no published series for {model_id} on {task}, {num_gpus} x {gpu_model}")
    return rows


def fit_without_base_model(table: pd.DataFrame, base_model_id: str, kind: str = "llm") -> Fit:
    """The model fitted without any row of ``base_model_id`` (as if it were measured for the first time).

    Its intervals come from the cross-validated errors of the whole table.
    """
    without = fit(table[table["base_model_id"] != base_model_id], kind)
    without.calibration = fit(table, kind).calibrated()
    return without


def predict_series(f: Fit, rows: pd.DataFrame, coverage: float = DEFAULT_COVERAGE) -> pd.DataFrame:
    """Predictions for a published LLM series' batches from its facts, beside its measurements.

    The fit's intervals at ``coverage``; energy per request (J) from the series' mean output length (tokens).
    Adds ``max_num_seqs``, ``measured_energy_per_request_joules`` and ``measured_median_itl_ms`` (ms).
    """
    if f.kind != "llm":
        raise HarnessError(f"predict_series plans language-model series; this fit is of {f.kind} models")
    grid = rows.drop(columns=[c for c in OUTPUTS["llm"] if c in rows.columns]).copy()
    grid["avg_output_len"] = rows["avg_output_len"].mean()
    series_fit = dataclasses.replace(f, task_output_len={rows["task"].iloc[0]: float(rows["avg_output_len"].mean())})
    pred = series_fit.predict(grid, coverage=coverage)
    pred["max_num_seqs"] = grid["max_num_seqs"].to_numpy()
    pred["measured_energy_per_request_joules"] = rows["energy_per_request_joules"].to_numpy()
    pred["measured_median_itl_ms"] = rows["median_itl_ms"].to_numpy()
    return pred


def best_under_targets(
    predicted: pd.DataFrame, measured: pd.DataFrame, itl_targets_ms: Iterable[float], power_budget_watts: float
) -> pd.DataFrame:
    """Per median-ITL target (ms): the lowest predicted and the lowest measured energy per request (J) whose
    median ITL meets it and whose average power (W) stays within the budget.

    ``predicted``: :func:`predict_series`' frame; ``measured``: the series' published rows. One row per target:
    ``itl_target_ms``, ``predicted_max_num_seqs``, ``predicted_energy_per_request_joules`` (with ``_low`` and
    ``_high``), ``predicted_avg_power_watts``, ``measured_max_num_seqs``, ``measured_energy_per_request_joules``;
    NaN where no configuration qualifies.
    """
    rows = []
    for target in itl_targets_ms:
        row: dict[str, Any] = {"itl_target_ms": target}
        ok = predicted[(predicted["median_itl_ms"] <= target) & (predicted["avg_power_watts"] <= power_budget_watts)]
        real = measured[(measured["median_itl_ms"] <= target) & (measured["avg_power_watts"] <= power_budget_watts)]
        best = None if ok.empty else ok.loc[ok["energy_per_request_joules"].idxmin()]
        truth = None if real.empty else real.loc[real["energy_per_request_joules"].idxmin()]
        for name in (
            "max_num_seqs",
            "energy_per_request_joules",
            "energy_per_request_joules_low",
            "energy_per_request_joules_high",
            "avg_power_watts",
        ):
            row[f"predicted_{name}"] = np.nan if best is None else best[name]
        for name in ("max_num_seqs", "energy_per_request_joules"):
            row[f"measured_{name}"] = np.nan if truth is None else truth[name]
        rows.append(row)
    return pd.DataFrame(rows)


def choices_table(best: pd.DataFrame) -> pd.DataFrame:
    """:func:`best_under_targets` as the reader sees it: batches and energies (J) rounded, intervals in parentheses."""
    rows = []
    for r in best.to_dict("records"):
        if pd.isna(r["predicted_max_num_seqs"]):
            rows.append({"ITL target (ms)": r["itl_target_ms"], "Predicted best batch": "none"})
            continue
        row = {
            "ITL target (ms)": r["itl_target_ms"],
            "Predicted best batch": f"{r['predicted_max_num_seqs']:,.0f}",
            "Predicted energy per response (J)": f"{r['predicted_energy_per_request_joules']:,.0f} "
            f"({r['predicted_energy_per_request_joules_low']:,.0f} to "
            f"{r['predicted_energy_per_request_joules_high']:,.0f})",
            "Predicted power (W)": f"{r['predicted_avg_power_watts']:,.0f}",
        }
        if pd.notna(r["measured_max_num_seqs"]):
            row["Measured best batch"] = f"{r['measured_max_num_seqs']:,.0f}"
            row["Measured energy per response (J)"] = f"{r['measured_energy_per_request_joules']:,.0f}"
        rows.append(row)
    return pd.DataFrame(rows)
