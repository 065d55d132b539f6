"""Measurement windows of an LLM load: the online trackers and the one replay of their events.

A tracker is a small state machine, ``waiting`` -> ``open`` -> ``closed`` (or ``missed`` when it can never
open), fed the load's events as they happen; its ``on_open``/``on_close`` callbacks open and close the
meter's window at those moments::

    tracker = SteadyTracker.for_meter(meter, cfg.max_num_seqs, num_requests)
    ...  tracker.submitted(t)     # when a request is sent (t = time.time())
    ...  tracker.first_token(t)   # when a request's first token arrives
    ...  tracker.finished(t)      # when a request finishes, succeeded or failed

* :class:`SteadyTracker`, the reference's steady window (all-at-once and fixed-concurrency loads): opens
  when M = ``max_num_seqs`` requests have their first token, closes at the (N - M + 1)-th finish, when
  the requests still unfinished can no longer fill the batch;
* :class:`ArrivalTracker`, the steady window of a rate-driven load (poisson): opens at the ``open_at``-th
  submission, closes at the ``num_requests``-th (see :mod:`harness.measuring.arrivals`).

:class:`Request` is what the measuring code reads of one LLM request (the load generator's record).
After the run, :func:`replay_bounds` feeds the stored request records through a fresh tracker of the same
kind, in time order, so the post-hoc window equals the online one. :func:`harness.measuring.steady.steady_bounds`
and :func:`harness.measuring.arrivals.steady_bounds` both go through it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harness.measuring.energy import WindowMeasurement


class RequestEvents(Protocol):
    """The times of one request that a window hears (``time.time()`` seconds; None: never happened)."""

    @property
    def submit_time_s(self) -> float | None: ...

    @property
    def first_token_time_s(self) -> float | None: ...

    @property
    def finish_time_s(self) -> float | None: ...


class Request(RequestEvents, Protocol):
    """One LLM request as the measuring code reads it (:class:`harness.workloads.base.RequestRecord`)."""

    @property
    def submit_time_s(self) -> float: ...

    @property
    def request_id(self) -> int: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def target_output_tokens(self) -> int: ...  # the drawn length the request was forced to

    @property
    def output_tokens(self) -> int: ...  # what came back

    @property
    def token_times_s(self) -> Sequence[float]: ...  # arrival time of every output token (seconds)

    @property
    def success(self) -> bool: ...

    @property
    def error(self) -> str | None: ...


class Meter(Protocol):
    """The energy windows a tracker opens and closes (:class:`harness.measuring.energy.ZeusMeter`)."""

    def begin(self, name: str) -> None: ...

    def end(self, name: str, sync: bool = True) -> WindowMeasurement: ...


class WindowTracker:
    """An online measurement window: ``waiting`` -> ``open`` -> ``closed`` (or ``missed`` when it can never
    open), with ``on_open``/``on_close`` called at the transitions (under the tracker's lock, once each).
    Subclasses decide when; every tracker counts first tokens and finishes (the adaptive stopper reads them)
    and can be closed early (:meth:`stop_early`)."""

    def __init__(
        self, can_open: bool, on_open: Callable[[], object] | None = None, on_close: Callable[[], object] | None = None
    ):
        self.on_open, self.on_close = on_open, on_close
        self.first_tokens = 0
        self.finishes = 0
        self.state = "waiting" if can_open else "missed"
        self.open_time_s: float | None = None
        self.close_time_s: float | None = None
        self._lock = threading.Lock()

    def _open(self, t: float) -> None:  # with the lock held
        self.state, self.open_time_s = "open", t
        if self.on_open:
            self.on_open()

    def _close(self, t: float) -> None:  # with the lock held
        self.state, self.close_time_s = "closed", t
        if self.on_close:
            self.on_close()

    def first_token(self, t: float) -> None:
        """A request received its first token at ``t`` (seconds, wall clock)."""
        with self._lock:
            self.first_tokens += 1

    def finished(self, t: float) -> None:
        """A request finished (succeeded or failed) at ``t`` (seconds, wall clock)."""
        with self._lock:
            self.finishes += 1

    def stop_early(self, t: float) -> None:
        """Close an open window at ``t`` before the load ends (adaptive stopping); no-op otherwise."""
        with self._lock:
            if self.state == "open":
                self._close(t)

    @property
    def bounds(self) -> tuple[float, float] | None:
        """``(open, close)`` times in seconds once the window closed, else None."""
        if self.state != "closed" or self.open_time_s is None or self.close_time_s is None:
            return None
        return self.open_time_s, self.close_time_s


class SteadyTracker(WindowTracker):
    """The reference's steady window: opens when ``max_num_seqs`` requests have their first token, closes when
    fewer than ``max_num_seqs`` are left unfinished."""

    def __init__(
        self,
        max_num_seqs: int,
        num_requests: int,
        on_open: Callable[[], object] | None = None,
        on_close: Callable[[], object] | None = None,
    ):
        if max_num_seqs < 1 or num_requests < 1:
            raise ValueError("max_num_seqs and num_requests must be positive")
        super().__init__(num_requests >= max_num_seqs, on_open, on_close)
        self.max_num_seqs, self.num_requests = max_num_seqs, num_requests
        self.close_after = num_requests - max_num_seqs + 1  # finishes that leave fewer than M unfinished

    @classmethod
    def for_meter(cls, meter: Meter, max_num_seqs: int, num_requests: int, name: str = "steady") -> SteadyTracker:
        """A tracker that opens and closes ``meter``'s window ``name``."""
        return cls(max_num_seqs, num_requests, on_open=lambda: meter.begin(name), on_close=lambda: meter.end(name))

    def first_token(self, t: float) -> None:
        with self._lock:
            self.first_tokens += 1
            if self.state == "waiting" and self.first_tokens >= self.max_num_seqs:
                self._open(t)

    def finished(self, t: float) -> None:
        with self._lock:
            self.finishes += 1
            if self.finishes < self.close_after:
                return
            if self.state == "open":
                self._close(t)
            elif self.state == "waiting":  # requests ran out before the batch ever filled
                self.state = "missed"


class ArrivalTracker(WindowTracker):
    """Steady window of a rate-driven load (poisson): opens at the ``open_at``-th submission and closes at the
    ``num_requests``-th. A :class:`WindowTracker` like the reference's steady window (states, callbacks,
    ``finishes``, ``stop_early``), so the adaptive stopper chains onto it too."""

    def __init__(
        self,
        num_requests: int,
        open_at: int,
        on_open: Callable[[], object] | None = None,
        on_close: Callable[[], object] | None = None,
    ):
        if num_requests < 1 or not 1 <= open_at <= num_requests:
            raise ValueError("need 1 <= open_at <= num_requests")
        # a window that would open and close at the same arrival is empty: it can never open
        super().__init__(open_at < num_requests, on_open, on_close)
        self.num_requests, self.open_at = num_requests, open_at
        self.submissions = 0

    def submitted(self, t: float) -> None:
        """A request was sent at ``t`` (seconds, wall clock)."""
        with self._lock:
            self.submissions += 1
            if self.state == "waiting" and self.submissions >= self.open_at:
                self._open(t)
            elif self.state == "open" and self.submissions >= self.num_requests:
                self._close(t)


SUBMIT, FIRST_TOKEN, FINISH = 0, 1, 2  # event kinds, in the order they are fed at equal times


def _events(requests: Iterable[RequestEvents], submissions: bool) -> list[tuple[float, int]]:
    """``(time_s, kind)`` of every event, sorted; at equal times submissions first, then first tokens, then
    finishes. ``submissions``: include each request's send time (a rate-driven window opens on them)."""
    out = []
    for r in requests:
        if submissions and r.submit_time_s:
            out.append((r.submit_time_s, SUBMIT))
        if r.first_token_time_s is not None:
            out.append((r.first_token_time_s, FIRST_TOKEN))
        if r.finish_time_s is not None:
            out.append((r.finish_time_s, FINISH))
    return sorted(out)


def replay_bounds(
    tracker: WindowTracker, requests: Iterable[RequestEvents], stop_time_s: float | None = None
) -> tuple[float, float] | None:
    """Feed the stored events of ``requests`` through a fresh ``tracker``; its window's ``(open, close)``
    times in seconds, or None if it never closed.

    Submissions are fed only to a tracker that hears them (``submitted``). ``stop_time_s``: the run was
    stopped early then (adaptive stopping); later events are ignored and a window still open closes at
    that time.
    """
    submitted = getattr(tracker, "submitted", None)
    for t, kind in _events(requests, submissions=submitted is not None):
        if stop_time_s is not None and t > stop_time_s:
            break
        if kind == SUBMIT:
            if submitted is not None:  # always: submissions are only replayed to a tracker that hears them
                submitted(t)
        elif kind == FIRST_TOKEN:
            tracker.first_token(t)
        else:
            tracker.finished(t)
    if stop_time_s is not None:
        tracker.stop_early(stop_time_s)
    return tracker.bounds
