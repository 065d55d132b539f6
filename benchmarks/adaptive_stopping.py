"""Benchmark 2: adaptive stopping against the fixed-count method, on the same workload.

    .venv/bin/python benchmarks/adaptive_stopping.py [--quick]

This host has no GPU and no energy counter, so the energy here is SIMULATED, and said so in the
output. Two parts:

1. ``simulated`` (the goal is judged here): LLM runs at the reference's scale, in virtual time.
   For a few published 1 x H100 configurations (model, task, max_num_seqs), requests get the
   prompt and output lengths the vLLM backend would draw (:func:`harness.workloads.lengths.plan`:
   the reference's published output-length histogram for that model and task) and the
   reference's request count. A continuous-batching scheduler runs them in virtual time: a decode
   step is memory-bound (the weights plus the running batch's KV cache are read once, sizes from
   the model's architecture in harness/archs), scaled so that a batch at the stationary mean
   context takes the published median ITL, with 2% random jitter; requests admitted in a step
   add their prefill (compute-bound, 400 TFLOP/s assumed); the GPU draws the published average power with 3% AR(1) noise (1 s correlation time),
   as a piecewise-constant trace replayed through the fake NVML boundary (tests/conftest.py), so
   energy is read by Zeus' ZeusMonitor from the fake counter. The harness's own code measures it:
   ZeusMeter, SteadyTracker, harness.measuring.adaptive.AdaptiveStopper, harness.measuring.steady.llm_metrics.
   Each seed runs twice on the same sample path: drained (fixed count) and stopped adaptively
   (95% half-width <= 2%, window >= 20 s, one full turnover of the batch). Device-seconds = the
   load from the first request to the last token (fixed) or to the stop (adaptive); server
   start-up, the same for both, is left out.
2. ``cpu_trivial`` (supplementary, real time): the same comparison through ``harness measure`` on
   the trivial CPU backend; with no energy counter the quantity is time per token.
"""  # noqa: E501

from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "adaptive_stopping"
CONFIGS = (  # (model_id, task, max_num_seqs, num_requests): published 1 x H100 rows; the reference's N
    ("meta-llama/Llama-3.1-8B-Instruct", "lm-arena-chat", 64, 1024),
    ("meta-llama/Llama-3.1-8B-Instruct", "lm-arena-chat", 256, 1024),
    ("Qwen/Qwen3-8B", "gpqa", 64, 198),
    ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "sourcegraph-fim", 64, 1024),
)
SEEDS = (0, 1, 2)
MODEL = {  # the simulation's assumptions (recorded with the results)
    "power": "published avg_power_watts x (1 + 0.03 x AR(1) noise), 1 s correlation time, a new value every 0.1 s",
    "step_time": "published median_itl_ms x (W + kv x S) / (W + kv x M x C_ref) x (1 + 0.02 x N(0,1)) + prefill; "
    "W = total parameters x 2 bytes, kv = KV-cache bytes per token (architecture in harness/archs), "
    "S = context tokens (prompt + generated) of all running requests, C_ref = the stationary mean context "
    "(mean prompt + E[L^2] / (2 E[L]) of the drawn output lengths L); prefill = 2 x active parameters x "
    "prompt tokens / 400 TFLOP/s for the requests admitted in the step",
    "lengths": "harness.workloads.lengths.plan(task, N, seed, length_source=model): published output-length "
    "histogram of the model on the task; the task's assumed log-normal prompt lengths",
    "scheduler": "all N requests submitted at once; at most max_num_seqs run; a finished slot is refilled in the "
    "same step; the new request's first token comes at the end of that step",
}
ARCHS = {
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "Qwen/Qwen3-8B": "qwen3-8b",
    "Qwen/Qwen3-Coder-30B-A3B-Instruct": "qwen3-30b-a3b",
}
POWER_NOISE, POWER_TAU_S, POWER_DT_S = 0.03, 1.0, 0.1
STEP_JITTER, PREFILL_FLOPS = 0.02, 400e12
GOAL_RATIO, GOAL_DEVIATION = 3.0, 0.02


def _published_row(model_id: str, task: str, max_num_seqs: int):
    from harness.published import reference

    table = reference.llm_table()
    rows = table[
        (table["model_id"] == model_id)
        & (table["task"] == task)
        & (table["gpu_model"] == "H100")
        & (table["num_gpus"] == 1)
        & (table["max_num_seqs"] == max_num_seqs)
    ]
    if len(rows) != 1:
        raise SystemExit(
            f"expected one published row for {model_id} {task} max_num_seqs={max_num_seqs}, got {len(rows)}"
        )
    return rows.iloc[0]


def _trace_gpu_class():
    FakeGPU = _common.fake_gpu_class()

    class TraceGPU(FakeGPU):
        """FakeGPU with a running integral, so reading the counter costs O(1) on long traces."""

        def __init__(self, clock, watts: float):
            super().__init__([(clock(), watts)], clock=clock)
            self.cumulative_joules = 0.0

        def set_power(self, watts: float, t: float | None = None) -> None:
            t = self.clock() if t is None else t
            self.cumulative_joules += self.watts[-1] * (t - self.times[-1])
            super().set_power(watts, t)

        def counter_mj(self) -> int:
            t = self.clock()
            joules = self.cumulative_joules + self.watts[-1] * (t - self.times[-1])
            return self.BASE_MJ + round(1000 * joules)

    return TraceGPU


def simulate(row, num_requests: int, seed: int, rule, context_cost: bool = True) -> dict:
    """One LLM run in virtual time, measured by the harness's meter, tracker and stopper.

    ``context_cost=False`` drops the KV-cache term (a step costs the same at any context): a
    sensitivity case, not the judged one.
    """
    import numpy as np

    from harness.measuring import adaptive
    from harness.measuring.energy import ZeusMeter
    from harness.measuring.steady import SteadyTracker, llm_metrics
    from harness.workloads import archs, lengths
    from harness.workloads.base import RequestRecord

    sys.path.insert(0, str(_common.ROOT / "tests"))
    from conftest import FakeClock

    m = int(row["max_num_seqs"])
    plan = lengths.plan(row["task"], num_requests, seed, length_source=row["model_id"])
    prompts, targets = plan.prompt_tokens, plan.output_tokens
    itl_s = float(row["median_itl_ms"]) / 1000.0
    watts = float(row["avg_power_watts"])
    hf = archs.get(ARCHS[row["model_id"]]).hf_config()
    kv_bytes = 2 * hf["num_hidden_layers"] * hf["num_key_value_heads"] * hf["head_dim"] * 2  # K and V, 2 bytes each
    kv_bytes *= 1 if context_cost else 0
    weight_bytes = float(row["total_params_billions"]) * 1e9 * 2
    lens = np.asarray(targets, dtype=float)
    ref_context = float(np.mean(prompts)) + float(np.mean(lens**2) / (2 * np.mean(lens)))
    scale = itl_s / (weight_bytes + kv_bytes * m * ref_context)  # seconds per byte read in a decode step
    prefill_per_token_s = 2 * float(row["activated_params_billions"]) * 1e9 / PREFILL_FLOPS
    rng = np.random.default_rng([seed, 7])
    clock = FakeClock(1_000_000.0)
    gpu = _trace_gpu_class()(clock, watts)
    with _common.fake_nvml([gpu]):
        meter = ZeusMeter([0], clock=clock)
        requests = [
            RequestRecord(
                request_id=i,
                prompt_tokens=prompts[i],
                target_output_tokens=targets[i],
                output_tokens=0,
                submit_time_s=clock(),
                first_token_time_s=None,
                finish_time_s=None,
            )
            for i in range(num_requests)
        ]
        tracker = SteadyTracker.for_meter(meter, m, num_requests)
        stopper = adaptive.AdaptiveStopper(rule, meter, tracker, clock=clock)
        meter.begin("run")
        waiting, running = deque(range(num_requests)), []
        rho = math.exp(-POWER_DT_S / POWER_TAU_S)
        noise, next_power = 0.0, clock() + POWER_DT_S
        while waiting or running:
            admitted = []
            while waiting and len(running) < m:
                admitted.append(waiting.popleft())
                running.append(admitted[-1])
            context = sum(prompts[r] + requests[r].output_tokens for r in running)  # KV tokens read this step
            step = scale * (weight_bytes + kv_bytes * context) * (1 + STEP_JITTER * rng.standard_normal())
            step += prefill_per_token_s * sum(prompts[r] for r in admitted)
            end = clock() + step
            while next_power <= end:  # the power trace moves on in 0.1 s pieces
                clock.advance(next_power - clock())
                noise = rho * noise + math.sqrt(1 - rho * rho) * rng.standard_normal()
                gpu.set_power(watts * (1 + POWER_NOISE * noise))
                next_power += POWER_DT_S
            clock.advance(end - clock())
            stopper.tokens(len(running))
            done = []
            for k, rid in enumerate(running):  # distinct, increasing stamps inside the step
                t = end - (len(running) - k) * 1e-7
                r = requests[rid]
                r.token_times_s.append(t)
                r.output_tokens += 1
                if r.first_token_time_s is None:
                    r.first_token_time_s = t
                    tracker.first_token(t)
                if r.output_tokens >= r.target_output_tokens:
                    r.finish_time_s = t
                    tracker.finished(t)
                    done.append(rid)
            if done:
                gone = set(done)
                running = [r for r in running if r not in gone]
            if stopper.poll():
                break
        run_window = meter.end("run")
        meter.close()
    adaptive.mark_stopped(requests, stopper.stop_time_s)
    metrics, _ = llm_metrics(requests, meter.windows, m, stop_time_s=stopper.stop_time_s)
    summary = stopper.summary()
    est = summary["estimate"] or {}
    return {
        "device_seconds": run_window.duration_s,
        "steady_duration_s": metrics["steady_duration_s"],
        "energy_per_token_joules": metrics["energy_per_token_joules"],
        "steady_output_tokens": metrics["steady_output_tokens"],
        "stopped_by": summary["stopped_by"],
        "rel_halfwidth": est.get("rel_halfwidth"),
        "finished_requests": sum(1 for r in requests if r.success),
        "total_output_tokens": metrics["total_output_tokens"],
    }


def run_simulated(configs, seeds, context_cost: bool = True) -> dict:
    from harness.measuring.adaptive import StopRule

    out = []
    for model_id, task, m, n in configs:
        row = _published_row(model_id, task, m)
        pairs = []
        for seed in seeds:
            fixed = simulate(row, n, seed, StopRule(method="fixed", min_finishes=m), context_cost)
            ada = simulate(row, n, seed, StopRule(method="adaptive", min_finishes=m), context_cost)
            deviation = ada["energy_per_token_joules"] / fixed["energy_per_token_joules"] - 1
            pairs.append(
                {
                    "seed": seed,
                    "fixed": fixed,
                    "adaptive": ada,
                    "device_seconds_ratio": fixed["device_seconds"] / ada["device_seconds"],
                    "estimate_deviation": deviation,
                }
            )
            print(
                f"  {model_id.split('/')[-1]:28s} {task:16s} M={m:<4d} seed {seed}: fixed {fixed['device_seconds']:7.1f} s "  # noqa: E501
                f"{fixed['energy_per_token_joules']:.5f} J/tok | adaptive {ada['device_seconds']:6.1f} s "
                f"{ada['energy_per_token_joules']:.5f} J/tok (+/-{100 * (ada['rel_halfwidth'] or float('nan')):.2f}%, "
                f"{ada['stopped_by']}) | {fixed['device_seconds'] / ada['device_seconds']:.2f}x, {100 * deviation:+.2f}%",  # noqa: E501
                flush=True,
            )
        ratios = [p["device_seconds_ratio"] for p in pairs]
        out.append(
            {
                "model_id": model_id,
                "task": task,
                "gpu": "1 x H100",
                "max_num_seqs": m,
                "num_requests": n,
                "published_median_itl_ms": float(row["median_itl_ms"]),
                "published_avg_power_watts": float(row["avg_power_watts"]),
                "published_energy_per_token_joules": float(row["energy_per_token_joules"]),
                "device_seconds_ratio": _common.spread(ratios),
                "max_abs_estimate_deviation": max(abs(p["estimate_deviation"]) for p in pairs),
                "runs": pairs,
            }
        )
    every = [p for c in out for p in c["runs"]]
    total_fixed = sum(p["fixed"]["device_seconds"] for p in every)
    total_adaptive = sum(p["adaptive"]["device_seconds"] for p in every)
    return {
        "label": "SIMULATED power trace and step times (anchored on published 1 x H100 rows), replayed through fake NVML",  # noqa: E501
        "model": MODEL,
        "rule": {
            "rel_halfwidth": 0.02,
            "confidence": 0.95,
            "min_window_s": 20.0,
            "num_batches": 10,
            "min_finishes_in_window": "max_num_seqs",
            "checkpoint_s": 1.0,
        },
        "configurations": out,
        "total_device_seconds_fixed": total_fixed,
        "total_device_seconds_adaptive": total_adaptive,
        "device_seconds_ratio_total": total_fixed / total_adaptive,
        "device_seconds_ratio_per_run": _common.spread([p["device_seconds_ratio"] for p in every]),
        "abs_estimate_deviation_per_run": _common.spread([abs(p["estimate_deviation"]) for p in every]),
        "max_abs_estimate_deviation": max(abs(p["estimate_deviation"]) for p in every),
        "runs_stopped_adaptively": sum(p["adaptive"]["stopped_by"] == "adaptive" for p in every),
        "runs_stopped_at_window_close": sum(p["adaptive"]["stopped_by"] == "window-closed" for p in every),
        "runs": len(every),
        "fixed_count_rel_halfwidth": _common.spread(
            [p["fixed"]["rel_halfwidth"] for p in every if p["fixed"]["rel_halfwidth"] is not None]
        ),
    }


def run_cpu_trivial(repeats: int) -> dict:
    """The same comparison through ``harness measure`` (real time, trivial CPU backend, no energy counter)."""
    import json

    import yaml

    from harness.measuring import store
    from harness.orchestration.runner import measure_study
    from harness.orchestration.study import load_study

    block = {
        "task": "cpu-trivial",
        "backend": "trivial",
        "models": ["cpu-spin"],
        "num_requests": 1500,
        "max_output_tokens": 32,
        "options": {"step_s": 0.002, "work_rounds": 5},
        "grid": {"max_num_seqs": [16]},
    }
    pairs = []
    with tempfile.TemporaryDirectory(prefix="bench-adaptive-") as tmp:
        for i in range(repeats):
            row = {}
            for method in ("fixed", "adaptive") if i % 2 == 0 else ("adaptive", "fixed"):
                extra = {"stop": "adaptive", "adaptive_min_window_s": 1.0} if method == "adaptive" else {}
                path = Path(tmp) / f"{method}-{i}.yaml"
                path.write_text(
                    yaml.safe_dump(
                        {
                            "study": f"s{i}{method[0]}",
                            "settings": {"idle_power_s": 0},
                            "runs": [{**block, "seed": i, **extra}],
                        }
                    )
                )
                study = load_study(path)
                measure_study(study, Path(tmp) / "results", progress=False, out=io.StringIO())
                run_dir = store.run_path(Path(tmp) / "results", study.name, study.configurations[0].run_id)
                record = json.loads((run_dir / "run.json").read_text())
                mt = record["metrics"]
                row[method] = {
                    "device_seconds": record["windows"]["run"]["duration_s"],
                    "time_per_token_s": mt["steady_duration_s"] / mt["steady_output_tokens"],
                    "stopped_by": mt["stopped_by"],
                    "rel_halfwidth": mt["stop_estimate_rel_halfwidth"],
                }
            row["device_seconds_ratio"] = row["fixed"]["device_seconds"] / row["adaptive"]["device_seconds"]
            row["estimate_deviation"] = row["adaptive"]["time_per_token_s"] / row["fixed"]["time_per_token_s"] - 1
            pairs.append(row)
    return {
        "label": "REAL time on this CPU (trivial backend through harness measure); quantity: time per token "
        "(no energy counter here), not energy; a stationary toy load, so its ratio is set by the "
        "chosen num_requests and adaptive_min_window_s",
        "config": block | {"adaptive_min_window_s": 1.0},
        "runs": pairs,
        "device_seconds_ratio": _common.spread([p["device_seconds_ratio"] for p in pairs]),
        "abs_estimate_deviation": _common.spread([abs(p["estimate_deviation"]) for p in pairs]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one configuration, one seed (a smoke test)")
    args = parser.parse_args(argv)
    _common.ensure_reference_env()
    load = _common.loadavg()
    watch = _common.Stopwatch()
    configs, seeds = (CONFIGS[:1], SEEDS[:1]) if args.quick else (CONFIGS, SEEDS)
    print("simulated runs (virtual time; power SIMULATED):", flush=True)
    sim = run_simulated(configs, seeds)
    print("sensitivity: the same without the KV-cache cost (steps cost the same at any context):", flush=True)
    flat = run_simulated(configs[:1] + configs[3:4], seeds, context_cost=False)
    flat["label"] = "SENSITIVITY (not judged): as 'simulated' but a decode step costs the same at any context"
    print("cpu-trivial runs (real time; time per token):", flush=True)
    cpu = run_cpu_trivial(1 if args.quick else 3)
    print(
        f"  trivial backend: {cpu['device_seconds_ratio']['median']:.2f}x fewer device-seconds (median), time per "
        f"token within {100 * cpu['abs_estimate_deviation']['max']:.2f}% (max)",
        flush=True,
    )
    ratio, deviation = sim["device_seconds_ratio_total"], sim["max_abs_estimate_deviation"]
    ok = ratio >= GOAL_RATIO and deviation <= GOAL_DEVIATION
    figure = (
        f"{ratio:.1f}x fewer device-seconds in all (simulated, {sim['runs']} paired runs; median "
        f"{sim['device_seconds_ratio_per_run']['median']:.1f}x per run; {sim['runs_stopped_adaptively']} stopped "
        f"on a stable estimate, {sim['runs_stopped_at_window_close']} at the window's end), estimate within "
        f"{100 * deviation:.2f}% of fixed-count (max)"
    )
    payload = {
        "benchmark": NAME,
        "figure": figure,
        "status": _common.status(ok),
        "goal": f">= {GOAL_RATIO:g}x fewer device-seconds with the estimate within {100 * GOAL_DEVIATION:g}% of the "
        "fixed-count method (every paired run)",
        "command": ".venv/bin/python benchmarks/adaptive_stopping.py" + (" --quick" if args.quick else ""),
        "energy": "SIMULATED (no energy counter on this host): power trace replayed through the fake NVML boundary",
        "simulated": sim,
        "sensitivity_no_context_cost": flat,
        "cpu_trivial": cpu,
        "benchmark_wall_s": watch(),
        "host": _common.host_facts(load),
    }
    path = _common.write_result(NAME if not args.quick else f"{NAME}-quick", payload)
    print(f"{NAME}: {figure} -> {payload['status']}  ({path.relative_to(_common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
