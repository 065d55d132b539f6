"""The harness commands: measure, list, show, env (in process, through harness.cli.main)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.orchestration.study import load_study

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "trivial-cpu.yaml"


@pytest.mark.parametrize("command", ["measure", "list", "show", "env"])
def test_each_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: python -m harness {command}" in capsys.readouterr().out


def test_env_prints_the_capture(capsys, no_nvml):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "nvml" in out and "unavailable (NVML:" in out and "zeus=0.16.0" in out and "commit=" in out
    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["gpu_count"] == 0 and info["packages"]["nvidia-ml-py"] and info["python"].startswith("3.")
    assert set(info["git"]) >= {"commit", "dirty"} and info["cpu_count"] >= 1


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    results = tmp_path_factory.mktemp("cli") / "results"
    assert main(["measure", str(CONFIG), "--results", str(results), "--no-progress"]) == 0
    return results


def test_measure_then_list_and_show(measured, capsys):
    capsys.readouterr()
    ids = [c.run_id for c in load_study(CONFIG).configurations]
    assert main(["list", "--results", str(measured)]) == 0
    out = capsys.readouterr().out
    for run_id in ids:
        assert f"trivial-cpu      {run_id} ok         yes    cpu-spin" in out
    assert out.strip().endswith("3 ok")
    assert main(["show", ids[1][:6], "--results", str(measured)]) == 0
    out = capsys.readouterr().out
    assert "status     ok" in out and "integrity  ok" in out and "max_num_seqs=4" in out
    assert "steady_output_tokens" in out and "energy_source" in out
    assert main(["show", str(measured / "trivial-cpu" / ids[0]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == ids[0]


def test_measuring_again_measures_nothing(measured, capsys):
    capsys.readouterr()
    assert main(["measure", str(CONFIG), "--results", str(measured), "--no-progress"]) == 0
    assert "nothing to measure: all 3 configurations of trivial-cpu have results" in capsys.readouterr().out


def test_list_flags_corrupt_runs(measured, tmp_path, capsys):
    copy = tmp_path / "results"
    shutil.copytree(measured, copy)
    run_dir = next((copy / "trivial-cpu").iterdir())
    with open(run_dir / "requests.parquet", "r+b") as fh:
        fh.truncate(50)
    capsys.readouterr()
    assert main(["list", "--results", str(copy)]) == 1
    out = capsys.readouterr().out
    assert f"{run_dir.name} corrupt" in out and "CORRUPT: requests.parquet was altered or truncated" in out
    assert main(["show", run_dir.name, "--results", str(copy)]) == 1
    assert "integrity  CORRUPT" in capsys.readouterr().out


def test_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "study: s\nruns: [{task: cpu-trivial, backend: trivial, models: [cpu-spin], grid: {max_num_seqs: [0]}}]\n"
    )
    results = tmp_path / "results"
    assert main(["measure", str(bad), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs[0].grid.max_num_seqs[0]: must be a positive integer, got 0" in err
    assert main(["measure", str(CONFIG), "--results", str(results), "--index", "3"]) == 2
    assert "--index 3 is out of range" in capsys.readouterr().err
    assert main(["show", "feedface", "--results", str(results)]) == 2
    assert "no run 'feedface'" in capsys.readouterr().err
    assert not results.exists()


def test_dry_run_lists_and_writes_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["measure", str(CONFIG), "--results", str(results), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("  measure") == 3 and "3 of 3 configurations to measure (dry run: nothing written)" in out
    assert not results.exists()


def test_a_failed_array_task_exits_non_zero_but_a_sweep_does_not(tmp_path, capsys, no_nvml):
    config = tmp_path / "fail.yaml"
    config.write_text(
        "study: failing\nsettings: {idle_power_s: 0, cooldown_s: 0}\nruns:\n"
        "  - task: cpu-trivial\n    backend: trivial\n    models: [cpu-spin]\n    num_requests: 8\n"
        "    options: {fail_cause: server-died, fail_from_max_num_seqs: 4}\n"
        "    grid: {max_num_seqs: [1, 4]}\n"
    )
    results = tmp_path / "results"
    assert main(["measure", str(config), "--results", str(results), "--index", "0", "--no-progress"]) == 0
    assert main(["measure", str(config), "--results", str(results), "--index", "1", "--no-progress"]) == 1
    # the whole sweep has an outcome for every configuration: exit 0
    assert main(["measure", str(config), "--results", str(results), "--force", "--no-progress"]) == 0
    assert "1 failed" in capsys.readouterr().out


def test_a_sweep_says_plainly_when_the_host_has_no_energy_counter(tmp_path, capsys, no_nvml):
    assert main(["measure", "configs/trivial-cpu.yaml", "--results", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "this host has no GPU energy counter" in out and "energy is not" in out


def test_the_energy_notice_names_the_gpus_where_there_are_some():
    from harness.orchestration.runner import energy_notice

    line = energy_notice({"gpu_count": 2, "gpu_model": "H100", "nvml": "ok"})
    assert "2 x H100" in line and "no GPU energy counter" not in line
