"""Every own run carries its energy split: run.json's "energy_split", the tidy table's columns and `show`."""

from __future__ import annotations

import io
import json
import time

import pytest
import yaml

from conftest import FakeGPU
from harness.analysis import energy_split
from harness.cli import main
from harness.measuring import store
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study
from harness.workloads.base import WorkloadResult
from harness.workloads.trivial import TrivialBackend


def _study(tmp_path, settings: dict, **run) -> object:
    block = {
        "task": "cpu-trivial",
        "backend": "trivial",
        "models": ["cpu-spin"],
        "num_requests": 16,
        "max_output_tokens": 8,
        "options": {"step_s": 0.001},
        "grid": {"max_num_seqs": [4]},
    }
    block.update(run)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": "s", "settings": {"idle_power_s": 0, **settings}, "runs": [block]}))
    return load_study(path)


def _only_run(results):
    run_dir = next(iter(store.iter_run_dirs(results, "s")))
    return run_dir, json.loads((run_dir / "run.json").read_text())


def test_a_cpu_run_says_why_there_is_no_split_and_prices_nothing(tmp_path, no_nvml, capsys):
    results = tmp_path / "results"
    assert measure_study(_study(tmp_path, {}), results, progress=False, out=io.StringIO()) == {"ok": 1}
    run_dir, record = _only_run(results)
    split = record["energy_split"]
    assert "no NVML" in split["phases"]["reason"] and split["static_dynamic"]["reason"] == energy_split.NO_ENERGY
    row = store.collect(results).iloc[0]
    assert row[list(store.ENERGY_SPLIT_COLUMNS)].isna().all()  # null, never 0 J
    assert "CPU-only" in row["phase_split_reason"]
    capsys.readouterr()
    assert main(["show", run_dir.name, "--results", str(results)]) == 0
    shown = capsys.readouterr().out
    assert "phases     not estimated: no GPU energy readings" in shown
    assert "priced     nothing: no GPU energy was measured" in shown
    assert "static_energy_fraction" not in shown  # the split is printed once, in its own section


def test_a_gpu_run_is_split_and_priced(tmp_path, fake_nvml, monkeypatch, capsys):
    gpu = FakeGPU([(time.time() - 10, 60.0)])
    fake_nvml([gpu])
    original = TrivialBackend.run

    def loaded(self, cfg, meter) -> WorkloadResult:
        gpu.set_power(300.0)
        try:
            return original(self, cfg, meter)
        finally:
            gpu.set_power(60.0)

    monkeypatch.setattr(TrivialBackend, "run", loaded)
    # about 2.5 s of steady state at 20 Hz: enough ticks for the estimator
    study = _study(
        tmp_path,
        {"idle_power_s": 0.2, "sampler_hz": 20},
        num_requests=24,
        max_output_tokens=32,
        options={"step_s": 0.02, "min_output_tokens": 16},
    )
    results = tmp_path / "results"
    assert measure_study(study, results, progress=False, out=io.StringIO()) == {"ok": 1}
    run_dir, record = _only_run(results)
    m, split = record["metrics"], record["energy_split"]
    idle = record["idle_power_watts"]["0"]
    assert split["static_dynamic"]["static_energy_fraction"] == pytest.approx(idle / m["avg_power_watts"])
    assert m["static_energy_fraction"] == split["static_dynamic"]["static_energy_fraction"]
    assert m["static_energy_per_token_joules"] + m["dynamic_energy_per_token_joules"] == pytest.approx(
        m["energy_per_token_joules"]
    )
    phases = split["phases"]
    assert phases["reason"] is None, phases["reason"]
    assert any("limits are unknown" in note for note in phases["notes"])  # not a vLLM run: no replay
    assert sum(phases["shares"].values()) == pytest.approx(1.0)
    assert phases["static_power_watts"] == idle
    row = store.collect(results).iloc[0]
    assert row["decode_energy_per_output_token_joules"] == phases["decode_joules_per_token"]
    assert row["static_energy_fraction"] == pytest.approx(m["static_energy_fraction"])
    assert row["phase_split_reason"] is None
    capsys.readouterr()
    assert main(["show", run_dir.name, "--results", str(results), "--grid-intensity", "100", "--pue", "1.1"]) == 0
    shown = capsys.readouterr().out
    assert "phases     prefill " in shown and "J per output token" in shown
    assert "static     idle " in shown and "requests   static share per request: median" in shown
    assert "grid 100 gCO2e/kWh (given)" in shown and "PUE 1.1 (given)" in shown
    kwh = m["energy_per_token_joules"] * 1e6 / 3.6e6
    assert f"{kwh:.4g} kWh at the GPUs, {kwh * 1.1:.4g} kWh at the meter, {kwh * 1.1 * 100:.4g} g CO2e" in shown


def test_the_store_lists_every_column_of_the_split():
    assert store.ENERGY_SPLIT_COLUMNS == energy_split.COLUMNS
    assert energy_split.REASON_COLUMN in store._columns()


def _llm_row(**values):
    import pandas as pd

    row = {
        "model_id": "m",
        "task": "lm-arena-chat",
        "gpu_model": "H100",
        "num_gpus": 1,
        "max_num_seqs": 8,
        "batch_size": 8,
        "energy_per_request_joules": 100.0,
        "energy_per_token_joules": 0.5,
        "avg_output_len": 200.0,
        "avg_power_watts": 400.0,
        "output_throughput_tokens_per_sec": 800.0,
        "avg_batch_size": 8.0,
        "output_unit": "response",
    }
    row.update(values)
    return pd.Series(row)


def test_diagnose_splits_the_power_factor_by_the_prefill_phase():
    import math

    from harness.analysis.tables.attribution import attribute

    a = _llm_row(prefill_energy_fraction=0.2)
    b = _llm_row(
        max_num_seqs=64,
        batch_size=64,
        energy_per_request_joules=40.0,
        energy_per_token_joules=0.2,
        avg_power_watts=600.0,
        output_throughput_tokens_per_sec=3000.0,
        avg_batch_size=60.0,
        prefill_energy_fraction=0.4,
    )
    att = attribute(a, b)
    names = [f.name for f in att.factors]
    assert "average power" not in names and names[1:3] == ["average power outside prefill", "prefill phase"]
    factors = {f.name: f for f in att.factors}
    assert factors["prefill phase"].ratio == pytest.approx(0.8 / 0.6)
    assert factors["prefill phase"].value_b == 0.4
    assert factors["average power outside prefill"].ratio * factors["prefill phase"].ratio == pytest.approx(1.5)
    assert att.product == pytest.approx(att.ratio)
    # a published row has no phase split: the attribution is the one it always was
    plain = attribute(_llm_row(), b.drop("prefill_energy_fraction"))
    assert [f.name for f in plain.factors][1] == "average power"
    nan = attribute(_llm_row(prefill_energy_fraction=math.nan), b)
    assert [f.name for f in nan.factors][1] == "average power"
