"""``python -m harness measure CONFIG``: the sweep (:mod:`harness.orchestration.runner`)."""

from __future__ import annotations

import argparse

from harness.orchestration.outcome import SETUP_EXIT_STATUS
from harness.orchestration.runner import Interrupted, measure_study
from harness.orchestration.study import load_study


def _cmd_measure(args: argparse.Namespace) -> int:
    """Measure; exit 128 + the signal's number when interrupted, 1 when a run failed for a reason of setup
    (:mod:`harness.orchestration.outcome`) or a single configuration failed."""
    study = load_study(args.config)
    try:
        counts = measure_study(
            study,
            args.results,
            index=args.index,
            dry_run=args.dry_run,
            force=args.force,
            progress=not args.no_progress,
            strategy=getattr(args, "strategy", "grid"),
        )
    except Interrupted as exc:
        return 128 + exc.signum
    # A single configuration (a Slurm array task) that failed exits 1, so the scheduler's accounting agrees with
    # the store. A whole sweep exits 0 once every configuration has a measured outcome (out of memory, unstable,
    # skipped after those: results of the method), and 1 when a run failed for a reason of setup, so that
    # `make measure && make book` stops there.
    if args.index is not None and counts.get("failed"):
        return 1
    if getattr(counts, "setup_failures", 0):
        return SETUP_EXIT_STATUS
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``measure`` to the command line."""
    p = sub.add_parser(
        "measure",
        help="measure a study config's grid (resumable)",
        description="Measure every configuration of a study config that has no result yet. "
        "Results go to RESULTS/<study>/<run-id>/. An interrupted sweep resumes where "
        "it stopped when run again.",
    )
    p.add_argument("config", metavar="CONFIG", help="study config (YAML)")
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--index", type=int, metavar="I", help="measure only configuration I (0-based; Slurm array tasks)")
    p.add_argument("--dry-run", action="store_true", help="list what would be measured; write nothing")
    p.add_argument(
        "--force",
        action="store_true",
        help="measure again even where a result exists (the old folder moves to <study>/.replaced/)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per run still printed)")
    p.add_argument(
        "--strategy",
        choices=("grid", "frontier"),
        default="grid",
        help="grid: every configuration; frontier: per series, the batches the energy model's "
        "uncertainty points at, until the lowest energy under each ITL target is settled",
    )
    p.set_defaults(func=_cmd_measure)
