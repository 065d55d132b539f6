"""Adaptive stopping: end an LLM run once its steady-state energy per token is known well enough.

The reference drains a fixed number of requests per configuration (``stop: fixed``, the default,
kept for comparability). With ``stop: adaptive`` a run may end as soon as the estimate is stable:

* during the steady-state window the energy counter (through the run's meter, i.e. Zeus) and the
  number of output tokens are read at checkpoints every ``checkpoint_s``; each checkpoint closes a
  *segment* (duration, GPU energy, tokens);
* the segments are grouped into ``num_batches`` contiguous batches of (nearly) equal size; each
  batch gives one energy-per-token value (batch energy / batch tokens);
* the estimate is window energy / window tokens (the same ratio the run reports) and its
  ``confidence`` interval half-width is ``t(confidence, num_batches - 1) * sd(batch values) /
  sqrt(num_batches)`` (the method of batch means);
* the run stops when the half-width relative to the estimate is at most ``rel_halfwidth``, the
  window has lasted at least ``min_window_s``, and at least ``max_num_seqs`` requests finished
  inside the window (the running batch was replaced once, so the estimate is not taken over one
  cohort of requests that all started together): ``stopped_by = "adaptive"``;
* if the steady window closes first (the fixed-count drain point: fewer than ``max_num_seqs``
  requests left), the run stops there too (``stopped_by = "window-closed"``) instead of draining
  the last ``max_num_seqs - 1`` requests: nothing after the window enters the run's metrics, so
  its estimate equals the fixed-count one, without the drain tail's device-seconds.

With ``stop: fixed`` every request is drained (``stopped_by = "fixed-count"``), as the reference did.

On a host without an energy counter (energy is null) the same rule runs on *time* per token
(device-seconds / token), and the run record says so (``quantity: time_per_token_s``).

The estimator (:func:`batch_means`, :func:`should_stop`, :func:`t_quantile`) is pure. The online
part is :class:`AdaptiveStopper`; every LLM backend drives it the same way (this is the hook)::

    from harness.measuring import adaptive
    from harness.measuring.windows import SteadyTracker

    tracker = SteadyTracker(cfg.max_num_seqs, n, on_open=..., on_close=...)  # as before
    stopper = adaptive.for_run(cfg, meter, tracker)   # after the tracker, before the load starts
    ...  stopper.tokens(count)        # on every token arrival, *before* tracker.first_token(t)
    ...  if stopper.poll():           # often (every decode step, or at least every checkpoint_s)
             stop the load: cancel/abandon the requests still open; the steady window is closed
    adaptive.mark_stopped(records, stopper.stop_time_s)   # when poll() returned True
    result.info["stop"] = stopper.summary()               # always (fixed runs get error bars too)

With ``stop: fixed`` the stopper never asks to stop; it still records the half-width of the
fixed-count estimate. :func:`harness.measuring.steady.llm_metrics` takes ``stop_time_s`` so that the
post-hoc window ends where the online one did; :mod:`harness.orchestration.runner` does that from
``result.info["stop"]``.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.config import DEFAULT_MIN_WINDOW_S, DEFAULT_NUM_BATCHES, DEFAULT_REL_HALFWIDTH
from harness.config import STOP_METHODS as METHODS
from harness.measuring.windows import Meter, WindowTracker

CONFIDENCE = 0.95
MAX_CHECKPOINT_S = 1.0
SEGMENT_WINDOW = "adaptive-segment"  # the meter window reopened at every checkpoint
STOPPING = ("adaptive", "window-closed")  # stopped_by values that end the load early
STOPPED_ERROR = "stopped early: adaptive stopping (the estimate was stable)"


# --- the estimator (pure) ---------------------------------------------------------------------------
def _two_sided_t_cdf(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with an integer ``df`` (closed forms, Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:  # odd
        if df == 1:
            return 2 * theta / math.pi
        term, total = c, c
        for k in range(3, df, 2):  # c + (2/3)c^3 + (2*4)/(3*5)c^5 + ...
            term *= c * c * (k - 1) / k
            total += term
        return 2 / math.pi * (theta + s * total)
    term, total = 1.0, 1.0
    for k in range(2, df, 2):  # 1 + (1/2)c^2 + (1*3)/(2*4)c^4 + ...
        term *= c * c * (k - 1) / k
        total += term
    return s * total


def t_quantile(confidence: float, df: int) -> float:
    """The two-sided Student-t critical value: P(|T| <= q) = ``confidence`` with ``df`` degrees of freedom."""
    if not 0 < confidence < 1 or df < 1 or int(df) != df:
        raise ValueError(f"need 0 < confidence < 1 and an integer df >= 1, got {confidence}, {df}")
    lo, hi = 0.0, 1.0
    while _two_sided_t_cdf(hi, int(df)) < confidence:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _two_sided_t_cdf(mid, int(df)) < confidence:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


@dataclass(frozen=True)
class Segment:
    """One checkpoint interval of the steady window."""

    start_time_s: float
    end_time_s: float
    gpu_energy_joules: float | None  # None without an energy counter
    output_tokens: int

    @property
    def duration_s(self) -> float:
        """The segment's length in seconds."""
        return self.end_time_s - self.start_time_s


@dataclass(frozen=True)
class Estimate:
    """Batch-means estimate of a per-token quantity over a window."""

    quantity: str  # "energy_per_token_joules" or "time_per_token_s"
    value: float  # window total / window tokens
    halfwidth: float  # confidence-interval half-width, in the quantity's unit
    rel_halfwidth: float  # halfwidth / value
    num_batches: int
    window_s: float
    output_tokens: int
    confidence: float

    def as_dict(self) -> dict:
        """The estimate as a JSON-ready dict (units as in the field names)."""
        return {
            "quantity": self.quantity,
            "value": self.value,
            "halfwidth": self.halfwidth,
            "rel_halfwidth": self.rel_halfwidth,
            "num_batches": self.num_batches,
            "window_s": self.window_s,
            "output_tokens": self.output_tokens,
            "confidence": self.confidence,
        }


def quantity_of(segments: Sequence[Segment]) -> str:
    """Energy per token when every segment has energy, else time per token."""
    if segments and all(s.gpu_energy_joules is not None for s in segments):
        return "energy_per_token_joules"
    return "time_per_token_s"


def batch_means(
    segments: Sequence[Segment], num_batches: int = DEFAULT_NUM_BATCHES, confidence: float = CONFIDENCE
) -> Estimate | None:
    """The estimate and its half-width from ``segments`` (in time order), or None when not computable.

    Not computable: fewer segments than batches, a batch without tokens, or a zero estimate.
    """
    if num_batches < 2:
        raise ValueError("num_batches must be at least 2")
    n = len(segments)
    if n < num_batches:
        return None
    quantity = quantity_of(segments)

    def amount(s: Segment) -> float:
        if quantity == "energy_per_token_joules" and s.gpu_energy_joules is not None:  # then every one has energy
            return s.gpu_energy_joules
        return s.duration_s

    values = []
    base, extra = divmod(n, num_batches)  # the first `extra` batches hold one segment more
    i = 0
    for b in range(num_batches):
        size = base + (1 if b < extra else 0)
        chunk = segments[i : i + size]
        i += size
        tokens = sum(s.output_tokens for s in chunk)
        if tokens <= 0:
            return None
        values.append(sum(amount(s) for s in chunk) / tokens)
    tokens = sum(s.output_tokens for s in segments)
    value = sum(amount(s) for s in segments) / tokens
    if not value > 0:
        return None
    halfwidth = t_quantile(confidence, num_batches - 1) * statistics.stdev(values) / math.sqrt(num_batches)
    return Estimate(
        quantity=quantity,
        value=value,
        halfwidth=halfwidth,
        rel_halfwidth=halfwidth / value,
        num_batches=num_batches,
        window_s=sum(s.duration_s for s in segments),
        output_tokens=tokens,
        confidence=confidence,
    )


@dataclass(frozen=True)
class StopRule:
    """When a run may stop. ``method="fixed"`` never stops early (the estimate is still recorded)."""

    method: str = "fixed"
    rel_halfwidth: float = DEFAULT_REL_HALFWIDTH
    min_window_s: float = DEFAULT_MIN_WINDOW_S
    num_batches: int = DEFAULT_NUM_BATCHES
    confidence: float = CONFIDENCE
    checkpoint_s: float | None = None  # None: min_window_s / (2 * num_batches), at most 1 s
    min_finishes: int = 0  # requests that must finish inside the window (for_run sets max_num_seqs)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown stop method {self.method!r} (known: {', '.join(METHODS)})")
        if not 0 < self.rel_halfwidth < 1:
            raise ValueError("rel_halfwidth must be between 0 and 1")
        if self.min_window_s < 0 or self.num_batches < 2:
            raise ValueError("min_window_s must be >= 0 and num_batches >= 2")

    @property
    def period_s(self) -> float:
        """Seconds between checkpoints: ``checkpoint_s``, else ``min_window_s / (2 * num_batches)`` (1 ms .. 1 s)."""
        if self.checkpoint_s is not None:
            return float(self.checkpoint_s)
        return min(MAX_CHECKPOINT_S, max(1e-3, self.min_window_s / (2 * self.num_batches)))

    @classmethod
    def from_config(cls, cfg: object) -> StopRule:
        """The rule of a Configuration (``stop`` and ``adaptive_*``; fixed where the config says nothing)."""
        method = getattr(cfg, "stop", None) or "fixed"
        rel = getattr(cfg, "adaptive_rel_halfwidth", None)
        window = getattr(cfg, "adaptive_min_window_s", None)
        batches = getattr(cfg, "adaptive_batches", None)
        return cls(
            method=method,
            rel_halfwidth=DEFAULT_REL_HALFWIDTH if rel is None else float(rel),
            min_window_s=DEFAULT_MIN_WINDOW_S if window is None else float(window),
            num_batches=DEFAULT_NUM_BATCHES if batches is None else int(batches),
            min_finishes=int(getattr(cfg, "max_num_seqs", None) or 0),
        )

    def as_dict(self) -> dict:
        """The rule as a JSON-ready dict (``checkpoint_s`` resolved to :attr:`period_s`)."""
        return {
            "method": self.method,
            "rel_halfwidth": self.rel_halfwidth,
            "min_window_s": self.min_window_s,
            "num_batches": self.num_batches,
            "confidence": self.confidence,
            "checkpoint_s": self.period_s,
            "min_finishes_in_window": self.min_finishes,
        }


def should_stop(estimate: Estimate | None, rule: StopRule, finishes_in_window: int = 0) -> bool:
    """True when an adaptive rule is satisfied by ``estimate`` (never for ``method="fixed"``)."""
    return (
        rule.method == "adaptive"
        and estimate is not None
        and estimate.window_s >= rule.min_window_s
        and finishes_in_window >= rule.min_finishes
        and estimate.rel_halfwidth <= rule.rel_halfwidth
    )


# --- online -------------------------------------------------------------------------------------------
class StoppableRequest(Protocol):
    """The fields of a request record :func:`mark_stopped` rewrites (:class:`harness.workloads.base.RequestRecord`)."""

    finish_time_s: float | None
    success: bool
    error: str | None
    output_tokens: int
    token_times_s: list[float]


class AdaptiveStopper:
    """Checkpoints the steady window through ``meter`` and decides when the run may stop.

    It chains itself onto ``tracker``'s open/close callbacks (so segments start and end exactly with
    the steady window) and asks the tracker to close the window early when the rule is met.
    Thread-safe: ``tokens`` may come from any thread.
    """

    def __init__(self, rule: StopRule, meter: Meter, tracker: WindowTracker, clock: Callable[[], float] = time.time):
        self.rule, self.meter, self.tracker, self.clock = rule, meter, tracker, clock
        self.period_s = rule.period_s
        self.segments: list[Segment] = []
        self.state = "waiting"  # waiting -> open -> closed
        self.stopped_by: str | None = None
        self.stop_time_s: float | None = None
        self.estimate: Estimate | None = None
        self._lock = threading.RLock()
        self._tokens = 0
        self._seg_start: float | None = None
        self._finishes_at_open = 0
        prev_open, prev_close = tracker.on_open, tracker.on_close

        def on_open() -> None:
            if prev_open:
                prev_open()
            self._open()

        def on_close() -> None:
            if prev_close:
                prev_close()
            self._close()

        tracker.on_open, tracker.on_close = on_open, on_close

    # events
    def tokens(self, count: int = 1) -> None:
        """``count`` output tokens arrived (call before ``tracker.first_token`` for a first token)."""
        with self._lock:
            self._tokens += count

    def _open(self) -> None:
        with self._lock:
            if self.state != "waiting":
                return
            self.meter.begin(SEGMENT_WINDOW)
            self._seg_start, self._tokens, self.state = self.clock(), 0, "open"
            self._finishes_at_open = self.tracker.finishes

    def _end_segment(self) -> None:
        window = self.meter.end(SEGMENT_WINDOW, sync=False)
        tokens, self._tokens = self._tokens, 0
        self.segments.append(Segment(window.start_time_s, window.end_time_s, window.total_gpu_energy_joules, tokens))
        self._seg_start = None

    def _close(self) -> None:
        """The steady window closed: by draining (fixed count) or by our own early stop."""
        with self._lock:
            if self.state != "open":
                return
            self.state = "closed"
            if self.stopped_by == "adaptive":  # poll() already ended the last segment
                return
            # the batch can no longer be filled (the fixed-count drain point)
            if self.rule.method == "adaptive":  # stop the load here: the tail would not be measured
                self.stopped_by, self.stop_time_s = "window-closed", self.tracker.close_time_s
            else:
                self.stopped_by = "fixed-count"
            self._end_segment()
            self.estimate = batch_means(self.segments, self.rule.num_batches, self.rule.confidence)

    @property
    def finishes_in_window(self) -> int:
        """Requests that finished since the steady window opened (0 before it opens)."""
        return self.tracker.finishes - self._finishes_at_open if self.state != "waiting" else 0

    def poll(self, now: float | None = None) -> bool:
        """Take a checkpoint when one is due; True once the run should stop (the window is then closed)."""
        with self._lock:
            if self.stopped_by in STOPPING:
                return True
            if self.state != "open":
                return False
            now = self.clock() if now is None else now
            if self._seg_start is None or now - self._seg_start < self.period_s:  # open: a segment is running
                return False
            self._end_segment()
            self.estimate = batch_means(self.segments, self.rule.num_batches, self.rule.confidence)
            if not should_stop(self.estimate, self.rule, self.finishes_in_window):
                self.meter.begin(SEGMENT_WINDOW)
                self._seg_start = self.clock()
                return False
            self.stopped_by = "adaptive"
            self.stop_time_s = self.segments[-1].end_time_s
        self.tracker.stop_early(self.stop_time_s)  # closes the steady window (the meter's "steady")
        return True

    @property
    def stopped(self) -> bool:
        """True once the load should end (the estimate was stable, or the window closed under ``adaptive``)."""
        return self.stopped_by in STOPPING

    def summary(self) -> dict:
        """What the run record keeps (``WorkloadResult.info["stop"]``)."""
        with self._lock:
            est = self.estimate
            return {
                "rule": self.rule.as_dict(),
                "method": self.rule.method,
                "stopped_by": self.stopped_by,
                "stop_time_s": self.stop_time_s,
                "estimate": est.as_dict() if est else None,
                "finishes_in_window": self.finishes_in_window,
                "segments": {
                    "start_time_s": [s.start_time_s for s in self.segments],
                    "end_time_s": [s.end_time_s for s in self.segments],
                    "gpu_energy_joules": [s.gpu_energy_joules for s in self.segments],
                    "output_tokens": [s.output_tokens for s in self.segments],
                },
            }


def for_run(
    cfg: object, meter: Meter, tracker: WindowTracker, clock: Callable[[], float] = time.time
) -> AdaptiveStopper:
    """The stopper of an LLM run: its rule comes from the configuration (``stop``, ``adaptive_*``)."""
    return AdaptiveStopper(StopRule.from_config(cfg), meter, tracker, clock=clock)


def mark_stopped(records: Iterable[StoppableRequest], stop_time_s: float | None) -> int:
    """Mark the requests that had not finished at ``stop_time_s`` as stopped (not failed); returns how many.

    Their ``finish_time_s`` becomes None and ``error`` :data:`STOPPED_ERROR`; tokens that arrived are kept.
    """
    if stop_time_s is None:
        return 0
    count = 0
    for r in records:
        if r.finish_time_s is None or r.finish_time_s > stop_time_s:
            r.finish_time_s = None
            r.success = False
            r.error = STOPPED_ERROR
            r.output_tokens = len(r.token_times_s) if r.token_times_s else r.output_tokens
            count += 1
    return count


def is_stopped(record: object) -> bool:
    """A request cut short by adaptive stopping (not a failure)."""
    return getattr(record, "error", None) == STOPPED_ERROR


def segments_from_summary(summary: dict | None) -> list[Segment]:
    """The segments a :meth:`AdaptiveStopper.summary` recorded (``[]`` without any)."""
    seg = (summary or {}).get("segments") or {}
    columns = (
        seg.get("start_time_s", ()),
        seg.get("end_time_s", ()),
        seg.get("gpu_energy_joules", ()),
        seg.get("output_tokens", ()),
    )
    return [Segment(a, b, e, int(n)) for a, b, e, n in zip(*columns, strict=False)]


__all__ = [
    "METHODS",
    "STOPPED_ERROR",
    "AdaptiveStopper",
    "Estimate",
    "Segment",
    "StopRule",
    "batch_means",
    "for_run",
    "is_stopped",
    "mark_stopped",
    "should_stop",
    "t_quantile",
]
