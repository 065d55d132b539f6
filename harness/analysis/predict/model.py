"""The fitted model: ridge least squares on the log quantities, corrected by residual curves of the fit set.

Where the fit holds measurements of the same series, a residual curve in log2 batch (linear between measured
batches, flat beyond them) corrects the fact-based prediction ("series" level); where it holds only other series
of the same model and task, their mean residual curve does ("model" level); otherwise facts alone do ("facts").
The intervals come from :mod:`.calibration`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.vocabulary.tasks import DIFFUSION_TASKS

from .features import (
    FACT_COLUMNS,
    Design,
    base_features,
    batch_values,
    derive,
    kind_of,
    make_design,
    model_task_id,
    series_id,
    spec_of,
    targets,
)


class Calibration(Protocol):
    """What a fit's intervals need from its calibration (:class:`.calibration.Calibration` is the one made here)."""

    def quantiles(self, quantity: str, stratum: str, coverage: float, distance: float = ...) -> tuple[float, float]:
        """Low and high log errors bounding a ``coverage`` interval in ``stratum``."""
        ...


LEVELS = ("series", "model", "facts")
DEFAULT_COVERAGE = 0.8


def ridge(X: np.ndarray, Y: np.ndarray, lam: float = 1e-3) -> np.ndarray:
    """Ridge coefficients (one column per column of ``Y``), the intercept not shrunk."""
    return NormalEquations(X, Y, lam).solve()


class NormalEquations:
    """Ridge normal equations on standardized columns, so that a fold's rows can be taken out cheaply."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, lam: float = 1e-3):
        self.scale = X.std(axis=0)
        self.scale[self.scale == 0] = 1.0
        self.Xs, self.Y = X / self.scale, Y
        self.XtX, self.XtY = self.Xs.T @ self.Xs, self.Xs.T @ Y
        self.lam = lam

    def solve(self, out: np.ndarray | None = None) -> np.ndarray:
        """Coefficients fitted without the rows at positions ``out`` (all rows when None)."""
        XtX, XtY, n = self.XtX, self.XtY, len(self.Xs)
        if out is not None and len(out):
            XtX = XtX - self.Xs[out].T @ self.Xs[out]
            XtY = XtY - self.Xs[out].T @ self.Y[out]
            n -= len(out)
        shrink = self.lam * n * np.eye(XtX.shape[0])
        shrink[0, 0] = 0.0  # the intercept is not shrunk
        return np.linalg.solve(XtX + shrink, XtY) / self.scale[:, None]


def residual_at(L_known: np.ndarray, r_known: np.ndarray, L: float) -> np.ndarray:
    """Residual curve at L: linear in log2 batch between measured batches, flat beyond them."""
    order = np.argsort(L_known)
    Lk, rk = L_known[order], r_known[order]
    return np.array([np.interp(L, Lk, rk[:, j]) for j in range(rk.shape[1])])


class ResidualIndex:
    """Positions of a fit's rows by series and by model-and-task, for residual corrections."""

    def __init__(self, series: np.ndarray, model_task: np.ndarray, L: np.ndarray):
        self.series, self.model_task, self.L = series, model_task, L
        self.by_series: dict[str, np.ndarray] = {}
        for s in np.unique(series):
            self.by_series[s] = np.flatnonzero(series == s)
        self.series_of_mt: dict[str, list[str]] = {}
        for s, pos in self.by_series.items():
            self.series_of_mt.setdefault(model_task[pos[0]], []).append(s)

    def correct(
        self, R: np.ndarray, q_series: np.ndarray, q_mt: np.ndarray, q_L: np.ndarray, excluded: set[int] | None = None
    ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """Residual correction, level, log2 distance to the nearest measured batch, interior flag per query.

        ``R``: the fit's log residuals (one row per fit row); ``q_*``: each query's series, model-and-task and log2
        batch; ``excluded``: fit rows to leave out (a cross-validation fold).
        """
        excluded = excluded or set()
        n = len(q_series)
        out = np.zeros((n, R.shape[1]))
        levels, dist, interior = [], np.full(n, np.nan), np.zeros(n, bool)

        cache: dict[str, np.ndarray | None] = {}

        def members(s: str) -> np.ndarray | None:
            if s in cache:
                return cache[s]
            pos = self.by_series.get(s)
            if pos is not None and excluded:
                pos = np.array([p for p in pos if p not in excluded], dtype=int)
            cache[s] = pos if pos is not None and len(pos) else None
            return cache[s]

        for i in range(n):
            pos = members(q_series[i])
            if pos is not None:
                Ls = self.L[pos]
                out[i] = residual_at(Ls, R[pos], q_L[i])
                levels.append("series")
                dist[i] = float(np.min(np.abs(Ls - q_L[i])))
                interior[i] = Ls.min() < q_L[i] < Ls.max()
                continue
            curves = []
            for s in self.series_of_mt.get(q_mt[i], ()):
                pos = members(s)
                if pos is not None:
                    curves.append(residual_at(self.L[pos], R[pos], q_L[i]))
            if curves:
                out[i] = np.mean(curves, axis=0)
                levels.append("model")
            else:
                levels.append("facts")
        return out, levels, dist, interior


def stratum(level: str, interior: bool) -> str:
    """The calibration stratum of a prediction: its level, the series level split into interior and edge."""
    if level == "series":
        return "series-interior" if interior else "series-edge"
    return level


@dataclass
class Fit:
    """A fitted model of one kind (LLM or diffusion) over a tidy table."""

    kind: str
    frame: pd.DataFrame
    design: Design
    beta: np.ndarray
    residuals: np.ndarray
    series: np.ndarray
    model_task: np.ndarray
    L: np.ndarray
    output_len: dict[str, float] = field(default_factory=dict)  # mean output length (tokens) per model|task
    task_output_len: dict[str, float] = field(default_factory=dict)  # median output length (tokens) per task
    calibration: Calibration | None = None
    calibrator: Callable[[Fit], Calibration] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def index(self) -> ResidualIndex:
        return ResidualIndex(self.series, self.model_task, self.L)

    def predict_logs(self, query: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """Log modelled quantities per query row, with level, log2 distance to the nearest measured batch, interior."""
        X = self.design.matrix(query)
        corr, levels, dist, interior = self.index.correct(
            self.residuals,
            series_id(query, self.kind).to_numpy(),
            model_task_id(query).to_numpy(),
            base_features(query, self.kind)["L"].to_numpy(),
        )
        return X @ self.beta + corr, levels, dist, interior

    def output_lengths(self, query: pd.DataFrame) -> np.ndarray:
        """Mean output length (tokens) per query row: its model and task's in the fit, else the task's median."""
        mt = model_task_id(query)
        return np.array(
            [
                self.output_len.get(k, self.task_output_len.get(t, np.nan))
                for k, t in zip(mt, query["task"].astype(str), strict=False)
            ]
        )

    def predict(self, query: pd.DataFrame, coverage: float = DEFAULT_COVERAGE) -> pd.DataFrame:
        """Point predictions, intervals (``<name>_low`` / ``<name>_high``) and the level of each query row."""
        logs, levels, dist, interior = self.predict_logs(query)
        lengths = self.output_lengths(query) if self.kind == "llm" else None
        point = derive(logs, batch_values(query, self.kind), self.kind, lengths)
        out = pd.DataFrame(point, index=query.index)
        cal = self.calibrated()
        for name in point:
            lo, hi = np.empty(len(query)), np.empty(len(query))
            for i, level in enumerate(levels):
                qlo, qhi = cal.quantiles(name, stratum(level, interior[i]), coverage, dist[i])
                lo[i], hi[i] = point[name][i] * math.exp(qlo), point[name][i] * math.exp(qhi)
            if name == "avg_batch_size":  # never more requests running than the batch knob allows
                b = batch_values(query, self.kind)
                lo, hi = np.minimum(lo, b), np.minimum(hi, b)
            out[f"{name}_low"], out[f"{name}_high"] = lo, hi
        out["level"] = levels
        return out

    def calibrated(self) -> Calibration:
        """The fit's calibration, made on first use by its calibrator (:func:`.calibration.calibrate`, which refits
        the model on cross-validated splits; :func:`.calibration.fit` attaches it)."""
        if self.calibration is None:
            if self.calibrator is None:
                raise HarnessError("this fit has no calibration: fit it with harness.analysis.predict.fit")
            self.calibration = self.calibrator(self)
        return self.calibration


def fit(frame: pd.DataFrame, kind: str | None = None) -> Fit:
    """Fit the model of one kind to a tidy table with the reference's columns (point predictions; the intervals
    need the calibrated fit of :func:`.calibration.fit`)."""
    kind = kind or kind_of(frame)
    frame = usable_rows(frame, kind)
    if len(frame) < 8:
        raise HarnessError(
            f"too few usable {kind} rows to fit the model ({len(frame)}; need at least 8 with "
            f"the facts and measured time and power)"
        )
    design = make_design(frame, kind)
    X, Y = design.matrix(frame), targets(frame, kind)
    beta = ridge(X, Y)
    out = Fit(
        kind,
        frame,
        design,
        beta,
        Y - X @ beta,
        series_id(frame, kind).to_numpy(),
        model_task_id(frame).to_numpy(),
        base_features(frame, kind)["L"].to_numpy(),
    )
    if kind == "llm" and "avg_output_len" in frame.columns:
        out.output_len = frame.groupby(model_task_id(frame))["avg_output_len"].mean().to_dict()
        out.task_output_len = frame.groupby("task")["avg_output_len"].median().to_dict()
    return out


def usable_rows(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Rows of ``kind`` with the facts and positive measured time and power (own CPU runs have no power)."""
    frame = frame[frame["task"].isin(DIFFUSION_TASKS) == (kind == "diffusion")]
    need = [*FACT_COLUMNS, spec_of(kind).batch]
    need += (
        ["avg_batch_size", "median_itl_ms", "output_throughput_tokens_per_sec", "avg_power_watts"]
        if kind == "llm"
        else ["batch_latency_s", "avg_power_watts"]
    )
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise HarnessError(f"the fit table lacks the column(s) {', '.join(missing)}")
    ok = frame[need].notna().all(axis=1)
    for c in need:
        if pd.api.types.is_numeric_dtype(frame[c]):
            ok &= frame[c].astype(float) > 0
    return frame[ok].copy()
