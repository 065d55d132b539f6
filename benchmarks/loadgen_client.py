"""Benchmark 5: the load generator's own cost -- CPU per streamed token, tokens per second on one core,
the latency it adds per event at the reference's peak rate, and its CPU against the engine's.

    .venv/bin/python benchmarks/loadgen_client.py [--quick] [--no-smoke]

1. **Throughput** (goal: <= 10 us of CPU per token and >= 100k tokens/s on one core, 256-4,096 streams,
   one token per event, several events per write). The fast fake server (tests/fast_fake_vllm.py, raw
   asyncio, vLLM's wire format) runs in its own process pinned to one CPU and streams as fast as the
   client reads; the client (``harness.workloads.loadgen.run_load`` with a real steady-state tracker) runs
   in a fresh process pinned to the other CPU. Per case: client CPU seconds (user + system, from
   ``getrusage``) per token, and tokens per CPU-second (the one-core ceiling: what one core would stream
   were the client alone on it) next to tokens per wall-second (lower on a shared host). The load
   generator of the commit before this change runs the same cases in the same run (the ratio).
2. **Added latency at the reference's peak rate** (22.4k output tokens/s: gpt-oss 120B on 2 x B200,
   batch 2,048), alternating this tree's load generator with that of TIMER_COMMIT (aiohttp's per-read
   timeout, a timer re-armed at every read, which the client no longer uses). The server is a paced
   engine: every 2048 / 22,400 s each of 2,048 streams gets one token, and it records when it wrote each
   token. Per token: client timestamp minus the server's write time
   (p50, p99, max), and the same over the run's first and last quarter -- "the client never lags" means
   the added latency does not grow during the run and stays under one step (each step's tokens are read
   before the next step's are written).
3. **CPU against the engine's on the smoke run** (needs vLLM): one smoke configuration (tiny Qwen3, chat,
   ``max_num_seqs`` 8) through the vLLM backend; CPU seconds of this process during the load against those
   of the server's processes (API server, engine core, worker) over the same load.

Figures are CPU-time ratios (robust to other load on the host); wall rates are shown with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "loadgen_client"
GOAL_CPU_US_PER_TOKEN = 10.0
GOAL_TOKENS_PER_S_ONE_CORE = 100_000
PEAK_TOKENS_PER_S = 22_400  # the reference's fastest configuration (gpt-oss 120B, 2 x B200, batch 2,048)
PEAK_BATCH = 2048
BEFORE_COMMIT = "4abd6a5"  # the load generator before this benchmark's change
TIMER_COMMIT = "24075fc"  # the last one whose streams had aiohttp's per-read timeout (a timer re-armed per read)
COMMITS = {"before": BEFORE_COMMIT, "timer": TIMER_COMMIT}
SERVER = _common.ROOT / "tests" / "fast_fake_vllm.py"


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def start_server(events_per_write: int, step_s: float = 0.0, record: bool = False, cpu: int | None = None):
    argv = [sys.executable, str(SERVER), "--events-per-write", str(events_per_write), "--step-s", str(step_s)]
    if record:
        argv.append("--record")
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def _load_module(which: str):
    """The load generator: this tree's (``now``) or an earlier commit's (``before``, ``timer``: COMMITS),
    loaded from git."""
    if which == "now":
        from harness.workloads import loadgen

        return loadgen
    import importlib.util

    name = f"loadgen_{which}"
    text = subprocess.run(
        ["git", "show", f"{COMMITS[which]}:harness/workloads/loadgen.py"],
        cwd=_common.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def client_case(args) -> dict:
    """One client run (in its own pinned process): CPU and wall per token."""
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    sys.path.insert(0, str(_common.ROOT))
    import aiohttp  # noqa: F401 -- imported before the timed part, as in a run

    from harness.measuring.steady import SteadyTracker

    loadgen = _load_module(args.which)
    n, tokens = args.streams, args.tokens
    spec = loadgen.LoadSpec(args.url, "model", [[i, 11, 12] for i in range(n)], [tokens] * n)
    tracker = SteadyTracker(n, n)
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    records, aborted = loadgen.run_load(spec, tracker)
    r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    got = sum(len(r.token_times_s) for r in records)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    out = {
        "which": args.which,
        "streams": n,
        "tokens_per_stream": tokens,
        "tokens": got,
        "failed": sum(not r.success for r in records),
        "aborted": aborted,
        "cpu_s": cpu,
        "wall_s": w1 - w0,
        "cpu_us_per_token": 1e6 * cpu / got if got else None,
        "tokens_per_cpu_s": got / cpu if cpu else None,
        "tokens_per_wall_s": got / (w1 - w0),
    }
    if args.latency:
        import urllib.request

        with urllib.request.urlopen(f"{args.url}/writes", timeout=60) as resp:  # noqa: S310  # the local server
            writes = json.loads(resp.read())
        # the part of the run where every stream is open (the peak rate holds only there): from the last
        # stream's first write to the first stream's last write; split into quarters to see any drift
        sent = {r.request_id: writes.get(str(r.request_id), []) for r in records}
        t_start = max(v[0] for v in sent.values() if v)
        t_end = min(v[-1] for v in sent.values() if v)
        quarter = (t_end - t_start) / 4
        lat, first, last, in_window = [], [], [], 0
        for r in records:
            for got_t, sent_t in zip(r.token_times_s, sent[r.request_id], strict=False):
                if not t_start <= sent_t <= t_end:
                    continue
                d = (got_t - sent_t) * 1000.0
                lat.append(d)
                in_window += 1
                if sent_t < t_start + quarter:
                    first.append(d)
                elif sent_t > t_end - quarter:
                    last.append(d)
        out["latency_ms"] = _pcts(lat)
        out["latency_ms_first_quarter"] = _pcts(first)
        out["latency_ms_last_quarter"] = _pcts(last)
        out["all_streams_open_s"] = t_end - t_start
        out["stream_rate_tokens_per_s"] = in_window / (t_end - t_start) if t_end > t_start else None
    print(json.dumps(out))
    return out


def _pcts(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    values = sorted(values)
    pick = lambda p: values[min(len(values) - 1, int(p * (len(values) - 1) + 0.5))]  # noqa: E731
    return {
        "n": len(values),
        "p50": pick(0.5),
        "p90": pick(0.9),
        "p99": pick(0.99),
        "max": values[-1],
        "min": values[0],
    }


def run_client(url: str, which: str, streams: int, tokens: int, cpu: int | None, latency: bool = False) -> dict:
    argv = [
        sys.executable,
        __file__,
        "--client",
        "--url",
        url,
        "--which",
        which,
        "--streams",
        str(streams),
        "--tokens",
        str(tokens),
    ]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    if latency:
        argv.append("--latency")
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=_common.ROOT,
        timeout=1200,
        env=dict(os.environ, PYTHONPATH=str(_common.ROOT)),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"client failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def throughput(quick: bool) -> list[dict]:
    cpus = _cpus()
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)
    lengths = {256: 256, 4096: 64} if quick else {256: 1024, 4096: 256}  # output tokens per stream
    cases = []
    for per_write, streams, which, tokens in (
        [(8, 4096, w, 1) for w in ("now", "before")]  # request set-up alone
        + [(p, s, w, lengths[s]) for p in (1, 8) for s in (256, 4096) for w in ("now", "before")]
    ):
        server, url = start_server(per_write, cpu=server_cpu)
        try:
            row = run_client(url, which, streams, tokens, client_cpu)
        finally:
            server.kill()
            server.wait()
        row["events_per_write"] = per_write
        setup = next((c for c in cases if c["which"] == which and c["tokens_per_stream"] == 1), None)
        if setup and tokens > 1:  # CPU per streamed token once each request's set-up is taken out
            row["cpu_us_per_streamed_token"] = (
                1e6 * (row["cpu_s"] - setup["cpu_s"] * streams / setup["streams"]) / (row["tokens"] - streams)
            )
        if tokens == 1:
            row["cpu_us_per_request_setup"] = row["cpu_us_per_token"]
            print(
                f"  {which:6s} {streams:5d} requests of one token: {row['cpu_us_per_token']:.0f} us CPU per request",
                flush=True,
            )
            cases.append(row)
            continue
        print(
            f"  {which:6s} {streams:5d} streams x {tokens} tokens, {per_write} event(s)/write: "
            f"{row['cpu_us_per_token']:.2f} us CPU/token ({row.get('cpu_us_per_streamed_token', float('nan')):.2f} "
            f"without request set-up), {row['tokens_per_cpu_s']:,.0f} tokens/CPU-s, "
            f"{row['tokens_per_wall_s']:,.0f} tokens/wall-s",
            flush=True,
        )
        cases.append(row)
    return cases


def _worst(rows: list[dict], which: str) -> dict | None:
    """The peak-rate run of load generator ``which`` with the largest p99 (None: no such run)."""
    return max(
        (r for r in rows if r["which"] == which), key=lambda r: r["latency_ms"].get("p99", float("inf")), default=None
    )


def peak_latency(quick: bool) -> tuple[dict, list[dict]]:
    """The peak-rate runs, alternating this tree's load generator with TIMER_COMMIT's (1 each with
    ``quick``, else 2): ``(the run of this tree with the larger p99, every run)``."""
    cpus = _cpus()
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)
    step_s = PEAK_BATCH / PEAK_TOKENS_PER_S
    tokens = 80 if quick else 240  # 240 steps of 91 ms: about 22 s, most of it with every stream open
    rows = []
    for _ in range(1 if quick else 2):
        for which in ("timer", "now"):
            server, url = start_server(1, step_s=step_s, record=True, cpu=server_cpu)
            try:
                row = run_client(url, which, PEAK_BATCH, tokens, client_cpu, latency=True)
            finally:
                server.kill()
                server.wait()
            row["step_s"] = step_s
            lat = row["latency_ms"]
            print(
                f"  {which:6s} added latency at {row['stream_rate_tokens_per_s']:,.0f} tokens/s ({PEAK_BATCH} "
                f"streams): p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms; "
                f"client {row['cpu_us_per_token']:.2f} us CPU/token",
                flush=True,
            )
            rows.append(row)
    return _worst(rows, "now"), rows


def smoke_cpu() -> dict:
    """CPU of the load generator against the vLLM server's on one smoke configuration."""
    _common.ensure_reference_env()
    sys.path.insert(0, str(_common.ROOT))
    import psutil

    from harness.measuring.steady import SteadyTracker
    from harness.orchestration.study import load_study
    from harness.workloads import loadgen
    from harness.workloads.vllm_backend import VLLMBackend

    study = load_study(_common.ROOT / "configs" / "smoke.yaml")
    cfg = next(
        c for c in study.configurations if c.backend == "vllm" and c.task == "lm-arena-chat" and c.max_num_seqs == 8
    )
    backend = VLLMBackend()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-loadgen-smoke-"))
    backend.start(cfg, run_dir)
    try:
        root = psutil.Process(backend.proc.pid)
        procs = [root, *root.children(recursive=True)]

        def server_cpu() -> dict:
            out = {}
            for p in procs:
                try:
                    t = p.cpu_times()
                    out[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            return out

        spec = loadgen.LoadSpec(
            backend.base_url, backend.served_name, backend.prompts, list(backend.plan.output_tokens)
        )
        tracker = SteadyTracker(int(cfg.max_num_seqs), len(spec.prompts))
        s0, r0, w0 = server_cpu(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        records, aborted = loadgen.run_load(spec, tracker)
        s1, r1, w1 = server_cpu(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    finally:
        backend.stop()
    client = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    engine = sum(s1.get(pid, s0[pid]) - s0[pid] for pid in s0)
    tokens = sum(len(r.token_times_s) for r in records)
    out = {
        "config": cfg.label(),
        "requests": len(records),
        "failed": sum(not r.success for r in records),
        "aborted": aborted,
        "tokens": tokens,
        "wall_s": w1 - w0,
        "client_cpu_s": client,
        "server_cpu_s": engine,
        "server_processes": len(procs),
        "client_over_server_cpu": client / engine if engine else None,
        "client_cpu_us_per_token": 1e6 * client / tokens if tokens else None,
    }
    print(
        f"  smoke run {out['config']}: client {client:.3f} CPU-s, server {engine:.2f} CPU-s "
        f"({len(procs)} processes): ratio {out['client_over_server_cpu']:.4f}",
        flush=True,
    )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter streams and a shorter peak-rate run")
    ap.add_argument("--no-smoke", action="store_true", help="skip the vLLM smoke comparison")
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--which", default="now", help=argparse.SUPPRESS)
    ap.add_argument("--streams", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--tokens", type=int, default=100, help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--latency", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        client_case(args)
        return 0
    load_before = _common.loadavg()
    print("throughput against the fast fake server (client and server pinned to one CPU each):", flush=True)
    cases = throughput(args.quick)
    print("added latency per event at the reference's peak rate:", flush=True)
    peak, peak_runs = peak_latency(args.quick)
    smoke = None
    if not args.no_smoke:
        print("CPU against the engine on the smoke run:", flush=True)
        try:
            smoke = smoke_cpu()
        except Exception as exc:  # noqa: BLE001 -- no vLLM here: the other figures still stand
            smoke = {"error": f"{type(exc).__name__}: {exc}"[:300]}

    now = [c for c in cases if c["which"] == "now" and c["tokens_per_stream"] > 1]
    several = [c for c in now if c["events_per_write"] > 1]
    one = [c for c in now if c["events_per_write"] == 1]
    stream_cpu = lambda rows: max(c.get("cpu_us_per_streamed_token", c["cpu_us_per_token"]) for c in rows)  # noqa: E731
    worst_cpu = stream_cpu(several)
    worst_rate = 1e6 / worst_cpu  # tokens per second one core streams at that CPU cost
    ok = worst_cpu <= GOAL_CPU_US_PER_TOKEN and worst_rate >= GOAL_TOKENS_PER_S_ONE_CORE
    lat = peak["latency_ms"]
    first_q, last_q = peak["latency_ms_first_quarter"], peak["latency_ms_last_quarter"]
    no_lag = (
        lat.get("n", 0) > 0
        and last_q.get("p99", 0) <= 2 * max(first_q.get("p99", 0), 1.0)
        and lat["p99"] < 1000 * peak["step_s"]
    )
    ratios = {}
    for c in now:
        before = next(
            (
                b
                for b in cases
                if b["which"] == "before"
                and b["streams"] == c["streams"]
                and b["events_per_write"] == c["events_per_write"]
                and b["tokens_per_stream"] > 1
            ),
            None,
        )
        if before:
            ratios[f"{c['streams']}x{c['events_per_write']}"] = before["cpu_us_per_token"] / c["cpu_us_per_token"]
    setup = next((c for c in cases if c["which"] == "now" and c["tokens_per_stream"] == 1), None)
    figure = (
        f"{worst_cpu:.1f} us CPU per streamed token at 8 events/write (one core: {worst_rate / 1000:.0f}k "
        f"tokens/s), {stream_cpu(one):.1f} us at 1 event/write; whole runs with request set-up "
        f"({setup['cpu_us_per_token']:.0f} us/request): {max(c['cpu_us_per_token'] for c in now):.1f} us/token "
        f"at worst; added latency at {peak.get('stream_rate_tokens_per_s') or 0:,.0f} tokens/s "
        f"({PEAK_BATCH} streams): p50 {lat.get('p50', float('nan')):.1f} ms, p99 {lat.get('p99', float('nan')):.1f} ms"
    )
    slow = _worst(peak_runs, "timer")
    if slow:
        figure += (
            f" (with a timer re-armed per read, as before: p50 {slow['latency_ms']['p50']:.1f} ms, p99 "
            f"{slow['latency_ms']['p99']:.1f} ms; CPU/token {peak['cpu_us_per_token'] / slow['cpu_us_per_token']:.2f}x)"
        )
    if ratios:
        figure += f"; {min(ratios.values()):.1f}-{max(ratios.values()):.1f}x less CPU/token than before"
    if smoke and smoke.get("client_over_server_cpu") is not None:
        figure += f"; smoke run: client CPU = {100 * smoke['client_over_server_cpu']:.2f}% of the server's"
    payload = {
        "benchmark": NAME,
        "figure": figure,
        "goal": (
            f"<= {GOAL_CPU_US_PER_TOKEN:g} us CPU per token and >= {GOAL_TOKENS_PER_S_ONE_CORE:,} tokens/s on "
            f"one core (256-4,096 streams, several events per write); added latency at "
            f"{PEAK_TOKENS_PER_S:,} tokens/s under one step and not growing"
        ),
        "status": _common.status(ok and no_lag),
        "goal_cpu_and_rate_met": ok,
        "client_never_lags": no_lag,
        "command": ".venv/bin/python benchmarks/loadgen_client.py" + (" --quick" if args.quick else ""),
        "host": _common.host_facts(load_before),
        "throughput_cases": cases,
        "cpu_ratio_before_over_now": ratios,
        "peak_rate": peak,
        "peak_rate_runs": peak_runs,
        "smoke_run": smoke,
        "timestamp_rule": (
            "one clock reading per read from the socket; every token whose event ends in that read "
            "gets it (tokens read together share a timestamp)"
        ),
    }
    path = _common.write_result(NAME, payload)
    print(f"{payload['status']}: {figure}\n-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
