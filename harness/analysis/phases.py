"""Where a language-model run's GPU energy goes: static power, prefill and decode (the phase estimator).

    from harness.analysis import phases
    est = phases.estimate(phases.PhaseInputs(timeline, requests, start_s, end_s, idle_power_watts=68.0,
                                             engine=phases.EngineLimits(max_num_seqs=64, max_num_batched_tokens=8192)))
    est.prefill_joules_per_token, est.prefill_interval      # J per prompt token, 95% interval
    est.decode_joules_per_token, est.decode_interval        # J per decoded output token, 95% interval
    est.reason                                              # None, or why there is no estimate (never 0 J)

Inputs are tables (nothing here reads a run folder): the sampler's ``timeline`` (rows of source ``nvml``:
``time_s``, ``gpu_index``, ``energy_counter_joules``, ``power_watts``; :mod:`harness.measuring.telemetry`), the
run's ``requests`` (``prompt_tokens``, ``submit_time_s``, ``first_token_time_s``, ``finish_time_s``,
``output_tokens``, ``token_times_s``), the steady window ``[start_s, end_s]``, the measured GPUs' idle power (W,
summed over the GPUs the timeline has) and the engine's limits (``max_num_seqs``, ``max_num_batched_tokens``).

The method
----------
1. **Ticks.** The sampler reads each GPU's cumulative energy counter about ten times a second. Consecutive
   readings inside the steady window bound the ticks ``(t[k-1], t[k]]``; a tick's energy ``E_k`` is the
   counters' increase summed over the GPUs (a counter that went backwards drops its tick). A GPU without a
   counter falls back to the trapezoid of its sampled power, and the ticks are then fitted in groups of
   :data:`POWER_BIN_TICKS` (instantaneous samples blur which tick a burst of power belongs to).
2. **The engine's steps.** The engine emits every running request's next token at the end of each step, so
   the arrivals mark the steps (arrivals closer than
   :data:`~harness.analysis.engine_steps.STEP_TOLERANCE` x the median inter-token gap are one step; a step
   runs from the previous step's end to its own). A decoded token (every output token after a request's
   first) is the work of its step. A prompt is the work of the steps of its prefill, the last of
   which emits its first token: the prefills are replayed as the engine schedules them (first come, first
   served; admitted while fewer than ``max_num_seqs`` run; each step's token budget ``max_num_batched_tokens``
   less its decoded tokens shared among the admitted prompts, oldest first), and whatever the replay has not
   prefilled by a request's first token is put in that step. Without the engine's limits a prompt is the work
   of its first token's step alone, which biases the prefill coefficient low when prompts are chunked
   (the benchmark shows by how much); the estimate then says so in ``notes``.
3. **Tokens per tick.** Each step's work is spread evenly over the step's time and shared among the ticks it
   overlaps: ``p_k`` prompt tokens and ``d_k`` decoded tokens (fractions of tokens).
4. **Static power.** ``s_k = P_idle x (t[k] - t[k-1])`` with ``P_idle`` the idle power measured before the
   sweep: what the GPUs draw doing nothing, fixed rather than fitted.
5. **Fit.** Non-negative least squares of ``E_k - s_k`` on ``(p_k, d_k)`` without an intercept:
   ``E_k ~ s_k + alpha p_k + beta d_k``. ``alpha`` is joules per prompt token (prefill), ``beta`` joules per
   decoded token (decode). A column with no tokens in the window is left out and its coefficient is None.
6. **Intervals.** A moving-block bootstrap over ticks (blocks of about :data:`BLOCK_S` s, so that neighbouring
   ticks' shared errors stay together; :data:`BOOTSTRAP_RESAMPLES` resamples, a fixed seed) refits the
   coefficients; the 2.5th and 97.5th percentiles are the 95% interval.
7. **Split.** Over the ticks: static ``sum s_k``, prefill ``alpha sum p_k``, decode ``beta sum d_k`` and what
   the three do not explain (the residual, positive or negative), each also as a share of ``sum E_k``.

What it assumes, and where that bends the answer
------------------------------------------------
* The power a GPU draws above idle only to be busy (clocks up, memory refreshed at full rate) scales with
  time, not tokens. In a saturated batch the decoded tokens per tick are nearly proportional to time, so that
  power lands in ``beta``: the decode coefficient is "decode, including the busy floor", and the prefill
  coefficient is the cost of a prompt token on top of it.
* Prefill and decode tokens per tick are strongly anti-correlated (a tick with a long prefill step has fewer
  decode steps), so the split is only as good as the placement of the work in time: that is why step 2
  replays the schedule rather than putting each prompt at its first token.
* The replay is the engine's documented first-come-first-served policy; preemption (a request evicted and
  its prompt recomputed), prefix caching (a prompt partly read from cache costs less than its length) and
  speculative decoding are not modelled and land in the residual and the coefficients.
* The validation: simulated runs at the NVML fake boundary (``tests/phase_sim.py``: a scheduler with chunked
  prefill under the same policy, noisy per-step energy, 1 to 4 GPUs, jittered sampler ticks), whose power
  follows known coefficients, recover ``alpha`` and ``beta`` within :data:`STATED_ERROR` (relative) on GPUs with
  an energy counter; ``tests/test_phases.py`` checks it and ``benchmarks/phase_estimator.py`` records every
  error and how often the intervals cover the truth. It says nothing of a real engine's departures from the
  policy above: that error is not known from simulation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.engine_steps import EngineLimits, spread, work_segments

MIN_TICKS = 20
POWER_BIN_TICKS = 5
BOOTSTRAP_RESAMPLES = 400
BLOCK_S = 1.0
CONFIDENCE = 0.95
SEED = 0
# The largest relative error of the coefficients on the simulated runs (see the module docstring).
STATED_ERROR = {"prefill": 0.05, "decode": 0.10}
METHOD = (
    f"NNLS of each sampler tick's GPU energy less idle power x its duration on the prompt tokens prefilled and "
    f"the output tokens decoded in it (the engine's steps read from the token arrivals, prefills replayed "
    f"first come first served); {CONFIDENCE:.0%} intervals from a moving-block bootstrap over ticks "
    f"({BLOCK_S:g} s blocks, {BOOTSTRAP_RESAMPLES} resamples)"
)
NO_GPU_READINGS = (
    "no GPU energy readings in the timeline: this host has no NVML (a CPU-only host has no energy "
    "counter), so the phases cannot be split"
)


class NoEstimate(Exception):
    """Why a run's phases cannot be estimated (one line)."""


@dataclass(frozen=True)
class PhaseEstimate:
    """The phase split of one run's steady window. Energies in J, powers in W, coefficients in J per token.

    ``reason`` is None for an estimate, else why there is none (every number is then None, never 0).
    """

    reason: str | None = None
    method: str = METHOD
    energy_source: str | None = None
    ticks: int = 0
    duration_s: float | None = None
    energy_joules: float | None = None
    static_power_watts: float | None = None
    prompt_tokens: int = 0
    decoded_tokens: int = 0
    prefill_joules_per_token: float | None = None
    prefill_interval: tuple[float, float] | None = None
    decode_joules_per_token: float | None = None
    decode_interval: tuple[float, float] | None = None
    static_energy_joules: float | None = None
    prefill_energy_joules: float | None = None
    decode_energy_joules: float | None = None
    residual_energy_joules: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def available(self) -> bool:
        """Whether there is an estimate (``reason`` is None)."""
        return self.reason is None

    def share(self, part: str) -> float | None:
        """``part`` (static, prefill, decode, residual) as a fraction of the ticks' energy, or None."""
        value = getattr(self, f"{part}_energy_joules")
        if value is None or not self.energy_joules:
            return None
        return value / self.energy_joules

    def as_dict(self) -> dict[str, Any]:
        """Plain data for run.json (intervals as two-item lists, shares added)."""
        out = asdict(self)
        out["prefill_interval"] = list(self.prefill_interval) if self.prefill_interval else None
        out["decode_interval"] = list(self.decode_interval) if self.decode_interval else None
        out["notes"] = list(self.notes)
        out["shares"] = {p: self.share(p) for p in ("static", "prefill", "decode", "residual")}
        return out


# --- ticks --------------------------------------------------------------------------------------------
def tick_energy(timeline: pd.DataFrame | None, start_s: float, end_s: float) -> tuple[pd.DataFrame, str]:
    """The sampler ticks inside ``[start_s, end_s]``: ``(frame, energy source)``.

    ``frame`` has ``start_s``, ``end_s``, ``duration_s`` (s) and ``energy_joules`` (J, summed over the GPUs),
    one row per tick, contiguous; a tick whose energy is unknown (a counter went backwards) has NaN energy and is
    dropped after its tokens are counted. Raises :class:`NoEstimate` when the timeline has no GPU reading in the window.
    """
    if timeline is None or not len(timeline) or "source" not in timeline.columns:
        raise NoEstimate(NO_GPU_READINGS)
    nvml = timeline[(timeline["source"] == "nvml") & timeline["gpu_index"].notna()]
    if nvml.empty:
        raise NoEstimate(NO_GPU_READINGS)
    inside = nvml[(nvml["time_s"] >= start_s) & (nvml["time_s"] <= end_s)]
    if inside.empty:
        raise NoEstimate("the timeline has no GPU reading inside the steady window")
    keyed = inside.assign(gpu_index=inside["gpu_index"].astype(int)).groupby(["time_s", "gpu_index"])
    counters = keyed["energy_counter_joules"].last().unstack("gpu_index").sort_index()
    powers = keyed["power_watts"].last().unstack("gpu_index").sort_index()
    times = counters.index.to_numpy(dtype=float)
    if len(times) < 2:
        raise NoEstimate("fewer than two sampler ticks inside the steady window")
    durations = np.diff(times)
    total = np.zeros(len(durations))
    sources = set()
    for gpu in counters.columns:
        counter = counters[gpu].to_numpy(dtype=float)
        if np.isfinite(counter).all():
            step = np.diff(counter)
            step[step < 0] = np.nan  # a counter that wrapped or reset: that tick is dropped
            sources.add("NVML energy counter")
        else:
            power = powers[gpu].to_numpy(dtype=float)
            step = (power[1:] + power[:-1]) / 2.0 * durations  # trapezoid of the sampled power
            sources.add("sampled power (trapezoid; this GPU has no energy counter)")
        total = total + step
    frame = pd.DataFrame({"start_s": times[:-1], "end_s": times[1:], "duration_s": durations, "energy_joules": total})
    return frame, " + ".join(sorted(sources))


def tick_tokens(ticks: pd.DataFrame, requests: pd.DataFrame, engine: EngineLimits | None = None) -> pd.DataFrame:
    """``ticks`` with ``prompt_tokens`` and ``decoded_tokens`` added: the prefill and decode work that fell in
    each tick (:func:`work_segments`, shared among ticks by :func:`spread`; fractions of tokens)."""
    out = ticks.copy()
    if out.empty:
        return out.assign(prompt_tokens=0.0, decoded_tokens=0.0)
    edges = np.concatenate([out["start_s"].to_numpy(dtype=float), out["end_s"].to_numpy(dtype=float)[-1:]])
    prefill, decode = work_segments(requests, engine)
    return out.assign(prompt_tokens=spread(edges, prefill), decoded_tokens=spread(edges, decode))


# --- the fit ------------------------------------------------------------------------------------------
def nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares for a few columns: the best of the least-squares fits on every subset of
    columns whose coefficients are all >= 0 (the NNLS solution is one of them)."""
    k = x.shape[1]
    best, best_sse = np.zeros(k), float(np.dot(y, y))
    for size in range(1, k + 1):
        for cols in combinations(range(k), size):
            sub = x[:, cols]
            coef, *_ = np.linalg.lstsq(sub, y, rcond=None)
            if (coef < 0).any():
                continue
            resid = y - sub @ coef
            sse = float(np.dot(resid, resid))
            if sse < best_sse:
                best = np.zeros(k)
                best[list(cols)] = coef
                best_sse = sse
    return best


def _block_indices(n: int, block: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Moving-block bootstrap rows: ``resamples`` x ``n`` indices made of blocks of ``block`` consecutive ticks."""
    block = max(1, min(block, n))
    blocks = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(resamples, blocks))
    return (starts[:, :, None] + np.arange(block)).reshape(resamples, -1)[:, :n]


def fit(
    ticks: pd.DataFrame,
    static_power_watts: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = SEED,
    block_s: float = BLOCK_S,
) -> dict[str, Any]:
    """Coefficients (J per token) and their bootstrap intervals from a tick table with ``duration_s``,
    ``energy_joules``, ``prompt_tokens`` and ``decoded_tokens``; ``static_power_watts`` is subtracted first.

    Returns ``{"prefill": (coef, (low, high)) | None, "decode": ...}``: None for a column with no tokens.
    """
    y = ticks["energy_joules"].to_numpy(dtype=float) - static_power_watts * ticks["duration_s"].to_numpy(dtype=float)
    names = [("prefill", "prompt_tokens"), ("decode", "decoded_tokens")]
    used = [(name, col) for name, col in names if ticks[col].sum() > 0]
    out: dict[str, Any] = {name: None for name, _ in names}
    if not used:
        return out
    x = ticks[[col for _, col in used]].to_numpy(dtype=float)
    coef = nnls(x, y)
    draws = np.empty((resamples, len(used)))
    if resamples:
        block = max(1, round(block_s / float(np.median(ticks["duration_s"]))))
        rows = _block_indices(len(y), block, resamples, np.random.default_rng(seed))
        for b, idx in enumerate(rows):
            draws[b] = nnls(x[idx], y[idx])
    tail = (1 - CONFIDENCE) / 2 * 100
    for j, (name, _) in enumerate(used):
        interval = (
            (float(np.percentile(draws[:, j], tail)), float(np.percentile(draws[:, j], 100 - tail)))
            if resamples
            else None
        )
        out[name] = (float(coef[j]), interval)
    return out


@dataclass(frozen=True)
class PhaseInputs:
    """What the estimator reads of one run: the sampler's ``timeline`` and the ``requests`` table (DataFrames as
    stored), the steady window ``[start_s, end_s]`` (s, wall clock), the measured GPUs' idle power summed
    (``idle_power_watts``, W) and the engine's scheduling limits."""

    timeline: pd.DataFrame | None
    requests: pd.DataFrame | None
    start_s: float | None
    end_s: float | None
    idle_power_watts: float | None
    engine: EngineLimits = field(default_factory=EngineLimits)


def estimate(inputs: PhaseInputs, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED) -> PhaseEstimate:
    """The phase split of one run's steady window. Never raises for missing data: the estimate then carries
    ``reason`` (and no number)."""
    try:
        return _estimate(inputs, resamples, seed)
    except NoEstimate as exc:
        return PhaseEstimate(reason=str(exc))


def _estimate(inputs: PhaseInputs, resamples: int, seed: int) -> PhaseEstimate:
    start_s, end_s, idle_power_watts = inputs.start_s, inputs.end_s, inputs.idle_power_watts
    if start_s is None or end_s is None or not end_s > start_s:
        raise NoEstimate("no steady-state window was measured")
    ticks, source = tick_energy(inputs.timeline, float(start_s), float(end_s))
    if idle_power_watts is None or not math.isfinite(idle_power_watts):
        raise NoEstimate(
            "the GPUs' idle power was not measured before the run (settings: idle_power_s), so the "
            "static part cannot be fixed"
        )
    if len(ticks) < MIN_TICKS:
        raise NoEstimate(f"only {len(ticks)} sampler ticks in the steady window (at least {MIN_TICKS} needed)")
    requests = inputs.requests
    if requests is None or not len(requests):
        raise NoEstimate("the run has no per-request records")
    ticks = tick_tokens(ticks, requests, inputs.engine)
    ticks = ticks[np.isfinite(ticks["energy_joules"])].reset_index(drop=True)
    if len(ticks) < MIN_TICKS:
        raise NoEstimate(f"only {len(ticks)} sampler ticks with a known energy in the steady window")
    notes = []
    fitted = ticks
    if "sampled power" in source:
        fitted = ticks.groupby(np.arange(len(ticks)) // POWER_BIN_TICKS).sum(numeric_only=True)
        notes.append(f"no energy counter: ticks fitted in groups of {POWER_BIN_TICKS}; coarser than the counter's")
    if not (inputs.engine.max_num_seqs and inputs.engine.max_num_batched_tokens):
        notes.append(
            "the engine's limits are unknown: each prompt is placed in its first token's step, which "
            "biases the prefill coefficient low when prompts are chunked"
        )
    coefs = fit(fitted, float(idle_power_watts), resamples, seed)
    for name, what in (
        ("prefill", "no request's first token arrived inside the window"),
        ("decode", "no output token was decoded inside the window"),
    ):
        if coefs[name] is None:
            notes.append(f"{name}: {what}; its coefficient is not estimated")
    if coefs["prefill"] is None and coefs["decode"] is None:
        raise NoEstimate("no token arrived inside the steady window")
    energy = float(ticks["energy_joules"].sum())
    duration = float(ticks["duration_s"].sum())
    static = float(idle_power_watts) * duration
    prompt, decoded = float(ticks["prompt_tokens"].sum()), float(ticks["decoded_tokens"].sum())
    prefill_j = coefs["prefill"][0] * prompt if coefs["prefill"] else None
    decode_j = coefs["decode"][0] * decoded if coefs["decode"] else None
    residual = energy - static - (prefill_j or 0.0) - (decode_j or 0.0)
    return PhaseEstimate(
        reason=None,
        energy_source=source,
        ticks=len(ticks),
        duration_s=duration,
        energy_joules=energy,
        static_power_watts=float(idle_power_watts),
        prompt_tokens=int(prompt),
        decoded_tokens=int(decoded),
        prefill_joules_per_token=coefs["prefill"][0] if coefs["prefill"] else None,
        prefill_interval=coefs["prefill"][1] if coefs["prefill"] else None,
        decode_joules_per_token=coefs["decode"][0] if coefs["decode"] else None,
        decode_interval=coefs["decode"][1] if coefs["decode"] else None,
        static_energy_joules=static,
        prefill_energy_joules=prefill_j,
        decode_energy_joules=decode_j,
        residual_energy_joules=residual,
        notes=tuple(notes),
    )
