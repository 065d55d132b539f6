"""Benchmark 3: the book build, cold and after one notebook changes.

    .venv/bin/python benchmarks/book_build.py [--notebook NAME] [--load "what else ran"]

The book's sources (``_config.yml``, ``_toc.yml``, ``book/`` without ``book/_generated``,
``notebooks/``, ``requirements/lock-cpu.txt``) are copied to a temporary folder, so the
repository is never touched, and ``python -m harness.report.book build --root TMP`` (what ``make book``
runs) is timed there, in a fresh process each time, on the reference data:

1. cold: no executed notebooks, no stamps, no ``_build`` (papermill runs every notebook, then
   ``jupyter-book build``);
2. unchanged: the same again (every notebook cached; Sphinx has nothing to redo);
3. one notebook changed: a markdown cell is appended to ``notebooks/NAME.ipynb`` in the copy;
   only that notebook may be executed again.

Caches outside the copy stay as they are (the charts' Vega bundle in the user cache, Python's
bytecode), as on a developer's machine with the venv present. Other processes share the CPUs;
the load average is recorded before and after each build. Each build also records its CPU time
(user + system of the whole process tree: the builder, its kernels, jupyter-book) and each notebook's
kernel CPU (from the builder's log), and estimates the wall time on an idle host of ``cpus`` cores:
the notebooks' kernel CPU spread over the cores, plus the rest (the builder's own work, Sphinx) taken
as serial -- an estimate, printed as one, beside the measured wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "book_build"
GOAL_FULL_S, GOAL_ONE_S = 60.0, 15.0
SOURCES = ("_config.yml", "_toc.yml", "book", "notebooks", "requirements/lock-cpu.txt")


def copy_sources(dst: Path) -> None:
    for rel in SOURCES:
        src = _common.ROOT / rel
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(
                src, target, ignore=shutil.ignore_patterns("_generated", ".ipynb_checkpoints", "__pycache__")
            )
        else:
            shutil.copy2(src, target)


def build(root: Path) -> dict:
    load = _common.loadavg()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cpus = _common.host_facts([])["cpus"] or 1
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.report.book", "build", "--root", str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the build and every process it waited for
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = proc.stdout + proc.stderr
    executed = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s+(\S+): executed in ([\d.]+) s", out, re.M)}
    kernel_cpu = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^\s+(\S+): executed in [\d.]+ s \(kernel CPU ([\d.]+) s\)", out, re.M)
    }
    kernels = sum(kernel_cpu.values())
    return {
        "wall_s": seconds,
        "cpu_s": round(cpu_s, 2),
        "kernel_cpu_s": kernel_cpu,
        "idle_wall_estimate_s": round(kernels / cpus + max(0.0, cpu_s - kernels), 1),
        "cpus": cpus,
        "returncode": proc.returncode,
        "executed": executed,
        "loadavg_before": load,
        "loadavg_after": _common.loadavg(),
        "log_tail": out.strip().splitlines()[-6:],
    }


def touch_notebook(path: Path) -> None:
    nb = json.loads(path.read_text())
    cell = {"cell_type": "markdown", "metadata": {}, "source": ["Rebuilt by the book-build benchmark."]}
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
        cell["id"] = "book-build-benchmark"
    nb["cells"].append(cell)
    path.write_text(json.dumps(nb, indent=1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default="llm-chat", help="the notebook to change (default llm-chat)")
    parser.add_argument("--load", default="", help="what else ran on the host, in words (recorded with the result)")
    args = parser.parse_args(argv)
    _common.ensure_reference_env()
    load = _common.loadavg()
    watch = _common.Stopwatch()
    with tempfile.TemporaryDirectory(prefix="bench-book-") as tmp:
        root = Path(tmp)
        copy_sources(root)
        registered = re.findall(r"^  ([a-z0-9][a-z0-9_-]*):\s*$", (root / "book" / "notebooks.yml").read_text(), re.M)
        cold = build(root)
        unchanged = build(root) if cold["returncode"] == 0 else None
        changed = None
        if cold["returncode"] == 0:
            touch_notebook(root / "notebooks" / f"{args.notebook}.ipynb")
            changed = build(root)
    failed = [
        name
        for name, phase in (("cold", cold), ("unchanged", unchanged), ("one notebook changed", changed))
        if phase is None or phase["returncode"] != 0
    ]
    if failed:
        status, figure = "ERROR", f"book build failed ({', '.join(failed)}): {' | '.join(cold['log_tail'][-2:])}"
    else:
        only_one = set(changed["executed"]) == {args.notebook}
        ok = cold["wall_s"] <= GOAL_FULL_S and changed["wall_s"] <= GOAL_ONE_S and only_one
        status = _common.status(ok)
        figure = (
            f"cold {cold['wall_s']:.1f} s ({len(cold['executed'])} notebooks; CPU {cold['cpu_s']:.1f} s, "
            f"idle {cold['cpus']}-core estimate {cold['idle_wall_estimate_s']:.0f} s; load "
            f"{cold['loadavg_before'][0] if cold['loadavg_before'] else 'n/a'}), one notebook changed "
            f"{changed['wall_s']:.1f} s ({', '.join(changed['executed']) or 'none'} re-executed), "
            f"unchanged {unchanged['wall_s']:.1f} s"
        )
    payload = {
        "benchmark": NAME,
        "figure": figure,
        "status": status,
        "goal": f"full build <= {GOAL_FULL_S:g} s and, after one notebook changes, <= {GOAL_ONE_S:g} s with only "
        "that notebook re-executed (2 cores, venv present)",
        "command": ".venv/bin/python benchmarks/book_build.py"
        + (f" --notebook {args.notebook}" if args.notebook != "llm-chat" else ""),
        "notebooks_registered": registered,
        "changed_notebook": args.notebook,
        "book_jobs": os.environ.get("BOOK_JOBS") or "default (one per CPU)",
        "cold": cold,
        "unchanged": unchanged,
        "one_notebook_changed": changed,
        "benchmark_wall_s": watch(),
        "host": {**_common.host_facts(load), **({"load": args.load} if args.load else {})},
    }
    path = _common.write_result(NAME, payload)
    print(f"{NAME}: {figure} -> {status}  ({path.relative_to(_common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
