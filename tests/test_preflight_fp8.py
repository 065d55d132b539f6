"""Preflight counts vLLM's load-time peak: online FP8 loads the checkpoint in BF16 and quantizes it after loading, so
a model that fits in FP8 but not in BF16 is refused, one line saying why, nothing written."""

from __future__ import annotations

import time

import yaml

from conftest import FakeGPU
from harness.cli import main
from harness.orchestration import preflight
from harness.workloads import archs

GIB = 2**30


def test_a_model_that_fits_in_fp8_but_not_in_bf16_is_refused(fake_nvml, tmp_path, capsys):
    memory = 16 * GIB
    params = archs.llm_facts("llama-3.1-8b").parameters
    assert params * 1 < 0.9 * memory < params * 2  # fits at FP8's size, not at BF16's
    fake_nvml([FakeGPU([(time.time(), 60.0)], memory_total_bytes=memory)])
    path = tmp_path / "fp8.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "study": "fp8",
                "settings": {"idle_power_s": 0},
                "runs": [
                    {
                        "task": "lm-arena-chat",
                        "backend": "vllm",
                        "models": ["llama-3.1-8b"],
                        "num_requests": 8,
                        "grid": {"max_num_seqs": [8], "precision": ["fp8"]},
                    }
                ],
            }
        )
    )
    results = tmp_path / "results"
    assert main(["measure", str(path), "--results", str(results), "--no-progress"]) == 2
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if "weights do not fit" in line]
    assert len(problems) == 1 and "x 2 bytes (fp8, loaded as bfloat16 and quantized after loading)" in problems[0]
    assert not results.exists() or not any(results.rglob("run.json"))


def test_the_loading_width_of_each_precision():
    assert preflight.load_width_bytes("fp8") == 2 == preflight.load_width_bytes("bfloat16")
    assert preflight.load_width_bytes("float32") == 4
    assert preflight.load_width_note("bfloat16") == ""
