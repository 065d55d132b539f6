"""Backend ``openai``: measure a server that is already running (vLLM, SGLang, TGI, llama.cpp, ...).

It drives any OpenAI-compatible ``/v1/completions`` or ``/v1/chat/completions`` endpoint with the load
generator of the vLLM backend (:mod:`harness.workloads.loadgen`: streaming, every token's arrival time,
TTFT, end-to-end latency, token counts from ``usage``), sends the requests as the arrival pattern says
(:mod:`harness.measuring.arrivals`), and measures **this host's** GPUs through the runner's meter. It
starts and stops nothing: the server is the user's.

The config's ``models`` entry is the name the server serves (as ``/v1/models`` lists it). ``max_num_seqs``
in the grid is the server's own batch limit (``--max-num-seqs`` of vLLM): the steady window of the
all-at-once and concurrency patterns waits for that many running requests.

Checks before anything is measured, each a one-line error: the URL must be loopback unless
``allow_remote: true`` (then the run records that the remote host's energy is not measured and the
energy is null with that reason); the API key, when ``api_key_env`` names a variable, comes only from
that variable and is never written anywhere; the server must answer and serve the model; a 401/403
names the key's variable. A server that stops answering mid-run fails the run with the cause
``server-died``; runs measured before it are untouched.

Options (``options:`` in the config): :data:`OPTION_TABLE`, with their types, defaults and meanings;
``base_url`` and ``prompts`` are required.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.config import Configuration
from harness.errors import ConfigError, HarnessError
from harness.measuring.energy import WindowMeasurement
from harness.workloads.base import (
    BadOption,
    LoggingBackend,
    Meter,
    WorkloadError,
    WorkloadResult,
)
from harness.workloads.options import Opt, defaults

APIS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
OUTPUT_MODES = ("forced", "reference", "natural")
OPTION_TABLE = {
    "base_url": Opt("string", required=True, doc="the server, e.g. http://127.0.0.1:8000 (/v1 at the end is dropped)"),
    "api": Opt("choice", choices=tuple(APIS), default="completions", doc="the OpenAI API the load uses"),
    "api_key_env": Opt(
        "string",
        doc="name of the environment variable that holds the API key (sent as a Bearer token; never written anywhere)",
    ),
    "allow_remote": Opt(
        "bool", default=False, doc="true to allow a host that is not loopback (its energy is not measured)"
    ),
    "gpus": Opt(
        "devices", default="all", doc="this host's GPUs to measure: a list of indices, or all (the visible ones)"
    ),
    "prompts": Opt("string", required=True, doc="a JSONL/Parquet file or hf:<dataset id> (harness.workloads.prompts)"),
    "prompt_field": Opt(
        "string", doc="the prompt's column (default: the first of prompt, text, question, instruction)"
    ),
    "output_field": Opt(
        "string", doc="a column with reference output lengths in tokens (default: output_tokens if present)"
    ),
    "split": Opt("string", default="train", doc="the split of a Hugging Face dataset"),
    "tokenizer": Opt(
        "string",
        doc="a model folder whose tokenizer counts the prompts (default: the server's "
        "/tokenize, else an estimate of 4 characters per token, recorded as such)",
    ),
    "output_lengths": Opt(
        "choice",
        choices=OUTPUT_MODES,
        default="forced",
        doc="forced (drawn from the published histogram of the task, as the other LLM backends), "
        "reference (forced to each row's reference length) or natural (the model stops; "
        "capped at max_output_tokens, default 1024)",
    ),
    "output_length_scale": Opt("number", above=0, default=1.0, doc="factor on drawn output lengths (forced)"),
    "arrival": Opt(
        "choice",
        choices=("all-at-once", "poisson", "concurrency"),  # harness.measuring.arrivals.PATTERNS
        default="all-at-once",
        doc="how requests are sent (harness.measuring.arrivals)",
    ),
    "rate_per_s": Opt("number", above=0, doc="poisson: requests per second"),
    "burstiness": Opt("number", above=0, doc="poisson: gamma shape (1 = Poisson)"),
    "warmup_fraction": Opt(
        "number", minimum=0, maximum=0.99, doc="poisson: share of arrivals before the steady window opens (default 0.1)"
    ),
    "concurrency": Opt("int", minimum=1, doc="concurrency: requests kept in flight"),
    "ttft_target_ms": Opt("number", above=0, doc="time-to-first-token target of goodput, in milliseconds"),
    "itl_target_ms": Opt("number", above=0, doc="mean inter-token latency target of goodput, in milliseconds"),
    "temperature": Opt("number", minimum=0, default=1.0, doc="sampling temperature"),
    "read_timeout_s": Opt("number", above=0, default=600.0, doc="longest silence on one stream, in seconds"),
    "connect_timeout_s": Opt(
        "number", above=0, default=10.0, doc="how long the first check may wait for the server, in seconds"
    ),
}
OPTIONS = defaults(OPTION_TABLE)  # views of the table for the study reader (harness.config)
OPTION_SPECS = OPTION_TABLE
NATURAL_MAX_TOKENS = 1024
ARRIVAL_KEYS = ("arrival", "rate_per_s", "burstiness", "warmup_fraction", "concurrency")


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (a name is resolved: it must map to loopback only)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host.lower() == "localhost":
        return True
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addrs)


def split_url(base_url: str) -> tuple[str, str]:
    """``(base_url without a trailing /v1 or /, host)``; a URL that is not http(s) is refused."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadOption(f"options.base_url must be an http(s) URL with a host, got {base_url!r}")
    url = base_url.rstrip("/")
    if url.endswith("/v1"):
        url = url[:-3]
    return url, parts.hostname


class _RemoteMeter:
    """The runner's meter, with every window's energy null and the reason saying why (a remote server)."""

    def __init__(self, meter: Meter, host: str):
        self.meter, self.reason = meter, f"none: the server runs on the remote host {host}; its energy is not measured"

    def begin(self, name: str) -> None:
        self.meter.begin(name)

    def end(self, name: str, sync: bool = True) -> WindowMeasurement:
        from dataclasses import replace

        window = self.meter.end(name, sync=sync)
        window = replace(
            window,
            gpu_energy_joules=dict.fromkeys(window.gpu_energy_joules) or {0: None},
            cpu_energy_joules={},
            dram_energy_joules={},
            energy_source=self.reason,
        )
        if hasattr(self.meter, "windows"):
            self.meter.windows[name] = window
        return window


class OpenAIBackend(LoggingBackend):
    """Backend ``openai``: see the module docstring."""

    name = "openai"
    tasks = ("lm-arena-chat", "gpqa", "sourcegraph-fim")
    option_table = OPTION_TABLE
    any_model = True  # the names the user's server serves

    def __init__(self) -> None:
        self.metrics_url: str | None = None
        self.base_url: str | None = None
        self.log_path: Path | None = None
        self.info: dict = {}
        self.headers: dict = {}
        self.remote_host: str | None = None

    # --- the offer -------------------------------------------------------------------------------

    @classmethod
    def measured_gpus(cls, cfg: Configuration, visible: int) -> list[int] | None:
        """This host's GPUs the run measures: the ``gpus`` option (default all ``visible``); none for a remote
        host; None (the runner's default) where the options are wrong (``start`` reports them)."""
        opts = dict(cfg.options or {})
        try:
            _, host = split_url(str(opts.get("base_url") or ""))
        except BadOption:
            return None  # start() reports it
        if not is_loopback(host):
            return []
        gpus = opts.get("gpus", "all")
        if gpus in (None, "all"):
            return list(range(visible))
        if not isinstance(gpus, (list, tuple)) or not all(isinstance(g, int) and not isinstance(g, bool) for g in gpus):
            return None  # start() reports it
        return [int(g) for g in gpus] if visible else []  # an index that is not visible: the meter says so

    def check_options(self, opts: Mapping[str, Any]) -> None:
        """``base_url`` and ``prompts`` are required, the URL must be http(s) with a host, and the arrival options
        must describe one pattern (checked when the config is read, and again at start)."""
        from harness.measuring import arrivals

        if not opts["base_url"]:
            raise BadOption("options.base_url is required for backend openai (e.g. http://127.0.0.1:8000)")
        if not opts["prompts"]:
            raise BadOption(
                "options.prompts is required for backend openai: a .jsonl or .parquet file of prompts, "
                "or hf:<dataset id>"
            )
        split_url(str(opts["base_url"]))
        try:
            arrivals.from_options({k: opts[k] for k in ARRIVAL_KEYS if opts.get(k) is not None}, 0)
        except ConfigError as exc:
            raise BadOption(str(exc)) from None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, cfg: Configuration, run_dir: Path) -> None:
        """Check the options and the server (it must answer and serve the model), load the prompts and plan
        the output lengths; nothing is started."""
        from harness.measuring import arrivals
        from harness.workloads import lengths, prompts

        opts = self.options = self.resolve_options(cfg)
        self.base_url, host = split_url(opts["base_url"])
        if not is_loopback(host):
            if opts["allow_remote"] is not True:
                raise BadOption(
                    f"options.base_url {opts['base_url']!r} is not on this host (loopback); the harness "
                    f"measures this host's GPUs only. Set allow_remote: true to drive it anyway "
                    f"(its energy is then not measured)",
                    cause="remote-refused",
                )
            self.remote_host = host
        try:
            self.arrival = arrivals.from_options(
                {k: opts[k] for k in ARRIVAL_KEYS if opts[k] is not None}, int(cfg.seed or 0)
            )
        except ConfigError as exc:
            raise BadOption(str(exc)) from None
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = run_dir / "server.log"
        key_env = opts["api_key_env"]
        if key_env:
            key = os.environ.get(str(key_env))
            if not key:
                raise BadOption(f"options.api_key_env names {key_env}, which is not set in the environment")
            self.headers = {"Authorization": f"Bearer {key}"}
        self._log(f"harness: measuring the existing server {self.base_url} ({opts['api']} API), model {cfg.model}")
        served = self._check_server(cfg, float(opts["connect_timeout_s"]))

        try:
            chosen = prompts.load(
                opts["prompts"],
                cfg.knob("num_requests"),
                int(cfg.seed or 0),
                prompt_field=opts["prompt_field"],
                output_field=opts["output_field"],
                split=str(opts["split"]),
            )
        except ConfigError as exc:
            raise BadOption(str(exc), cause="bad-config") from None
        self.texts = [p.text for p in chosen.prompts]
        counts, counted_by = prompts.count_tokens(
            self.texts,
            api=opts["api"],
            tokenizer=opts["tokenizer"],
            base_url=self.base_url,
            model=cfg.model,
            headers=self.headers,
        )
        self.prompt_tokens = counts
        mode = opts["output_lengths"]
        plan_info = None
        if mode == "forced":
            try:
                plan = lengths.plan_for(cfg)
            except HarnessError as exc:  # bad length options, or the published lengths unreadable here
                cause, message = lengths.reference_failure(exc)
                raise BadOption(message, cause=cause) from None
            self.output_tokens = list(plan.output_tokens)
            plan_info = plan.as_info()
            output_source = plan.output_source
        elif mode == "reference":
            missing = [p.row for p in chosen.prompts if p.reference_output_tokens is None]
            if missing:
                raise BadOption(
                    f"output_lengths: reference, but row {missing[0]} of the prompts has no reference "
                    f"output length (set output_field)",
                    cause="bad-config",
                )
            cap = cfg.max_output_tokens
            refs = [p.reference_output_tokens for p in chosen.prompts if p.reference_output_tokens is not None]  # all
            self.output_tokens = [min(t, cap) if cap else t for t in refs]
            output_source = f"reference output lengths of the prompts ({chosen.source})"
        else:
            cap = int(cfg.max_output_tokens or NATURAL_MAX_TOKENS)
            self.output_tokens = [cap] * len(self.texts)
            output_source = f"natural: the model stops (at most {cap} tokens)"
        self.metrics_url = self._metrics_url()
        self.info = {
            "endpoint": self.base_url,
            "api": opts["api"],
            "served_model_name": cfg.model,
            "served_models": served,
            "api_key_env": key_env,  # the variable's name only, never its value
            "remote_host": self.remote_host,
            "energy_note": (
                f"the server runs on the remote host {self.remote_host}: its energy is not measured"
                if self.remote_host
                else None
            ),
            "metrics_scraped": self.metrics_url is not None,
            "prompts": chosen.as_info() | {"prompt_tokens_counted_by": counted_by, "prompt_tokens_planned": counts},
            "output_lengths": mode,
            "output_length_source": output_source,
            "lengths": plan_info
            or {
                "task": cfg.task,
                "seed": int(cfg.seed or 0),
                "prompt_tokens": counts,
                "output_tokens": list(self.output_tokens),
                "output_source": output_source,
                "prompt_source": chosen.source,
                "extra": {},
            },
            "load": self.arrival.as_info()
            | {"ttft_target_ms": opts["ttft_target_ms"], "itl_target_ms": opts["itl_target_ms"]},
        }
        self._log(
            f"harness: {len(self.texts)} prompts from {chosen.source}; lengths counted by {counted_by}; "
            f"output lengths {mode}; arrival {self.arrival.pattern}"
        )

    def _check_server(self, cfg: Configuration, timeout_s: float) -> list[str]:
        import httpx

        try:
            with httpx.Client(timeout=timeout_s, trust_env=False, headers=self.headers) as client:
                resp = client.get(f"{self.base_url}/v1/models")
        except httpx.HTTPError as exc:
            raise WorkloadError(
                f"no server answers at {self.base_url} ({type(exc).__name__}: {exc}); "
                f"start it first: the openai backend starts nothing",
                cause="unreachable",
            ) from None
        if resp.status_code in (401, 403):
            what = (
                f"the API key from ${self.options['api_key_env']}" if self.headers else "a request without an API key"
            )
            raise WorkloadError(
                f"the server at {self.base_url} refused {what} (HTTP {resp.status_code}); set "
                f"options.api_key_env to the variable that holds its key",
                cause="unauthorized",
            )
        if resp.status_code != 200:
            raise WorkloadError(
                f"{self.base_url}/v1/models answered HTTP {resp.status_code}; is it an OpenAI-compatible server?",
                cause="unhealthy",
            )
        try:
            served = [m.get("id") for m in resp.json().get("data", [])]
        except (ValueError, AttributeError):
            raise WorkloadError(f"{self.base_url}/v1/models did not answer a model list", cause="unhealthy") from None
        if cfg.model not in served:
            raise WorkloadError(
                f"the server at {self.base_url} does not serve model {cfg.model!r} (it serves: "
                f"{', '.join(map(str, served)) or 'nothing'})",
                cause="model-not-served",
            )
        return served

    def _metrics_url(self) -> str | None:
        """``/metrics`` when the server offers Prometheus metrics (vLLM, SGLang, TGI do), else None."""
        import httpx

        try:
            with httpx.Client(timeout=3.0, trust_env=False, headers=self.headers) as client:
                resp = client.get(f"{self.base_url}/metrics")
        except httpx.HTTPError:
            return None
        text = resp.text.lstrip() if resp.status_code == 200 else ""
        return f"{self.base_url}/metrics" if text and not text.startswith(("{", "<")) else None

    def _request(self, cfg: Configuration) -> Callable[[int], tuple[str, dict]]:
        opts = self.options
        path = APIS[opts["api"]]
        forced = opts["output_lengths"] != "natural"

        def build(i: int) -> tuple[str, dict]:
            n = self.output_tokens[i]
            body = {
                "model": cfg.model,
                "max_tokens": n,
                "temperature": float(opts["temperature"]),
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            if opts["api"] == "chat":
                body["messages"] = [{"role": "user", "content": self.texts[i]}]
            else:
                body["prompt"] = self.texts[i]
            if forced:  # vLLM's and SGLang's extensions; a server that ignores them fails the length check
                body.update(min_tokens=n, ignore_eos=True)
            return path, body

        return build

    def _alive(self) -> str | None:
        """Why the server is gone (it no longer accepts connections), or None."""
        if self.base_url is None:  # start() sets it before any request
            return "no server was started"
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=2.0):
                return None
        except OSError as exc:
            return f"stopped accepting connections ({type(exc).__name__}: {exc})"

    def run(self, cfg: Configuration, meter: Meter) -> WorkloadResult:
        """Send the requests as the arrival pattern says and measure this host's GPUs through ``meter``."""
        from harness.measuring import arrivals
        from harness.workloads import loadgen

        if self.base_url is None:
            raise WorkloadError("openai backend run() before start()", cause="error")
        if self.remote_host:
            meter = _RemoteMeter(meter, self.remote_host)
        n = len(self.texts)
        spec = loadgen.LoadSpec(
            base_url=self.base_url,
            model=cfg.model,
            prompts=self.texts,
            output_tokens=list(self.output_tokens),
            read_timeout_s=float(self.options["read_timeout_s"]),
            arrival=self.arrival,
            request=self._request(cfg),
            headers=self.headers or None,
            forced=self.options["output_lengths"] != "natural",
            prompt_lengths=list(self.prompt_tokens),
        )
        load = loadgen.measure_load(
            spec,
            cfg,
            meter,
            lambda on_open, on_close: arrivals.tracker_for(
                self.arrival, cfg.knob("max_num_seqs"), n, on_open=on_open, on_close=on_close
            ),
            should_abort=self._alive,
        )
        records, failed = load.records, load.failed()
        dead = load.aborted or (self._alive() if failed else None)
        done = sum(r.success for r in records)
        if dead:
            self._log(f"harness: the server {dead} during the run; first error: {failed[0].error}")
            raise WorkloadError(
                f"the server at {self.base_url} {dead} during the run ({done} of {n} requests completed)",
                log_tail=self.log_tail(),
                cause="server-died",
            )
        if failed and len(failed) == n - load.stopped:
            raise WorkloadError(
                f"all {len(failed)} requests failed; first error: {failed[0].error}",
                log_tail=self.log_tail(),
                cause="requests-failed",
            )
        info = dict(self.info) | load.info()
        self._log(f"harness: {done} of {n} requests completed")
        return WorkloadResult(requests=records, windows=load.windows, server_log=self.log_path, info=info)

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""
        self.metrics_url = None
