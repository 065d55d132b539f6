"""How far to trust one run's figures: intervals, window sensitivity and an error budget.

Everything here works after the run, on what the run stored: the request (or iteration) records,
the energy windows and the telemetry timeline. Nothing is measured again and nothing is invented:
a quantity that cannot be computed is ``None`` with a ``note`` that says why.

**Bootstrap over requests** (LLM runs). A run's energy per token is one ratio, window energy over
window tokens. To resample it, the window is cut at the telemetry sampler's ticks; the energy of
each slice (NVML's energy counter, interpolated to the slice edges and summed over GPUs) is shared
among the requests by the tokens each received in that slice, so request *i* carries energy
``E_i`` and tokens ``T_i`` and ``sum(E_i) / sum(T_i)`` is the run's energy per token exactly (the
shares are scaled to the window's own energy). Resampling requests with replacement
(:data:`BOOTSTRAP_RESAMPLES` times, a fixed seed) gives the percentile interval at
:data:`CONFIDENCE`. The same with time instead of energy gives an interval on time per token, hence on output throughput -- which exists on a CPU host too; time slices span
:data:`TIME_SLICE_GAPS` median inter-token gaps, so a token carries the time of its decode step. A window
of fewer than :data:`MIN_ENERGY_SLICES` sampler ticks gets a note that its energy interval is too narrow. Without counter samples but
with a window energy, energy is spread over the window in proportion to time (constant power),
and the source says so. **Diffusion** runs resample their timed iterations' energy per output.

**Window sensitivity** (LLM runs): energy per token and throughput under three windows --
``steady`` (the steady state, the reported figure), ``whole_run`` (the backend's ``run`` window:
the whole load, ramp-up and drain included) and ``trimmed`` (from the first token of the first
request that is not among the first 10% to start, to the finish of the last request that is not
among the last 10% to finish). Steady and whole-run energies are Zeus' window readings; the
trimmed window has none, so its energy comes from the counter samples of the timeline.

**Error budget**: relative sizes, each with how it was obtained --

* ``counter_update``: NVML's energy counter advances in steps (Zeus issue #181: a 5 s idle window
  read 187 J from the counter against 327 J from power samples). Each end of a window can be late
  by up to one update period, so the bound is ``2 x period / window``; the period is the median
  gap between counter changes in the timeline (at most the sampler's period can be resolved);
* ``telemetry_coverage``: the share of expected telemetry samples missing from the steady window;
* ``instant_vs_averaged_power``: mean sampled power against the counter's average power over the
  steady window (instantaneous readings where the driver has them, else NVML's 1 s average;
  Zeus issue #45);
* ``steady_vs_whole_run``: energy per token of the whole run against the steady window (output
  throughput where no energy was measured);
* ``bootstrap``: the interval's half-width relative to the estimate.
"""  # noqa: E501

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.measuring.energy_timeline import (
    _nvml,
    counter_curves,
    counter_energy,
    energy_between,
)
from harness.measuring.steady import token_times
from harness.measuring.windows import Request

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from harness.measuring.energy import WindowMeasurement

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
TRIM_FRACTION = 0.10
MIN_RESAMPLE_UNITS = 2
MAX_TIME_SLICES = 10_000
TIME_SLICE_GAPS = 4  # time slices span this many median inter-token gaps
MIN_ENERGY_SLICES = 10  # fewer counter slices than this in a window: the energy interval is too narrow


# --- bootstrap ----------------------------------------------------------------------------------------
def _percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    import numpy as np

    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_ratio(
    numerators: Sequence[float] | np.ndarray,
    denominators: Sequence[float] | np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """Percentile interval of ``sum(num) / sum(den)`` over units resampled with replacement (in the units of
    the ratio), or None with fewer than :data:`MIN_RESAMPLE_UNITS` units or no denominator."""
    import numpy as np

    num, den = np.asarray(numerators, float), np.asarray(denominators, float)
    if len(num) < MIN_RESAMPLE_UNITS or den.sum() <= 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(resamples, len(num)))
    d = den[idx].sum(axis=1)
    ratios = num[idx].sum(axis=1)[d > 0] / d[d > 0]
    return _percentile_interval(ratios) if len(ratios) else None


def bootstrap_mean(
    values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float] | None:
    """Percentile interval of the mean of ``values`` (in their unit) over values resampled with replacement."""
    return bootstrap_ratio(values, [1.0] * len(values), resamples, seed)


def _slices(start: float, end: float, timeline: pd.DataFrame | None, step_s: float) -> np.ndarray:
    """Slice edges of ``[start, end]``: the sampler's GPU ticks inside it, else a regular grid."""
    import numpy as np

    nvml = _nvml(timeline)
    inner = np.array([])
    if nvml is not None:
        first = nvml["gpu_index"].min()
        t = nvml.loc[nvml["gpu_index"] == first, "time_s"].to_numpy(float)
        inner = np.sort(t[(t > start) & (t < end)])
    if len(inner) == 0:
        n = max(1, math.ceil((end - start) / step_s))
        inner = np.linspace(start, end, n + 1)[1:-1]
    return np.concatenate([[start], inner, [end]])


def _share(quantity: np.ndarray, token_slice: np.ndarray, token_request: np.ndarray, num_requests: int) -> np.ndarray:
    """Per-request shares of each slice's ``quantity``, split evenly over the tokens that arrived in the slice
    (``token_slice[k]`` / ``token_request[k]``: slice and request of token k). A slice without tokens passes its
    quantity on to the next slice that has some (the last ones back to the last such slice)."""
    import numpy as np

    per_slice = np.bincount(token_slice, minlength=len(quantity)).astype(float)
    carried = np.zeros(len(quantity))
    pending, last = 0.0, None
    for j, q in enumerate(quantity):
        pending += q
        if per_slice[j] > 0:
            carried[j], pending, last = pending, 0.0, j
    if pending and last is not None:
        carried[last] += pending
    per_token = carried[token_slice] / per_slice[token_slice]
    return np.bincount(token_request, weights=per_token, minlength=num_requests)


def llm_intervals(
    requests: Sequence[Request],
    start: float | None,
    end: float | None,
    window_energy_joules: float | None,
    timeline: pd.DataFrame | None,
    step_s: float = 0.1,
) -> dict:
    """Bootstrap intervals over requests on energy per token (joules) and output throughput (tokens per second)
    in ``[start, end]`` (seconds); ``step_s``: the slice width where the timeline has no sampler ticks."""
    import numpy as np

    out = {
        "method": f"bootstrap over requests ({BOOTSTRAP_RESAMPLES} resamples, {CONFIDENCE:.0%} percentile)",
        "units": 0,
        "energy_per_token_joules": None,
        "output_throughput_tokens_per_sec": None,
        "energy_attribution": None,
        "note": None,
    }
    if start is None or end is None or end <= start:
        out["note"] = "no measured window"
        return out
    edges = _slices(start, end, timeline, step_s)
    times, owner = [], []
    for i, r in enumerate(requests):
        ts = np.asarray(token_times(r), float)
        ts = ts[(ts > start) & (ts <= end)]
        times.append(ts)
        owner.append(np.full(len(ts), i))
    times, owner = np.concatenate(times or [np.array([])]), np.concatenate(owner or [np.array([], int)]).astype(int)
    # slice j is (edges[j], edges[j + 1]]: tokens are counted in a window as start < t <= end
    token_slice = np.clip(np.searchsorted(edges, times, side="left") - 1, 0, len(edges) - 2)
    tokens = np.bincount(owner, minlength=len(requests)).astype(float)
    out["units"] = int((tokens > 0).sum())
    if tokens.sum() <= 0:
        out["note"] = "no output tokens in the window"
        return out

    def share(quantity: np.ndarray) -> np.ndarray:
        return _share(quantity, token_slice, owner, len(requests))

    # time: slices of a few inter-token gaps (finer than the sampler where the window is short), so a token
    # carries the time of the decode step it came from and not an idle gap next to it
    gaps = np.concatenate([np.diff(np.asarray(token_times(r), float)) for r in requests] or [np.array([])])
    gaps = gaps[gaps > 0]
    width = max((end - start) / MAX_TIME_SLICES, TIME_SLICE_GAPS * float(np.median(gaps)) if len(gaps) else 0.0)
    fine = np.linspace(start, end, max(1, int((end - start) / width)) + 1) if width > 0 else edges
    where = np.clip(np.searchsorted(fine, times, side="left") - 1, 0, len(fine) - 2)
    seconds = _share(np.diff(fine), where, owner, len(requests))
    out["energy_slices"] = len(edges) - 1
    ci = bootstrap_ratio(seconds, tokens)
    if ci is not None:
        out["output_throughput_tokens_per_sec"] = [1.0 / ci[1], 1.0 / ci[0]]
    if window_energy_joules is None:
        out["note"] = "energy not measured: no interval on energy"
        return out
    cum = counter_energy(counter_curves(timeline), edges)
    if cum is not None:
        slice_energy = np.diff(cum)
        out["energy_attribution"] = "NVML energy counter samples, shared by tokens per sampler tick"
    else:
        slice_energy = np.diff(edges) * window_energy_joules / (end - start)
        out["energy_attribution"] = "window energy spread evenly over time (no counter samples in the timeline)"
    joules = share(slice_energy)
    if joules.sum() > 0:
        joules = joules * (window_energy_joules / joules.sum())  # the shares add up to the window's reading
    out["energy_per_token_joules"] = list(bootstrap_ratio(joules, tokens) or []) or None
    if out["energy_per_token_joules"] is None:
        out["note"] = f"fewer than {MIN_RESAMPLE_UNITS} requests with tokens in the window"
    elif len(edges) - 1 < MIN_ENERGY_SLICES:
        out["note"] = (
            f"the window spans only {len(edges) - 1} sampler tick(s): requests in one tick share its "
            f"energy alike, so the energy interval is too narrow"
        )
    return out


def diffusion_intervals(iteration_rows: list[dict], output_unit: str | None) -> dict:
    """Bootstrap intervals over timed iterations on energy per output (joules) and batch latency (seconds)."""
    key = f"energy_per_{output_unit}_joules"
    values = [r.get(key) for r in iteration_rows]
    latencies = [d for d in (r.get("duration_s") for r in iteration_rows) if d is not None]
    out: dict[str, Any] = {
        "method": f"bootstrap over iterations ({BOOTSTRAP_RESAMPLES} resamples, {CONFIDENCE:.0%} percentile)",
        "units": len(iteration_rows),
        "energy_per_output_joules": None,
        "batch_latency_s": None,
        "note": None,
    }
    ci = bootstrap_mean(latencies) if len(latencies) >= MIN_RESAMPLE_UNITS else None
    out["batch_latency_s"] = list(ci) if ci else None
    if not values or any(v is None for v in values):
        out["note"] = "energy not measured: no interval on energy"
    elif len(values) < MIN_RESAMPLE_UNITS:
        out["note"] = f"fewer than {MIN_RESAMPLE_UNITS} timed iterations"
    else:
        energy_ci = bootstrap_mean([v for v in values if v is not None])  # none is None, enough units: an interval
        out["energy_per_output_joules"] = list(energy_ci) if energy_ci else None
    return out


# --- window sensitivity -----------------------------------------------------------------------------
def trimmed_bounds(requests: Sequence[Request], fraction: float = TRIM_FRACTION) -> tuple[float, float] | None:
    """The trimmed window in seconds: from the first token of the first request not among the first ``fraction``
    to start, to the finish of the last request not among the last ``fraction`` to finish; None if empty."""
    firsts = sorted(r.first_token_time_s for r in requests if r.first_token_time_s is not None)
    finishes = sorted(r.finish_time_s for r in requests if r.finish_time_s is not None)
    if not firsts or not finishes:
        return None
    k_first = int(len(firsts) * fraction)
    k_finish = int(len(finishes) * fraction)
    start, end = firsts[min(k_first, len(firsts) - 1)], finishes[len(finishes) - 1 - k_finish]
    return (start, end) if end > start else None


def _window_figures(requests: Sequence[Request], start: float, end: float, energy: float | None, source: str) -> dict:
    tokens = sum(1 for r in requests for t in token_times(r) if start < t <= end)
    duration = end - start
    return {
        "start_time_s": start,
        "end_time_s": end,
        "duration_s": duration,
        "output_tokens": tokens,
        "energy_joules": energy,
        "energy_source": source,
        "energy_per_token_joules": energy / tokens if energy is not None and tokens else None,
        "output_throughput_tokens_per_sec": tokens / duration if duration > 0 else None,
    }


def window_sensitivity(
    requests: Sequence[Request], windows: Mapping[str, WindowMeasurement], metrics: dict, timeline: pd.DataFrame | None
) -> dict:
    """Energy per token (joules) and throughput (tokens per second) under the ``steady``, ``whole_run`` and
    ``trimmed`` windows (the module docstring says how each is bounded and measured)."""
    out = {}
    start, end = metrics.get("steady_start_time_s"), metrics.get("steady_end_time_s")
    if start is not None and end is not None and end > start:
        energy = metrics.get("gpu_energy_joules")
        out["steady"] = _window_figures(
            requests,
            start,
            end,
            energy,
            "steady window (Zeus)" if energy is not None else "none: no GPU energy counter",
        )
    run = windows.get("run")
    if run is not None:
        energy = run.total_gpu_energy_joules
        out["whole_run"] = _window_figures(
            requests,
            run.start_time_s,
            run.end_time_s,
            energy,
            "run window (Zeus)" if energy is not None else "none: no GPU energy counter",
        )
    else:
        t0 = min((r.submit_time_s for r in requests), default=None)
        t1 = max((r.finish_time_s for r in requests if r.finish_time_s is not None), default=None)
        if t0 is not None and t1 is not None and t1 > t0:
            energy = energy_between(timeline, t0, t1)
            out["whole_run"] = _window_figures(
                requests,
                t0,
                t1,
                energy,
                "timeline energy counter" if energy is not None else "none: no counter samples",
            )
    bounds = trimmed_bounds(requests)
    if bounds is not None:
        energy = energy_between(timeline, *bounds)
        out["trimmed"] = _window_figures(
            requests,
            *bounds,
            energy,
            "timeline energy counter" if energy is not None else "none: no counter samples cover the window",
        )
    return out


# --- error budget -------------------------------------------------------------------------------------
def counter_update_period_s(timeline: pd.DataFrame | None) -> tuple[float | None, bool]:
    """(median gap in seconds between changes of the energy counter, whether it is only an upper bound)."""
    gaps, bound = [], False
    for times, joules in counter_curves(timeline).values():
        changed = times[1:][joules[1:] != joules[:-1]]
        if len(changed) >= 2:
            gaps.extend((changed[1:] - changed[:-1]).tolist())
        if len(changed) >= len(times) - 2:  # it moved at (almost) every sample: the sampler can't resolve it
            bound = True
    return (statistics.median(gaps) if gaps else None), bound


def _rel(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return abs(a - b) / abs(b)


def error_budget(
    metrics: dict, sensitivity: dict, intervals: dict, timeline: pd.DataFrame | None, is_llm: bool
) -> dict:
    """``{"items", "largest"}``: each error source's size relative to the estimate (a fraction), with how it
    was obtained (the module docstring lists them), and the largest one."""
    items: dict[str, dict[str, Any]] = {}
    duration = metrics.get("steady_duration_s") if is_llm else None
    if not is_llm:  # every timed iteration is its own energy window
        duration = metrics.get("batch_latency_s")
    period, bound = counter_update_period_s(timeline)
    if metrics.get("gpu_energy_joules") is None:
        items["counter_update"] = {"relative": None, "note": "no energy counter on this host"}
    elif period is None or not duration:
        items["counter_update"] = {"relative": None, "note": "counter updates not seen in the telemetry timeline"}
    else:
        items["counter_update"] = {
            "relative": 2 * period / duration,
            "update_period_s": period,
            "window_s": duration,
            "note": (
                "counter changed at every sample: period at most the sampler's, bound at most this"
                if bound
                else "median gap between counter changes; each window end may lag by one"
            ),
        }
    coverage = metrics.get("telemetry_coverage_fraction")
    items["telemetry_coverage"] = {
        "relative": None if coverage is None else 1.0 - coverage,
        "coverage_fraction": coverage,
        "note": "share of expected samples missing (sampled power, temperature, batch)"
        if coverage is not None
        else "window too short to judge coverage",
    }
    sampled, counter = metrics.get("avg_sampled_power_watts"), metrics.get("avg_power_watts")
    items["instant_vs_averaged_power"] = {
        "relative": _rel(sampled, counter),
        "sampled_power_watts": sampled,
        "counter_power_watts": counter,
        "note": "mean sampled power against the energy counter's average"
        if _rel(sampled, counter) is not None
        else "needs both power samples and counter energy",
    }
    if is_llm:
        steady, whole = sensitivity.get("steady") or {}, sensitivity.get("whole_run") or {}
        rel = _rel(whole.get("energy_per_token_joules"), steady.get("energy_per_token_joules"))
        quantity: str | None = "energy_per_token_joules"
        if rel is None:
            rel = _rel(whole.get("output_throughput_tokens_per_sec"), steady.get("output_throughput_tokens_per_sec"))
            quantity = "output_throughput_tokens_per_sec" if rel is not None else None
        items["steady_vs_whole_run"] = {
            "relative": rel,
            "quantity": quantity,
            "note": "whole run against the steady window" if rel is not None else "a window is missing",
        }
        estimate, ci = metrics.get("energy_per_token_joules"), intervals.get("energy_per_token_joules")
        what = "energy_per_token_joules"
        if ci is None:
            estimate, ci = (
                metrics.get("output_throughput_tokens_per_sec"),
                intervals.get("output_throughput_tokens_per_sec"),
            )
            what = "output_throughput_tokens_per_sec"
    else:
        estimate, ci = metrics.get("energy_per_output_joules"), intervals.get("energy_per_output_joules")
        what = "energy_per_output_joules"
        if ci is None:
            estimate, ci = metrics.get("batch_latency_s"), intervals.get("batch_latency_s")
            what = "batch_latency_s"
    half = (ci[1] - ci[0]) / 2 / abs(estimate) if ci and estimate else None
    items["bootstrap"] = {
        "relative": half,
        "quantity": what if half is not None else None,
        "note": "half-width of the bootstrap interval" if half is not None else "no interval",
    }
    known = {k: v["relative"] for k, v in items.items() if v.get("relative") is not None}
    largest = max(known, key=lambda k: known[k]) if known else None
    return {"items": items, "largest": largest}


def assess(
    is_llm: bool,
    requests: Sequence[Request],
    iteration_rows: list[dict],
    windows: Mapping[str, WindowMeasurement],
    metrics: dict,
    timeline: pd.DataFrame | None,
    output_unit: str | None,
    sampler_hz: float = 10.0,
) -> dict:
    """``{"intervals", "window_sensitivity", "error_budget"}`` for one finished run, and the tidy columns."""
    if is_llm:
        intervals = llm_intervals(
            requests,
            metrics.get("steady_start_time_s"),
            metrics.get("steady_end_time_s"),
            metrics.get("gpu_energy_joules"),
            timeline,
            step_s=1.0 / sampler_hz,
        )
        sensitivity = window_sensitivity(requests, windows, metrics, timeline)
    else:
        intervals = diffusion_intervals(iteration_rows, output_unit)
        sensitivity = {}
    budget = error_budget(metrics, sensitivity, intervals, timeline, is_llm)
    return {"intervals": intervals, "window_sensitivity": sensitivity, "error_budget": budget}


def tidy_columns(fidelity: dict) -> dict:
    """Flat metric columns (for run.json's metrics and the collected table)."""
    iv = fidelity.get("intervals") or {}
    out = {}
    for key in (
        "energy_per_token_joules",
        "output_throughput_tokens_per_sec",
        "energy_per_output_joules",
        "batch_latency_s",
    ):
        ci = iv.get(key)
        stem, unit = _split_unit(key)
        out[f"{stem}_ci_low_{unit}"] = ci[0] if ci else None
        out[f"{stem}_ci_high_{unit}"] = ci[1] if ci else None
    ws = fidelity.get("window_sensitivity") or {}
    for name in ("whole_run", "trimmed"):
        out[f"energy_per_token_{name}_joules"] = (ws.get(name) or {}).get("energy_per_token_joules")
        out[f"output_throughput_{name}_tokens_per_sec"] = (ws.get(name) or {}).get("output_throughput_tokens_per_sec")
    budget = (fidelity.get("error_budget") or {}).get("items") or {}
    for name, item in budget.items():
        out[f"error_{name}_fraction"] = item.get("relative")
    return out


UNITS = ("tokens_per_sec", "joules", "s")


def _split_unit(key: str) -> tuple[str, str]:
    for unit in UNITS:
        if key.endswith("_" + unit):
            return key[: -len(unit) - 1], unit
    return key, ""
