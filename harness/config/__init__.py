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

import itertools
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.config.knobs import (  # noqa: F401 (harness.config is where the rest of the package reads them)
    BLOCK_KEYS,
    CONTEXT_PARALLEL_KNOBS,
    DEFAULT_CPU_ENGINE,
    DEFAULT_GPU_ENGINE,
    DEFAULT_MIN_WINDOW_S,
    DEFAULT_NUM_BATCHES,
    DEFAULT_NUM_ITERATIONS,
    DEFAULT_NUM_REQUESTS,
    DEFAULT_REL_HALFWIDTH,
    DIFFUSION_KNOBS,
    ENGINE_BACKENDS,
    ENGINE_DISTRIBUTIONS,
    ENGINE_SPEC_RE,
    GPU_SETTING_KNOBS,
    GRID_DEFAULTS,
    GRID_ORDER,
    LLM_KNOBS,
    MAX_REPEATS,
    NAME_RE,
    SHARED_KNOBS,
    STOP_KEYS,
    STOP_METHODS,
    TOP_KEYS,
    UNHASHED_DEFAULT_KNOBS,
    Catalogue,
    parse_engine_spec,
)
from harness.config.records import (  # noqa: F401
    REPEAT_RUN_ID_RE,
    Configuration,
    Settings,
    Study,
    _frozen,
    _plain,
    configuration_from_dict,
    split_run_id,
)
from harness.config.yaml_loader import safe_unique_key_loader as _yaml_loader
from harness.errors import ConfigError
from harness.vocabulary.precisions import PRECISIONS
from harness.vocabulary.tasks import FAMILIES, NOT_RUNNABLE, REQUEST_TASKS


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
