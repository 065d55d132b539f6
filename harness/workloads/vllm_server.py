"""The vLLM server process: its port, its private folders, its start under the reaper, its health, its stop.

The server runs bound to 127.0.0.1 in its own process group, led by :mod:`harness.workloads.reaper`, which
stops the group as soon as the harness is gone (SIGKILL included); a server that escaped even that is found
by its token and stopped at the next start (:mod:`harness.workloads.servers`). Each server gets fresh
private folders (``TMPDIR``, ``VLLM_RPC_BASE_PATH``, ``VLLM_CACHE_ROOT``; :func:`make_scratch`), removed
after it stops; only what it compiled is kept, per engine and model (:func:`compile_cache`). :func:`wait_ready` waits for ``/health`` and checks that ``/v1/models`` lists this run's
unique served-model name, so a stale server on the same port is never measured. :func:`stop` sends SIGTERM
to the process group, SIGKILL after :data:`STOP_GRACE_S` seconds, and waits until no process of the group
is left.
"""  # noqa: E501

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.workloads import servers
from harness.workloads.base import WorkloadError
from harness.workloads.reaper import group_members
from harness.workloads.vllm_logs import evidence, tail

STOP_GRACE_S = 10.0
DEATH_GRACE_S = 10.0  # how long a server whose streams all failed may take to exit before we call it alive

_LIVE_GROUPS: set[int] = set()


def _kill_live_groups() -> None:  # last resort at interpreter exit: no orphan servers
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


atexit.register(_kill_live_groups)


# --- the port ------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_busy(port: int) -> bool:
    """True where ``port`` on 127.0.0.1 cannot be bound (something holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def choose_port(port: int | None) -> int:
    """The server's port: ``port`` (the option) unless it is busy (a ``port-busy`` failure), else a free one."""
    if port is None:
        return free_port()
    if port_is_busy(int(port)):
        raise WorkloadError(f"port {port} on 127.0.0.1 is already in use; refusing to start", cause="port-busy")
    return int(port)


# --- private folders -----------------------------------------------------------------------------------


# vLLM inspects a model class (its interface flags) in a child interpreter that imports torch and vLLM
# again (``python -m vllm.model_executor.models.registry``), unless ``$VLLM_CACHE_ROOT/modelinfos`` holds
# the answer for that class, keyed by a hash of the class's source file. Each server gets a fresh cache
# root (nothing compiled or cached leaks between runs); only these inspection results are carried over,
# so every start after a class's first skips that child (20-35 s of a 2-core host's CPU).
def modelinfo_cache() -> Path:
    """Where the model-class inspection results are kept between servers (beside the model folders)."""
    from harness.workloads import archs

    return archs.cache_root().parent / "vllm-modelinfos"


def _copy_json(src: Path, dst: Path) -> int:
    """Copy ``src/*.json`` into ``dst`` (each file atomically); returns how many were copied."""
    if not src.is_dir():
        return 0
    copied = 0
    for path in sorted(src.glob("*.json")):
        try:
            dst.mkdir(parents=True, exist_ok=True)
            part = dst / f".{path.name}.{os.getpid()}.part"
            shutil.copyfile(path, part)
            os.replace(part, dst / path.name)
            copied += 1
        except OSError:
            continue  # a cache: a missing entry only costs vLLM's own inspection
    return copied


def make_scratch() -> tuple[Path, int]:
    """A fresh private folder for one server, its cache seeded with the kept model-class inspection results:
    ``(folder, number of results seeded)``."""
    tmp = Path(tempfile.mkdtemp(prefix="harness-vllm-"))
    return tmp, _copy_json(modelinfo_cache(), tmp / "cache" / "modelinfos")


def scratch_env(tmp: Path) -> dict[str, str]:
    """The server's environment: this process's, with its private folders and offline, unbuffered, untracked."""
    env = dict(os.environ)
    env.update(
        TMPDIR=str(tmp),
        VLLM_RPC_BASE_PATH=str(tmp),
        VLLM_CACHE_ROOT=str(tmp / "cache"),
        PYTHONUNBUFFERED="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        HF_HUB_OFFLINE="1",
    )
    return env


# vLLM compiles the model (torch.compile's Inductor and Triton kernels, then CUDA graphs) at every start,
# minutes on a GPU, and keeps what it compiled under ``$VLLM_CACHE_ROOT/torch_compile_cache/<its hash>``.
# The cache root is private to each server, so its ``torch_compile_cache`` is a link into a folder kept
# between servers (beside the model folders), one per engine and model: the engine's version and
# interpreter, the architecture's digest, the weights, the precision, the GPU layout and the build (a
# compile cache is never shared across those). vLLM's own hash then picks the entry within it. Compiling
# happens while the server starts, outside every measured window.
@dataclass(frozen=True)
class CompileCache:
    """The compile cache of one engine and model: its ``path``, its ``key`` (a digest of what it is kept for)
    and ``hit``: the folder existed and held files before this start (a miss compiles and fills it)."""

    path: Path
    key: str
    hit: bool

    def as_info(self) -> dict[str, Any]:
        """As run.json records it (``backend_info.compile_cache``)."""
        return {"path": str(self.path), "key": self.key, "state": "hit" if self.hit else "miss"}


def compile_cache_root() -> Path:
    """Where the compile caches are kept between servers (beside the model folders)."""
    from harness.workloads import archs

    return archs.cache_root().parent / "vllm-compile"


def compile_cache(facts: Mapping[str, Any]) -> CompileCache:
    """The compile cache for these facts (engine, model, precision, layout; JSON values), created if new."""
    key = hashlib.sha256(json.dumps(dict(facts), sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = compile_cache_root() / key
    hit = path.is_dir() and any(p.is_file() for p in path.rglob("*"))
    path.mkdir(parents=True, exist_ok=True)
    return CompileCache(path=path, key=key, hit=hit)


def link_compile_cache(tmp: Path, cache: CompileCache) -> dict[str, str]:
    """Make the server's ``$VLLM_CACHE_ROOT/torch_compile_cache`` (``tmp/cache``) the kept ``cache``; returns
    the environment that sends Triton's kernels compiled outside torch.compile there too."""
    root = tmp / "cache"
    root.mkdir(parents=True, exist_ok=True)
    (root / "torch_compile_cache").symlink_to(cache.path, target_is_directory=True)
    (cache.path / "triton").mkdir(exist_ok=True)
    return {"TRITON_CACHE_DIR": str(cache.path / "triton")}


def remove_scratch(tmp: Path) -> None:
    """Keep the server's model-class inspection results for the next server, then remove its private folder."""
    _copy_json(tmp / "cache" / "modelinfos", modelinfo_cache())
    shutil.rmtree(tmp, ignore_errors=True)


# --- the process ---------------------------------------------------------------------------------------


def stop_leftovers(log: IO[bytes]) -> list[str]:
    """Stop the servers an earlier, killed sweep left behind (:func:`harness.workloads.servers.stop_leftovers`),
    noting each in ``log``; one line per server stopped."""
    leftovers = servers.stop_leftovers(STOP_GRACE_S)
    for line in leftovers:
        log.write(f"# harness: {line}\n".encode())
    return leftovers


def launch(argv: list[str], env: dict[str, str], cwd: Path, log: IO[bytes]) -> tuple[subprocess.Popen, Path | None]:
    """Start ``argv`` under the reaper, leader of a new process group, its output into ``log`` after the command
    line: ``(the reaper's process, the server's record)``."""
    log.write(f"# harness: {' '.join(argv)}\n".encode())
    log.flush()
    token, env = servers.tag(env)
    # the reaper is the group leader and the server's parent: it stops the group when the harness dies
    proc = subprocess.Popen(
        servers.guarded(argv, STOP_GRACE_S),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(cwd),
        start_new_session=True,
    )
    _LIVE_GROUPS.add(proc.pid)
    return proc, servers.write_record(token, proc.pid, argv)


def dead_reason(proc: subprocess.Popen | None) -> str | None:
    """Why the server is gone (never started, exited, killed), or None while it runs."""
    if proc is None:
        return "was never started"
    code = proc.poll()
    if code is None:
        return None
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return how


def wait_ready(
    base_url: str, served_name: str, timeout_s: float, alive: Callable[[], str | None], log_path: Path | None
) -> float:
    """Wait up to ``timeout_s`` seconds for ``/health``, then check that ``/v1/models`` lists ``served_name``;
    returns the seconds waited. A server that died (``alive`` says why), never became healthy or serves another
    name raises :class:`WorkloadError` with the evidence from ``log_path``."""
    from harness.workloads import loadgen

    try:
        waited = loadgen.wait_healthy(base_url, timeout_s, alive)
    except RuntimeError as exc:
        log, cause = evidence(log_path, "server-died")
        raise WorkloadError(f"vLLM server {exc} before becoming healthy", log_tail=log, cause=cause) from None
    except TimeoutError as exc:
        raise WorkloadError(
            f"vLLM server never became healthy: {exc}", log_tail=tail(log_path), cause="unhealthy"
        ) from None
    try:
        served = loadgen.served_models(base_url)
    except Exception as exc:  # noqa: BLE001 -- any failure here means: not our server
        raise WorkloadError(
            f"/v1/models failed on {base_url}: {exc}", log_tail=tail(log_path), cause="unhealthy"
        ) from None
    if served_name not in served:
        port = base_url.rsplit(":", 1)[-1]
        raise WorkloadError(
            f"the server on port {port} serves {served}, not this run's {served_name!r} (a stale server?)",
            log_tail=tail(log_path),
            cause="wrong-server",
        )
    return waited


def stop(proc: subprocess.Popen, log: IO[bytes] | None) -> bool:
    """SIGTERM the server's process group, SIGKILL after :data:`STOP_GRACE_S` seconds (noted in ``log``); wait
    until none of it is left. True when the group is gone."""
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_GRACE_S)
    deadline = time.monotonic() + STOP_GRACE_S
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
        if log:
            log.write(b"# harness: server group did not exit within 10 s of SIGTERM; sent SIGKILL\n")
        for _ in range(50):
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    _LIVE_GROUPS.discard(pgid)
    return not _group_alive(pgid)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie leader still counts as a member until it is reaped; ask /proc for live members
    return bool(group_members(pgid))
