"""Load generator for an OpenAI-compatible completions server (vLLM).

All requests are submitted at once (the server admits ``max_num_seqs`` of
them); each one streams, with its prompt given as token ids and its output
length forced (``ignore_eos`` with ``min_tokens`` = ``max_tokens`` = the drawn
length). Per request it records every token's arrival time (each chunk's
``token_ids`` says how many tokens it carries), the first-token and finish
times, and the server's own token counts from the final usage chunk.

Events feed a steady-state tracker (:class:`harness.measuring.steady.SteadyTracker`)
online, with strictly increasing timestamps so that replaying the records
afterwards gives the same window; an adaptive stopper (:mod:`harness.measuring.adaptive`) may end the load
early. A ``should_abort`` callable (checked every
0.25 s) stops the load early, e.g. when the server process has died; the
requests still open are then recorded as failed with that reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Callable

from harness.workloads.base import RequestRecord


@dataclass
class LoadSpec:
    base_url: str  # e.g. http://127.0.0.1:8000
    model: str  # served model name
    prompts: list[list[int]]  # token ids per request
    output_tokens: list[int]  # forced output length per request
    read_timeout_s: float = 600.0  # longest silence tolerated on one stream
    temperature: float = 1.0
    # --- set by the endpoint backend (harness.workloads.openai_backend); the defaults are the vLLM backend's ---
    arrival: object = None  # harness.workloads.arrivals.Arrival; None: every request at once
    request: Callable[[int], tuple[str, dict]] | None = None  # (path, JSON body) of request i
    headers: dict | None = None  # e.g. the Authorization header
    forced: bool = True  # output length forced: a request that generates another count failed
    prompt_lengths: list[int] | None = None  # prompt tokens per request when prompts are not token ids


class _Clock:
    """Wall-clock stamps that never repeat or go backwards (event order = time order)."""

    def __init__(self):
        self.last = 0.0

    def __call__(self) -> float:
        self.last = max(time.time(), self.last + 1e-6)
        return self.last


async def _one(session, spec: LoadSpec, rid: int, rec: RequestRecord, tracker, clock: _Clock, stopper=None) -> None:
    import aiohttp

    n = spec.output_tokens[rid]
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
        async with session.post(f"{spec.base_url}{path}", json=payload, headers=spec.headers) as resp:
            if resp.status != 200:
                body = (await resp.text())[:300].replace("\n", " ")
                raise RuntimeError(f"HTTP {resp.status}: {body}")
            buffer = b""
            async for raw in resp.content:
                buffer += raw
                if not buffer.endswith(b"\n"):
                    continue
                line, buffer = buffer.strip(), b""
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if chunk.get("error"):
                    raise RuntimeError(f"server error: {chunk['error']}")
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    ids = choice.get("token_ids")
                    delta = choice.get("delta") or {}
                    if ids is None and delta.get("role") and not delta.get("content"):
                        continue  # a chat stream's opening chunk announces the role: no token yet
                    # without return_token_ids (older servers), vLLM still sends one chunk per token,
                    # even when the token's text is empty (an incomplete UTF-8 sequence)
                    count = len(ids) if ids is not None else 1
                    if count:
                        t = clock()
                        if stopper is not None:
                            stopper.tokens(count)
                        if rec.first_token_time_s is None:
                            rec.first_token_time_s = t
                            tracker.first_token(t)
                        rec.token_times_s.extend([t] * count)
                    if choice.get("finish_reason") is not None and not finished:
                        finished = True
                        rec.finish_time_s = clock()
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
    except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        rec.success = False
        rec.error = f"{type(exc).__name__}: {exc}"[:300]
        rec.output_tokens = len(rec.token_times_s)
    finally:
        if rec.finish_time_s is None:
            rec.finish_time_s = clock()
        tracker.finished(rec.finish_time_s)


async def _drive(spec: LoadSpec, tracker, should_abort: Callable[[], str | None] | None,
                 stopper=None) -> tuple[list[RequestRecord], str | None]:
    import aiohttp

    clock = _Clock()
    n = len(spec.prompts)
    records = [
        RequestRecord(request_id=i, prompt_tokens=spec.prompt_lengths[i] if spec.prompt_lengths else len(spec.prompts[i]),
                      target_output_tokens=spec.output_tokens[i],
                      output_tokens=0, submit_time_s=0.0, first_token_time_s=None, finish_time_s=None)
        for i in range(n)
    ]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=spec.read_timeout_s)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    abort_reason: str | None = None
    async with aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False) as session:
        tasks = []
        gate = None
        if spec.arrival is not None and spec.arrival.pattern != "all-at-once":
            from harness.workloads.arrivals import Gate

            gate = Gate(spec.arrival, n)
        for i in range(n):
            if gate is not None:  # sent when the arrival pattern says (harness.workloads.arrivals)
                one = (lambda i=i: _one(session, spec, i, records[i], tracker, clock, stopper))
                tasks.append(asyncio.create_task(gate.send(i, records[i], tracker, clock, one)))
                continue
            records[i].submit_time_s = clock()
            tasks.append(asyncio.create_task(_one(session, spec, i, records[i], tracker, clock, stopper)))
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=0.25)
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


def run_load(spec: LoadSpec, tracker, should_abort: Callable[[], str | None] | None = None,
             stopper=None) -> tuple[list[RequestRecord], str | None]:
    """Drive the whole load; returns the records and the abort reason (``None`` when it ran to the end).

    ``stopper`` (:class:`harness.measuring.adaptive.AdaptiveStopper`) hears every token and is polled every 0.25 s;
    when it says stop, the open requests are cancelled (the caller marks them with
    :func:`harness.measuring.adaptive.mark_stopped`).
    """
    if len(spec.prompts) != len(spec.output_tokens):
        raise ValueError("one output length per prompt")
    return asyncio.run(_drive(spec, tracker, should_abort, stopper))


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
    import httpx

    with httpx.Client(timeout=5.0, trust_env=False) as client:
        resp = client.get(f"{base_url}/v1/models")
        resp.raise_for_status()
        return [m.get("id") for m in resp.json().get("data", [])]
