"""Signals during a sweep: SIGINT and SIGTERM stop it cleanly, SIGALRM bounds one run's time.

    with handle_signals():             # SIGINT/SIGTERM raise Interrupted from here on
        with signals_deferred():       # ... except while a backend stops or a run is saved:
            ...                        # the signal is held and raised when the block ends
        with time_limit(1800.0):       # WorkloadError(cause="timeout") after 1800 s
            ...

Only the main thread can receive signals: elsewhere (a sweep started from a worker thread) every
block here does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from harness.workloads.base import WorkloadError


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during a sweep."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _SignalState:
    depth = 0  # > 0 while cleanup that must not be cut short runs
    pending: int | None = None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _SignalState.depth:
        _SignalState.pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` inside the block (the previous handlers come back after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SignalState.depth, _SignalState.pending = 0, None
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _SignalState.pending = None


@contextlib.contextmanager
def signals_deferred(hold: bool = False) -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while stopping a backend or saving a run; raise Interrupted after.

    ``hold=True`` keeps a signal that arrived pending for the next deferred block (the run's outcome
    is saved first, then the sweep stops).
    """
    _SignalState.depth += 1
    try:
        yield
    finally:
        _SignalState.depth -= 1
    if not hold and _SignalState.depth == 0 and _SignalState.pending is not None:
        signum, _SignalState.pending = _SignalState.pending, None
        raise Interrupted(signum)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise WorkloadError(cause="timeout") in the main thread after ``seconds`` (0: no limit)."""
    if threading.current_thread() is not threading.main_thread() or not seconds:
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise WorkloadError(f"run exceeded run_timeout_s={seconds:g}", cause="timeout")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
