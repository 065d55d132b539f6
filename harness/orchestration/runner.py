"""The sweep: ``python -m harness measure CONFIG [--results DIR] [--index I] [--dry-run] [--force]``.

For each Configuration of the study (or only configuration ``I``):

1. skip it when its folder already holds a result (status ok, failed or skipped, checksums intact);
   ``--force`` moves that folder to ``<study>/.replaced/`` and measures again; a damaged folder
   (files that fail their checksums) is moved there too, never deleted, and measured again;
2. skip it, recorded as ``skipped`` with the reason, when a smaller batch of the same series
   (same model, task, GPU count and other knobs) failed with cause ``oom`` or was unstable for a
   batch reason (no steady state, too short, unsaturated) -- the reference's rule;
3. otherwise measure it: mark the folder ``incomplete``, start the backend (not measured), start
   the telemetry sampler, ``backend.run(cfg, meter)``, stop the sampler, ``backend.stop()``
   (always), compute metrics and validity flags (:mod:`harness.measuring.steady`) and write the run
   (:mod:`harness.measuring.store`).

Before anything starts, :mod:`harness.orchestration.preflight` checks every configuration to measure
against this host (GPUs after ``CUDA_VISIBLE_DEVICES``, weights against their memory, parallelism
against the model's heads and experts): any problem refuses the sweep, one line per problem, nothing
written; ``--dry-run`` prints the same verdicts. Idle power is measured once per sweep before the first run (GPU hosts). A WorkloadError, a
timeout or a crash of the backend fails that run (cause and log tail stored) and the sweep goes
on. A telemetry sampler that raises does not stop the run: the run is flagged (``telemetry-errors``).
A configuration with a power cap or a locked SM clock (``power_limit_watts``, ``sm_clock_mhz``) has them set
before its run and restored after it; what a harness killed in between left set is restored when the next
``measure`` starts (:mod:`~harness.orchestration.gpu_knobs`). SIGINT and SIGTERM stop the sweep: the run in progress stays ``incomplete``, finished runs are
untouched, and the next ``measure`` resumes with exactly the runs that are not done. A results
folder that cannot be written (disk full) stops the sweep with :class:`StoreWriteError`, one line
naming the folder and the cause; runs already written stay intact.

The steps have modules of their own: :mod:`~harness.orchestration.signals` (SIGINT, SIGTERM, the run
timeout), :mod:`~harness.orchestration.skips` (the skip rule), :mod:`~harness.orchestration.folders`
(locks, moving results aside), :mod:`~harness.orchestration.execute` (one run's life, shared with the GPU
check), :mod:`~harness.orchestration.metrics` (a finished run's figures) and
:mod:`~harness.orchestration.console` (what is printed). The command line is :mod:`harness.cli.measure`.
"""  # noqa: E501

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from harness.config import Configuration, Study
from harness.errors import HarnessError
from harness.measuring import store
from harness.orchestration import console, execute, folders, gpu_knobs, metrics, outcome
from harness.orchestration.console import energy_notice, summary_line  # the runner's public names
from harness.orchestration.execute import Instruments, RunStart
from harness.orchestration.folders import StoreWriteError
from harness.orchestration.signals import Interrupted, handle_signals, signals_deferred
from harness.orchestration.skips import blocking_reason, record_skip


def sweep_instruments(study: Study) -> Instruments:
    """The sweep's instruments: Zeus energy windows and the telemetry timeline as a DataFrame."""
    from harness.measuring import energy
    from harness.measuring.telemetry import Telemetry

    settings = study.settings
    return Instruments(
        open_meter=lambda gpus: energy.ZeusMeter(gpus),
        read_timeline=Telemetry.stop,
        sampler_hz=settings.sampler_hz,
        run_timeout_s=settings.run_timeout_s,
    )


def measure_one(cfg: Configuration, study: Study, run_dir: Path, env: dict, idle_power: dict[int, float]) -> dict:
    """Measure one configuration into ``run_dir``; returns its record. Raises Interrupted after saving.

    ``idle_power``: each GPU's idle power measured before the sweep (W, by GPU index).
    """
    run = execute.begin(
        RunStart(
            cfg=cfg,
            study=study.name,
            run_dir=run_dir,
            env=env,
            idle_power_watts=idle_power,
            on_gpu=env.get("gpu_count", 0) > 0,
        )
    )
    execute.execute(run, sweep_instruments(study))
    with signals_deferred():  # the outcome is saved even if a signal arrives now
        execute.conclude(run)
        run.tables["timeline.parquet"] = run.timeline
        if run.status == "ok":
            try:
                metrics.summarize(run)
            except Exception as exc:  # noqa: BLE001  # bad records from a backend: keep the evidence, fail the run
                execute.fail_in_metrics(run, exc)
        execute.mark_unstable_unless_ok(run)
        server_log = getattr(run.result, "server_log", None) if run.result is not None else None
        store.write_run(run_dir, run.record, run.tables, server_log=server_log)
    if run.interrupted is not None:
        raise run.interrupted
    return run.record


def engine_problems(configurations: Iterable[Configuration]) -> list[str]:
    """One line per serving engine these configurations need that has no usable environment here."""
    from harness.config import ENGINE_BACKENDS
    from harness.workloads import engines

    return engines.check(c.engine for c in configurations if c.backend in ENGINE_BACKENDS)


def plan(
    study: Study, results_dir: Path, index: int | None = None, results: store.StudyResults | None = None
) -> list[tuple[Configuration, str]]:
    """(configuration, state) for the configurations in scope; state is the stored result's state, ``setup-failed``
    for a failed run whose cause was setup (:mod:`harness.orchestration.outcome`: it is measured again).

    ``results``: the sweep's index of the study's run folders (read now without it).
    """
    results = results if results is not None else store.StudyResults(results_dir, study.name)
    configs = list(study.configurations)
    if index is not None:
        if not 0 <= index < len(configs):
            raise HarnessError(
                f"--index {index} is out of range: {study.path} has {len(configs)} configurations (0..{len(configs) - 1})"  # noqa: E501
            )
        configs = [configs[index]]
    return [(cfg, outcome.retry_state(*results.state(cfg.run_id))) for cfg in configs]


@dataclass
class Sweep:
    """One ``measure`` over a study: what it holds while it walks the configurations.

    ``results`` indexes the study's run folders (each finished result read once); ``idle_power``: each
    GPU's idle power measured before the first run (W, by GPU index); ``counts``: runs by outcome.
    """

    study: Study
    results_dir: Path
    results: store.StudyResults
    force: bool
    out: TextIO
    env: dict = field(default_factory=dict)
    idle_power: dict[int, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    measured: int = 0
    tally: outcome.Outcome = field(default_factory=outcome.Outcome)  # runs by status and cause

    def count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


class SweepCounts(dict):
    """Counts by outcome (a dict, as before), with the sweep's :class:`harness.orchestration.outcome.Outcome`:
    its runs by status and cause, and how many failed for a reason of setup."""

    def __init__(self, counts: dict[str, int], result: outcome.Outcome | None = None) -> None:
        super().__init__(counts)
        self.outcome = result if result is not None else outcome.Outcome()

    @property
    def setup_failures(self) -> int:
        """Runs of this sweep that failed for a reason of setup (the command then exits non-zero)."""
        return self.outcome.setup_failures


def measure_study(
    study: Study,
    results_dir: Path | str,
    *,
    index: int | None = None,
    dry_run: bool = False,
    force: bool = False,
    progress: bool = True,
    out: TextIO | None = None,
    strategy: str = "grid",
) -> SweepCounts:
    """Measure the configurations that have no result (or failed for a reason of setup); returns counts by
    outcome, with the runs by status and cause (``SweepCounts.outcome``)."""
    from tqdm import tqdm

    from harness.orchestration import preflight

    out = out or sys.stdout
    results_dir = store.results_folder(results_dir)
    sweep = Sweep(
        study=study, results_dir=results_dir, results=store.StudyResults(results_dir, study.name), force=force, out=out
    )
    planned = plan(study, results_dir, index, sweep.results)
    todo = [(cfg, state) for cfg, state in planned if force or state not in store.DONE_STATUSES]  # setup-failed too
    sweep.counts = {"already done": len(planned) - len(todo)} if len(planned) > len(todo) else {}
    host = preflight.host_facts() if todo else None
    if dry_run:
        return SweepCounts(_dry_run(sweep, planned, todo, host))
    gpu_knobs.restore_at_start(results_dir, out)  # what a harness killed mid-run left set on this host's GPUs
    if not todo:
        print(console.nothing_to_measure(study, len(planned), results_dir), file=out)
        return SweepCounts(sweep.counts)
    assert host is not None  # read above whenever something is to be measured  # noqa: S101
    preflight.refuse_if_any(study, host, [cfg for cfg, _ in todo])  # before anything starts or is written
    preflight.refuse_without_reference([cfg for cfg, _ in todo])  # the published lengths the runs draw from
    problems = engine_problems(c for c, _ in todo)
    if problems:  # before anything is measured or written
        raise HarnessError("\n".join(problems))
    from harness.measuring import envinfo
    from harness.measuring.telemetry import measure_idle_power

    sweep.env = envinfo.capture()
    print(energy_notice(sweep.env), file=out, flush=True)
    with handle_signals():
        try:
            if sweep.env.get("gpu_count", 0) > 0 and study.settings.idle_power_s > 0:
                print(f"measuring idle power for {study.settings.idle_power_s:g} s ...", file=out, flush=True)
                sweep.idle_power = measure_idle_power(study.settings.idle_power_s, hz=study.settings.sampler_hz)
            order: Iterable[tuple[Configuration, str]] = todo
            if strategy == "frontier":  # the planner picks each series' next batch from what is measured so far
                from harness.orchestration.planner import frontier_order

                order = frontier_order(todo, results_dir, study, sweep.env.get("gpu_model"), out=out)
            bar = tqdm(
                order,
                desc=study.name,
                unit="run",
                disable=not progress,
                file=sys.stderr,
                dynamic_ncols=True,
                total=len(todo),
            )
            for cfg, _ in bar:
                record = _measure_configuration(sweep, cfg)
                if record is None:
                    continue
                sweep.count(record["status"])
                sweep.tally.add(record)
                tqdm.write(summary_line(cfg, record), file=out)
                out.flush()
            bar.close()
        except Interrupted as exc:
            sweep.counts["interrupted"] = 1
            print(
                f"interrupted by {exc}: finished runs are kept; run the same command again to resume",
                file=out,
                flush=True,
            )
            raise
    print(", ".join(f"{n} {k}" for k, n in sweep.counts.items()), file=out, flush=True)
    for line in sweep.tally.lines():
        print(f"  {line}", file=out)
    verdict = sweep.tally.verdict()
    if verdict:
        print(verdict, file=out)
    out.flush()
    return SweepCounts(sweep.counts, sweep.tally)


def _dry_run(
    sweep: Sweep, planned: list[tuple[Configuration, str]], todo: list[tuple[Configuration, str]], host
) -> dict[str, int]:
    """Print what ``measure`` would do (preflight's verdicts included); write nothing."""
    from harness.orchestration import preflight

    study, out = sweep.study, sweep.out
    cfgs = [cfg for cfg, _ in todo]
    verdicts = preflight.check_study(study, host, cfgs) if todo else {}
    console.print_dry_run(
        study,
        planned,
        sweep.force,
        verdicts,
        lambda cfg: blocking_reason(cfg, study, sweep.results_dir, sweep.results),
        out,
    )
    for problem in engine_problems(cfgs) + preflight.reference_problems(cfgs):
        print(f"would refuse: {problem}", file=out)
    print(f"{len(todo)} of {len(planned)} configurations to measure (dry run: nothing written)", file=out)
    lines = preflight.report_lines(study, verdicts, cfgs)
    if lines:
        refused = sum(bool(v) for v in verdicts.values())
        print(
            f"preflight: {refused} of {len(todo)} would be refused on this host ({host.describe()}); "
            f"measure stops before starting anything:",
            file=out,
        )
        for line in lines:
            print(f"  {line}", file=out)
        return sweep.counts | {"to measure": len(todo), "refused": refused}
    return sweep.counts | {"to measure": len(todo)}


def _measure_configuration(sweep: Sweep, cfg: Configuration) -> dict | None:
    """Lock the run's folder, then skip, measure or leave it; the run's record, or None when another process
    holds it or it turned out done (counted as "busy" or "already done")."""
    from tqdm import tqdm

    study, out = sweep.study, sweep.out
    run_dir = sweep.results.path(cfg.run_id)
    try:
        with folders.run_lock(run_dir) as locked:
            if not locked:
                tqdm.write(f"busy        {cfg.run_id}  another process is measuring it", file=out)
                sweep.count("busy")
                return None
            # Read again, not from the index, now that this process holds the folder: another process (a
            # parallel sweep, a Slurm task) may have finished it since the plan was made.
            state, record = store.result_state(run_dir)
            sweep.results.note(cfg.run_id, state, record)
            state = outcome.retry_state(state, record)  # a run that failed for a reason of setup is measured again
            if state in store.DONE_STATUSES and not sweep.force:
                sweep.count("already done")
                return None
            sweep.results.forget(cfg.run_id)  # this folder is rewritten now
            try:
                if state in store.DONE_STATUSES:
                    folders.move_aside(run_dir, "forced")
                elif state == outcome.SETUP_FAILED:  # kept as evidence of what was fixed
                    folders.move_aside(run_dir, outcome.SETUP_FAILED)
                elif state == "corrupt":  # a damaged result is kept as evidence, then measured again
                    kept = folders.move_aside(run_dir, "damaged")
                    tqdm.write(f"damaged     {cfg.run_id}  files moved to {kept}; measuring again", file=out)
                elif run_dir.exists():
                    folders.clear(run_dir)
                reason = blocking_reason(cfg, study, sweep.results_dir, sweep.results)
                if reason:
                    return record_skip(cfg, study, run_dir, sweep.env, reason)
                if sweep.measured and study.settings.cooldown_s:
                    time.sleep(study.settings.cooldown_s)
                sweep.measured += 1
                return measure_one(cfg, study, run_dir, sweep.env, sweep.idle_power)
            finally:
                sweep.results.forget(cfg.run_id)  # written (or cut short): the next question reads it again
    except OSError as exc:  # disk full, read-only or unwritable results folder
        done = sum(n for k, n in sweep.counts.items() if k in store.DONE_STATUSES or k == "already done")
        where = f" ({exc.filename})" if exc.filename else ""
        raise StoreWriteError(
            f"cannot write run {cfg.run_id} in {run_dir.parent}: {exc.strerror or exc}{where}; "
            f"the {done} run(s) finished before it are intact; fix this and run the same command "
            f"again to resume"
        ) from exc
