"""The phase estimator (harness.analysis.phases and engine_steps).

The recovery tests run simulated language-model runs at the NVML fake boundary (tests/phase_sim.py): the GPUs'
power follows known prefill and decode coefficients, the harness reads it through its own sampler and idle-power
code, and the estimator must give the coefficients back within its stated error.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.analysis import phases
from harness.analysis.engine_steps import EngineLimits, Segments, spread, work_segments
from phase_sim import SimulatedLoad, schedule, simulate


def _estimate(run, engine=None, **kwargs):
    load = run.load
    engine = engine or EngineLimits(load.max_num_seqs, load.max_num_batched_tokens)
    return phases.estimate(
        phases.PhaseInputs(
            run.timeline, run.requests, run.steady_start_s, run.steady_end_s, run.idle_power_total_watts, engine
        ),
        **kwargs,
    )


def _relative_error(estimate, load):
    return (
        estimate.prefill_joules_per_token / load.prefill_joules_per_token - 1,
        estimate.decode_joules_per_token / load.decode_joules_per_token - 1,
    )


@pytest.mark.parametrize(
    "load",
    [
        SimulatedLoad(),
        SimulatedLoad(max_num_seqs=8, num_requests=100, seed=1),
        SimulatedLoad(
            num_gpus=2, prefill_joules_per_token=0.05, decode_joules_per_token=0.3, idle_power_watts=90.0, seed=2
        ),
        SimulatedLoad(prompt_mean_tokens=3000, output_mean_tokens=100, seed=3),
    ],
    ids=["batch-64", "batch-8", "two-gpus", "long-prompts"],
)
def test_recovers_known_coefficients_within_the_stated_error(fake_nvml, load):
    run = simulate(load, fake_nvml)
    assert run.idle_power_watts == pytest.approx(dict.fromkeys(range(load.num_gpus), load.idle_power_watts))
    est = _estimate(run)
    assert est.available, est.reason
    prefill_error, decode_error = _relative_error(est, load)
    assert abs(prefill_error) <= phases.STATED_ERROR["prefill"], prefill_error
    assert abs(decode_error) <= phases.STATED_ERROR["decode"], decode_error
    assert est.prefill_interval[0] < est.prefill_joules_per_token < est.prefill_interval[1]
    assert est.decode_interval[0] < est.decode_joules_per_token < est.decode_interval[1]
    # the split adds up: static + prefill + decode + residual = the ticks' energy; static is idle power x time
    parts = est.static_energy_joules + est.prefill_energy_joules + est.decode_energy_joules
    assert parts + est.residual_energy_joules == pytest.approx(est.energy_joules)
    assert est.static_energy_joules == pytest.approx(load.idle_power_watts * load.num_gpus * est.duration_s)
    assert abs(est.share("residual")) < 0.02
    assert est.energy_source == "NVML energy counter"


def test_interval_covers_the_truth_and_narrows_with_less_noise(fake_nvml):
    noisy = _estimate(simulate(SimulatedLoad(noise_fraction=0.15, seed=4), fake_nvml))
    quiet = _estimate(simulate(SimulatedLoad(noise_fraction=0.01, seed=4), fake_nvml))
    for est in (noisy, quiet):
        assert est.decode_interval[0] <= 0.12 <= est.decode_interval[1]

    def width(interval):
        return interval[1] - interval[0]

    assert width(quiet.prefill_interval) < width(noisy.prefill_interval) / 3


def test_without_the_engine_limits_the_prefill_is_biased_low_and_says_so(fake_nvml):
    run = simulate(SimulatedLoad(prompt_mean_tokens=3000, output_mean_tokens=100, seed=3), fake_nvml)
    est = _estimate(run, engine=EngineLimits())
    assert est.available
    assert any("limits are unknown" in note for note in est.notes)
    assert _relative_error(est, run.load)[0] < -0.3  # chunked prompts placed in one step: attenuated


def test_a_gpu_without_an_energy_counter_falls_back_to_sampled_power(fake_nvml):
    run = simulate(SimulatedLoad(has_counter=False, max_num_seqs=256, num_requests=1200), fake_nvml)
    assert run.timeline["energy_counter_joules"].isna().all()
    est = _estimate(run)
    assert est.available and est.energy_source.startswith("sampled power")
    assert any("no energy counter" in note for note in est.notes)
    prefill_error, decode_error = _relative_error(est, run.load)
    assert abs(prefill_error) < 0.15 and abs(decode_error) < 0.15  # coarser than the counter, still close


def test_decode_work_is_placed_in_the_steps_that_produced_it():
    load = SimulatedLoad(num_requests=200)
    from harness.measuring import steady

    requests, steps = schedule(load, 1000.0, np.random.default_rng(0))
    rows = pd.DataFrame(steady.llm_metrics(requests, {}, load.max_num_seqs)[1])
    prefill, decode = work_segments(rows, EngineLimits(load.max_num_seqs, load.max_num_batched_tokens))
    steps = np.asarray(steps)
    edges = np.arange(steps[0, 0], steps[-1, 1] + 0.1, 0.1)
    true_decode = spread(edges, Segments(steps[:, 0], steps[:, 1], steps[:, 3]))
    true_prefill = spread(edges, Segments(steps[:, 0], steps[:, 1], steps[:, 2]))
    assert spread(edges, decode) == pytest.approx(true_decode, abs=1e-6)
    assert prefill.weight.sum() == pytest.approx(rows["prompt_tokens"].sum())
    assert np.corrcoef(spread(edges, prefill), true_prefill)[0, 1] > 0.99


def test_spread_shares_a_segment_by_its_time_in_each_tick():
    edges = np.array([1e9, 1e9 + 1, 1e9 + 2, 1e9 + 3])  # wall-clock seconds keep their precision
    segments = Segments(
        np.array([1e9 + 0.5, 1e9 + 2.0, 1e9 + 2.5]),
        np.array([1e9 + 1.5, 1e9 + 2.0, 1e9 + 4.0]),
        np.array([10.0, 3.0, 6.0]),
    )
    # 10 over [0.5, 1.5]: 5 + 5; 3 at 2.0 (a point, in (1, 2]); 6 over [2.5, 4]: 2 in (2, 3], the rest outside
    assert spread(edges, segments) == pytest.approx([5.0, 8.0, 2.0])


def test_nnls_matches_scipy():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(7)
    for _ in range(20):
        x = rng.normal(size=(40, 2))
        y = x @ rng.normal(size=2) + rng.normal(scale=0.5, size=40)
        assert phases.nnls(x, y) == pytest.approx(optimize.nnls(x, y)[0], abs=1e-9)


def _ticks_timeline(counters: list[float], times: list[float], gpu: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time_s": times,
            "source": "nvml",
            "gpu_index": pd.array([gpu] * len(times), dtype="Int64"),
            "energy_counter_joules": counters,
            "power_watts": 100.0,
        }
    )


def test_a_counter_that_went_backwards_drops_its_tick():
    times = [0.0, 0.1, 0.2, 0.3, 0.4]
    ticks, source = phases.tick_energy(_ticks_timeline([100.0, 110.0, 5.0, 15.0, 26.0], times), 0.0, 0.4)
    assert source == "NVML energy counter"
    assert ticks["energy_joules"].tolist()[0] == pytest.approx(10.0)
    assert math.isnan(ticks["energy_joules"].tolist()[1])
    assert ticks["energy_joules"].tolist()[2:] == pytest.approx([10.0, 11.0])


def test_a_cpu_host_gets_a_reason_never_zero_joules():
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
    est = phases.estimate(phases.PhaseInputs(host_only, requests, 0.0, 0.1, None))
    assert not est.available and "no NVML" in est.reason and "CPU-only" in est.reason
    assert est.prefill_joules_per_token is None and est.static_energy_joules is None and est.share("static") is None


def test_no_idle_power_no_estimate(fake_nvml):
    run = simulate(SimulatedLoad(num_requests=120), fake_nvml)
    est = phases.estimate(phases.PhaseInputs(run.timeline, run.requests, run.steady_start_s, run.steady_end_s, None))
    assert not est.available and "idle power was not measured" in est.reason
