"""``python -m harness book build|notebook`` (also ``python -m harness.report.book``): build the study's book.

``build`` executes the notebooks whose fingerprint changed, then runs ``jupyter-book build -W``; ``notebook``
executes one notebook with some parameters overridden (``key=value``, values read as YAML). The work is
:mod:`harness.report.book`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.report import book


def _cmd_build(args: argparse.Namespace) -> int:
    book.build(Path(args.root).resolve(), force=args.force, jobs=args.jobs, html=not args.no_html)
    return 0


def _cmd_notebook(args: argparse.Namespace) -> int:
    book.run_one(Path(args.root).resolve(), args.name, book.parse_overrides(args.params), html=not args.no_html)
    return 0


def _add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="execute changed notebooks, then jupyter-book build -W")
    p.add_argument("--force", action="store_true", help="execute every notebook, even unchanged ones")
    p.add_argument("--jobs", type=int, default=None, help="notebooks executed at once (default: CPUs; env BOOK_JOBS)")
    p.add_argument("--no-html", action="store_true", help="execute notebooks only")
    p.add_argument("--root", default=".", help="repository root (default: current folder)")
    p.set_defaults(func=_cmd_build)
    p = sub.add_parser("notebook", help="execute one notebook with parameters overridden (key=value ...)")
    p.add_argument("name")
    p.add_argument("params", nargs="*", metavar="key=value")
    p.add_argument("--no-html", action="store_true", help="do not refresh the HTML")
    p.add_argument("--root", default=".", help="repository root (default: current folder)")
    p.set_defaults(func=_cmd_notebook)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``book build`` and ``book notebook`` to ``python -m harness``."""
    parser = subparsers.add_parser("book", help="build the book (papermill + jupyter-book)")
    sub = parser.add_subparsers(dest="book_command", metavar="COMMAND")
    sub.required = True
    _add_commands(sub)


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.report.book``: the same verbs alone; errors are one line (exit 2)."""
    parser = argparse.ArgumentParser(prog="python -m harness.report.book", description=book.__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_commands(sub)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
