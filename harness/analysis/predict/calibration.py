"""Intervals: split-conformal quantiles of cross-validated log errors, per predicted quantity and stratum.

The strata follow the prediction's level (leave one batch out calibrates the series level, split into interior
and edge batches; leave one GPU count out the model level; leave one model out the facts level), and the series
level's intervals widen with the distance in log2 batch to the nearest measured batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import model
from .model import Fit
from .validation import held_out_errors

CALIBRATION_SPLIT = {"series-interior": "batch", "series-edge": "batch", "model": "gpu-count", "facts": "model"}


@dataclass
class Calibration:
    """Log-error samples per (quantity, stratum), from cross-validation on the fit set."""

    samples: dict[tuple[str, str], np.ndarray]

    def quantiles(self, quantity: str, stratum: str, coverage: float, distance: float = np.nan) -> tuple[float, float]:
        """Low and high log errors (natural log of actual / predicted) bounding a ``coverage`` interval.

        ``distance``: log2 batch to the nearest measured batch (series level only), widening the interval past one.
        """
        errs = self.samples.get((quantity, stratum))
        if errs is None or len(errs) < 5:
            errs = self.samples.get((quantity, "facts"))
        if errs is None or len(errs) == 0:
            return (-np.inf, np.inf)
        a = (1 - coverage) / 2
        lo, hi = np.quantile(errs, [a, 1 - a])
        if stratum.startswith("series") and np.isfinite(distance):
            widen = max(1.0, distance)  # the samples are at about one grid step from a measured batch
            lo, hi = lo * widen, hi * widen
        return float(lo), float(hi)


def calibrate(f: Fit) -> Calibration:
    """The calibration of a fit: its set's held-out errors, each stratum from the split that mimics it."""
    samples = {}
    for split in ("batch", "gpu-count", "model"):
        errs = held_out_errors(f.frame, f.kind, split)
        if errs.empty:
            continue
        for (q, stratum), g in errs.groupby(["quantity", "stratum"]):
            if CALIBRATION_SPLIT.get(stratum) == split:
                samples[(q, stratum)] = g["log_error"].to_numpy()
    return Calibration(samples)


def fit(frame: pd.DataFrame, kind: str | None = None) -> Fit:
    """Fit the model of one kind (:func:`.model.fit`), its intervals calibrated on first use (:func:`calibrate`)."""
    out = model.fit(frame, kind)
    out.calibrator = calibrate
    return out
