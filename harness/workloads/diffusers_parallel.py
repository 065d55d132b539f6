"""Diffusion across devices: diffusers' context parallelism, one worker process per device.

A configuration with ``ulysses_degree`` / ``ring_degree`` (:mod:`harness.config`) runs as ``num_gpus`` worker
processes (``python -m harness.workloads.diffusers_worker``, one per device: rank r on ``cuda:r`` with NCCL,
or on the CPU with gloo). Every worker builds the same random-weight pipeline (same seed), calls
``pipeline.transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=..., ring_degree=...))``
and makes the warm-up call; the parent (:class:`WorkerGroup`, driven by
:class:`harness.workloads.diffusers_backend.DiffusersBackend`) then holds the meter over all devices and
opens one window per iteration around the workers' joint call, as the reference does; the workers report
each iteration's times and output shape.

Protocol: one JSON object a line; the parent writes ``{"op": "iter", ...}`` or ``{"op": "quit"}`` to each
worker's stdin, each worker answers on its stdout (its own diagnostics go to ``server-rank<r>.log``).

The workers start in one process group of their own (rank 0 leads it) and are stopped through that group
(SIGTERM, then SIGKILL), never by name.

CPU hosts: ``torch.accelerator.device_count()`` is 0 there and diffusers takes the rank modulo it when it builds
the device mesh (ZeroDivisionError); the worker makes it return 1 on CPU hosts only, before the mesh is built.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.config import Configuration
from harness.workloads.base import WorkloadError

STOP_GRACE_S = 10.0  # SIGTERM to SIGKILL, seconds


@dataclass
class Reply:
    """One worker's answer to an iteration: wall-clock times (s since the epoch) and outputs made."""

    start_time_s: float
    end_time_s: float
    produced: int
    shape: tuple[int, ...]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerGroup:
    """The ``num_gpus`` worker processes of one context-parallel run, in one process group of their own."""

    def __init__(self, cfg: Configuration, run_dir: Path, outputs_dir: Path | None = None) -> None:
        self.cfg, self.run_dir, self.outputs_dir = cfg, Path(run_dir), outputs_dir
        self.procs: list[subprocess.Popen] = []
        self.pgid: int | None = None
        self.info: dict = {}

    def start(self, timeout_s: float = 1800.0) -> dict:
        """Start the workers, wait until each has built its pipeline and made the warm-up call; rank 0's info."""
        world = int(self.cfg.num_gpus)
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(world))
        payload = json.dumps(self.cfg.as_dict())
        for rank in range(world):
            args = [sys.executable, "-m", "harness.workloads.diffusers_worker", str(rank), payload, str(self.run_dir)]
            if self.outputs_dir is not None and rank == 0:
                args.append(str(self.outputs_dir))
            log = open(self.run_dir / f"server-rank{rank}.log", "ab")  # noqa: SIM115 (the child keeps it; closed below)
            group = 0 if rank == 0 else self.pgid  # rank 0 leads a process group of its own
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env | {"RANK": str(rank), "LOCAL_RANK": str(rank)},
                process_group=group,
            )
            log.close()
            if rank == 0:
                self.pgid = proc.pid
            self.procs.append(proc)
        replies = [self._read(rank) for rank in range(world)]
        self.info = dict(replies[0].get("info", {}))
        return self.info

    def _read(self, rank: int) -> dict:
        stream: IO[bytes] | None = self.procs[rank].stdout
        line = stream.readline() if stream is not None else b""
        if not line:
            raise WorkloadError(
                f"context-parallel worker {rank} exited (code {self.procs[rank].poll()})",
                log_tail=self.log_tail(rank),
                cause="error",
            )
        reply = json.loads(line)
        if "error" in reply:
            raise WorkloadError(
                f"context-parallel worker {rank}: {reply['error']}",
                log_tail=self.log_tail(rank),
                cause=reply.get("cause", "error"),
            )
        return reply

    def _send(self, message: dict) -> None:
        for proc in self.procs:
            if proc.stdin is None:
                raise WorkloadError("context-parallel worker without a stdin pipe", cause="error")
            proc.stdin.write((json.dumps(message) + "\n").encode())
            proc.stdin.flush()

    def iterate(self, index: int, steps: int, seed: int) -> Reply:
        """One joint generation over all devices; rank 0's times and output (every rank returns the whole)."""
        self._send({"op": "iter", "index": index, "steps": steps, "seed": seed})
        replies = [self._read(rank) for rank in range(len(self.procs))]
        first = replies[0]
        return Reply(
            min(r["start"] for r in replies),
            max(r["end"] for r in replies),
            int(first["produced"]),
            tuple(first["shape"]),
        )

    def log_tail(self, rank: int = 0, lines: int = 40) -> str:
        path = self.run_dir / f"server-rank{rank}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        """Ask the workers to quit, then stop what is left through the group: SIGTERM, SIGKILL after a grace."""
        with contextlib.suppress(OSError, ValueError, WorkloadError):  # a worker gone already: the group stops it
            self._send({"op": "quit"})
        deadline = time.monotonic() + STOP_GRACE_S
        for sig in (signal.SIGTERM, signal.SIGKILL):
            while time.monotonic() < deadline and any(p.poll() is None for p in self.procs):
                time.sleep(0.05)
            if self.pgid is None or all(p.poll() is not None for p in self.procs):
                break
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        self.procs = []
