"""Which backends and model architectures exist. Config validation asks here.

Backends are imported lazily (torch, vLLM and diffusers are heavy): the map
holds ``module:Class`` strings.
"""

from __future__ import annotations

import importlib

from harness.config import Catalogue
from harness.errors import ConfigError

BACKENDS: dict[str, str] = {
    "trivial": "harness.workloads.trivial:TrivialBackend",
    "vllm": "harness.workloads.vllm_backend:VLLMBackend",
    "transformers": "harness.workloads.transformers_backend:TransformersBackend",
    "diffusers": "harness.workloads.diffusers_backend:DiffusersBackend",
    "openai": "harness.workloads.openai_backend:OpenAIBackend",
}
# Backends that measure a server the user runs: ``models`` are the names it serves, any string.
ANY_MODEL_BACKENDS = ("openai",)

# Tasks each backend can drive.
BACKEND_TASKS: dict[str, tuple[str, ...]] = {
    "trivial": ("cpu-trivial",),
    "vllm": ("lm-arena-chat", "gpqa", "sourcegraph-fim"),
    "transformers": ("lm-arena-chat", "gpqa", "sourcegraph-fim"),
    "diffusers": ("text-to-image", "text-to-video"),
    "openai": ("lm-arena-chat", "gpqa", "sourcegraph-fim"),
}


def known_models(backend: str, task: str | None = None) -> tuple[str, ...]:
    """Architecture names a backend can build without downloading anything.

    With ``task``, only those that can serve it (a diffusion pipeline makes either images or videos;
    every LLM architecture serves every LLM task).
    """
    if backend == "trivial":
        return ("cpu-spin",)
    try:
        from harness.workloads import archs
    except ModuleNotFoundError:
        return ()
    names = archs.names(backend)
    if task is not None:
        names = tuple(n for n in names if archs.get(n).task in (None, task))
    return tuple(names)


def backend_options(backend: str) -> dict:
    """The ``options:`` a backend accepts, with their defaults (the backend modules import no heavy packages
    at module level, so this is cheap)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} (known: {', '.join(sorted(BACKENDS))})")
    module = importlib.import_module(BACKENDS[backend].partition(":")[0])
    return dict(getattr(module, "OPTIONS", {}))


def unknown_options(backend: str, options) -> list[str]:
    """Option names a backend does not know (config validation can refuse them before anything runs)."""
    return sorted(set(options or ()) - set(backend_options(backend)))


def measured_gpus(cfg, visible: int) -> list[int] | None:
    """This host's GPUs a run measures when its backend chooses them (``openai``: its ``gpus`` option), else
    None (the runner's default: GPUs ``0 .. num_gpus - 1``)."""
    if cfg.backend != "openai":
        return None
    from harness.workloads import openai_backend

    return openai_backend.measured_gpus(cfg, visible)


def backend_module(backend: str):
    """A backend's module (its ``OPTIONS`` and ``OPTION_SPECS``), or None where it cannot be imported here
    (a backend not installed on this host fails at start with its own message)."""
    try:
        return importlib.import_module(BACKENDS[backend].partition(":")[0])
    except ImportError:
        return None


def catalogue() -> Catalogue:
    """What the backends offer a study file, for :func:`harness.config.load_study`."""
    from harness.workloads.options import problems

    return Catalogue(backend_tasks=BACKEND_TASKS, any_model_backends=ANY_MODEL_BACKENDS,
                     known_models=known_models, backend_module=backend_module, option_problems=problems)


def get_backend(name: str):
    """A fresh backend instance for ``name``."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r} (known: {', '.join(sorted(BACKENDS))})")
    module_name, _, cls_name = BACKENDS[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)()
