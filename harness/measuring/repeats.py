"""Repeated runs of one configuration: mean and a confidence interval across repeats.

A config block with ``repeats: N`` measures each configuration N times (:mod:`harness.config`):
repeat 1 in ``<run-id>/``, repeat k in ``<run-id>-r<k>/``. Here the successful repeats of one
configuration (same study and base run id) give, per metric, the mean, the sample standard
deviation and Student's t interval at :data:`CONFIDENCE`. With one repeat the interval is the
run's own bootstrap interval (:mod:`harness.measuring.fidelity`), and ``interval_kind`` says which
it is. Published (reference) rows are single runs without intervals: ``interval_kind`` labels them.

    from harness.measuring import repeats
    summary = repeats.summarize(store.collect("results"))      # one row per configuration
    repeats.with_intervals(own, "energy_per_token_joules")     # y, y_low, y_high, interval_kind per row
"""

from __future__ import annotations

import math

import pandas as pd

from harness.config import split_run_id

CONFIDENCE = 0.95
METRICS = (
    "energy_per_token_joules",
    "energy_per_output_joules",
    "output_throughput_tokens_per_sec",
    "throughput_outputs_per_sec",
    "batch_latency_s",
    "median_itl_ms",
    "median_ttft_ms",
    "avg_power_watts",
)
# metric -> (low, high) bootstrap columns of a single run
BOOTSTRAP = {
    "energy_per_token_joules": ("energy_per_token_ci_low_joules", "energy_per_token_ci_high_joules"),
    "energy_per_output_joules": ("energy_per_output_ci_low_joules", "energy_per_output_ci_high_joules"),
    "output_throughput_tokens_per_sec": (
        "output_throughput_ci_low_tokens_per_sec",
        "output_throughput_ci_high_tokens_per_sec",
    ),
    "batch_latency_s": ("batch_latency_ci_low_s", "batch_latency_ci_high_s"),
}
SINGLE_RUN = "single run: bootstrap interval"
REPEATED = "repeats: Student's t interval"
PUBLISHED = "published: single run, no interval"
NONE = "single run: no interval"


def t_interval(values) -> tuple[float, float, float, float] | None:
    """(mean, standard deviation, low, high) of Student's t interval, or None for fewer than 2 values."""
    from scipy import stats

    values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if len(values) < 2:
        return None
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def _ensure_ids(frame: pd.DataFrame) -> pd.DataFrame:
    if "base_run_id" in frame and "repeat" in frame:
        return frame
    frame = frame.copy()
    parts = [split_run_id(r) for r in frame["run_id"]]
    frame["base_run_id"] = [p[0] for p in parts]
    frame["repeat"] = [p[1] for p in parts]
    return frame


def summarize(frame: pd.DataFrame, metrics=METRICS) -> pd.DataFrame:
    """One row per configuration with ok runs: ``repeats`` and ``<metric>_{mean,sd,ci_low,ci_high}``."""
    frame = _ensure_ids(frame)
    ok = frame[frame["status"] == "ok"]
    rows = []
    for (study, base), group in ok.groupby(["study", "base_run_id"], sort=True):
        row = {"study": study, "base_run_id": base, "repeats": len(group)}
        for m in metrics:
            if m not in group:
                continue
            values = group[m].dropna().tolist()
            t = t_interval(values)
            if t:
                row.update({f"{m}_mean": t[0], f"{m}_sd": t[1], f"{m}_ci_low": t[2], f"{m}_ci_high": t[3]})
            else:
                row.update(
                    {
                        f"{m}_mean": values[0] if values else None,
                        f"{m}_sd": None,
                        f"{m}_ci_low": None,
                        f"{m}_ci_high": None,
                    }
                )
        rows.append(row)
    return pd.DataFrame(rows)


def with_intervals(frame: pd.DataFrame, metric: str, keys=("series", "batch_size")) -> pd.DataFrame:
    """Rows of ``frame`` (own or published) reduced to one per configuration, with error-bar columns.

    Own rows of one configuration (same study and base run id) become one row: ``metric`` the mean
    of the repeats, ``<metric>_low`` / ``<metric>_high`` the t interval (2+ repeats) or the run's
    bootstrap interval (one run); published rows keep their value and get no interval.
    ``interval_kind`` says which, ``repeats`` how many runs.
    """
    low, high = f"{metric}_low", f"{metric}_high"
    if frame.empty:
        return frame.assign(
            **{
                low: pd.Series(dtype=float),
                high: pd.Series(dtype=float),
                "interval_kind": pd.Series(dtype=str),
                "repeats": pd.Series(dtype=float),
            }
        )
    published = (
        frame["is_reference"].fillna(False).astype(bool)
        if "is_reference" in frame
        else pd.Series(False, index=frame.index)
    )
    out = []
    ref = frame[published].copy()
    if len(ref):
        ref[low], ref[high], ref["interval_kind"], ref["repeats"] = float("nan"), float("nan"), PUBLISHED, 1
        out.append(ref)
    own = frame[~published]
    if len(own):
        own = _ensure_ids(own)
        rows = []
        for _, group in own.groupby(["study", "base_run_id"], sort=False):
            first = group.sort_values("repeat").iloc[0].copy()
            values = group[metric].dropna()
            t = t_interval(values.tolist())
            if t:
                first[metric], first[low], first[high], first["interval_kind"] = t[0], t[2], t[3], REPEATED
            else:
                cols = BOOTSTRAP.get(metric)
                lo = first.get(cols[0]) if cols else None
                hi = first.get(cols[1]) if cols else None
                known = lo is not None and hi is not None and lo == lo and hi == hi
                first[low], first[high] = (lo, hi) if known else (float("nan"), float("nan"))
                first["interval_kind"] = SINGLE_RUN if known else NONE
            first["repeats"] = len(values)
            rows.append(first)
        out.append(pd.DataFrame(rows))
    result = pd.concat(out, ignore_index=True) if out else frame.iloc[0:0]
    for c in (low, high, metric):
        result[c] = pd.to_numeric(result[c], errors="coerce")
    return result
