"""Bad input (issue 6): every malformed config or command line exits non-zero with one line naming the
cause, prints no traceback (unless ``--debug``), and writes nothing -- the results folder and the
working folder stay byte for byte and timestamp for timestamp as they were.

The table runs in process through ``harness.cli.main`` (fast); a few cases also run as real
subprocesses, and ``--debug`` is checked to show the traceback.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study
from support import REFERENCE_DIR as REF

ROOT = Path(__file__).resolve().parent.parent
GOOD = {
    "study": "bad",
    "settings": {"idle_power_s": 0},
    "runs": [
        {
            "task": "cpu-trivial",
            "backend": "trivial",
            "models": ["cpu-spin"],
            "num_requests": 8,
            "max_output_tokens": 4,
            "options": {"step_s": 0.001},
            "grid": {"max_num_seqs": [1, 2]},
        }
    ],
}
CHAT = "model=Qwen/Qwen3-32B,task=lm-arena-chat,gpu=B200,num_gpus=1,max_num_seqs=8"
REASONING = "model=Qwen/Qwen3-32B,task=gpqa,gpu=B200,num_gpus=1,max_num_seqs=128"


def _changed(block=None, top=None, grid=None) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    doc["runs"][0].update(block or {})
    doc["runs"][0]["grid"].update(grid or {})
    doc.update(top or {})
    return doc


def _drop(key):
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    doc.pop(key)
    return doc


# (case id, config text or dict -- measured with `measure CONFIG --results results`, expected text in the error)
CONFIGS = [
    ("yaml-unclosed-bracket", "study: s\nruns: [\n", "YAML syntax error: line 3"),
    ("yaml-tab-indentation", "study: s\nruns:\n\t- task: cpu-trivial\n", "YAML syntax error: line 3"),
    ("yaml-bad-mapping", "study: s\n  runs: x\n", "YAML syntax error: line 2"),
    (
        "yaml-python-object-tag",
        "!!python/object/apply:os.system ['touch pwned']\n",
        "YAML error: line 1: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'",  # noqa: E501
    ),
    ("yaml-duplicate-key", "study: a\nstudy: b\nruns: []\n", "YAML error: line 2: duplicate key 'study'"),
    ("empty-file", "", "top level: must be a mapping with keys study and runs"),
    ("top-level-list", "- study\n- runs\n", "top level: must be a mapping"),
    ("unknown-top-key", _changed(top={"sweep": 1}), "sweep: unknown key (allowed: study, description, settings, runs)"),
    ("study-missing", _drop("study"), "study: is required"),
    ("runs-missing", _drop("runs"), "runs: is required"),
    ("runs-empty", _changed(top={"runs": []}), "runs: must be a non-empty list of run blocks"),
    ("study-name-traversal", _changed(top={"study": "../outside"}), "study: must match"),
    ("study-name-absolute", _changed(top={"study": "/tmp/outside"}), "study: must match"),
    ("study-name-nested", _changed(top={"study": "a/b"}), "study: must match"),
    ("study-name-not-a-string", _changed(top={"study": 7}), "study: must match"),
    ("study-name-trailing-newline", _changed(top={"study": "ok\n"}), "study: must match"),
    (
        "settings-sampler-too-slow",
        _changed(top={"settings": {"sampler_hz": 1}}),
        "settings.sampler_hz: must be a number >= 10, got 1",
    ),
    (
        "settings-wrong-type",
        _changed(top={"settings": {"cooldown_s": "long"}}),
        "settings.cooldown_s: must be a number >= 0, got 'long'",
    ),
    ("unknown-block-key", _changed(block={"model": "cpu-spin"}), "runs[0].model: unknown key"),
    (
        "num-requests-string",
        _changed(block={"num_requests": "8"}),
        "runs[0].num_requests: must be a positive integer, got '8'",
    ),
    (
        "num-requests-bool",
        _changed(block={"num_requests": True}),
        "runs[0].num_requests: must be a positive integer, got True",
    ),
    (
        "num-requests-zero",
        _changed(block={"num_requests": 0}),
        "runs[0].num_requests: must be a positive integer, got 0",
    ),
    ("seed-negative", _changed(block={"seed": -1}), "runs[0].seed: must be an integer >= 0, got -1"),
    (
        "batch-zero",
        _changed(grid={"max_num_seqs": [0]}),
        "runs[0].grid.max_num_seqs[0]: must be a positive integer, got 0",
    ),
    (
        "batch-negative",
        _changed(grid={"max_num_seqs": [1, -4]}),
        "runs[0].grid.max_num_seqs[1]: must be a positive integer, got -4",
    ),
    (
        "batch-float",
        _changed(grid={"max_num_seqs": [1.5]}),
        "runs[0].grid.max_num_seqs[0]: must be a positive integer, got 1.5",
    ),
    ("batch-not-a-list", _changed(grid={"max_num_seqs": 4}), "runs[0].grid.max_num_seqs: must be a list, got int"),
    ("batch-empty-list", _changed(grid={"max_num_seqs": []}), "runs[0].grid.max_num_seqs: must not be empty"),
    (
        "diffusion-batch-zero",
        {
            "study": "d",
            "runs": [
                {"task": "text-to-image", "backend": "diffusers", "models": ["tiny-sd3"], "grid": {"batch_size": [0]}}
            ],
        },
        "runs[0].grid.batch_size[0]: must be a positive integer, got 0",
    ),
    (
        "diffusion-knob-on-llm",
        _changed(grid={"batch_size": [2]}),
        "runs[0].grid.batch_size: does not apply to an LLM task (cpu-trivial)",
    ),
    ("unknown-task", _changed(block={"task": "chat"}), "runs[0].task: unknown task 'chat' (allowed: lm-arena-chat"),
    (
        "multimodal-task-on-trivial",
        _changed(block={"task": "video-chat"}),
        "runs[0].backend: backend trivial cannot run task video-chat",
    ),
    ("unknown-backend", _changed(block={"backend": "tgi"}), "runs[0].backend: unknown backend 'tgi'"),
    (
        "backend-cannot-run-task",
        _changed(block={"task": "gpqa"}),
        "runs[0].backend: backend trivial cannot run task gpqa",
    ),
    (
        "unknown-model",
        _changed(block={"models": ["gpt-5"]}),
        "runs[0].models[0]: unknown model 'gpt-5' for backend trivial (known: cpu-spin)",
    ),
    ("models-not-a-list", _changed(block={"models": "cpu-spin"}), "runs[0].models: must be a non-empty list"),
    (
        "unknown-backend-option",
        _changed(block={"options": {"stepsize": 0.1}}),
        "runs[0].options.stepsize: unknown trivial option (allowed: ",
    ),
    ("options-not-a-mapping", _changed(block={"options": ["step_s"]}), "runs[0].options: must be a mapping"),
    (
        "precision-unknown",
        _changed(grid={"precision": ["int3"]}),
        "runs[0].grid.precision[0]: unknown precision 'int3'",
    ),
    (
        "tp-does-not-divide-gpus",
        _changed(grid={"num_gpus": [4], "tensor_parallel": [3]}),
        "runs[0].grid.tensor_parallel: tensor_parallel=3 does not divide num_gpus=4",
    ),
    (
        "ep-does-not-divide-gpus",
        _changed(grid={"num_gpus": [1], "expert_parallel": [2]}),
        "runs[0].grid.expert_parallel: expert_parallel=2 does not divide num_gpus=1",
    ),
    (
        "repeated-configuration",
        _changed(top={"runs": GOOD["runs"] * 2}),
        "runs[1]: repeats configuration cpu-trivial/cpu-spin",
    ),
    (
        "vllm-length-source-unknown",
        {
            "study": "v",
            "runs": [
                {"task": "lm-arena-chat", "backend": "vllm", "models": ["tiny-llama"], "length_source": "Nobody/Model"}
            ],
        },
        "runs[0].length_source: no published output lengths for 'Nobody/Model'",
    ),
    (
        "vllm-extra-args-abbreviated-host",
        {
            "study": "v",
            "runs": [
                {
                    "task": "lm-arena-chat",
                    "backend": "vllm",
                    "models": ["tiny-llama"],
                    "options": {"extra_args": ["--hos", "0.0.0.0"]},
                }
            ],
        },
        "runs[0].options.extra_args: --hos: abbreviates --host",
    ),
    (
        "vllm-extra-args-path-flag",
        {
            "study": "v",
            "runs": [
                {
                    "task": "lm-arena-chat",
                    "backend": "vllm",
                    "models": ["tiny-llama"],
                    "options": {"extra_args": ["--download-dir=/tmp"]},
                }
            ],
        },
        "runs[0].options.extra_args: --download-dir=/tmp: refused",
    ),
]


def _good(ctx):
    return ctx / "good.yaml"


# (case id, argv built from the working folder, expected text in the error, environment changes)
CALLS = [
    (
        "config-missing",
        lambda c: ["measure", "nope.yaml", "--results", "results"],
        "nope.yaml: no such config file",
        {},
    ),
    (
        "config-is-a-directory",
        lambda c: ["measure", "notes", "--results", "results"],
        "notes: is a directory, expected a YAML study config",
        {},
    ),
    (
        "config-not-utf8",
        lambda c: ["measure", "binary.yaml", "--results", "results"],
        "binary.yaml: cannot be read (",
        {},
    ),
    (
        "config-under-a-file",
        lambda c: ["measure", "file.txt/study.yaml", "--results", "results"],
        "file.txt/study.yaml: cannot be read (",
        {},
    ),
    (
        "results-is-a-file",
        lambda c: ["measure", "good.yaml", "--results", "file.txt"],
        "results folder file.txt is a file, not a folder",
        {},
    ),
    (
        "index-out-of-range",
        lambda c: ["measure", "good.yaml", "--results", "results", "--index", "2"],
        "--index 2 is out of range: good.yaml has 2 configurations (0..1)",
        {},
    ),
    (
        "index-negative",
        lambda c: ["measure", "good.yaml", "--results", "results", "--index", "-1"],
        "--index -1 is out of range",
        {},
    ),
    (
        "index-not-a-number",
        lambda c: ["measure", "good.yaml", "--index", "two"],
        "python -m harness measure: argument --index: invalid int value: 'two' (see python -m harness measure --help)",
        {},
    ),
    ("unknown-option", lambda c: ["measure", "good.yaml", "--frobnicate"], "unrecognized arguments: --frobnicate", {}),
    ("config-argument-missing", lambda c: ["measure"], "the following arguments are required: CONFIG", {}),
    ("unknown-command", lambda c: ["mesure", "good.yaml"], "argument COMMAND: invalid choice: 'mesure'", {}),
    ("no-command", lambda c: [], "the following arguments are required: COMMAND", {}),
    (
        "show-unknown-run",
        lambda c: ["show", "feedface", "--results", "results"],
        "no run 'feedface': not a folder and no run id under results",
        {},
    ),
    (
        "show-a-folder-that-is-no-run",
        lambda c: ["show", "notes", "--results", "results"],
        "notes: run.json is missing or unreadable",
        {},
    ),
    (
        "list-results-is-a-file",
        lambda c: ["list", "--results", "file.txt"],
        "results folder file.txt is a file, not a folder",
        {},
    ),
    (
        "status-bad-config",
        lambda c: ["status", "bad.yaml", "--results", "results", "--no-queue"],
        "bad.yaml: runs[0].grid.max_num_seqs[0]: must be a positive integer",
        {},
    ),
    (
        "submit-bad-config",
        lambda c: ["submit", "bad.yaml", "--results", "results"],
        "bad.yaml: runs[0].grid.max_num_seqs[0]: must be a positive integer",
        {},
    ),
    ("findings-unknown-id", lambda c: ["findings", "--id", "nope"], "unknown finding 'nope'", {}),
    (
        "diagnose-unknown-selector-key",
        lambda c: ["diagnose", "flavour=mint", REASONING],
        "selector 'flavour=mint': unknown key flavour",
        {"ref": "good"},
    ),
    (
        "diagnose-selector-not-key-value",
        lambda c: ["diagnose", "Qwen3-32B", REASONING],
        "selector term 'Qwen3-32B' is not key=value",
        {"ref": "good"},
    ),
    (
        "diagnose-selector-matches-several",
        lambda c: ["diagnose", "model=Qwen/Qwen3-32B,task=gpqa", CHAT],
        "selector 'model=Qwen/Qwen3-32B,task=gpqa' matches 9 rows; narrow it",
        {"ref": "good"},
    ),
    (
        "diagnose-selector-matches-none",
        lambda c: ["diagnose", CHAT.replace("B200", "A100"), REASONING],
        "matches no row",
        {"ref": "good"},
    ),
    (
        "diagnose-results-missing",
        lambda c: ["diagnose", CHAT, REASONING, "--results", "nowhere"],
        "no runs found under nowhere",
        {"ref": "good"},
    ),
    ("reference-folder-missing", lambda c: ["reference"], "HARNESS_REFERENCE_DIR=", {"ref": "nowhere"}),
    (
        "reference-file-missing",
        lambda c: ["reference"],
        "reference file tasks/text-to-video.json is missing from",
        {"ref": "missing"},
    ),
    ("reference-file-altered", lambda c: ["reference"], "tasks/gpqa.json", {"ref": "altered"}),
    ("diagnose-reference-file-altered", lambda c: ["diagnose", CHAT, REASONING], "tasks/gpqa.json", {"ref": "altered"}),
    (
        "findings-reference-file-missing",
        lambda c: ["findings", "--id", "text-to-video-range"],
        "tasks/text-to-video.json is missing from",
        {"ref": "missing"},
    ),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working folder: a results folder with one finished run, a good and a bad config, odd files,
    and copies of the reference data with one file missing or altered."""
    root = tmp_path_factory.mktemp("bad-input")
    (root / "good.yaml").write_text(yaml.safe_dump(GOOD))
    (root / "bad.yaml").write_text(yaml.safe_dump(_changed(grid={"max_num_seqs": [0]})))
    (root / "file.txt").write_text("just a file\n")
    (root / "notes").mkdir()
    (root / "binary.yaml").write_bytes(b"study: \xff\xfe\x00\x81\n")
    measure_study(load_study(root / "good.yaml"), root / "results", index=0, progress=False, out=io.StringIO())
    if REF.is_dir():
        shutil.copytree(REF, root / "ref-missing")
        (root / "ref-missing" / "tasks" / "text-to-video.json").unlink()
        shutil.copytree(REF, root / "ref-altered")
        with open(root / "ref-altered" / "tasks" / "gpqa.json", "a") as fh:
            fh.write(" ")
    return root


def _snapshot(root: Path) -> dict:
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(root))] = (path.is_dir(), info.st_size, info.st_mtime_ns)
    return out


def _reference_env(monkeypatch, workdir, which):
    if which is None:
        return
    if which == "good":
        if "HARNESS_REFERENCE_DIR" not in os.environ:
            if not REF.is_dir():
                pytest.skip("reference data not available")
            monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(REF))
        return
    if which != "nowhere" and not (workdir / f"ref-{which}").is_dir():
        pytest.skip("reference data not available to copy")
    monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(workdir / f"ref-{which}"))


def _run(argv, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    before = _snapshot(workdir)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert _snapshot(workdir) == before, "a refused call wrote something"
    return code, out, err


def _assert_one_line_error(code, out, err, expected):
    assert code != 0
    assert "Traceback" not in out + err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert expected in err, err
    assert out == ""


def test_the_table_is_large_enough():
    assert len(CONFIGS) + len(CALLS) >= 30 and len({c[0] for c in CONFIGS + CALLS}) == len(CONFIGS) + len(CALLS)


@pytest.mark.parametrize("doc, expected", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_bad_config(workdir, monkeypatch, capsys, tmp_path, doc, expected):
    config = tmp_path / "study.yaml"
    config.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    _reference_env(monkeypatch, workdir, "good" if "vllm" in str(doc) else None)
    code, out, err = _run(["measure", str(config), "--results", "results"], workdir, monkeypatch, capsys)
    _assert_one_line_error(code, out, err, expected)
    assert err.startswith(f"error: {config}: ")  # names the file
    assert not (workdir / "pwned").exists()


@pytest.mark.parametrize("argv, expected, env", [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_bad_call(workdir, monkeypatch, capsys, argv, expected, env):
    _reference_env(monkeypatch, workdir, env.get("ref"))
    code, out, err = _run(argv(workdir), workdir, monkeypatch, capsys)
    _assert_one_line_error(code, out, err, expected)


def test_unreadable_config(workdir, monkeypatch, capsys, tmp_path):
    # a symlink to itself: opening it fails (ELOOP) for root too, which reads files whatever their mode
    config = tmp_path / "loop.yaml"
    config.symlink_to(config.name)
    code, out, err = _run(["measure", str(config), "--results", "results"], workdir, monkeypatch, capsys)
    _assert_one_line_error(code, out, err, f"{config}: cannot be read (")
    assert "Too many levels of symbolic links" in err


def test_debug_shows_the_traceback(workdir, monkeypatch, capsys):
    from harness.errors import ConfigError

    monkeypatch.chdir(workdir)
    with pytest.raises(ConfigError, match="must be a positive integer"):
        main(["--debug", "measure", "bad.yaml", "--results", "results"])


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["measure", "bad.yaml", "--results", "results"],
            "bad.yaml: runs[0].grid.max_num_seqs[0]: must be a positive integer, got 0",
        ),
        (["measure", "good.yaml", "--index", "x"], "argument --index: invalid int value: 'x'"),
        (["show", "feedface", "--results", "results"], "no run 'feedface'"),
    ],
    ids=["bad-config", "usage", "unknown-run"],
)
def test_real_subprocess(workdir, argv, expected):
    before = _snapshot(workdir)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *argv],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and expected in proc.stderr
    assert _snapshot(workdir) == before


def test_real_subprocess_debug_prints_the_traceback(workdir):
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "--debug", "measure", "bad.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback (most recent call last)" in proc.stderr
    assert "harness.errors.ConfigError: bad.yaml: runs[0].grid.max_num_seqs[0]" in proc.stderr
