"""The endpoint backend (``backend: openai``): arrival patterns, prompts from files, and whole runs against
the project's fake server started as an already-running server (completions and chat, Poisson and fixed
concurrency, goodput, a chosen GPU measured) with its faults: a server that dies mid-run, a wrong API key,
a URL that is not loopback, a model the server does not serve. Each is a failed run with a one-line
message; the runs measured before it stay intact."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import fake_vllm
from conftest import FakeGPU
from harness.errors import ConfigError
from harness.measuring import arrivals
from harness.workloads import prompts
from harness.workloads.base import RequestRecord

SAMPLE = Path(__file__).resolve().parent.parent / "configs" / "prompts" / "own-server-sample.jsonl"


# --- arrival patterns ------------------------------------------------------------------------------


def test_poisson_and_gamma_offsets_have_the_rate_and_burstiness_asked_for():
    n = 20_000
    for burst in (1.0, 0.25, 4.0):
        arrival = arrivals.from_options({"arrival": "poisson", "rate_per_s": 5.0, "burstiness": burst}, seed=3)
        offsets = np.asarray(arrival.offsets_s(n))
        gaps = np.diff(offsets)
        assert offsets[0] == 0.0 and (gaps >= 0).all()
        assert gaps.mean() == pytest.approx(0.2, rel=0.05)
        # gamma with shape k: coefficient of variation 1 / sqrt(k)
        assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(burst), rel=0.08)
    same = arrivals.from_options({"arrival": "poisson", "rate_per_s": 5.0}, seed=3).offsets_s(10)
    assert same == arrivals.from_options({"arrival": "poisson", "rate_per_s": 5.0}, seed=3).offsets_s(10)
    assert same != arrivals.from_options({"arrival": "poisson", "rate_per_s": 5.0}, seed=4).offsets_s(10)


@pytest.mark.parametrize(
    "opts, message",
    [
        ({"arrival": "trickle"}, "arrival must be one of"),
        ({"arrival": "poisson"}, "rate_per_s is required"),
        ({"arrival": "poisson", "rate_per_s": 0}, "rate_per_s must be a number > 0"),
        ({"arrival": "poisson", "rate_per_s": 1, "warmup_fraction": 1.0}, "warmup_fraction must be below 1"),
        ({"arrival": "concurrency"}, "concurrency is required"),
        ({"arrival": "concurrency", "concurrency": 0}, "concurrency must be a positive integer"),
        ({"rate_per_s": 2}, "rate_per_s only applies with arrival: poisson"),
        ({"arrival": "poisson", "rate_per_s": 2, "concurrency": 2}, "concurrency only applies"),
    ],
)
def test_bad_arrival_options_are_one_line_errors(opts, message):
    with pytest.raises(ConfigError, match=message) as err:
        arrivals.from_options(opts)
    assert "\n" not in str(err.value)


def _rec(i, submit, first, finish):
    return RequestRecord(i, 4, 3, 3, submit, first, finish, [first, (first + finish) / 2, finish])


def test_poisson_window_opens_after_the_warmup_arrivals_and_closes_at_the_last_arrival():
    arrival = arrivals.Arrival("poisson", rate_per_s=1.0, warmup_fraction=0.2)
    reqs = [_rec(i, 10.0 + i, 10.5 + i, 12.0 + i) for i in range(10)]
    opened, closed = [], []
    tracker = arrivals.tracker_for(arrival, 4, 10, on_open=lambda: opened.append(1), on_close=lambda: closed.append(1))
    events = sorted(
        [(r.submit_time_s, 0) for r in reqs]
        + [(r.first_token_time_s, 1) for r in reqs]
        + [(r.finish_time_s, 2) for r in reqs]
    )
    for t, kind in events:
        (tracker.submitted, tracker.first_token, tracker.finished)[kind](t)
    # ceil(0.2 x 10) = the 2nd arrival (t = 11) opens it; the 10th arrival (t = 19) closes it
    assert tracker.bounds == (11.0, 19.0) and opened == [1] and closed == [1]
    assert arrivals.steady_bounds(reqs, arrival, 4) == (11.0, 19.0)
    assert arrivals.steady_bounds(reqs, arrival, 4, stop_time_s=15.0) == (11.0, 15.0)
    # fixed concurrency C: all-at-once's window with M = min(C, max_num_seqs)
    conc = arrivals.Arrival("concurrency", concurrency=2)
    assert conc.effective_batch(8) == 2 and conc.effective_batch(1) == 1
    # with C = 2: opens at the 2nd first token (11.5), closes at the 9th finish (20.0)
    assert arrivals.steady_bounds(reqs, conc, 8) == (11.5, 20.0)


def test_gate_sends_at_the_poisson_offsets_and_keeps_the_concurrency():
    class FakeLoop:
        def __init__(self):
            self.now = 0.0

        def monotonic(self):
            return self.now

        async def sleep(self, seconds):  # wakes at its own deadline (the sleepers wake in deadline order here)
            target = self.now + seconds
            await asyncio.sleep(0)
            self.now = max(self.now, target)

    async def drive(arrival, n, work_s=0.0):
        loop = FakeLoop()
        gate = arrivals.Gate(arrival, n, sleep=loop.sleep, monotonic=loop.monotonic)
        clock_times, running, peak = [], [0], [0]
        recs = [RequestRecord(i, 1, 1, 0, 0.0, None, None) for i in range(n)]

        class Tracker:
            sent: ClassVar[list[float]] = []

            def submitted(self, t):
                self.sent.append(t)

        tracker = Tracker()

        def clock():
            clock_times.append(loop.now)
            return loop.now

        def request(i):
            async def go():
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                for _ in range(3):
                    await asyncio.sleep(0)
                running[0] -= 1

            return go

        await asyncio.gather(*(gate.send(i, recs[i], tracker, clock, request(i)) for i in range(n)))
        return recs, tracker.sent, peak[0]

    poisson = arrivals.Arrival("poisson", rate_per_s=4.0, seed=1)
    recs, sent, _ = asyncio.run(drive(poisson, 6))
    assert [r.submit_time_s for r in recs] == pytest.approx(poisson.offsets_s(6))
    assert sorted(sent) == pytest.approx(poisson.offsets_s(6))
    _, _, peak = asyncio.run(drive(arrivals.Arrival("concurrency", concurrency=2), 7))
    assert peak == 2


# --- prompts ---------------------------------------------------------------------------------------


def test_prompts_from_jsonl_and_parquet_are_seeded_and_cycle(tmp_path):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    chosen = prompts.load(str(SAMPLE), 30, seed=1)
    assert len(chosen.prompts) == 30 and chosen.rows == len(rows)
    assert {p.text for p in chosen.prompts} == {r["prompt"] for r in rows}  # 30 > 24 rows: every row, cycled
    assert all(p.reference_output_tokens == rows[p.row]["output_tokens"] for p in chosen.prompts)
    assert [p.row for p in prompts.load(str(SAMPLE), 30, seed=1).prompts] == [p.row for p in chosen.prompts]
    assert [p.row for p in prompts.load(str(SAMPLE), 30, seed=2).prompts] != [p.row for p in chosen.prompts]
    parquet = tmp_path / "p.parquet"
    conversations = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": "ok"}] for r in rows]
    pd.DataFrame({"conversation": conversations}).to_parquet(parquet)
    from_parquet = prompts.load(str(parquet), 5, seed=1, prompt_field="conversation")
    assert [p.text for p in from_parquet.prompts] == [rows[p.row]["prompt"] for p in from_parquet.prompts]
    assert from_parquet.prompts[0].reference_output_tokens is None and "Parquet" in from_parquet.source


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ('{"text": "hi"}\nnot json\n', "line 2 is not JSON"),
        ('{"body": "hi"}\n', "no prompt field"),
        ('{"prompt": "hi", "output_tokens": "many"}\n', "must be a whole number"),
    ],
)
def test_bad_prompt_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        prompts.load(str(path), 3)
    assert "\n" not in str(err.value)


def test_a_hugging_face_dataset_without_the_datasets_package_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ModuleNotFoundError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(ConfigError, match="needs the `datasets` package") as err:
        prompts.load("hf:lmarena-ai/arena-human-preference-55k", 3)
    assert "\n" not in str(err.value)


def test_prompt_lengths_from_a_model_folder_tokenizer_or_an_estimate(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from harness.workloads import archs

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    folder = archs.materialize_tokenizer("tiny-llama")
    texts = ["the quick brown fox", "a much longer sentence about the weather and the trains"]
    counts, how = prompts.count_tokens(texts, tokenizer=folder)
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert counts == [len(tok(t)["input_ids"]) for t in texts] and how == f"tokenizer of {folder}"
    counts, how = prompts.count_tokens(texts, base_url="http://127.0.0.1:9")  # nothing answers there
    assert counts == [5, 14] and how.startswith("estimate: 4 characters per token")


# --- whole runs against an already-running (fake) server -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, vllm_env):
    """``start(name, **kw) -> base_url``: fake servers on free ports, stopped (by group) afterwards."""
    started = []

    def start(name="served-model", **kw):
        port = _free_port()
        proc, log = fake_vllm.start_standalone(tmp_path, port, name, **kw)
        started.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "listening" in log.read_text():
                return f"http://127.0.0.1:{port}"
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        raise AssertionError("fake server never listened")

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _study(tmp_path, blocks: list[str]) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        "study: own\nsettings: {cooldown_s: 0, idle_power_s: 0, sampler_hz: 10, run_timeout_s: 120}\n"
        "runs:\n" + "".join(blocks)
    )
    return path


def _block(url, model="served-model", n=12, max_num_seqs=4, **options):
    opts = {"base_url": url, "prompts": str(SAMPLE), **options}
    return (
        f"  - {{task: lm-arena-chat, backend: openai, models: [{model}], num_requests: {n}, seed: 0,\n"
        f"     max_output_tokens: 12, options: {json.dumps(opts)}, grid: {{max_num_seqs: [{max_num_seqs}]}}}}\n"
    )


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("own/*/run.json"))]


def _measure(config: Path, results: Path) -> dict:
    from harness.orchestration import runner
    from harness.orchestration.study import load_study

    study = load_study(config)
    counts = runner.measure_study(study, results, progress=False)
    by_id = {json.loads(p.read_text())["run_id"]: json.loads(p.read_text()) for p in results.glob("own/*/run.json")}
    return counts, [by_id[c.run_id] for c in study.configurations]


def test_completions_and_chat_at_poisson_and_fixed_concurrency(tmp_path, server, no_nvml, monkeypatch):
    monkeypatch.setenv("OWN_SERVER_KEY", "s3cret-key")
    url = server(api_key="s3cret-key", faults={"token_s": 0.002, "natural_tokens": 5})
    config = _study(
        tmp_path,
        [
            _block(
                url,
                api_key_env="OWN_SERVER_KEY",
                arrival="poisson",
                rate_per_s=40.0,
                output_lengths="reference",
                ttft_target_ms=60000,
                itl_target_ms=60000,
            ),
            _block(
                url,
                api="chat",
                api_key_env="OWN_SERVER_KEY",
                arrival="concurrency",
                concurrency=3,
                output_lengths="natural",
                ttft_target_ms=0.001,
            ),
        ],
    )
    counts, (poisson, chat) = _measure(config, tmp_path / "results")
    assert counts == {"ok": 2}, [r.get("message") for r in (poisson, chat)]
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    for record in (poisson, chat):
        assert "s3cret-key" not in json.dumps(record)  # the key never reaches the results
        assert record["backend_info"]["api_key_env"] == "OWN_SERVER_KEY"
        assert record["backend_info"]["metrics_scraped"] is True
        assert record["metrics"]["energy_per_token_joules"] is None  # no GPU here: null, never 0
    run_dir = tmp_path / "results" / "own" / poisson["run_id"]
    req = pd.read_parquet(run_dir / "requests.parquet")
    info = poisson["backend_info"]
    used = info["prompts"]["rows_used"]
    assert req["success"].all() and len(req) == 12
    # forced to the prompts' reference lengths (capped at max_output_tokens: 12)
    assert req["output_tokens"].tolist() == [min(rows[i]["output_tokens"], 12) for i in used]
    # prompt lengths: the server's /tokenize (planned), then its usage (measured): one token per word here
    assert info["prompts"]["prompt_tokens_counted_by"].startswith("the server's /tokenize")
    assert req["prompt_tokens"].tolist() == [len(rows[i]["prompt"].split()) for i in used]
    # the requests were sent at the seeded Poisson offsets, in order
    offsets = arrivals.Arrival.from_info(info["load"]).offsets_s(12)
    sent = (req["submit_time_s"] - req["submit_time_s"].min()).tolist()
    assert all(b >= a - 0.05 for a, b in zip(offsets, sent, strict=False)) and sent == sorted(sent)
    m = poisson["metrics"]
    assert m["arrival_pattern"] == "poisson"
    open_at = sorted(req["submit_time_s"])[1]  # ceil(0.1 x 12) = the 2nd arrival
    assert m["steady_open_time_s"] == pytest.approx(open_at) and m["steady_close_time_s"] == pytest.approx(
        req["submit_time_s"].max()
    )
    assert m["num_good_requests"] == 12 and m["slo_attainment_fraction"] == 1.0 and m["goodput_requests_per_sec"] > 0
    assert "batch-saturation check not applied" in poisson["unstable_reason"]

    chat_req = pd.read_parquet(tmp_path / "results" / "own" / chat["run_id"] / "requests.parquet")
    # natural lengths: the (fake) model stops after 5 tokens; the chat stream's role chunk is no token
    assert chat_req["success"].all() and (chat_req["output_tokens"] == 5).all()
    assert chat_req["token_times_s"].map(len).tolist() == [5] * 12
    assert chat["backend_info"]["prompts"]["prompt_tokens_counted_by"].startswith("the server's /tokenize")
    cm = chat["metrics"]
    assert cm["arrival_pattern"] == "concurrency" and cm["steady_open_time_s"] is not None
    assert cm["num_good_requests"] == 0 and cm["energy_per_good_request_joules"] is None  # a 1 us TTFT target


def test_the_gpus_named_are_measured_and_energy_per_good_request(tmp_path, server, fake_nvml):
    gpus = [FakeGPU([(time.time() - 10, 50.0)]), FakeGPU([(time.time() - 10, 120.0)])]
    fake_nvml(gpus)
    url = server(faults={"token_s": 0.02})  # a window of a few tenths of a second
    config = _study(tmp_path, [_block(url, n=8, max_num_seqs=2, gpus=[1], ttft_target_ms=60000)])
    counts, (record,) = _measure(config, tmp_path / "results")
    assert counts == {"ok": 1}, record.get("message")
    steady = record["windows"]["steady"]
    assert list(steady["gpu_energy_joules"]) == ["1"]  # GPU 1 only
    # exact: GPU 1's counter difference between the window's own two reads, 120 W over the time between them
    # (50 W on GPU 0: both would be 170 W); no tolerance on the real clock (see FakeGPU.reads_within)
    first, last = gpus[1].reads_within(steady["start_time_s"], steady["end_time_s"])
    assert steady["gpu_energy_joules"]["1"] == pytest.approx((last[2] - first[2]) / 1000.0, abs=1e-9)
    assert steady["gpu_energy_joules"]["1"] == pytest.approx(120.0 * (last[1] - first[1]), abs=2e-3)  # mJ rounding
    assert not [r for r in gpus[0].reads if steady["start_time_s"] <= r[1] <= steady["end_time_s"]]  # GPU 0 unread
    m = record["metrics"]
    assert m["energy_per_token_joules"] == pytest.approx(m["gpu_energy_joules"] / m["steady_output_tokens"])
    assert m["slo_attainment_fraction"] == 1.0
    assert m["energy_per_good_request_joules"] == pytest.approx(m["energy_per_output_joules"])


def test_faults_are_one_line_failures_and_earlier_runs_stay_intact(tmp_path, server, no_nvml, monkeypatch):
    from harness.measuring import store

    monkeypatch.setenv("OWN_SERVER_KEY", "wrong-key")
    good = server(faults={"token_s": 0.002})
    keyed = server(api_key="the-right-key")
    dying = server(seed=5, faults={"token_s": 0.01, "die_mid_run_seeds": [5], "die_after_tokens": 20})
    config = _study(
        tmp_path,
        [
            _block(good, n=6),
            _block(keyed, n=6, max_num_seqs=5, api_key_env="OWN_SERVER_KEY"),
            _block("http://192.0.2.10:8000", n=6, max_num_seqs=6),
            _block(good, model="not-served", n=6, max_num_seqs=7),
            _block(dying, n=12, max_num_seqs=3),
        ],
    )
    counts, (ok, unauthorized, remote, missing, died) = _measure(config, tmp_path / "results")
    assert counts == {"ok": 1, "failed": 4}
    assert ok["status"] == "ok"
    expect = {
        "unauthorized": (unauthorized, "refused the API key from $OWN_SERVER_KEY (HTTP 401)"),
        "remote-refused": (remote, "is not on this host (loopback)"),
        "model-not-served": (missing, "does not serve model 'not-served' (it serves: served-model)"),
        "server-died": (died, "stopped accepting connections"),
    }
    for cause, (record, text) in expect.items():
        assert record["status"] == "failed" and record["cause"] == cause, record
        assert text in record["message"] and "\n" not in record["message"]
    assert "wrong-key" not in json.dumps(unauthorized)
    # the first run's folder is whole and unchanged by the failures after it
    ok_dir = tmp_path / "results" / "own" / ok["run_id"]
    assert store.verify(ok_dir) == []
    assert len(pd.read_parquet(ok_dir / "requests.parquet")) == 6


def test_a_remote_server_is_driven_only_when_allowed_and_its_energy_is_null(tmp_path, server, fake_nvml):
    from harness.orchestration.study import load_study
    from harness.workloads import openai_backend, registry

    fake_nvml([FakeGPU([(time.time() - 10, 80.0)])])
    url = server(faults={"token_s": 0.002})
    # this host's name for the fake, as if it were another host: is_loopback answers False
    cfg = load_study(_study(tmp_path, [_block(url, n=6, allow_remote=True)])).configurations[0]
    original = openai_backend.is_loopback
    try:
        openai_backend.is_loopback = lambda host: False
        assert registry.measured_gpus(cfg, 1) == []
        counts, (record,) = _measure(_study(tmp_path, [_block(url, n=6, allow_remote=True)]), tmp_path / "results")
    finally:
        openai_backend.is_loopback = original
    assert counts == {"ok": 1}, record.get("message")
    assert "its energy is not measured" in record["backend_info"]["energy_note"]
    assert record["metrics"]["gpu_energy_joules"] is None
    assert "remote host 127.0.0.1; its energy is not measured" in record["metrics"]["energy_source"]
    assert not record["is_stable"] and "energy-missing" in record["failed_checks"]


def test_loopback_names():
    from harness.workloads.openai_backend import is_loopback, split_url

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.3.2.1")
    assert not is_loopback("192.0.2.10") and not is_loopback("10.0.0.1")
    assert split_url("http://127.0.0.1:8000/v1/") == ("http://127.0.0.1:8000", "127.0.0.1")


def test_the_vllm_backend_sends_dataset_prompts_tokenized_by_the_served_model(tmp_path, no_nvml, vllm_env, monkeypatch):
    """The harness's own vLLM server (the fake here) with real prompts from a file instead of random ids."""
    from transformers import AutoTokenizer

    fake_vllm.use(monkeypatch, tmp_path, {"token_s": 0.002})
    config = tmp_path / "study.yaml"
    config.write_text(
        "study: own\nsettings: {cooldown_s: 0, idle_power_s: 0, sampler_hz: 10, run_timeout_s: 120}\nruns:\n"
        "  - {task: lm-arena-chat, backend: vllm, models: [tiny-llama], num_requests: 6, seed: 0,\n"
        f"     max_output_tokens: 6, options: {{prompts: {json.dumps(str(SAMPLE))}, output_length_scale: 0.1}},\n"
        "     grid: {max_num_seqs: [2]}}\n"
    )
    counts, (record,) = _measure(config, tmp_path / "results")
    assert counts == {"ok": 1}, record.get("message")
    info = record["backend_info"]
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(info["model_folder"])
    expected = [len(tok(rows[i]["prompt"])["input_ids"]) for i in info["prompts"]["rows_used"]]
    req = pd.read_parquet(tmp_path / "results" / "own" / record["run_id"] / "requests.parquet")
    assert req["prompt_tokens"].tolist() == expected == info["lengths"]["prompt_tokens"]
    assert info["lengths"]["prompt_source"].startswith("local JSONL file")
