"""Benchmark 6: where a vLLM CPU server start goes, and what carrying vLLM's model-class inspection between
servers saves.

    .venv/bin/python benchmarks/server_start.py [--starts N]

Starts the smoke study's server (tiny Qwen3, chat, ``max_num_seqs`` 8; configs/smoke.yaml) through the vLLM
backend, exactly as ``make measure`` does, alternately **cold** (an empty model-class inspection cache, as
every start was before: vLLM then inspects the model class in a child interpreter) and **warm** (the
inspection results of an earlier server carried over, as every start after a class's first now is). While
a server starts, its process tree is sampled every 0.1 s: each process (API server, the inspection child,
engine core, worker, ...) with when it appeared, its CPU seconds (user + system) and peak memory.

Figures: processes per start, CPU seconds per start (sum over the processes; robust to other load on the
host, unlike the wall time, which is shown with the load average), and the warm / cold ratio measured in
this run. The start-up work that remains is three Python interpreters importing torch and vLLM (API
server, engine core, worker): the CPU build forces the multiprocessing executor and the spawn start
method (vllm/platforms/cpu.py), so neither the worker process nor the re-imports can be removed by a
setting.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

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


def one_start(cold: bool) -> dict:
    import psutil

    from harness.config import load_study
    from harness.workloads import vllm_backend

    study = load_study(_common.ROOT / "configs" / "smoke.yaml")
    cfg = next(c for c in study.configurations if c.backend == "vllm" and c.task == "lm-arena-chat"
               and c.max_num_seqs == 8)
    original = vllm_backend.modelinfo_cache
    if cold:
        empty = Path(tempfile.mkdtemp(prefix="bench-modelinfos-"))
        vllm_backend.modelinfo_cache = lambda: empty
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
                    members = [root] + root.children(recursive=True)
                except psutil.Error:
                    members = []
                for p in members:
                    try:
                        entry = seen.setdefault(p.pid, {"appeared_s": round(time.time() - t0, 2),
                                                        "role": _role(" ".join(p.cmdline()))})
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
        vllm_backend.modelinfo_cache = original
    spawned = sorted((v for v in seen.values() if v["role"] == "spawned"), key=lambda v: v["appeared_s"])
    for name, entry in zip(("engine core", "worker"), spawned):
        entry["role"] = name
    procs = sorted(seen.values(), key=lambda v: v["appeared_s"])
    python = [p for p in procs if p["role"] not in ("resource tracker",) and p.get("cpu_s", 0) > 0.5]
    return {"cold": cold, "ready_s": round(ready_s, 2), "loadavg_1min_at_start": load[:1],
            "modelinfo_cache_entries": backend.info.get("modelinfo_cache_entries"),
            "engine_init_s": backend.info.get("engine_init_s"), "processes": procs,
            "heavy_processes": len(python), "cpu_s": round(sum(p.get("cpu_s", 0) for p in procs), 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=1, help="starts of each kind, alternating cold and warm")
    args = ap.parse_args(argv)
    _common.ensure_reference_env()
    sys.path.insert(0, str(_common.ROOT))
    load_before = _common.loadavg()
    from harness.workloads import vllm_backend

    if not any(vllm_backend.modelinfo_cache().glob("*.json")):
        one_start(cold=False)  # so that the warm starts find the inspection results of an earlier server
    rows = []
    for _ in range(args.starts):
        for cold in (True, False):
            row = one_start(cold)
            roles = ", ".join(f"{p['role']} {p.get('cpu_s', 0):.1f} s" for p in row["processes"] if p.get("cpu_s"))
            print(f"  {'cold' if cold else 'warm'}: ready after {row['ready_s']:.1f} s (load {row['loadavg_1min_at_start']}), "
                  f"{row['cpu_s']:.1f} CPU-s: {roles}", flush=True)
            rows.append(row)
    cold = [r["cpu_s"] for r in rows if r["cold"]]
    warm = [r["cpu_s"] for r in rows if not r["cold"]]
    ratio = _common.spread([w / c for w, c in zip(warm, cold)])
    wall = _common.spread([w["ready_s"] / c["ready_s"] for w, c in
                           zip([r for r in rows if not r["cold"]], [r for r in rows if r["cold"]])])
    figure = (f"a warm start takes {ratio['median']:.2f}x the CPU of a cold one ({_common.spread(warm)['median']:.0f} "
              f"vs {_common.spread(cold)['median']:.0f} CPU-s; {rows[1]['heavy_processes']} vs "
              f"{rows[0]['heavy_processes']} heavy processes); wall {wall['median']:.2f}x on this shared host")
    payload = {"benchmark": NAME, "figure": figure,
               "goal": "fewer CPU-seconds per vLLM server start without changing what is measured",
               "status": _common.status(ratio["median"] < 1.0),
               "command": ".venv/bin/python benchmarks/server_start.py" + (f" --starts {args.starts}" if args.starts != 1 else ""),
               "host": _common.host_facts(load_before), "warm_over_cold_cpu": ratio, "warm_over_cold_wall": wall,
               "starts": rows}
    path = _common.write_result(NAME, payload)
    print(f"{payload['status']}: {figure}\n-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
