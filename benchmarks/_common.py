"""Shared helpers of the benchmark scripts: where results go, host facts, robust statistics, fake NVML.

Every benchmark writes ``benchmarks/results/<name>.json`` with the same top-level keys:
``benchmark``, ``figure`` (one line), ``goal``, ``status`` (``PASS`` | ``MISSED`` | ``ERROR``),
``command`` (what reproduces it), ``host`` (CPUs, load average before and after, versions, git
commit) and the measurements themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
REFERENCE_DIR = "/work/shared/reference/mlenergy-leaderboard-v3/public/data"


def ensure_reference_env() -> None:
    """Point the reference loader at the pinned data unless the caller already did."""
    os.environ.setdefault("HARNESS_REFERENCE_DIR", REFERENCE_DIR)


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def host_facts(load_before: list[float]) -> dict:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    return {
        "cpus": cpus,
        "loadavg_1_5_15_before": load_before,
        "loadavg_1_5_15_after": loadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "note": "other processes share these CPUs; the load average says how busy the host was",
    }


def spread(values: list[float]) -> dict:
    """Median and spread of repeated measurements."""
    values = sorted(values)
    n = len(values)
    if not n:
        return {"n": 0}

    def q(p: float) -> float:
        pos = (n - 1) * p
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)

    return {
        "n": n,
        "median": statistics.median(values),
        "q25": q(0.25),
        "q75": q(0.75),
        "min": values[0],
        "max": values[-1],
        "mean": statistics.fmean(values),
        "stdev": statistics.stdev(values) if n > 1 else 0.0,
    }


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(payload, indent=2, default=_default) + "\n")
    tmp.replace(path)
    return path


def _default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def status(ok: bool) -> str:
    return "PASS" if ok else "MISSED"


@contextlib.contextmanager
def fake_nvml(gpus):
    """Install the tests' fake NVML (tests/conftest.py: FakeGPU, FakeNVML) outside pytest; undone after."""
    import pytest

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import FakeNVML, reset_device_caches

    mp = pytest.MonkeyPatch()
    try:
        FakeNVML(mp, gpus)
        yield
    finally:
        mp.undo()
        reset_device_caches()


def fake_gpu_class():
    """tests/conftest.py's FakeGPU (a GPU replaying a piecewise-constant power trace)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import FakeGPU

    return FakeGPU


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
