"""Own runs beside the published ones (harness.analysis.measurements) and the chapter that shows them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import measurements as M
from harness.errors import ReferenceDataError
from harness.measuring import store
from harness.vocabulary.tasks import TEXT_LLM_TASKS
from support import REFERENCE_DIR as REF

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def reference(monkeypatch):
    if "HARNESS_REFERENCE_DIR" not in os.environ and REF.is_dir():
        monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(REF))
    from harness.analysis import summary

    try:
        return summary.load("reference")
    except ReferenceDataError as exc:
        pytest.skip(str(exc))


def _write_run(
    root: Path,
    study: str,
    run_id: str,
    model: str,
    task: str,
    gpu_model: str | None,
    batch: int,
    metrics: dict,
    status: str = "ok",
    length_source: str | None = None,
):
    llm = task in TEXT_LLM_TASKS
    config = {
        "study": study,
        "task": task,
        "backend": "vllm" if llm else "diffusers",
        "model": model,
        "num_gpus": 1,
        "tensor_parallel": 1,
        "expert_parallel": 1,
        "precision": "bfloat16",
        "max_num_seqs": batch if llm else None,
        "batch_size": None if llm else batch,
    }
    record = {
        "run_id": run_id,
        "study": study,
        "status": status,
        "cause": None if status == "ok" else "oom",
        "config": config,
        "environment": {"gpu_model": gpu_model, "gpu_count": 1 if gpu_model else 0},
        "metrics": metrics,
        "is_stable": True,
        "backend_info": {"lengths": {"extra": {"length_source_model": length_source}}},
    }
    store.write_run(store.run_path(root, study, run_id), record)


def test_own_runs_are_found_in_nested_result_folders(tmp_path):
    results = tmp_path / "results"
    _write_run(
        results,
        "smoke",
        "aaaaaaaaaaaa",
        "tiny-qwen3",
        "gpqa",
        None,
        4,
        {"avg_output_len": 400.0, "output_throughput_tokens_per_sec": 300.0},
        length_source="Qwen/Qwen3-8B",
    )
    _write_run(
        results,
        "smoke",
        "bbbbbbbbbbbb",
        "tiny-qwen3",
        "lm-arena-chat",
        None,
        4,
        {"avg_output_len": 40.0, "output_throughput_tokens_per_sec": 350.0},
        length_source="Qwen/Qwen3-8B",
    )
    _write_run(
        results / "H100",
        "gpu-check",
        "cccccccccccc",
        "llama-3.1-8b",
        "lm-arena-chat",
        "H100",
        8,
        {"energy_per_token_joules": 0.9, "energy_per_output_joules": 300.0},
    )
    _write_run(
        results / "H100", "gpu-check", "dddddddddddd", "llama-3.1-8b", "lm-arena-chat", "H100", 16, {}, status="failed"
    )
    own = M.own_runs(results)
    assert sorted(own["run_id"]) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc", "dddddddddddd"]
    by_id = own.set_index("run_id")
    assert by_id.loc["cccccccccccc", "reference_model_id"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert pd.isna(by_id.loc["aaaaaaaaaaaa", "reference_model_id"])  # tiny: no published counterpart
    assert by_id.loc["aaaaaaaaaaaa", "gpu"] == "1 x CPU" and by_id.loc["cccccccccccc", "gpu"] == "1 x H100"
    counts = M.status_counts(own)
    failed = counts[(counts["status"] == "failed")].iloc[0]
    assert (failed["study"], failed["runs"], failed["causes"]) == ("gpu-check", 1, "oom")
    ratio = M.length_ratio(own)
    assert ratio.iloc[0]["ratio"] == pytest.approx(10.0)
    assert M.own_runs(tmp_path / "missing").empty


def test_published_counterparts_match_architecture_task_gpu_and_batch(tmp_path, reference):
    results = tmp_path / "results"
    _write_run(
        results / "H100",
        "gpu-check",
        "cccccccccccc",
        "llama-3.1-8b",
        "lm-arena-chat",
        "H100",
        8,
        {"energy_per_token_joules": 0.9, "median_itl_ms": 20.0},
    )
    _write_run(results, "smoke", "aaaaaaaaaaaa", "tiny-llama", "lm-arena-chat", None, 8, {"median_itl_ms": 9.0})
    own = M.own_runs(results)
    published = M.reference_counterparts(own, reference)
    assert set(published["model_id"]) == {"meta-llama/Llama-3.1-8B-Instruct"}
    assert set(published["gpu_model"]) == {"H100"} and set(published["task"]) == {"lm-arena-chat"}
    assert set(published["num_gpus"]) == {1.0} and len(published) > 3  # the whole batch-size curve
    pairs = M.side_by_side(own, reference)
    assert len(pairs) == 1
    row = pairs.iloc[0]
    expected = published.loc[published["batch_size"] == 8, "energy_per_token_joules"].iloc[0]
    assert row["ratio_energy_per_token_joules"] == pytest.approx(0.9 / expected)


def test_the_chapter_runs_without_own_results_and_says_so(tmp_path, reference):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "your-measurements.ipynb"),
        str(out),
        parameters={"results_dir": str(tmp_path / "no-results")},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(REPO),
    )
    text = json.dumps(json.loads(out.read_text())["cells"])
    assert "No own measurements were found under" in text and '"ename"' not in text


def test_the_outcome_table_names_damaged_runs_and_their_file(tmp_path, no_nvml):
    from harness.cli import main

    results = tmp_path / "results"
    assert main(["measure", "configs/trivial-cpu.yaml", "--results", str(results), "--no-progress"]) == 0
    victim = sorted((results / "trivial-cpu").iterdir())[0]
    with open(victim / "requests.parquet", "ab") as fh:
        fh.write(b"edited by hand")
    table = M.status_counts(M.own_runs(results))
    damaged = table[table["status"] == "corrupt"]
    assert damaged["runs"].tolist() == [1]
    assert "damaged" in damaged["causes"].iloc[0] and "requests.parquet" in damaged["causes"].iloc[0]
    assert table.loc[table["status"] == "ok", "runs"].tolist() == [2]


def _tiny_sweep(results: Path) -> None:
    for i, b in enumerate([1, 2, 4, 8]):
        _write_run(
            results,
            "smoke",
            f"aaaaaaaaaaa{i}",
            "tiny-qwen3",
            "lm-arena-chat",
            None,
            b,
            {"output_throughput_tokens_per_sec": 100.0 * b**0.8, "median_itl_ms": 10.0 + b, "avg_batch_size": float(b)},
        )


def test_own_trends_share_a_relative_axis_with_the_full_size_curve(tmp_path, reference):
    results = tmp_path / "results"
    _tiny_sweep(results)
    trends = M.relative_trends(M.own_runs(results), reference, "output_throughput_tokens_per_sec")
    own = trends[trends["origin"] == "own"].sort_values("batch_size")
    assert own[M.RELATIVE].iloc[0] == pytest.approx(1.0)
    assert own[M.RELATIVE].iloc[-1] == pytest.approx(8**0.8)
    pub = trends[trends["origin"] == "published"]
    assert set(pub["model_id"]) == {"Qwen/Qwen3-8B"}  # tiny-qwen3 is a copy of the Qwen3 8B architecture
    assert pub.groupby("series")[M.RELATIVE].first().eq(1.0).all()
    assert pub["num_gpus"].eq(1).all() and pub["batch_size"].is_unique
    assert "lm-arena-chat" not in " ".join(trends["series"])  # task names, not ids, in legends
    assert M.relative_trends(M.own_runs(tmp_path / "none"), reference, "output_throughput_tokens_per_sec").empty


def test_the_chapter_reads_with_own_runs(tmp_path, reference):
    papermill = pytest.importorskip("papermill")
    results = tmp_path / "results"
    _tiny_sweep(results)
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "your-measurements.ipynb"),
        str(out),
        parameters={"results_dir": str(results)},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(REPO),
    )
    text = json.dumps(json.loads(out.read_text())["cells"])
    assert '"ename"' not in text
    assert "There are 4 own runs in 1 study" in text and "studies" not in text.split("There are 4 own runs")[1][:40]
    assert "What a CPU smoke run can and cannot show" in text
    assert "Gain from batching in the own runs" in text and "Qwen 3 8B (published)" in text
    assert "None of them carries energy" in text  # no counter: energy is missing, not 0 J


def test_a_committed_run_and_one_measured_here_keep_apart_series(tmp_path):
    """The same configuration measured here (results/<study>/) and committed with the repository (a folder below):
    two series, so a chart does not join their points into one line."""
    results = tmp_path / "results"
    for root in (results, results / "cpu-2core"):
        _write_run(root, "smoke", "aaaaaaaaaaaa", "tiny-qwen3", "lm-arena-chat", None, 4, {"avg_output_len": 40.0})
    own = M.own_runs(results).sort_values("committed")
    assert own["committed"].tolist() == [False, True]
    here, committed = own["series"].tolist()
    assert here != committed
    assert here.startswith("tiny-qwen3 (own), ") and committed.startswith("tiny-qwen3 (own, committed), ")
    assert M.own_runs(results / "cpu-2core")["committed"].tolist() == [False]  # read as a results folder itself
