"""Arrival patterns and their steady windows, exactly: options and their one-line errors, send offsets, the
trackers' transitions, the post-hoc replay and the gate (asyncio on a fake clock)."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.measuring import arrivals
from harness.measuring.arrivals import Arrival, ArrivalTracker
from harness.measuring.steady import SteadyTracker
from harness.workloads.base import RequestRecord

# --- options ------------------------------------------------------------------------------------------


def test_defaults_and_every_option_read():
    assert arrivals.from_options({}) == Arrival("all-at-once", None, 1.0, None, 0.1, 0)
    assert arrivals.from_options({"arrival": None}, seed=4) == Arrival(seed=4)
    assert arrivals.from_options(
        {"arrival": "poisson", "rate_per_s": 2, "burstiness": 0.5, "warmup_fraction": 0}, seed=7
    ) == Arrival("poisson", 2.0, 0.5, None, 0.0, 7)
    assert arrivals.from_options({"arrival": "poisson", "rate_per_s": 2.5}) == Arrival(
        "poisson", 2.5, 1.0, None, 0.1, 0
    )
    assert arrivals.from_options({"arrival": "concurrency", "concurrency": 3}, seed=1) == Arrival(
        "concurrency", None, 1.0, 3, 0.1, 1
    )
    assert arrivals.from_options({"arrival": "concurrency", "concurrency": 3, "burstiness": None}).burstiness == 1.0
    assert arrivals.from_options({"arrival": "concurrency", "concurrency": 1}).concurrency == 1
    got = arrivals.from_options({"arrival": "poisson", "rate_per_s": 2}, seed="5")
    assert got.seed == 5 and isinstance(got.rate_per_s, float) and isinstance(got.burstiness, float)


@pytest.mark.parametrize(
    "opts, message",
    [
        ({"arrival": "trickle"}, "o.arrival must be one of all-at-once, poisson, concurrency, got 'trickle'"),
        ({"arrival": "poisson"}, "o.rate_per_s is required with arrival: poisson"),
        ({"arrival": "poisson", "rate_per_s": 0}, "o.rate_per_s must be a number > 0, got 0"),
        ({"arrival": "poisson", "rate_per_s": -1.5}, "o.rate_per_s must be a number > 0, got -1.5"),
        ({"arrival": "poisson", "rate_per_s": True}, "o.rate_per_s must be a number > 0, got True"),
        ({"arrival": "poisson", "rate_per_s": "2"}, "o.rate_per_s must be a number > 0, got '2'"),
        ({"arrival": "poisson", "rate_per_s": float("inf")}, "o.rate_per_s must be a number > 0, got inf"),
        ({"arrival": "poisson", "rate_per_s": 1, "burstiness": 0}, "o.burstiness must be a number > 0, got 0"),
        (
            {"arrival": "poisson", "rate_per_s": 1, "warmup_fraction": -0.1},
            "o.warmup_fraction must be a number >= 0, got -0.1",
        ),
        ({"arrival": "poisson", "rate_per_s": 1, "warmup_fraction": 1.0}, "o.warmup_fraction must be below 1, got 1"),
        ({"arrival": "poisson", "rate_per_s": 1, "warmup_fraction": 1.5}, "o.warmup_fraction must be below 1, got 1.5"),
        ({"arrival": "concurrency"}, "o.concurrency is required with arrival: concurrency"),
        ({"arrival": "concurrency", "concurrency": 0}, "o.concurrency must be a positive integer, got 0"),
        ({"arrival": "concurrency", "concurrency": 2.0}, "o.concurrency must be a positive integer, got 2.0"),
        ({"arrival": "concurrency", "concurrency": True}, "o.concurrency must be a positive integer, got True"),
        ({"rate_per_s": 2}, "o.rate_per_s only applies with arrival: poisson"),
        ({"warmup_fraction": 0.2}, "o.warmup_fraction only applies with arrival: poisson"),
        (
            {"arrival": "concurrency", "concurrency": 2, "burstiness": 2},
            "o.burstiness only applies with arrival: poisson",
        ),
        (
            {"arrival": "poisson", "rate_per_s": 2, "concurrency": 2},
            "o.concurrency only applies with arrival: concurrency",
        ),
        ({"concurrency": 2}, "o.concurrency only applies with arrival: concurrency"),
    ],
)
def test_bad_options_are_one_line_errors(opts, message):
    with pytest.raises(ConfigError) as err:
        arrivals.from_options(opts, where="o")
    assert str(err.value) == message


def test_a_warmup_fraction_of_zero_is_allowed_and_the_default_where_is_options():
    assert arrivals.from_options({"arrival": "poisson", "rate_per_s": 1, "warmup_fraction": 0}).warmup_fraction == 0.0
    with pytest.raises(ConfigError, match=r"^options\.arrival must be"):
        arrivals.from_options({"arrival": "x"})


# --- offsets and batches ------------------------------------------------------------------------------


def test_poisson_offsets_are_cumulative_gamma_gaps_from_the_seed():
    arrival = Arrival("poisson", rate_per_s=4.0, burstiness=2.0, seed=3)
    rng = np.random.default_rng([3, 7919])
    gaps = rng.gamma(2.0, 1.0 / (4.0 * 2.0), size=4)
    assert arrival.offsets_s(5) == pytest.approx([0.0, *np.cumsum(gaps)], rel=1e-12)
    assert arrival.offsets_s(1) == [0.0] and arrival.offsets_s(0) == []
    assert Arrival("poisson", rate_per_s=1.0, seed=3).offsets_s(3) != Arrival(
        "poisson", rate_per_s=1.0, seed=4
    ).offsets_s(3)
    assert Arrival().offsets_s(5) is None and Arrival("concurrency", concurrency=2).offsets_s(5) is None


def test_effective_batch():
    assert Arrival().effective_batch(8) == 8 and Arrival("poisson", rate_per_s=1).effective_batch(8) == 8
    conc = Arrival("concurrency", concurrency=3)
    assert (conc.effective_batch(8), conc.effective_batch(2), conc.effective_batch(3)) == (3, 2, 3)
    assert Arrival("concurrency", concurrency=0).effective_batch(4) == 1


def test_a_concurrency_on_another_pattern_limits_nothing():
    # an Arrival built directly (from_options refuses this): only the concurrency pattern reads it
    stray = Arrival("poisson", rate_per_s=1.0, concurrency=2)
    assert stray.effective_batch(8) == 8
    assert arrivals.Gate(stray, 3)._slots is None
    assert arrivals.Gate(Arrival(concurrency=1), 3)._slots is None


def test_options_written_as_null_take_the_defaults():
    for pattern in ("poisson", "all-at-once"):
        opts = {"arrival": pattern, "rate_per_s": 2.0 if pattern == "poisson" else None}
        arrival = arrivals.from_options({**opts, "burstiness": None, "warmup_fraction": None})
        assert (arrival.burstiness, arrival.warmup_fraction) == (1.0, arrivals.DEFAULT_WARMUP_FRACTION)


def test_poisson_without_a_rate_has_no_offsets():
    with pytest.raises(ConfigError) as err:
        Arrival("poisson").offsets_s(3)
    assert str(err.value) == "arrival: poisson needs rate_per_s"


def test_info_round_trip():
    arrival = Arrival("poisson", 2.0, 0.5, None, 0.2, 9)
    assert arrival.as_info() == {
        "pattern": "poisson",
        "rate_per_s": 2.0,
        "burstiness": 0.5,
        "concurrency": None,
        "warmup_fraction": 0.2,
        "seed": 9,
    }
    assert Arrival.from_info(arrival.as_info()) == arrival
    assert Arrival.from_info({**arrival.as_info(), "extra": 1}) == arrival
    assert Arrival.from_info(None) == Arrival() and Arrival.from_info(
        {"pattern": "concurrency", "concurrency": 2}
    ) == Arrival("concurrency", concurrency=2)


# --- trackers -----------------------------------------------------------------------------------------


def test_the_arrival_tracker_opens_at_the_kth_submission_and_closes_at_the_last():
    log = []
    tracker = ArrivalTracker(4, 2, on_open=lambda: log.append("open"), on_close=lambda: log.append("close"))
    assert tracker.state == "waiting" and tracker.bounds is None and tracker.submissions == 0
    tracker.submitted(1.0)
    assert tracker.state == "waiting" and log == []
    tracker.submitted(2.0)
    assert tracker.state == "open" and tracker.open_time_s == 2.0 and log == ["open"]
    tracker.first_token(2.5)
    tracker.finished(2.7)
    tracker.submitted(3.0)
    assert tracker.state == "open"
    tracker.submitted(4.0)
    assert tracker.state == "closed" and tracker.bounds == (2.0, 4.0) and log == ["open", "close"]
    tracker.submitted(5.0)  # nothing after the close
    assert tracker.bounds == (2.0, 4.0) and log == ["open", "close"] and tracker.submissions == 5
    assert (tracker.first_tokens, tracker.finishes) == (1, 1)


def test_an_arrival_window_that_would_be_empty_never_opens():
    tracker = ArrivalTracker(3, 3)
    assert tracker.state == "missed"
    for t in (1.0, 2.0, 3.0):
        tracker.submitted(t)
    assert tracker.state == "missed" and tracker.bounds is None
    first = ArrivalTracker(3, 1)
    first.submitted(0.5)
    assert first.state == "open" and first.open_time_s == 0.5
    first.stop_early(0.9)
    assert first.bounds == (0.5, 0.9)
    for bad in ((0, 1), (3, 0), (3, 4)):
        with pytest.raises(ValueError) as err:  # noqa: PT011
            ArrivalTracker(*bad)
        assert str(err.value) == "need 1 <= open_at <= num_requests"
    single = ArrivalTracker(1, 1)  # one request: its arrival would open and close the window at once
    assert single.state == "missed"


def test_tracker_for_each_pattern():
    poisson = arrivals.tracker_for(Arrival("poisson", rate_per_s=1.0, warmup_fraction=0.25), 4, 10)
    assert isinstance(poisson, ArrivalTracker) and (poisson.open_at, poisson.num_requests) == (3, 10)  # ceil(2.5)
    assert arrivals.tracker_for(Arrival("poisson", rate_per_s=1.0, warmup_fraction=0.0), 4, 10).open_at == 1
    assert arrivals.tracker_for(Arrival("poisson", rate_per_s=1.0, warmup_fraction=0.2), 4, 10).open_at == 2
    conc = arrivals.tracker_for(Arrival("concurrency", concurrency=2), 8, 10)
    assert isinstance(conc, SteadyTracker) and (conc.max_num_seqs, conc.num_requests) == (2, 10)
    default = arrivals.tracker_for(Arrival(), 4, 6)
    assert isinstance(default, SteadyTracker) and (default.max_num_seqs, default.close_after) == (4, 3)
    log = []
    for tracker in (
        arrivals.tracker_for(
            Arrival("poisson", rate_per_s=1.0), 1, 2, on_open=lambda: log.append(1), on_close=lambda: log.append(2)
        ),
    ):
        tracker.submitted(0.0)
        tracker.submitted(1.0)
    assert log == [1, 2]
    steady = arrivals.tracker_for(Arrival(), 1, 1, on_open=lambda: log.append(3), on_close=lambda: log.append(4))
    steady.first_token(0.1)
    steady.finished(0.2)
    assert log == [1, 2, 3, 4]


def _rec(i, submit, first, finish):
    return RequestRecord(i, 4, 3, 3, submit, first, finish, [first, finish] if first is not None else [])


def test_the_replay_orders_submissions_then_first_tokens_then_finishes():
    # every event of request i at t = 10 + i: submissions first, so the poisson window opens at the 2nd arrival
    reqs = [_rec(i, 10.0 + i, 10.0 + i, 10.0 + i) for i in range(5)]
    poisson = Arrival("poisson", rate_per_s=1.0, warmup_fraction=0.4)
    assert arrivals.steady_bounds(reqs, poisson, 2) == (11.0, 14.0)
    # all-at-once with M = 2: first tokens before finishes at equal times; opens at the 2nd first token, closes at
    # the (5 - 2 + 1) = 4th finish
    assert arrivals.steady_bounds(reqs, Arrival(), 2) == (11.0, 13.0)
    assert arrivals.steady_bounds(reqs, Arrival("concurrency", concurrency=3), 8) == (12.0, 12.0)
    assert arrivals.steady_bounds([], Arrival(), 2) is None


def test_the_replay_stops_where_the_run_was_stopped():
    reqs = [_rec(i, 1.0 + i, 10.0 + i, 20.0 + i) for i in range(6)]
    poisson = Arrival("poisson", rate_per_s=1.0, warmup_fraction=0.3)  # opens at the ceil(1.8) = 2nd arrival
    assert arrivals.steady_bounds(reqs, poisson, 4) == (2.0, 6.0)
    assert arrivals.steady_bounds(reqs, poisson, 4, stop_time_s=3.5) == (2.0, 3.5)
    assert arrivals.steady_bounds(reqs, poisson, 4, stop_time_s=6.0) == (2.0, 6.0)
    assert arrivals.steady_bounds(reqs, poisson, 4, stop_time_s=1.5) is None  # stopped before it opened
    assert arrivals.steady_bounds(reqs, Arrival(), 3) == (12.0, 23.0)
    assert arrivals.steady_bounds(reqs, Arrival(), 3, stop_time_s=21.0) == (12.0, 21.0)
    # an event at the stop time itself still counts: the window opens at the 3rd first token (12.0) and closes there
    assert arrivals.steady_bounds(reqs, Arrival(), 3, stop_time_s=12.0) == (12.0, 12.0)


def test_requests_without_a_submission_time_first_token_or_finish():
    reqs = [_rec(0, 0.0, 1.0, 2.0), _rec(1, 0.5, None, None), _rec(2, 1.0, 1.5, 3.0), _rec(3, 1.5, 2.0, 4.0)]
    # a submission at 0.0 is not replayed (falsy): the window waits for ceil(0.5 x 4) = 2 submissions: 0.5 and 1.0
    assert arrivals.steady_bounds(reqs, Arrival("poisson", rate_per_s=1.0, warmup_fraction=0.5), 4) is None
    # all-at-once, M = 3, N = 4: opens at the 3rd first token (2.0); closes at the 2nd finish (3.0)
    assert arrivals.steady_bounds(reqs, Arrival(), 3) == (2.0, 3.0)


# --- the gate -----------------------------------------------------------------------------------------


class FakeLoop:
    def __init__(self):
        self.now, self.sleeps = 100.0, []  # a monotonic clock does not start at 0

    def monotonic(self):
        return self.now

    async def sleep(self, seconds):  # wakes at its own deadline: one event-loop turn per millisecond, so the
        self.sleeps.append(seconds)  # sleepers wake in deadline order
        target = self.now + seconds
        for _ in range(max(1, round(seconds * 1000))):
            await asyncio.sleep(0)
        self.now = max(self.now, target)


def _drive(arrival, n, cancel=()):
    async def main():
        loop = FakeLoop()
        gate = arrivals.Gate(arrival, n, sleep=loop.sleep, monotonic=loop.monotonic)
        recs = [RequestRecord(i, 1, 1, 0, 0.0, None, None) for i in range(n)]
        sent, running, peak, order = [], [0], [0], []

        class Tracker:
            def submitted(self, t):
                sent.append(t)

        def request(i):
            async def go():
                order.append(i)
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                for _ in range(3):
                    await asyncio.sleep(0)
                running[0] -= 1

            return go

        tasks = [asyncio.ensure_future(gate.send(i, recs[i], Tracker(), loop.monotonic, request(i))) for i in range(n)]
        assert gate.arrival is arrival
        cancelled_at = None
        if cancel:
            while len(sent) < 2:  # the first two are sent; the others wait for their offsets
                await asyncio.sleep(0)
            cancelled_at = loop.now
            for i in cancel:
                tasks[i].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        loop.cancelled_at = cancelled_at
        return recs, sent, peak[0], order, loop, results

    return asyncio.run(main())


def test_the_gate_sends_at_the_offsets():
    arrival = Arrival("poisson", rate_per_s=4.0, seed=1)
    recs, sent, _, order, loop, _ = _drive(arrival, 5)
    sends = [100.0 + t for t in arrival.offsets_s(5)]  # from the first send, at the offsets
    assert [r.submit_time_s for r in recs] == pytest.approx(sends)
    assert sorted(sent) == pytest.approx(sends) and sorted(order) == list(range(5))
    assert all(s > 0 for s in loop.sleeps) and len(loop.sleeps) <= 4  # the first request goes at once


def test_the_gate_keeps_the_concurrency_and_the_order():
    _recs, sent, peak, order, _, _ = _drive(Arrival("concurrency", concurrency=2), 7)
    assert peak == 2 and order == list(range(7)) and len(sent) == 7
    _, _, peak1, order1, _, _ = _drive(Arrival("concurrency", concurrency=1), 4)
    assert peak1 == 1 and order1 == [0, 1, 2, 3]
    _, _, peak_all, _, loop, _ = _drive(Arrival(), 5)
    assert peak_all == 5 and loop.sleeps == []


def test_a_request_cancelled_before_it_was_sent_is_a_failure_never_sent():
    recs, sent, _, order, loop, results = _drive(Arrival("poisson", rate_per_s=1.0, seed=2), 3, cancel=(2,))
    assert isinstance(results[2], asyncio.CancelledError) and 2 not in order
    assert recs[2].success is False and recs[2].error == "cancelled"
    assert loop.cancelled_at > 100.0 and recs[2].submit_time_s == loop.cancelled_at  # stamped when it was cancelled
    assert len(sent) == 2 and recs[0].success and recs[0].error is None


def test_a_gate_without_a_tracker_hook_still_sends():
    async def main():
        gate = arrivals.Gate(Arrival(), 1)
        rec = RequestRecord(0, 1, 1, 0, 0.0, None, None)
        done = []

        async def go():
            done.append(True)

        await gate.send(0, rec, object(), lambda: 42.0, go)
        return rec, done

    rec, done = asyncio.run(main())
    assert rec.submit_time_s == 42.0 and done == [True] and math.isfinite(rec.submit_time_s)
