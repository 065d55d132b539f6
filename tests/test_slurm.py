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

from harness.cli import main as cli
from harness.orchestration import slurm
from harness.orchestration.study import load_study

sys.path.insert(0, str(Path(__file__).parent))
from slurm_cluster import LocalSlurm, missing_binaries

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
@pytest.mark.parametrize(
    "indices,expected",
    [
        ([0, 1, 2, 5, 7, 8], "0-2,5,7-8"),
        ([5, 0, 2], "0,2,5"),
        ([3], "3"),
        ([4, 4, 5], "4-5"),
    ],
)
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
    options = slurm.SubmitOptions(
        partition="gpu",
        time_limit="01:30:00",
        cpus_per_task=8,
        max_parallel=2,
        sbatch_args=("--account=proj", "--exclusive"),
        python="/opt/venv/bin/python",
    )
    text = slurm.render_script(study, slurm.ArrayPlan(2, (1, 3)), tmp_path / "res", options)
    directives = [ln.split(None, 1)[1] for ln in text.splitlines() if ln.startswith("#SBATCH ")]
    logs = tmp_path.resolve() / "res" / "slurm-trivial" / "slurm" / "logs"
    assert directives == [
        "--job-name=harness-slurm-trivial",
        "--array=1,3%2",
        f"--output={logs}/%A_%a.out",
        "--ntasks=1",
        "--time=01:30:00",
        "--gres=gpu:2",
        "--cpus-per-task=8",
        "--partition=gpu",
        "--account=proj",
        "--exclusive",
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
    text = slurm.render_script(
        study, slurm.ArrayPlan(0, (0,)), tmp_path / "res", slurm.SubmitOptions(python="/bin/echo")
    )
    script = tmp_path / "s.sh"
    script.write_text(text)
    env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "7"}
    ok = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"-m harness measure {config.resolve()} --index 0" in ok.stdout
    config.write_text(config.read_text().replace("[1, 2, 3, 4]", "[4, 3, 2, 1]"))
    changed = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert changed.returncode == 3 and "changed since this array was submitted" in changed.stderr


def test_gpu_type_names_the_gres(tmp_path):
    study = load_study(write_trivial(tmp_path))
    text = slurm.render_script(study, slurm.ArrayPlan(4, (0,)), tmp_path, slurm.SubmitOptions(gpu_type="h100"))
    assert "#SBATCH --gres=gpu:h100:4\n" in text


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


def test_submit_without_slurm_is_one_line_error(tmp_path, monkeypatch, capsys):
    config = write_trivial(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert cli(["submit", str(config), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sbatch not found") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()  # nothing written when nothing could be submitted


def test_status_without_submissions_reads_the_store(tmp_path, capsys):
    config = write_trivial(tmp_path)
    results = tmp_path / "r"
    assert cli(["measure", str(config), "--results", str(results), "--index", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert cli(["status", str(config), "--results", str(results), "--json"]) == 0
    states = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["state"] for s in states] == ["not-submitted", "done", "not-submitted", "not-submitted"]
    assert cli(["submit", str(config), "--results", str(results), "--dry-run"]) == 0
    assert "#SBATCH --array=0,2-3" in capsys.readouterr().out  # the measured one is left out


# -- a real Slurm cluster ------------------------------------------------------------------------
# Fails the configuration with array index FAIL_INDEX while the flag file exists: a sitecustomize on
# PYTHONPATH (exported to the tasks by sbatch) makes the trivial backend raise a WorkloadError there,
# so the runner stores a real failed result; deleting the flag lets --retry-failed complete it.
SITECUSTOMIZE = """\
import os
if os.environ.get("SLURM_ARRAY_TASK_ID") == "{index}" and os.path.exists({flag!r}):
    from harness.workloads import trivial
    from harness.workloads.base import WorkloadError

    def _fail(self, cfg, meter):
        raise WorkloadError("injected by the test fixture for array task {index}", cause="injected")

    trivial.TrivialBackend.run = _fail
"""
FAIL_INDEX = 2

GPU_CONFIG = """\
study: slurm-gpu
settings: {run_timeout_s: 600}
runs:
  - task: lm-arena-chat
    backend: vllm
    models: [tiny-llama]
    num_requests: 16
    grid:
      num_gpus: [1, 2]
      tensor_parallel: [1]
      max_num_seqs: [4, 8]
"""


@pytest.fixture(scope="module")
def cluster():
    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm/munge not installed ({', '.join(missing)}): run `make system-deps`")
    import shutil
    import tempfile

    # A short path: the munge socket's path must stay under the 108-byte limit of Unix sockets.
    root = Path(tempfile.mkdtemp(prefix="harness-slurm-"))
    patch = pytest.MonkeyPatch()
    try:
        with LocalSlurm(root) as local:
            patch.setenv("SLURM_CONF", str(local.conf))  # sbatch/squeue called by harness.orchestration.slurm find it
            yield local
    finally:
        patch.undo()
        shutil.rmtree(root, ignore_errors=True)


def states_of(config: Path, results: Path, capsys) -> list[dict]:
    capsys.readouterr()
    assert cli(["status", str(config), "--results", str(results), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def key_paths(value, prefix="") -> set[str]:
    """Every key path of a JSON value (the schema, not the values)."""
    if isinstance(value, dict):
        out = {prefix or "."}
        for key, item in value.items():
            out |= key_paths(item, f"{prefix}.{key}")
        return out
    return {prefix}


@pytest.mark.slurm
def test_job_array_runs_fails_and_retries(cluster, tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    config = write_trivial(tmp_path)
    study = load_study(config)
    results = tmp_path / "results"
    flag = tmp_path / "fail-task"
    flag.touch()
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE.format(index=FAIL_INDEX, flag=str(flag)))
    monkeypatch.setenv("PYTHONPATH", str(inject))

    t0 = time.monotonic()
    assert cli(["submit", str(config), "--results", str(results), "--time", "5"]) == 0
    out = capsys.readouterr().out
    assert "submitted array job" in out and "[0-3]" in out and "CPU only" in out
    slurm_dir = results / study.name / "slurm"
    scripts = sorted(slurm_dir.glob("submit-*.sbatch"))
    assert len(scripts) == 1 and "#SBATCH --array=0-3" in scripts[0].read_text()
    ledger = slurm.read_ledger(results, study)
    assert len(ledger) == 1 and ledger[0]["run_ids"] == {str(i): c.run_id for i, c in enumerate(study.configurations)}
    job_id = ledger[0]["job_id"]

    # While queued: every task is pending or running, and nothing is submitted twice.
    queued = states_of(config, results, capsys)
    assert {s["state"] for s in queued} <= {"pending", "running"}, queued
    assert [s["job"] for s in queued] == [f"{job_id}_{i}" for i in range(4)]
    assert cli(["submit", str(config), "--results", str(results)]) == 0
    assert "nothing to submit" in capsys.readouterr().out
    assert len(slurm.read_ledger(results, study)) == 1

    elapsed = cluster.wait_for_empty_queue(timeout_s=60)
    with capsys.disabled():
        print(f"\n4-task array finished {time.monotonic() - t0:.1f} s after submit (queue drained in {elapsed:.1f} s)")

    # Three done, one failed with its reason and log.
    states = states_of(config, results, capsys)
    assert [s["state"] for s in states] == ["done", "done", "failed", "done"], states
    failed = states[FAIL_INDEX]
    assert "injected" in failed["reason"] and failed["stored"] == "failed"
    log = Path(failed["log"])
    assert log == slurm_dir / "logs" / f"{job_id}_{FAIL_INDEX}.out"
    assert "cause: injected" in log.read_text()  # the runner's line for the failed run
    assert cli(["status", str(config), "--results", str(results)]) == 0
    table = capsys.readouterr().out
    assert f"log: {log}" in table and "3 done, 1 failed (of 4)" in table

    # The Slurm run folders have the schema of a local `measure` run, plus the node's identity.
    local = tmp_path / "local"
    assert cli(["measure", str(config), "--results", str(local), "--index", "0", "--no-progress"]) == 0
    local_dir = local / study.name / study.configurations[0].run_id
    local_record = json.loads((local_dir / "run.json").read_text())
    for index in (0, 1, 3):
        run_dir = results / study.name / study.configurations[index].run_id
        assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) == sorted(
            p.name for p in local_dir.iterdir() if not p.name.startswith(".")
        )
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "ok"
        strip = {".environment.env"}
        assert {k for k in key_paths(record) if not k.startswith(".environment.env.")} - strip == {
            k for k in key_paths(local_record) if not k.startswith(".environment.env.")
        } - strip
        for table_name in ("requests.parquet", "timeline.parquet"):
            assert pq.read_schema(run_dir / table_name).equals(pq.read_schema(local_dir / table_name)), table_name
        env = record["environment"]["env"]
        assert env["SLURM_ARRAY_JOB_ID"] == job_id and env["SLURM_ARRAY_TASK_ID"] == str(index)
        assert env["SLURMD_NODENAME"] == "localhost" and env["SLURM_JOB_ID"].isdigit()
        assert "CUDA_VISIBLE_DEVICES" not in env  # no GPU was requested for a CPU configuration

    # A plain submit leaves the stored failure alone; --retry-failed resubmits only it and completes it.
    assert cli(["submit", str(config), "--results", str(results)]) == 0
    assert "nothing to submit" in (out := capsys.readouterr().out) and "--retry-failed" in out
    flag.unlink()
    # The retry also asks for a (pretend) GPU, so the task's environment capture must name it.
    assert cli(["submit", str(config), "--results", str(results), "--retry-failed", "--sbatch-arg=--gres=gpu:1"]) == 0
    out = capsys.readouterr().out
    assert f"[{FAIL_INDEX}]" in out
    retry_script = sorted(slurm_dir.glob("retry-*.sbatch"))
    assert len(retry_script) == 1
    text = retry_script[0].read_text()
    assert f"#SBATCH --array={FAIL_INDEX}\n" in text and "--force" in text and "#SBATCH --gres=gpu:1" in text
    cluster.wait_for_empty_queue(timeout_s=60)
    states = states_of(config, results, capsys)
    assert [s["state"] for s in states] == ["done"] * 4, states
    retry_job = slurm.read_ledger(results, study)[-1]["job_id"]
    assert states[FAIL_INDEX]["job"] == f"{retry_job}_{FAIL_INDEX}"
    record = json.loads((results / study.name / study.configurations[FAIL_INDEX].run_id / "run.json").read_text())
    assert record["status"] == "ok"
    assert record["environment"]["env"]["CUDA_VISIBLE_DEVICES"] in ("0", "1")
    replaced = list((results / study.name / ".replaced").iterdir())  # the failed attempt is kept, not lost
    assert len(replaced) == 1 and json.loads((replaced[0] / "run.json").read_text())["status"] == "failed"
    # Scheduler's own record: the first attempt of task 2 failed, the retry completed.
    comp = {(r["ArrayJobId"], r["ArrayTaskId"]): r["JobState"] for r in cluster.completed_jobs()}
    assert comp[(retry_job, str(FAIL_INDEX))] == "COMPLETED"
    with capsys.disabled():
        print(f"array, failure and retry: {time.monotonic() - t0:.1f} s")


@pytest.mark.slurm
def test_gpu_requests_reach_the_scheduler(cluster, tmp_path, capsys):
    config = tmp_path / "gpu.yaml"
    config.write_text(GPU_CONFIG)
    study = load_study(config)
    results = tmp_path / "results"
    # Held, so nothing runs (there is no GPU here); the scheduler still records each request.
    assert cli(["submit", str(config), "--results", str(results), "--sbatch-arg=--hold"]) == 0
    out = capsys.readouterr().out
    assert out.count("submitted array job") == 2
    ledger = slurm.read_ledger(results, study)
    by_gpus = {e["num_gpus"]: e for e in ledger}
    assert sorted(by_gpus) == [1, 2]
    for n, entry in by_gpus.items():
        expected = [i for i, c in enumerate(study.configurations) if c.num_gpus == n]
        assert sorted(int(i) for i in entry["run_ids"]) == expected
        script = Path(entry["script"]).read_text()
        assert f"#SBATCH --gres=gpu:{n}\n" in script and Path(entry["script"]).name.endswith(f"-{n}gpu.sbatch")
        records = cluster.show_job(entry["job_id"])
        assert records and all(r["TresPerNode"] == f"gres:gpu:{n}" for r in records), records
        assert all(r["JobState"] == "PENDING" for r in records)
    states = states_of(config, results, capsys)
    assert {s["state"] for s in states} == {"pending"} and all("Held" in s["reason"] for s in states), states
    # Cancelled before they started: gone from the queue without a result or a log -> failed.
    subprocess.run(["scancel", *[e["job_id"] for e in ledger]], env=cluster.env, check=True)
    cluster.wait_for_empty_queue(timeout_s=30)
    states = states_of(config, results, capsys)
    assert {s["state"] for s in states} == {"failed"} and all("left no log" in s["reason"] for s in states)


@pytest.mark.slurm
def test_dry_run_of_a_gpu_study_is_accepted_by_sbatch(cluster, tmp_path, capsys):
    """The printed script passes `sbatch --test-only` (arrays that fit the 2 pretend GPUs)."""
    config = REPO / "configs" / "default.yaml"
    if not config.exists():
        config = tmp_path / "gpu.yaml"
        config.write_text(GPU_CONFIG)
    results = tmp_path / "results"
    assert cli(["submit", str(config), "--results", str(results), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not results.exists()
    scripts = ["#!/bin/bash\n" + chunk for chunk in out.split("#!/bin/bash\n")[1:]]
    assert scripts and out.startswith("#!/bin/bash\n")  # stdout is the script(s) alone
    tested = 0
    for text in scripts:
        path = tmp_path / "dry.sbatch"
        path.write_text(text)
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
        gres = [ln for ln in text.splitlines() if ln.startswith("#SBATCH --gres=gpu:")]
        assert len(gres) == 1
        if int(gres[0].rsplit(":", 1)[1]) <= cluster.gpus:
            res = subprocess.run(["sbatch", "--test-only", str(path)], env=cluster.env, capture_output=True, text=True)
            assert res.returncode == 0 and "to start at" in res.stderr, res.stderr
            tested += 1
    assert tested
