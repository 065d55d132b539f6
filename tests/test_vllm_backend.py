"""vLLM backend: the load generator against a fake streaming server (fast), and a real vLLM CPU
server through the whole runner path (marked ``vllm``/``slow``): a measured run, a server killed
mid-run that fails its run with the cause while the sweep goes on, and a server that never gets
healthy. No server may survive its run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from harness.measuring.steady import SteadyTracker, steady_bounds
from harness.workloads import loadgen, vllm_backend, vllm_layout, vllm_logs, vllm_server
from harness.workloads.base import WorkloadError
from support import REFERENCE_DIR as REF
from support import llm_configuration


def _cfg(**over):
    return llm_configuration(**({"study": "t", "num_requests": 6, "max_output_tokens": 12} | over))


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harness-cache"))
    if "HARNESS_REFERENCE_DIR" not in os.environ and REF.is_dir():
        monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(REF))


# --- pure helpers ----------------------------------------------------------------------------------


def test_parallel_layouts():
    assert vllm_layout.parallel_args(_cfg()) == ["--tensor-parallel-size", "1"]
    assert vllm_layout.parallel_args(_cfg(num_gpus=4, tensor_parallel=4)) == ["--tensor-parallel-size", "4"]
    # MoE as the reference ran it: experts over both GPUs, attention tensor-parallel over the same GPUs
    assert vllm_layout.parallel_args(_cfg(num_gpus=2, tensor_parallel=2, expert_parallel=2)) == [
        "--tensor-parallel-size",
        "2",
        "--enable-expert-parallel",
    ]
    # the knobs say what vLLM does: tensor_parallel is never replaced; experts span tensor x data parallel GPUs
    assert vllm_layout.parallel_args(_cfg(num_gpus=2, expert_parallel=2)) == [
        "--tensor-parallel-size",
        "1",
        "--data-parallel-size",
        "2",
        "--enable-expert-parallel",
    ]
    assert (
        vllm_layout.parallel_layout(_cfg(num_gpus=4, tensor_parallel=2, expert_parallel=4))["expert_parallel_size"] == 4
    )
    assert vllm_layout.parallel_args(_cfg(num_gpus=8, tensor_parallel=2)) == [
        "--tensor-parallel-size",
        "2",
        "--data-parallel-size",
        "4",
    ]


def test_engine_layout_puts_one_cpu_rank_inside_the_engine_core(tmp_path, monkeypatch):
    """One rank on the CPU build: the worker runs in the engine-core process (the GPU layout), with the
    engine torch's OpenMP runtime preloaded; more ranks, GPUs or ``separate_worker: true`` leave vLLM's own."""
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    gomp = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "torch" / "lib" / "libgomp.so.1"
    gomp.parent.mkdir(parents=True)
    gomp.write_bytes(b"")
    python = str(tmp_path / "venv" / "bin" / "python")
    info, env = vllm_layout.engine_layout(_cfg(), True, None, python)
    assert env == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "LD_PRELOAD": str(gomp)}
    assert info == {"worker": "in the engine-core process", "source": "harness default for the CPU build"}
    info, env = vllm_layout.engine_layout(_cfg(), True, True, python)
    assert env == {} and info == {"worker": "a process per rank", "source": "option separate_worker"}
    info, env = vllm_layout.engine_layout(_cfg(num_gpus=2, tensor_parallel=2), True, None, python)
    assert env == {} and info["worker"] == "a process per rank" and info["source"] == "vLLM's own"
    info, env = vllm_layout.engine_layout(_cfg(), False, None, python)  # a GPU: vLLM's own uni-process layout
    assert env == {} and info == {"worker": "in the engine-core process", "source": "vLLM's own"}
    monkeypatch.setenv("LD_PRELOAD", "/opt/libiomp5.so")  # an OpenMP runtime the user preloads is kept
    assert vllm_layout.engine_layout(_cfg(), True, None, python)[1] == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    assert vllm_layout.engine_libgomp(str(tmp_path / "elsewhere" / "bin" / "python")) is None


def test_the_launcher_is_used_only_where_vllm_freezes_its_start_up_heap(tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "vllm"
    python = str(tmp_path / "venv" / "bin" / "python")
    assert vllm_backend.server_command(python) == [python, "-m", "vllm.entrypoints.openai.api_server"]
    (site / "utils").mkdir(parents=True)
    (site / "v1" / "engine").mkdir(parents=True)
    (site / "utils" / "gc_utils.py").write_text("def freeze_gc_heap() -> None:\n    pass\n")
    (site / "v1" / "engine" / "core.py").write_text("# no call here\n")
    assert not vllm_backend.engine_freezes_startup_heap(python)
    (site / "v1" / "engine" / "core.py").write_text("        freeze_gc_heap()\n")
    assert vllm_backend.server_command(python) == [
        python,
        str(vllm_backend.LAUNCHER),
        "vllm.entrypoints.openai.api_server",
    ]


LAUNCHED = """
import gc, json, multiprocessing, sys
from launchme_lib import child  # the target lives in a library module, as vLLM's engine core does
junk = [[i] for i in range(50_000)]  # what an import leaves behind

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    spawned = q.get(timeout=60)
    p.join(60)
    print(json.dumps({"argv": sys.argv[1:], "gc_enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                      "spawned_frozen": spawned, "main": __name__}))
"""


def test_launcher_runs_the_module_as_main_with_its_imports_frozen_in_spawned_children_too(tmp_path):
    """The launcher runs a module as ``-m`` would (same arguments, ``__main__``), with the collector on again
    afterwards and the import-time objects frozen, in the process it starts and in a spawned child."""
    import subprocess
    import sys

    (tmp_path / "launchme.py").write_text(LAUNCHED)
    (tmp_path / "launchme_lib.py").write_text("import gc\n\ndef child(q):\n    q.put(gc.get_freeze_count())\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run(
        [sys.executable, str(vllm_backend.LAUNCHER), "launchme", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["argv"] == ["--port", "1"] and got["main"] == "__main__" and got["gc_enabled"]
    assert got["frozen"] >= 50_000 and got["spawned_frozen"] >= 50_000
    plain = subprocess.run(
        [sys.executable, "-m", "launchme"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert json.loads(plain.stdout.strip().splitlines()[-1])["frozen"] == 0  # the difference is the launcher's


def test_expert_parallel_layouts_vllm_cannot_run_are_refused():
    from harness.errors import ConfigError
    from harness.workloads import archs

    moe = archs.llm_facts("qwen3-30b-a3b")
    # vLLM 0.11.1 would spread experts over all 4 GPUs, not 2: refused rather than mislabelled
    with pytest.raises(ConfigError, match="expert_parallel must be 1 or 4"):
        vllm_layout.parallel_args(_cfg(num_gpus=4, tensor_parallel=2, expert_parallel=2))
    assert vllm_layout.parallel_problems(_cfg(num_gpus=2, tensor_parallel=2, expert_parallel=2), moe) == []
    dense = archs.llm_facts("llama-3.1-8b")
    assert any("dense model" in p for p in vllm_layout.parallel_problems(_cfg(num_gpus=2, expert_parallel=2), dense))
    odd = vllm_layout.parallel_problems(_cfg(num_gpus=3, tensor_parallel=3), dense)
    assert any("32 attention heads" in p for p in odd) and any("8 key-value heads" in p for p in odd)
    small = archs.LLMFacts(
        parameters=1, num_attention_heads=12, num_key_value_heads=12, num_experts=6, num_hidden_layers=1
    )
    assert any("6 experts" in p for p in vllm_layout.parallel_problems(_cfg(num_gpus=4, expert_parallel=4), small))


def test_server_facts_and_causes_from_the_log():
    log = (
        "INFO [kv_cache_utils.py:2327] CPU KV cache size: 131,072 tokens, Maximum concurrency for 2,048 tokens "
        "per request: 64.00x\nINFO [core.py:402] init engine (profile, create kv cache, warmup model) took 2.94 s"
    )
    assert vllm_logs.parse_server_facts(log) == {
        "kv_cache_size_tokens": 131072,
        "kv_cache_max_concurrency": 64.0,
        "engine_init_s": 2.94,
    }
    assert vllm_logs.classify("torch.OutOfMemoryError: CUDA out of memory.", "server-died") == "oom"
    assert vllm_logs.classify("ValueError: ... is larger than the available KV cache memory", "x") == "oom"
    assert vllm_logs.classify("Segmentation fault", "server-died") == "server-died"


def test_root_cause_of_a_failed_start_survives_a_long_traceback(tmp_path):
    log = tmp_path / "server.log"
    lines = ["INFO starting"] * 5 + [
        "(EngineCore pid=1) ERROR [core.py:1510] ValueError: No available memory for the cache blocks. Try more."
    ]
    lines += [f'  File "x.py", line {i}, in f' for i in range(80)] + [
        "RuntimeError: Engine core initialization failed."
    ]
    log.write_text("\n".join(lines) + "\n")
    text, cause = vllm_logs.evidence(log, "server-died")
    assert cause == "oom"
    assert text.startswith("[root cause, earlier in server.log] (EngineCore pid=1) ERROR")
    assert text.rstrip().endswith("RuntimeError: Engine core initialization failed.")
    log.write_text("INFO a\nRuntimeError: Engine core initialization failed.\n")
    assert vllm_logs.evidence(log, "server-died") == (
        "INFO a\nRuntimeError: Engine core initialization failed.",
        "server-died",
    )


def test_busy_port_and_unknown_options_are_refused_before_any_server_starts(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        backend = vllm_backend.VLLMBackend()
        with pytest.raises(WorkloadError) as err:
            backend.start(_cfg(options={"port": port}), tmp_path)
        assert err.value.cause == "port-busy" and backend.proc is None
    with pytest.raises(WorkloadError, match="unknown vllm option") as err:
        vllm_backend.VLLMBackend().start(_cfg(options={"max_num_seq": 3}), tmp_path)
    assert err.value.cause == "bad-option"
    from harness.errors import ConfigError

    for extra in (["--host", "0.0.0.0"], ["--port=80"], ["--trust-remote-code"], "--enforce-eager"):
        with pytest.raises(ConfigError) as err:  # also a WorkloadError: the runner records cause bad-option
            vllm_backend.VLLMBackend().start(_cfg(options={"extra_args": extra}), tmp_path)
        assert isinstance(err.value, WorkloadError) and err.value.cause == "bad-option"


# --- load generator against a fake OpenAI-compatible server ----------------------------------------


class FakeServer:
    """Streams one token per chunk every ``step_s``; a prompt containing -1 gets HTTP 400;
    ``short`` makes it stop one token early (a length the harness must notice)."""

    def __init__(self, step_s=0.004, short=False):
        self.step_s, self.short = step_s, short
        self.sent: dict[int, int] = {}  # tokens written, by the request's first prompt token
        self.port = vllm_server.free_port()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    async def _completions(self, request):
        from aiohttp import web

        body = await request.json()
        if -1 in body["prompt"]:
            return web.json_response({"error": "token id out of vocabulary"}, status=400)
        n = body["max_tokens"] - (1 if self.short else 0)
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(n):
            await asyncio.sleep(self.step_s)
            choice = {"index": 0, "text": "x", "token_ids": [7], "finish_reason": "length" if i == n - 1 else None}
            await resp.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
            self.sent[body["prompt"][0]] = i + 1
        usage = {"prompt_tokens": len(body["prompt"]), "completion_tokens": n}
        await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
        return resp

    def _serve(self):
        from aiohttp import web

        async def main():
            app = web.Application()
            app.router.add_post("/v1/completions", self._completions)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self.ready.set()
            while not self.stopping:
                await asyncio.sleep(0.05)
            await runner.cleanup()

        self.stopping = False
        asyncio.run(main())

    def __enter__(self):
        self.thread.start()
        self.ready.wait(10)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(5)


def test_loadgen_records_every_token_and_opens_the_steady_window_online():
    events = []
    tracker = SteadyTracker(
        2,
        5,
        on_open=lambda: events.append(("open", time.time())),
        on_close=lambda: events.append(("close", time.time())),
    )
    with FakeServer() as url:
        spec = loadgen.LoadSpec(url, "m", [[0, 5, 6]] * 5, [3, 8, 1, 5, 2])
        records, aborted = loadgen.run_load(spec, tracker)
    assert aborted is None and all(r.success for r in records)
    assert [r.output_tokens for r in records] == [3, 8, 1, 5, 2]
    for r in records:
        assert len(r.token_times_s) == r.target_output_tokens
        assert r.submit_time_s < r.first_token_time_s == r.token_times_s[0] <= r.token_times_s[-1] <= r.finish_time_s
        assert r.token_times_s == sorted(r.token_times_s)
    assert [e for e, _ in events] == ["open", "close"]
    # the online window equals the one replayed from the records
    assert steady_bounds(records, 2) == (tracker.open_time_s, tracker.close_time_s)


def test_loadgen_marks_failed_and_short_requests():
    tracker = SteadyTracker(1, 2)
    with FakeServer(short=True) as url:
        records, _ = loadgen.run_load(loadgen.LoadSpec(url, "m", [[0, 1], [0, -1]], [4, 4]), tracker)
    short, bad = records
    assert not short.success and "generated 3 tokens" in short.error and short.output_tokens == 3
    assert not bad.success and bad.error.startswith("RuntimeError: HTTP 400") and bad.output_tokens == 0
    assert tracker.finishes == 2


def test_loadgen_abort_fails_the_open_requests():
    server = FakeServer(step_s=0.05)

    def should_abort():  # once every stream is under way (however slowly a loaded host got there)
        return "server was killed by signal 9" if len(server.sent) == 3 and min(server.sent.values()) >= 3 else None

    with server as url:
        records, aborted = loadgen.run_load(
            loadgen.LoadSpec(url, "m", [[0], [1], [2]], [200] * 3), SteadyTracker(3, 3), should_abort=should_abort
        )
    assert aborted == "server was killed by signal 9"
    assert all(not r.success and r.error == "aborted: server was killed by signal 9" for r in records)
    assert all(0 < r.output_tokens < 200 for r in records)


def test_loadgen_stops_early_when_the_adaptive_stopper_says_so():
    from types import SimpleNamespace

    from harness.measuring import adaptive
    from harness.workloads.base import WindowMeasurement

    class Meter:
        def __init__(self):
            self.open = {}

        def begin(self, name):
            self.open[name] = time.time()

        def end(self, name, sync=True):
            return WindowMeasurement(name, self.open.pop(name), time.time(), {}, {}, {}, "none: test")

    meter = Meter()
    tracker = SteadyTracker(2, 6, on_open=lambda: meter.begin("steady"), on_close=lambda: meter.end("steady"))
    # a loose target (3 batches: met while the batch values vary by up to ~40%), so the stop depends on the window's
    # age rather than on how evenly a loaded host paced the tokens (the load generator's side of the hook is tested
    # here, the estimator in test_adaptive); the long requests last >= 4 s, the stop comes after ~3 checkpoints
    rule = SimpleNamespace(
        stop="adaptive", adaptive_rel_halfwidth=0.99, adaptive_min_window_s=0.2, adaptive_batches=3, max_num_seqs=2
    )
    stopper = adaptive.for_run(rule, meter, tracker)
    with FakeServer(step_s=0.004) as url:
        records, aborted = loadgen.run_load(
            loadgen.LoadSpec(url, "m", [[0]] * 6, [5, 5, 1000, 1000, 1000, 1000]), tracker, stopper=stopper
        )
    assert aborted is None and stopper.stopped
    cut = adaptive.mark_stopped(records, stopper.stop_time_s)
    assert 0 < cut < 6 and sum(r.output_tokens for r in records) < 4010
    assert all(adaptive.is_stopped(r) for r in records if not r.success)


# --- a real vLLM CPU server -------------------------------------------------------------------------


def _group_members(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


@pytest.mark.vllm
def test_never_healthy_fails_the_start_and_leaves_no_process(tmp_path):
    backend = vllm_backend.VLLMBackend()
    with pytest.raises(WorkloadError) as err:
        backend.start(_cfg(options={"startup_timeout_s": 2}), tmp_path)
    pgid = backend.proc.pid
    assert err.value.cause == "unhealthy" and "never became healthy" in str(err.value)
    assert "--load-format dummy" in (tmp_path / "server.log").read_text()
    backend.stop()
    assert _group_members(pgid) == [] and backend.proc is None and backend._tmp is None


def _kill_server_when_busy(run_dir: Path, stop: threading.Event, killed: list) -> None:
    """Wait until this run's server is streaming responses (its access log shows the completion requests),
    then SIGKILL its API server process. (The log, not /metrics: a busy 2-core server can answer /metrics
    too slowly to catch a short run.)"""
    log = run_dir / "server.log"
    while not stop.is_set():
        text = log.read_text(errors="replace") if log.exists() else ""
        pid = re.search(r"\(APIServer pid=(\d+)\)", text)
        if pid and text.count("POST /v1/completions") >= 2:
            time.sleep(0.5)  # let tokens flow: the kill lands mid-run
            os.kill(int(pid.group(1)), signal.SIGKILL)
            killed.append(int(pid.group(1)))
            return
        time.sleep(0.05)


@pytest.mark.vllm
@pytest.mark.slow
def test_sweep_measures_a_real_server_and_survives_one_killed_mid_run(tmp_path):
    """Three runs: tiny-llama on vLLM CPU (measured), the same server killed mid-run (failed with its
    cause and log tail), then a trivial run (the sweep went on)."""
    from harness.measuring import store
    from harness.orchestration import runner
    from harness.orchestration.study import load_study

    config = tmp_path / "study.yaml"
    config.write_text(
        "study: vllm-it\n"
        "runs:\n"
        "  - {task: lm-arena-chat, backend: vllm, models: [tiny-llama], num_requests: 10, seed: 1,\n"
        "     max_output_tokens: 24, options: {output_length_scale: 0.1, max_prompt_tokens: 64},\n"
        "     grid: {max_num_seqs: [3]}}\n"
        "  - {task: gpqa, backend: vllm, models: [tiny-llama], num_requests: 6, seed: 2,\n"
        "     max_output_tokens: 400, options: {max_prompt_tokens: 64}, grid: {max_num_seqs: [2]}}\n"
        "  - {task: cpu-trivial, backend: trivial, models: [cpu-spin], num_requests: 8, grid: {max_num_seqs: [2]}}\n"
    )
    study = load_study(config)
    results = tmp_path / "results"
    killed: list[int] = []
    stop = threading.Event()
    victim = store.run_path(results, study.name, study.configurations[1].run_id)
    killer = threading.Thread(target=_kill_server_when_busy, args=(victim, stop, killed), daemon=True)
    killer.start()
    try:
        counts = runner.measure_study(study, results, progress=False)
    finally:
        stop.set()
        killer.join(5)
    assert counts == {"ok": 2, "failed": 1}

    ok_dir = store.run_path(results, study.name, study.configurations[0].run_id)
    assert store.verify(ok_dir) == []
    record = json.loads((ok_dir / "run.json").read_text())
    assert record["status"] == "ok", record.get("message")
    info = record["backend_info"]
    assert info["served_model_name"].startswith("tiny-llama-") and info["cpu_build"]
    assert info["steady_tracker_state"] == "closed" and info["failed_requests"] == 0
    assert "--load-format" in info["server_argv"] and "dummy" in info["server_argv"]
    assert info["engine_layout"]["worker"] == "in the engine-core process"
    assert "multiproc_executor" not in (ok_dir / "server.log").read_text()  # no worker process was started
    import pandas as pd

    rows = pd.read_parquet(ok_dir / "requests.parquet")
    assert len(rows) == 10 and rows["success"].all()
    assert (rows["output_tokens"] == rows["target_output_tokens"]).all()
    assert rows["target_output_tokens"].tolist() == info["lengths"]["output_tokens"]
    assert (rows["first_token_time_s"] > rows["submit_time_s"]).all()
    assert rows["token_times_s"].map(len).tolist() == rows["output_tokens"].tolist()
    metrics = record["metrics"]
    assert metrics["steady_duration_s"] > 0 and metrics["output_throughput_tokens_per_sec"] > 0
    assert metrics["energy_per_token_joules"] is None and "no NVIDIA GPU" in metrics["energy_source"]
    assert "Application startup complete" in (ok_dir / "server.log").read_text()

    assert killed, "the killer thread never found the second server busy"
    failed = json.loads((victim / "run.json").read_text())
    assert failed["status"] == "failed" and failed["cause"] == "server-died"
    assert "killed by signal 9" in failed["message"] and failed["log_tail"]
    assert (victim / "server.log").exists() and store.verify(victim) == []

    last = json.loads((store.run_path(results, study.name, study.configurations[2].run_id) / "run.json").read_text())
    assert last["status"] == "ok"
    # no server outlived its run
    for info_pid in killed:
        assert _group_members(info_pid) == []
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_vllm_server(p)]
    assert leftovers == []


def _is_vllm_server(proc: Path) -> bool:
    try:
        cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"vllm.entrypoints.openai.api_server" in cmd and b"tiny-llama-" in cmd
