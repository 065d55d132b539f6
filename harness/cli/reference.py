"""``python -m harness reference``: check and summarise the pinned reference data."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reference`` command to the command line's sub-commands."""
    p = sub.add_parser("reference", help="verify the pinned reference data and count its configurations")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from harness.published import reference

    checked = reference.verify_all()
    table = reference.all_table()
    print(f"{checked} files verified in {reference.data_dir()} ({reference.SOURCE})")
    counts = table.groupby(["task", "gpu_model"]).size().unstack(fill_value=0)
    print(counts.to_string())
    print(f"total configurations: {len(table)}")
    return 0
