"""Which backends exist and what they offer. Config validation asks here.

Backends are imported lazily (torch, vLLM and diffusers are heavy, though no backend module imports them at
module level): the map holds ``module:Class`` strings. Everything else -- the tasks each backend drives, its
options, the models it builds, the GPUs it measures -- is declared by the backend class
(:class:`harness.workloads.base.Backend`) and read from it here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from harness.config import Catalogue, Configuration
from harness.errors import ConfigError
from harness.workloads.base import Backend

BACKENDS: dict[str, str] = {
    "trivial": "harness.workloads.trivial:TrivialBackend",
    "vllm": "harness.workloads.vllm_backend:VLLMBackend",
    "transformers": "harness.workloads.transformers_backend:TransformersBackend",
    "diffusers": "harness.workloads.diffusers_backend:DiffusersBackend",
    "openai": "harness.workloads.openai_backend:OpenAIBackend",
}


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name`` (its module imported; cheap: heavy packages load at start)."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r} (known: {', '.join(sorted(BACKENDS))})")
    module_name, _, cls_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


def backend_tasks() -> dict[str, tuple[str, ...]]:
    """The tasks each backend drives, in :data:`BACKENDS` order."""
    return {name: backend_class(name).tasks for name in BACKENDS}


def any_model_backends() -> tuple[str, ...]:
    """Backends that measure a server the user runs: their ``models`` are the names it serves, any string."""
    return tuple(name for name in BACKENDS if backend_class(name).any_model)


def known_models(backend: str, task: str | None = None) -> tuple[str, ...]:
    """Architecture names a backend can build without downloading anything.

    With ``task``, only those that can serve it (a diffusion pipeline makes either images or videos;
    every LLM architecture serves every LLM task).
    """
    return backend_class(backend).known_models(task)


def backend_options(backend: str) -> dict[str, Any]:
    """The ``options:`` a backend accepts, with their defaults."""
    return backend_class(backend).option_defaults()


def unknown_options(backend: str, options: Mapping[str, Any] | None) -> list[str]:
    """Option names a backend does not know (config validation can refuse them before anything runs)."""
    return sorted(set(options or ()) - set(backend_options(backend)))


def measured_gpus(cfg: Configuration, visible: int) -> list[int] | None:
    """This host's GPUs (of ``visible``) a run measures when its backend chooses them (``openai``: its ``gpus``
    option), else None (the runner's default: GPUs ``0 .. num_gpus - 1``)."""
    return backend_class(cfg.backend).measured_gpus(cfg, visible)


def backend_module(backend: str) -> ModuleType | None:
    """A backend's module (its ``OPTIONS`` and ``OPTION_SPECS``, views of its option table, for
    :func:`harness.config.load_study`), or None where it cannot be imported here (a backend not installed on
    this host fails at start with its own message)."""
    try:
        return importlib.import_module(BACKENDS[backend].partition(":")[0])
    except ImportError:
        return None


def option_problems(specs: Mapping, options: Mapping | None) -> list[tuple[str, str]]:
    """``(name, why)`` for each option that does not fit ``specs`` (a backend's option table: types, ranges,
    required ones), then, where each fits, what the backend's own :meth:`Backend.check_options` refuses (options
    that need one another), as ``("", why)``: the study reader refuses them all before anything runs."""
    from harness.workloads.base import BadOption
    from harness.workloads.options import defaults, problems

    found = problems(specs, options)
    if found:
        return found
    for name in BACKENDS:
        cls = backend_class(name)
        if cls.option_table is specs:
            try:
                cls.check_options(cls.__new__(cls), defaults(specs) | dict(options or {}))  # no state is needed
            except BadOption as exc:
                return [("", str(exc))]
            break
    return []


def catalogue() -> Catalogue:
    """What the backends offer a study file, for :func:`harness.config.load_study`."""
    return Catalogue(
        backend_tasks=backend_tasks(),
        any_model_backends=any_model_backends(),
        known_models=known_models,
        backend_module=backend_module,
        option_problems=option_problems,
    )


def get_backend(name: str) -> Backend:
    """A fresh backend instance for ``name``."""
    return backend_class(name)()
