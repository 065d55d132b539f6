"""The reference's skip rule: a larger batch is not measured after a smaller one of its series failed.

A series is one model, task, GPU count and every other knob but the batch (``max_num_seqs`` or
``batch_size``) and the repeat. A configuration is skipped, recorded as ``skipped`` with the reason,
when a smaller batch of its series ran out of memory (cause ``oom``) or was unstable for a batch reason
(no steady state, too short, unsaturated) with energy measured.
"""

from __future__ import annotations

from pathlib import Path

from harness.config import Configuration, Study
from harness.measuring import store
from harness.measuring.steady import BATCH_CODES
from harness.orchestration import records
from harness.orchestration.signals import signals_deferred


def series_key(cfg: Configuration) -> tuple:
    """The configuration without its batch, study and repeat: equal for the batches of one series."""
    d = cfg.as_dict()
    d.pop(cfg.batch_knob)
    d.pop("study")
    d.pop("repeat", None)  # a smaller batch that failed in any repeat rules this one out
    return tuple(sorted((k, repr(v)) for k, v in d.items()))


def blocking_reason(
    cfg: Configuration, study: Study, results_dir: Path, results: store.StudyResults | None = None
) -> str | None:
    """Why a smaller batch of the same series rules this configuration out, or None.

    ``results``: the sweep's index of the study's run folders (each finished result read once); without
    it the folders are read now.
    """
    results = results if results is not None else store.StudyResults(results_dir, study.name)
    key = series_key(cfg)
    for other in study.configurations:
        if other.batch_value >= cfg.batch_value or series_key(other) != key:
            continue
        state, stored = results.state(other.run_id)
        record = stored or {}
        knob = f"{other.batch_knob}={other.batch_value}"
        if state == "failed" and record.get("cause") == "oom":
            return f"{knob} ran out of memory (run {other.run_id})"
        # The reference drops larger batches after an unstable one, a rule about energy measurements. Where
        # nothing was measured with an energy counter (a CPU host) the unstable run stays flagged, but it does
        # not rule out the larger batches: their times and latent metrics are still worth having.
        if (
            state == "ok"
            and not record.get("is_stable")
            and (record.get("metrics") or {}).get("gpu_energy_joules") is not None
            and set(record.get("failed_checks") or ()) & set(BATCH_CODES)
        ):
            return f"{knob} was unstable ({record.get('unstable_reason')}; run {other.run_id})"
    return None


def record_skip(cfg: Configuration, study: Study, run_dir: Path, env: dict, reason: str) -> dict:
    """Write a ``skipped`` run with its reason (a signal waits until it is written); returns the record."""
    record = records.skipped_record(cfg, study.name, env, reason)
    with signals_deferred():
        store.write_run(run_dir, record)
    return record
