"""A real, single-node Slurm cluster in a temporary folder, for the job-array tests.

It runs Debian's ``munged``, ``slurmctld`` and ``slurmd`` in the foreground as
child processes of the test (so each has a PID we own), with every file they
write -- munge key and socket, ``slurm.conf``, ``gres.conf``, state, spool,
logs, the job-completion log -- under one folder. ``SLURM_CONF`` points the
client commands (``sbatch``, ``squeue``, ``scontrol``) at it.

The node is ``localhost`` with 2 CPUs and two pretend GPUs: ``gres.conf`` names
two character devices (links to ``/dev/null`` and ``/dev/zero``), which is all
the scheduler checks; nothing opens them, but GPU requests are scheduled,
counted and exported (``CUDA_VISIBLE_DEVICES``) as on a real GPU node.

Use it as a context manager; ``stop()`` cancels what is queued, stops the
daemons by PID and ends any job process they left behind, and is safe to call
twice::

    with LocalSlurm(tmp_path) as cluster:
        subprocess.run(["sbatch", ...], env=cluster.env)
        cluster.wait_for_empty_queue(timeout_s=60)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")


def missing_binaries() -> list[str]:
    """Slurm and munge programs that are not installed (``make system-deps`` installs them)."""
    found = []
    for name in DAEMONS + CLIENTS:
        if shutil.which(name) is None and not Path("/usr/sbin", name).exists():
            found.append(name)
    return found


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmStartError(RuntimeError):
    pass


class LocalSlurm:
    """One munged + slurmctld + slurmd under ``root``; see the module docstring."""

    def __init__(self, root: Path, cpus: int = 2, gpus: int = 2, partition: str = "debug"):
        self.root = Path(root).resolve()
        self.cpus = cpus
        self.gpus = gpus
        self.partition = partition
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.jobcomp_log = self.root / "jobcomp.txt"
        self.procs: dict[str, subprocess.Popen] = {}
        self._log_files: list = []
        self.user = _user_name()

    # -- configuration ---------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """The caller's environment with ``SLURM_CONF`` pointing at this cluster."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def _write_config(self) -> None:
        r = self.root
        # munged wants the socket's folders traversable by everyone and the key private.
        r.mkdir(parents=True, exist_ok=True)
        r.chmod(0o755)
        for sub in ("munge", "state", "spool", "logs", "dev"):
            (r / sub).mkdir(exist_ok=True)
        (r / "munge").chmod(0o755)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        # Pretend GPUs: Slurm only checks that each File= is a character or block device.
        devices = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random")[: self.gpus]
        for i, target in enumerate(devices):
            link = r / "dev" / f"gpu{i}"
            if not link.exists():
                link.symlink_to(target)
        ctld_port, slurmd_port = _free_port(), _free_port()
        lines = {
            "ClusterName": "harnesstest",
            "SlurmctldHost": "localhost",
            "SlurmUser": self.user,
            "SlurmdUser": self.user,
            "SlurmctldPort": ctld_port,
            "SlurmdPort": slurmd_port,
            "AuthType": "auth/munge",
            "AuthInfo": f"socket={self.munge_socket}",
            "CredType": "cred/munge",
            "StateSaveLocation": r / "state",
            "SlurmdSpoolDir": r / "spool",
            "SlurmctldPidFile": r / "slurmctld.pid",
            "SlurmdPidFile": r / "slurmd.pid",
            "SlurmctldLogFile": r / "logs" / "slurmctld.log",
            "SlurmdLogFile": r / "logs" / "slurmd.log",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/filetxt",
            "JobCompLoc": self.jobcomp_log,
            "SchedulerParameters": "batch_sched_delay=0",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "SlurmdParameters": "config_overrides",  # a 1-CPU runner still gets a usable node
            "GresTypes": "gpu",
            "MpiDefault": "none",
            "MailProg": "/bin/true",
            "ReturnToService": 2,
            "MinJobAge": 300,
            "NodeName": (f"localhost CPUs={self.cpus} Gres=gpu:{self.gpus} State=UNKNOWN"),
            "PartitionName": f"{self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        }
        text = "# Written by tests/slurm_cluster.py for one test session.\n"
        text += "".join(f"{k}={v}\n" for k, v in lines.items())
        self.conf.write_text(text)
        last = self.gpus - 1
        (r / "gres.conf").write_text(
            f"NodeName=localhost Name=gpu File={r / 'dev'}/gpu[0-{last}]\n"
            if self.gpus > 1
            else f"NodeName=localhost Name=gpu File={r / 'dev'}/gpu0\n"
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> LocalSlurm:
        missing = missing_binaries()
        if missing:
            raise SlurmStartError(f"not installed: {', '.join(missing)} (run `make system-deps`)")
        self._write_config()
        r = self.root
        try:
            # --force: run even if a folder above the socket is private (a test-only munged).
            self._spawn(
                "munged",
                [
                    _binary("munged"),
                    "--foreground",
                    "--force",
                    f"--key-file={r / 'munge' / 'munge.key'}",
                    f"--socket={self.munge_socket}",
                    f"--pid-file={r / 'munge' / 'munged.pid'}",
                    f"--log-file={r / 'logs' / 'munged.log'}",
                    f"--seed-file={r / 'munge' / 'munged.seed'}",
                ],
            )
            self._wait(lambda: self.munge_socket.exists(), timeout_s, "munged socket")
            # -i: ignore state from an earlier run; -D: foreground, so the PID is ours.
            self._spawn("slurmctld", [_binary("slurmctld"), "-D", "-i"])
            self._wait(self._controller_up, timeout_s, "slurmctld to answer")
            self._spawn("slurmd", [_binary("slurmd"), "-D", "-N", "localhost"])
            self._wait(self._node_idle, timeout_s, "node localhost to become idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.root / "logs" / f"{name}.stdout", "wb")  # noqa: SIM115  # closed in stop() (_log_files)
        self._log_files.append(out)
        self.procs[name] = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.root,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _wait(self, ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmStartError(
                        f"{name} exited with code {proc.returncode} while waiting for {what}:\n" + self.logs_tail()
                    )
            if ready():
                return
            time.sleep(0.1)
        raise SlurmStartError(f"timed out after {timeout_s:.0f} s waiting for {what}:\n" + self.logs_tail())

    def _run(self, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=20, check=check)

    def _controller_up(self) -> bool:
        return self._run("scontrol", "ping").stdout.count("UP") > 0

    def _node_idle(self) -> bool:
        res = self._run("sinfo", "-h", "-N", "-o", "%T")
        return res.returncode == 0 and res.stdout.strip() == "idle"

    def stop(self) -> None:
        """Cancel every job, stop the daemons by PID, end leftover job processes. Idempotent."""
        if not self.procs:
            return
        ctld = self.procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None and "slurmd" in self.procs:
            try:
                self._run("scancel", "--user", self.user)
                self.wait_for_empty_queue(timeout_s=10, raise_on_timeout=False)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._end_leftover_job_processes()
        self.procs.clear()
        for f in self._log_files:
            f.close()
        self._log_files.clear()

    def _end_leftover_job_processes(self) -> None:
        """Job steps (slurmstepd and its children) inherit our SLURM_CONF; end any still alive."""
        marker = f"SLURM_CONF={self.conf}".encode()
        mine = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == mine:
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers for tests -----------------------------------------------------------------------
    def queue(self) -> list[str]:
        """``squeue`` lines ``<array job>_<task> <state>``, one per job or array task."""
        res = self._run("squeue", "-h", "--array", "-o", "%i %T", check=True)
        return [line for line in res.stdout.splitlines() if line.strip()]

    def wait_for_empty_queue(self, timeout_s: float = 60, raise_on_timeout: bool = True) -> float:
        """Poll ``squeue`` (not ``sbatch --wait``, which polls coarsely) until nothing is queued."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if not self.queue():
                return time.monotonic() - t0
            time.sleep(0.2)
        if raise_on_timeout:
            raise TimeoutError(f"jobs still queued after {timeout_s} s: {self.queue()}\n{self.logs_tail()}")
        return time.monotonic() - t0

    def show_job(self, job_id: str | int) -> list[dict[str, str]]:
        """``scontrol show job`` as one dict per job record (an array gives one per task)."""
        res = self._run("scontrol", "--oneliner", "show", "job", str(job_id), check=True)
        records = []
        for line in res.stdout.splitlines():
            if not line.strip():
                continue
            fields = {}
            for token in line.split():
                key, sep, value = token.partition("=")
                if sep:
                    fields[key] = value
            records.append(fields)
        return records

    def completed_jobs(self) -> list[dict[str, str]]:
        """Records of the job-completion log (``JobCompType=jobcomp/filetxt``)."""
        if not self.jobcomp_log.exists():
            return []
        out = []
        for line in self.jobcomp_log.read_text().splitlines():
            out.append(dict(tok.partition("=")[::2] for tok in line.split() if "=" in tok))
        return out

    def logs_tail(self, lines: int = 15) -> str:
        parts = []
        for path in sorted((self.root / "logs").glob("*")):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if text:
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
