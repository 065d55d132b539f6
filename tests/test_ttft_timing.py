"""TTFT is measured from the moment the request leaves: against a loopback server that records, on the same clock,
when each request arrived and when it sent the first token, the harness's submission and first-token stamps sit
next to the server's, however long the requests before it took to build (no wall-clock tolerance of the host's
speed: the margins are the build time the old stamping added, several times over)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import urllib.request

import pytest

from harness.measuring.steady import SteadyTracker
from harness.workloads import loadgen
from harness.workloads.vllm_server import free_port

SERVER = r"""
import asyncio, json, sys, time
from aiohttp import web

first_token_s = float(sys.argv[2])
log = []

async def completions(request):
    arrived = time.time()
    body = await request.json()
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await asyncio.sleep(first_token_s)
    first = time.time()
    for k in range(2):
        chunk = {"choices": [{"text": "x", "token_ids": [7], "finish_reason": "length" if k else None}]}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    log.append({"id": body["user"], "arrived": arrived, "first_sent": first})
    return resp

async def timings(request):
    return web.json_response(log)

app = web.Application()
app.router.add_post("/v1/completions", completions)
app.router.add_get("/timings", timings)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print("ready", flush=True))
"""

BUILD_S = 0.05  # each request's body takes this long to build (a tokenizer, a template): not the server's time
REQUESTS = 8


@pytest.fixture
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), "0.05"], stdout=subprocess.PIPE, text=True)
    try:
        assert "ready" in proc.stdout.readline()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_submission_and_first_token_are_stamped_when_they_happen(server):
    def build(i: int) -> tuple[str, dict]:
        time.sleep(BUILD_S)  # blocks the event loop, as a slow body would
        return "/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 2, "stream": True, "user": str(i)}

    spec = loadgen.LoadSpec(
        base_url=f"http://127.0.0.1:{server}",
        model="m",
        prompts=["x"] * REQUESTS,
        output_tokens=[2] * REQUESTS,
        request=build,
        prompt_lengths=[1] * REQUESTS,
    )
    records, aborted = loadgen.run_load(spec, SteadyTracker(REQUESTS, REQUESTS))
    assert aborted is None and all(r.success for r in records), [r.error for r in records]
    with urllib.request.urlopen(f"http://127.0.0.1:{server}/timings") as resp:
        seen = {int(row["id"]): row for row in json.loads(resp.read())}
    send = [seen[r.request_id]["arrived"] - r.submit_time_s for r in records]
    read = [r.first_token_time_s - seen[r.request_id]["first_sent"] for r in records]
    # causality on one clock: nothing arrives before it was sent, nor is read before the server wrote it
    assert min(send) > 0 and min(read) > 0
    # stamped when the tasks were created, request k would carry k builds before it left: a median of 4 x 50 ms.
    # Stamped as it leaves, what remains is the connection and the server's accepting it.
    assert statistics.median(send) < 2 * BUILD_S, send
    assert statistics.median(read) < 2 * BUILD_S, read
