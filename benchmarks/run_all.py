"""Run the benchmarks (``make bench``) and print a table of figure, goal and status.

    .venv/bin/python benchmarks/run_all.py [--only NAME ...]

Each benchmark runs in its own process and writes ``benchmarks/results/<name>.json``; this script
reads those files back and prints one row per benchmark. It exits 0 even when a goal is missed
(the status column says ``MISSED``); a benchmark that crashes shows ``ERROR`` with its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402

BENCHMARKS = (  # (name, script): in this order (the heavy, timing-sensitive ones first)
    ("overhead", "overhead.py"),
    ("book_build", "book_build.py"),
    ("analysis_scale", "analysis_scale.py"),
    ("adaptive_stopping", "adaptive_stopping.py"),
    ("prediction", "prediction.py"),
    ("planner_replay", "planner_replay.py"),
    ("loadgen_client", "loadgen_client.py"),
    ("server_start", "server_start.py"),
    ("phase_estimator", "phase_estimator.py"),
)
TITLES = {
    "overhead": "1. harness overhead",
    "adaptive_stopping": "2. adaptive stopping",
    "book_build": "3. book build",
    "analysis_scale": "4. analysis at scale",
    "prediction": "5. prediction",
    "planner_replay": "6. planner replay",
    "loadgen_client": "7. load generator",
    "server_start": "8. vLLM server start",
    "phase_estimator": "9. phase estimator",
}


def run_one(name: str, script: str) -> dict:
    path = _common.RESULTS / f"{name}.json"
    before = path.stat().st_mtime_ns if path.exists() else None
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(HERE / script)], cwd=_common.ROOT, capture_output=True, text=True, env=dict(os.environ)
    )
    seconds = time.perf_counter() - start
    sys.stdout.write(proc.stdout)
    fresh = path.exists() and path.stat().st_mtime_ns != before
    if proc.returncode != 0 or not fresh:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        return {
            "benchmark": name,
            "status": "ERROR",
            "figure": f"exit {proc.returncode}: {last}",
            "goal": "-",
            "seconds": seconds,
        }
    result = json.loads(path.read_text())
    result["seconds"] = seconds
    return result


def table(rows: list[dict]) -> str:
    lines = [f"{'benchmark':22s} {'status':7s} figure / goal", "-" * 100]
    for r in rows:
        title = TITLES.get(r["benchmark"], r["benchmark"])
        figure = textwrap.wrap(r.get("figure", ""), 70) or [""]
        goal = textwrap.wrap(f"goal: {r.get('goal', '-')}", 70)
        lines.append(f"{title:22s} {r['status']:7s} {figure[0]}")
        for line in figure[1:] + goal:
            lines.append(f"{'':22s} {'':7s} {line}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=[n for n, _ in BENCHMARKS], help="run only these")
    args = parser.parse_args(argv)
    _common.ensure_reference_env()
    rows = []
    for name, script in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        print(f"== {name} ({script})", flush=True)
        rows.append(run_one(name, script))
    print()
    print(table(sorted(rows, key=lambda r: TITLES.get(r["benchmark"], r["benchmark"]))))
    missed = [TITLES.get(r["benchmark"], r["benchmark"]) for r in rows if r["status"] != "PASS"]
    print()
    print("all goals met" if not missed else f"MISSED or ERROR: {', '.join(missed)} (see benchmarks/results/*.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
