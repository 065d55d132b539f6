"""Load generator for an OpenAI-compatible completions server (vLLM).

All requests are submitted at once (the server admits ``max_num_seqs`` of
them); each one streams, with its prompt given as token ids and its output
length forced (``ignore_eos`` with ``min_tokens`` = ``max_tokens`` = the drawn
length). Per request it records every token's arrival time (each chunk's
``token_ids`` says how many tokens it carries), the first-token and finish
times, and the server's own token counts from the final usage chunk.

Timestamps (the rule): a stream is read in whatever pieces the socket delivers
(``iter_any``), with one clock reading per piece, taken as soon as the read
returns. Every token whose event ends in that piece gets that time, so tokens
that reach the client in one read share a timestamp (the client cannot tell
them apart), and a token is never stamped before the bytes that complete its
event arrived. The finish time is the next clock reading after the read that
carries the ``finish_reason``. A request sent all at once is stamped submitted when it leaves: when aiohttp
has written its headers to the connection (its ``on_request_headers_sent`` signal). Stamped when the tasks
were created, or even just before ``session.post`` (as ``vllm bench serve`` does), the requests of a burst
carry the set-up of the others that the event loop runs before theirs go out (32 at once on loopback: a median
TTFT about 20 ms late). TTFT then runs from the request leaving to the read that brings the first token:
the server's accepting and parsing the request is in it, the client's building the body and opening its
connection is not. A request the arrival gate releases is stamped by the gate, just before it is sent
(:mod:`harness.measuring.arrivals`). Events are split on the blank line that ends a
server-sent event and decoded with ``msgspec`` into only the fields used
(token ids, finish reason, usage, error), which keeps the client's CPU per
token far below the engine's (``benchmarks/loadgen_client.py``).

``aiohttp`` is imported with this module, and the HTTP session exists before
``on_ready`` is called, so a caller that opens its measured window in
``on_ready`` measures no import or set-up.

Events feed a steady-state tracker (:class:`harness.measuring.steady.SteadyTracker`)
online, with strictly increasing timestamps so that replaying the records
afterwards gives the same window; an adaptive stopper (:mod:`harness.measuring.adaptive`) may end the load
early. A ``should_abort`` callable (checked every
0.25 s) stops the load early, e.g. when the server process has died; the
requests still open are then recorded as failed with that reason. A stream
silent for longer than ``read_timeout_s`` (counted from its submission, then
from its latest read; checked every 0.25 s) fails alone, with a ``ReadTimeout``
error.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from harness.config import Configuration
from harness.workloads.base import Meter, RequestRecord, StampClock, WindowMeasurement

if TYPE_CHECKING:
    from harness.measuring.adaptive import AdaptiveStopper
    from harness.measuring.arrivals import Arrival
    from harness.measuring.windows import WindowTracker


@dataclass
class LoadSpec:
    """The load to drive: one request per prompt, each with its output length in tokens."""

    base_url: str  # e.g. http://127.0.0.1:8000
    model: str  # served model name
    prompts: list[list[int]] | list[str]  # token ids per request (texts from the endpoint backend)
    output_tokens: list[int]  # forced output length per request
    read_timeout_s: float = 600.0  # longest silence tolerated on one stream
    temperature: float = 1.0
    # --- set by the endpoint backend (harness.workloads.openai_backend); the defaults are the vLLM backend's ---
    arrival: Arrival | None = None  # None: every request at once
    request: Callable[[int], tuple[str, dict]] | None = None  # (path, JSON body) of request i
    headers: dict | None = None  # e.g. the Authorization header
    forced: bool = True  # output length forced: a request that generates another count failed
    prompt_lengths: list[int] | None = None  # prompt tokens per request when prompts are not token ids


class _Delta(msgspec.Struct):
    role: str | None = None
    content: str | None = None


class _Choice(msgspec.Struct):
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    delta: _Delta | None = None  # chat completions


class _Chunk(msgspec.Struct):
    """The fields of a streamed completion chunk that the load generator uses (others are skipped)."""

    choices: list[_Choice] | None = None
    usage: dict[str, Any] | None = None
    error: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
DONE = object()  # the ``data: [DONE]`` sentinel


class EventSplitter:
    """Server-sent events from a byte stream read in arbitrary pieces.

    ``feed(piece)`` returns the decoded chunks (:class:`_Chunk`, or :data:`DONE`) of every event that
    the piece completes; an incomplete event stays buffered for the next piece. An event is the text
    up to a blank line; only its ``data:`` lines count (comments and other fields are ignored).
    """

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, piece: bytes) -> list:
        """The chunks (or :data:`DONE`) of every event that ``piece`` completes."""
        if self.buffer:
            piece = self.buffer + piece
        if b"\r" in piece:  # CRLF framing is allowed by the SSE format; vLLM sends LF only
            piece = piece.replace(b"\r\n", b"\n")
            if piece.endswith(b"\r"):  # a CR whose LF is still in flight
                self.buffer = piece
                return []
        events = piece.split(b"\n\n")
        self.buffer = events.pop()
        out = []
        for event in events:
            if event.startswith(b"data:"):
                data = event[5:]
                if b"\n" in data:  # several lines in one event: join the data lines
                    data = _data_lines(event)
            else:
                data = _data_lines(event)
                if not data:
                    continue
            if data.strip() == b"[DONE]":
                out.append(DONE)
            else:
                out.append(_decode_chunk(data))
        return out


def _data_lines(event: bytes) -> bytes:
    return b"\n".join(line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))


async def _one(
    session,
    spec: LoadSpec,
    rid: int,
    rec: RequestRecord,
    tracker,
    clock: StampClock,
    stopper=None,
    heard: list | None = None,
    stamp: bool = False,
) -> None:
    """Send request ``rid`` and read its stream into ``rec``; with ``stamp``, its submission time is the moment its
    headers were written to the connection (:func:`_headers_sent`; else the arrival gate took it just before
    calling this)."""
    n = spec.output_tokens[rid]
    if heard is not None:  # the silence watchdog in _drive counts from here, then from every read
        heard[rid] = time.time()
    path, payload = spec.request(rid) if spec.request is not None else ("/v1/completions", None)
    payload = payload or {
        "model": spec.model,
        "prompt": spec.prompts[rid],
        "max_tokens": n,
        "min_tokens": n,
        "ignore_eos": True,
        "temperature": spec.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_token_ids": True,
    }
    usage = None
    finished = False
    try:
        traced: dict[str, Any] = {}
        if stamp:  # now, should it never leave (no connection); replaced when its headers are written
            rec.submit_time_s = clock()

            def submitted() -> None:  # the submission time, and the silence watchdog's count restarted from it
                rec.submit_time_s = clock()
                if heard is not None:
                    heard[rid] = rec.submit_time_s

            traced["trace_request_ctx"] = {"stamp": submitted}
        async with session.post(f"{spec.base_url}{path}", json=payload, headers=spec.headers, **traced) as resp:
            if resp.status != 200:
                body = (await resp.text())[:300].replace("\n", " ")
                raise RuntimeError(f"HTTP {resp.status}: {body}")
            splitter = EventSplitter()
            times = rec.token_times_s
            done = False
            async for piece in resp.content.iter_any():
                t = clock()  # one reading per read from the socket: the rule in the module docstring
                if heard is not None:
                    heard[rid] = t
                count = 0
                for chunk in splitter.feed(piece):
                    if chunk is DONE:
                        done = True
                        break
                    if chunk.error:
                        raise RuntimeError(f"server error: {chunk.error}")
                    if chunk.usage:
                        usage = chunk.usage
                    for choice in chunk.choices or ():
                        ids = choice.token_ids
                        delta = choice.delta
                        if ids is None and delta is not None and delta.role and not delta.content:
                            if choice.finish_reason is not None:
                                finished = True
                            continue  # a chat stream's opening chunk announces the role: no token yet
                        # without return_token_ids (older servers), vLLM still sends one chunk per token,
                        # even when the token's text is empty (an incomplete UTF-8 sequence)
                        count += len(ids) if ids is not None else 1
                        if choice.finish_reason is not None:
                            finished = True
                if count:
                    if stopper is not None:
                        stopper.tokens(count)
                    if rec.first_token_time_s is None:
                        rec.first_token_time_s = t
                        tracker.first_token(t)
                    times.extend(itertools.repeat(t, count))
                if finished and rec.finish_time_s is None:
                    rec.finish_time_s = clock()
                if done:
                    break
        rec.output_tokens = int(usage["completion_tokens"]) if usage else len(rec.token_times_s)
        if usage:
            rec.prompt_tokens = int(usage["prompt_tokens"])
        if spec.forced and (rec.output_tokens != n or len(rec.token_times_s) != n):
            rec.success = False
            rec.error = f"generated {rec.output_tokens} tokens ({len(rec.token_times_s)} streamed), forced {n}"
    except asyncio.CancelledError:
        rec.success = False
        rec.error = rec.error or "cancelled"
        rec.output_tokens = len(rec.token_times_s)
    except (TimeoutError, aiohttp.ClientError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        rec.success = False
        rec.error = f"{type(exc).__name__}: {exc}"[:300]
        rec.output_tokens = len(rec.token_times_s)
    finally:
        if rec.finish_time_s is None:
            rec.finish_time_s = clock()
        tracker.finished(rec.finish_time_s)


async def _drive(
    spec: LoadSpec,
    tracker,
    should_abort: Callable[[], str | None] | None,
    stopper=None,
    on_ready: Callable[[], None] | None = None,
) -> tuple[list[RequestRecord], str | None]:
    clock = StampClock()
    n = len(spec.prompts)
    records = [
        RequestRecord(
            request_id=i,
            prompt_tokens=spec.prompt_lengths[i] if spec.prompt_lengths else len(spec.prompts[i]),
            target_output_tokens=spec.output_tokens[i],
            output_tokens=0,
            submit_time_s=0.0,
            first_token_time_s=None,
            finish_time_s=None,
        )
        for i in range(n)
    ]
    # no per-read timeout in aiohttp (sock_read): it re-arms a timer at every read, about a tenth of the
    # client's CPU at one event per read; the loop below checks each stream's silence every 0.25 s instead
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    heard = [0.0] * n  # when each request was sent, then when its stream was last read (0: not yet sent)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    abort_reason: str | None = None
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_headers_sent)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, trust_env=False, trace_configs=[trace]
    ) as session:
        gate = None
        if spec.arrival is not None and spec.arrival.pattern != "all-at-once":
            from harness.measuring.arrivals import Gate

            gate = Gate(spec.arrival, n)
        if on_ready is not None:  # everything is set up: the caller's measured window may open now
            on_ready()
        tasks = []
        for i in range(n):
            if gate is not None:  # sent when the arrival pattern says (harness.measuring.arrivals)

                def one(i: int = i) -> Awaitable[None]:
                    return _one(session, spec, i, records[i], tracker, clock, stopper, heard)

                tasks.append(asyncio.create_task(gate.send(i, records[i], tracker, clock, one)))
                continue
            tasks.append(
                asyncio.create_task(_one(session, spec, i, records[i], tracker, clock, stopper, heard, stamp=True))
            )
        pending = set(tasks)
        while pending:
            _done, pending = await asyncio.wait(pending, timeout=0.25)
            _cancel_silent(tasks, records, heard, spec.read_timeout_s)
            if pending and stopper is not None and stopper.poll():  # adaptive stopping: the estimate is stable
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
            if pending and should_abort is not None:
                abort_reason = should_abort()
                if abort_reason:
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    for rec in records:
                        if rec.error == "cancelled":
                            rec.error = f"aborted: {abort_reason}"
                    break
    return records, abort_reason


async def _headers_sent(session, context, params) -> None:
    """aiohttp's signal that a request's headers were written to its connection: the request has left (its
    submission time, where the request asked for it)."""
    ctx = context.trace_request_ctx
    if ctx:
        ctx["stamp"]()


def _cancel_silent(tasks: list, records: list, heard: list, read_timeout_s: float) -> None:
    """Fail the requests sent and not done whose stream has been silent for longer than ``read_timeout_s``."""
    limit = time.time() - read_timeout_s
    for i, task in enumerate(tasks):
        if 0.0 < heard[i] < limit and not task.done() and records[i].error is None:
            records[i].error = f"ReadTimeout: no data for {read_timeout_s:g} s"
            task.cancel()


def run_load(
    spec: LoadSpec,
    tracker: WindowTracker,
    should_abort: Callable[[], str | None] | None = None,
    stopper: AdaptiveStopper | None = None,
    on_ready: Callable[[], None] | None = None,
) -> tuple[list[RequestRecord], str | None]:
    """Drive the whole load; returns the records and the abort reason (``None`` when it ran to the end).

    ``on_ready`` is called once the event loop and the HTTP session are set up, just before the first
    request is submitted (the vLLM backend opens its ``"run"`` window there).

    ``stopper`` (:class:`harness.measuring.adaptive.AdaptiveStopper`) hears every token and is polled every 0.25 s;
    when it says stop, the open requests are cancelled (the caller marks them with
    :func:`harness.measuring.adaptive.mark_stopped`).
    """
    if len(spec.prompts) != len(spec.output_tokens):
        raise ValueError("one output length per prompt")
    return asyncio.run(_drive(spec, tracker, should_abort, stopper, on_ready))


@dataclass
class MeasuredLoad:
    """What :func:`measure_load` returns: the records, the meter's windows and the run's stop facts."""

    records: list[RequestRecord]
    aborted: str | None
    windows: dict[str, WindowMeasurement]
    tracker: WindowTracker
    stopper: AdaptiveStopper
    stopped: int  # requests ended by adaptive stopping (marked, not failed)

    def failed(self) -> list[RequestRecord]:
        """The requests that failed for a reason of their own (not adaptive stopping)."""
        from harness.measuring import adaptive

        return [r for r in self.records if not r.success and not adaptive.is_stopped(r)]

    def info(self) -> dict:
        """The facts every serving backend records about its load."""
        failed = self.failed()
        out = {
            "steady_tracker_state": self.tracker.state,
            "failed_requests": len(failed),
            "stopped_requests": self.stopped,
            "stop": self.stopper.summary(),
        }
        if failed:
            out["first_request_error"] = failed[0].error
        return out


def measure_load(
    spec: LoadSpec,
    cfg: Configuration,
    meter: Meter,
    make_tracker: Callable[[Callable[[], None], Callable[[], None]], WindowTracker],
    should_abort: Callable[[], str | None] | None = None,
) -> MeasuredLoad:
    """Drive ``spec``'s load inside ``meter``'s windows, as every serving backend does.

    ``"run"`` opens once the client is set up (``on_ready``: no import or set-up inside it) and closes after
    the last stream; ``"steady"`` opens and closes as the tracker that ``make_tracker(on_open, on_close)``
    returns decides, and is closed with the run if the load ends while it is open (failures). The adaptive
    stopper of ``cfg`` (:func:`harness.measuring.adaptive.for_run`) hears every token, and the requests it
    ended are marked as stopped.
    """
    from harness.measuring import adaptive

    windows: dict = {}

    def close_steady():
        windows["steady"] = meter.end("steady")

    tracker = make_tracker(lambda: meter.begin("steady"), close_steady)
    stopper = adaptive.for_run(cfg, meter, tracker)
    records, aborted = run_load(
        spec, tracker, should_abort=should_abort, stopper=stopper, on_ready=lambda: meter.begin("run")
    )
    if tracker.state == "open":  # the load ended before the window's end (failures): close it with the run
        close_steady()
    windows["run"] = meter.end("run")
    stopped = adaptive.mark_stopped(records, stopper.stop_time_s) if stopper.stopped else 0
    return MeasuredLoad(records, aborted, windows, tracker, stopper, stopped)


def wait_healthy(base_url: str, timeout_s: float, alive: Callable[[], str | None], interval_s: float = 0.5) -> float:
    """Poll ``/health`` until it answers 200; returns the seconds waited.

    ``alive`` returns a reason string when the server process is gone (then this stops early with
    ``RuntimeError(reason)``); ``TimeoutError`` when the deadline passes.
    """
    import httpx

    start = time.monotonic()
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            dead = alive()
            if dead:
                raise RuntimeError(dead)
            try:
                if client.get(f"{base_url}/health").status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"no healthy answer from {base_url}/health within {timeout_s:g} s")
            time.sleep(interval_s)


def served_models(base_url: str) -> list[str]:
    """The model names ``base_url/v1/models`` lists (waits up to 5 s; an HTTP error raises)."""
    import httpx

    with httpx.Client(timeout=5.0, trust_env=False) as client:
        resp = client.get(f"{base_url}/v1/models")
        resp.raise_for_status()
        return [m.get("id") for m in resp.json().get("data", [])]
