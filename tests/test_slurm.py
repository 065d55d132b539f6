"""``harness submit`` / ``harness status``: script generation (no Slurm needed) and a real local cluster.

The cluster tests (marker ``slurm``) start munged, slurmctld and slurmd from
tests/slurm_cluster.py once for the module and stop them by PID at the end,
also when a test fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import slurm
from harness.cli import main as cli
from harness.config import load_study

sys.path.insert(0, str(Path(__file__).parent))
from slurm_cluster import LocalSlurm, missing_binaries  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

TRIVIAL = """\
study: {name}
description: four tiny CPU configurations
settings: {{cooldown_s: 0, idle_power_s: 0, run_timeout_s: 120}}
runs:
  - task: cpu-trivial
    backend: trivial
    models: [cpu-spin]
    num_requests: {requests}
    grid:
      max_num_seqs: [1, 2, 3, 4]
"""


def write_trivial(tmp_path: Path, name: str = "slurm-trivial", requests: int = 8) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TRIVIAL.format(name=name, requests=requests))
    return path


# -- no Slurm needed -----------------------------------------------------------------------------
@pytest.mark.parametrize("indices,expected", [
    ([0, 1, 2, 5, 7, 8], "0-2,5,7-8"),
    ([5, 0, 2], "0,2,5"),
    ([3], "3"),
    ([4, 4, 5], "4-5"),
])
def test_compact_indices(indices, expected):
    assert slurm.compact_indices(indices) == expected


def test_cpu_configurations_request_no_gpu(tmp_path):
    study = load_study(write_trivial(tmp_path))
    plans = slurm.plan_arrays(study, [0, 2, 3])
    assert plans == [slurm.ArrayPlan(num_gpus=0, indices=(0, 2, 3))]
    text = slurm.render_script(study, plans[0], tmp_path / "results", slurm.SubmitOptions())
    assert "--gres" not in text and "--gpus" not in text
    assert "#SBATCH --array=0,2-3" in text


def test_script_is_plain_and_runs_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_REFERENCE_DIR", "/data/ref dir")
    config = write_trivial(tmp_path)
    study = load_study(config)
    options = slurm.SubmitOptions(partition="gpu", time_limit="01:30:00", cpus_per_task=8, max_parallel=2,
                                  sbatch_args=("--account=proj", "--exclusive"), python="/opt/venv/bin/python")
    text = slurm.render_script(study, slurm.ArrayPlan(2, (1, 3)), tmp_path / "res", options)
    directives = [ln.split(None, 1)[1] for ln in text.splitlines() if ln.startswith("#SBATCH ")]
    logs = tmp_path.resolve() / "res" / "slurm-trivial" / "slurm" / "logs"
    assert directives == [
        "--job-name=harness-slurm-trivial", "--array=1,3%2", f"--output={logs}/%A_%a.out", "--ntasks=1",
        "--time=01:30:00", "--gres=gpu:2", "--cpus-per-task=8", "--partition=gpu", "--account=proj", "--exclusive",
    ]
    # sbatch reads #SBATCH lines only before the first command: every directive comes first.
    first_command = next(i for i, ln in enumerate(text.splitlines()) if ln and not ln.startswith("#"))
    assert max(i for i, ln in enumerate(text.splitlines()) if ln.startswith("#SBATCH")) < first_command
    assert text.startswith("#!/bin/bash\n")
    assert 'exec "$PYTHON" -m harness measure "$CONFIG" --index "$SLURM_ARRAY_TASK_ID" --results "$RESULTS"' in text
    assert f"CONFIG={config.resolve()}" in text and "PYTHON=/opt/venv/bin/python" in text
    assert "export HARNESS_REFERENCE_DIR='/data/ref dir'" in text
    for index in (1, 3):  # the index -> configuration table names each run id
        assert study.configurations[index].run_id in text
    assert "pickle" not in text
    # bash accepts it
    script = tmp_path / "s.sbatch"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_script_refuses_a_changed_config(tmp_path):
    config = write_trivial(tmp_path)
    study = load_study(config)
    text = slurm.render_script(study, slurm.ArrayPlan(0, (0,)), tmp_path / "res",
                               slurm.SubmitOptions(python="/bin/echo"))
    script = tmp_path / "s.sh"
    script.write_text(text)
    env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "7"}
    ok = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"-m harness measure {config.resolve()} --index 0" in ok.stdout
    config.write_text(config.read_text().replace("[1, 2, 3, 4]", "[4, 3, 2, 1]"))
    changed = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert changed.returncode == 3 and "changed since this array was submitted" in changed.stderr


def test_default_time_limit_follows_the_study(tmp_path):
    study = load_study(write_trivial(tmp_path))  # run_timeout_s 120 + 15 min margin
    assert slurm.default_time_limit(study) == "0-00:17:00"


def test_submit_dry_run_prints_and_writes_nothing(tmp_path, capsys):
    config = write_trivial(tmp_path)
    results = tmp_path / "results"
    assert cli(["submit", str(config), "--results", str(results), "--dry-run", "--partition", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-3" in out and "#SBATCH --partition=cpu" in out
    assert not results.exists()


def test_bad_sbatch_arg_is_one_line_error(tmp_path, capsys):
    config = write_trivial(tmp_path)
    assert cli(["submit", str(config), "--dry-run", "--sbatch-arg=account=proj"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sbatch-arg 'account=proj'") and err.count("\n") == 1
