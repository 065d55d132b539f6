"""One worker of a context-parallel diffusion run (``python -m harness.workloads.diffusers_worker RANK CFG RUN_DIR``):
it builds the pipeline of :mod:`harness.workloads.diffusers_backend`, joins the process group and generates with
its peers when :class:`harness.workloads.diffusers_parallel.WorkerGroup` asks."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from harness.config import configuration_from_dict


def _cpu_device_count_patch(torch: Any) -> None:
    """On a CPU host only: diffusers builds the mesh with rank % torch.accelerator.device_count(), which is 0."""
    if not torch.cuda.is_available() and torch.accelerator.device_count() == 0:
        torch.accelerator.device_count = lambda: 1


def worker_main(argv: list[str]) -> int:
    """One worker: build, parallelise, warm up, then serve iterations until ``quit``. Exit status 0 or 1."""
    rank, cfg = int(argv[0]), configuration_from_dict(json.loads(argv[1]))
    run_dir, outputs_dir = Path(argv[2]), (Path(argv[3]) if len(argv) > 3 else None)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library prints go to the log, not into the protocol
    sys.stdout = sys.stderr

    def say(message: dict) -> None:
        out.write(json.dumps(message) + "\n")

    try:
        from dataclasses import replace

        import torch
        import torch.distributed as dist
        from diffusers import ContextParallelConfig

        from harness.workloads.diffusers_backend import DiffusersBackend

        on_gpu = torch.cuda.is_available() and dict(cfg.options).get("device", "auto") != "cpu"
        if on_gpu:
            torch.cuda.set_device(rank)
        else:
            _cpu_device_count_patch(torch)
        dist.init_process_group("nccl" if on_gpu else "gloo", rank=rank, world_size=int(cfg.num_gpus))
        backend = DiffusersBackend()
        backend.start(replace(cfg, num_gpus=1, ulysses_degree=None, ring_degree=None), run_dir / f"rank{rank}")
        transformer = backend.pipe.transformer
        attention = dict(cfg.options).get("attention_backend", "native")
        if attention != "native":
            transformer.set_attention_backend(attention)
        transformer.enable_parallelism(
            config=ContextParallelConfig(
                ulysses_degree=int(cfg.ulysses_degree or 1), ring_degree=int(cfg.ring_degree or 1)
            )
        )
        backend._call(cfg, int(backend.options["warmup_steps"]), int(cfg.seed or 0))
        backend._sync()
        info = dict(
            backend.info,
            context_parallel={
                "ulysses_degree": int(cfg.ulysses_degree or 1),
                "ring_degree": int(cfg.ring_degree or 1),
                "processes": int(cfg.num_gpus),
                "process_group_backend": "nccl" if on_gpu else "gloo",
                "cpu_device_count_patched": not on_gpu,
            },
        )
        say({"ready": True, "info": info})
        for line in sys.stdin:
            message = json.loads(line)
            if message["op"] == "quit":
                break
            dist.barrier()
            backend._sync()
            start = time.time()
            images = backend._call(cfg, int(message["steps"]), int(message["seed"]))
            backend._sync()
            end = time.time()
            if outputs_dir is not None:
                outputs_dir.mkdir(parents=True, exist_ok=True)
                torch.save(images.detach().cpu(), outputs_dir / f"iter-{message['index']}.pt")
            say({"start": start, "end": end, "produced": int(images.shape[0]), "shape": list(images.shape[1:])})
        dist.destroy_process_group()
        return 0
    except Exception as exc:  # noqa: BLE001 (any failure is reported to the parent, one line)
        cause = getattr(exc, "cause", "error")
        say({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", "cause": cause})
        import traceback

        traceback.print_exc()
        return 1


if __name__ == "__main__":
    raise SystemExit(worker_main(sys.argv[1:]))
