"""A power-cap sweep end to end at the fake NVML boundary: each run's cap set before it and restored after it,
recorded in run.json, the tidy table and ``show``; and a sweep SIGKILLed mid-run whose cap the next start
restores before measuring again. The GPUs are conftest's fakes; their settings calls are file-backed
(tests/fake_gpu_settings.py), so a killed process leaves its cap set, as on a real GPU."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from conftest import FakeGPU
from fake_gpu_settings import FakeSettings
from harness.cli import main
from harness.measuring import store
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study
from harness.workloads.base import WorkloadResult
from harness.workloads.trivial import TrivialBackend

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
UUID = "GPU-fake-0000"


def _config(tmp_path, caps, step_s=0.001, num_requests=16) -> Path:
    run = {
        "task": "cpu-trivial",
        "backend": "trivial",
        "models": ["cpu-spin"],
        "num_requests": num_requests,
        "max_output_tokens": 8,
        "options": {"step_s": step_s},
        "grid": {"max_num_seqs": [2], "power_limit_watts": caps},
    }
    path = tmp_path / "caps.yaml"
    path.write_text(yaml.safe_dump({"study": "caps", "settings": {"idle_power_s": 0}, "runs": [run]}))
    return path


@pytest.fixture
def capped_gpu(fake_nvml, monkeypatch, tmp_path):
    """One fake H100 whose power limit is file-backed; while the trivial backend runs it draws 400 W, or its cap
    where that is lower. Yields ``(settings, limits seen by the backend during each run in mW)``."""
    gpu = FakeGPU([(time.time() - 10, 60.0)], uuid=UUID)
    fake_nvml([gpu])
    settings = FakeSettings.create(tmp_path / "gpus.json")
    settings.install(monkeypatch.setattr, devices=False)
    seen: list[int] = []
    original = TrivialBackend.run

    def run(self, cfg, meter) -> WorkloadResult:
        limit = settings.gpu(0)["limit_mw"]
        seen.append(limit)
        gpu.set_power(min(400.0, limit / 1000.0))
        try:
            return original(self, cfg, meter)
        finally:
            gpu.set_power(60.0)

    monkeypatch.setattr(TrivialBackend, "run", run)
    return settings, seen


def _records(results) -> dict:
    return {
        json.loads((d / "run.json").read_text()).get("config", {}).get("power_limit_watts"): json.loads(
            (d / "run.json").read_text()
        )
        for d in store.iter_run_dirs(results, "caps")
    }


def test_a_power_cap_sweep_sets_records_and_restores(capped_gpu, tmp_path, capsys):
    settings, seen = capped_gpu
    results = tmp_path / "results"
    out = io.StringIO()
    counts = measure_study(load_study(_config(tmp_path, [None, 300, 250])), results, progress=False, out=out)
    assert counts == {"ok": 3}, out.getvalue()
    assert seen == [700_000, 300_000, 250_000]  # each run under its own cap; the uncapped one under the host's
    assert settings.gpu(0)["limit_mw"] == 700_000 and not (results / ".gpu-settings.json").exists()
    calls = [c[:3] for c in settings.calls()]  # preflight's permission probes (the limit written back) first
    assert calls == [["set_limit", UUID, 700_000]] * 2 + [
        ["set_limit", UUID, 300_000],
        ["set_limit", UUID, 700_000],
        ["set_limit", UUID, 250_000],
        ["set_limit", UUID, 700_000],
    ]
    records = _records(results)
    assert "gpu_settings" not in records[None] and "power_limit_watts" not in records[None]["config"]
    capped = records[300]
    assert capped["gpu_settings"]["restored"] is True
    assert capped["gpu_settings"]["gpus"]["0"] == {
        "uuid": UUID,
        "original_power_limit_watts": 700.0,
        "power_limit_watts": 300.0,
        "enforced_power_limit_watts": 300.0,
    }
    assert capped["telemetry"]["power_limit_watts"] == {"0": 300.0}  # the sampler saw the cap
    assert capped["metrics"]["avg_power_watts"] <= 300.0 + 0.05
    assert records[None]["metrics"]["avg_power_watts"] > 300.0
    assert "@300W" in out.getvalue()

    table = store.collect(results).set_index("run_id")
    assert sorted(table["power_limit_watts"].fillna(0)) == [0.0, 250.0, 300.0]
    assert table["sm_clock_mhz"].isna().all()

    assert main(["show", capped["run_id"], "--results", str(results)]) == 0
    shown = capsys.readouterr().out
    assert "gpu        power_limit_watts=300; restored after the run" in shown
    assert f"  GPU 0 {UUID}: power limit 300 W (enforced 300 W; original 700 W)" in shown
    assert "node       CPU package and DRAM energy not measured (cpu: not measured (" in shown


def test_a_refused_cap_fails_the_run_not_the_sweep(capped_gpu, tmp_path, monkeypatch):
    """A host whose permission changed after preflight: the run fails with cause gpu-settings, nothing stays set."""
    settings, seen = capped_gpu
    from harness.orchestration import preflight

    monkeypatch.setattr(preflight, "refuse_if_any", lambda *args: None)
    settings.set_root(False)
    results = tmp_path / "results"
    counts = measure_study(load_study(_config(tmp_path, [300])), results, progress=False, out=io.StringIO())
    assert counts == {"failed": 1} and seen == []
    (record,) = _records(results).values()
    assert record["cause"] == "gpu-settings" and "NVML_ERROR_NO_PERMISSION" in record["message"]
    assert settings.gpu(0)["limit_mw"] == 700_000 and not (results / ".gpu-settings.json").exists()


CHILD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{tests!r}, {root!r}]
    import pytest
    from conftest import FakeGPU, FakeNVML
    from fake_gpu_settings import FakeSettings
    patch = pytest.MonkeyPatch()
    FakeNVML(patch, [FakeGPU([(time.time() - 10, 60.0)], uuid={uuid!r})])
    FakeSettings({gpus!r}).install(patch.setattr, devices=False)
    from harness.workloads.trivial import TrivialBackend
    patch.setattr(TrivialBackend, "run", lambda self, cfg, meter: time.sleep(600))  # killed inside the run
    from harness.cli import main
    sys.exit(main(["measure", {config!r}, "--results", {results!r}, "--no-progress"]))
""")


def test_sigkill_mid_run_then_the_next_start_restores_and_measures_again(capped_gpu, tmp_path):
    settings, seen = capped_gpu
    results = tmp_path / "results"
    config = _config(tmp_path, [300])
    (cfg,) = load_study(config).configurations
    script = CHILD.format(
        tests=str(TESTS), root=str(ROOT), uuid=UUID, gpus=str(settings.path), config=str(config), results=str(results)
    )
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    run_json = results / "caps" / cfg.run_id / "run.json"
    deadline = time.monotonic() + 300  # a fresh interpreter importing pandas and Zeus on a loaded host
    try:
        while not (run_json.exists() and settings.gpu(0)["limit_mw"] == 300_000):
            assert child.poll() is None and time.monotonic() < deadline, child.stdout.read().decode()
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert store.result_state(run_json.parent)[0] == "incomplete"
    assert settings.gpu(0)["limit_mw"] == 300_000  # the killed sweep left its cap on the GPU ...
    entry = json.loads((results / ".gpu-settings.json").read_text())["entries"][UUID]
    assert entry["original_power_limit_watts"] == 700.0 and entry["owner"]["pid"] == child.pid  # ... and the original

    out = io.StringIO()  # the next start: restore first, then measure the incomplete run again under its cap
    counts = measure_study(load_study(config), results, progress=False, out=out)
    assert (
        f"gpu settings: GPU {UUID}: restored power limit 700 W left set by process {child.pid} (no longer "
        f"running)" in out.getvalue()
    )
    assert out.getvalue().index("gpu settings:") < out.getvalue().index("ok ")
    assert counts == {"ok": 1} and seen == [300_000]
    assert [c[:3] for c in settings.calls()][-3:] == [
        ["set_limit", UUID, 700_000],
        ["set_limit", UUID, 300_000],
        ["set_limit", UUID, 700_000],
    ]
    assert settings.gpu(0)["limit_mw"] == 700_000 and not (results / ".gpu-settings.json").exists()
