"""``python -m harness submit CONFIG`` and ``python -m harness status CONFIG``: a study's sweep on Slurm.

What is submitted and how each configuration's state is worked out lives in
:mod:`harness.orchestration.slurm`; this module parses the arguments and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.orchestration import slurm
from harness.orchestration.study import load_study


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``submit`` and ``status`` to the command line."""
    p = sub.add_parser(
        "submit",
        help="submit a study's sweep to Slurm as job arrays (one task per configuration)",
        description="Submit the configurations of CONFIG that have no valid result as sbatch job arrays, "
        "one array per GPU count. Task i runs `python -m harness measure CONFIG --index i`. "
        "The script is kept in <results>/<study>/slurm/.",
    )
    p.add_argument("config", help="study config (YAML)")
    p.add_argument(
        "--results", default="results", help="shared results folder, visible to every node (default: results)"
    )
    p.add_argument("--partition", help="Slurm partition")
    p.add_argument(
        "--time",
        dest="time_limit",
        help="time limit per task in Slurm's format (default: the study's run_timeout_s + 15 min)",
    )
    p.add_argument("--cpus-per-task", type=int, help="CPUs per task (default: the cluster's)")
    p.add_argument("--max-parallel", type=int, help="run at most N tasks of an array at once (--array=...%%N)")
    p.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra sbatch flag written into the script, e.g. --sbatch-arg=--account=proj "
        "--sbatch-arg=--exclusive (repeatable; use the = form)",
    )
    p.add_argument("--gpu-type", help="GPU type in the cluster's GRES names, e.g. h100: --gres=gpu:h100:N")
    p.add_argument("--no-gpu", action="store_true", help="request no GPUs (CPU-only smoke sweeps)")
    p.add_argument("--retry-failed", action="store_true", help="submit only the configurations whose last task failed")
    p.add_argument("--dry-run", action="store_true", help="print the script(s) and submit nothing")
    p.set_defaults(func=_cmd_submit)

    s = sub.add_parser(
        "status",
        help="per configuration: done, failed, skipped, running, pending or not submitted",
        description="Where each configuration of CONFIG stands, from the results store and squeue.",
    )
    s.add_argument("config", help="study config (YAML)")
    s.add_argument("--results", default="results", help="results folder (default: results)")
    s.add_argument("--no-queue", action="store_true", help="do not ask squeue (results copied off the cluster)")
    s.add_argument("--json", action="store_true", help="one JSON object per configuration")
    s.set_defaults(func=_cmd_status)


def _cmd_submit(args: argparse.Namespace) -> int:
    """Submit (or with --dry-run print) one array per GPU count; exit 0 also when nothing needs submitting."""
    for flag in args.sbatch_arg:
        if not flag.startswith("-") or "\n" in flag:
            raise slurm.SlurmError(f"--sbatch-arg {flag!r}: expected one sbatch flag such as --account=proj")
    if args.gpu_type is not None and not args.gpu_type.replace("-", "").replace("_", "").isalnum():
        raise slurm.SlurmError(f"--gpu-type {args.gpu_type!r}: expected a GRES type name such as h100")
    for name in ("cpus_per_task", "max_parallel"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise slurm.SlurmError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    study = load_study(args.config)
    options = slurm.SubmitOptions(
        partition=args.partition,
        time_limit=args.time_limit,
        cpus_per_task=args.cpus_per_task,
        max_parallel=args.max_parallel,
        sbatch_args=tuple(args.sbatch_arg),
        no_gpu=args.no_gpu,
        gpu_type=args.gpu_type,
    )
    states = slurm.task_states(study, Path(args.results), use_queue=not args.dry_run)
    subs = slurm.submit(
        study, Path(args.results), options, retry_failed=args.retry_failed, dry_run=args.dry_run, states=states
    )
    stored_failed = sum(t.state == "failed" and t.stored == "failed" for t in states)
    if not subs:
        what = "failed configurations" if args.retry_failed else "configurations without a result"
        print(f"nothing to submit: no {what} outside the queue ({len(study.configurations)} in {args.config})")
    for s in subs:
        gpus = f"{s.plan.num_gpus} GPU(s) per task" if s.plan.num_gpus else "CPU only"
        if args.dry_run:  # stdout holds only the script(s); the note goes to stderr
            print(f"dry run, nothing submitted: array {s.plan.array_spec} ({gpus})", file=sys.stderr)
            print(s.text)
        else:
            print(
                f"submitted array job {s.job_id}: {len(s.plan.indices)} task(s) [{s.plan.array_spec}], {gpus}; "
                f"script {s.script}"
            )
    if stored_failed and not args.retry_failed:
        print(
            f"{stored_failed} configuration(s) failed earlier and were not resubmitted; "
            f"resubmit them with --retry-failed"
        )
    if subs and not args.dry_run:
        print(f"follow it with: python -m harness status {args.config} --results {args.results}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    """Print where each configuration stands (a table, or one JSON object per line)."""
    study = load_study(args.config)
    states = slurm.task_states(study, Path(args.results), use_queue=not args.no_queue)
    if args.json:
        for t in states:
            print(
                json.dumps(
                    {
                        "index": t.index,
                        "run_id": t.run_id,
                        "configuration": t.label,
                        "state": t.state,
                        "job": t.job,
                        "reason": t.reason,
                        "log": str(t.log) if t.log else None,
                        "stored": t.stored,
                    }
                )
            )
        return 0
    width = max(len(t.label) for t in states)
    print(f"{'index':>5}  {'run id':<12}  {'configuration':<{width}}  {'state':<13}  job")
    for t in states:
        print(f"{t.index:>5}  {t.run_id:<12}  {t.label:<{width}}  {t.state:<13}  {t.job or '-'}")
        if t.state in ("failed", "skipped", "pending") and t.reason:
            print(f"{'':>5}  {'':<12}  reason: {t.reason}")
        if t.state == "failed" and t.log is not None:
            print(f"{'':>5}  {'':<12}  log: {t.log}")
    counts = {s: sum(t.state == s for t in states) for s in slurm.STATES}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" (of {len(states)})")
    return 0
