"""``python -m harness``: a thin command line over the harness modules.

Each command lives in the module that owns its concern; that module exposes
``register(subparsers)`` and adds its own sub-commands with
``parser.set_defaults(func=handler)``. A handler takes the parsed arguments
and returns an exit code. Errors derived from :class:`HarnessError` (and
ordinary OS errors such as a full disk) are printed as one line naming the
cause, with no traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import HarnessError

# Modules that contribute commands, in the order they appear in --help.
COMMAND_MODULES = (
    "harness.cli.measure",  # measure
    "harness.cli.runs",  # list, show
    "harness.cli.env",  # env
    "harness.cli.findings",  # findings, diagnose
    "harness.cli.slurm",  # submit, status
    "harness.cli.reference",  # reference
    "harness.cli.predict",  # predict
    "harness.cli.book",  # book build, book notebook
)


class UsageError(HarnessError):
    """A command line that argparse refuses (unknown command or option, missing or malformed argument)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``error: ...``, exit 2) like every other error."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m harness",
        description="Measure and diagnose the time and energy of generative-AI inference.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that module is not written yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except HarnessError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return 0
    except OSError as exc:
        if debug:
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
