"""Which backends and model architectures exist. Config validation asks here.

Backends are imported lazily (torch, vLLM and diffusers are heavy): the map
holds ``module:Class`` strings.
"""

from __future__ import annotations

import importlib

from harness.errors import ConfigError

BACKENDS: dict[str, str] = {
    "trivial": "harness.workloads.trivial:TrivialBackend",
    "vllm": "harness.workloads.vllm_backend:VLLMBackend",
    "transformers": "harness.workloads.transformers_backend:TransformersBackend",
    "diffusers": "harness.workloads.diffusers_backend:DiffusersBackend",
}

# Tasks each backend can drive.
BACKEND_TASKS: dict[str, tuple[str, ...]] = {
    "trivial": ("cpu-trivial",),
    "vllm": ("lm-arena-chat", "gpqa", "sourcegraph-fim"),
    "transformers": ("lm-arena-chat", "gpqa", "sourcegraph-fim"),
    "diffusers": ("text-to-image", "text-to-video"),
}


def known_models(backend: str) -> tuple[str, ...]:
    """Architecture names a backend can build without downloading anything."""
    if backend == "trivial":
        return ("cpu-spin",)
    try:
        from harness.workloads import archs
    except ModuleNotFoundError:
        return ()
    return tuple(archs.names(backend))


def get_backend(name: str):
    """A fresh backend instance for ``name``."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r} (known: {', '.join(sorted(BACKENDS))})")
    module_name, _, cls_name = BACKENDS[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)()
