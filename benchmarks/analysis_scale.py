"""Benchmark 4: analysis at scale -- the reference data, a million telemetry samples, every finding.

    .venv/bin/python benchmarks/analysis_scale.py [--samples N] [--repeats R]

Setup (not timed): a results store in a temporary folder with synthetic runs written by
:func:`harness.measuring.store.write_run` (run.json with LLM metrics in the store's schema, plus a
``timeline.parquet`` in the telemetry schema :data:`harness.measuring.telemetry.COLUMNS`: 4 GPUs sampled at
10 Hz, a host row per tick, vLLM gauges once a second), ``N`` timeline rows in all (default one
million). The telemetry values are synthetic; nothing here is a measurement.

Timed, in a fresh Python process each repeat (the median is reported):

1. the table: the published reference rows (checksums verified) plus the store's runs
   (:func:`harness.analysis.findings.load_table` with ``results_dir``);
2. every run's ``timeline.parquet`` read and summarised per run and GPU (mean and max power,
   energy from the NVML counter, utilisation, temperature, KV-cache use, telemetry coverage);
3. every finding (:func:`harness.analysis.findings.compute_all`).

``total_s`` is the process's wall time from interpreter start to the last finding (imports
included); ``work_s`` leaves out the interpreter start and the imports. The goal is judged on
``total_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "analysis_scale"
GOAL_S = 3.0
GPUS = 4
HZ = 10.0

TIMED = r"""
import json, sys, time
t_start = time.perf_counter()
import pandas as pd
from harness.analysis import tables as analysis, findings
from harness.measuring import telemetry
t_imports = time.perf_counter()
results = sys.argv[1]
table = findings.load_table("reference", results_dir=results)
t_table = time.perf_counter()
own = table[table["is_reference"].ne(True)].reset_index(drop=True)
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
parts = []
for i, run_dir in enumerate(own["run_dir"]):  # Arrow reads and joins the files; one conversion to pandas
    part = pq.read_table(f"{run_dir}/timeline.parquet")
    parts.append(part.append_column("run", pa.array(np.full(part.num_rows, i, dtype=np.int32))))
timeline = pa.concat_tables(parts).to_pandas()
nvml = timeline[timeline["source"] == "nvml"]
per_gpu = nvml.groupby(["run", "gpu_index"]).agg(
    avg_power_watts=("power_watts", "mean"), max_power_watts=("power_watts", "max"),
    energy_counter_first_joules=("energy_counter_joules", "first"),
    energy_counter_last_joules=("energy_counter_joules", "last"),
    avg_gpu_utilization_percent=("gpu_utilization_percent", "mean"),
    max_temperature_celsius=("temperature_celsius", "max"), samples=("time_s", "size"))
per_gpu["gpu_energy_joules"] = per_gpu["energy_counter_last_joules"] - per_gpu["energy_counter_first_joules"]
vllm = timeline[timeline["source"] == "vllm"].groupby("run")["kv_cache_usage_fraction"].mean()
coverage = {}
for run, frame in timeline.groupby("run", sort=False):
    coverage[run] = telemetry.coverage_fraction(frame, frame["time_s"].min(), frame["time_s"].max(), 10.0,
                                                    list(range(4)), "http://fake/metrics")
t_timeline = time.perf_counter()
llm = table[analysis.is_llm(table)]
found = findings.compute_all(llm, table[~analysis.is_llm(table)])
t_findings = time.perf_counter()
print(json.dumps({
    "imports_s": t_imports - t_start, "table_s": t_table - t_imports, "timelines_s": t_timeline - t_table,
    "findings_s": t_findings - t_timeline, "work_s": t_findings - t_imports,
    "table_rows": len(table), "reference_rows": int(table["is_reference"].eq(True).sum()), "own_runs": len(own),
    "timeline_rows": len(timeline), "gpu_summaries": len(per_gpu), "findings": [f.id for f in found],
    "min_coverage": min(coverage.values()), "kv_runs": int(vllm.notna().sum()),
}))
"""


def synthetic_timeline(rows: int, start_s: float, seed: int):
    """A timeline in the telemetry schema: per 0.1 s tick one host row and GPUS nvml rows; vLLM rows at 1 Hz."""
    import numpy as np
    import pandas as pd

    from harness.measuring.telemetry import COLUMNS

    rng = np.random.default_rng(seed)
    per_tick = GPUS + 1 + 0.1  # nvml rows, host row, a vLLM row every 10 ticks
    ticks = int(rows / per_tick) + 20  # a little more than needed: cut to exactly `rows` below
    t = start_s + np.arange(ticks) / HZ
    parts = []
    for gpu in range(GPUS):
        power = 450 + 60 * rng.standard_normal(ticks)
        parts.append(
            pd.DataFrame(
                {
                    "time_s": t,
                    "source": "nvml",
                    "gpu_index": gpu,
                    "power_watts": power,
                    "gpu_utilization_percent": np.clip(90 + 5 * rng.standard_normal(ticks), 0, 100),
                    "memory_used_mib": 60000.0,
                    "sm_clock_mhz": 1980.0,
                    "temperature_celsius": 55 + 5 * rng.random(ticks),
                    "throttle_reasons": 0.0,
                    "energy_counter_joules": 1e6 + np.cumsum(power / HZ),
                }
            )
        )
    parts.append(
        pd.DataFrame(
            {
                "time_s": t,
                "source": "host",
                "process_cpu_percent": 30 + 10 * rng.random(ticks),
                "process_rss_mib": 2048.0,
            }
        )
    )
    sec = t[::10]
    parts.append(
        pd.DataFrame(
            {
                "time_s": sec,
                "source": "vllm",
                "num_requests_running": 64.0,
                "num_requests_waiting": 100.0,
                "kv_cache_usage_fraction": 0.5 + 0.1 * rng.random(len(sec)),
            }
        )
    )
    frame = pd.concat(parts, ignore_index=True).sort_values(["time_s", "source"], kind="stable", ignore_index=True)
    frame = frame.reindex(columns=list(COLUMNS))
    frame["gpu_index"] = frame["gpu_index"].astype("Int64")
    for column in COLUMNS[3:]:
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    return frame.iloc[:rows] if len(frame) > rows else frame


def make_store(results: Path, samples: int, runs: int) -> int:
    from harness.measuring import store

    per_run = samples // runs
    total = 0
    for i in range(runs):
        start = 1.7e9 + i * 10_000
        frame = synthetic_timeline(per_run if i < runs - 1 else samples - total, start, i)
        total += len(frame)
        batch = 2 ** (i % 8 + 3)
        end = float(frame["time_s"].max())
        record = {
            "run_id": f"{i:012x}",
            "study": "scale",
            "status": "ok",
            "cause": None,
            "is_stable": True,
            "unstable_reason": "",
            "started_at": "2026-01-01T00:00:00+00:00",
            "config": {
                "study": "scale",
                "task": "lm-arena-chat",
                "family": "llm-chat",
                "backend": "vllm",
                "model": "llama-3.1-8b",
                "num_gpus": GPUS,
                "tensor_parallel": GPUS,
                "expert_parallel": 1,
                "precision": "bfloat16",
                "max_num_seqs": batch,
                "max_num_batched_tokens": 8192,
                "num_requests": 1024,
                "seed": 0,
                "stop": "fixed",
            },
            "environment": {"gpu_model": "H100", "gpu_count": GPUS},
            "metrics": {
                "energy_per_token_joules": 0.5 / batch**0.5,
                "avg_power_watts": 450.0 * GPUS,
                "output_throughput_tokens_per_sec": 900.0 * batch**0.5,
                "median_itl_ms": 8 + batch / 20,
                "avg_batch_size": batch * 0.97,
                "avg_output_len": 400.0,
                "energy_per_request_joules": 200.0 / batch**0.5,
                "steady_start_time_s": start,
                "steady_end_time_s": end,
                "steady_duration_s": end - start,
                "energy_source": "synthetic (benchmark data, not a measurement)",
            },
        }
        store.write_run(results / "scale" / record["run_id"], record, {"timeline.parquet": frame})
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000, help="timeline rows in all (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=20, help="synthetic runs holding them (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process repeats (default 3)")
    args = parser.parse_args(argv)
    _common.ensure_reference_env()
    load = _common.loadavg()
    watch = _common.Stopwatch()
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        results = Path(tmp) / "results"
        t = time.perf_counter()
        rows = make_store(results, args.samples, args.runs)
        setup_s = time.perf_counter() - t
        repeats = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", TIMED, str(results)], capture_output=True, text=True, env=dict(os.environ)
            )
            total = time.perf_counter() - t
            if proc.returncode != 0:
                raise SystemExit(f"analysis run failed: {proc.stderr.strip().splitlines()[-1]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result.update(total_s=total, loadavg_after=_common.loadavg())
            repeats.append(result)
    total = _common.spread([r["total_s"] for r in repeats])
    work = _common.spread([r["work_s"] for r in repeats])
    last = repeats[-1]
    ok = total["median"] <= GOAL_S and last["timeline_rows"] >= args.samples
    figure = (
        f"{total['median']:.2f} s in a fresh process ({work['median']:.2f} s after imports) for "
        f"{last['reference_rows']} reference rows + {last['timeline_rows']:,} telemetry samples + "
        f"{len(last['findings'])} findings"
    )
    payload = {
        "benchmark": NAME,
        "figure": figure,
        "status": _common.status(ok),
        "goal": f"<= {GOAL_S:g} s to load the reference data plus one million telemetry samples and compute every finding",  # noqa: E501
        "command": ".venv/bin/python benchmarks/analysis_scale.py",
        "data": {
            "timeline_rows": rows,
            "runs": args.runs,
            "gpus_per_run": GPUS,
            "sampler_hz": HZ,
            "note": "synthetic telemetry in the store's timeline schema, written by harness.measuring.store.write_run",
        },
        "setup_s": setup_s,
        "total_s": total,
        "work_s": work,
        "phases_s": {
            k: _common.spread([r[k] for r in repeats]) for k in ("imports_s", "table_s", "timelines_s", "findings_s")
        },
        "repeats": repeats,
        "benchmark_wall_s": watch(),
        "host": _common.host_facts(load),
    }
    path = _common.write_result(NAME, payload)
    print(f"{NAME}: {figure} -> {payload['status']}  ({path.relative_to(_common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
