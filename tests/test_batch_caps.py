"""The reasoning chapter's KV-cache check (harness.analysis.mechanisms.kv_batch_caps, batch_limit)."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.analysis import mechanisms as mech
from harness.workloads import archs


def test_batch_limit_reads_the_running_batch_against_the_kv_budget():
    assert mech.batch_limit(99.0, 100.0) == "batch setting"
    assert mech.batch_limit(100.0, 100.0) == "memory"
    assert mech.batch_limit(220.0, 100.0) == "memory"  # twice the budget (half an answer each), 10% slack
    assert mech.batch_limit(221.0, 100.0) == "beyond estimate"
    assert mech.batch_limit(float("nan"), 100.0) == "beyond estimate"  # no running batch recorded: unexplained


def _row(model_id: str, task: str, batch: int, running: float, output_len: float, num_gpus: int = 1) -> dict:
    return {
        "model_id": model_id,
        "nickname": model_id.split("/")[-1],
        "task": task,
        "num_gpus": num_gpus,
        "batch_size": batch,
        "avg_batch_size": running,
        "avg_output_len": output_len,
        "total_params_billions": 30.5,
        "weight_precision": "bfloat16",
    }


def test_kv_batch_caps_checks_each_tasks_largest_one_gpu_batch():
    arch = archs.get("qwen3-30b-a3b")  # reference models: a Thinking model on gpqa, an Instruct one on chat
    thinking, instruct = arch.reference_model("gpqa"), arch.reference_model("lm-arena-chat")
    published = pd.DataFrame(
        [
            _row(thinking, "gpqa", 64, 60.0, 7000.0),
            _row(thinking, "gpqa", 256, 250.0, 9000.0),
            _row(thinking, "gpqa", 1024, 900.0, 8000.0, num_gpus=2),  # more than one GPU: not counted
            _row(instruct, "lm-arena-chat", 512, 500.0, 800.0),
            _row(thinking, "lm-arena-chat", 4096, 4000.0, 800.0),  # not the architecture's chat model
        ]
    )
    found = mech.kv_batch_caps(published, {arch.name: arch, "tiny-qwen3-moe": archs.get("tiny-qwen3-moe")}, "B200")
    assert [f.nickname for f in found] == [thinking.split("/")[-1]]  # the tiny architecture is left out
    gpqa, chat = found[0].caps
    assert (gpqa.task, gpqa.batch_size, gpqa.avg_batch_size) == ("gpqa", 256.0, 250.0)
    assert (chat.task, chat.batch_size, chat.avg_batch_size) == ("lm-arena-chat", 512.0, 500.0)
    assert gpqa.budget.context_tokens == pytest.approx(8000.0)  # mean output length of the one-GPU runs
    expected = mech.kv_budget(thinking, arch.hf_config(), 30.5, "bfloat16", "B200", 1, 8000.0)
    assert gpqa.budget == expected
    assert gpqa.limit == "memory"  # about 128 whole 8,000-token answers fit; 250 ran, within twice that
    assert chat.limit == "batch setting"  # about 1,280 whole 800-token answers fit; 500 ran
    assert mech.kv_batch_caps(published, {arch.name: arch}, "no such GPU") == []
    assert mech.kv_batch_caps(published[published["task"] != "gpqa"], {arch.name: arch}, "B200") == []
