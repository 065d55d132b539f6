"""Keeps a server from outliving the harness: ``python reaper.py OWNER_PID -- COMMAND...``.

Standard library only (it runs under any interpreter). The backend starts it as the leader of a new
process group; it starts ``COMMAND`` in that group, with ``PR_SET_PDEATHSIG`` = SIGKILL (the server
dies with this process, whatever kills it), and then watches its own parent: when the harness is gone
-- whatever killed it, SIGKILL and the OOM killer included -- or a SIGTERM/SIGINT arrives, it sends
SIGTERM to every other member of the group (the server and the engine processes it forked), SIGKILL
after ``--grace`` seconds, and exits. When the server exits by itself, the rest of the group is
stopped the same way (with a one-second grace) and the reaper exits with the server's status (a signal as that signal), so the
harness sees the server's own exit.
"""  # noqa: E501

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
POLL_S = 0.2
SELF_EXIT_GRACE_S = 1.0


def _die_with_parent(sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the reaper's own watch still applies
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def group_members(pgid: int, exclude: int | None = None) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` (from /proc)."""
    out: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if not name.isdigit() or int(name) == exclude:
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(name))
    return out


def stop_group(grace_s: float, child: subprocess.Popen | None = None) -> None:
    """SIGTERM every other member of this process group, SIGKILL whoever is left after ``grace_s``."""
    me, pgid = os.getpid(), os.getpgrp()
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        members = group_members(pgid, exclude=me)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if child is not None:
                child.poll()  # reap the server so it stops counting as a member
            if not group_members(pgid, exclude=me):
                return
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    """``[--grace SECONDS] OWNER_PID -- COMMAND...`` (see the module docstring); the server's exit status."""
    grace = 10.0
    if argv[:1] == ["--grace"]:
        grace, argv = float(argv[1]), argv[2:]
    owner, sep, command = int(argv[0]), argv[1], argv[2:]
    if sep != "--" or not command:
        print("usage: reaper.py [--grace S] OWNER_PID -- COMMAND...", file=sys.stderr)
        return 2
    stopping = []
    signal.signal(signal.SIGTERM, lambda s, f: stopping.append(s))
    signal.signal(signal.SIGINT, lambda s, f: stopping.append(s))
    if os.getppid() != owner:  # the harness died before we got here
        return 1
    child = subprocess.Popen(command, preexec_fn=_die_with_parent)
    while True:
        code = child.poll()
        if code is not None:
            break
        if stopping or os.getppid() != owner:
            why = "harness gone" if os.getppid() != owner else f"signal {stopping[0]}"
            print(f"# reaper: {why}; stopping the server's process group", file=sys.stderr, flush=True)
            if stopping:  # usually the whole group got the signal: give the server a moment on its own first
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=2.0)
            stop_group(grace, child)
            code = child.wait()
            break
        time.sleep(POLL_S)
    # engine processes the server left behind: the server is gone, so they get a short grace only (the harness
    # reads this process's exit as the server's death and must see it within seconds)
    stop_group(min(grace, SELF_EXIT_GRACE_S), child)
    if code < 0:
        if -code != signal.SIGKILL:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
