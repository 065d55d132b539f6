"""What a sweep prints: the energy notice, one line per run, the dry run's plan.

Figures are printed in J/token, tokens/s, ms (ITL), J/output and s/batch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from harness.config import Configuration, Study
from harness.measuring import store


def energy_notice(env: dict) -> str:
    """One plain line, printed before a sweep, on what this host can and cannot measure."""
    if env.get("gpu_count", 0) > 0:
        return (
            f"energy: GPU energy from NVML's counter through Zeus on {env['gpu_count']} x "
            f"{env.get('gpu_model') or 'GPU'}; idle power is recorded before the sweep"
        )
    return (
        f"energy: this host has no GPU energy counter ({env.get('nvml', 'NVML unavailable')}): time and latent "
        f"metrics (batch reached, throughput, latencies, KV-cache use) are measured, energy is not "
        f"(recorded as null with its reason, never as 0 J)"
    )


def summary_line(cfg: Configuration, record: dict) -> str:
    """The line printed after a run: status, run id, configuration and its key figures or its cause."""
    m = record.get("metrics") or {}
    status = record["status"]
    parts = [f"{status:10s}", cfg.run_id, cfg.label()]
    if status == "ok":

        def fmt(key, unit):
            value = m.get(key)
            return f"{value:.4g} {unit}" if isinstance(value, (int, float)) else f"- {unit}"

        if cfg.is_llm:
            parts += [
                fmt("energy_per_token_joules", "J/token"),
                fmt("output_throughput_tokens_per_sec", "tok/s"),
                fmt("avg_batch_size", "avg batch"),
                fmt("median_itl_ms", "ms ITL"),
            ]
        else:
            parts += [fmt("energy_per_output_joules", "J/output"), fmt("batch_latency_s", "s/batch")]
        parts.append("stable" if record.get("is_stable") else f"UNSTABLE ({record.get('unstable_reason')})")
        rel = m.get("stop_estimate_rel_halfwidth")
        rel = f", +/-{100 * rel:.1f}%" if isinstance(rel, float) else ""
        if cfg.is_llm and m.get("stopped_by") == "adaptive":
            parts.append(f"stopped early (estimate stable{rel})")
        elif cfg.is_llm and m.get("stopped_by") == "window-closed":
            parts.append(f"stopped at the window's end (tail not drained{rel})")
    else:
        parts.append(f"cause: {record.get('cause')}")
    return "  ".join(parts)


def print_dry_run(
    study: Study,
    planned: list[tuple[Configuration, str]],
    force: bool,
    verdicts: dict[str, list[str]],
    blocked: Callable[[Configuration], str | None],
    out: TextIO,
) -> None:
    """One line per planned configuration: done, refused by preflight, would skip (and why) or measure."""
    for cfg, state in planned:
        reason = blocked(cfg)
        if state in store.DONE_STATUSES and not force:
            action = f"done ({state})"
        elif verdicts.get(cfg.run_id):
            action = f"refused: {'; '.join(verdicts[cfg.run_id])}"
        elif reason:
            action = f"would skip: {reason}"
        else:
            action = {
                "missing": "measure",
                "incomplete": "measure again (incomplete)",
                "corrupt": "measure again (damaged)",
                "setup-failed": "measure again (failed for a reason of setup)",
            }.get(state, f"measure again (--force; was {state})")
        print(f"{study.configurations.index(cfg):4d}  {cfg.run_id}  {cfg.label():40s}  {action}", file=out)


def nothing_to_measure(study: Study, count: int, results_dir: Path) -> str:
    """The line of a sweep whose every configuration has a result."""
    return f"nothing to measure: all {count} configurations of {study.name} have results in {results_dir}"
