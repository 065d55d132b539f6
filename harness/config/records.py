"""The frozen records a study file becomes: settings, one configuration per run (its run id), the study; and
run ids read back (repeats, stored run.json).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.config.knobs import STOP_KEYS, UNHASHED_DEFAULT_KNOBS
from harness.errors import ConfigError
from harness.vocabulary.tasks import DIFFUSION_TASKS, REQUEST_TASKS


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
