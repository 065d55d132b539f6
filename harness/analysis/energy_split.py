"""Static against dynamic energy, per run and per request, and one run's whole energy split for run.json.

    from harness.analysis import energy_split
    section = energy_split.split_run(energy_split.RunEnergyInputs(metrics, idle, timeline, requests, is_llm=True))
    energy_split.tidy_columns(section)      # the tidy table's columns of that section

**Static** energy is what the measured GPUs would have drawn doing nothing: their idle power (measured before
the sweep, summed over the GPUs) times the time. **Dynamic** energy is the rest, the energy the work added.
Per run the static share is ``idle power / average power`` over the measured window (the steady window of a
language-model run, the timed generations of an image or video run), and energy per token or per output splits
in the same proportion. It explains most of the batch-size effect: static power is paid per second, so its
joules per token fall as throughput rises (``idle power / throughput``), while the dynamic joules per token
change far less.

Per request (language models), over the request's running time (its first token to its finish):

* static: ``integral of P_idle / n(t) dt``, the idle power shared equally among the ``n(t)`` requests running;
* prefill: ``alpha x prompt tokens`` and decode: ``beta x (output tokens - 1)``, with the coefficients of the
  phase estimator (:mod:`harness.analysis.phases`);
* the static share of the three.

Nothing here reads a run folder: the runner (and the store's callers) hand in the tables. Every figure is None,
with the reason, where its input was not measured (a CPU-only host has no GPU energy, so no split): never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis import phases
from harness.analysis.engine_steps import EngineLimits
from harness.measuring.store import ENERGY_SPLIT_COLUMNS

NOT_LLM = "the phase split applies to language-model runs (an image or video run has no prefill and decode)"
NO_ENERGY = "no GPU energy was measured in the window (a host without an energy counter, e.g. CPU-only)"
NO_IDLE = "the GPUs' idle power was not measured before the run (settings: idle_power_s)"

# The tidy table's columns of the split (numbers; units in the names) and its one text column.
COLUMNS = ENERGY_SPLIT_COLUMNS  # defined once, with the run records that carry them (harness.measuring.store)
REASON_COLUMN = "phase_split_reason"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def static_dynamic(
    avg_power_watts: float | None,
    static_power_watts: float | None,
    energy_per_token_joules: float | None = None,
    energy_per_output_joules: float | None = None,
) -> dict[str, Any]:
    """The static share of a run and its energy per token and per output split into static and dynamic joules.

    ``avg_power_watts``: the measured GPUs' average power over the window (W, summed); ``static_power_watts``:
    their idle power (W, summed). Returns the fraction (``static_energy_fraction``, 0..1 unless the GPUs drew less
    than idle), the per-token and per-output joules (None where their energy is None) and ``reason`` (None, or
    why nothing could be split).
    """
    out: dict[str, Any] = {
        "static_power_watts": _number(static_power_watts),
        "static_energy_fraction": None,
        "static_energy_per_token_joules": None,
        "dynamic_energy_per_token_joules": None,
        "static_energy_per_output_joules": None,
        "dynamic_energy_per_output_joules": None,
        "reason": None,
    }
    power, idle = _number(avg_power_watts), _number(static_power_watts)
    if power is None or power <= 0:
        out["reason"] = NO_ENERGY
        return out
    if idle is None:
        out["reason"] = NO_IDLE
        return out
    share = idle / power
    out["static_energy_fraction"] = share
    for what in ("token", "output"):
        energy = _number(energy_per_token_joules if what == "token" else energy_per_output_joules)
        if energy is not None:
            out[f"static_energy_per_{what}_joules"] = energy * share
            out[f"dynamic_energy_per_{what}_joules"] = energy * (1 - share)
    return out


def _running_times(requests: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row positions, start, end) of the requests that ran: first token to finish (or last token), in s."""
    positions, starts, ends = [], [], []
    for i, row in enumerate(requests.itertuples(index=False)):
        first = _number(getattr(row, "first_token_time_s", None))
        if first is None:
            continue
        end = _number(getattr(row, "finish_time_s", None))
        times = getattr(row, "token_times_s", None)
        if end is None and times is not None and len(times):
            end = float(max(times))
        positions.append(i)
        starts.append(first)
        ends.append(max(first, end if end is not None else first))
    return np.asarray(positions, dtype=int), np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)


def static_per_request(requests: pd.DataFrame, static_power_watts: float) -> np.ndarray:
    """Each request's share of the static energy (J): ``P_idle / n(t)`` integrated over its running time, ``n(t)``
    the requests running at ``t``. NaN for a request that never got a first token."""
    out = np.full(len(requests), np.nan)
    positions, starts, ends = _running_times(requests)
    if not len(positions):
        return out
    origin = float(starts.min())
    starts, ends = starts - origin, ends - origin
    times = np.unique(np.concatenate([starts, ends]))
    running = np.zeros(len(times))
    np.add.at(running, np.searchsorted(times, starts), 1)
    np.add.at(running, np.searchsorted(times, ends), -1)
    running = np.cumsum(running)[:-1]  # requests running over (times[j], times[j+1])
    share = np.where(running > 0, static_power_watts * np.diff(times) / np.maximum(running, 1), 0.0)
    cumulative = np.concatenate([[0.0], np.cumsum(share)])
    out[positions] = cumulative[np.searchsorted(times, ends)] - cumulative[np.searchsorted(times, starts)]
    return out


def request_split(
    requests: pd.DataFrame, static_power_watts: float | None, estimate: phases.PhaseEstimate | None = None
) -> pd.DataFrame:
    """Per request: ``static_energy_joules``, ``prefill_energy_joules``, ``decode_energy_joules`` and
    ``static_energy_fraction`` (of the three); NaN where an input is missing (no idle power, no estimate)."""
    frame = pd.DataFrame({"request_id": requests["request_id"] if "request_id" in requests else range(len(requests))})
    idle = _number(static_power_watts)
    frame["static_energy_joules"] = static_per_request(requests, idle) if idle is not None else np.nan
    ran = np.zeros(len(requests), dtype=bool)
    ran[_running_times(requests)[0]] = True
    alpha = estimate.prefill_joules_per_token if estimate is not None else None
    beta = estimate.decode_joules_per_token if estimate is not None else None
    prompt = pd.to_numeric(requests["prompt_tokens"], errors="coerce").to_numpy(dtype=float)
    output = pd.to_numeric(requests["output_tokens"], errors="coerce").to_numpy(dtype=float)
    frame["prefill_energy_joules"] = np.where(ran, prompt * alpha, np.nan) if alpha is not None else np.nan
    frame["decode_energy_joules"] = (
        np.where(ran, np.maximum(output - 1, 0) * beta, np.nan) if beta is not None else np.nan
    )
    total = frame[["static_energy_joules", "prefill_energy_joules", "decode_energy_joules"]].sum(axis=1, min_count=3)
    frame["static_energy_fraction"] = frame["static_energy_joules"] / total.where(total > 0)
    return frame


def request_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """The spread of the requests' static shares: median, 10th and 90th percentiles, and how many requests."""
    shares = frame["static_energy_fraction"].dropna()
    static = frame["static_energy_joules"].dropna()
    if shares.empty:
        return {
            "requests": len(static),
            "static_energy_fraction_median": None,
            "static_energy_fraction_p10": None,
            "static_energy_fraction_p90": None,
            "static_energy_per_request_joules_median": float(static.median()) if len(static) else None,
        }
    return {
        "requests": len(shares),
        "static_energy_fraction_median": float(shares.median()),
        "static_energy_fraction_p10": float(shares.quantile(0.1)),
        "static_energy_fraction_p90": float(shares.quantile(0.9)),
        "static_energy_per_request_joules_median": float(static.median()),
    }


@dataclass(frozen=True)
class RunEnergyInputs:
    """One run as the split reads it: run.json's ``metrics`` and ``idle_power_watts`` (W per GPU, keyed by GPU
    index), the stored ``timeline`` and ``requests`` tables, whether it is a language-model run and the engine's
    limits."""

    metrics: Mapping[str, Any]
    idle_power_watts: Mapping[Any, float] | None
    timeline: pd.DataFrame | None = None
    requests: pd.DataFrame | None = None
    is_llm: bool = True
    engine: EngineLimits = field(default_factory=EngineLimits)


def _static_power(inputs: RunEnergyInputs) -> float | None:
    """The idle power of the GPUs the timeline measured (W, summed); all recorded ones without a timeline."""
    idle = {int(k): float(v) for k, v in (inputs.idle_power_watts or {}).items() if _number(v) is not None}
    if not idle:
        return None
    timeline = inputs.timeline
    if timeline is not None and len(timeline) and "gpu_index" in timeline:
        measured = {int(i) for i in timeline.loc[timeline["source"] == "nvml", "gpu_index"].dropna().unique()}
        if measured:
            if not measured <= set(idle):
                return None
            return float(sum(idle[i] for i in measured))
    return float(sum(idle.values()))


def split_run(inputs: RunEnergyInputs, resamples: int = phases.BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """A run's energy split for run.json: ``static_dynamic`` (per run), ``phases`` (the phase estimate, or its
    reason) and ``requests`` (the spread of the per-request static shares), all in J, W and fractions."""
    metrics = inputs.metrics
    idle = _static_power(inputs)
    section: dict[str, Any] = {
        "static_dynamic": static_dynamic(
            metrics.get("avg_power_watts"),
            idle,
            metrics.get("energy_per_token_joules"),
            metrics.get("energy_per_output_joules"),
        ),
    }
    if not inputs.is_llm:
        section["phases"] = {"reason": NOT_LLM}
        return section
    estimate = phases.estimate(
        phases.PhaseInputs(
            inputs.timeline,
            inputs.requests,
            metrics.get("steady_start_time_s"),
            metrics.get("steady_end_time_s"),
            idle,
            inputs.engine,
        ),
        resamples=resamples,
    )
    section["phases"] = estimate.as_dict()
    if inputs.requests is not None and len(inputs.requests) and idle is not None:
        section["requests"] = request_summary(
            request_split(inputs.requests, idle, estimate if estimate.available else None)
        )
    return section


def tidy_columns(section: Mapping[str, Any] | None) -> dict[str, Any]:
    """The tidy table's columns (:data:`COLUMNS` and :data:`REASON_COLUMN`) of a run's split section."""
    section = section or {}
    sd = section.get("static_dynamic") or {}
    ph = section.get("phases") or {}
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    for key in (
        "static_power_watts",
        "static_energy_fraction",
        "static_energy_per_token_joules",
        "dynamic_energy_per_token_joules",
        "static_energy_per_output_joules",
        "dynamic_energy_per_output_joules",
    ):
        out[key] = sd.get(key)
    if ph.get("reason") is None and ph:
        lo_p, hi_p = ph.get("prefill_interval") or (None, None)
        lo_d, hi_d = ph.get("decode_interval") or (None, None)
        shares = ph.get("shares") or {}
        out.update(
            {
                "prefill_energy_per_prompt_token_joules": ph.get("prefill_joules_per_token"),
                "prefill_energy_per_prompt_token_ci_low_joules": lo_p,
                "prefill_energy_per_prompt_token_ci_high_joules": hi_p,
                "decode_energy_per_output_token_joules": ph.get("decode_joules_per_token"),
                "decode_energy_per_output_token_ci_low_joules": lo_d,
                "decode_energy_per_output_token_ci_high_joules": hi_d,
                "prefill_energy_fraction": shares.get("prefill"),
                "decode_energy_fraction": shares.get("decode"),
                "unexplained_energy_fraction": shares.get("residual"),
            }
        )
    out["request_static_energy_fraction_median"] = (section.get("requests") or {}).get("static_energy_fraction_median")
    out[REASON_COLUMN] = ph.get("reason") or sd.get("reason")
    return out


# --- tables for the book ------------------------------------------------------------------------------
SPLIT_TABLE_COLUMNS = {
    "series": "series",
    "batch_size": "batch",
    "energy_per_token_joules": "J per token",
    "static_energy_fraction": "static share",
    "prefill_energy_per_prompt_token_joules": "prefill J per prompt token",
    "prefill_energy_per_prompt_token_ci_low_joules": "prefill 95% CI low",
    "prefill_energy_per_prompt_token_ci_high_joules": "prefill 95% CI high",
    "decode_energy_per_output_token_joules": "decode J per output token",
    "decode_energy_per_output_token_ci_low_joules": "decode 95% CI low",
    "decode_energy_per_output_token_ci_high_joules": "decode 95% CI high",
    "prefill_energy_fraction": "prefill share",
    "decode_energy_fraction": "decode share",
    "unexplained_energy_fraction": "unexplained share",
    "request_static_energy_fraction_median": "median static share per request",
    REASON_COLUMN: "why not split",
}


def split_table(own: pd.DataFrame) -> pd.DataFrame:
    """One row per own language-model run that finished: its static share, phase coefficients with their 95%
    intervals, phase shares and the median static share of its requests (columns named for a reader; J, shares
    0..1), or why it could not be split."""
    columns = [c for c in SPLIT_TABLE_COLUMNS if c in own.columns]
    if own.empty or "status" not in own.columns:
        return pd.DataFrame(columns=list(SPLIT_TABLE_COLUMNS.values()))
    llm = own[(own["status"] == "ok") & own.get("is_llm", pd.Series(True, own.index)).astype(bool)]
    return llm[columns].sort_values(["series", "batch_size"]).rename(columns=SPLIT_TABLE_COLUMNS).reset_index(drop=True)


COMPONENT = "component"
COMPONENT_JOULES = "energy_per_token_joules"


def per_token_components(own: pd.DataFrame) -> pd.DataFrame:
    """Energy per output token of each own language-model run split into its parts, one row per part (long
    format: ``series``, ``batch_size``, :data:`COMPONENT`, :data:`COMPONENT_JOULES` in J per token).

    Parts: static (idle power over the steady window, per token) and, where the phase estimator ran, prefill
    and decode (their shares of the ticks' energy times energy per token); where it did not, the dynamic rest.
    The unexplained rest (a percent or so) is not drawn."""
    rows = []
    need = {"status", "energy_per_token_joules", "static_energy_per_token_joules"}
    if own.empty or not need <= set(own.columns):
        return pd.DataFrame(columns=["series", "batch_size", COMPONENT, COMPONENT_JOULES])
    ok = own[(own["status"] == "ok")].dropna(subset=["energy_per_token_joules", "static_energy_per_token_joules"])
    for r in ok.itertuples():
        base = {"series": r.series, "batch_size": r.batch_size, "run_id": r.run_id}
        rows.append(base | {COMPONENT: "static", COMPONENT_JOULES: r.static_energy_per_token_joules})
        prefill = _number(getattr(r, "prefill_energy_fraction", None))
        decode = _number(getattr(r, "decode_energy_fraction", None))
        energy = _number(r.energy_per_token_joules) or 0.0
        if prefill is not None and decode is not None:
            rows.append(base | {COMPONENT: "prefill", COMPONENT_JOULES: energy * prefill})
            rows.append(base | {COMPONENT: "decode", COMPONENT_JOULES: energy * decode})
        else:
            rows.append(base | {COMPONENT: "dynamic", COMPONENT_JOULES: r.dynamic_energy_per_token_joules})
    frame = pd.DataFrame(rows, columns=["series", "batch_size", "run_id", COMPONENT, COMPONENT_JOULES])
    frame["series"] = frame["series"].astype(str) + ": " + frame[COMPONENT]
    return frame


def batch_effect_split(rows: pd.DataFrame, fraction: str = "static_energy_fraction") -> pd.DataFrame:
    """How much of each series' batch effect is static power: per series (model, task, GPU model, GPU count), the
    energy per token at the two batches the batch effect compares (``harness.analysis.tables.batch_effect_pair``;
    the smallest and largest batch where no batch reaches 16), split by the static share in column ``fraction``
    (0..1), and ``static_share_of_drop``: the part of the drop in J per token that is static joules."""
    from harness.analysis.tables import SERIES_KEYS, batch_effect_pair
    from harness.analysis.tables.columns import group_keys

    out = []
    known = rows.dropna(subset=["energy_per_token_joules", fraction]) if fraction in rows.columns else rows.iloc[0:0]
    keys = group_keys(SERIES_KEYS, known)
    for key, group in known.groupby(keys, sort=True):
        pair = batch_effect_pair(group)
        if pair is None and group["batch_size"].nunique() >= 2:
            ordered = group.sort_values("batch_size")
            pair = ordered.iloc[0], ordered.iloc[-1]
        if pair is None:
            continue
        small, large = pair
        e_small, e_large = float(small["energy_per_token_joules"]), float(large["energy_per_token_joules"])
        s_small, s_large = e_small * float(small[fraction]), e_large * float(large[fraction])
        drop = e_small - e_large
        out.append(
            dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=False))
            | {
                "small_batch": small["batch_size"],
                "large_batch": large["batch_size"],
                "batch_effect": e_small / e_large if e_large > 0 else None,
                "small_static_fraction": float(small[fraction]),
                "large_static_fraction": float(large[fraction]),
                "small_static_energy_per_token_joules": s_small,
                "large_static_energy_per_token_joules": s_large,
                "small_dynamic_energy_per_token_joules": e_small - s_small,
                "large_dynamic_energy_per_token_joules": e_large - s_large,
                "static_share_of_drop": (s_small - s_large) / drop if drop > 0 else None,
            }
        )
    return pd.DataFrame(out)
