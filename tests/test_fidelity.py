"""Intervals, window sensitivity, error budget, TTFT summaries and repeats."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import pandas as pd
import pytest
import yaml

from conftest import FakeClock, FakeGPU
from harness.errors import ConfigError
from harness.measuring import fidelity, repeats, steady
from harness.orchestration.study import load_study
from harness.workloads.base import RequestRecord, WindowMeasurement
from test_validator import sampled


def _request(i, first, step, n, submit=0.0):
    times = [first + k * step for k in range(n)]
    return RequestRecord(i, 8, n, n, submit, times[0], times[-1], token_times_s=times)


def _gpu_timeline(fake_nvml, trace, seconds, clock, **kw):
    gpu = FakeGPU(trace, clock=clock, **kw)
    fake_nvml([gpu])
    frame, _, _ = sampled([gpu], clock, seconds)
    return gpu, frame


# --- bootstrap ----------------------------------------------------------------------------------------
def test_request_shares_add_up_to_the_window_energy_and_the_interval_holds_the_estimate(fake_nvml):
    clock = FakeClock(1000.0)
    # 300 W for 2 s, then 600 W: requests that run late carry more energy per token
    gpu, frame = _gpu_timeline(fake_nvml, [(999.0, 300.0), (1002.0, 600.0)], 4.0, clock)
    early = [_request(i, 1000.05 + 0.01 * i, 0.02, 90) for i in range(4)]
    late = [_request(4 + i, 1002.05 + 0.01 * i, 0.02, 90) for i in range(4)]
    reqs = early + late
    start, end = 1000.0, 1004.0
    energy = gpu.energy_joules_between(start, end)  # 3600 J
    iv = fidelity.llm_intervals(reqs, start, end, energy, frame)
    tokens = sum(len(r.token_times_s) for r in reqs)
    lo, hi = iv["energy_per_token_joules"]
    assert lo < energy / tokens < hi
    assert iv["energy_attribution"].startswith("NVML energy counter")
    # the late half costs twice the early half: the interval reflects that spread, it is not a point
    assert hi - lo > 0.2 * energy / tokens
    assert iv["units"] == 8


def test_constant_power_and_identical_requests_give_a_tight_interval(fake_nvml):
    clock = FakeClock(1000.0)
    gpu, frame = _gpu_timeline(fake_nvml, [(999.0, 300.0)], 4.0, clock)
    reqs = [_request(i, 1000.0 + 0.001 * (i + 1), 0.05, 79) for i in range(8)]
    iv = fidelity.llm_intervals(reqs, 1000.0, 1004.0, gpu.energy_joules_between(1000.0, 1004.0), frame)
    lo, hi = iv["energy_per_token_joules"]
    assert (hi - lo) / ((hi + lo) / 2) < 0.02


def test_without_energy_only_throughput_gets_an_interval():
    reqs = [_request(i, 1.0 + 0.01 * i, 0.1, 20 + i) for i in range(6)]
    iv = fidelity.llm_intervals(reqs, 1.0, 4.0, None, None)
    assert iv["energy_per_token_joules"] is None and "energy not measured" in iv["note"]
    lo, hi = iv["output_throughput_tokens_per_sec"]
    tokens = sum(sum(1 for t in r.token_times_s if 1.0 < t <= 4.0) for r in reqs)
    assert lo <= tokens / 3.0 <= hi


def test_bootstrap_is_reproducible_and_needs_two_units():
    assert fidelity.bootstrap_ratio([1, 2, 3, 4], [1, 1, 1, 1]) == fidelity.bootstrap_ratio([1, 2, 3, 4], [1, 1, 1, 1])
    assert fidelity.bootstrap_ratio([1.0], [1.0]) is None


def test_diffusion_resamples_iterations():
    rows = [{"energy_per_image_joules": e, "duration_s": 1.0 + 0.1 * i} for i, e in enumerate([10, 11, 12, 13])]
    iv = fidelity.diffusion_intervals(rows, "image")
    lo, hi = iv["energy_per_output_joules"]
    assert 10 <= lo < 11.5 < hi <= 13
    assert fidelity.diffusion_intervals(rows[:1], "image")["energy_per_output_joules"] is None


# --- window sensitivity -------------------------------------------------------------------------------
def test_trimmed_window_drops_the_first_and_last_tenth_of_requests():
    reqs = [RequestRecord(i, 8, 4, 4, 0.0, float(i), float(i) + 100.0) for i in range(20)]
    assert fidelity.trimmed_bounds(reqs) == (2.0, 117.0)  # 3rd first token .. 18th finish


def test_three_windows_side_by_side_with_counter_energy(fake_nvml):
    clock = FakeClock(1000.0)
    gpu, frame = _gpu_timeline(fake_nvml, [(999.0, 200.0), (1001.0, 400.0)], 5.0, clock)
    reqs = [_request(i, 1000.1 + 0.1 * i, 0.05, 60) for i in range(10)]
    bounds = steady.steady_bounds(reqs, 4)
    steady_energy = gpu.energy_joules_between(*bounds)
    windows = {
        "steady": WindowMeasurement("steady", *bounds, {0: steady_energy}, {}, {}, "zeus"),
        "run": WindowMeasurement("run", 1000.0, 1005.0, {0: gpu.energy_joules_between(1000.0, 1005.0)}, {}, {}, "zeus"),
    }
    metrics, _ = steady.llm_metrics(reqs, windows, 4)
    ws = fidelity.window_sensitivity(reqs, windows, metrics, frame)
    assert set(ws) == {"steady", "whole_run", "trimmed"}
    assert ws["steady"]["energy_per_token_joules"] == pytest.approx(metrics["energy_per_token_joules"])
    assert ws["whole_run"]["energy_per_token_joules"] == pytest.approx(
        gpu.energy_joules_between(1000.0, 1005.0) / sum(len(r.token_times_s) for r in reqs)
    )
    t0, t1 = fidelity.trimmed_bounds(reqs)
    assert ws["trimmed"]["energy_joules"] == pytest.approx(gpu.energy_joules_between(t0, t1), rel=1e-6)
    assert ws["trimmed"]["energy_source"] == "timeline energy counter"


# --- error budget -------------------------------------------------------------------------------------
class SteppedCounterGPU(FakeGPU):
    """A counter that only advances every ``period_s`` (like NVML's, at a coarser step)."""

    period_s = 0.5

    def counter_mj(self) -> int:
        t = self.clock()
        t = self.times[0] + math.floor((t - self.times[0]) / self.period_s) * self.period_s
        return self.BASE_MJ + round(1000 * self.energy_joules_between(self.times[0], t))


def test_counter_update_period_is_read_from_the_timeline(fake_nvml):
    clock = FakeClock(1000.0)
    _, frame = _gpu_timeline(fake_nvml, [(999.95, 300.0)], 5.0, clock)
    period, bound = fidelity.counter_update_period_s(frame)
    assert bound and period == pytest.approx(0.1)  # it moved at every sample: only a bound
    gpu = SteppedCounterGPU([(999.95, 300.0)], clock=clock)
    fake_nvml([gpu])
    frame, _, _ = sampled([gpu], clock, 5.0)
    period, bound = fidelity.counter_update_period_s(frame)
    assert not bound and period == pytest.approx(0.5)
    budget = fidelity.error_budget({"gpu_energy_joules": 1.0, "steady_duration_s": 10.0}, {}, {}, frame, True)
    assert budget["items"]["counter_update"]["relative"] == pytest.approx(0.1)  # 2 x 0.5 s / 10 s


def test_budget_compares_sampled_power_and_the_windows():
    metrics = {
        "gpu_energy_joules": None,
        "avg_sampled_power_watts": 330.0,
        "avg_power_watts": 300.0,
        "telemetry_coverage_fraction": 0.9,
        "output_throughput_tokens_per_sec": 100.0,
    }
    sens = {"steady": {"energy_per_token_joules": 0.5}, "whole_run": {"energy_per_token_joules": 0.55}}
    items = fidelity.error_budget(metrics, sens, {"output_throughput_tokens_per_sec": [95.0, 105.0]}, None, True)[
        "items"
    ]
    assert items["instant_vs_averaged_power"]["relative"] == pytest.approx(0.1)
    assert items["telemetry_coverage"]["relative"] == pytest.approx(0.1)
    assert items["steady_vs_whole_run"]["relative"] == pytest.approx(0.1)
    assert items["bootstrap"]["relative"] == pytest.approx(0.05)
    assert items["counter_update"]["relative"] is None and "no energy counter" in items["counter_update"]["note"]


# --- TTFT -------------------------------------------------------------------------------------------
def test_ttft_summaries_cover_the_successful_requests():
    reqs = [_request(i, 1.0 + 0.1 * i, 0.01, 5, submit=1.0) for i in range(11)]
    reqs.append(RequestRecord(99, 8, 5, 0, 1.0, None, None, success=False, error="boom"))
    metrics, _ = steady.llm_metrics(reqs, {}, 2)
    assert metrics["mean_ttft_ms"] == pytest.approx(500.0)
    assert metrics["median_ttft_ms"] == pytest.approx(500.0)
    assert metrics["p90_ttft_ms"] == pytest.approx(900.0)
    assert metrics["p99_ttft_ms"] == pytest.approx(990.0)


# --- repeats ------------------------------------------------------------------------------------------
def _study(tmp_path, **block):
    run = {
        "task": "cpu-trivial",
        "backend": "trivial",
        "models": ["cpu-spin"],
        "num_requests": 12,
        "max_output_tokens": 6,
        "options": {"step_s": 0.001},
        "grid": {"max_num_seqs": [1, 2]},
        **block,
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": "s", "settings": {"idle_power_s": 0, "cooldown_s": 0}, "runs": [run]}))
    return path


def test_repeats_keep_the_first_run_id_and_suffix_the_others(tmp_path):
    plain = load_study(_study(tmp_path)).configurations
    study = load_study(_study(tmp_path, repeats=3))
    ids = [c.run_id for c in study.configurations]
    base = [c.run_id for c in plain]
    assert ids == base + [f"{b}-r2" for b in base] + [f"{b}-r3" for b in base]
    assert {c.base_run_id for c in study.configurations} == set(base)
    assert load_study(_study(tmp_path, repeats=1)).configurations == plain


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, 101])
def test_bad_repeats_is_one_config_error(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"runs\[0\]\.repeats: must be an integer from 1 to 100"):
        load_study(_study(tmp_path, repeats=bad))


def test_t_interval_of_known_values():
    mean, sd, _lo, hi = repeats.t_interval([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0)
    assert hi - mean == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert repeats.t_interval([1.0]) is None


def test_with_intervals_uses_repeats_then_bootstrap_and_labels_published_rows():
    frame = pd.DataFrame(
        {
            "study": ["s", "s", "s", "s", None],
            "run_id": ["a", "a-r2", "a-r3", "b", None],
            "status": ["ok"] * 5,
            "is_reference": [False] * 4 + [True],
            "series": ["x"] * 4 + ["p"],
            "batch_size": [1, 1, 1, 2, 1],
            "energy_per_token_joules": [1.0, 2.0, 3.0, 5.0, 7.0],
            "energy_per_token_ci_low_joules": [0.9, 1.9, 2.9, 4.5, None],
            "energy_per_token_ci_high_joules": [1.1, 2.1, 3.1, 5.5, None],
        }
    )
    out = repeats.with_intervals(frame, "energy_per_token_joules").set_index("series", append=True)
    rows = {(r.run_id if isinstance(r.run_id, str) else "ref"): r for r in out.reset_index().itertuples()}
    assert rows["a"].energy_per_token_joules == 2.0 and rows["a"].repeats == 3
    assert rows["a"].interval_kind == repeats.REPEATED and rows["a"].energy_per_token_joules_high > 3.0
    assert (rows["b"].energy_per_token_joules_low, rows["b"].energy_per_token_joules_high) == (4.5, 5.5)
    assert rows["b"].interval_kind == repeats.SINGLE_RUN
    assert rows["ref"].interval_kind == repeats.PUBLISHED and math.isnan(rows["ref"].energy_per_token_joules_low)


def test_a_repeated_sweep_shows_intervals_and_an_error_budget(tmp_path, no_nvml):
    from harness.cli import main
    from harness.measuring import store
    from test_runner import _measure

    counts, _ = _measure(_study(tmp_path, repeats=2, grid={"max_num_seqs": [2]}), tmp_path / "results")
    assert counts == {"ok": 2}
    frame = store.collect(tmp_path / "results")
    assert sorted(frame["repeat"]) == [1, 2] and frame["base_run_id"].nunique() == 1
    assert frame["median_ttft_ms"].notna().all() and frame["output_throughput_ci_low_tokens_per_sec"].notna().all()
    summary = repeats.summarize(frame)
    assert summary.loc[0, "repeats"] == 2
    assert summary.loc[0, "output_throughput_tokens_per_sec_ci_low"] <= frame["output_throughput_tokens_per_sec"].min()
    base = frame["base_run_id"].iloc[0]
    record = json.loads((tmp_path / "results" / "s" / base / "run.json").read_text())
    assert set(record["fidelity"]) == {"intervals", "window_sensitivity", "error_budget"}
    assert set(record["fidelity"]["window_sensitivity"]) == {"steady", "whole_run", "trimmed"}
    assert record["metrics"]["gpu_energy_joules"] is None  # never 0 J on a CPU host
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["show", base, "--results", str(tmp_path / "results")]) == 0
    text = out.getvalue()
    for needle in (
        "validation passed",
        "intervals  bootstrap over requests",
        "error budget (relative)",
        "whole_run",
        "trimmed",
        "repeats    2 runs of this configuration",
        "Student's t",
    ):
        assert needle in text, needle


# --- the book: error bars, window sensitivity and TTFT --------------------------------------------------
def test_the_chapter_draws_error_bars_and_the_window_and_ttft_tables(tmp_path):
    papermill = pytest.importorskip("papermill")
    from pathlib import Path

    from harness.analysis import measurements as M
    from test_measurements import _write_run

    results = tmp_path / "results"
    base = {
        "output_throughput_whole_run_tokens_per_sec": 90.0,
        "output_throughput_trimmed_tokens_per_sec": 105.0,
        "median_itl_ms": 5.0,
        "avg_batch_size": 4.0,
        "mean_ttft_ms": 40.0,
        "median_ttft_ms": 35.0,
        "p90_ttft_ms": 80.0,
        "p99_ttft_ms": 99.0,
    }
    for run_id, rate in (("aaaaaaaaaaaa", 100.0), ("aaaaaaaaaaaa-r2", 110.0), ("aaaaaaaaaaaa-r3", 105.0)):
        _write_run(
            results,
            "smoke",
            run_id,
            "tiny-llama",
            "lm-arena-chat",
            None,
            4,
            {**base, "output_throughput_tokens_per_sec": rate},
        )
    _write_run(
        results,
        "smoke",
        "bbbbbbbbbbbb",
        "tiny-llama",
        "lm-arena-chat",
        None,
        8,
        {
            **base,
            "output_throughput_tokens_per_sec": 150.0,
            "output_throughput_ci_low_tokens_per_sec": 140.0,
            "output_throughput_ci_high_tokens_per_sec": 160.0,
        },
    )
    own = M.own_runs(results)
    bars = M.with_intervals(own[own["status"] == "ok"], "output_throughput_tokens_per_sec").set_index("batch_size")
    assert bars.loc[4, "output_throughput_tokens_per_sec"] == pytest.approx(105.0) and bars.loc[4, "repeats"] == 3
    assert bars.loc[8, "output_throughput_tokens_per_sec_low"] == 140.0
    windows = M.window_sensitivity(own)
    assert windows.loc[windows["run"] == "bbbbbbbbbbbb", "whole run / steady"].iloc[0] == pytest.approx(0.6)
    assert M.ttft_table(own)["p99 TTFT (ms)"].tolist() == [99.0] * 4
    out = tmp_path / "out.ipynb"
    repo = Path(__file__).resolve().parent.parent
    papermill.execute_notebook(
        str(repo / "notebooks" / "your-measurements.ipynb"),
        str(out),
        parameters={"results_dir": str(results), "output_dir": str(tmp_path / "figs")},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(repo),
    )
    text = json.dumps(json.loads(out.read_text())["cells"])
    assert '"ename"' not in text
    assert "without first and last 10% of requests" in text and "p99 TTFT (ms)" in text
    assert "output_throughput_tokens_per_sec_low" in text and '\\"rule\\"' in text  # the error bars' layer
    windows_csv = pd.read_csv(tmp_path / "figs" / "own-window-sensitivity.csv")
    assert len(windows_csv) == 4


def test_lines_with_an_interval_add_an_error_bar_layer():
    from harness.report import charts

    frame = pd.DataFrame(
        {"batch_size": [1, 2], "y_joules": [1.0, 2.0], "y_lo": [0.9, None], "y_hi": [1.1, None], "series": ["a", "a"]}
    )
    spec = charts.lines(
        frame, x="batch_size", y="y_joules", series="series", facet=None, low="y_lo", high="y_hi"
    ).to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert marks == ["line", "point", "rule"]
    assert "y" in spec["layer"][2]["encoding"] and spec["layer"][2]["encoding"]["y2"]["field"] == "y_hi"
    plain = charts.lines(frame, x="batch_size", y="y_joules", series="series", facet=None).to_dict()
    assert len(plain["layer"]) == 2
