"""The energy model (fit, identities, intervals), the validation splits, the planner's replay oracle, bad input."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.analysis import predict as P
from harness.errors import HarnessError, SelectorError
from harness.orchestration import planner as PL


def _synthetic(seed: int = 0) -> pd.DataFrame:
    """LLM rows that follow the model's own structure exactly (plus 1% noise), over 8 models and 2 GPUs."""
    rng = np.random.default_rng(seed)
    rows = []
    for m, (total, active) in enumerate([(8, 8), (14, 14), (32, 32), (30, 3), (70, 70), (12, 12), (109, 17), (20, 20)]):
        for gpu, speed in (("H100", 1.0), ("B200", 0.6)):
            gpus = 1 if total < 60 else 4
            for b in (8, 16, 32, 64, 128, 256):
                c = b * 0.97
                itl = speed * (4 + 0.5 * active / gpus + 0.02 * c)
                power = gpus * (300 + 80 * math.log2(c)) * (1.4 if gpu == "B200" else 1.0)
                thr = 0.9 * c / (itl / 1000)
                noise = rng.normal(0, 0.01, 3)
                rows.append(
                    {
                        "model_id": f"org/m{m}",
                        "base_model_id": f"org/m{m}",
                        "task": "lm-arena-chat",
                        "gpu_model": gpu,
                        "num_gpus": gpus,
                        "max_num_seqs": b,
                        "batch_size": b,
                        "total_params_billions": total,
                        "activated_params_billions": active,
                        "weight_precision": "bfloat16",
                        "architecture": "MoE" if total != active else "Dense",
                        "avg_batch_size": c,
                        "median_itl_ms": itl * math.exp(noise[0]),
                        "avg_power_watts": power * math.exp(noise[1]),
                        "output_throughput_tokens_per_sec": thr * math.exp(noise[2]),
                        "avg_output_len": 500.0,
                    }
                )
    frame = pd.DataFrame(rows)
    frame["energy_per_token_joules"] = frame["avg_power_watts"] / frame["output_throughput_tokens_per_sec"]
    frame["energy_per_request_joules"] = frame["energy_per_token_joules"] * frame["avg_output_len"]
    return frame


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic()


def test_fit_reproduces_structured_data_and_the_identities_hold(synthetic):
    f = P.fit(synthetic, "llm")
    pred = f.predict(synthetic.iloc[:12], coverage=0.8)
    assert (pred["level"] == "series").all()
    rel = (pred["energy_per_token_joules"] / synthetic["energy_per_token_joules"].iloc[:12] - 1).abs()
    assert rel.max() < 0.02
    # energy per token = power / throughput, throughput = ratio x batch reached / ITL
    assert np.allclose(
        pred["energy_per_token_joules"], pred["avg_power_watts"] / pred["output_throughput_tokens_per_sec"]
    )
    assert (pred["energy_per_token_joules_low"] <= pred["energy_per_token_joules"]).all()
    assert (pred["energy_per_token_joules"] <= pred["energy_per_token_joules_high"]).all()
    assert (pred["avg_batch_size_high"] <= synthetic["max_num_seqs"].iloc[:12].to_numpy()).all()


def test_an_unseen_model_is_predicted_from_facts_with_a_wider_interval(synthetic):
    f = P.fit(synthetic[synthetic["model_id"] != "org/m2"], "llm")
    query = synthetic[synthetic["model_id"] == "org/m2"]
    pred = f.predict(query)
    assert (pred["level"] == "facts").all()
    rel = (pred["energy_per_token_joules"] / query["energy_per_token_joules"] - 1).abs()
    assert rel.median() < 0.25
    width_facts = (pred["energy_per_token_joules_high"] / pred["energy_per_token_joules_low"]).median()
    seen = f.predict(synthetic[synthetic["model_id"] == "org/m1"])
    width_series = (seen["energy_per_token_joules_high"] / seen["energy_per_token_joules_low"]).median()
    assert width_facts > width_series


def test_validation_splits_hold_out_what_they_say(synthetic):
    errs = P.held_out_errors(synthetic, "llm", "batch")
    assert set(errs["level"]) == {"series"} and errs["row"].nunique() == len(synthetic)
    lomo = P.held_out_errors(synthetic, "llm", "model")
    assert set(lomo["level"]) == {"facts"}
    transfer = P.held_out_errors(synthetic, "llm", "transfer")
    assert set(transfer["level"]) == {"model"}
    assert set(synthetic.loc[transfer["row"].unique(), "gpu_model"]) == {"B200"}
    with pytest.raises(SelectorError, match="unknown validation split"):
        list(P.folds(synthetic, "llm", "nonsense"))


def test_interval_coverage_is_near_nominal_on_exchangeable_errors():
    rng = np.random.default_rng(1)
    errs = pd.DataFrame(
        {
            "quantity": "q",
            "stratum": "facts",
            "group": np.repeat(np.arange(50), 20),
            "log_error": rng.normal(0, 0.1, 1000),
        }
    )
    covered = P.jackknife_coverage(errs, 0.8)
    assert 0.75 <= covered.mean() <= 0.85
    cal = P.Calibration(
        {("q", "facts"): errs["log_error"].to_numpy(), ("q", "series-interior"): errs["log_error"].to_numpy()}
    )
    lo, hi = cal.quantiles("q", "facts", 0.8)
    assert lo == pytest.approx(-0.128, abs=0.02) and hi == pytest.approx(0.128, abs=0.02)
    wide = cal.quantiles("q", "series-interior", 0.8, distance=2.0)
    assert wide[1] == pytest.approx(2 * cal.quantiles("q", "series-interior", 0.8, distance=1.0)[1])


def test_replay_oracle_and_planner_settle_with_part_of_the_grid(synthetic):
    rows = synthetic[(synthetic["model_id"] == "org/m1") & (synthetic["gpu_model"] == "H100")]
    truth = PL.oracle(rows, "llm", targets=(13.0, 1000.0))
    fast = rows[rows["median_itl_ms"] <= 13.0]
    assert 0 < len(fast) < len(rows)
    assert truth[13.0] == (
        int(fast.loc[fast["energy_per_token_joules"].idxmin(), "max_num_seqs"]),
        pytest.approx(fast["energy_per_token_joules"].min()),
    )
    assert truth[math.inf][0] == int(rows.loc[rows["energy_per_token_joules"].idxmin(), "max_num_seqs"])
    backend = PL.ReplayBackend(rows, "llm")
    assert backend(64)["max_num_seqs"] == 64 and backend(3) is None and backend.calls == [64, 3]
    res = PL.replay(synthetic, "llm")
    assert res["within_tolerance"].mean() >= 0.9
    per = res.drop_duplicates("series")
    assert per["measured"].sum() < per["grid"].sum()


def test_planner_drops_a_failed_batch_and_goes_on(synthetic):
    f = P.fit(synthetic[synthetic["model_id"] != "org/m1"], "llm")
    rows = synthetic[(synthetic["model_id"] == "org/m1") & (synthetic["gpu_model"] == "H100")]
    answers = PL.ReplayBackend(rows, "llm")

    def flaky(batch):
        return None if batch == 256 else answers(batch)

    planner = PL.SeriesPlanner(f, rows)
    chosen = planner.run(flaky)
    assert 256 not in planner.measured and chosen[math.inf] is not None


def test_replay_series_measures_part_of_the_grid_and_counts_the_targets_it_settles(synthetic):
    f = P.fit(synthetic[synthetic["model_id"] != "org/m1"], "llm")
    rows = synthetic[(synthetic["model_id"] == "org/m1") & (synthetic["gpu_model"] == "H100")]
    result = PL.replay_series(f, rows, "llm")
    assert 0 < len(result.order) < len(rows) and len(set(result.order)) == len(result.order)
    assert set(result.chosen) == set(result.optimum) == set(PL.ITL_TARGETS_MS) | {math.inf}
    assert {b for b in result.chosen.values() if b is not None} <= set(result.order)
    made_up = PL.ReplayedSeries(
        "llm",
        order=[8, 16],
        chosen={50.0: 16, 100.0: 16, math.inf: 8, 10.0: None},
        optimum={50.0: (16, 1.0), 100.0: (32, 0.9), math.inf: (8, 0.5), 10.0: (None, math.inf)},
        rows={8: {"energy_per_token_joules": 0.5}, 16: {"energy_per_token_joules": 1.0}},
    )
    assert made_up.targets_within(0.02) == 3  # at 100 ms the choice is 11% above the optimum
    assert made_up.targets_within(0.2) == 4


def test_best_under_targets_keeps_to_the_latency_and_the_power_budget():
    predicted = pd.DataFrame(
        {
            "max_num_seqs": [8, 64, 256],
            "median_itl_ms": [10.0, 30.0, 80.0],
            "avg_power_watts": [400.0, 700.0, 900.0],
            "energy_per_request_joules": [900.0, 300.0, 150.0],
        }
    )
    predicted["energy_per_request_joules_low"] = predicted["energy_per_request_joules"] * 0.8
    predicted["energy_per_request_joules_high"] = predicted["energy_per_request_joules"] * 1.25
    measured = pd.DataFrame(
        {
            "max_num_seqs": [8, 64, 256],
            "median_itl_ms": [12.0, 28.0, 60.0],
            "avg_power_watts": [420.0, 650.0, 950.0],
            "energy_per_request_joules": [950.0, 320.0, 140.0],
        }
    )
    best = P.best_under_targets(predicted, measured, [5, 11, 50, 100], power_budget_watts=800)
    # 5 ms: nothing meets it; 11 ms: batch 8 predicted, nothing measured; 50 and 100 ms: batch 256 is too slow at
    # 50 ms and draws more than 800 W
    assert best["predicted_max_num_seqs"].tolist()[1:] == [8, 64, 64] and pd.isna(best["predicted_max_num_seqs"][0])
    assert best["measured_max_num_seqs"].isna().tolist() == [True, True, False, False]
    assert best["measured_max_num_seqs"].tolist()[2:] == [64, 64]
    assert P.best_under_targets(predicted, measured, [100], 1000)["predicted_max_num_seqs"].tolist() == [256]
    shown = P.choices_table(best)
    assert shown["Predicted best batch"].tolist() == ["none", "8", "64", "64"]
    assert shown.loc[2, "Predicted energy per response (J)"] == "300 (240 to 375)"
    assert pd.isna(shown.loc[1, "Measured best batch"]) and shown.loc[2, "Measured energy per response (J)"] == "320"


def test_unknown_model_gpu_task_and_bad_selectors_are_one_line_errors(synthetic, tmp_path):
    table = tmp_path / "fit.csv"
    synthetic.to_csv(table, index=False)
    for selector, message in (
        ("model=org/nope,task=lm-arena-chat,gpu=H100,max_num_seqs=8", "unknown model 'org/nope'"),
        ("model=org/m1,gpu=H100,max_num_seqs=8", "names no task"),
        ("model=org/m1,task=lm-arena-chat,gpu=A100,max_num_seqs=8", "GPU 'A100' is not in the fit"),
        ("model=org/m1,task=lm-arena-chat,gpu=H100", "names no batch"),
        ("model=org/m1,task=lm-arena-chat,gpu=H100,max_num_seqs=many", "is not a number"),
        ("model=org/m1,task=lm-arena-chat,gpu=H100,max_num_seqs=8,color=red", "unknown key 'color'"),
        ("model=org/m1,task", "is not key=value"),
    ):
        with pytest.raises(SelectorError, match=message) as info:
            P.predict_selector(selector, str(table))
        assert "\n" not in str(info.value)
    with pytest.raises(HarnessError, match=r"not 'reference', a results folder or a .csv"):
        P.predict_selector("model=org/m1,task=lm-arena-chat,gpu=H100,max_num_seqs=8", str(tmp_path / "none.txt"))


def test_predict_cli_json_uses_reference_column_names(synthetic, tmp_path, capsys):
    import json

    from harness.cli import main

    table = tmp_path / "fit.csv"
    synthetic.to_csv(table, index=False)
    code = main(
        ["predict", "total=10,active=10,task=lm-arena-chat,gpu=H100,max_num_seqs=64", "--fit", str(table), "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["level"] == "facts"
    for name in ("energy_per_token_joules", "avg_power_watts", "median_itl_ms", "output_throughput_tokens_per_sec"):
        assert out[f"{name}_low"] <= out[name] <= out[f"{name}_high"]
    code = main(["predict", "model=org/zzz,task=lm-arena-chat,gpu=H100,max_num_seqs=64", "--fit", str(table)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: unknown model") and err.count("\n") == 1


def test_measure_strategy_frontier_without_published_facts_measures_the_grid(tmp_path, no_nvml):
    from harness.orchestration.runner import measure_study
    from harness.orchestration.study import load_study

    run = {
        "task": "cpu-trivial",
        "backend": "trivial",
        "models": ["cpu-spin"],
        "num_requests": 8,
        "max_output_tokens": 4,
        "options": {"step_s": 0.001},
        "grid": {"max_num_seqs": [1, 2, 4]},
    }
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"study": "t", "settings": {"idle_power_s": 0}, "runs": [run]}))
    out = io.StringIO()
    counts = measure_study(load_study(path), tmp_path / "results", progress=False, out=out, strategy="frontier")
    assert counts.get("ok") == 3
    assert "frontier:" in out.getvalue() and "grid order" in out.getvalue()


def test_own_runs_without_model_facts_get_them_from_the_published_index(monkeypatch, tmp_path):
    from support import REFERENCE_DIR

    if not REFERENCE_DIR.is_dir():
        pytest.skip("reference data unavailable")
    monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(REFERENCE_DIR))
    own = _synthetic().drop(
        columns=[
            "total_params_billions",
            "activated_params_billions",
            "weight_precision",
            "architecture",
            "base_model_id",
        ]
    )
    ids = {
        f"org/m{i}": m
        for i, m in enumerate(
            [
                "Qwen/Qwen3-8B",
                "Qwen/Qwen3-14B",
                "Qwen/Qwen3-32B",
                "Qwen/Qwen3-30B-A3B-Instruct-2507",
                "meta-llama/Llama-3.1-70B-Instruct",
                "google/gemma-3-12b-it",
                "meta-llama/Llama-4-Scout-17B-16E-Instruct",
                "openai/gpt-oss-20b",
            ]
        )
    }
    own["model_id"] = own["model_id"].map(ids)
    path = tmp_path / "own.csv"
    own.to_csv(path, index=False)
    table = P.load_fit_table(str(path))
    assert table.loc[table["model_id"] == "Qwen/Qwen3-32B", "total_params_billions"].eq(32).all()
    out = P.predict_selector("model=Qwen/Qwen3-32B,task=lm-arena-chat,gpu=H100,max_num_seqs=48", str(path))
    assert out["level"] == "series"
    assert out["energy_per_token_joules_low"] <= out["energy_per_token_joules"] <= out["energy_per_token_joules_high"]
    empty = tmp_path / "results"
    empty.mkdir()
    with pytest.raises(HarnessError, match="no finished runs"):
        P.load_fit_table(str(empty))


def test_frontier_order_hands_the_runner_only_the_batches_the_planner_picks(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from harness.measuring import store
    from harness.published import reference
    from support import REFERENCE_DIR

    if not REFERENCE_DIR.is_dir():
        pytest.skip("reference data unavailable")
    monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(REFERENCE_DIR))
    rows = reference.llm_table()
    rows = rows[
        (rows["model_id"] == "Qwen/Qwen3-8B")
        & (rows["task"] == "lm-arena-chat")
        & (rows["gpu_model"] == "H100")
        & (rows["num_gpus"] == 1)
    ].set_index("max_num_seqs")

    class Cfg(SimpleNamespace):
        is_llm, batch_knob = True, "max_num_seqs"

        @property
        def batch_value(self):
            return self.max_num_seqs

        def label(self):
            return f"{self.model} {self.task} max_num_seqs={self.max_num_seqs}"

        def as_dict(self):
            return {k: v for k, v in vars(self).items() if k != "run_id"} | {"study": "s"}

    cfgs = [
        Cfg(
            model="Qwen/Qwen3-8B",
            task="lm-arena-chat",
            num_gpus=1,
            precision="bfloat16",
            max_num_seqs=int(b),
            batch_size=None,
            inference_steps=None,
            height=None,
            width=None,
            num_frames=None,
            run_id=f"r{b}",
        )
        for b in rows.index
    ]
    measured = []

    def result_state(run_dir):
        b = int(run_dir.name.removeprefix("r"))
        row = rows.loc[b]
        return "ok", {"status": "ok", "metrics": {k: float(row[k]) for k in predict_metrics}}

    predict_metrics = (
        "energy_per_token_joules",
        "median_itl_ms",
        "avg_power_watts",
        "avg_batch_size",
        "output_throughput_tokens_per_sec",
        "avg_output_len",
    )
    monkeypatch.setattr(store, "result_state", result_state)
    out = io.StringIO()
    for cfg, _ in PL.frontier_order(
        [(c, "missing") for c in cfgs], tmp_path, SimpleNamespace(name="s"), "H100", out=out
    ):
        measured.append(cfg.max_num_seqs)
    assert 0 < len(measured) < len(cfgs) and len(set(measured)) == len(measured), out.getvalue()
    assert "settled after" in out.getvalue()
    best = rows["energy_per_token_joules"].idxmin()
    assert (
        min(measured, key=lambda b: rows.loc[b, "energy_per_token_joules"]) == best
        or rows.loc[measured, "energy_per_token_joules"].min() <= rows.loc[best, "energy_per_token_joules"] * 1.02
    )
