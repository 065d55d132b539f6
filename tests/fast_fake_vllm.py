"""A fast stand-in for vLLM's streaming ``/v1/completions`` endpoint, for the load generator's tests and
its benchmark (``benchmarks/loadgen_client.py``).

Raw asyncio (no web framework), so that one core serves far more events per second than the client
under test consumes. The wire format is vLLM's: HTTP/1.1 with chunked transfer encoding (as uvicorn
sends it), one server-sent event per token shaped like vLLM 0.32's completion chunk (id, object,
created, model, one choice with text, logprobs, finish_reason, stop_reason, token_ids,
prompt_token_ids), then a usage chunk and ``data: [DONE]``.

Modes (``Options``):

* ``events_per_write``: how many token events go out in one socket write (vLLM sends one per engine
  step and stream; several per write stand for a client that reads less often than steps happen);
* ``step_s``: ``0`` streams as fast as the client reads (throughput); ``> 0`` is a paced engine: every
  ``step_s`` each open stream gets ``events_per_write`` tokens, all written at the step's start;
* ``stall``: ``{prompt key: k}`` -- that stream sends k tokens, then nothing more, its connection left open
  (a hung engine, for the client's silence timeout);
* ``record``: keep each stream's write times (``time.time()`` before each write), keyed by the
  request's first prompt token id, for ``GET /writes`` (JSON) -- the client's added latency per event
  is its timestamp minus the server's write time.

Run as a script it prints its port and serves until killed:
``python tests/fast_fake_vllm.py --events-per-write 8 --step-s 0 [--record] [--cpu N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass


@dataclass
class Options:
    events_per_write: int = 1
    step_s: float = 0.0
    record: bool = False
    model: str = "model"
    stall: dict | None = None  # prompt key -> tokens after which that stream goes silent (its connection open)


def _event(model: str, token: int, finish: bool) -> bytes:
    chunk = {
        "id": "cmpl-8f1c2a9d4b7e4e0f9a3c5d6b7e8f9a0b",
        "object": "text_completion",
        "created": 1764547200,
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": " tok",
                "logprobs": None,
                "finish_reason": "length" if finish else None,
                "stop_reason": None,
                "token_ids": [token],
                "prompt_token_ids": None,
            }
        ],
        "usage": None,
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Server:
    def __init__(self, options: Options):
        self.o = options
        self.writes: dict[int, list[float]] = {}
        self.tokens_sent = 0
        self._plain = _event(options.model, 1234, False)
        self._last = _event(options.model, 1234, True)
        self._tick = asyncio.Event()
        self._steps = None
        self._handlers: set = set()  # connection tasks, cancelled when serve() ends (stalled ones included)

    async def _stepper(self):
        period = self.o.step_s
        next_t = time.monotonic()
        while True:
            next_t += period
            self._tick.set()
            self._tick = asyncio.Event()
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:] if ":" in h)}
                body = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                if method == "POST" and path == "/v1/completions":
                    await self._stream(json.loads(body), writer)
                elif method == "GET" and path == "/writes":
                    self._json(writer, {str(k): v for k, v in self.writes.items()})
                elif method == "GET" and path in ("/health", "/v1/models"):
                    self._json(writer, {"data": [{"id": self.o.model}]})
                else:
                    self._json(writer, {"error": "not found"}, status=404)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(asyncio.current_task())
            writer.close()

    def _json(self, writer, payload, status=200):
        body = json.dumps(payload).encode()
        writer.write(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (status, len(body), body)
        )

    async def _stream(self, body: dict, writer: asyncio.StreamWriter) -> None:
        n, per = int(body["max_tokens"]), self.o.events_per_write
        key = int(body["prompt"][0]) if body.get("prompt") else -1
        times = self.writes.setdefault(key, []) if self.o.record else None
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        full = _chunked(self._plain * per)
        paced = self.o.step_s > 0
        if paced and self._steps is None:
            self._steps = asyncio.get_running_loop().create_task(self._stepper())
        sent = 0
        while sent < n:
            if self.o.stall and key in self.o.stall and sent >= self.o.stall[key]:
                await asyncio.Event().wait()  # silent until the client gives up (or the server is stopped)
            if paced:
                await self._tick.wait()
            k = min(per, n - sent)
            if k == per and sent + k < n:
                data = full
            else:
                data = _chunked(self._plain * (k - 1) + (self._last if sent + k == n else self._plain))
            if times is not None:
                times.extend([time.time()] * k)
            writer.write(data)
            sent += k
            self.tokens_sent += k
            await writer.drain()
        usage = {"prompt_tokens": len(body.get("prompt") or ()), "total_tokens": n, "completion_tokens": n}
        tail = {
            "id": "cmpl-8f1c2a9d4b7e4e0f9a3c5d6b7e8f9a0b",
            "object": "text_completion",
            "created": 1764547200,
            "model": self.o.model,
            "choices": [],
            "usage": usage,
        }
        writer.write(_chunked(b"data: " + json.dumps(tail).encode() + b"\n\ndata: [DONE]\n\n") + b"0\r\n\r\n")


async def serve(server: Server, host: str = "127.0.0.1", port: int = 0, ready=None) -> None:
    """Serve ``server`` until cancelled; ``ready(port)`` is called once it listens."""
    srv = await asyncio.start_server(server.handle, host, port, backlog=8192, limit=1 << 20)
    if ready is not None:
        ready(srv.sockets[0].getsockname()[1])
    try:
        async with srv:
            await srv.serve_forever()
    finally:
        if server._steps is not None:
            server._steps.cancel()
        for task in list(server._handlers):
            task.cancel()
        await asyncio.gather(*server._handlers, return_exceptions=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events-per-write", type=int, default=1)
    ap.add_argument("--step-s", type=float, default=0.0)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    args = ap.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    opts = Options(events_per_write=args.events_per_write, step_s=args.step_s, record=args.record)
    asyncio.run(serve(Server(opts), ready=lambda port: print(port, flush=True)))


if __name__ == "__main__":
    sys.exit(main())
