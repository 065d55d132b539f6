"""Preflight: configurations this host cannot run, found before a sweep starts anything.

    from harness.orchestration.preflight import host_facts, check_study
    host = host_facts()                       # GPUs after CUDA_VISIBLE_DEVICES, their memory (NVML)
    verdicts = check_study(study, host)       # {run_id: ["needs 1 GPU, ...", ...]}; [] = can run

Checked per configuration, from the architecture configs (:mod:`harness.workloads.archs`) and NVML
(:mod:`harness.measuring.device`, faked in tests), without importing an engine or loading a model:

* **GPUs.** A full-size architecture runs on ``num_gpus`` GPUs; so does anything on a host that shows
  GPUs. Only the tiny architectures (``tiny-*``, written for a CPU), the trivial workload and an
  explicit ``device: cpu`` run on the CPU of a host without GPUs. A configuration needing more GPUs
  than the host shows after ``CUDA_VISIBLE_DEVICES`` is refused.
* **Weights.** Parameters x bytes per parameter (by precision; on vLLM the peak while loading, so online
  FP8 counts BF16's 2 bytes: vLLM 0.11.1 loads the checkpoint in BF16 and quantizes it after loading) must fit:
  on vLLM the share of one GPU
  (divided over tensor parallelism; experts over the expert-parallel GPUs) within
  ``gpu_memory_utilization`` (vLLM's default 0.9) of the smallest GPU used, plus ``kv_cache_gib`` when
  set; on the in-process backends the whole model on one GPU.
* **GPU settings.** A power cap (``power_limit_watts``) must lie within each GPU's allowed range (NVML's
  constraints), a locked SM clock (``sm_clock_mhz``) within its supported clocks, on whole GPUs (not MIG
  slices), and this process must be allowed to set them (NVML_ERROR_NO_PERMISSION refuses):
  :func:`harness.measuring.gpu_settings.problems`, one line each.
* **Parallelism.** vLLM's tensor parallelism must divide the attention heads (and divide or be a
  multiple of the key-value heads), expert parallelism the experts, and the layout must be one vLLM
  0.11.1 runs (:func:`harness.workloads.vllm_layout.parallel_problems`); the in-process backends run
  on one device. Each backend says this itself (:meth:`harness.workloads.base.Backend.preflight_problems`).

The runner refuses a sweep with any problem in scope (:class:`PreflightError`, one line per problem,
nothing written); ``measure --dry-run`` prints the same verdicts.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.vocabulary.hardware import GPU_MEMORY_UTILIZATION as VLLM_DEFAULT_GPU_MEMORY_UTILIZATION
from harness.vocabulary.precisions import BYTES_PER_VALUE as BYTES_PER_PARAMETER

GB = 1e9


class PreflightError(ConfigError):
    """Configurations this host cannot run (the message has one line per problem)."""


@dataclass(frozen=True)
class Host:
    """What the preflight needs to know about this machine's GPUs."""

    gpu_count: int = 0
    gpu_memory_bytes: tuple = ()  # per visible GPU, CUDA's numbering; None where NVML cannot say
    gpu_names: tuple = ()
    why_none: str | None = None  # why no GPU is visible (NVML's or CUDA_VISIBLE_DEVICES' reason)
    visible: str = "CUDA_VISIBLE_DEVICES unset"

    def describe(self) -> str:
        if not self.gpu_count:
            return f"no GPU: {self.why_none or 'none found'}; {self.visible}"
        names = sorted({n for n in self.gpu_names if n})
        return (
            f"{self.gpu_count} GPU{'s' if self.gpu_count != 1 else ''}{': ' + ', '.join(names) if names else ''}; "
            f"{self.visible}"
        )


def host_facts() -> Host:
    """This host's visible GPUs and their memory, through NVML."""
    from harness.measuring import device

    visible = device.describe_env()
    problem = device.nvml_problem()
    if problem:
        return Host(why_none=problem, visible=visible)
    found = device.visible_gpus()
    names: list[str | None] = []
    for gpu in found:
        try:
            names.append(gpu.name())
        except Exception as exc:
            if not device.is_fault(exc):
                raise
            names.append(None)
    return Host(len(found), tuple(g.memory_total_bytes() for g in found), tuple(names), visible=visible)


def runs_on_gpu(cfg, host: Host) -> bool:
    """Whether this configuration runs on GPUs here (see the module docstring)."""
    from harness.workloads import archs

    if cfg.backend == "trivial":
        return False
    device = (cfg.options or {}).get("device")
    if device == "cpu":
        return False
    if device == "cuda" or host.gpu_count:
        return True
    try:
        return not archs.get(cfg.model).is_tiny
    except ConfigError:
        return True


@functools.cache
def _model_parameters(backend: str, name: str) -> int | None:
    """Parameters of a named model that its architecture's facts do not give (a diffusion pipeline: the backend
    counts them, :meth:`harness.workloads.base.Backend.model_parameters`; cached beside the model folders)."""
    from harness.workloads import archs, registry

    arch = archs.get(name)
    cache = archs.cache_root() / f"{name}-{arch.digest}-parameters.json"
    try:
        return int(json.loads(cache.read_text())["parameters"])
    except (OSError, ValueError, KeyError):
        pass
    total = registry.backend_class(backend).model_parameters(name)
    if total is None:
        return None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"parameters": total}))
    except OSError:
        pass
    return total


def _llm_facts(cfg):
    from harness.workloads import archs

    weights = (cfg.options or {}).get("weights")
    if weights:
        from pathlib import Path

        path = Path(weights).expanduser() / "config.json"
        try:
            return archs.llm_facts_from_config(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # the backend says what is wrong with the folder at start
    return archs.llm_facts(cfg.model)


def _gb(n: float) -> str:
    return f"{n / GB:.1f} GB"


# vLLM 0.11.1's online FP8 (``--quantization fp8`` over a BF16 checkpoint, as the harness starts it) loads the
# weights in BF16 and quantizes them after ``load_weights``: the peak while loading is the BF16 size.
LOADED_AS = {"fp8": "bfloat16"}


def load_width_bytes(precision: str | None) -> float:
    """Bytes per parameter on the GPU while vLLM loads the weights (the peak): BF16 for online FP8."""
    loaded = LOADED_AS.get(precision or "bfloat16", precision or "bfloat16")
    return BYTES_PER_PARAMETER.get(loaded, 2)


def load_width_note(precision: str | None) -> str:
    """What a refusal says about the loading width: why FP8 counts as BF16 ("" for the others)."""
    loaded = LOADED_AS.get(precision or "")
    return f", loaded as {loaded} and quantized after loading" if loaded else ""


def check(cfg, host: Host) -> list[str]:
    """Why ``cfg`` cannot run on ``host`` (one line per problem), or [] when it can."""
    from harness.workloads import archs

    problems: list[str] = gpu_settings_problems(cfg, host)
    if cfg.backend == "openai":  # drives a server that is already running: nothing is loaded or started here
        return problems
    num_gpus, tp, ep = int(cfg.num_gpus or 1), int(cfg.tensor_parallel or 1), int(cfg.expert_parallel or 1)
    try:
        arch = archs.get(cfg.model) if cfg.backend != "trivial" else None
    except ConfigError as exc:
        return [str(exc)]
    facts = _llm_facts(cfg) if arch is not None and arch.kind == "llm" else None
    on_gpu = runs_on_gpu(cfg, host)

    from harness.workloads import registry

    problems += registry.backend_class(cfg.backend).preflight_problems(cfg, facts)

    if on_gpu and num_gpus > host.gpu_count:
        size = f" ({facts.parameters / 1e9:.2f} B parameters)" if facts is not None and not host.gpu_count else ""
        problems.append(
            f"needs {num_gpus} GPU{'s' if num_gpus != 1 else ''}{size}, this host shows {host.gpu_count or 'none'}"
        )
        return problems
    if not on_gpu or cfg.backend == "trivial":
        return problems

    # weights against the memory of the GPUs this run uses (CUDA's 0..num_gpus-1)
    memory = [m for m in host.gpu_memory_bytes[:num_gpus] if m]
    if not memory:
        return problems
    smallest = min(memory)
    width = BYTES_PER_PARAMETER.get(cfg.precision or "bfloat16", 2)
    if cfg.backend == "vllm" and facts is not None:
        options = cfg.options or {}
        loading = load_width_note(cfg.precision)
        width = load_width_bytes(cfg.precision)  # the peak while loading, not the quantized size
        experts_over = num_gpus if ep > 1 else tp  # expert parallelism: experts over every GPU
        share = width * ((facts.parameters - facts.expert_parameters) / tp + facts.expert_parameters / experts_over)
        utilization = options.get("gpu_memory_utilization") or VLLM_DEFAULT_GPU_MEMORY_UTILIZATION
        need = share + float(options.get("kv_cache_gib") or 0) * 2**30
        budget = smallest * float(utilization)
        if need > budget:
            split = f" over tensor_parallel={tp}" if tp > 1 else ""
            split += f" (experts over {num_gpus} GPUs)" if ep > 1 and facts.num_experts else ""
            problems.append(
                f"weights do not fit: {facts.parameters / 1e9:.2f} B parameters x {width:g} bytes ({cfg.precision}"
                f"{loading}){split} = {_gb(share)} per GPU"
                + (f" + {options['kv_cache_gib']} GiB KV cache" if options.get("kv_cache_gib") else "")
                + f", more than {utilization:g} of the smallest GPU's {_gb(smallest)} ({_gb(budget)})"
            )
    elif arch is not None:
        if facts is not None:
            params = facts.parameters
        elif arch.kind == "diffusion":
            params = _model_parameters(cfg.backend, cfg.model)
            if params is None:
                return problems
        else:
            return problems
        need = params * width
        if need > smallest:
            problems.append(
                f"weights do not fit: {params / 1e9:.2f} B parameters x {width:g} bytes ({cfg.precision}) = "
                f"{_gb(need)}, more than the GPU's {_gb(smallest)}"
            )
    return problems


def gpu_settings_problems(cfg, host: Host) -> list[str]:
    """Why the power cap or locked clock ``cfg`` asks for cannot be set on the GPUs it runs on (one line each);
    [] when it asks for none or they can be set. Reads NVML only for a configuration that asks."""
    from harness.measuring import device, gpu_settings
    from harness.workloads import registry

    wanted = gpu_settings.Wanted.of(cfg)
    if not wanted:
        return []
    if not host.gpu_count:  # the runner measures (and sets) GPUs 0..num_gpus-1 wherever the host shows GPUs
        why = f" ({host.why_none})" if host.why_none else ""
        return [f"{wanted.describe()} needs a GPU; this run uses none{why}"]
    chosen = registry.measured_gpus(cfg, host.gpu_count)
    indices = list(range(int(cfg.num_gpus or 1))) if chosen is None else chosen
    try:
        visible = device.visible_gpus()
    except device.NvmlUnavailable as exc:
        return [f"{wanted.describe()} cannot be set: {exc}"]
    return gpu_settings.problems([visible[i] for i in indices if i < len(visible)], wanted)


def check_study(study, host: Host, configurations=None) -> dict[str, list[str]]:
    """``{run_id: problems}`` for the configurations given (default: all of the study)."""
    configs = study.configurations if configurations is None else configurations
    return {cfg.run_id: check(cfg, host) for cfg in configs}


def _series(cfg) -> str:
    """The configuration without its batch knob: identical problems of one series share a line."""
    gpus = f" x{cfg.num_gpus}gpu" if cfg.num_gpus != 1 else ""
    layout = f" tp{cfg.tensor_parallel}" if cfg.tensor_parallel != 1 else ""
    layout += f" ep{cfg.expert_parallel}" if cfg.expert_parallel != 1 else ""
    layout += f" ulysses{cfg.ulysses_degree}" if getattr(cfg, "ulysses_degree", None) is not None else ""
    layout += f" ring{cfg.ring_degree}" if getattr(cfg, "ring_degree", None) is not None else ""
    return f"{cfg.task}/{cfg.model}{gpus}{layout} {cfg.precision}"


def report_lines(study, verdicts: dict[str, list[str]], configurations=None) -> list[str]:
    """One line per problem: identical problems of one series (batch sizes only differ) are merged."""
    configs = study.configurations if configurations is None else configurations
    groups: dict[tuple[str, str], list] = {}
    for cfg in configs:
        for problem in verdicts.get(cfg.run_id) or ():
            groups.setdefault((_series(cfg), problem), []).append(cfg)
    lines = []
    for (series, problem), members in groups.items():
        knob = members[0].batch_knob
        values = ",".join(dict.fromkeys(str(c.batch_value) for c in members))  # once each (GPU settings may differ)
        index = study.configurations.index(members[0])
        lines.append(f"[{index}] {series} {knob}={values}: {problem}")
    return lines


def refuse_if_any(study, host: Host, configurations) -> None:
    """Raise :class:`PreflightError` when any configuration in scope cannot run here."""
    verdicts = check_study(study, host, configurations)
    lines = report_lines(study, verdicts, configurations)
    if lines:
        bad = sum(bool(v) for v in verdicts.values())
        raise PreflightError(
            f"preflight: {bad} of {len(verdicts)} configurations of {study.path} cannot run on this host "
            f"({host.describe()}); nothing was started or written:\n" + "\n".join(f"  {line}" for line in lines)
        )


def _draws_reference_lengths(cfg) -> bool:
    """True where a run draws its output lengths from the published histograms (the vLLM and transformers
    backends; the openai backend with ``output_lengths: forced``, its default)."""
    if not cfg.is_llm:
        return False
    if cfg.backend == "openai":
        return (cfg.options or {}).get("output_lengths") in (None, "forced")
    return cfg.backend in ("vllm", "transformers")


def reference_problems(configurations) -> list[str]:
    """One line per set of published data these configurations draw from that cannot be read here (missing, not
    downloadable, damaged), with the line that says how to provide it; [] when all can be read. Reads (and, once,
    downloads) only the files the configurations need."""
    from harness.errors import HarnessError
    from harness.workloads import lengths

    problems: list[str] = []
    seen: set = set()
    for cfg in configurations:
        key = (cfg.task, cfg.length_source, cfg.model)
        if key in seen or not _draws_reference_lengths(cfg):
            continue
        seen.add(key)
        try:
            lengths.plan_for(cfg)
        except HarnessError as exc:
            cause, message = lengths.reference_failure(exc)
            if cause == lengths.REFERENCE_UNAVAILABLE and message not in problems:
                problems.append(message)
    return problems


def refuse_without_reference(configurations) -> None:
    """Raise :class:`PreflightError` when the published data the configurations draw lengths from cannot be read
    here: one line each, saying how to provide it; nothing started or written."""
    problems = reference_problems(configurations)
    if problems:
        more = f" (and {len(problems) - 1} more reference file(s))" if len(problems) > 1 else ""
        raise PreflightError(f"preflight: nothing was started or written: {problems[0]}{more}")
