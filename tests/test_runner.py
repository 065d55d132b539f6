"""The sweep: resume, skips, failures, signals, and exact energy accounting through fake NVML."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import FakeGPU
from harness.measuring import store
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study
from harness.workloads import registry
from harness.workloads.base import WorkloadResult
from harness.workloads.trivial import TrivialBackend

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path, name="t", settings=None, **block) -> Path:
    run = {
        "task": "cpu-trivial",
        "backend": "trivial",
        "models": ["cpu-spin"],
        "num_requests": 16,
        "max_output_tokens": 8,
        "options": {"step_s": 0.001},
        "grid": {"max_num_seqs": [1, 4, 8]},
    }
    run.update(block)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"study": name, "settings": {"idle_power_s": 0, **(settings or {})}, "runs": [run]}))
    return path


def _measure(path, results, **kwargs):
    out = io.StringIO()
    counts = measure_study(load_study(path), results, progress=False, out=out, **kwargs)
    return counts, out.getvalue()


def _records(results, study="t"):
    return {d.name: json.loads((d / "run.json").read_text()) for d in store.iter_run_dirs(results, study)}


def test_sweep_writes_runs_and_measuring_again_measures_nothing(tmp_path, no_nvml):
    cfg = _config(tmp_path)
    results = tmp_path / "results"
    counts, out = _measure(cfg, results)
    assert counts == {"ok": 3}
    study = load_study(cfg)
    records = _records(results)
    assert sorted(records) == sorted(c.run_id for c in study.configurations)
    for c in study.configurations:
        run_dir = results / "t" / c.run_id
        assert store.verify(run_dir) == []
        assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) == [
            "checksums.sha256",
            "requests.parquet",
            "run.json",
            "server.log",
            "timeline.parquet",
        ]
        record = records[c.run_id]
        assert record["status"] == "ok" and record["config"] == c.as_dict()
        assert record["is_stable"] and "rule not applied on a CPU host" in record["unstable_reason"]
        m = record["metrics"]
        assert m["energy_per_token_joules"] is None and m["energy_source"].startswith("none: no NVIDIA GPU")
        requests = pd.read_parquet(run_dir / "requests.parquet")
        assert len(requests) == 16 and m["total_output_tokens"] == requests["output_tokens"].sum()
        assert m["steady_output_tokens"] == requests["steady_output_tokens"].sum() > 0
        assert 0.85 <= m["batch_saturation"] <= 1.0
        # the window the backend opened online sits on the bounds computed afterwards from the records
        online = record["backend_info"]["steady_bounds_online"]
        assert online == [m["steady_open_time_s"], m["steady_close_time_s"]]
        steady = record["windows"]["steady"]
        # the meter's window opens right after the event that opened it online, and closes right after the one
        # that closed it: no other event comes between (order, not wall-clock distance, is the design)
        assert online[0] <= steady["start_time_s"] <= steady["end_time_s"] and online[1] <= steady["end_time_s"]
        assert not any(online[0] < t < steady["start_time_s"] for t in requests["first_token_time_s"])
        assert not any(online[1] < t < steady["end_time_s"] for t in requests["finish_time_s"])
        assert f"{c.run_id}  cpu-trivial/cpu-spin max_num_seqs={c.max_num_seqs}" in out
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    counts, out = _measure(cfg, results)
    assert counts == {"already done": 3} and "nothing to measure" in out
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()} == before


def test_index_dry_run_and_force(tmp_path, no_nvml):
    cfg = _config(tmp_path)
    results = tmp_path / "results"
    counts, out = _measure(cfg, results, dry_run=True)
    assert not results.exists() and "3 of 3 configurations to measure" in out
    counts, _ = _measure(cfg, results, index=1)
    assert counts == {"ok": 1}
    only = load_study(cfg).configurations[1].run_id
    assert list(_records(results)) == [only]
    counts, out = _measure(cfg, results, dry_run=True)
    assert f"{only}  cpu-trivial/cpu-spin max_num_seqs=4" in out and "done (ok)" in out
    old = (results / "t" / only / "run.json").read_bytes()
    counts, _ = _measure(cfg, results, index=1, force=True)
    assert counts == {"ok": 1}
    kept = list((results / "t" / ".replaced").iterdir())
    assert len(kept) == 1 and (kept[0] / "run.json").read_bytes() == old
    assert list(_records(results)) == [only]  # the replaced copy is not a run of the study


def test_oom_fails_the_run_and_skips_larger_batches(tmp_path, no_nvml):
    cfg = _config(
        tmp_path, options={"step_s": 0.001, "fail_cause": "oom", "fail_from_max_num_seqs": 4, "fail_after_requests": 2}
    )
    results = tmp_path / "results"
    counts, _out = _measure(cfg, results)
    assert counts == {"ok": 1, "failed": 1, "skipped": 1}
    by_batch = {r["config"]["max_num_seqs"]: r for r in _records(results).values()}
    assert by_batch[1]["status"] == "ok"
    assert by_batch[4]["status"] == "failed" and by_batch[4]["cause"] == "oom"
    assert "injected failure oom at max_num_seqs=4" in by_batch[4]["log_tail"]
    assert by_batch[8]["status"] == "skipped"
    assert by_batch[8]["cause"].startswith("max_num_seqs=4 ran out of memory")
    assert (results / "t" / by_batch[4]["run_id"] / "timeline.parquet").exists()
    # failed and skipped runs are results too: nothing is measured again
    assert _measure(cfg, results)[0] == {"already done": 3}


def test_a_sweep_verifies_each_finished_run_a_bounded_number_of_times(tmp_path, no_nvml, monkeypatch):
    """The skip rule looks at every smaller batch of a series before each run: through the sweep's index of
    the results folder a run's files are hashed once after it is written, not once per larger batch."""
    batches = [1, 2, 3, 4, 5, 6, 7, 8]
    cfg = _config(tmp_path, num_requests=4, grid={"max_num_seqs": batches})
    results = tmp_path / "results"
    reads = []
    verify = store.verify
    monkeypatch.setattr(store, "verify", lambda run_dir: reads.append(Path(run_dir).name) or verify(run_dir))
    counts, _ = _measure(cfg, results)
    assert counts == {"ok": len(batches)}
    smallest = load_study(cfg).configurations[0].run_id
    assert reads.count(smallest) == 1  # asked about by the seven larger batches, verified once
    assert max(reads.count(r) for r in set(reads)) == 1
    reads.clear()
    assert _measure(cfg, results)[0] == {"already done": len(batches)}
    assert sorted(reads) == sorted(c.run_id for c in load_study(cfg).configurations)  # the plan: once each


def test_other_failures_do_not_skip_larger_batches(tmp_path, no_nvml):
    cfg = _config(tmp_path, options={"step_s": 0.001, "fail_cause": "server-died", "fail_from_max_num_seqs": 4})
    counts, _ = _measure(cfg, tmp_path / "results")
    assert counts == {"ok": 1, "failed": 2}


def test_an_unstable_batch_without_an_energy_counter_does_not_skip_larger_ones(tmp_path, no_nvml):
    # The skip-after-unstable rule is about energy measurements (a GPU host: see the test with a fake GPU
    # below); on a CPU host the unstable run is flagged and the larger batches are still measured.
    cfg = _config(tmp_path, num_requests=4, grid={"max_num_seqs": [2, 8, 16]})
    counts, _ = _measure(cfg, tmp_path / "results")
    by_batch = {r["config"]["max_num_seqs"]: r for r in _records(tmp_path / "results").values()}
    assert by_batch[2]["is_stable"]
    assert by_batch[8]["status"] == "ok" and by_batch[8]["failed_checks"] == ["no-steady-state"]
    assert by_batch[16]["status"] == "ok" and not by_batch[16]["is_stable"]
    assert counts == {"ok": 3}


class _Broken:
    name, metrics_url = "broken", None
    stopped = 0

    def start(self, cfg, run_dir):
        pass

    def run(self, cfg, meter):
        meter.begin("steady")
        return 1 / 0

    def stop(self):
        _Broken.stopped += 1


def test_a_backend_crash_fails_the_run_and_the_sweep_goes_on(tmp_path, no_nvml, monkeypatch):
    monkeypatch.setattr(registry, "get_backend", lambda name: _Broken())
    _Broken.stopped = 0
    counts, _ = _measure(_config(tmp_path), tmp_path / "results")
    assert counts == {"failed": 3} and _Broken.stopped == 3
    record = next(iter(_records(tmp_path / "results").values()))
    assert record["cause"] == "crash: ZeroDivisionError" and "1 / 0" in record["log_tail"]
    assert not record["is_stable"] and record["unstable_reason"] == "failed: crash: ZeroDivisionError"


class _Garbage(_Broken):
    def run(self, cfg, meter):
        return WorkloadResult(requests=["not a request record"])


def test_records_that_break_the_metrics_fail_the_run_not_the_sweep(tmp_path, no_nvml, monkeypatch):
    monkeypatch.setattr(registry, "get_backend", lambda name: _Garbage())
    counts, _ = _measure(_config(tmp_path), tmp_path / "results")
    assert counts == {"failed": 3}
    record = next(iter(_records(tmp_path / "results").values()))
    assert record["cause"] == "crash: metrics: AttributeError" and "Traceback" in record["log_tail"]


def test_a_run_over_its_time_limit_fails_with_timeout(tmp_path, no_nvml):
    cfg = _config(
        tmp_path, settings={"run_timeout_s": 1}, options={"step_s": 0.05}, grid={"max_num_seqs": [1]}, num_requests=200
    )
    uncut_s = 200 * 4 * 0.05  # the shortest the whole load could take: 200 requests of >= 4 tokens, one at a time
    t0 = time.monotonic()
    counts, _ = _measure(cfg, tmp_path / "results")
    assert counts == {"failed": 1} and time.monotonic() - t0 < uncut_s / 2  # cut short, with room for a loaded host
    record = next(iter(_records(tmp_path / "results").values()))
    assert record["cause"] == "timeout" and "run_timeout_s=1" in record["message"]
    assert "trivial server stopped" in (tmp_path / "results" / "t" / record["run_id"] / "server.log").read_text()


def _loaded_gpu(monkeypatch, gpu, busy_watts=300.0, idle_watts=60.0):
    """Make the fake GPU draw ``busy_watts`` while the trivial backend runs."""
    original = TrivialBackend.run

    def run(self, cfg, meter) -> WorkloadResult:
        gpu.set_power(busy_watts)
        try:
            return original(self, cfg, meter)
        finally:
            gpu.set_power(idle_watts)

    monkeypatch.setattr(TrivialBackend, "run", run)


def test_gpu_host_exact_energy_per_token_and_the_20s_rule(tmp_path, fake_nvml, monkeypatch):
    from harness.measuring import telemetry

    gpu = FakeGPU([(time.time() - 10, 60.0)])
    fake_nvml([gpu, FakeGPU([(time.time() - 10, 61.0)])])
    _loaded_gpu(monkeypatch, gpu)
    idle_stamps: list[float] = []  # the idle measurement's clock, on the fake GPU's clock (time.time)

    def idle_power(seconds, *args, measure=telemetry.measure_idle_power, **kwargs):
        def clock():
            idle_stamps.append(time.time())
            return idle_stamps[-1]

        return measure(seconds, *args, clock=clock, **kwargs)

    monkeypatch.setattr(telemetry, "measure_idle_power", idle_power)
    cfg = _config(tmp_path, settings={"idle_power_s": 0.2}, grid={"max_num_seqs": [2, 4]})
    counts, _out = _measure(cfg, tmp_path / "results")
    assert counts == {"ok": 1, "skipped": 1}
    by_batch = {r["config"]["max_num_seqs"]: r for r in _records(tmp_path / "results").values()}
    record = by_batch[2]
    m = record["metrics"]
    steady = record["windows"]["steady"]
    # exact: the counter difference between the window's own two reads (which lie inside its stamps; a
    # loaded host may stall between a stamp and its read, so the stamps alone bound it only from above)
    first, last = gpu.reads_within(steady["start_time_s"], steady["end_time_s"])
    assert steady["gpu_energy_joules"] == {"0": pytest.approx((last[2] - first[2]) / 1000.0, abs=1e-9)}
    assert m["gpu_energy_joules"] == pytest.approx(300.0 * (last[1] - first[1]), abs=2e-3)  # 300 W, mJ rounding
    assert m["gpu_energy_joules"] <= 300.0 * m["steady_duration_s"] + 2e-3
    assert m["energy_per_token_joules"] == pytest.approx(m["gpu_energy_joules"] / m["steady_output_tokens"])
    assert m["energy_per_output_joules"] == pytest.approx(m["energy_per_token_joules"] * m["avg_output_len"])
    requests = pd.read_parquet(tmp_path / "results" / "t" / record["run_id"] / "requests.parquet")
    assert requests["energy_per_request_joules"].tolist() == pytest.approx(
        (requests["output_tokens"] * m["energy_per_token_joules"]).tolist()
    )
    assert m["avg_power_watts"] == pytest.approx(m["gpu_energy_joules"] / m["steady_duration_s"])
    assert m["avg_power_watts"] <= 300.0 + 2e-3 / m["steady_duration_s"]
    assert m["energy_source"].startswith("zeus/nvml-energy-counter")
    # exact: the counter difference between the idle span's own two reads over the span's stamps (at most the
    # true 60 W: the reads lie inside the stamps; below it by whatever the host stalled, which is not a tolerance)
    assert idle_stamps, "the runner no longer measures idle power through telemetry.measure_idle_power"
    first, last = gpu.reads_within(idle_stamps[0], idle_stamps[-1])
    elapsed = idle_stamps[-1] - idle_stamps[0]
    assert elapsed >= 0.2 and record["idle_power_watts"]["0"] == pytest.approx(
        (last[2] - first[2]) / 1000.0 / elapsed, rel=1e-9
    )
    assert record["idle_power_watts"]["0"] <= 60.0 + 2e-3 / elapsed
    assert record["environment"]["gpu_model"] == "H100" and record["environment"]["gpu_count"] == 2
    # the run lasted well under 20 s: unstable on a GPU, and larger batches are skipped
    assert not record["is_stable"] and record["failed_checks"] == ["steady-duration"]
    assert by_batch[4]["status"] == "skipped" and "was unstable (steady state lasted" in by_batch[4]["cause"]
    timeline = pd.read_parquet(tmp_path / "results" / "t" / record["run_id"] / "timeline.parquet")
    assert set(timeline.loc[timeline["source"] == "nvml", "gpu_index"]) == {0}
    row = store.collect(tmp_path / "results").set_index("run_id").loc[record["run_id"]]
    assert row["energy_per_token_joules"] == m["energy_per_token_joules"] and row["gpu"] == "1 x H100"


def test_a_sampler_failing_mid_run_flags_the_run(tmp_path, fake_nvml, monkeypatch):
    gpu = FakeGPU([(time.time() - 10, 60.0)], fail_from_s=time.time())
    fake_nvml([gpu])
    _loaded_gpu(monkeypatch, gpu)
    counts, _ = _measure(_config(tmp_path, grid={"max_num_seqs": [2]}, options={"step_s": 0.005}), tmp_path / "results")
    assert counts == {"ok": 1}
    record = next(iter(_records(tmp_path / "results").values()))
    assert "telemetry-errors" in record["failed_checks"] and record["telemetry"]["error_count"] > 0
    assert record["metrics"]["energy_per_token_joules"] > 0  # the energy counter still worked


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_interrupted_sweep_resumes_exactly(tmp_path, no_nvml, signum, code):
    # a fast run first, then a slow one that the signal interrupts, then one never started
    # the slow run lasts >= 12 x 4 steps of 0.05 s = 2.4 s, however fast the host: room for the signal to land in it
    cfg = _config(tmp_path, num_requests=12, options={"step_s": 0.05}, grid={"max_num_seqs": [12, 1, 6]})
    results = tmp_path / "results"
    first, second, third = (c.run_id for c in load_study(cfg).configurations)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "measure", str(cfg), "--results", str(results), "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    second_json = results / "t" / second / "run.json"
    deadline = time.monotonic() + 300  # a fresh interpreter importing pandas and Zeus on a loaded 2-core host
    while not (second_json.exists() and store.read_record(second_json.parent)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(signum)
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == code, output
    assert store.result_state(results / "t" / first)[0] == "ok"
    state, record = store.result_state(results / "t" / second)
    assert state == "incomplete"
    if signum != signal.SIGKILL:
        assert record["cause"] == f"interrupted by {signal.Signals(signum).name}"
        assert "run the same command again to resume" in output
    assert not (results / "t" / third / "run.json").exists()
    kept = (results / "t" / first / "run.json").read_bytes()

    counts, _ = _measure(cfg, results)
    assert counts == {"already done": 1, "ok": 2}
    assert (results / "t" / first / "run.json").read_bytes() == kept
    assert all(store.verify(d) == [] for d in store.iter_run_dirs(results))
