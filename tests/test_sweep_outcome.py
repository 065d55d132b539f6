"""A sweep reports its outcome honestly: one line per status and cause, a non-zero exit for failures of setup
(measured outcomes keep 0), ``reference-unavailable`` with how to provide the data, refused before any run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.cli import main
from harness.errors import ReferenceDataError
from harness.measuring import store
from harness.orchestration import outcome
from harness.workloads import lengths


def _config(tmp_path: Path, name: str = "t", **options) -> Path:
    run = {
        "task": "cpu-trivial",
        "backend": "trivial",
        "models": ["cpu-spin"],
        "num_requests": 8,
        "max_output_tokens": 4,
        "options": {"step_s": 0.001, **options},
        "grid": {"max_num_seqs": [1, 4, 8]},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"study": name, "settings": {"idle_power_s": 0, "cooldown_s": 0}, "runs": [run]}))
    return path


def _measure(path: Path, results: Path, capsys) -> tuple[int, str, str]:
    rc = main(["measure", str(path), "--results", str(results), "--no-progress"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _statuses(results: Path, study: str = "t") -> list[tuple[str, str | None]]:
    return sorted(
        (r["status"], r["cause"])
        for r in (json.loads((d / "run.json").read_text()) for d in store.iter_run_dirs(results, study))
    )


def test_a_failure_of_setup_fails_the_sweep_and_is_measured_again(tmp_path, no_nvml, capsys):
    cfg = _config(tmp_path, fail_cause="bad-config", fail_from_max_num_seqs=4)
    results = tmp_path / "results"
    rc, out, _ = _measure(cfg, results, capsys)
    assert rc == outcome.SETUP_EXIT_STATUS != 0
    assert _statuses(results) == [("failed", "bad-config"), ("failed", "bad-config"), ("ok", None)]
    summary = [line.strip() for line in out.splitlines()]
    assert any(
        line.startswith("failed (bad-config): 2 runs -- setup, nothing measured: injected failure") for line in summary
    ), out
    assert any(line.startswith("sweep failed: 2 runs failed for a reason of setup") for line in summary), out
    # the next measure takes the two failed runs again (the old folders kept aside), not the finished one
    rc, out, _ = _measure(cfg, results, capsys)
    assert rc == outcome.SETUP_EXIT_STATUS
    assert "1 already done" in out and "failed (bad-config): 2 runs" in out
    kept = [p.name for p in (results / "t" / ".replaced").iterdir()]
    assert len(kept) == 2 and all(name.endswith("-setup-failed") for name in kept)


def test_measured_outcomes_keep_exit_zero(tmp_path, no_nvml, capsys):
    cfg = _config(tmp_path, fail_cause="oom", fail_from_max_num_seqs=4)
    results = tmp_path / "results"
    rc, out, _ = _measure(cfg, results, capsys)
    assert rc == 0
    assert _statuses(results)[:2] == [("failed", "oom"), ("ok", None)]
    lines = [line.strip() for line in out.splitlines()]
    assert any(line.startswith("failed (oom): 1 run -- measured outcome") for line in lines), out
    assert any(line.startswith("skipped (a smaller batch of its series ran out of memory") for line in lines), out
    assert not any(line.startswith("sweep failed") for line in lines)


def test_outcome_lines_group_by_status_and_cause():
    tally = outcome.Outcome()
    for record in (
        {"status": "ok", "is_stable": True},
        {"status": "ok", "is_stable": True},
        {"status": "failed", "cause": "reference-unavailable", "message": "reference file x is missing\nmore"},
        {"status": "failed", "cause": "timeout", "message": "run exceeded run_timeout_s=5"},
    ):
        tally.add(record)
    assert tally.lines() == [
        "failed (reference-unavailable): 1 run -- setup, nothing measured: reference file x is missing",
        "failed (timeout): 1 run -- measured outcome: run exceeded run_timeout_s=5",
        "ok: 2 runs",
    ]
    assert tally.setup_failures == 1 and tally.verdict().startswith("sweep failed: 1 run failed")
    assert outcome.retry_state("failed", {"status": "failed", "cause": "no-engine"}) == outcome.SETUP_FAILED
    assert outcome.retry_state("failed", {"status": "failed", "cause": "oom"}) == "failed"


def test_unreadable_reference_data_is_its_own_cause_with_how_to_provide_it():
    cause, message = lengths.reference_failure(
        ReferenceDataError("reference file models/x__gpqa.json is missing from /nowhere")
    )
    assert cause == "reference-unavailable"
    assert "HARNESS_REFERENCE_DIR" in message and "python -m harness reference" in message and "\n" not in message
    cause, _ = lengths.reference_failure(ReferenceDataError("no published output lengths for model 'x' on task 'y'"))
    assert cause == "bad-config"


def _llm_config(tmp_path: Path) -> Path:
    run = {
        "task": "gpqa",
        "backend": "transformers",
        "models": ["tiny-llama"],
        "num_requests": 4,
        "max_output_tokens": 4,
        "options": {"device": "cpu"},
        "grid": {"max_num_seqs": [1]},
    }
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump({"study": "llm", "settings": {"idle_power_s": 0}, "runs": [run]}))
    return path


def test_measure_without_the_published_data_refuses_before_any_run(tmp_path, no_nvml, capsys, monkeypatch):
    empty = tmp_path / "no-reference"
    empty.mkdir()
    monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(empty))
    results = tmp_path / "results"
    rc, out, err = _measure(_llm_config(tmp_path), results, capsys)
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "HARNESS_REFERENCE_DIR" in lines[0] and "nothing was started or written" in lines[0]
    assert not results.exists() or not any(results.rglob("run.json"))


def test_a_fresh_clone_without_the_data_or_the_network_refuses_measure(tmp_path, no_nvml, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.delenv("HARNESS_REFERENCE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing cached
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    results = tmp_path / "results"
    rc, _, err = _measure(_llm_config(tmp_path), results, capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "could not be downloaded" in lines[0]
    assert "HARNESS_REFERENCE_DIR" in lines[0] and "python -m harness reference" in lines[0]
    assert not results.exists()
