"""``python -m harness diagnose A B``: selectors, errors (exit 2, one line) and JSON output."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from harness.cli import main
from harness.errors import ReferenceDataError
from harness.published import reference

CHAT = "model=Qwen/Qwen3-32B,task=lm-arena-chat,gpu=B200,num_gpus=1,max_num_seqs=8"
REASONING = "model=Qwen/Qwen3-32B,task=gpqa,gpu=B200,num_gpus=1,max_num_seqs=128"


@pytest.fixture(scope="module", autouse=True)
def _reference():
    try:
        reference.llm_table()
    except ReferenceDataError as exc:
        pytest.fail(f"reference data needed (set HARNESS_REFERENCE_DIR): {exc}")


def test_diagnose_explains_the_gap_in_words_and_numbers(capsys):
    assert main(["diagnose", CHAT, REASONING]) == 0
    out = capsys.readouterr().out
    assert "Factors, largest first" in out and "output length" in out and "concurrency reached" in out
    assert "product = energy ratio" in out


def test_diagnose_json_parses_and_factors_multiply_to_the_ratio(capsys):
    assert main(["diagnose", CHAT, REASONING, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    product = math.prod(f["ratio"] for f in payload["factors"])
    assert product == pytest.approx(payload["ratio"], rel=1e-9)
    assert payload["ratio"] == pytest.approx(payload["energy_b"] / payload["energy_a"])
    assert payload["config_b"]["max_num_seqs"] == 128 and payload["kind"] == "llm"


def test_diffusion_pair(capsys):
    a = "model=black-forest-labs/FLUX.1-dev,gpu=B200,num_gpus=1,batch_size=1"
    b = "model=tencent/HunyuanVideo,gpu=B200,num_gpus=1,batch_size=1"
    assert main(["diagnose", a, b, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    names = {f["name"]: f["ratio"] for f in payload["factors"]}
    assert names["frames"] == 129 and payload["kind"] == "diffusion"


@pytest.mark.parametrize(
    "selector, message",
    [
        ("model=Qwen/Qwen3-32B,task=gpqa", "matches 9 rows; narrow it with gpu_model in {B200, H100}"),
        ("model=Qwen/Qwen3-32B,task=gpqa,gpu=H200", "matches no row; without gpu_model=H200 it matches 9 rows"),
        ("model=Qwen/Qwen3-33B,task=gpqa,gpu=B200,max_num_seqs=8", "without model_id=Qwen/Qwen3-33B it matches"),
        ("flavour=mint", "unknown key flavour"),
    ],
)
def test_bad_selectors_exit_2_with_one_line(capsys, selector, message):
    assert main(["diagnose", selector, REASONING]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_the_real_command_line_exits_2():
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "diagnose", "model=nope", REASONING],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "matches no row" in proc.stderr and "Traceback" not in proc.stderr


def test_own_runs_join_the_reference_rows(tmp_path, capsys):
    store = pytest.importorskip("harness.measuring.store")
    run = tmp_path / "study" / "abc123"
    metrics = {
        "energy_per_token_joules": 2.0,
        "energy_per_request_joules": 200.0,
        "energy_per_output_joules": 200.0,
        "avg_output_len": 100.0,
        "avg_power_watts": 100.0,
        "output_throughput_tokens_per_sec": 50.0,
        "avg_batch_size": 4.0,
        "median_itl_ms": 80.0,
        "energy_source": "fake counter",
    }
    record = {
        "study": "study",
        "run_id": "abc123",
        "status": "ok",
        "is_stable": True,
        "config": {
            "task": "lm-arena-chat",
            "model": "Qwen/Qwen3-32B",
            "num_gpus": 1,
            "max_num_seqs": 4,
            "precision": "bfloat16",
        },
        "environment": {"gpu_model": "CPU"},
        "metrics": metrics,
    }
    store.write_run(run, record)
    assert main(["diagnose", CHAT, "run=abc123", "--results", str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["energy_b"] == 200.0 and payload["config_b"]["source"] == "own"
    assert math.prod(f["ratio"] for f in payload["factors"]) == pytest.approx(payload["ratio"])
    # without --results the own run is not there
    assert main(["diagnose", CHAT, "run=abc123"]) == 2
    assert "unknown key run_id" in capsys.readouterr().err


def test_registering_the_commands_does_not_import_pandas():
    code = "import sys, harness.cli.findings; print('pandas' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.split() == ["False", "False"]
