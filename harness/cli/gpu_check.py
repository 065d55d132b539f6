"""``scripts/gpu-check``'s command line: the check, ``--prepare``, ``--collect-wheels`` and ``--wheels``.

What the check measures and writes is :mod:`harness.orchestration.gpucheck`; the carried wheels are
:mod:`harness.orchestration.wheels`. Exit 0 when every run is ok, 1 when one is not, 2 with one line
naming the cause when the check cannot run. The check writes its results under the output folder and
everything else (generated models, caches, the carried wheels' site, temporary files) in a scratch folder
it removes (:mod:`harness.orchestration.gpucheck_scratch`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.orchestration import gpucheck, wheels
from harness.orchestration.gpucheck_scratch import scratch_space


def build_parser() -> argparse.ArgumentParser:
    """``scripts/gpu-check``'s arguments."""
    parser = argparse.ArgumentParser(prog="scripts/gpu-check", description=(gpucheck.__doc__ or "").split("\n\n")[0])
    parser.add_argument("out", nargs="?", help="folder for results and the environment capture")
    parser.add_argument("--dry-run", action="store_true", help="the same path at tiny sizes on the CPU")
    parser.add_argument(
        "--wheels",
        help="folder of carried wheels to install (no index, no dependencies) "
        "and check before any run; never inside the output folder",
    )
    parser.add_argument(
        "--collect-wheels",
        metavar="DIR",
        help="on a host with PyPI: download the wheels the check machine lacks into DIR",
    )
    parser.add_argument(
        "--python-version",
        default=wheels.CHECK_MACHINE["python_version"],
        help="the check machine's Python, for --collect-wheels (default %(default)s)",
    )
    parser.add_argument(
        "--keep",
        action="append",
        metavar="PIN",
        help="a package the check machine has and keeps (default: "
        f"{', '.join(wheels.CHECK_MACHINE['keeps'])}), for --collect-wheels",
    )
    parser.add_argument("--lengths", help="length plans prepared with --prepare (where the reference data is absent)")
    parser.add_argument("--prepare", metavar="FILE", help="only draw the LLM lengths into FILE (needs the reference)")
    parser.add_argument(
        "--budget-s", type=float, default=gpucheck.BUDGET_S, help="skip runs once this many seconds are spent"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``scripts/gpu-check`` with ``argv``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.prepare:
        print(f"wrote {gpucheck.prepare(Path(args.prepare), args.dry_run)}")
        return 0
    if args.collect_wheels:
        wheels.collect_wheels(
            Path(args.collect_wheels), args.python_version, tuple(args.keep or wheels.CHECK_MACHINE["keeps"])
        )
        return 0
    if not args.out:
        parser.error("the output folder is required")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with scratch_space():
            carried = None
            if args.wheels:
                names, site = wheels.install_wheels(Path(args.wheels), out)
                print(f"installed carried wheels: {', '.join(names) or 'none found'}")
                carried = (site, names)
            summary = gpucheck.run_check(
                out, args.dry_run, Path(args.lengths) if args.lengths else None, args.budget_s, carried=carried
            )
    except HarnessError as exc:  # one line naming the cause
        print(f"gpu-check: {exc}", file=sys.stderr)
        return 2
    return 0 if all(r["status"] == "ok" for r in summary["runs"]) else 1
