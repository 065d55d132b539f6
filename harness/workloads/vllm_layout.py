"""How a configuration's GPUs and processes map onto vLLM: parallelism flags and where the model worker runs.

:func:`parallel_layout` says what vLLM 0.11.1 does with ``num_gpus``, ``tensor_parallel`` and
``expert_parallel``, :func:`parallel_problems` why it cannot run a layout (the preflight asks this through
:meth:`harness.workloads.vllm_backend.VLLMBackend.preflight_problems`), :func:`parallel_args` the server's flags,
and :func:`engine_layout` the server environment that places the model worker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import Configuration
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.workloads.archs import LLMFacts


def parallel_layout(cfg: Configuration) -> dict[str, Any]:
    """What vLLM 0.11.1 does with a configuration's GPUs (the knobs say exactly this, nothing else).

    ``tensor_parallel`` GPUs per engine (``--tensor-parallel-size``), ``num_gpus / tensor_parallel`` engines
    (``--data-parallel-size``). vLLM has no expert-parallel size: ``--enable-expert-parallel`` spreads the
    experts over all tensor x data parallel GPUs. So ``expert_parallel`` is 1 (experts sharded by tensor
    parallelism) or ``num_gpus`` (expert parallelism on); anything else is refused by
    :func:`parallel_problems`.
    """
    num_gpus, tp, ep = int(cfg.num_gpus or 1), int(cfg.tensor_parallel or 1), int(cfg.expert_parallel or 1)
    dp = num_gpus // tp if tp and num_gpus % tp == 0 else None
    return {
        "tensor_parallel_size": tp,
        "data_parallel_size": dp,
        "enable_expert_parallel": ep > 1,
        "expert_parallel_size": (tp * dp if dp else None) if ep > 1 else 1,
    }


def parallel_problems(cfg: Configuration, facts: LLMFacts | None = None) -> list[str]:
    """Why vLLM 0.11.1 cannot run this layout (one line each); ``facts`` (:class:`archs.LLMFacts`) adds the
    model's heads and experts."""
    num_gpus, tp, ep = int(cfg.num_gpus or 1), int(cfg.tensor_parallel or 1), int(cfg.expert_parallel or 1)
    out = []
    if num_gpus % tp:
        out.append(f"tensor_parallel={tp} does not divide num_gpus={num_gpus}")
    if ep > 1 and ep != num_gpus:
        out.append(
            f"expert_parallel={ep}: vLLM 0.11.1 spreads experts over all tensor_parallel x data_parallel "
            f"GPUs (here {num_gpus}), so expert_parallel must be 1 or {num_gpus}"
        )
    if facts is None:
        return out
    if facts.num_attention_heads % tp:
        out.append(f"tensor_parallel={tp} does not divide the model's {facts.num_attention_heads} attention heads")
    kv = facts.num_key_value_heads
    if kv % tp and tp % kv:
        out.append(f"tensor_parallel={tp} neither divides nor is a multiple of the model's {kv} key-value heads")
    if ep > 1 and not facts.num_experts:
        out.append(f"expert_parallel={ep} on a dense model (no experts)")
    elif ep > 1 and facts.num_experts % ep:
        out.append(f"expert_parallel={ep} does not divide the model's {facts.num_experts} experts")
    return out


def parallel_args(cfg: Configuration) -> list[str]:
    """vLLM's command-line flags for :func:`parallel_layout`; a layout vLLM cannot run raises ConfigError."""
    problems = parallel_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
    layout = parallel_layout(cfg)
    args = ["--tensor-parallel-size", str(layout["tensor_parallel_size"])]
    if layout["data_parallel_size"] > 1:
        args += ["--data-parallel-size", str(layout["data_parallel_size"])]
    if layout["enable_expert_parallel"]:
        args.append("--enable-expert-parallel")
    return args


def engine_libgomp(python: str) -> str | None:
    """The OpenMP runtime bundled with the engine venv's torch (``torch/lib/libgomp*.so*``), or None."""
    venv = Path(python).parent.parent  # .../bin/python -> the venv (a symlinked interpreter is not followed)
    for pattern in (
        "lib/python*/site-packages/torch/lib/libgomp*.so*",
        "lib/python*/site-packages/torch.libs/libgomp*.so*",
    ):
        found = sorted(venv.glob(pattern))
        if found:
            return str(found[0])
    return None


def engine_layout(
    cfg: Configuration, on_cpu: bool, separate_worker: bool | None, python: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Where the model worker runs, and the server environment that puts it there: ``(info, env)``.

    On a GPU, vLLM runs a one-rank engine's worker inside the engine-core process (its uni-process
    executor); ranks > 1 get a worker process each. The CPU build forces a worker process even for one
    rank, only so that the worker can start with torch's OpenMP runtime preloaded (``LD_PRELOAD``, set by
    ``vllm/platforms/cpu.py`` for the processes it spawns) -- one more interpreter importing torch and
    vLLM at every start (about 17-20 s of CPU on a 2-core host), and one more busy process beside the
    engine while it serves. For one rank on the CPU build the harness therefore preloads that same runtime
    into the server's environment and sets ``VLLM_ENABLE_V1_MULTIPROCESSING=0``, which keeps the
    uni-process executor: the GPU layout (API server, engine core with its worker). ``separate_worker:
    true`` restores the CPU build's own layout. The API server and the engine core stay separate
    processes in both layouts. ``python`` is the engine's interpreter (its venv holds the runtime).
    """
    layout = parallel_layout(cfg)
    one_rank = layout["tensor_parallel_size"] == 1 and (layout["data_parallel_size"] or 1) == 1
    in_core = one_rank and (not on_cpu or separate_worker is not True)
    env = {}
    if on_cpu and in_core:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        gomp = engine_libgomp(python)
        preload = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p]
        if gomp and not any("libgomp" in p or "libiomp" in p for p in preload):
            env["LD_PRELOAD"] = ":".join([*preload, gomp])
    if not (on_cpu and one_rank):
        source = "vLLM's own"
    else:
        source = "option separate_worker" if separate_worker is not None else "harness default for the CPU build"
    info = {"worker": "in the engine-core process" if in_core else "a process per rank", "source": source}
    return info, env
