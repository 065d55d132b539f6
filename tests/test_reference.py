"""harness.published.reference: the published ML.ENERGY Leaderboard v3 data as tidy tables.

Needs HARNESS_REFERENCE_DIR (a local copy of the pinned files); the failure tests
work on a temporary copy of that folder, never on the original.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import ReferenceDataError
from harness.published import reference

ROWS_PER_TASK = {
    "lm-arena-chat": 328,
    "gpqa": 187,
    "image-chat": 173,
    "video-chat": 100,
    "sourcegraph-fim": 50,
    "text-to-image": 638,
    "text-to-video": 382,
}

# Numeric columns whose names carry no unit because they are counts, degrees or ratios of like things.
UNITLESS = {
    "num_gpus",
    "max_num_seqs",
    "batch_size",
    "avg_batch_size",
    "avg_output_len",
    "tensor_parallel",
    "data_parallel",
    "expert_parallel",
    "ring_degree",
    "ulysses_degree",
    "num_frames",
    "inference_steps",
    "fps",
}
UNIT_SUFFIXES = (
    "_joules",
    "_watts",
    "_ms",
    "_s",
    "_per_sec",
    "_billions",
    "_pixels",
)


@pytest.fixture(scope="module")
def ref_dir() -> Path:
    path = os.environ.get(reference.ENV_VAR)
    if not path:
        pytest.fail(f"{reference.ENV_VAR} must name a local copy of the reference data")
    return Path(path)


@pytest.fixture(scope="module")
def llm(ref_dir):
    return reference.llm_table(ref_dir)


@pytest.fixture(scope="module")
def diffusion(ref_dir):
    return reference.diffusion_table(ref_dir)


def test_row_counts_per_task(llm, diffusion):
    counts = pd.concat([llm, diffusion])["task"].value_counts().to_dict()
    assert counts == ROWS_PER_TASK
    assert len(llm) + len(diffusion) == sum(ROWS_PER_TASK.values())


def test_each_table_holds_its_own_tasks(llm, diffusion):
    assert set(llm["task"]) == set(reference.LLM_TASKS)
    assert set(diffusion["task"]) == set(reference.DIFFUSION_TASKS)


@pytest.mark.parametrize("which", ["llm", "diffusion"])
def test_schema_common_columns(which, llm, diffusion):
    frame = llm if which == "llm" else diffusion
    for column in (
        "task",
        "source",
        "model_id",
        "nickname",
        "gpu_model",
        "num_gpus",
        "gpu",
        "batch_size",
        "output_unit",
        "energy_per_output_joules",
        "avg_power_watts",
        "weight_precision",
    ):
        assert column in frame.columns, column
    assert (frame["source"] == reference.SOURCE).all()
    assert frame["is_reference"].all()
    assert set(frame["gpu_model"]) == {"H100", "B200"}
    assert frame["energy_per_output_joules"].gt(0).all()
    assert not frame.duplicated(subset=[c for c in frame.columns if c not in ("source",)]).any()


def test_llm_columns_and_meaning(llm):
    for column in (
        "energy_per_token_joules",
        "energy_per_request_joules",
        "median_itl_ms",
        "output_throughput_tokens_per_sec",
        "max_num_seqs",
        "avg_output_len",
    ):
        assert column in llm.columns, column
    assert (llm["energy_per_output_joules"] == llm["energy_per_request_joules"]).all()
    assert (llm["batch_size"] == llm["max_num_seqs"]).all()
    assert (llm["output_unit"] == "response").all()


def test_diffusion_columns_and_meaning(diffusion):
    for column in ("batch_latency_s", "throughput_outputs_per_sec", "height_pixels", "width_pixels", "num_frames"):
        assert column in diffusion.columns, column
    images = diffusion[diffusion["task"] == "text-to-image"]
    videos = diffusion[diffusion["task"] == "text-to-video"]
    assert (images["energy_per_output_joules"] == images["energy_per_image_joules"]).all()
    assert (videos["energy_per_output_joules"] == videos["energy_per_video_joules"]).all()
    assert (images["output_unit"] == "image").all() and (videos["output_unit"] == "video").all()
    assert (images["num_frames"] == 1).all() and (videos["num_frames"] > 1).all()


def test_numeric_columns_carry_units(llm, diffusion):
    frame = pd.concat([llm, diffusion], ignore_index=True)
    missing = [
        column
        for column in frame.columns
        if pd.api.types.is_numeric_dtype(frame[column])
        and not pd.api.types.is_bool_dtype(frame[column])
        and column not in UNITLESS
        and not column.endswith(UNIT_SUFFIXES)
    ]
    assert not missing, f"numeric columns without a unit in their name: {missing}"


def test_all_table_stacks_both(ref_dir, llm, diffusion):
    table = reference.all_table(ref_dir)
    assert len(table) == len(llm) + len(diffusion)
    assert set(table["task"]) == set(reference.TASKS)


def test_tables_are_copies(ref_dir):
    first = reference.llm_table(ref_dir)
    first["energy_per_token_joules"] = -1.0
    assert reference.llm_table(ref_dir)["energy_per_token_joules"].gt(0).all()


# --- failures: a temporary copy of the reference folder ------------------------------------------------
@pytest.fixture
def ref_copy(ref_dir, tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(ref_dir, copy)
    monkeypatch.setenv(reference.ENV_VAR, str(copy))
    return copy


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, f"error is not one line: {text!r}"
    return text


def test_checksum_failure_names_the_file(ref_copy):
    target = ref_copy / "tasks" / "gpqa.json"
    target.write_bytes(target.read_bytes().replace(b"Qwen", b"Qwem", 1))
    with pytest.raises(ReferenceDataError) as info:
        reference.llm_table()
    message = _one_line(info.value)
    assert "tasks/gpqa.json" in message and "checksum" in message


def test_missing_file_names_the_file(ref_copy):
    (ref_copy / "tasks" / "text-to-video.json").unlink()
    with pytest.raises(ReferenceDataError) as info:
        reference.diffusion_table()
    message = _one_line(info.value)
    assert "tasks/text-to-video.json" in message and "missing" in message


def test_verify_all_checks_every_pinned_file(ref_copy):
    assert reference.verify_all() == len(reference.manifest())
    victim = sorted(p for p in reference.manifest() if p.startswith("models/"))[0]
    (ref_copy / victim).write_text("{}")
    with pytest.raises(ReferenceDataError, match=victim.replace(".", r"\.")):
        reference.verify_all()


def test_cli_reports_a_bad_file_in_one_line(ref_copy):
    (ref_copy / "index.json").write_text("{}")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "reference"],
        capture_output=True,
        text=True,
        env={**os.environ, reference.ENV_VAR: str(ref_copy)},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "index.json" in lines[0], proc.stderr
