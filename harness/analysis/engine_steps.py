"""The serving engine's steps read back from token arrivals: which prompt and output tokens were worked on when.

    from harness.analysis.engine_steps import EngineLimits, work_segments, spread
    prefill, decode = work_segments(requests, EngineLimits(max_num_seqs=64, max_num_batched_tokens=8192))
    spread(edges, prefill)     # prompt tokens prefilled in each interval (edges[k], edges[k+1]] (fractions)

A continuous-batching engine (vLLM) runs in steps: each step decodes one token for every running request
past its prefill and spends the rest of its token budget on prompts, and every token it produces reaches the
client at the step's end. So the output tokens' arrival times mark the steps, and the work of each step can
be laid out in time: the decoded tokens that arrived at its end, and the prompt tokens it prefilled (replayed
from the engine's scheduling policy, :func:`work_segments`). :mod:`harness.analysis.phases` uses this to
split a run's energy between prefill and decode; its docstring says what the layout assumes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def _seconds(value: Any) -> float | None:
    """``value`` as a finite float (seconds, or a count), or None (missing, NaN, not a number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _token_times(row: Any) -> np.ndarray:
    """A request's output-token arrival times (s); spread evenly from first token to finish when not recorded."""
    recorded = getattr(row, "token_times_s", None)
    if recorded is not None and not (isinstance(recorded, float) and math.isnan(recorded)) and len(recorded):
        return np.asarray(recorded, dtype=float)
    first, finish = _seconds(row.first_token_time_s), _seconds(getattr(row, "finish_time_s", None))
    n = int(_seconds(row.output_tokens) or 0)
    if first is None or n <= 0:
        return np.empty(0)
    if n == 1 or finish is None:
        return np.array([first])
    return np.linspace(first, finish, n)


STEP_TOLERANCE = 0.3  # arrivals closer than this fraction of the median inter-token gap belong to one engine step


@dataclass(frozen=True)
class Segments:
    """Token work as time segments: ``weight`` tokens spread evenly over ``(start_s, end_s]`` (arrays, s)."""

    start_s: np.ndarray
    end_s: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class EngineLimits:
    """The serving engine's scheduling limits (None: unknown): at most ``max_num_seqs`` requests running and
    ``max_num_batched_tokens`` tokens (decoded plus prefilled) per step."""

    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None


@dataclass(frozen=True)
class _StepGrid:
    """The engine's steps as the token arrivals mark them: step ``c`` runs over ``(start_s[c], end_s[c]]``."""

    start_s: np.ndarray
    end_s: np.ndarray

    def of(self, arrivals: np.ndarray) -> np.ndarray:
        """The step that emitted each token arrival (the last step ending at or before it)."""
        index = np.searchsorted(self.end_s, np.asarray(arrivals, dtype=float), side="right") - 1
        return np.clip(index, 0, len(self.end_s) - 1)

    def ending_after(self, times: np.ndarray) -> np.ndarray:
        """The first step ending after each time (a request submitted then can take part in it)."""
        index = np.searchsorted(self.end_s, np.asarray(times, dtype=float), side="right")
        return np.clip(index, 0, len(self.end_s) - 1)


def work_segments(requests: pd.DataFrame, engine: EngineLimits | None = None) -> tuple[Segments, Segments]:
    """(prefill, decode) work of ``requests`` as segments of the engine's steps.

    The engine emits every running request's next token at the end of each step, so the output tokens'
    arrival times mark the steps: arrivals closer together than :data:`STEP_TOLERANCE` x the median
    inter-token gap are one step, and a step runs from the previous step's end to its own. A decoded token
    is the work of the step it arrived at. A prompt is the work of the steps of its prefill, the last of which
    emits its first token: with the engine's limits known, the prefills are replayed as the engine schedules
    them (:func:`_replay_prefills`); without them a prompt is the work of its first token's step.
    """
    engine = engine or EngineLimits()
    firsts, prompts, decoded, gaps, lasts, submits = [], [], [], [], [], []
    for row in requests.itertuples(index=False):
        times = np.sort(_token_times(row))
        if not len(times):
            continue
        firsts.append(times[0])
        lasts.append(times[-1])
        submit = _seconds(getattr(row, "submit_time_s", None))
        submits.append(-np.inf if submit is None else submit)
        prompts.append(_seconds(row.prompt_tokens) or 0.0)
        decoded.append(times[1:])
        gaps.append(np.diff(times))
    empty = Segments(np.empty(0), np.empty(0), np.empty(0))
    if not firsts:
        return empty, empty
    first_t = np.asarray(firsts, dtype=float)
    decoded_t = np.concatenate(decoded)
    positive = np.concatenate(gaps)
    positive = positive[positive > 0]
    arrivals = np.sort(np.concatenate([first_t, decoded_t]))
    tolerance = STEP_TOLERANCE * float(np.median(positive)) if len(positive) else 0.0
    new_step = np.concatenate([[True], np.diff(arrivals) > tolerance])
    step_end = arrivals[new_step]  # a step ends at its first arrival
    typical = float(np.median(np.diff(step_end))) if len(step_end) > 1 else 0.0
    grid = _StepGrid(np.concatenate([[step_end[0] - typical], step_end[:-1]]), step_end)
    d_steps = grid.of(decoded_t)
    decode = Segments(grid.start_s[d_steps], grid.end_s[d_steps], np.ones(len(decoded_t)))
    f_steps = grid.of(first_t)
    prompt_w = np.asarray(prompts, dtype=float)
    if not engine.max_num_batched_tokens or not engine.max_num_seqs:
        return Segments(grid.start_s[f_steps], grid.end_s[f_steps], prompt_w), decode
    capacity = float(engine.max_num_batched_tokens) - np.bincount(d_steps, minlength=len(step_end))
    steps, weights = _replay_prefills(
        _Prefills(f_steps, grid.of(np.asarray(lasts)), grid.ending_after(np.asarray(submits)), prompt_w),
        np.maximum(capacity, 0.0),
        int(engine.max_num_seqs),
    )
    return Segments(grid.start_s[steps], grid.end_s[steps], weights), decode


@dataclass(frozen=True)
class _Prefills:
    """Per request: the step of its first token, of its last token, of its submission, and its prompt tokens."""

    first_step: np.ndarray
    last_step: np.ndarray
    submit_step: np.ndarray
    prompt_tokens: np.ndarray


def _replay_prefills(requests: _Prefills, capacity: np.ndarray, max_num_seqs: int) -> tuple[np.ndarray, np.ndarray]:
    """(step, tokens) pieces of every prompt's prefill, replaying the engine's first-come-first-served schedule.

    Requests are admitted in the order of their first tokens, once submitted, while fewer than
    ``max_num_seqs`` run (a request leaves after the step of its last token). Each step the admitted prompts,
    oldest first, take the step's spare budget (``capacity``: the token budget less that step's decoded
    tokens). What the replay has not prefilled by a request's first token (the engine did not do as replayed)
    is put in that step, so every prompt is counted once, never after its first token.
    """
    order = list(np.lexsort((requests.submit_step, requests.first_step)))
    leaving = np.bincount(requests.last_step, minlength=len(capacity))
    waiting = deque(order)
    active: deque[list] = deque()  # [request, prompt tokens still to prefill]
    running = 0
    steps: list[int] = []
    weights: list[float] = []
    for c in range(len(capacity)):
        if c:
            running -= int(leaving[c - 1])
        while waiting and (
            (running < max_num_seqs and requests.submit_step[waiting[0]] <= c) or requests.first_step[waiting[0]] <= c
        ):
            r = waiting.popleft()
            active.append([r, float(requests.prompt_tokens[r])])
            running += 1
        spare = float(capacity[c])
        for item in active:
            r, need = item
            take = need if requests.first_step[r] <= c else min(need, spare)
            if take > 0:
                steps.append(c)
                weights.append(take)
                item[1] = need - take
                spare = max(0.0, spare - take)
        while active and active[0][1] <= 0:
            active.popleft()
        if any(item[1] <= 0 for item in active):
            active = deque(item for item in active if item[1] > 0)
    return np.asarray(steps, dtype=int), np.asarray(weights, dtype=float)


def spread(edges: np.ndarray, segments: Segments) -> np.ndarray:
    """Each segment's weight shared among the ticks ``(edges[k], edges[k+1]]`` in proportion to its time in them.

    The cumulative weight delivered by time ``t`` is piecewise linear (each segment ramps from 0 at its start to
    its weight at its end), evaluated at the edges from the sorted ramp breakpoints; times are taken relative to
    the first edge so that wall-clock seconds keep their precision. A zero-length segment is a point mass.
    """
    origin = float(edges[0]) if len(edges) else 0.0
    t = np.asarray(edges, dtype=float) - origin
    start, end = segments.start_s - origin, segments.end_s - origin
    length = end - start
    ramp = length > 0
    slope = segments.weight[ramp] / length[ramp]
    points = np.concatenate([start[ramp], end[ramp]])
    deltas = np.concatenate([slope, -slope])
    order = np.argsort(points, kind="stable")
    points, deltas = points[order], deltas[order]
    c1 = np.concatenate([[0.0], np.cumsum(deltas)])
    c2 = np.concatenate([[0.0], np.cumsum(deltas * points)])
    idx = np.searchsorted(points, t, side="right")
    cumulative = t * c1[idx] - c2[idx]
    per_tick = np.diff(cumulative)
    if (~ramp).any():
        per_tick = per_tick + _in_ticks(np.asarray(edges, dtype=float), segments.end_s[~ramp], segments.weight[~ramp])
    return per_tick


def _in_ticks(edges: np.ndarray, times: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Sum of ``weights`` (1 each by default) of the ``times`` falling in each tick ``(edges[k], edges[k+1]]``."""
    index = np.searchsorted(edges, times, side="left") - 1
    keep = (index >= 0) & (index < len(edges) - 1)
    w = np.ones(len(times)) if weights is None else np.asarray(weights, dtype=float)
    return np.bincount(index[keep], weights=w[keep], minlength=len(edges) - 1)
