"""``python -m harness.report.book build|notebook``: what ``make book`` and ``make notebook`` run.

The verbs are the command line's (:mod:`harness.cli.book`, also ``python -m harness book``). The command line
sits above the report layer, so this entry point finds it by name when it runs, as ``python -m harness`` finds
its command modules; nothing in the report layer imports it.
"""

import importlib
import sys

if __name__ == "__main__":
    sys.exit(importlib.import_module("harness.cli.book").main())
