"""TTFT on loopback: the harness's endpoint client against a plain aiohttp client, on a server of known timing.

    python benchmarks/ttft_loopback.py [--requests 32] [--ttft-ms 150] [--itl-ms 10] [--tokens 32] [--repeats 3]

A fake OpenAI-compatible ``/v1/completions`` server (its own process, on 127.0.0.1) answers every request after
``--ttft-ms`` with one token each ``--itl-ms``. It records, with ``time.time()`` (the same clock as the clients on
this machine), when each request arrived and when it sent the first token. All requests are sent at once, by
the harness's load generator (:mod:`harness.workloads.loadgen`, as the ``openai`` backend drives it) and by a
plain aiohttp client that stamps each request just before ``session.post``. Printed per client (medians, ms):
TTFT as the client records it, the client's first-token time after the server's send (the read delay), and
the server's arrival after the client's submission stamp (the send delay).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

SERVER = r"""
import asyncio, json, sys, time
from aiohttp import web

ttft_s, itl_s = float(sys.argv[2]), float(sys.argv[3])
log = []

async def completions(request):
    arrived = time.time()
    body = await request.json()
    n = int(body["max_tokens"])
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await asyncio.sleep(max(0.0, arrived + ttft_s - time.time()))
    first = None
    for k in range(n):
        chunk = {"choices": [{"text": "x", "token_ids": [7], "finish_reason": "length" if k == n - 1 else None}]}
        if first is None:
            first = time.time()
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if k < n - 1:
            await asyncio.sleep(itl_s)
    usage = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": n}}
    await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    log.append({"id": body.get("user"), "arrived": arrived, "first_sent": first})
    return resp

async def timings(request):
    out = list(log); log.clear()
    return web.json_response(out)

app = web.Application()
app.router.add_post("/v1/completions", completions)
app.router.add_get("/timings", timings)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print("ready", flush=True))
"""


def start_server(port: int, ttft_s: float, itl_s: float) -> subprocess.Popen:
    """The fake server in its own process; returns once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(ttft_s), str(itl_s)], stdout=subprocess.PIPE, text=True
    )
    if proc.stdout is None or "ready" not in proc.stdout.readline():
        proc.kill()
        raise SystemExit("the fake server did not start")
    return proc


def server_timings(port: int) -> dict[str, dict]:
    """The server's arrival and first-send times (s, ``time.time()``) by request id, then forgotten."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/timings") as resp:
        return {str(r["id"]): r for r in json.loads(resp.read())}


def harness_client(port: int, n: int, tokens: int) -> list[dict]:
    """The harness's load generator, all at once, as the openai backend builds its requests."""
    from harness.measuring.steady import SteadyTracker
    from harness.workloads import loadgen

    def build(i: int) -> tuple[str, dict]:
        return "/v1/completions", {
            "model": "m",
            "prompt": "hello",
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": f"h{i}",
        }

    spec = loadgen.LoadSpec(
        base_url=f"http://127.0.0.1:{port}",
        model="m",
        prompts=["hello"] * n,
        output_tokens=[tokens] * n,
        request=build,
        prompt_lengths=[1] * n,
    )
    records, _ = loadgen.run_load(spec, SteadyTracker(n, n))
    return [{"id": f"h{r.request_id}", "submit": r.submit_time_s, "first": r.first_token_time_s} for r in records]


def plain_client(port: int, n: int, tokens: int) -> list[dict]:
    """A plain aiohttp client: stamp, post, first chunk with a token."""
    import aiohttp

    async def one(session, i: int, out: list) -> None:
        body = {
            "model": "m",
            "prompt": "hello",
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": f"p{i}",
        }
        submit = time.time()
        first = None
        async with session.post(f"http://127.0.0.1:{port}/v1/completions", json=body) as resp:
            async for piece in resp.content.iter_any():
                if first is None and b"token_ids" in piece:
                    first = time.time()
        out.append({"id": f"p{i}", "submit": submit, "first": first})

    async def main() -> list[dict]:
        out: list[dict] = []
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(one(session, i, out) for i in range(n)))
        return out

    return asyncio.run(main())


def summarize(name: str, client: list[dict], server: dict[str, dict]) -> dict[str, float]:
    """Medians in ms: TTFT, read delay (client first - server first send), send delay (arrival - submission)."""
    ttft = [1e3 * (c["first"] - c["submit"]) for c in client]
    read = [1e3 * (c["first"] - server[c["id"]]["first_sent"]) for c in client]
    send = [1e3 * (server[c["id"]]["arrived"] - c["submit"]) for c in client]
    out = {
        "ttft_ms": statistics.median(ttft),
        "read_delay_ms": statistics.median(read),
        "send_delay_ms": statistics.median(send),
        "send_delay_max_ms": max(send),
    }
    print(f"{name:8s} " + "  ".join(f"{k} {v:7.2f}" for k, v in out.items()), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--ttft-ms", type=float, default=150.0)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--port", type=int, default=18931)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    proc = start_server(args.port, args.ttft_ms / 1e3, args.itl_ms / 1e3)
    try:
        for _ in range(args.repeats):
            for name, client in (("plain", plain_client), ("harness", harness_client)):
                records = client(args.port, args.requests, args.tokens)
                summarize(name, records, server_timings(args.port))
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
