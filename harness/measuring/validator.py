"""The reference validator's checks, at parity with ``scripts/validate_results.py`` of ml-energy/benchmark.

Each check gives one flag ``{"check", "severity", "status", "reason"}`` with status ``pass``,
``fail`` or ``skip`` (the check does not apply or its input was not measured; the reason says
which). Severity follows the reference: an ``error`` fails validation, a ``warning`` only flags.

=========================  ========  =================================================================
check                      severity  fails (the reference's thresholds)
=========================  ========  =================================================================
``request-success``        error     a request failed (requests stopped early by adaptive stopping
                                     are not failures)
``steady-duration``        error     steady state shorter than 30 s (not applied on a CPU host)
``telemetry-samples``      warning   fewer than 75% of the expected samples, over the whole run or
                                     the steady window (the reference counts its Prometheus scrapes;
                                     here every stream: NVML per GPU, the vLLM scrape, the host)
``batch-saturation``       warning   average running batch under 80% of ``max_num_seqs``
``output-length-cap``      warning   30% or more of the requests stopped at the output-token cap
``metrics-valid``          error     throughput, steady energy or energy per token not positive
``energy-per-token``       error     more than 100 J per token (the reference's sanity bound)
``instant-power``          warning   an instantaneous power reading outside 70 W .. 1.7 x TDP
``average-power``          warning   an averaged power reading (NVML's 1 s average, and each GPU's
                                     counter average over the steady window) outside 70 W .. 1.1 x TDP
``temperature``            error     5% or more of the temperature readings outside 20 .. 95 C
=========================  ========  =================================================================

Power and temperature readings are the NVML samples of the whole measured load (the ``run``
window, else the steady window). TDP is the reference's table (H100 700 W, B200 1000 W), else the
GPU's enforced power limit read through NVML (said in the reason). A diffusion run gets the checks
that apply to it (no requests, batch or token checks), as the reference validates only LLM runs.
These flags sit beside ``is_stable``, which keeps the published data's stability filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from harness.measuring.windows import Request
from harness.vocabulary.hardware import REFERENCE_TDP_WATTS

if TYPE_CHECKING:
    import pandas as pd

MIN_STEADY_S = 30.0
MIN_SAMPLE_FRACTION = 0.75
MIN_BATCH_FRACTION = 0.80
MAX_CAPPED_FRACTION = 0.30
MAX_ENERGY_PER_TOKEN_J = 100.0
MIN_POWER_W = 70.0
INSTANT_TDP_FACTOR = 1.7
AVERAGE_TDP_FACTOR = 1.1
TEMPERATURE_RANGE_C = (20.0, 95.0)
MAX_TEMPERATURE_OUT_FRACTION = 0.05
SEVERITY = {
    "request-success": "error",
    "steady-duration": "error",
    "telemetry-samples": "warning",
    "batch-saturation": "warning",
    "output-length-cap": "warning",
    "metrics-valid": "error",
    "energy-per-token": "error",
    "instant-power": "warning",
    "average-power": "warning",
    "temperature": "error",
}
CHECKS = tuple(SEVERITY)


def _flag(check: str, status: str, reason: str) -> dict:
    return {"check": check, "severity": SEVERITY[check], "status": status, "reason": reason}


def tdp_watts(gpu_model: str | None, power_limits: Iterable[float | None]) -> tuple[float | None, str]:
    """The GPU's TDP in watts and where it came from: the reference's table, else the lowest power limit
    (watts) read through NVML, else None; the text says which."""
    for name, watts in REFERENCE_TDP_WATTS.items():
        if gpu_model and name in str(gpu_model):
            return watts, f"TDP {watts:.0f} W ({name})"
    limits = [p for p in power_limits if p is not None]
    if limits:
        return min(limits), f"TDP unknown for {gpu_model or 'this GPU'}: its power limit {min(limits):.0f} W"
    return None, f"TDP unknown for {gpu_model or 'this GPU'} and no power limit read"


def _readings(timeline, start, end):
    if timeline is None or not len(timeline) or start is None:
        return None
    inside = timeline[(timeline["source"] == "nvml") & (timeline["time_s"] >= start) & (timeline["time_s"] <= end)]
    return inside if len(inside) else None


def _power_flag(check, values, lo, hi, what, basis) -> dict:
    bad = [v for v in values if v < lo or v > hi]
    if not values:
        return _flag(check, "skip", f"no {what} readings")
    if bad:
        return _flag(
            check,
            "fail",
            f"{len(bad)} of {len(values)} {what} readings outside {lo:.0f}..{hi:.0f} W "
            f"(min {min(values):.0f}, max {max(values):.0f} W; {basis})",
        )
    return _flag(check, "pass", f"{len(values)} {what} readings within {lo:.0f}..{hi:.0f} W ({basis})")


def validate(
    metrics: dict,
    *,
    is_llm: bool,
    on_gpu: bool,
    max_num_seqs: int | None = None,
    output_cap: int | None = None,
    requests: Sequence[Request] = (),
    timeline: pd.DataFrame | None = None,
    run_window: tuple[float, float] | None = None,
    run_coverage: float | None = None,
    power_source: dict | None = None,
    gpu_model: str | None = None,
    power_limit_watts: Iterable[float | None] = (),
    num_gpus: int = 1,
) -> list[dict]:
    """One flag per check of :data:`CHECKS` (in that order).

    ``timeline``: the telemetry frame (:mod:`harness.measuring.telemetry`); ``run_window``: the whole load's
    ``(start, end)`` in seconds (else the steady window of ``metrics``); ``run_coverage``: the share (0..1) of
    expected telemetry samples over it; ``power_source``: each GPU's power reading (``info["power_source"]``);
    ``power_limit_watts``: each GPU's enforced limit in watts (the TDP where the table has none).
    """
    flags = []
    cpu = "not applied on a CPU host (no energy counter)"
    if is_llm:
        failed = metrics.get("num_failed_requests") or 0
        total = metrics.get("num_requests") or 0
        flags.append(
            _flag(
                "request-success",
                "fail" if failed else "pass",
                f"{failed} of {total} requests failed"
                if failed
                else f"all {total - (metrics.get('num_stopped_requests') or 0)} requests that ran to the end succeeded",
            )
        )
        duration = metrics.get("steady_duration_s")
        if not on_gpu:
            flags.append(_flag("steady-duration", "skip", f"steady state >= {MIN_STEADY_S:g} s {cpu}"))
        elif duration is None:
            flags.append(_flag("steady-duration", "fail", "no steady state"))
        else:
            ok = duration >= MIN_STEADY_S
            flags.append(
                _flag(
                    "steady-duration",
                    "pass" if ok else "fail",
                    f"steady state {duration:.1f} s ({'>=' if ok else '<'} {MIN_STEADY_S:g} s)",
                )
            )
    steady_cov = metrics.get("telemetry_coverage_fraction")
    judged = {k: v for k, v in (("whole run", run_coverage), ("steady window", steady_cov)) if v is not None}
    if not judged:
        flags.append(_flag("telemetry-samples", "skip", "windows too short to judge sample coverage"))
    else:
        low = {k: v for k, v in judged.items() if v < MIN_SAMPLE_FRACTION}
        text = ", ".join(f"{k} {v:.0%}" for k, v in judged.items())
        flags.append(
            _flag(
                "telemetry-samples",
                "fail" if low else "pass",
                f"samples present: {text} ({'<' if low else '>='} {MIN_SAMPLE_FRACTION:.0%} expected)",
            )
        )
    if is_llm:
        sat = metrics.get("batch_saturation")
        if sat is None:
            flags.append(_flag("batch-saturation", "skip", "no steady state: no average batch"))
        else:
            ok = sat >= MIN_BATCH_FRACTION
            flags.append(
                _flag(
                    "batch-saturation",
                    "pass" if ok else "fail",
                    f"average batch {metrics.get('avg_batch_size'):.2f} is {sat:.0%} of max_num_seqs="
                    f"{max_num_seqs} ({'>=' if ok else '<'} {MIN_BATCH_FRACTION:.0%})",
                )
            )
        done = [r for r in requests if r.success]
        if output_cap is None:
            flags.append(_flag("output-length-cap", "skip", "no output-token cap was set"))
        elif not done:
            flags.append(_flag("output-length-cap", "skip", "no request succeeded"))
        else:
            capped = sum(1 for r in done if r.output_tokens >= output_cap)
            share = capped / len(done)
            bad = share >= MAX_CAPPED_FRACTION
            flags.append(
                _flag(
                    "output-length-cap",
                    "fail" if bad else "pass",
                    f"{capped} of {len(done)} requests ({share:.0%}) hit max_output_tokens={output_cap} "
                    f"({'>=' if bad else '<'} {MAX_CAPPED_FRACTION:.0%})",
                )
            )
    # metrics-valid and energy-per-token
    throughput = (
        metrics.get("output_throughput_tokens_per_sec") if is_llm else metrics.get("throughput_outputs_per_sec")
    )
    energy, ept = metrics.get("gpu_energy_joules"), metrics.get("energy_per_token_joules")
    issues = []
    if throughput is None or throughput <= 0:
        issues.append(f"throughput {throughput}")
    if on_gpu:
        if energy is None or energy <= 0:
            issues.append(f"energy {energy} J")
        if is_llm and (ept is None or ept <= 0):
            issues.append(f"energy per token {ept} J")
    flags.append(
        _flag(
            "metrics-valid",
            "fail" if issues else "pass",
            "not positive: " + ", ".join(issues)
            if issues
            else "throughput" + (" and energy" if on_gpu else "") + " positive" + ("" if on_gpu else f"; energy {cpu}"),
        )
    )
    if not is_llm:
        pass
    elif not on_gpu or ept is None:
        flags.append(
            _flag("energy-per-token", "skip", f"energy per token not measured ({cpu if not on_gpu else 'null'})")
        )
    else:
        bad = ept > MAX_ENERGY_PER_TOKEN_J
        flags.append(
            _flag(
                "energy-per-token",
                "fail" if bad else "pass",
                f"{ept:.4g} J per token ({'>' if bad else '<='} {MAX_ENERGY_PER_TOKEN_J:g} J)",
            )
        )
    # power and temperature readings
    start, end = run_window if run_window else (metrics.get("steady_start_time_s"), metrics.get("steady_end_time_s"))
    readings = _readings(timeline, start, end) if on_gpu else None
    if readings is None:
        why = cpu if not on_gpu else "no NVML samples in the run"
        for check in ("instant-power", "average-power", "temperature"):
            flags.append(_flag(check, "skip", why))
        return flags
    tdp, basis = tdp_watts(gpu_model, power_limit_watts)
    source = power_source or {}
    instant = [
        float(v)
        for g, v in zip(readings["gpu_index"], readings["power_watts"], strict=False)
        if v == v and str(source.get(str(int(g)), source.get(int(g), ""))).startswith("nvml/power-instant")
    ]
    averaged = [
        float(v)
        for g, v in zip(readings["gpu_index"], readings["power_watts"], strict=False)
        if v == v and not str(source.get(str(int(g)), source.get(int(g), ""))).startswith("nvml/power-instant")
    ]
    counter_avg = metrics.get("avg_power_watts")
    if counter_avg is not None and is_llm:
        averaged.append(counter_avg / max(1, num_gpus))
    if tdp is None:
        flags.append(_flag("instant-power", "skip", basis))
        flags.append(_flag("average-power", "skip", basis))
    else:
        flags.append(
            _power_flag("instant-power", instant, MIN_POWER_W, INSTANT_TDP_FACTOR * tdp, "instantaneous power", basis)
            if instant
            else _flag("instant-power", "skip", "the driver gives no instantaneous power readings")
        )
        flags.append(
            _power_flag("average-power", averaged, MIN_POWER_W, AVERAGE_TDP_FACTOR * tdp, "averaged power", basis)
        )
    temps = [float(v) for v in readings["temperature_celsius"] if v == v]
    if not temps:
        flags.append(_flag("temperature", "skip", "no temperature readings"))
    else:
        lo, hi = TEMPERATURE_RANGE_C
        out = sum(1 for t in temps if t < lo or t > hi)
        share = out / len(temps)
        bad = share >= MAX_TEMPERATURE_OUT_FRACTION
        flags.append(
            _flag(
                "temperature",
                "fail" if bad else "pass",
                f"{out} of {len(temps)} readings ({share:.1%}) outside {lo:.0f}..{hi:.0f} C "
                f"(range {min(temps):.0f}..{max(temps):.0f} C; fails at >= {MAX_TEMPERATURE_OUT_FRACTION:.0%})",
            )
        )
    return flags


def summary(flags: list[dict]) -> dict:
    """``{"passed", "errors", "warnings", "checks"}``: passed unless an error-level check failed."""
    errors = [f["check"] for f in flags if f["status"] == "fail" and f["severity"] == "error"]
    warnings = [f["check"] for f in flags if f["status"] == "fail" and f["severity"] == "warning"]
    return {"passed": not errors, "errors": errors, "warnings": warnings, "checks": flags}
