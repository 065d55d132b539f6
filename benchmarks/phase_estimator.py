"""Benchmark 9: the phase estimator recovers known prefill and decode coefficients from simulated runs.

    .venv/bin/python benchmarks/phase_estimator.py [--seeds N]

Each simulated run (tests/phase_sim.py) is a continuous-batching engine with chunked prefill whose per-step GPU
energy is ``idle power x step time + (alpha x prompt tokens prefilled + beta x tokens decoded) x (1 + noise)``;
its power trace is replayed by fake GPUs at the NVML boundary (tests/conftest.py's FakeGPU/FakeNVML) and read by
the harness's own idle-power measurement and sampler. :func:`harness.analysis.phases.estimate` then estimates
``alpha`` (J per prompt token) and ``beta`` (J per decoded token) from the timeline and the requests table.

Figures: per scenario and seed, the relative error of each coefficient and whether its 95% interval covers the
truth. Goals: on GPUs with an energy counter and with the engine's limits known (every vLLM run of the harness),
every error within :data:`harness.analysis.phases.STATED_ERROR`, and the intervals covering the truth in at least
80% of the runs. Two further scenarios show what is lost without a counter (sampled power) and without the
engine's limits (each prompt placed in its first token's step); they carry no goal.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

sys.path.insert(0, str(_common.ROOT / "tests"))

NAME = "phase_estimator"
GOAL_COVERAGE = 0.80


def scenarios():
    """(name, load, engine limits known, counts toward the goal)."""
    from phase_sim import SimulatedLoad

    base = SimulatedLoad()
    return [
        ("batch 64, 800/250 tokens", base, True, True),
        ("batch 8", replace(base, max_num_seqs=8, num_requests=100), True, True),
        ("batch 256", replace(base, max_num_seqs=256, num_requests=1200), True, True),
        ("long prompts (3000/100)", replace(base, prompt_mean_tokens=3000.0, output_mean_tokens=100.0), True, True),
        ("short prompts (200/400)", replace(base, prompt_mean_tokens=200.0, output_mean_tokens=400.0), True, True),
        (
            "4 GPUs, 8B-like x4 power",
            replace(
                base, num_gpus=4, prefill_joules_per_token=0.08, decode_joules_per_token=0.45, idle_power_watts=75.0
            ),
            True,
            True,
        ),
        ("noisy steps (15%)", replace(base, noise_fraction=0.15), True, True),
        ("no energy counter", replace(base, has_counter=False), True, False),
        ("engine limits unknown", base, False, False),
    ]


def run_one(load, limits_known: bool) -> dict:
    from harness.analysis import phases
    from harness.analysis.engine_steps import EngineLimits
    from phase_sim import simulate

    with contextlib.ExitStack() as stack:
        run = simulate(load, lambda gpus: stack.enter_context(_common.fake_nvml(gpus)))
    engine = EngineLimits(load.max_num_seqs, load.max_num_batched_tokens) if limits_known else EngineLimits()
    start = time.perf_counter()
    est = phases.estimate(
        phases.PhaseInputs(
            run.timeline, run.requests, run.steady_start_s, run.steady_end_s, run.idle_power_total_watts, engine
        )
    )
    seconds = time.perf_counter() - start
    out = {
        "seed": load.seed,
        "estimate_seconds": seconds,
        "ticks": est.ticks,
        "reason": est.reason,
        "shares": {p: est.share(p) for p in ("static", "prefill", "decode", "residual")},
    }
    for name, truth, value, interval in (
        ("prefill", load.prefill_joules_per_token, est.prefill_joules_per_token, est.prefill_interval),
        ("decode", load.decode_joules_per_token, est.decode_joules_per_token, est.decode_interval),
    ):
        out[f"{name}_true_joules_per_token"] = truth
        out[f"{name}_estimate_joules_per_token"] = value
        out[f"{name}_interval"] = list(interval) if interval else None
        out[f"{name}_relative_error"] = value / truth - 1 if value is not None else None
        out[f"{name}_covered"] = bool(interval and interval[0] <= truth <= interval[1])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="simulated runs per scenario (default 5)")
    args = parser.parse_args(argv)
    _common.ensure_reference_env()
    from harness.analysis import phases

    load_before = _common.loadavg()
    table, checked = [], []
    for name, load, limits_known, counted in scenarios():
        runs = [run_one(replace(load, seed=seed), limits_known) for seed in range(args.seeds)]
        worst = {p: max(abs(r[f"{p}_relative_error"]) for r in runs) for p in ("prefill", "decode")}
        covered = {p: sum(r[f"{p}_covered"] for r in runs) / len(runs) for p in ("prefill", "decode")}
        row = {
            "scenario": name,
            "counts_toward_goal": counted,
            "engine_limits_known": limits_known,
            "load": asdict(load),
            "worst_prefill_relative_error": worst["prefill"],
            "worst_decode_relative_error": worst["decode"],
            "prefill_interval_coverage": covered["prefill"],
            "decode_interval_coverage": covered["decode"],
            "runs": runs,
        }
        table.append(row)
        if counted:
            checked.extend(runs)
        print(
            f"{name:28s} worst error prefill {worst['prefill']:6.1%} decode {worst['decode']:6.1%}  "
            f"coverage {covered['prefill']:.0%} / {covered['decode']:.0%}" + ("" if counted else "  (no goal)"),
            flush=True,
        )
    worst_all = {p: max(abs(r[f"{p}_relative_error"]) for r in checked) for p in ("prefill", "decode")}
    coverage = min(sum(r[f"{p}_covered"] for r in checked) / len(checked) for p in ("prefill", "decode"))
    checks = [
        {
            "check": f"worst {p} error",
            "value": worst_all[p],
            "goal": f"<= {phases.STATED_ERROR[p]:.0%}",
            "met": worst_all[p] <= phases.STATED_ERROR[p],
        }
        for p in ("prefill", "decode")
    ] + [
        {
            "check": "lowest 95% interval coverage",
            "value": coverage,
            "goal": f">= {GOAL_COVERAGE:.0%}",
            "met": coverage >= GOAL_COVERAGE,
        },
    ]
    ok = all(c["met"] for c in checks)
    figure = (
        f"worst error over {len(checked)} simulated runs: prefill {worst_all['prefill']:.1%}, decode "
        f"{worst_all['decode']:.1%}; 95% intervals cover the truth in >= {coverage:.0%}"
    )
    payload = {
        "benchmark": NAME,
        "figure": figure,
        "status": _common.status(ok),
        "goal": (
            f"prefill within {phases.STATED_ERROR['prefill']:.0%}, decode within "
            f"{phases.STATED_ERROR['decode']:.0%} (the stated error), intervals cover >= {GOAL_COVERAGE:.0%}"
        ),
        "command": ".venv/bin/python benchmarks/phase_estimator.py",
        "checks": checks,
        "method": phases.METHOD,
        "table": table,
        "host": _common.host_facts(load_before),
    }
    path = _common.write_result(NAME, payload)
    print(f"{payload['status']}: {figure} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
