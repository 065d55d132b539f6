"""Static against dynamic energy per run and per request, and a run's whole split (harness.analysis.energy_split)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.analysis import energy_split, phases
from harness.analysis.engine_steps import EngineLimits
from phase_sim import SimulatedLoad, simulate


def test_a_cpu_host_gets_reasons_never_zero_joules():
    host_only = pd.DataFrame(
        {
            "time_s": [0.0, 0.1],
            "source": "host",
            "gpu_index": pd.array([None, None], "Int64"),
            "energy_counter_joules": [None, None],
            "power_watts": [None, None],
        }
    )
    requests = pd.DataFrame(
        {
            "request_id": [0],
            "prompt_tokens": [10],
            "output_tokens": [3],
            "submit_time_s": [0.0],
            "first_token_time_s": [0.05],
            "finish_time_s": [0.09],
            "token_times_s": [[0.05, 0.07, 0.09]],
        }
    )
    section = energy_split.split_run(
        energy_split.RunEnergyInputs(
            {"avg_power_watts": None, "steady_start_time_s": 0.0, "steady_end_time_s": 0.1}, {}, host_only, requests
        )
    )
    columns = energy_split.tidy_columns(section)
    assert all(columns[c] is None for c in energy_split.COLUMNS)
    assert columns[energy_split.REASON_COLUMN] == section["phases"]["reason"]
    assert section["static_dynamic"]["reason"] == energy_split.NO_ENERGY
    assert "CPU-only" in section["phases"]["reason"]
    assert "requests" not in section  # no idle power: no per-request static share


def test_static_dynamic_split_of_a_run():
    out = energy_split.static_dynamic(
        avg_power_watts=400.0, static_power_watts=100.0, energy_per_token_joules=0.2, energy_per_output_joules=50.0
    )
    assert out["static_energy_fraction"] == pytest.approx(0.25)
    assert out["static_energy_per_token_joules"] == pytest.approx(0.05)
    assert out["dynamic_energy_per_token_joules"] == pytest.approx(0.15)
    assert out["static_energy_per_output_joules"] == pytest.approx(12.5)
    missing = energy_split.static_dynamic(avg_power_watts=400.0, static_power_watts=None)
    assert missing["static_energy_fraction"] is None and missing["reason"] == energy_split.NO_IDLE


def test_static_power_is_shared_among_the_requests_running():
    # A runs [0, 4], B runs [2, 6]: alone 2 s each, together 2 s; idle 100 W
    requests = pd.DataFrame(
        {
            "request_id": [0, 1, 2],
            "first_token_time_s": [0.0, 2.0, None],
            "finish_time_s": [4.0, 6.0, None],
            "prompt_tokens": [10, 20, 5],
            "output_tokens": [5, 9, 0],
            "token_times_s": [[], [], []],
        }
    )
    static = energy_split.static_per_request(requests, 100.0)
    assert static[:2] == pytest.approx([200 + 100, 100 + 200])
    assert math.isnan(static[2])
    est = phases.PhaseEstimate(prefill_joules_per_token=1.0, decode_joules_per_token=10.0)
    frame = energy_split.request_split(requests, 100.0, est)
    assert frame["prefill_energy_joules"].tolist()[:2] == pytest.approx([10.0, 20.0])
    assert frame["decode_energy_joules"].tolist()[:2] == pytest.approx([40.0, 80.0])
    assert frame["static_energy_fraction"].tolist()[0] == pytest.approx(300 / 350)
    summary = energy_split.request_summary(frame)
    assert summary["requests"] == 2
    assert summary["static_energy_fraction_median"] == pytest.approx((300 / 350 + 300 / 400) / 2)


def test_the_whole_split_of_a_simulated_run(fake_nvml):
    run = simulate(SimulatedLoad(num_requests=200, seed=5), fake_nvml)
    load = run.load
    metrics = dict(run.metrics, avg_power_watts=400.0, energy_per_token_joules=0.2, energy_per_output_joules=50.0)
    section = energy_split.split_run(
        energy_split.RunEnergyInputs(
            metrics,
            {"0": 70.0},
            run.timeline,
            run.requests,
            engine=EngineLimits(load.max_num_seqs, load.max_num_batched_tokens),
        ),
        resamples=50,
    )
    columns = energy_split.tidy_columns(section)
    assert columns["static_power_watts"] == 70.0
    assert columns["static_energy_fraction"] == pytest.approx(70 / 400)
    assert columns["prefill_energy_per_prompt_token_joules"] == pytest.approx(0.02, rel=0.05)
    assert columns["decode_energy_per_output_token_joules"] == pytest.approx(0.12, rel=0.1)
    assert 0 < columns["request_static_energy_fraction_median"] < 1
    assert columns[energy_split.REASON_COLUMN] is None
    diffusion = energy_split.split_run(
        energy_split.RunEnergyInputs({"avg_power_watts": 300.0}, {"0": 60.0}, is_llm=False)
    )
    assert diffusion["phases"]["reason"] == energy_split.NOT_LLM
    assert diffusion["static_dynamic"]["static_energy_fraction"] == pytest.approx(0.2)


def _own(**columns):
    base = {
        "status": "ok",
        "is_llm": True,
        "run_id": "r",
        "series": "m (own), chat, 1 x H100",
        "model_id": "m",
        "task": "lm-arena-chat",
        "gpu_model": "H100",
        "num_gpus": 1,
        "source": "own",
    }
    n = max(len(v) for v in columns.values())
    return pd.DataFrame({**{k: [v] * n for k, v in base.items()}, **columns})


def test_batch_effect_split_shows_the_static_part_of_the_drop():
    # batch 16: 0.5 J/token, 40% static (0.2 J); batch 256: 0.1 J/token, 10% static (0.01 J)
    rows = _own(
        batch_size=[16, 64, 256], energy_per_token_joules=[0.5, 0.2, 0.1], static_energy_fraction=[0.4, 0.2, 0.1]
    )
    out = energy_split.batch_effect_split(rows).iloc[0]
    assert (out["small_batch"], out["large_batch"]) == (16, 256)
    assert out["batch_effect"] == pytest.approx(5.0)
    assert out["small_static_energy_per_token_joules"] == pytest.approx(0.2)
    assert out["large_dynamic_energy_per_token_joules"] == pytest.approx(0.09)
    assert out["static_share_of_drop"] == pytest.approx((0.2 - 0.01) / 0.4)
    # no batch of 16 or more (a CPU smoke sweep): the smallest against the largest
    small = energy_split.batch_effect_split(
        _own(batch_size=[1, 8], energy_per_token_joules=[1.0, 0.5], static_energy_fraction=[0.5, 0.2])
    )
    assert small.iloc[0]["static_share_of_drop"] == pytest.approx((0.5 - 0.1) / 0.5)
    assert energy_split.batch_effect_split(
        _own(batch_size=[8], energy_per_token_joules=[1.0], static_energy_fraction=[None])
    ).empty


def test_per_token_components_and_the_split_table():
    rows = _own(
        batch_size=[8, 64],
        run_id=["a", "b"],
        energy_per_token_joules=[0.5, 0.2],
        static_energy_per_token_joules=[0.2, 0.05],
        dynamic_energy_per_token_joules=[0.3, 0.15],
        prefill_energy_fraction=[0.1, None],
        decode_energy_fraction=[0.5, None],
        static_energy_fraction=[0.4, 0.25],
        phase_split_reason=[None, "only 5 sampler ticks"],
    )
    parts = energy_split.per_token_components(rows)
    a = parts[parts["run_id"] == "a"].set_index("component")["energy_per_token_joules"]
    assert a.to_dict() == pytest.approx({"static": 0.2, "prefill": 0.05, "decode": 0.25})
    b = parts[parts["run_id"] == "b"].set_index("component")["energy_per_token_joules"]
    assert b.to_dict() == pytest.approx({"static": 0.05, "dynamic": 0.15})
    assert parts["series"].str.endswith((": static", ": prefill", ": decode", ": dynamic")).all()
    table = energy_split.split_table(rows)
    assert list(table["batch"]) == [8, 64] and table["why not split"].tolist()[1] == "only 5 sampler ticks"
    assert energy_split.per_token_components(rows.iloc[0:0]).empty
