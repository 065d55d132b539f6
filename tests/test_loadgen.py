"""The load generator's stream reading: event splitting over arbitrary read boundaries, the timestamp
rule (one clock reading per read; tokens completed by one read share it), and a whole load against the
fast fake server (tests/fast_fake_vllm.py) in every write mode."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fast_fake_vllm
from harness.measuring.steady import SteadyTracker, steady_bounds
from harness.workloads import loadgen
from harness.workloads.base import RequestRecord


def _event(ids, finish=None, **extra) -> bytes:
    chunk = {
        "id": "c",
        "object": "text_completion",
        "model": "m",
        "choices": [{"index": 0, "text": "x", "logprobs": None, "finish_reason": finish, "token_ids": ids}],
    }
    return b"data: " + json.dumps(chunk | extra).encode() + b"\n\n"


USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 6}}\n\ndata: [DONE]\n\n'
STREAM = _event([1]) + _event([2, 3]) + b": a comment\n\n" + _event([]) + _event([4]) + _event([5, 6], "length") + USAGE


def _feed_all(pieces):
    splitter, out = loadgen.EventSplitter(), []
    for piece in pieces:
        out.extend(splitter.feed(piece))
    return out, splitter.buffer


def _summary(chunks):
    return [c if c is loadgen.DONE else ([ch.token_ids for ch in c.choices], c.usage) for c in chunks]


def test_events_split_at_blank_lines_and_only_data_lines_count():
    chunks, rest = _feed_all([STREAM])
    assert rest == b""
    assert _summary(chunks) == [
        ([[1]], None),
        ([[2, 3]], None),
        ([[]], None),
        ([[4]], None),
        ([[5, 6]], None),
        ([], {"prompt_tokens": 3, "completion_tokens": 6}),
        loadgen.DONE,
    ]
    assert chunks[4].choices[0].finish_reason == "length"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30), st.booleans())
def test_any_read_boundaries_give_the_same_events(cuts, crlf):
    stream = STREAM.replace(b"\n", b"\r\n") if crlf else STREAM
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    whole, _ = _feed_all([stream])
    split, rest = _feed_all(pieces)
    assert _summary(split) == _summary(whole) and rest == b""


def test_multiline_data_is_joined_and_a_bad_event_is_a_value_error():
    chunks, _ = _feed_all([b'data: {"choices":\ndata: [{"token_ids": [9]}]}\n\n'])
    assert _summary(chunks) == [([[9]], None)]
    with pytest.raises(ValueError, match="JSON is malformed"):
        loadgen.EventSplitter().feed(b"data: {not json\n\n")


class _Content:
    def __init__(self, pieces):
        self.pieces = pieces

    async def iter_any(self):
        for piece in self.pieces:
            await asyncio.sleep(0)
            yield piece


class _Response:
    status = 200

    def __init__(self, pieces):
        self.content = _Content(pieces)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


class _Session:
    def __init__(self, pieces):
        self.pieces = pieces

    def post(self, url, json, headers=None):
        return _Response(self.pieces)


class _FakeClock:
    """Readings 1, 2, 3, ... (one per call): which read a timestamp came from is then visible."""

    def __init__(self):
        self.last = 0.0

    def __call__(self):
        self.last += 1.0
        return self.last


def _run_one(pieces, n=6):
    rec = RequestRecord(
        request_id=0,
        prompt_tokens=3,
        target_output_tokens=n,
        output_tokens=0,
        submit_time_s=0.0,
        first_token_time_s=None,
        finish_time_s=None,
    )
    spec = loadgen.LoadSpec("http://x", "m", [[0, 1, 2]], [n])
    tracker = SteadyTracker(1, 1)
    asyncio.run(loadgen._one(_Session(pieces), spec, 0, rec, tracker, _FakeClock()))
    return rec


def test_tokens_completed_by_one_read_share_its_timestamp():
    # read 1: token 1 and half of the next event; read 2 completes tokens 2-3; read 3: comment + empty event;
    # read 4: tokens 4, 5, 6 (two events) and the usage chunk
    cut = STREAM.index(b"[2, 3]")
    third = STREAM.index(b": a comment")
    fourth = STREAM.index(_event([4]))
    rec = _run_one([STREAM[:cut], STREAM[cut:third], STREAM[third:fourth], STREAM[fourth:]])
    assert rec.success, rec.error
    assert rec.token_times_s == [1.0, 2.0, 2.0, 4.0, 4.0, 4.0]
    assert rec.first_token_time_s == 1.0 and rec.finish_time_s == 5.0  # the reading after the finishing read
    assert rec.output_tokens == 6 and rec.prompt_tokens == 3


def test_one_read_per_byte_stamps_each_token_at_the_read_that_ends_its_event():
    rec = _run_one([STREAM[i : i + 1] for i in range(len(STREAM))])
    ends = [STREAM.index(_event(ids)) + len(_event(ids)) for ids in ([1], [2, 3], [4])]
    ends.append(STREAM.index(_event([5, 6], "length")) + len(_event([5, 6], "length")))
    # reading k (1-based) is taken after the k-th byte arrived; the finish reading follows the last token's
    assert rec.success and len(rec.token_times_s) == 6
    assert rec.token_times_s[:4] == [float(e) for e in (ends[0], ends[1], ends[1], ends[2])]
    assert rec.token_times_s[4:] == [float(ends[3])] * 2 and rec.finish_time_s == ends[3] + 1.0


def test_a_server_error_chunk_fails_the_request_with_its_message():
    rec = _run_one([_event([1]), b'data: {"error": {"message": "engine dead"}}\n\n'])
    assert not rec.success and "engine dead" in rec.error and rec.output_tokens == 1


class _ServerThread:
    def __init__(self, server):
        self.server, self.port = server, None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.loop = asyncio.new_event_loop()
        self.task = self.loop.create_task(
            fast_fake_vllm.serve(self.server, ready=lambda port: (setattr(self, "port", port), self.ready.set()))
        )
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(10)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


@pytest.mark.parametrize("per_write, step_s", [(1, 0.0), (8, 0.0), (3, 0.002)])
def test_a_whole_load_against_the_fast_fake_server(per_write, step_s):
    lengths = [1, 7, 8, 9, 24, 3, 16, 2]
    server = fast_fake_vllm.Server(fast_fake_vllm.Options(events_per_write=per_write, step_s=step_s, record=True))
    tracker = SteadyTracker(4, len(lengths))
    with _ServerThread(server) as url:
        spec = loadgen.LoadSpec(url, "m", [[i, 5] for i in range(len(lengths))], lengths)
        records, aborted = loadgen.run_load(spec, tracker)
    assert aborted is None and all(r.success for r in records), [r.error for r in records]
    assert [len(r.token_times_s) for r in records] == lengths == [r.output_tokens for r in records]
    for r in records:
        assert r.submit_time_s < r.first_token_time_s == r.token_times_s[0] < r.finish_time_s
        assert r.token_times_s == sorted(r.token_times_s) and r.finish_time_s > r.token_times_s[-1]
        written = server.writes[r.request_id]  # the server's time before each token's write
        assert len(written) == len(r.token_times_s)
        # never stamped before it was sent
        assert all(got >= sent for got, sent in zip(r.token_times_s, written, strict=False))
    assert steady_bounds(records, 4) == (tracker.open_time_s, tracker.close_time_s)


def test_on_ready_runs_once_before_any_request_is_submitted():
    seen = []
    with _ServerThread(fast_fake_vllm.Server(fast_fake_vllm.Options())) as url:
        spec = loadgen.LoadSpec(url, "m", [[0]] * 3, [2, 2, 2])
        records, _ = loadgen.run_load(spec, SteadyTracker(1, 3), on_ready=lambda: seen.append(loadgen.time.time()))
    assert len(seen) == 1 and all(seen[0] <= r.submit_time_s for r in records)


def test_a_silent_stream_fails_alone_with_a_read_timeout_and_the_others_complete():
    """The client's silence rule: a stream with no data for longer than read_timeout_s fails with a
    ReadTimeout, whether it went silent mid-stream or before its first byte; the other streams are untouched."""
    server = fast_fake_vllm.Server(fast_fake_vllm.Options(stall={1: 3, 2: 0}))
    with _ServerThread(server) as url:
        spec = loadgen.LoadSpec(url, "m", [[0, 5], [1, 5], [2, 5], [3, 5]], [6, 6, 6, 6], read_timeout_s=0.5)
        records, aborted = loadgen.run_load(spec, SteadyTracker(1, 4))
    assert aborted is None
    assert [r.success for r in records] == [True, False, False, True]
    for r in records[1:3]:
        assert r.error == "ReadTimeout: no data for 0.5 s"
        # not before the timeout: at least 0.5 s after its last data (the check runs every 0.25 s)
        assert r.finish_time_s - (r.token_times_s[-1] if r.token_times_s else r.submit_time_s) >= 0.5
    assert len(records[1].token_times_s) == 3 and records[2].token_times_s == []
    assert [r.output_tokens for r in records] == [6, 3, 0, 6]


def test_vllm_model_inspection_results_are_carried_between_servers(tmp_path, vllm_env, monkeypatch):
    """Each server gets a fresh cache root, seeded with the inspection results earlier servers left."""
    import fake_vllm
    from harness.workloads import vllm_backend, vllm_server
    from support import llm_configuration

    cache = vllm_server.modelinfo_cache()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "vllm-model_executor-models-llama-LlamaForCausalLM.json").write_text('{"hash": "a"}')
    fake_vllm.use(monkeypatch, tmp_path)
    cfg = llm_configuration()
    backend = vllm_backend.VLLMBackend()
    try:
        backend.start(cfg, tmp_path / "run")
        seeded = backend._tmp / "cache" / "modelinfos"
        assert backend.info["modelinfo_cache_entries"] >= 1
        assert (seeded / "vllm-model_executor-models-llama-LlamaForCausalLM.json").read_text() == '{"hash": "a"}'
        (seeded / "vllm-model_executor-models-qwen3-Qwen3ForCausalLM.json").write_text('{"hash": "b"}')  # vLLM's
        (seeded.parent / "xla_cache").mkdir()  # anything else in the root stays with the server
    finally:
        backend.stop()
    assert (cache / "vllm-model_executor-models-qwen3-Qwen3ForCausalLM.json").read_text() == '{"hash": "b"}'
    assert not (cache / "xla_cache").exists() and all(p.suffix == ".json" for p in cache.iterdir())
    assert not (cache / "torch_compile_cache").exists()  # what was compiled is kept in its own cache
