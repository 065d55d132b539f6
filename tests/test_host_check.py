"""What ``make setup`` asks of a host before it installs anything (``scripts/host-check``), on fake hosts.

A fake host is a folder of fake commands on ``PATH`` and nothing else: an interpreter that reports its
implementation, version and include folder, ``id`` (root or not), ``apt-get`` (logs what it is asked and, where
told to, "installs" gcc and Python.h), and a compiler only where the host has one.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="GNU make is not installed")


class FakeHost:
    def __init__(
        self,
        tmp_path: Path,
        version: str = "3.11",
        uid: int = 1000,
        compiler: bool = False,
        headers: bool = False,
        system_python: bool = True,
        apt_delivers: bool = True,
    ):
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.system_include = tmp_path / "usr-include"
        prefix = self.system_include if system_python else tmp_path / "pyenv" / "include"
        self.include = prefix / f"python{version}"
        self.include.mkdir(parents=True)
        self.apt_log = tmp_path / "apt.log"
        self.python = self._script("python", f'echo "cpython {version} {self.include}"')
        self._script("id", f"echo {uid}")
        self.gcc_body = "exit 0"
        delivers = (
            (
                f": > {shlex.quote(str(self.include / 'Python.h'))}; "
                f'printf "#!/bin/bash\\nexit 0\\n" > {shlex.quote(str(self.bin / "gcc"))}; '
                f"/bin/chmod +x {shlex.quote(str(self.bin / 'gcc'))}"
            )
            if apt_delivers
            else ":"
        )
        self._script(
            "apt-get", f'echo "$*" >> {shlex.quote(str(self.apt_log))}; if [ "$1" = install ]; then {delivers}; fi'
        )
        if compiler:
            self._script("gcc", self.gcc_body)
        if headers:
            (self.include / "Python.h").touch()

    def _script(self, name: str, body: str) -> Path:
        path = self.bin / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
        return path

    def make(self, target: str, has_gpu: int, dry: bool = False) -> subprocess.CompletedProcess:
        env = {"PATH": str(self.bin), "HOME": str(self.tmp), "HOST_CHECK_SYSTEM_INCLUDE": str(self.system_include)}
        cmd = [
            MAKE,
            "-s",
            *(["-n"] if dry else []),
            target,
            f"HAS_GPU={has_gpu}",
            f"PYTHON_SYS={self.python}",
            f"STAMPS={self.tmp}/stamps",
            f"VENV={self.tmp}/venv",
            f"ENGINES={self.tmp}/engines",
        ]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)

    def apt_calls(self) -> list[str]:
        return self.apt_log.read_text().splitlines() if self.apt_log.exists() else []


def test_setup_checks_the_host_before_it_installs_anything(tmp_path):
    for has_gpu, flag in [(1, ["--gpu"]), (0, [])]:
        run = subprocess.run(
            [
                MAKE,
                "--no-print-directory",  # under `make test` this make is nested: no "Entering directory" lines
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
            check=False,
        )
        assert run.returncode == 0, run.stderr
        lines = [shlex.split(line) for line in run.stdout.splitlines() if line.strip()]
        assert lines[0] == ["scripts/host-check", *flag, "python3.11"]
        assert all(line[0] != "scripts/host-check" for line in lines[1:])


def test_another_python_is_refused_in_one_line_before_anything_is_made(tmp_path):
    host = FakeHost(tmp_path, version="3.12", uid=0, compiler=True, headers=True)
    run = host.make("setup", has_gpu=1)
    assert run.returncode != 0
    refusal = [line for line in run.stderr.splitlines() if line.startswith("host-check:")]
    assert refusal == [
        (
            f"host-check: the locks are resolved for CPython 3.11, and {host.python} is cpython 3.12: "
            "install python3.11 or name it with make PYTHON_SYS=/path/to/python3.11"
        )
    ]
    assert not (tmp_path / "venv").exists() and not (tmp_path / "engines").exists()
    assert host.apt_calls() == []
    assert host.make("host-check", has_gpu=0).returncode != 0  # hosts without a GPU too: every lock is 3.11


def test_a_gpu_host_without_compiler_and_headers_is_told_in_one_line_where_the_user_is_not_root(tmp_path):
    host = FakeHost(tmp_path, uid=1000)
    run = host.make("setup", has_gpu=1)
    assert run.returncode != 0
    refusal = [line for line in run.stderr.splitlines() if line.startswith("host-check:")]
    assert refusal == [
        (
            "host-check: this GPU host lacks what Triton compiles vLLM's kernels with at run time: a C compiler "
            f"(gcc or clang), Python.h of python3.11 ({host.include}); install them (Debian/Ubuntu, as root: "
            "apt-get install gcc libc6-dev python3.11-dev) and run make setup again"
        )
    ]
    assert host.apt_calls() == [] and not (tmp_path / "venv").exists()


def test_as_root_the_gpu_host_gets_compiler_and_headers_from_apt(tmp_path):
    host = FakeHost(tmp_path, uid=0)
    run = host.make("host-check", has_gpu=1)
    assert run.returncode == 0, run.stderr
    calls = host.apt_calls()
    assert calls[0] == "update -qq"
    assert calls[1].split()[:1] == ["install"] and calls[1].split()[-3:] == ["gcc", "libc6-dev", "python3.11-dev"]
    assert (host.include / "Python.h").exists() and (host.bin / "gcc").exists()


def test_what_apt_did_not_deliver_is_still_refused(tmp_path):
    host = FakeHost(tmp_path, uid=0, compiler=True, apt_delivers=False)
    run = host.make("host-check", has_gpu=1)
    assert run.returncode != 0
    assert [c.split()[-1] for c in host.apt_calls()] == ["-qq", "python3.11-dev"]
    refusal = [line for line in run.stderr.splitlines() if not line.startswith("make:")]
    assert len(refusal) == 1 and "Python.h of python3.11" in refusal[0]
    assert "C compiler" not in run.stderr


def test_an_interpreter_without_headers_outside_the_system_is_named_not_patched_with_apt(tmp_path):
    host = FakeHost(tmp_path, uid=0, compiler=True, system_python=False)
    run = host.make("host-check", has_gpu=1)
    assert run.returncode != 0 and host.apt_calls() == []
    assert "that interpreter was installed without its headers" in run.stderr
    assert "apt-get install" not in run.stderr


def test_a_compiler_that_cannot_build_against_python_h_means_the_c_headers_lack(tmp_path):
    host = FakeHost(tmp_path, uid=1000, compiler=True, headers=True)
    (host.bin / "gcc").write_text("#!/bin/bash\nexit 1\n")
    run = host.make("host-check", has_gpu=1)
    assert run.returncode != 0
    assert "the C library's headers" in run.stderr and "apt-get install libc6-dev)" in run.stderr


def test_a_ready_gpu_host_passes_silently_and_the_cpu_host_needs_no_compiler(tmp_path):
    host = FakeHost(tmp_path, uid=1000, compiler=True, headers=True)
    run = host.make("host-check", has_gpu=1)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    (tmp_path / "bare").mkdir()
    bare = FakeHost(tmp_path / "bare", uid=1000)
    run = bare.make("host-check", has_gpu=0)
    assert (run.returncode, run.stderr) == (0, "")


def test_the_cc_variable_names_the_compiler_as_triton_reads_it(tmp_path):
    host = FakeHost(tmp_path, uid=1000, headers=True)
    env = dict(os.environ, PATH=str(host.bin), CC="clang-17", HOST_CHECK_SYSTEM_INCLUDE=str(host.system_include))
    host._script("id", "echo 0")  # root, yet apt cannot make CC name a compiler: named, not installed
    run = subprocess.run(
        [str(ROOT / "scripts" / "host-check"), "--gpu", str(host.python)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode != 0 and "the C compiler CC names (clang-17)" in run.stderr
    host._script("clang-17", "exit 0")
    run = subprocess.run(
        [str(ROOT / "scripts" / "host-check"), "--gpu", str(host.python)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert host.apt_calls() == []
