"""When each request of an LLM load is sent, and the steady window that goes with each arrival pattern.

Three patterns, as ``vllm bench serve`` offers them:

``all-at-once`` (the default, the reference's)
    every request is submitted at time 0; the server admits ``max_num_seqs`` of them.
    *Steady window*: opens when M = ``max_num_seqs`` requests have received their first token and closes at
    the (N - M + 1)-th finish, when the requests still unfinished can no longer fill the batch
    (:class:`harness.measuring.windows.SteadyTracker`).

``poisson`` at ``rate_per_s`` requests per second, optionally ``burstiness`` (gamma)
    inter-arrival gaps are gamma-distributed with shape ``burstiness`` and mean ``1 / rate_per_s``
    (``burstiness`` 1 is a Poisson process; below 1 burstier, above 1 more regular). The first request goes
    at time 0; the gaps are drawn from the run's seed, so a rerun sends at the same offsets.
    *Steady window*: the offered load is stationary from the first arrival to the last one; the server starts
    empty, so the first ``warmup_fraction`` of the arrivals (default 10%) are a warm-up. The window opens at
    the arrival of request ``ceil(warmup_fraction x N)`` (counting from 1, at least the first) and closes at
    the arrival of the last request (after it the offered load falls to zero and the server drains).
    Batch saturation is not a validity check here: at a rate, the batch is whatever the load makes it.

``concurrency`` (a fixed number C of requests in flight)
    C requests are sent at once; each time one finishes, the next is sent.
    *Steady window*: as all-at-once with M = min(C, ``max_num_seqs``): opens when M requests have their
    first token, closes when fewer than M requests are left unfinished.

Online, the load generator asks a :class:`Gate` before it sends each request (:meth:`Gate.send`), and the
tracker of the pattern (:func:`tracker_for`; the trackers live in :mod:`harness.measuring.windows`) hears
every submission, first token and finish; after the run, :func:`steady_bounds` replays the same events
through the same tracker (:func:`harness.measuring.windows.replay_bounds`), so the post-hoc window equals
the online one.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from harness.errors import ConfigError
from harness.measuring.windows import ArrivalTracker, RequestEvents, SteadyTracker, WindowTracker, replay_bounds

PATTERNS = ("all-at-once", "poisson", "concurrency")
DEFAULT_WARMUP_FRACTION = 0.1


@dataclass(frozen=True)
class Arrival:
    """An arrival pattern (see the module docstring)."""

    pattern: str = "all-at-once"
    rate_per_s: float | None = None  # poisson
    burstiness: float = 1.0  # poisson: gamma shape
    concurrency: int | None = None  # concurrency
    warmup_fraction: float = DEFAULT_WARMUP_FRACTION  # poisson
    seed: int = 0

    def offsets_s(self, n: int) -> list[float] | None:
        """Send time of each request in seconds after the load starts (poisson), else None."""
        if self.pattern != "poisson":
            return None
        if self.rate_per_s is None:
            raise ConfigError("arrival: poisson needs rate_per_s")
        import numpy as np

        rng = np.random.default_rng([self.seed, 7919])
        gaps = rng.gamma(self.burstiness, 1.0 / (self.rate_per_s * self.burstiness), size=max(0, n - 1))
        return [0.0, *np.cumsum(gaps).tolist()][:n]

    def effective_batch(self, max_num_seqs: int) -> int:
        """The batch the steady window waits for (all-at-once and concurrency)."""
        if self.pattern == "concurrency" and self.concurrency is not None:  # from_options requires it here
            return max(1, min(int(self.concurrency), int(max_num_seqs)))
        return int(max_num_seqs)

    def as_info(self) -> dict:
        """The pattern as a JSON-ready dict (what ``info["load"]`` of a run records)."""
        return asdict(self)

    @classmethod
    def from_info(cls, info: dict | None) -> Arrival:
        """The pattern recorded by :meth:`as_info` (unknown keys ignored; none: all-at-once)."""
        info = dict(info or {})
        known = {k: info[k] for k in cls.__dataclass_fields__ if k in info}
        return cls(**known)


def from_options(opts: dict, seed: int = 0, where: str = "options") -> Arrival:
    """The arrival pattern of a run from its backend options (``arrival``, ``rate_per_s``, ``burstiness``,
    ``concurrency``, ``warmup_fraction``); a bad value is a one-line :class:`ConfigError`."""
    pattern = opts.get("arrival") or "all-at-once"
    if pattern not in PATTERNS:
        raise ConfigError(f"{where}.arrival must be one of {', '.join(PATTERNS)}, got {pattern!r}")

    def number(key: str, default: float | None = None, minimum: float = 0.0, strict: bool = True) -> float | None:
        value = opts.get(key, default)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or (value <= minimum if strict else value < minimum)
        ):
            raise ConfigError(f"{where}.{key} must be a number {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return float(value)

    rate = number("rate_per_s")
    burst = number("burstiness", 1.0)
    warm = number("warmup_fraction", DEFAULT_WARMUP_FRACTION, strict=False)
    if warm is not None and warm >= 1:
        raise ConfigError(f"{where}.warmup_fraction must be below 1, got {warm:g}")
    conc = opts.get("concurrency")
    if conc is not None and (isinstance(conc, bool) or not isinstance(conc, int) or conc < 1):
        raise ConfigError(f"{where}.concurrency must be a positive integer, got {conc!r}")
    if pattern == "poisson" and rate is None:
        raise ConfigError(f"{where}.rate_per_s is required with arrival: poisson")
    if pattern == "concurrency" and conc is None:
        raise ConfigError(f"{where}.concurrency is required with arrival: concurrency")
    if pattern != "poisson":
        for key in ("rate_per_s", "warmup_fraction") + (("burstiness",) if "burstiness" in opts else ()):
            if opts.get(key) is not None:
                raise ConfigError(f"{where}.{key} only applies with arrival: poisson")
    if pattern != "concurrency" and conc is not None:
        raise ConfigError(f"{where}.concurrency only applies with arrival: concurrency")
    return Arrival(
        pattern=pattern,
        rate_per_s=rate,
        burstiness=burst if pattern == "poisson" and burst is not None else 1.0,
        concurrency=conc,
        warmup_fraction=warm if pattern == "poisson" and warm is not None else DEFAULT_WARMUP_FRACTION,
        seed=int(seed),
    )


def tracker_for(
    arrival: Arrival,
    max_num_seqs: int,
    num_requests: int,
    on_open: Callable[[], object] | None = None,
    on_close: Callable[[], object] | None = None,
) -> WindowTracker:
    """The steady-window tracker of ``arrival`` (see the module docstring)."""
    if arrival.pattern == "poisson":
        open_at = max(1, math.ceil(arrival.warmup_fraction * num_requests))
        return ArrivalTracker(num_requests, open_at, on_open, on_close)
    return SteadyTracker(arrival.effective_batch(max_num_seqs), num_requests, on_open=on_open, on_close=on_close)


def steady_bounds(
    requests: Sequence[RequestEvents], arrival: Arrival, max_num_seqs: int, stop_time_s: float | None = None
) -> tuple[float, float] | None:
    """Times (seconds) at which ``arrival``'s steady window opened and closed, or None if it never did: the
    online window replayed (:func:`harness.measuring.windows.replay_bounds`) through the pattern's tracker
    from the requests' submissions, first tokens and finishes."""
    if not requests:
        return None
    return replay_bounds(tracker_for(arrival, max_num_seqs, len(requests)), requests, stop_time_s)


class SentRequest(Protocol):
    """The fields of a request record the :class:`Gate` stamps (:class:`harness.workloads.base.RequestRecord`)."""

    submit_time_s: float  # wall clock seconds (``clock()``) when it was sent
    success: bool
    error: str | None


class Gate:
    """Holds each request back until its pattern lets it go (used by :mod:`harness.workloads.loadgen`)."""

    def __init__(
        self,
        arrival: Arrival,
        num_requests: int,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        monotonic: Callable[[], float] | None = None,
    ):
        """``sleep`` (seconds) and ``monotonic`` (a clock in seconds) are the event loop's unless a test fakes them."""
        import time

        self.arrival = arrival
        self.offsets = arrival.offsets_s(num_requests)
        self._sleep, self._monotonic = sleep, monotonic or time.monotonic
        self._slots = (
            asyncio.Semaphore(int(arrival.concurrency))
            if arrival.pattern == "concurrency" and arrival.concurrency is not None
            else None
        )
        self._t0: float | None = None
        self._order: list[asyncio.Event] = [asyncio.Event() for _ in range(num_requests)] if self._slots else []
        if self._order:
            self._order[0].set()

    async def send(
        self,
        index: int,
        rec: SentRequest,
        tracker: WindowTracker,
        clock: Callable[[], float],
        request: Callable[[], Awaitable[object]],
    ) -> None:
        """Wait for request ``index``'s turn, stamp its submission (and tell the tracker), then run
        ``request()``; a request cancelled before it was sent is recorded as failed, never sent."""
        if self._t0 is None:
            self._t0 = self._monotonic()
        acquired = False
        try:
            if self.offsets is not None:
                delay = self._t0 + self.offsets[index] - self._monotonic()
                if delay > 0:
                    await self._sleep(delay)
            elif self._slots is not None:  # in index order: request k goes once k-1 has a slot
                await self._order[index].wait()
                await self._slots.acquire()
                acquired = True
                if index + 1 < len(self._order):
                    self._order[index + 1].set()
        except asyncio.CancelledError:
            rec.success, rec.error = False, rec.error or "cancelled"
            rec.submit_time_s = rec.submit_time_s or clock()
            raise
        rec.submit_time_s = clock()
        submitted = getattr(tracker, "submitted", None)
        if submitted is not None:
            submitted(rec.submit_time_s)
        try:
            await request()
        finally:
            if acquired and self._slots is not None:  # acquired: there are slots
                self._slots.release()
