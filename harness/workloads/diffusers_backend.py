"""Text-to-image and text-to-video on diffusers pipelines with random weights.

:func:`build_pipeline` assembles the architecture's pipeline class (e.g.
``StableDiffusion3Pipeline``, ``FluxPipeline``, ``WanPipeline``) from one config
per component -- transformer, VAE, text encoders, scheduler -- with random
weights created directly on the device, and tokenizers trained from scratch
(:mod:`harness.workloads.archs`). Nothing is downloaded.

A run follows the reference's method: one warm-up call with a single
denoising step (outside any window), then ``num_iterations`` full generations
of ``batch_size`` prompts, each inside its own meter window ``"iter-<i>"``
with the device synchronised before the window opens and before it closes.
Energy per image or video is then the mean window energy / batch size
(:func:`harness.measuring.steady.diffusion_metrics`).

Knobs: ``batch_size``, ``inference_steps``, ``height``, ``width`` and
``num_frames`` (video) come from the configuration. Options: :data:`OPTION_TABLE` (``device``,
``guidance_scale``, ``warmup_steps``, ``cpu_dtype``), with their types, defaults and meanings.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import Configuration
from harness.errors import ConfigError
from harness.workloads.base import (
    IterationRecord,
    LoggingBackend,
    Meter,
    WorkloadError,
    WorkloadResult,
    one_device_problems,
    package_version,
)
from harness.workloads.options import Opt, defaults

if TYPE_CHECKING:
    from harness.workloads.archs import LLMFacts

OPTION_TABLE = {
    "device": Opt(
        "choice",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        doc="where the pipeline runs (auto: CUDA when torch sees it, else the CPU)",
    ),
    "guidance_scale": Opt("number", minimum=0, doc="classifier-free guidance scale (default: the architecture's)"),
    "warmup_steps": Opt("int", minimum=0, default=1, doc="denoising steps of the warm-up call (outside any window)"),
    "attention_backend": Opt(
        "choice",
        choices=("native", "flash", "_flash_3", "_native_cudnn", "sage"),
        default="native",
        doc="diffusers' attention backend (native: torch SDPA; ring_degree > 1 needs one that "
        "returns the log-sum-exp: flash, _flash_3, _native_cudnn or sage)",
    ),
    "cpu_dtype": Opt(
        "choice",
        choices=("bfloat16", "float16", "float32"),
        default="float32",
        doc="dtype on the CPU (CPU kernels for half precision are slow or missing; the dtype used is recorded)",
    ),
}
OPTIONS = defaults(OPTION_TABLE)  # views of the table for the study reader (harness.config)
OPTION_SPECS = OPTION_TABLE
# Attention backends that return the log-sum-exp ring attention merges with (diffusers' attention_dispatch).
RING_ATTENTION_BACKENDS = ("flash", "_flash_3", "_native_cudnn", "sage")
DTYPES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}


@contextlib.contextmanager
def _default_dtype(torch: Any, dtype: Any) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_component(spec: dict, device: Any, dtype: Any, tokenizer_folder: Path | None = None) -> Any:
    """One pipeline component from its spec (random weights; schedulers and tokenizers need no weights), on
    ``device`` (a torch device or its name; ``"meta"`` allocates nothing) in ``dtype`` (a torch dtype)."""
    import torch

    if spec.get("tokenizer"):
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(
            str(tokenizer_folder), model_max_length=int(spec["model_max_length"])
        )
    library = spec["library"]
    config = dict(spec["config"])
    if library == "diffusers":
        import diffusers

        cls = getattr(diffusers, spec["class"])
        if "Scheduler" in spec["class"]:
            return cls.from_config(config)
        with torch.device(device), _default_dtype(torch, dtype):
            model = cls.from_config(config)
    elif library == "transformers":
        import transformers

        config_obj = getattr(transformers, spec["config_class"])(**config)
        with torch.device(device), _default_dtype(torch, dtype):
            model = getattr(transformers, spec["class"])(config_obj)
    else:
        raise ValueError(f"unknown component library {library!r}")
    return model.to(device=device, dtype=dtype).eval()


def build_pipeline(name: str, device: Any = "cpu", dtype: Any = None) -> Any:
    """The named architecture's diffusers pipeline with random weights on ``device`` in ``dtype`` (a torch
    dtype; default float32)."""
    import diffusers
    import torch

    from harness.workloads import archs

    arch = archs.get(name)
    if arch.kind != "diffusion":
        raise ValueError(f"{name} is not a diffusion architecture")
    dtype = dtype or torch.float32
    folder = archs.materialize_tokenizer(name)
    components = {}
    for role, spec in arch.as_dict()["components"].items():
        components[role] = build_component(spec, device, dtype, folder)
    pipe = getattr(diffusers, arch.spec["pipeline"])(**components)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe


def component_parameters(pipe: Any) -> dict[str, int]:
    """Parameters (a count) of each torch module of a built pipeline, by component role."""
    import torch

    out = {}
    for role, comp in pipe.components.items():
        if isinstance(comp, torch.nn.Module):
            out[role] = int(sum(p.numel() for p in comp.parameters()))
    return out


def parameter_count(name: str) -> dict[str, int]:
    """Parameters per component of a named pipeline, built on PyTorch's meta device (no memory, no weights)."""
    import torch

    from harness.workloads import archs

    out = {}
    for role, spec in archs.get(name).as_dict()["components"].items():
        if spec.get("tokenizer") or "Scheduler" in str(spec.get("class")):
            continue
        model = build_component(spec, "meta", torch.bfloat16)
        out[role] = int(sum(p.numel() for p in model.parameters()))
    return out


def context_parallel_plan(name: str) -> bool | str:
    """True where the architecture's transformer class has diffusers' context-parallel plan (``_cp_plan``: FLUX,
    Wan), else the reason it cannot be split, one line."""
    from harness.workloads import archs

    try:
        arch = archs.get(name)
    except ConfigError as exc:  # an unknown architecture: the study reader names it already
        return str(exc).splitlines()[0]
    cls_name = (arch.spec.get("components", {}).get("transformer") or {}).get("class")
    if not cls_name:
        return f"{name} has no transformer component"
    import diffusers

    cls = getattr(diffusers, cls_name, None)
    if cls is None or getattr(cls, "_cp_plan", None) is None:
        return f"its transformer {cls_name} has no context-parallel plan in diffusers {package_version('diffusers')}"
    return True


def synthetic_prompts(count: int, seed: int) -> list[str]:
    """Seeded pseudo-text prompts (the pipelines tokenize them with the trained tokenizer)."""
    from harness.workloads.archs import synthetic_corpus

    lines = synthetic_corpus(num_words=13 * max(count, 1) * 2, seed=seed + 1000)
    return [" ".join(lines[2 * i : 2 * i + 2]) for i in range(count)]


class DiffusersBackend(LoggingBackend):
    """Backend ``diffusers``: see the module docstring."""

    name = "diffusers"
    tasks = ("text-to-image", "text-to-video")
    option_table = OPTION_TABLE
    metrics_url = None

    def __init__(self) -> None:
        self.pipe: Any = None  # the diffusers pipeline once started
        self.torch: Any = None  # the torch module once started
        self.device: Any = None  # a torch.device once started
        self.log_path: Path | None = None
        self.info: dict = {}
        self.group: Any = None  # the worker processes of a context-parallel run (diffusers_parallel.WorkerGroup)
        self.outputs_dir: Path | None = None  # context-parallel runs: rank 0 saves each iteration's output here

    @classmethod
    def preflight_problems(cls, cfg: Configuration, facts: LLMFacts | None = None) -> list[str]:
        """One device, or several through diffusers' context parallelism (``ulysses_degree``/``ring_degree``):
        refused where the transformer has no context-parallel plan or ring attention meets an attention
        backend that returns no log-sum-exp (native SDPA). One line each."""
        if not cfg.context_parallel:
            return one_device_problems(cls.name, cfg)
        problems = []
        plan = context_parallel_plan(cfg.model)
        if plan is not True:
            problems.append(f"{cfg.model} cannot run context-parallel (ulysses_degree/ring_degree): {plan}")
        backend = dict(cfg.options).get("attention_backend", OPTION_TABLE["attention_backend"].default)
        if int(cfg.ring_degree or 1) > 1 and backend not in RING_ATTENTION_BACKENDS:
            problems.append(
                f"ring_degree={cfg.ring_degree} needs an attention backend returning the log-sum-exp "
                f"({', '.join(RING_ATTENTION_BACKENDS)}); attention_backend={backend} does not: "
                "use ulysses_degree alone or set options.attention_backend"
            )
        return problems

    @classmethod
    def model_parameters(cls, model: str) -> int | None:
        """All parameters of the named pipeline (:func:`parameter_count`, a meta-device build)."""
        return int(sum(parameter_count(model).values()))

    def start(self, cfg: Configuration, run_dir: Path) -> None:
        """Build the pipeline with random weights on the device and draw the prompts (not measured)."""
        import torch

        from harness.workloads import archs

        self.options = self.resolve_options(cfg)
        if cfg.context_parallel:
            self._start_group(cfg, Path(run_dir))
            return
        arch = archs.get(cfg.model)
        if arch.task != cfg.task:
            raise WorkloadError(
                f"architecture {cfg.model} is a {arch.task} pipeline, not {cfg.task}", cause="bad-config"
            )
        if cfg.precision not in DTYPES:
            raise WorkloadError(
                f"the diffusers backend runs {', '.join(DTYPES)}, not {cfg.precision}", cause="unsupported"
            )
        if int(cfg.num_gpus or 1) != 1 or int(cfg.tensor_parallel or 1) != 1 or int(cfg.expert_parallel or 1) != 1:
            raise WorkloadError(
                "the diffusers backend runs on one device (sequence parallelism is not implemented)",
                cause="unsupported",
            )
        want = self.options["device"]
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want == "cuda" and not torch.cuda.is_available():
            raise WorkloadError("device cuda asked for but torch sees no CUDA device", cause="unsupported")
        self.torch, self.device = torch, torch.device(want)
        dtype_name = DTYPES[cfg.precision] if self.device.type == "cuda" else self.options["cpu_dtype"]
        dtype = getattr(torch, dtype_name)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = run_dir / "server.log"
        torch.manual_seed(int(cfg.seed or 0))
        t0 = time.time()
        self._log(
            f"building {cfg.model} ({arch.spec['pipeline']}) with random weights on {self.device} in {dtype_name}"
        )
        try:
            self.pipe = build_pipeline(cfg.model, self.device, dtype)
        except torch.OutOfMemoryError as exc:
            raise WorkloadError(
                f"out of memory while building {cfg.model}: {str(exc).splitlines()[0]}",
                log_tail=self.log_tail(),
                cause="oom",
            ) from None
        self._sync()
        defaults = arch.spec.get("defaults", {})
        guidance = self.options["guidance_scale"]
        self.guidance = float(guidance if guidance is not None else defaults.get("guidance_scale", 1.0))
        self.prompts = synthetic_prompts(cfg.knob("batch_size"), int(cfg.seed or 0))
        params = component_parameters(self.pipe)
        self.info = {
            "engine": "diffusers",
            "pipeline": arch.spec["pipeline"],
            "diffusers_version": package_version("diffusers"),
            "torch_version": torch.__version__,
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "dtype": dtype_name,
            "precision_requested": cfg.precision,
            "architecture": cfg.model,
            "architecture_digest": arch.digest,
            "weights": "random (built from component configs)",
            "parameters": params,
            "total_parameters": int(sum(params.values())),
            "guidance_scale": self.guidance,
            "call_kwargs": dict(arch.spec.get("call_kwargs", {})),
            "warmup_steps": int(self.options["warmup_steps"]),
            "build_s": round(time.time() - t0, 3),
            "example_prompt": self.prompts[0],
        }
        self._log(f"built {self.info['total_parameters'] / 1e6:.2f} M parameters in {self.info['build_s']} s")

    def _start_group(self, cfg: Configuration, run_dir: Path) -> None:
        """Context parallelism: one worker process per device (:mod:`harness.workloads.diffusers_parallel`)."""
        from harness.workloads.diffusers_parallel import WorkerGroup

        problems = self.preflight_problems(cfg)
        if problems:
            raise WorkloadError(problems[0], cause="unsupported")
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = run_dir / "server.log"
        self._log(
            f"starting {cfg.num_gpus} context-parallel workers (ulysses_degree={cfg.ulysses_degree}, "
            f"ring_degree={cfg.ring_degree})"
        )
        t0 = time.time()
        self.group = WorkerGroup(cfg, run_dir, self.outputs_dir)
        self.info = dict(self.group.start())
        self.info["group_start_s"] = round(time.time() - t0, 3)
        self._log(f"workers built and warmed up in {self.info['group_start_s']} s")

    def _run_group(self, cfg: Configuration, meter: Meter) -> WorkloadResult:
        """The windows of a context-parallel run: the parent holds the meter over all devices, the workers
        generate together and report each iteration's times."""
        batch = cfg.knob("batch_size")
        iterations, windows = [], {}
        meter.begin("run")
        for i in range(cfg.knob("num_iterations")):
            name = f"iter-{i}"
            meter.begin(name)
            reply = self.group.iterate(i, cfg.knob("inference_steps"), int(cfg.seed or 0) + 1 + i)
            windows[name] = meter.end(name)
            if reply.produced != batch:
                raise WorkloadError(
                    f"iteration {i} produced {reply.produced} outputs for a batch of {batch}",
                    log_tail=self.group.log_tail(),
                    cause="error",
                )
            iterations.append(
                IterationRecord(
                    index=i,
                    start_time_s=reply.start_time_s,
                    end_time_s=reply.end_time_s,
                    batch_size=batch,
                    outputs=reply.produced,
                )
            )
            self._log(
                f"{name}: {batch} x {reply.shape} in {reply.end_time_s - reply.start_time_s:.4f} s "
                f"over {cfg.num_gpus} processes"
            )
        windows["run"] = meter.end("run")
        return WorkloadResult(iterations=iterations, windows=windows, server_log=self.log_path, info=dict(self.info))

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _call(self, cfg: Configuration, steps: int, seed: int) -> Any:
        kwargs = dict(
            prompt=list(self.prompts),
            height=cfg.knob("height"),
            width=cfg.knob("width"),
            num_inference_steps=int(steps),
            guidance_scale=self.guidance,
            generator=self.torch.Generator(device=self.device).manual_seed(seed),
            output_type="pt",
            **self.info["call_kwargs"],
        )
        if cfg.task == "text-to-video":
            kwargs["num_frames"] = int(cfg.num_frames or 1)
        with self.torch.inference_mode():
            out = self.pipe(**kwargs)
        return out.frames if cfg.task == "text-to-video" else out.images

    def run(self, cfg: Configuration, meter: Meter) -> WorkloadResult:
        """One warm-up call outside any window, then ``num_iterations`` generations in windows ``iter-<i>``."""
        if self.group is not None:
            return self._run_group(cfg, meter)
        torch = self.torch
        if self.pipe is None:
            raise WorkloadError("diffusers backend run() before start()", cause="error")
        batch = cfg.knob("batch_size")
        iterations, windows = [], {}
        try:
            t0 = time.time()
            self._call(cfg, int(self.options["warmup_steps"]), int(cfg.seed or 0))
            self._sync()
            self.info["warmup_s"] = round(time.time() - t0, 4)
            self._log(f"warm-up ({self.options['warmup_steps']} step) took {self.info['warmup_s']} s")
            meter.begin("run")
            for i in range(cfg.knob("num_iterations")):
                self._sync()
                name = f"iter-{i}"
                meter.begin(name)
                start = time.time()
                out = self._call(cfg, cfg.knob("inference_steps"), int(cfg.seed or 0) + 1 + i)
                self._sync()
                end = time.time()
                windows[name] = meter.end(name)
                produced = int(out.shape[0])
                if produced != batch:
                    raise WorkloadError(
                        f"iteration {i} produced {produced} outputs for a batch of {batch}",
                        log_tail=self.log_tail(),
                        cause="error",
                    )
                iterations.append(
                    IterationRecord(index=i, start_time_s=start, end_time_s=end, batch_size=batch, outputs=produced)
                )
                self._log(f"{name}: {batch} x {tuple(out.shape[1:])} in {end - start:.4f} s")
            windows["run"] = meter.end("run")
        except torch.OutOfMemoryError as exc:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self._log(f"out of memory: {exc}")
            raise WorkloadError(
                f"out of memory at batch_size={batch}: {str(exc).splitlines()[0]}",
                log_tail=self.log_tail(),
                cause="oom",
            ) from None
        except ValueError as exc:  # a pipeline refusing the knobs (e.g. a size its patching cannot split)
            self._log(f"pipeline refused the configuration: {exc}")
            raise WorkloadError(
                f"{self.info['pipeline']} refused height={cfg.height} width={cfg.width}"
                f" num_frames={cfg.num_frames}: {exc}",
                log_tail=self.log_tail(),
                cause="bad-config",
            ) from None
        return WorkloadResult(iterations=iterations, windows=windows, server_log=self.log_path, info=dict(self.info))

    def stop(self) -> None:
        """Drop the pipeline and return its device memory; stop a context-parallel run's workers (their group)."""
        if self.group is not None:
            self.group.stop()
            self.group = None
        self.pipe = None
        self._release_device()
