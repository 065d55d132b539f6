"""Benchmark 1: the harness's monitoring overhead on a CPU workload.

    .venv/bin/python benchmarks/overhead.py [--pairs N] [--seconds S]

The same CPU-bound workload (chunks of chained sha256 rounds in the main Python thread, each
chunk, about 1 ms here, standing for one decode step of a batch of 8; the trivial backend's
default step is 2 ms, a GPU decode step 5 ms or more) runs with and without the harness's
monitoring, in interleaved pairs (ABBA order) within one process:

* Zeus windows: a ``ZeusMeter`` over one fake GPU (tests/conftest.py's FakeGPU/FakeNVML: the real
  ZeusMonitor reads a fake NVML energy counter) with the ``run`` and ``steady`` windows, and the
  adaptive-stopping checkpoints (a Zeus window reopened every second, ``tokens``/``poll`` called
  every step), as every LLM run now has;
* the telemetry sampler (:class:`harness.measuring.telemetry.Telemetry`) at 10 Hz against that fake GPU;
* Prometheus scraping once a second of a vLLM-like ``/metrics`` page served by a tiny HTTP
  server in a separate process (as vLLM's server is).

Figures: wall time of the workload with monitoring / without (per pair; median and spread), the
CPU time of the sampler and scraper threads per second of wall time (share of one core, from the
threads' own CPU clocks), and the fixed per-run cost of starting and stopping the monitoring.
A pure-Python workload shares the GIL with the sampler threads: this is the worst case for the
harness process (a vLLM server runs in its own process). NVML calls here go to a fake device, so
a real driver's per-call cost is not included.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "overhead"
GOAL_WALL_RATIO = 1.01
GOAL_SAMPLER_CORE = 0.02
BATCH = 8
ROUNDS = 3000  # sha256 rounds per chunk: ~1 ms here, one decode step of BATCH tokens (GPU steps take >= 5 ms)

SERVER = r"""
import http.server, sys
body = open(sys.argv[1], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/metrics":
            self.send_response(404); self.end_headers(); return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


def vllm_like_metrics(model: str = "llama-3.1-8b") -> str:
    """A /metrics page shaped like vLLM's (gauges, counters, latency and length histograms, process metrics)."""
    labels = f'engine="0",model_name="{model}"'
    lines = []

    def family(name, kind, help_text, samples):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(samples)

    for name, value in (
        ("vllm:num_requests_running", 8),
        ("vllm:num_requests_waiting", 24),
        ("vllm:kv_cache_usage_perc", 0.4213),
    ):
        family(name, "gauge", "engine gauge", [f"{name}{{{labels}}} {value}"])
    for name in (
        "vllm:num_preemptions",
        "vllm:prompt_tokens",
        "vllm:generation_tokens",
        "vllm:prefix_cache_queries",
        "vllm:prefix_cache_hits",
    ):
        family(
            f"{name}_total",
            "counter",
            "engine counter",
            [f"{name}_total{{{labels}}} 123456.0", f"{name}_created{{{labels}}} 1.7e9"],
        )
    family(
        "vllm:request_success_total",
        "counter",
        "finished requests",
        [f'vllm:request_success_total{{{labels},finished_reason="{r}"}} 100.0' for r in ("stop", "length", "abort")],
    )
    latency = [
        0.001,
        0.005,
        0.01,
        0.02,
        0.04,
        0.06,
        0.08,
        0.1,
        0.25,
        0.5,
        0.75,
        1.0,
        2.5,
        5.0,
        7.5,
        10.0,
        20.0,
        40.0,
        80.0,
        160.0,
        640.0,
        2560.0,
    ]
    tokens = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]
    histograms = {
        "vllm:time_to_first_token_seconds": latency,
        "vllm:inter_token_latency_seconds": latency,
        "vllm:time_per_output_token_seconds": latency,
        "vllm:e2e_request_latency_seconds": latency,
        "vllm:request_queue_time_seconds": latency,
        "vllm:request_inference_time_seconds": latency,
        "vllm:request_prefill_time_seconds": latency,
        "vllm:request_decode_time_seconds": latency,
        "vllm:request_prompt_tokens": tokens,
        "vllm:request_generation_tokens": tokens,
        "vllm:iteration_tokens_total": tokens,
        "vllm:request_params_max_tokens": tokens,
        "vllm:request_max_num_generation_tokens": tokens,
        "vllm:request_params_n": [1, 2, 5, 10, 20],
    }
    for name, buckets in histograms.items():
        samples = [f'{name}_bucket{{{labels},le="{float(b)}"}} {10 * i}' for i, b in enumerate(buckets)]
        samples += [
            f'{name}_bucket{{{labels},le="+Inf"}} {10 * len(buckets)}',
            f"{name}_count{{{labels}}} {10 * len(buckets)}",
            f"{name}_sum{{{labels}}} 1234.5",
            f"{name}_created{{{labels}}} 1.7e9",
        ]
        family(name, "histogram", "engine histogram", samples)
    for handler in ("/v1/completions", "/metrics", "/health", "/v1/models"):
        for method in ("GET", "POST"):
            for status in ("2xx", "4xx"):
                lines.append(f'http_requests_total{{handler="{handler}",method="{method}",status="{status}"}} 42.0')
    for gen in range(3):
        lines.append(f'python_gc_objects_collected_total{{generation="{gen}"}} 1234.0')
    for name in (
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
    ):
        lines.append(f"{name} 12345.0")
    family(
        "vllm:cache_config_info",
        "gauge",
        "cache config",
        [f'vllm:cache_config_info{{block_size="16",cache_dtype="auto",enable_prefix_caching="True",{labels}}} 1.0'],
    )
    return "\n".join(lines) + "\n"


def work(chunks: int, hook=None) -> bytes:
    digest = hashlib.sha256(b"joules")
    for _ in range(chunks):
        for _ in range(ROUNDS):
            digest.update(digest.digest())
        if hook is not None:
            hook()
    return digest.digest()


def thread_cpu_s(thread) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


class Monitoring:
    """Everything the harness runs alongside an LLM workload, started and stopped like the runner does."""

    def __init__(self, url: str):
        self.url = url

    def start(self):
        from harness.measuring.adaptive import AdaptiveStopper, StopRule
        from harness.measuring.energy import ZeusMeter
        from harness.measuring.steady import SteadyTracker
        from harness.measuring.telemetry import Telemetry

        self.meter = ZeusMeter([0])
        self.telemetry = Telemetry(10.0, [0], self.url)
        self.telemetry.start()
        self.tracker = SteadyTracker.for_meter(self.meter, BATCH, 10**9)
        self.stopper = AdaptiveStopper(StopRule(method="fixed"), self.meter, self.tracker)  # 1 s checkpoints
        self.meter.begin("run")
        for _ in range(BATCH):
            self.stopper.tokens(1)
            self.tracker.first_token(time.time())
        stopper = self.stopper

        def hook():
            stopper.tokens(BATCH)
            stopper.poll()

        self.hook = hook
        self.threads = {t.name: t for t in self.telemetry._threads}
        return hook

    def cpu(self) -> dict[str, float]:
        return {name: thread_cpu_s(t) for name, t in self.threads.items()}

    def stop(self):
        self.tracker.stop_early(time.time())
        self.meter.end("run")
        frame = self.telemetry.stop()
        self.meter.close()
        return frame


def one_pair(chunks: int, url: str, order: str) -> dict:
    out = {}
    for which in order:
        if which == "B":  # baseline: the workload alone
            c1, t1 = time.thread_time(), time.perf_counter()
            work(chunks)
            out["baseline_s"] = time.perf_counter() - t1
            out["baseline_cpu_s"] = time.thread_time() - c1
        else:  # monitored
            mon = Monitoring(url)
            t0 = time.perf_counter()
            hook = mon.start()
            cpu0, wall0 = mon.cpu(), time.time()
            c1, t1 = time.thread_time(), time.perf_counter()
            work(chunks, hook)
            t2 = time.perf_counter()
            out["monitored_cpu_s"] = time.thread_time() - c1
            cpu1, wall1 = mon.cpu(), time.time()
            frame = mon.stop()
            t3 = time.perf_counter()
            inside = frame[(frame["time_s"] >= wall0) & (frame["time_s"] <= wall1)]
            out.update(
                monitored_s=t2 - t1,
                start_stop_ms=1000 * ((t1 - t0) + (t3 - t2)),
                sampler_core_fraction=(cpu1["nvml-sampler"] - cpu0["nvml-sampler"]) / (t2 - t1),
                scraper_core_fraction=(cpu1["vllm-scraper"] - cpu0["vllm-scraper"]) / (t2 - t1),
                nvml_samples_per_s=int((inside["source"] == "nvml").sum()) / (wall1 - wall0),
                scrapes_per_s=int((inside["source"] == "vllm").sum()) / (wall1 - wall0),
                telemetry_errors=len(mon.telemetry.errors),
                checkpoints=len(mon.stopper.segments),
            )
    out["wall_ratio"] = out["monitored_s"] / out["baseline_s"]
    out["main_thread_cpu_ratio"] = out["monitored_cpu_s"] / out["baseline_cpu_s"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30, help="interleaved pairs (default 30)")
    parser.add_argument("--seconds", type=float, default=1.5, help="workload length per repetition (default 1.5 s)")
    args = parser.parse_args(argv)
    load = _common.loadavg()
    watch = _common.Stopwatch()
    FakeGPU = _common.fake_gpu_class()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        page = Path(tmp) / "metrics.txt"
        page.write_text(vllm_like_metrics())
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(page)], stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline())
            url = f"http://127.0.0.1:{port}/metrics"
            with _common.fake_nvml([FakeGPU([(time.time() - 1, 300.0)])]):
                work(20)
                t = time.perf_counter()
                work(100)
                chunks = max(50, int(100 * args.seconds / (time.perf_counter() - t)))
                one_pair(chunks // 4, url, "MB")  # warm-up: imports, first connections (not counted)
                pairs = [one_pair(chunks, url, "MB" if i % 2 else "BM") for i in range(args.pairs)]
        finally:
            server.terminate()
            server.wait(timeout=10)
    ratio = _common.spread([p["wall_ratio"] for p in pairs])
    # robust to other processes stealing the CPU (they only ever add time): the fastest repetitions
    fastest = min(p["monitored_s"] for p in pairs) / min(p["baseline_s"] for p in pairs)
    sampler = _common.spread([p["sampler_core_fraction"] for p in pairs])
    scraper = _common.spread([p["scraper_core_fraction"] for p in pairs])
    both = _common.spread([p["sampler_core_fraction"] + p["scraper_core_fraction"] for p in pairs])
    ok = fastest <= GOAL_WALL_RATIO and both["median"] <= GOAL_SAMPLER_CORE
    figure = (
        f"{100 * (fastest - 1):+.2f}% wall time (fastest of {len(pairs)} each; median pair ratio "
        f"{100 * (ratio['median'] - 1):+.2f}%, IQR {100 * (ratio['q25'] - 1):+.2f}..{100 * (ratio['q75'] - 1):+.2f}%), "
        f"sampler+scraper {100 * both['median']:.2f}% of one core"
    )
    payload = {
        "benchmark": NAME,
        "figure": figure,
        "status": _common.status(ok),
        "goal": f"<= {100 * (GOAL_WALL_RATIO - 1):g}% more wall time and <= {100 * GOAL_SAMPLER_CORE:g}% of one core "
        "for the sampler (judged on sampler + scraper threads together)",
        "judged_on": "wall: the fastest monitored repetition / the fastest baseline repetition (other processes on "
        "this shared host only ever add time; the per-pair median and spread are reported too); "
        "CPU: median over repetitions of the sampler and scraper threads' CPU time per wall second",
        "wall_ratio_fastest": fastest,
        "command": ".venv/bin/python benchmarks/overhead.py",
        "workload": {
            "kind": "pure-Python sha256 chain in the main thread (GIL held: worst case)",
            "chunks": chunks,
            "sha256_rounds_per_chunk": ROUNDS,
            "tokens_per_chunk": BATCH,
            "chunk_ms": 1000 * statistics.median(p["baseline_s"] for p in pairs) / chunks,
            "seconds_per_repetition": args.seconds,
        },
        "monitoring": {
            "zeus": "ZeusMeter over a fake NVML GPU: run + steady windows, 1 s adaptive-stopping checkpoints",
            "sampler_hz": 10,
            "scrape_period_s": 1.0,
            "metrics_page_bytes": len(vllm_like_metrics().encode()),
            "metrics_server": "separate process (http.server), vLLM-like text",
        },
        "wall_ratio": ratio,
        "main_thread_cpu_ratio": _common.spread([p["main_thread_cpu_ratio"] for p in pairs]),
        "sampler_core_fraction": sampler,
        "scraper_core_fraction": scraper,
        "sampler_plus_scraper_core_fraction": both,
        "start_stop_ms": _common.spread([p["start_stop_ms"] for p in pairs]),
        "nvml_samples_per_s": _common.spread([p["nvml_samples_per_s"] for p in pairs]),
        "scrapes_per_s": _common.spread([p["scrapes_per_s"] for p in pairs]),
        "telemetry_errors": sum(p["telemetry_errors"] for p in pairs),
        "pairs": pairs,
        "benchmark_wall_s": watch(),
        "host": _common.host_facts(load),
    }
    path = _common.write_result(NAME, payload)
    print(f"{NAME}: {figure} -> {payload['status']}  ({path.relative_to(_common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
