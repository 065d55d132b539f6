"""Benchmark 6: where a vLLM CPU server start goes, and what the harness cut from it.

    .venv/bin/python benchmarks/server_start.py [--starts N]

Starts the smoke study's server (tiny Qwen3, chat, ``max_num_seqs`` 8; configs/smoke.yaml) through the vLLM
backend, exactly as ``make measure`` does, in four ways, alternating, N times each:

- **before**: an empty model-class inspection cache (vLLM then inspects the model class in a child
  interpreter) and the CPU build's own layout, a worker process of its own (``separate_worker: true``):
  every start was this before the harness carried the inspection results and moved the worker;
- **cache**: the inspection results of an earlier server carried over, worker process still separate;
- **layout**: the cache and the worker inside the engine-core process (the harness's default for one rank
  on the CPU build, as vLLM runs one rank on a GPU; ``harness/workloads/vllm_backend.py`` ``engine_layout``);
- **now**: all that, started through ``harness/workloads/vllm_launch.py``, which keeps the API server's and
  the engine core's imports out of the garbage collector's way (the kinds before start
  ``python -m vllm.entrypoints.openai.api_server``).

While a server starts, its process tree is sampled every 0.1 s: each process (API server, the inspection
child, engine core, worker, ...) with when it appeared, its CPU seconds (user + system) and peak memory.

What remains is two Python interpreters importing torch and vLLM (API server, engine core): the CPU build
spawns the engine core (``vllm/platforms/cpu.py`` forces the spawn start method), so the second import
cannot be removed by a setting.

Figures: processes per start, CPU seconds per start (the sum over the processes; robust to other load on
the host, unlike the wall time, which is shown with the load average), and the now / before and cache /
before ratios measured in this run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "server_start"


def _role(cmdline: str) -> str:
    if "vllm.entrypoints.openai.api_server" in cmdline:
        return "api-server"
    if "vllm.model_executor.models.registry" in cmdline:
        return "model-inspection child"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "spawn_main" in cmdline:
        return "spawned"
    return cmdline.split()[0].rsplit("/", 1)[-1] if cmdline else "?"


KINDS = ("before", "cache", "layout", "now")


def one_start(kind: str) -> dict:
    import psutil

    from harness.orchestration.study import load_study
    from harness.workloads import vllm_backend, vllm_server

    study = load_study(_common.ROOT / "configs" / "smoke.yaml")
    cfg = next(
        c for c in study.configurations if c.backend == "vllm" and c.task == "lm-arena-chat" and c.max_num_seqs == 8
    )
    if kind in ("before", "cache"):
        cfg = dataclasses.replace(cfg, options={**cfg.options, "separate_worker": True})
    original, command = vllm_server.modelinfo_cache, vllm_backend.server_command
    if kind != "now":
        vllm_backend.server_command = lambda python: [python, "-m", vllm_backend.SERVER_MODULE]
    if kind == "before":
        empty = Path(tempfile.mkdtemp(prefix="bench-modelinfos-"))
        vllm_server.modelinfo_cache = lambda: empty
    backend = vllm_backend.VLLMBackend()
    seen: dict[int, dict] = {}
    stop = threading.Event()
    t0 = time.time()

    def watch():
        while not stop.is_set():
            proc = backend.proc
            if proc is not None:
                try:
                    root = psutil.Process(proc.pid)
                    members = [root, *root.children(recursive=True)]
                except psutil.Error:
                    members = []
                for p in members:
                    try:
                        entry = seen.setdefault(
                            p.pid, {"appeared_s": round(time.time() - t0, 2), "role": _role(" ".join(p.cmdline()))}
                        )
                        times = p.cpu_times()
                        entry["cpu_s"] = round(times.user + times.system, 2)  # children are sampled themselves
                        entry["peak_rss_mib"] = max(entry.get("peak_rss_mib", 0), p.memory_info().rss >> 20)
                    except psutil.Error:
                        pass
            stop.wait(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    load = _common.loadavg()
    try:
        backend.start(cfg, Path(tempfile.mkdtemp(prefix="bench-server-start-")))
        ready_s = time.time() - t0
    finally:
        stop.set()
        thread.join()
        backend.stop()
        vllm_server.modelinfo_cache, vllm_backend.server_command = original, command
    spawned = sorted((v for v in seen.values() if v["role"] == "spawned"), key=lambda v: v["appeared_s"])
    for name, entry in zip(("engine core", "worker"), spawned, strict=False):
        entry["role"] = name
    procs = sorted(seen.values(), key=lambda v: v["appeared_s"])
    heavy = [p for p in procs if p["role"] not in ("resource tracker",) and p.get("cpu_s", 0) > 0.5]
    return {
        "kind": kind,
        "ready_s": round(ready_s, 2),
        "loadavg_1min_at_start": load[:1],
        "modelinfo_cache_entries": backend.info.get("modelinfo_cache_entries"),
        "engine_layout": backend.info.get("engine_layout"),
        "engine_init_s": backend.info.get("engine_init_s"),
        "processes": procs,
        "heavy_processes": len(heavy),
        "cpu_s": round(sum(p.get("cpu_s", 0) for p in procs), 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=1, help="starts of each kind, alternating cold and warm")
    args = ap.parse_args(argv)
    _common.ensure_reference_env()
    sys.path.insert(0, str(_common.ROOT))
    load_before = _common.loadavg()
    from harness.workloads import vllm_server

    if not any(vllm_server.modelinfo_cache().glob("*.json")):
        one_start("now")  # so that the other starts find the inspection results of an earlier server
    rows = []
    for _ in range(args.starts):
        for kind in KINDS:
            row = one_start(kind)
            roles = ", ".join(f"{p['role']} {p.get('cpu_s', 0):.1f} s" for p in row["processes"] if p.get("cpu_s"))
            print(
                f"  {kind}: ready after {row['ready_s']:.1f} s (load {row['loadavg_1min_at_start']}), "
                f"{row['cpu_s']:.1f} CPU-s: {roles}",
                flush=True,
            )
            rows.append(row)
    by = {k: [r for r in rows if r["kind"] == k] for k in KINDS}
    cpu = {k: _common.spread([r["cpu_s"] for r in v]) for k, v in by.items()}
    heavy = {k: v[0]["heavy_processes"] for k, v in by.items()}
    ratios = {
        f"{k}_over_before_cpu": _common.spread(
            [a["cpu_s"] / b["cpu_s"] for a, b in zip(by[k], by["before"], strict=False)]
        )
        for k in ("cache", "layout", "now")
    }
    wall = {
        f"{k}_over_before_wall": _common.spread(
            [a["ready_s"] / b["ready_s"] for a, b in zip(by[k], by["before"], strict=False)]
        )
        for k in ("cache", "layout", "now")
    }
    now = ratios["now_over_before_cpu"]["median"]
    figure = (
        f"a start now takes {now:.2f}x the CPU of one before (median {cpu['now']['median']:.0f} vs "
        f"{cpu['before']['median']:.0f} CPU-s; {heavy['now']} vs {heavy['before']} heavy processes); the "
        f"inspection cache alone: {ratios['cache_over_before_cpu']['median']:.2f}x, with the worker in the "
        f"engine core: {ratios['layout_over_before_cpu']['median']:.2f}x; wall "
        f"{wall['now_over_before_wall']['median']:.2f}x on this host"
    )
    payload = {
        "benchmark": NAME,
        "figure": figure,
        "goal": "fewer CPU-seconds per vLLM server start without changing what is measured",
        "status": _common.status(now < 1.0),
        "command": ".venv/bin/python benchmarks/server_start.py"
        + (f" --starts {args.starts}" if args.starts != 1 else ""),
        "host": _common.host_facts(load_before),
        "cpu_s_per_start": cpu,
        **ratios,
        **wall,
        "starts": rows,
    }
    path = _common.write_result(NAME, payload)
    print(f"{payload['status']}: {figure}\n-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
