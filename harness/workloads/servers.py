"""Server processes that never outlive the harness, and leftovers of an earlier sweep stopped at the next start.

    argv = servers.guarded(argv)                       # run under harness/workloads/reaper.py
    token, env = servers.tag(env)                      # every process of this server carries the token
    rec = servers.write_record(token, pid, argv)       # <cache>/.servers/<token>.json
    ...
    servers.remove_record(rec)                         # after a clean stop
    servers.stop_leftovers()                           # at the next start: servers whose harness is gone

Two layers: :mod:`harness.workloads.reaper` (the server's parent) stops the server's process group as
soon as the harness is gone, however it died; and each started server is recorded with a token set in
its environment (``HARNESS_SERVER_TOKEN``), so a server that still escaped (its reaper killed too) is
found by that token in ``/proc/<pid>/environ`` -- never by a name or a reused pid -- and stopped when
the next server starts, provided the harness that started it is gone (a live sweep's server is left
alone). Records live in the model cache's ``.servers`` folder (one per user and cache, shared by every
results folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

TOKEN_ENV = "HARNESS_SERVER_TOKEN"  # noqa: S105  # the variable that carries the token, not a token
REAPER = Path(__file__).resolve().parent / "reaper.py"


def records_dir() -> Path:
    """Where the started servers' records are kept (the model cache's ``.servers`` folder)."""
    from harness.workloads.archs import cache_root

    return cache_root() / ".servers"


def guarded(argv: list[str], grace_s: float = 10.0) -> list[str]:
    """``argv`` run by the reaper (this interpreter, isolated and without site-packages: it needs the standard
    library only, and starts faster), owned by this process."""
    return [sys.executable, "-I", "-S", str(REAPER), "--grace", f"{grace_s:g}", str(os.getpid()), "--", *argv]


def tag(env: dict) -> tuple[str, dict]:
    """A fresh token and ``env`` with it set (``HARNESS_SERVER_TOKEN``): every process of the server carries it."""
    token = uuid.uuid4().hex
    return token, dict(env, **{TOKEN_ENV: token})


def start_ticks(pid: int) -> int | None:
    """A process's start time (clock ticks since boot): with the pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def write_record(token: str, pid: int, argv: list[str]) -> Path | None:
    """Record a started server (its token, its pid, the harness that owns it); the record's path, or None where
    the cache cannot be written."""
    folder = records_dir()
    record = {
        "token": token,
        "pid": pid,
        "owner_pid": os.getpid(),
        "owner_start_ticks": start_ticks(os.getpid()),
        "argv": [str(a) for a in argv],
        "started_at": time.time(),
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{token}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
        return path
    except OSError:  # an unwritable cache must not stop the run; the reaper still guards the server
        return None


def remove_record(path: Path | None) -> None:
    """Remove a server's record (after a clean stop); a missing one is fine."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def tagged_processes(token: str) -> list[int]:
    """Live processes whose environment holds ``HARNESS_SERVER_TOKEN=token``."""
    needle = f"{TOKEN_ENV}={token}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                environ = fh.read()
            with open(f"/proc/{name}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            out.append(int(name))
    return out


def _owner_alive(record: dict) -> bool:
    pid, ticks = record.get("owner_pid"), record.get("owner_start_ticks")
    return isinstance(pid, int) and start_ticks(pid) is not None and start_ticks(pid) == ticks


def stop_leftovers(grace_s: float = 10.0) -> list[str]:
    """Stop servers recorded by a harness that is gone; returns one line per server stopped."""
    folder = records_dir()
    if not folder.is_dir():
        return []
    stopped = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            token = str(record["token"])
        except (OSError, ValueError, KeyError):
            remove_record(path)
            continue
        if _owner_alive(record):
            continue  # another sweep, still running
        pids = tagged_processes(token)
        if pids:
            for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
                for pid in tagged_processes(token):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + wait
                while tagged_processes(token) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not tagged_processes(token):
                    break
            stopped.append(
                f"stopped a server left by an earlier sweep (pids {pids}, harness pid {record.get('owner_pid')} gone)"
            )
        remove_record(path)
    return stopped
