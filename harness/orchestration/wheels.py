"""Carried wheels for the GPU check: what it imports beyond a bare host's torch, transformers and nvidia-ml-py.

``scripts/gpu-check --collect-wheels DIR`` (on a host with PyPI) resolves diffusers, Zeus and everything
they import for the check machine's Python, with its own transformers kept, and downloads them
(:func:`collect_wheels`); ``--wheels DIR`` installs them with ``pip --no-index --no-deps`` into a temporary
folder (inside the check's scratch folder), never the results folder (:func:`install_wheels`), and
:func:`check_carried` imports each and checks that the carried versions are the ones Python sees, before any
run -- one line per problem.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from harness.errors import HarnessError


class CheckMachine(TypedDict):
    """The GPU check machine: its Python (``"3.12"``) and the requirements it keeps of its own."""

    python_version: str
    keeps: tuple[str, ...]


# The check machine (one GPU): Python 3.12, torch 2.11, transformers 5.17; its huggingface_hub unknown and
# maybe no requests. diffusers 0.42.1 needs huggingface_hub >= 1.32 and imports requests; zeus.monitor imports
# scikit-learn and httpx: ``--collect-wheels`` resolves all of it for that machine, ``--wheels`` checks it.
CHECK_MACHINE: CheckMachine = {"python_version": "3.12", "keeps": ("transformers==5.17.0",)}
CARRY_FROM_LOCK = ("diffusers", "zeus", "nvidia-ml-py")  # pinned as in requirements/lock-gpu.txt
# what the check imports from the carried wheels, and what fails without it
CARRIED_IMPORTS = {
    "diffusers": "the image runs",
    "huggingface_hub": "diffusers",
    "requests": "diffusers",
    "zeus.monitor": "energy through Zeus (else NVML's counter, read directly)",
    "sklearn": "zeus.monitor",
    "httpx": "zeus.monitor",
}
NOT_CARRIED = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-(?!ml-py).*|cuda-.*)$")  # the host's own


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def carried_requirements(lock: Path, keeps: tuple[str, ...] = CHECK_MACHINE["keeps"]) -> list[str]:
    """The check's own packages at the harness GPU lock's versions, beside what the machine keeps."""
    pins = {}
    for line in Path(lock).read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[_canon(name)] = version
    return [f"{name}=={pins[name]}" for name in CARRY_FROM_LOCK] + list(keeps)


def collect_wheels(
    dest: Path,
    python_version: str = CHECK_MACHINE["python_version"],
    keeps: tuple[str, ...] = CHECK_MACHINE["keeps"],
    lock: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """On a host with PyPI: resolve the check's packages for the check machine (linux x86_64, its Python,
    its transformers kept) and download every wheel it lacks into ``dest`` with a manifest."""
    import tempfile

    lock = lock or Path(__file__).resolve().parents[2] / "requirements" / "lock-gpu.txt"
    reqs = carried_requirements(lock, keeps)
    kept = {_canon(re.split(r"[<>=!~ ]", k, maxsplit=1)[0]) for k in keeps}
    abi = "cp" + python_version.replace(".", "")
    plat = ["--python-version", python_version, "--implementation", "cp", "--abi", abi, "--only-binary=:all:"]
    for tag in [f"manylinux_2_{m}_x86_64" for m in range(28, 4, -1)] + ["manylinux2014_x86_64", "manylinux1_x86_64"]:
        plat += ["--platform", tag]
    with tempfile.TemporaryDirectory(prefix="gpu-check-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        # --target: pip before 23.1 refuses platform options without it, even for a dry run (nothing is written)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--target",
                str(Path(tmp) / "target"),
                "--report",
                str(report),
                *plat,
                *reqs,
            ],
            check=True,
        )
        resolved = json.loads(report.read_text())["install"]
    carry = sorted(
        f"{i['metadata']['name']}=={i['metadata']['version']}"
        for i in resolved
        if _canon(i["metadata"]["name"]) not in kept and not NOT_CARRIED.match(_canon(i["metadata"]["name"]))
    )
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest), *plat, *carry], check=True
    )
    manifest = {"python_version": python_version, "machine_keeps": list(keeps), "requirements": reqs, "wheels": carry}
    (dest / "carried.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"collected {len(carry)} wheels for CPython {python_version} into {dest}")
    return manifest


def install_wheels(wheels: Path, out: Path) -> tuple[list[str], Path | None]:
    """Install carried wheels (no index, no dependencies) into a folder outside the results and put it first
    on sys.path. Returns the wheels' names and the folder."""
    import atexit
    import shutil
    import tempfile

    wheels, out = Path(wheels).resolve(), Path(out).resolve()
    if wheels == out or out in wheels.parents:
        raise HarnessError(f"carried wheels ({wheels}) must not lie inside the results folder ({out})")
    found = sorted(str(p) for p in wheels.glob("*.whl"))
    if not found:
        return [], None
    site = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
    atexit.register(shutil.rmtree, site, True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--target",
            str(site),
            *found,
        ],
        check=True,
    )
    sys.path.insert(0, str(site))
    import importlib

    importlib.invalidate_caches()
    return [Path(p).name for p in found], site


def check_carried(site: Path | None, wheels: list[str]) -> tuple[dict, list[str]]:
    """Import what the check needs and compare each carried distribution's version with the one Python
    sees. Returns ``(facts, problems)``; a problem is one line naming the package and its cause."""
    import importlib
    from importlib import metadata

    imports: dict[str, str] = {}
    versions: dict[str, str | None] = {}
    facts = {"site": str(site) if site else None, "imports": imports, "versions": versions}
    problems: list[str] = []
    for module, needed_by in CARRIED_IMPORTS.items():
        try:
            importlib.import_module(module)
            imports[module] = "ok"
        except Exception as exc:  # noqa: BLE001 -- any failure means: not usable here
            imports[module] = f"{type(exc).__name__}: {exc}"
            problems.append(f"import {module} failed ({type(exc).__name__}: {exc}); {needed_by} need(s) it")
    for wheel in wheels:
        dist, version = wheel.split("-")[:2]
        try:
            seen = metadata.version(dist)
        except metadata.PackageNotFoundError:
            seen = None
        versions[_canon(dist)] = seen
        if seen != version:
            problems.append(f"carried {dist} {version} is shadowed: Python sees {seen}")
    return facts, problems
