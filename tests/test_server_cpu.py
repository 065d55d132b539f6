"""The serving process tree's CPU time: sampled per process (a fake tree here), turned into seconds per request
and milliseconds per output token over the steady window, and recorded for a vLLM run (the fake server)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from harness.measuring.telemetry import ProcessTreeCpu
from harness.orchestration.metrics import server_cpu_metrics


class FakeProcess:
    def __init__(self, pid: int, user_s: float, system_s: float = 0.0):
        self.pid, self.user_s, self.system_s, self.gone = pid, user_s, system_s, False

    def cpu_times(self):
        if self.gone:
            raise ProcessLookupError(self.pid)
        return SimpleNamespace(user=self.user_s, system=self.system_s)


class FakeTree:
    """A process tree whose members come and go; ``now`` is the fake clock."""

    def __init__(self):
        self.members: list[FakeProcess] = []
        self.now = 0.0

    def processes(self, root_pid: int) -> list[FakeProcess]:
        assert root_pid == 100
        return [p for p in self.members if not p.gone]


def test_the_tree_sums_user_and_system_time_and_keeps_an_exited_process_at_its_last_reading():
    tree = FakeTree()
    root, engine = FakeProcess(100, 1.0, 0.5), FakeProcess(101, 2.0, 1.0)
    tree.members = [root, engine]
    cpu = ProcessTreeCpu(100, tree.processes, refresh_s=1.0, clock=lambda: tree.now)
    assert cpu.seconds() == pytest.approx(4.5)
    engine.user_s = 5.0
    assert cpu.seconds() == pytest.approx(7.5)  # a live process is read every time
    worker = FakeProcess(102, 0.25)
    tree.members.append(worker)
    assert cpu.seconds() == pytest.approx(7.5)  # not listed before the refresh period passes
    tree.now = 1.0
    assert cpu.seconds() == pytest.approx(7.75)
    engine.gone = True  # exits between listing and reading: its 6.0 s stay
    assert cpu.seconds() == pytest.approx(7.75)
    tree.now = 2.0
    root.user_s = 2.0
    assert cpu.seconds() == pytest.approx(8.75)


def test_a_vanished_root_keeps_the_readings_taken():
    tree = FakeTree()
    tree.members = [FakeProcess(100, 3.0)]

    def gone(pid):
        raise ProcessLookupError(pid)

    cpu = ProcessTreeCpu(100, tree.processes, refresh_s=0.0, clock=lambda: tree.now)
    assert cpu.seconds() == 3.0
    cpu.processes = gone
    assert cpu.seconds() == 3.0


def _timeline(times, seconds):
    return pd.DataFrame({"time_s": times, "source": ["host"] * len(times), "server_cpu_time_s": seconds})


def test_cpu_time_per_token_and_per_request_over_the_steady_window():
    frame = _timeline([0.0, 1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 13.0, 15.0, 16.0])
    out = server_cpu_metrics(frame, 0.5, 3.5, tokens=100, avg_output_len=20.0)
    used = 15.5 - 10.5  # interpolated at the window's ends
    assert out["server_cpu_time_s"] == pytest.approx(used)
    assert out["server_cpu_cores"] == pytest.approx(used / 3.0)
    assert out["cpu_time_per_output_token_ms"] == pytest.approx(used / 100 * 1000)
    assert out["cpu_time_per_request_s"] == pytest.approx(used / 100 * 20.0)


def test_samples_stopping_a_fraction_of_a_period_short_of_the_window_are_scaled_to_it():
    # the last reading 0.3 s before the close, at a 1 s period: the rate over [0.5, 4.0] (2 s of CPU in 3.5 s)
    frame = _timeline([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 0.5, 1.0, 1.5, 2.0])
    out = server_cpu_metrics(frame, 0.2, 4.3, tokens=41, avg_output_len=10.0)
    assert out["server_cpu_time_s"] == pytest.approx(0.5 * 4.1)  # 0.5 CPU-s per second over the 4.1 s window
    assert out["server_cpu_cores"] == pytest.approx(0.5)
    assert out["cpu_time_per_output_token_ms"] == pytest.approx(0.5 * 4.1 / 41 * 1000)
    # half a period or more short: nothing
    assert set(server_cpu_metrics(frame, 0.2, 4.5, 41, 10.0).values()) == {None}
    assert set(server_cpu_metrics(frame, -0.5, 3.0, 41, 10.0).values()) == {None}


@pytest.mark.parametrize(
    "frame, start, end",
    [
        (_timeline([1.0, 2.0], [1.0, 2.0]), 0.5, 1.5),  # samples start after the window opens
        (_timeline([0.0, 1.0], [1.0, 2.0]), 0.5, 1.5),  # and end before it closes: no extrapolation
        (pd.DataFrame({"time_s": [0.0, 2.0], "source": ["host"] * 2, "server_cpu_time_s": [None, None]}), 0.5, 1.5),
        (None, 0.5, 1.5),
    ],
)
def test_no_figures_without_samples_spanning_the_window(frame, start, end):
    assert set(server_cpu_metrics(frame, start, end, 10, 5.0).values()) == {None}


def test_a_vllm_run_records_its_servers_cpu_time_in_run_json_and_the_table(tmp_path, no_nvml, vllm_env, monkeypatch):
    import fake_vllm
    from harness.measuring import store
    from harness.orchestration import runner
    from harness.orchestration.study import load_study

    fake_vllm.use(monkeypatch, tmp_path, {"token_s": 0.01})
    config = tmp_path / "s.yaml"
    config.write_text(
        "study: cpu\nsettings: {cooldown_s: 0, idle_power_s: 0, sampler_hz: 20}\nruns:\n"
        "  - {task: lm-arena-chat, backend: vllm, models: [tiny-llama], num_requests: 8, seed: 1,\n"
        "     max_output_tokens: 24, options: {max_prompt_tokens: 16}, grid: {max_num_seqs: [4]}}\n"
    )
    study = load_study(config)
    counts = runner.measure_study(study, tmp_path / "results", progress=False)
    assert counts == {"ok": 1}, counts
    run_dir = store.run_path(tmp_path / "results", "cpu", study.configurations[0].run_id)
    record = json.loads((run_dir / "run.json").read_text())
    metrics = record["metrics"]
    assert record["telemetry"]["server_pid"] > 0
    assert metrics["server_cpu_time_s"] is not None and metrics["server_cpu_time_s"] >= 0
    tokens = metrics["steady_output_tokens"]
    assert metrics["cpu_time_per_output_token_ms"] == pytest.approx(metrics["server_cpu_time_s"] / tokens * 1000)
    assert metrics["cpu_time_per_request_s"] == pytest.approx(
        metrics["server_cpu_time_s"] / tokens * metrics["avg_output_len"]
    )
    timeline = pd.read_parquet(run_dir / "timeline.parquet")
    host = timeline[timeline["source"] == "host"]["server_cpu_time_s"].dropna()
    assert len(host) > 2 and host.is_monotonic_increasing
    table = store.collect(tmp_path / "results", "cpu")
    assert table["cpu_time_per_request_s"].iloc[0] == pytest.approx(metrics["cpu_time_per_request_s"])


def test_the_engine_waits_on_input_while_a_sent_request_has_not_reached_it():
    from harness.orchestration.metrics import input_wait_fraction

    frame = pd.DataFrame(
        {
            "time_s": [1.0, 2.0, 3.0, 4.0, 9.0],
            "source": ["vllm"] * 5,
            "num_requests_running": [0, 0, 2, 0, 0],
            "num_requests_waiting": [0, 1, 0, 0, 0],
        }
    )
    requests = [
        SimpleNamespace(submit_time_s=0.5, first_token_time_s=3.5),
        SimpleNamespace(submit_time_s=3.8, first_token_time_s=None),
    ]
    # t=1: idle, request 0 in flight -> waited; t=2: one waiting; t=3: running; t=4: idle, request 1 in flight
    assert input_wait_fraction(frame, 0.0, 5.0, requests) == pytest.approx(2 / 4)
    assert input_wait_fraction(frame, 5.0, 6.0, requests) is None
