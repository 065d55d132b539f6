"""``python -m harness findings`` and ``python -m harness diagnose``: the paper's findings recomputed, and an
energy gap between two configurations as a product of factors.

Command line::

    python -m harness findings [--json] [--id ID] [--rows]
    python -m harness diagnose A B [--json] [--results DIR]

Registering these commands imports no pandas (``python -m harness --help`` stays quick): the finding ids come
from :mod:`harness.analysis.paper`, and the analysis is imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from harness.analysis.paper import FINDING_IDS

if TYPE_CHECKING:
    from harness.analysis.tables.attribution import Attribution


def register(sub: Any) -> None:
    """Add ``findings`` and ``diagnose`` to the command line's sub-commands."""
    p = sub.add_parser("findings", help="recompute the paper's findings from the reference data")
    p.add_argument("--json", action="store_true", help="print every finding as JSON")
    p.add_argument("--id", dest="finding_id", metavar="ID", help=f"one finding: {', '.join(FINDING_IDS)}")
    p.add_argument("--rows", action="store_true", help="with --json, include each finding's per-item rows")
    p.set_defaults(func=_findings_cmd)

    d = sub.add_parser("diagnose", help="explain the energy gap between two configurations as a product of factors")
    d.add_argument(
        "a",
        help="selector of configuration A, e.g. model=Qwen/Qwen3-32B,task=gpqa,gpu=B200,num_gpus=1,max_num_seqs=128",
    )
    d.add_argument("b", help="selector of configuration B")
    d.add_argument("--results", metavar="DIR", help="also select among the harness's own runs in DIR")
    d.add_argument("--json", action="store_true", help="print the attribution as JSON")
    d.set_defaults(func=_diagnose_cmd)


def _findings_cmd(args: argparse.Namespace) -> int:
    from harness.analysis.findings import compute, compute_all
    from harness.analysis.findings.record import jsonable

    found = [compute(args.finding_id)] if args.finding_id else compute_all()
    if args.json:
        payload = [f.as_dict(with_rows=args.rows) for f in found]
        print(json.dumps(payload if not args.finding_id else payload[0], indent=2))
        return 0
    for f in found:
        verdict = {True: "agrees with the paper", False: "DIFFERS from the paper", None: "no published claim"}[f.agrees]
        print(f"[{f.id}] {f.title}  ({verdict})")
        print(f"  {f.summary}")
        print(f"  paper ({f.paper.get('source', '')}): {f.paper.get('claim', '')}")
        print(f"  check: {f.comparison}")
        print(f"  filters: {json.dumps(jsonable(f.filters))}")
        print()
    return 0


def _diagnose_cmd(args: argparse.Namespace) -> int:
    from harness.analysis.findings.record import jsonable
    from harness.analysis.loading import load_rows
    from harness.analysis.tables.attribution import diagnose

    att = diagnose(args.a, args.b, load_rows(args.results))
    if args.json:
        print(json.dumps(jsonable(att.as_dict()), indent=2))
    else:
        print(format_attribution(att))
    return 0


def format_attribution(att: Attribution) -> str:
    """The attribution as the command line prints it: its explanation, then one line per factor (ratio B/A and
    both values in the factor's unit) and the product, which equals the energy ratio."""
    import pandas as pd

    from harness.analysis.tables.attribution import format_number

    frame = att.to_frame()
    lines = [att.explain(), "", f"{'factor':34} {'B/A':>9} {'A':>12} {'B':>12}  unit"]
    for _, f in frame.iterrows():
        va = "" if f["value_a"] is None or pd.isna(f["value_a"]) else format_number(f["value_a"])
        vb = "" if f["value_b"] is None or pd.isna(f["value_b"]) else format_number(f["value_b"])
        lines.append(f"{f['name']:34} {f['ratio']:>9.4g} {va:>12} {vb:>12}  {f['unit']}")
    lines.append(
        f"{'product = energy ratio':34} {att.product:>9.4g} {format_number(att.energy_a):>12} "
        f"{format_number(att.energy_b):>12}  {att.energy_column}"
    )
    return "\n".join(lines)
