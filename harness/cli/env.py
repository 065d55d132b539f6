"""``python -m harness env``: this host's environment capture (:func:`harness.measuring.envinfo.capture`)."""

from __future__ import annotations

import argparse
import json

from harness.measuring import envinfo


def format_capture(info: dict) -> str:
    """The capture as aligned ``key  value`` lines (nested mappings as ``k=v`` lists)."""
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
            lines.append(f"{key:20s} {inner}")
        elif isinstance(value, list):
            lines.append(f"{key:20s} {', '.join(map(str, value)) or '(none)'}")
        else:
            lines.append(f"{key:20s} {value}")
    return "\n".join(lines)


def _cmd_env(args: argparse.Namespace) -> int:
    """Print the capture as a table, or as JSON with ``--json``."""
    info = envinfo.capture()
    print(json.dumps(info, indent=2) if args.json else format_capture(info))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``env`` to the command line."""
    parser = sub.add_parser(
        "env",
        help="print the environment capture stored with every run",
        description="Print this host's environment capture: GPUs, driver, CUDA, NVML, "
        "package versions, git commit, host, CPU, Slurm variables.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_cmd_env)
