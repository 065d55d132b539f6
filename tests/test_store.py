"""Run store: atomic writes (also under SIGKILL), checksum verification, the collected table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.measuring import store


def _record(status="ok", **metrics):
    return {
        "run_id": "abc123abc123",
        "study": "s",
        "status": status,
        "cause": None,
        "is_stable": True,
        "unstable_reason": "",
        "failed_checks": [],
        "config": {
            "study": "s",
            "task": "lm-arena-chat",
            "family": "llm-chat",
            "backend": "vllm",
            "model": "tiny-llama",
            "num_gpus": 2,
            "tensor_parallel": 2,
            "expert_parallel": 1,
            "precision": "bfloat16",
            "max_num_seqs": 16,
            "max_num_batched_tokens": 8192,
            "batch_size": None,
            "num_requests": 64,
            "seed": 0,
        },
        "environment": {"gpu_model": "H100", "gpu_count": 8},
        "metrics": {
            "energy_per_token_joules": 0.25,
            "energy_per_request_joules": 50.0,
            "energy_per_output_joules": 50.0,
            "avg_power_watts": 900.0,
            "median_itl_ms": 12.0,
            "energy_source": "zeus/nvml-energy-counter; cpu: zeus/rapl",
            **metrics,
        },
    }


def _write(run_dir: Path, **kw) -> None:
    frame = pd.DataFrame({"time_s": [1.0, 2.0], "power_watts": [100.0, float("nan")]})
    store.write_run(run_dir, _record(**kw), {"timeline.parquet": frame, "requests.parquet": frame})


def test_atomic_write_leaves_no_temporaries(tmp_path):
    target = tmp_path / "a" / "f.bin"
    store.atomic_write_bytes(target, b"one")
    store.atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_written_run_verifies_and_json_has_no_nan(tmp_path):
    run_dir = tmp_path / "s" / "abc123abc123"
    _write(run_dir, avg_kv_cache_usage_fraction=float("nan"))
    assert store.verify(run_dir) == []
    listed = (run_dir / store.CHECKSUMS).read_text().split()
    assert listed[1::2] == ["requests.parquet", "run.json", "timeline.parquet"]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["metrics"]["avg_kv_cache_usage_fraction"] is None and record["schema_version"] == 1
    assert store.result_state(run_dir) == ("ok", record)


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: (d / "timeline.parquet").write_bytes((d / "timeline.parquet").read_bytes()[:100]),
            "timeline.parquet was altered or truncated",
        ),
        (
            lambda d: (d / "run.json").write_text((d / "run.json").read_text().replace("0.25", "0.2")),
            "run.json was altered or truncated",
        ),
        (lambda d: (d / "requests.parquet").unlink(), "requests.parquet is missing"),
        (lambda d: (d / "extra.csv").write_text("x"), "extra.csv is not listed"),
        (lambda d: (d / store.CHECKSUMS).unlink(), "no checksums.sha256"),
    ],
)
def test_damage_is_detected(tmp_path, damage, message):
    run_dir = tmp_path / "s" / "abc123abc123"
    _write(run_dir)
    damage(run_dir)
    problems = store.verify(run_dir)
    assert any(p.startswith(message) for p in problems), problems
    assert store.result_state(run_dir)[0] == "corrupt"
    row = store.collect(tmp_path).iloc[0]
    assert row["status"] == "corrupt" and message in row["problems"]
    assert pd.isna(row["energy_per_token_joules"]) and not row["is_stable"]  # never silently mixed in


def test_hidden_temporaries_do_not_break_verification(tmp_path):
    run_dir = tmp_path / "s" / "abc123abc123"
    _write(run_dir)
    (run_dir / ".run.json.x1y2.tmp").write_bytes(b"half")  # what a killed writer leaves behind
    assert store.verify(run_dir) == []


WRITER = """
import sys
from harness.measuring.store import atomic_write_bytes
payloads = [bytes([65 + i]) * (4 << 20) for i in range(2)]
print("ready", flush=True)
i = 0
while True:
    atomic_write_bytes(sys.argv[1], payloads[i % 2])
    i += 1
"""


def test_a_writer_killed_mid_write_leaves_old_or_new_file_never_half(tmp_path):
    target = tmp_path / "run.json"
    full = {b"A" * (4 << 20), b"B" * (4 << 20)}
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.05 + 0.07 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if target.exists():
            assert target.read_bytes() in full
    assert target.exists()


def test_collect_uses_reference_column_names(tmp_path):
    _write(tmp_path / "s" / "abc123abc123")
    skipped = _record(status="skipped") | {"run_id": "def456def456", "cause": "max_num_seqs=8 ran out of memory"}
    store.write_run(tmp_path / "s" / "def456def456", skipped)
    frame = store.collect(tmp_path)
    for column in (
        "energy_per_token_joules",
        "energy_per_request_joules",
        "avg_power_watts",
        "median_itl_ms",
        "p90_itl_ms",
        "avg_batch_size",
        "avg_output_len",
        "output_throughput_tokens_per_sec",
        "max_num_seqs",
        "num_gpus",
        "gpu_model",
        "model_id",
        "task",
        "energy_per_image_joules",
        "energy_per_video_joules",
        "batch_latency_s",
        "batch_size",
        "energy_per_output_joules",
        "output_unit",
        "source",
        "is_reference",
        "energy_source",
        "is_stable",
        "unstable_reason",
        "status",
    ):
        assert column in frame.columns, column
    ok = frame.set_index("run_id").loc["abc123abc123"]
    assert ok["energy_per_token_joules"] == 0.25 and ok["gpu"] == "2 x H100" and ok["output_unit"] == "response"
    assert ok["source"] == "own" and not ok["is_reference"] and ok["is_stable"] and ok["batch_size"] == 16
    assert ok["energy_source"].startswith("zeus/nvml-energy-counter")
    skip = frame.set_index("run_id").loc["def456def456"]
    assert skip["status"] == "skipped" and not skip["is_stable"] and "out of memory" in skip["unstable_reason"]
    assert store.collect(tmp_path / "nothing").empty


def test_incomplete_runs_are_not_results(tmp_path):
    run_dir = tmp_path / "s" / "abc123abc123"
    store.write_run(run_dir, _record(status="incomplete"))
    assert store.result_state(run_dir)[0] == "incomplete"
    assert "incomplete" not in store.DONE_STATUSES
    os.remove(run_dir / store.CHECKSUMS)  # killed before the checksums: still incomplete, not corrupt
    assert store.result_state(run_dir)[0] == "incomplete"


def test_study_results_reads_a_finished_run_once_and_anything_else_every_time(tmp_path, monkeypatch):
    reads = []
    verify = store.verify
    monkeypatch.setattr(store, "verify", lambda run_dir: reads.append(Path(run_dir).name) or verify(run_dir))
    index = store.StudyResults(tmp_path, "s")
    assert index.path("abc123abc123") == store.run_path(tmp_path, "s", "abc123abc123")
    assert index.state("abc123abc123") == ("missing", None)
    _write(tmp_path / "s" / "abc123abc123")  # another process writes it: a missing run is looked at again
    assert [index.state("abc123abc123")[0] for _ in range(3)] == ["ok"] * 3
    assert reads == ["abc123abc123"]  # verified once, then known
    store.write_run(tmp_path / "s" / "abc123abc123", _record(status="failed"))
    assert index.state("abc123abc123")[0] == "ok"  # still the state read before ...
    index.forget("abc123abc123")  # ... until the writer says so
    assert index.state("abc123abc123")[0] == "failed" and len(reads) == 2
    store.write_run(tmp_path / "s" / "abc999abc999", _record(status="incomplete"))
    assert [index.state("abc999abc999")[0] for _ in range(2)] == ["incomplete"] * 2
    index.note("abc999abc999", "incomplete", None)  # not a result: nothing kept
    (tmp_path / "s" / "abc999abc999" / "run.json").write_text('{"status": "ok"}')
    assert index.state("abc999abc999")[0] == "corrupt"  # read again: an unfinished run may change under us


def test_find_run(tmp_path):
    _write(tmp_path / "s" / "abc123abc123")
    _write(tmp_path / "t" / "abc999abc999")
    assert store.find_run("abc123", tmp_path) == tmp_path / "s" / "abc123abc123"
    assert store.find_run(str(tmp_path / "t" / "abc999abc999"), tmp_path).name == "abc999abc999"
    with pytest.raises(store.HarnessError, match="ambiguous"):
        store.find_run("abc", tmp_path)
    with pytest.raises(store.HarnessError, match="no run 'zzz'"):
        store.find_run("zzz", tmp_path)
