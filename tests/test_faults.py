"""Faults during a sweep (issue 6): nothing measured is ever lost, nothing damaged slips through.

* a backend that fails (out of memory, server died, never healthy): that run is failed with its cause and
  log tail, the sweep goes on, larger batches of the same series are skipped with the reason -- with the
  trivial backend's fault injection, and end to end with a real server subprocess (``fake_vllm``) that
  runs out of memory at start, never becomes healthy, or dies mid-run;
* SIGINT / SIGTERM at every phase of a run: finished runs intact, the interrupted one incomplete, the
  next sweep resumes so that every configuration is measured to completion exactly once;
* result files truncated or edited by hand: flagged by ``harness list`` and ``store.collect`` (never
  mixed in with figures), kept as evidence when measured again;
* the telemetry sampler raising: the run completes and is flagged;
* the disk filling up while writing: one clear error, earlier results intact, a clean resume.
"""

from __future__ import annotations

import collections
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import fake_vllm
from harness.cli import main
from harness.measuring import store, telemetry
from harness.orchestration import runner
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study
from harness.workloads.trivial import TrivialBackend

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL = {
    "task": "cpu-trivial",
    "backend": "trivial",
    "models": ["cpu-spin"],
    "num_requests": 12,
    "max_output_tokens": 6,
    "options": {"step_s": 0.001},
}


def _study(tmp_path, *blocks, name="f", settings=None) -> Path:
    path = tmp_path / f"{name}.yaml"
    doc = {"study": name, "settings": {"idle_power_s": 0, **(settings or {})}, "runs": list(blocks)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _block(**changes) -> dict:
    return json.loads(json.dumps(TRIVIAL)) | changes


def _measure(path, results, **kwargs):
    out = io.StringIO()
    counts = measure_study(load_study(path), results, progress=False, out=out, **kwargs)
    return counts, out.getvalue()


def _records(results, study="f") -> dict[str, dict]:
    return {d.name: store.read_record(d) for d in store.iter_run_dirs(results, study)}


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes under ``root`` (lock files aside)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"
    }


def _temporaries(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


@pytest.fixture
def calls(monkeypatch):
    """Run ids passed to the trivial backend's start and run (a run counts once it returned)."""
    seen = {"start": collections.Counter(), "completed": collections.Counter()}
    start, run = TrivialBackend.start, TrivialBackend.run

    def counted_start(self, cfg, run_dir):
        seen["start"][cfg.run_id] += 1
        return start(self, cfg, run_dir)

    def counted_run(self, cfg, meter):
        result = run(self, cfg, meter)
        seen["completed"][cfg.run_id] += 1
        return result

    monkeypatch.setattr(TrivialBackend, "start", counted_start)
    monkeypatch.setattr(TrivialBackend, "run", counted_run)
    return seen


# --- backend failures, trivial backend's fault injection ---------------------------------------------


@pytest.mark.parametrize("cause", ["oom", "server-died", "unhealthy"])
def test_a_failing_run_is_recorded_with_cause_and_log_tail_and_the_sweep_goes_on(
    tmp_path, no_nvml, calls, cause, capsys
):
    faulty = _block(
        options={"step_s": 0.001, "fail_cause": cause, "fail_from_max_num_seqs": 2, "fail_after_requests": 1},
        grid={"max_num_seqs": [1, 2, 4, 8]},
    )
    other_gpus = _block(grid={"max_num_seqs": [1, 2, 4, 8], "num_gpus": [2]})  # same model and task, 2 GPUs
    cfg = _study(tmp_path, faulty, other_gpus)
    results = tmp_path / "results"
    counts, out = _measure(cfg, results)
    study = load_study(cfg)
    records = _records(results)
    assert sorted(records) == sorted(c.run_id for c in study.configurations)
    series = {c.max_num_seqs: records[c.run_id] for c in study.configurations[:4]}
    assert series[1]["status"] == "ok"
    failed = series[2]
    assert failed["status"] == "failed" and failed["cause"] == cause
    assert f"injected failure ({cause}) at max_num_seqs=2" in failed["message"]
    assert f"error: injected failure {cause} at max_num_seqs=2" in failed["log_tail"]
    assert "trivial server up" in failed["log_tail"]
    assert failed["unstable_reason"] == f"failed: {cause}" and not failed["is_stable"]
    assert store.verify(results / "f" / failed["run_id"]) == []
    if cause == "oom":  # the reference's rule: larger batches of the series cannot fit either
        for batch in (4, 8):
            skipped = series[batch]
            assert skipped["status"] == "skipped"
            assert skipped["cause"] == f"max_num_seqs=2 ran out of memory (run {failed['run_id']})"
            assert calls["start"][skipped["run_id"]] == 0  # never started
        assert counts == {"ok": 5, "failed": 1, "skipped": 2}
    else:  # other failures are not about the batch size: larger batches are still tried
        assert [series[b]["status"] for b in (4, 8)] == ["failed", "failed"]
        assert counts == {"ok": 5, "failed": 3}
    # the other GPU count is another series: measured in full
    assert all(records[c.run_id]["status"] == "ok" for c in study.configurations[4:])
    assert f"cause: {cause}" in out
    # failed and skipped runs are results: the next sweep measures nothing
    assert _measure(cfg, results)[0] == {"already done": 8}
    capsys.readouterr()
    assert main(["list", "--results", str(results)]) == 0
    listing = capsys.readouterr().out
    assert f"{failed['run_id']} failed" in listing and f"  {cause}" in listing
    if cause == "oom":
        assert listing.count("max_num_seqs=2 ran out of memory") == 2


def test_a_backend_that_cannot_be_stopped_is_noted_and_the_sweep_goes_on(tmp_path, no_nvml, monkeypatch):
    def stop(self):
        raise RuntimeError("server group did not exit")

    monkeypatch.setattr(TrivialBackend, "stop", stop)
    counts, _ = _measure(_study(tmp_path, _block(grid={"max_num_seqs": [1, 2]})), tmp_path / "results")
    assert counts == {"ok": 2}
    for record in _records(tmp_path / "results").values():
        assert record["stop_error"] == "RuntimeError: server group did not exit"


# --- a real server subprocess: out of memory, never healthy, killed mid-run ---------------------------


def _vllm_block(seed: int, grid, **options) -> dict:
    return {
        "task": "lm-arena-chat",
        "backend": "vllm",
        "models": ["tiny-llama"],
        "num_requests": 6,
        "seed": seed,
        "max_output_tokens": 24,
        "options": options,
        "grid": {"max_num_seqs": grid},
    }


def test_server_out_of_memory_never_healthy_and_killed_mid_run(tmp_path, no_nvml, vllm_env, monkeypatch):
    pids = fake_vllm.use(
        monkeypatch,
        tmp_path,
        {
            "oom_from_max_num_seqs": 4,
            "never_healthy_seeds": [11],
            "die_mid_run_seeds": [12],
            "die_after_tokens": 5,
            "token_s": 0.01,
        },
    )
    cfg = _study(
        tmp_path,
        _vllm_block(10, [4, 8]),
        _vllm_block(11, [2], startup_timeout_s=3),
        _vllm_block(12, [2]),
        _vllm_block(13, [2]),
        name="v",
    )
    results = tmp_path / "results"
    counts, out = _measure(cfg, results)
    study = load_study(cfg)
    rec = [store.read_record(store.run_path(results, "v", c.run_id)) for c in study.configurations]
    oom, larger, unhealthy, died, last = rec
    assert counts == {"ok": 1, "failed": 3, "skipped": 1}, out
    assert oom["status"] == "failed" and oom["cause"] == "oom"
    assert "exited with code 1 before becoming healthy" in oom["message"]
    assert "CUDA out of memory" in oom["log_tail"] and "max_num_seqs=4" in oom["log_tail"]
    assert (
        larger["status"] == "skipped" and larger["cause"] == f"max_num_seqs=4 ran out of memory (run {oom['run_id']})"
    )
    assert unhealthy["status"] == "failed" and unhealthy["cause"] == "unhealthy"
    assert (
        "never became healthy" in unhealthy["message"] and "fake vllm: listening on 127.0.0.1" in unhealthy["log_tail"]
    )
    # "server-died"; "requests-failed" when the client saw every stream drop before the process was
    # gone (the backend waits up to 10 s for the process; the test below pins that)
    assert died["status"] == "failed" and died["cause"] in ("server-died", "requests-failed")
    assert "killed by signal 9 during the run" in died["message"] or "all 6 requests failed" in died["message"]
    assert "simulated crash after 5 tokens" in died["log_tail"]
    assert last["status"] == "ok" and last["metrics"]["steady_output_tokens"] > 0  # the sweep went on
    for r in rec:
        run_dir = store.run_path(results, "v", r["run_id"])
        assert store.verify(run_dir) == []
        if r["status"] != "skipped":
            assert (run_dir / "server.log").exists()
    started = fake_vllm.servers(pids)  # the skipped configuration never started a server
    assert len(started) == 3  # oom exits before binding, so it never wrote its pid file
    assert not any(fake_vllm.alive(s["pid"]) for s in started)


def test_a_server_that_drops_its_streams_then_dies_is_recorded_as_died(tmp_path, no_nvml, vllm_env, monkeypatch):
    fake_vllm.use(monkeypatch, tmp_path, {"die_mid_run_seeds": [12], "die_after_tokens": 3, "die_delay_s": 3.0})
    cfg = _study(tmp_path, _vllm_block(12, [2]), name="v")
    counts, _ = _measure(cfg, tmp_path / "results")
    (record,) = _records(tmp_path / "results", "v").values()
    assert counts == {"failed": 1} and "simulated crash after 3 tokens" in record["log_tail"]
    assert record["cause"] == "server-died", record["message"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_server_run_stops_the_server_and_the_sweep_resumes(
    tmp_path, no_nvml, vllm_env, monkeypatch, signum
):
    import httpx

    pids = fake_vllm.use(monkeypatch, tmp_path, {"token_s": 0.05})
    cfg = _study(tmp_path, _block(grid={"max_num_seqs": [2]}), _vllm_block(20, [2]), name="v")
    first, victim = (c.run_id for c in load_study(cfg).configurations)
    results = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'fake-vllm'}{os.pathsep}{ROOT}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "measure", str(cfg), "--results", str(results), "--no-progress"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        running = 0.0
        while running < 1:  # wait until the server is serving requests
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.05)
            servers = fake_vllm.servers(pids)
            if servers:
                try:
                    text = httpx.get(f"http://127.0.0.1:{servers[0]['port']}/metrics", timeout=1).text
                except httpx.HTTPError:
                    continue
                running = float(text.split("vllm:num_requests_running")[1].split()[1])
        proc.send_signal(signum)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, output
    assert "run the same command again to resume" in output and "Traceback" not in output
    server = fake_vllm.servers(pids)[0]
    assert not fake_vllm.alive(server["pid"])  # stopped with the run, not orphaned
    assert store.result_state(results / "v" / first)[0] == "ok"
    state, record = store.result_state(results / "v" / victim)
    assert state == "incomplete" and record["cause"] == f"interrupted by {signal.Signals(signum).name}"
    kept = (results / "v" / first / "run.json").read_bytes()

    monkeypatch.setenv("FAKE_VLLM_FAULTS", json.dumps({"token_s": 0.002}))
    counts, _ = _measure(cfg, results)
    assert counts == {"already done": 1, "ok": 1}
    assert (results / "v" / first / "run.json").read_bytes() == kept
    assert store.result_state(results / "v" / victim)[0] == "ok"


# --- SIGINT / SIGTERM at every phase of a run, in process ---------------------------------------------

PHASES = ["start", "run", "stop", "save", "between"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("phase", PHASES)
def test_interrupt_at_any_phase_then_resume_measures_each_configuration_once(
    tmp_path, no_nvml, calls, monkeypatch, capsys, phase, signum
):
    cfg = _study(tmp_path, _block(grid={"max_num_seqs": [1, 2, 4]}))
    first, victim, third = (c.run_id for c in load_study(cfg).configurations)
    results = tmp_path / "results"
    fired = []

    def fire(run_id, where):
        if run_id == victim and where == phase and not fired:
            fired.append(where)
            signal.raise_signal(signum)

    start, run, stop = TrivialBackend.start, TrivialBackend.run, TrivialBackend.stop
    write_run, blocking = store.write_run, runner.blocking_reason

    def start_(self, cfg, run_dir):
        start(self, cfg, run_dir)
        self.run_id = cfg.run_id
        fire(cfg.run_id, "start")

    def run_(self, cfg, meter):
        begin = meter.begin

        def begin_(name):
            begin(name)
            if name == "steady":
                fire(cfg.run_id, "run")

        meter.begin = begin_
        return run(self, cfg, meter)

    def stop_(self):
        fire(self.run_id, "stop")
        stop(self)

    def write_run_(run_dir, record, *args, **kwargs):
        if record["status"] != "incomplete":
            fire(record["run_id"], "save")
        return write_run(run_dir, record, *args, **kwargs)

    def blocking_(cfg, *args, **kwargs):
        fire(cfg.run_id, "between")
        return blocking(cfg, *args, **kwargs)

    monkeypatch.setattr(TrivialBackend, "start", start_)
    monkeypatch.setattr(TrivialBackend, "run", run_)
    monkeypatch.setattr(TrivialBackend, "stop", stop_)
    monkeypatch.setattr(store, "write_run", write_run_)
    monkeypatch.setattr(runner, "blocking_reason", blocking_)

    code = main(["measure", str(cfg), "--results", str(results), "--no-progress"])
    captured = capsys.readouterr()
    assert fired == [phase]
    assert code == 128 + signum and "run the same command again to resume" in captured.out
    assert "Traceback" not in captured.out + captured.err
    name = signal.Signals(signum).name
    assert store.result_state(results / "f" / first)[0] == "ok"
    state, record = store.result_state(results / "f" / victim)
    if phase in ("start", "run"):  # the run itself was cut short
        assert state == "incomplete" and record["cause"] == f"interrupted by {name}"
        assert record["unstable_reason"] == f"incomplete: interrupted by {name}"
    elif phase in ("stop", "save"):  # the load had finished: its outcome is saved, then the sweep stops
        assert state == "ok" and store.verify(results / "f" / victim) == []
    else:  # between runs: the next run never began
        assert state == "missing"
    assert store.result_state(results / "f" / third)[0] == "missing"
    assert _temporaries(results) == []
    kept = (results / "f" / first / "run.json").read_bytes()

    assert main(["measure", str(cfg), "--results", str(results), "--no-progress"]) == 0
    assert (results / "f" / first / "run.json").read_bytes() == kept
    assert {d.name: store.result_state(d)[0] for d in store.iter_run_dirs(results)} == dict.fromkeys(
        [first, victim, third], "ok"
    )
    # every configuration was measured to completion exactly once over both sweeps
    assert calls["completed"] == collections.Counter({first: 1, victim: 1, third: 1})
    assert calls["start"][first] == 1 and calls["start"][third] == 1
    assert calls["start"][victim] == (2 if phase in ("start", "run") else 1)
    assert main(["measure", str(cfg), "--results", str(results), "--no-progress"]) == 0
    assert "nothing to measure" in capsys.readouterr().out


# --- damaged result files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Three finished trivial runs, measured once for the module; tests damage copies."""
    root = tmp_path_factory.mktemp("damage")
    cfg = _study(root, _block(grid={"max_num_seqs": [1, 2, 4]}))
    results = root / "results"
    measure_study(load_study(cfg), results, progress=False, out=io.StringIO())
    return cfg, results


def _edit_metric(run_dir):
    record = json.loads((run_dir / "run.json").read_text())
    record["metrics"]["output_throughput_tokens_per_sec"] *= 10  # a "better" number typed in by hand
    (run_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")


def _truncate(name, keep=0.5):
    def damage(run_dir):
        path = run_dir / name
        with open(path, "r+b") as fh:
            fh.truncate(int(path.stat().st_size * keep))

    return damage


def _append_to_log(run_dir: Path) -> None:
    with open(run_dir / "server.log", "a") as fh:
        fh.write("edited\n")


DAMAGE = {
    "requests-truncated": (_truncate("requests.parquet"), "requests.parquet was altered or truncated"),
    "timeline-truncated-to-zero": (_truncate("timeline.parquet", 0), "timeline.parquet was altered or truncated"),
    "run-json-metric-edited": (_edit_metric, "run.json was altered or truncated"),
    "run-json-truncated": (_truncate("run.json"), "run.json was altered or truncated"),
    "server-log-appended": (_append_to_log, "server.log was altered"),
    "timeline-deleted": (lambda d: (d / "timeline.parquet").unlink(), "timeline.parquet is missing"),
    "checksums-deleted": (lambda d: (d / "checksums.sha256").unlink(), "no checksums.sha256"),
    "checksums-garbled": (lambda d: (d / "checksums.sha256").write_text("not a checksum line\n"), "malformed line"),
    "unlisted-file-added": (lambda d: (d / "notes.txt").write_text("hand-made\n"), "notes.txt is not listed"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_runs_are_flagged_everywhere_and_kept_when_measured_again(measured, tmp_path, no_nvml, capsys, kind):
    from harness.analysis import findings

    cfg, original = measured
    results = tmp_path / "results"
    shutil.copytree(original, results)
    study = load_study(cfg)
    damaged = study.configurations[1].run_id
    run_dir = results / "f" / damaged
    damage, problem = DAMAGE[kind]
    damage(run_dir)
    evidence = _files(run_dir)

    table = store.collect(results).set_index("run_id")
    row = table.loc[damaged]
    assert row["status"] == "corrupt" and problem in row["problems"] and not row["is_stable"]
    assert row[list(store.METRIC_COLUMNS)].isna().all()  # no figure of a damaged run reaches a table
    intact = table.drop(damaged)
    assert (intact["status"] == "ok").all() and intact["output_throughput_tokens_per_sec"].notna().all()
    # what the book's notebooks load: only intact, finished runs
    assert damaged not in set(findings.load_rows_own(str(results))["run_id"])

    capsys.readouterr()
    assert main(["list", "--results", str(results)]) == 1
    listing = capsys.readouterr().out
    line = next(x for x in listing.splitlines() if x.split()[1:2] == [damaged])
    assert " corrupt " in line and "CORRUPT: " in line and problem in line
    assert "1 run folder(s) fail their checksums" in listing and "2 ok, 1 corrupt" in listing
    code = main(["show", damaged, "--results", str(results)])
    shown = capsys.readouterr()
    assert code in (1, 2) and "Traceback" not in shown.err
    assert (
        "integrity  CORRUPT" in shown.out if code == 1 else f"{run_dir}: run.json is missing or unreadable" in shown.err
    )

    # measuring again moves the damaged files aside (never deleted) and measures that configuration only
    before = {
        c.run_id: (results / "f" / c.run_id / "run.json").read_bytes()
        for c in study.configurations
        if c.run_id != damaged
    }
    counts, out = _measure(cfg, results)
    assert counts == {"already done": 2, "ok": 1} and f"damaged     {damaged}  files moved to" in out
    assert all((results / "f" / rid / "run.json").read_bytes() == data for rid, data in before.items())
    assert store.verify(run_dir) == [] and store.result_state(run_dir)[0] == "ok"
    (aside,) = (results / "f" / ".replaced").iterdir()
    assert aside.name.startswith(f"{damaged}-") and aside.name.endswith("-damaged")
    assert _files(aside) == evidence
    assert main(["list", "--results", str(results)]) == 0


def test_a_run_json_edited_to_look_incomplete_carries_no_figures(measured, tmp_path, no_nvml):
    _, original = measured
    results = tmp_path / "results"
    shutil.copytree(original, results)
    run_dir = next(store.iter_run_dirs(results))
    record = json.loads((run_dir / "run.json").read_text())
    record["status"] = "incomplete"
    (run_dir / "run.json").write_text(json.dumps(record))
    row = store.collect(results).set_index("run_id").loc[run_dir.name]
    assert row["status"] == "incomplete" and row[list(store.METRIC_COLUMNS)].isna().all()


# --- the telemetry sampler failing ------------------------------------------------------------------------


def test_a_sampler_raising_mid_run_leaves_the_run_complete_and_flagged(tmp_path, no_nvml, monkeypatch):
    sample = telemetry._HostProbe.sample
    ticks = collections.Counter()

    def flaky(self):
        ticks["n"] += 1
        if ticks["n"] % 3 == 0:
            raise RuntimeError("psutil: process table unreadable")
        return sample(self)

    monkeypatch.setattr(telemetry._HostProbe, "sample", flaky)
    cfg = _study(tmp_path, _block(options={"step_s": 0.02}, grid={"max_num_seqs": [1, 2]}))
    counts, out = _measure(cfg, tmp_path / "results")
    assert counts == {"ok": 2}  # the batch-size rule is not triggered by a sampler fault
    for record in _records(tmp_path / "results").values():
        assert record["status"] == "ok" and not record["is_stable"]
        assert "telemetry-errors" in record["failed_checks"]
        assert "telemetry sampler raised" in record["unstable_reason"]
        assert record["telemetry"]["error_count"] > 0
        assert "RuntimeError: psutil: process table unreadable" in record["telemetry"]["errors"][0]
        assert record["metrics"]["steady_output_tokens"] > 0
    assert out.count("UNSTABLE (") == 2 and "telemetry sampler raised" in out


def test_a_sampler_that_fails_to_stop_still_stops_the_backend_and_flags_the_run(tmp_path, no_nvml, monkeypatch):
    def broken_stop(self):
        for thread in self._threads:
            thread.stop_event.set()
        raise ValueError("timeline rows do not fit the columns")

    monkeypatch.setattr(telemetry.Telemetry, "stop", broken_stop)
    counts, _ = _measure(_study(tmp_path, _block(grid={"max_num_seqs": [2]})), tmp_path / "results")
    assert counts == {"ok": 1}
    (record,) = _records(tmp_path / "results").values()
    run_dir = tmp_path / "results" / "f" / record["run_id"]
    assert "telemetry-errors" in record["failed_checks"]
    assert "stop: ValueError: timeline rows do not fit the columns" in record["telemetry"]["errors"]
    assert "trivial server stopped" in (run_dir / "server.log").read_text()  # the backend was stopped
    assert not (run_dir / "timeline.parquet").exists() and store.verify(run_dir) == []


# --- disk full ------------------------------------------------------------------------------------------


def _enospc_at(monkeypatch, run_dir: Path, name: str, occurrence: int):
    """The ``occurrence``-th flush of file ``name`` into ``run_dir`` fails with ENOSPC, like a full disk."""
    real = os.fsync
    folder = os.path.realpath(run_dir)
    seen = collections.Counter()

    def fsync(fd):
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if str(path.parent) == folder and path.name.startswith(".") and path.name.endswith(".tmp"):
            target = path.name[1 : -len(".tmp")].rsplit(".", 1)[0]  # atomic writes go through .<name>.<random>.tmp
            seen[target] += 1
            if target == name and seen[target] == occurrence:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return real


# The disk fills while the second run is written: its "incomplete" marker when it starts, or one of the
# files written when it ends (timeline, requests, run.json, then the checksum list, the commit point).
FULL_AT = {
    "marker": ("run.json", 1),
    "timeline": ("timeline.parquet", 1),
    "requests": ("requests.parquet", 1),
    "run-json": ("run.json", 2),
    "checksums": ("checksums.sha256", 2),
}


@pytest.mark.parametrize("where", FULL_AT)
def test_disk_full_while_writing_is_one_clear_error_and_earlier_runs_are_intact(
    tmp_path, no_nvml, monkeypatch, capsys, where
):
    cfg = _study(tmp_path, _block(grid={"max_num_seqs": [1, 2, 4]}))
    first, second, third = (c.run_id for c in load_study(cfg).configurations)
    results = tmp_path / "results"
    real_fsync = _enospc_at(monkeypatch, results / "f" / second, *FULL_AT[where])
    code = main(["measure", str(cfg), "--results", str(results), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        f"error: cannot write run {second} in {results / 'f'}: No space left on device; "
        "the 1 run(s) finished before it are intact; fix this and run the same command again"
    )
    monkeypatch.setattr(os, "fsync", real_fsync)  # space is freed
    assert store.result_state(results / "f" / first)[0] == "ok" and store.verify(results / "f" / first) == []
    state = store.result_state(results / "f" / second)[0]
    # the run being written is never taken for a result: not started, incomplete, or -- when only the
    # checksum list could not be written -- flagged as damaged
    assert state == {"marker": "missing", "checksums": "corrupt"}.get(where, "incomplete")
    assert store.result_state(results / "f" / third)[0] == "missing"
    assert _temporaries(results) == []
    kept = _files(results / "f" / first)
    counts, _ = _measure(cfg, results)
    assert counts == {"already done": 1, "ok": 2}
    assert _files(results / "f" / first) == kept
    assert all(store.verify(d) == [] for d in store.iter_run_dirs(results))


def test_a_real_full_filesystem(tmp_path, no_nvml, capsys):
    """A 2 MiB tmpfs as the results folder (needs mount rights; skipped elsewhere)."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        cfg = _study(tmp_path, _block(grid={"max_num_seqs": [1, 2, 4]}))
        first = load_study(cfg).configurations[0].run_id
        results = mnt / "results"
        assert main(["measure", str(cfg), "--results", str(results), "--no-progress", "--index", "0"]) == 0
        kept = _files(results / "f" / first)
        with open(mnt / "ballast", "wb", buffering=0) as fh:  # fill the disk
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC  # noqa: PT017  # filling the disk: the error that stops the loop
        capsys.readouterr()
        assert main(["measure", str(cfg), "--results", str(results), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "No space left on device" in err and "finished before it are intact" in err
        assert _files(results / "f" / first) == kept and _temporaries(results) == []
        assert {store.result_state(d)[0] for d in store.iter_run_dirs(results)} <= {"ok", "incomplete", "corrupt"}
        (mnt / "ballast").unlink()
        assert main(["measure", str(cfg), "--results", str(results), "--no-progress"]) == 0
        assert _files(results / "f" / first) == kept
        assert [store.result_state(d)[0] for d in store.iter_run_dirs(results)] == ["ok"] * 3
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_a_skip_is_written_keeps_the_skip_whole(tmp_path, no_nvml, monkeypatch, capsys, signum):
    cfg = _study(
        tmp_path,
        _block(
            options={"step_s": 0.001, "fail_cause": "oom", "fail_from_max_num_seqs": 2},
            grid={"max_num_seqs": [1, 2, 4]},
        ),
    )
    results = tmp_path / "results"
    write_run = store.write_run

    def write_run_(run_dir, record, *args, **kwargs):
        if record["status"] == "skipped":
            signal.raise_signal(signum)
        return write_run(run_dir, record, *args, **kwargs)

    monkeypatch.setattr(store, "write_run", write_run_)
    assert main(["measure", str(cfg), "--results", str(results), "--no-progress"]) == 128 + signum
    monkeypatch.setattr(store, "write_run", write_run)
    states = [store.result_state(store.run_path(results, "f", c.run_id)) for c in load_study(cfg).configurations]
    assert [s for s, _ in states] == ["ok", "failed", "skipped"]
    assert states[2][1]["cause"].startswith("max_num_seqs=2 ran out of memory")
    assert _temporaries(results) == []
    capsys.readouterr()
    assert main(["measure", str(cfg), "--results", str(results), "--no-progress"]) == 0
    assert "nothing to measure" in capsys.readouterr().out
