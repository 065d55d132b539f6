"""The book's study-wide tables: the findings at a glance, the batch effect over every series, what it takes to
reproduce the paper, the causal chain of an attribution, and one run's timeline."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import chain as C
from harness.analysis import findings as F
from harness.analysis import reproduction as R
from harness.analysis import tables as an
from harness.analysis import takeaways as T
from harness.analysis import timeline as TL

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def found(tables):
    return F.compute_all(*tables)


@pytest.fixture(scope="module")
def by_id(found):
    return {f.id: f for f in found}


# --- the findings table ---------------------------------------------------------------------------------
def test_one_row_per_knob_each_linked_to_a_registered_chapter(found, tables):
    from harness.report.book import load_config

    rows = T.takeaways(found, tables[0])
    assert len(rows) == 9 and len({r.knob for r in rows}) == 9
    assert [r.layer for r in rows] == sorted((r.layer for r in rows), key=["algorithm", "software", "hardware"].index)
    chapters = set(load_config(REPO).notebooks)
    assert all(r.chapter in chapters for r in rows)
    table = T.takeaways_table(rows)
    assert list(table.columns) == ["knob", "layer", "effect", "condition", "what_to_do", "finding", "chapter"]
    assert table.notna().all().all() and (table["effect"].str.len() > 20).all()


def test_the_effects_are_the_findings_numbers(found, by_id, tables):
    rows = {r.finding: r for r in T.takeaways(found, tables[0])}
    assert f"{by_id['reasoning-vs-chat'].values['energy_per_response_ratio']:.1f}x" in rows["reasoning-vs-chat"].effect
    assert f"{by_id['moe-vs-dense'].values['dense_over_moe']:.2f}x" in rows["moe-vs-dense"].effect
    st = by_id["batch-size-effect"].values["all_series"]
    assert f"median {st['median']:.2f}x" in rows["batch-size-effect"].effect
    b200 = by_id["b200-vs-h100"].values["llm"]
    assert f"B200 wins {b200['b200_wins']} of {b200['comparisons']}" in rows["b200-vs-h100"].effect
    # the FP8 row names the batches its smallest band really holds (batches below 16 are left out)
    assert "at batch 16 (FP8 wins 0 of 7)" in rows["fp8-vs-bf16"].effect


def test_only_the_findings_given_make_rows(found):
    some = [f for f in found if f.id in ("multi-gpu", "fp8-vs-bf16")]
    assert [r.finding for r in T.takeaways(some)] == ["fp8-vs-bf16", "multi-gpu"]
    assert T.takeaways([]) == []


def test_moe_gap_splits_into_same_batch_saving_and_the_larger_batch(tables, by_id):
    split = T.moe_same_batch(tables[0])
    assert split["largest_common"] == by_id["moe-vs-dense"].values["dense_max_num_seqs"]
    assert split["min"] <= split["at_largest_common"] <= split["max"] < by_id["moe-vs-dense"].values["dense_over_moe"]
    # the two parts multiply to the ratio of the two minima (the dense model is cheapest at the common batch)
    assert split["at_largest_common"] * split["batch_gain"] == pytest.approx(
        by_id["moe-vs-dense"].values["dense_over_moe"]
    )
    assert T.moe_same_batch(tables[0].iloc[0:0]) == {}


# --- the batch effect over every series -------------------------------------------------------------------
def test_every_series_once_with_the_papers_two_examples(tables, by_id):
    series = T.batch_effect_series(tables[0])
    v = by_id["batch-size-effect"].values
    assert len(series) == v["series"]
    assert series["paper_example"].sum() == 2
    assert sorted(series.loc[series["paper_example"], "ratio"].round(2)) == sorted(
        round(h["ratio"], 2) for h in v["highlighted"].values()
    )
    assert series["in_paper_band"].mean() == pytest.approx(v["share_between_3_and_5"])
    assert not series["task_name"].isin(["gpqa", "lm-arena-chat"]).any()  # names, not ids


def test_batch_effect_summary_counts_every_series_per_gpu(tables):
    series = T.batch_effect_series(tables[0])
    summary = T.batch_effect_summary(series)
    overall = summary[summary["task_name"] == "all tasks"].set_index("gpu_model")
    assert list(overall.index) == ["H100", "B200"]
    assert overall["series"].sum() == len(series)
    for gpu, row in overall.iterrows():
        assert row["median"] == pytest.approx(series.loc[series["gpu_model"] == gpu, "ratio"].median())
    assert T.batch_effect_summary(series.iloc[0:0]).empty


# --- reproducing the paper --------------------------------------------------------------------------------
def test_every_filter_of_every_finding_is_a_choice_in_words(found, tables):
    choices = R.analysis_choices(found, *tables)
    for f in found:
        mine = choices[choices["finding"] == f.id]
        assert len(mine) == len(f.filters) + 1 and "method" in set(mine["choice"])
    values = " ".join(choices["value"])
    assert "Problem solving (reasoning)" in values and "'gpqa'" not in values
    assert "Qwen 3 32B" in values  # model ids by their published names
    assert "FP8 variants count as separate models" in values and "Qwen3 Coder 480B (outlier)" in values


def test_statements_that_the_data_qualify(found, tables):
    rows = {s.finding: s for s in R.prose_against_data(found, tables[0])}
    assert set(rows) >= {
        "reasoning-vs-chat",
        "text-to-video-range",
        "batch-size-effect",
        "moe-vs-dense",
        "fp8-vs-bf16",
        "multimodal-overhead",
    }
    assert all(s.verdict in ("holds", "holds under a condition", "differs") for s in rows.values())
    assert "holds batch 16 only" in rows["fp8-vs-bf16"].data
    assert "14.78x" in rows["multimodal-overhead"].data
    same = R.per_model_task_ratio(tables[0])
    assert len(same) >= 2 and f"{same['ratio'].max():.1f}x" in rows["reasoning-vs-chat"].data
    table = R.statements_table(rows.values())
    assert list(table.columns) == ["finding", "where", "says", "data", "verdict"]


def test_every_finding_says_where_the_paper_states_it(found):
    assert {f.id for f in found} <= set(R.WHERE_IN_PAPER)


def test_diffusion_batching_depends_on_the_gpu_count(tables):
    batching = R.diffusion_batching(tables[1])
    one, eight = batching[batching["num_gpus"] == 1], batching[batching["num_gpus"] == 8]
    assert len(one) == len(eight) == 7
    assert one["ratio"].max() < 1.05 and eight["ratio"].min() > 1.4  # batching pays only when split over GPUs
    assert (batching["ratio"] >= 1).all()


def test_diffusion_batching_on_a_small_table():
    rows = pd.DataFrame(
        {
            "task": "text-to-image",
            "gpu_model": "B200",
            "model_id": "m",
            "nickname": "M",
            "num_gpus": [1, 1, 2, 2],
            "batch_size": [1, 4, 1, 4],
            an.ENERGY_PER_OUTPUT: [100.0, 99.0, 120.0, 40.0],
        }
    )
    out = R.diffusion_batching(rows).set_index("num_gpus")
    assert out.loc[1, "ratio"] == pytest.approx(100 / 99) and out.loc[2, "ratio"] == pytest.approx(3.0)
    assert out.loc[2, "best_batch"] == 4


def test_caveats_state_their_conditions(found, tables):
    caveats = {c.finding: c for c in R.caveats(found, *tables)}
    assert "B200" in caveats["batch-size-effect"].condition and "H100" in caveats["batch-size-effect"].condition
    assert "true on 1 x B200" in caveats["text-to-image-spread"].condition
    assert "batch 16 only" in caveats["fp8-vs-bf16"].condition
    assert list(R.caveats_table(caveats.values()).columns) == ["finding", "claim", "condition"]


# --- the causal chain ---------------------------------------------------------------------------------------
def _llm_row(batch: float, throughput: float, power: float, length: float = 500.0) -> pd.Series:
    per_token = power / throughput
    return pd.Series(
        {
            "task": "lm-arena-chat",
            "model_id": "m",
            "gpu_model": "B200",
            "num_gpus": 1,
            "batch_size": batch,
            "max_num_seqs": batch,
            "avg_batch_size": batch,
            "output_throughput_tokens_per_sec": throughput,
            "avg_power_watts": power,
            "avg_output_len": length,
            an.ENERGY_PER_TOKEN: per_token,
            "energy_per_request_joules": per_token * length,
        }
    )


def test_the_chain_merges_batch_and_request_rate_into_throughput():
    a, b = _llm_row(16, 800.0, 500.0), _llm_row(512, 6400.0, 600.0)
    chain = C.causal_chain(an.attribute(a, b))
    assert chain.batch_ratio == pytest.approx(32) and chain.throughput_ratio == pytest.approx(8)
    assert chain.request_rate_ratio == pytest.approx(0.25)  # each request 4x slower: the price of the batch
    assert chain.power_ratio == pytest.approx(1.2)
    assert chain.energy_per_token_ratio == pytest.approx((600 / 6400) / (500 / 800))
    assert chain.energy_per_response_ratio == pytest.approx(chain.energy_per_token_ratio)
    assert chain.residual == pytest.approx(1)


def test_the_chain_is_read_from_language_models_only():
    att = an.Attribution("diffusion", "a", "b", an.ENERGY_PER_OUTPUT, 1.0, 2.0, ())
    with pytest.raises(ValueError, match="language-model"):
        C.causal_chain(att)
    assert C.times(4.0) == "4 times more" and C.times(0.25, "more", "less") == "4 times less"
    assert C.times(1.001) == "unchanged"


# --- one run's timeline ---------------------------------------------------------------------------------------
def _timeline(t0: float, gpus: int = 2, with_power: bool = True) -> pd.DataFrame:
    rows = []
    for i in range(20):
        t = t0 + i * 0.5
        if with_power:
            for g in range(gpus):
                rows.append({"time_s": t, "source": "nvml", "gpu_index": g, "power_watts": 300.0 + g * 10})
        rows.append(
            {
                "time_s": t,
                "source": "vllm",
                "num_requests_running": float(min(i, 8)),
                "kv_cache_usage_fraction": min(i, 8) / 10,
            }
        )
        rows.append({"time_s": t, "source": "host", "process_cpu_percent": 50.0})
    return pd.DataFrame(rows)


def test_tidy_timeline_sums_power_and_shifts_the_window():
    frame, start, end = TL.tidy_timeline(_timeline(1000.0), 1003.0, 1008.0)
    power = frame[frame["metric"] == "power_watts"]
    assert (power["value"] == 610.0).all() and len(power) == 20  # two GPUs summed per tick
    assert frame["time_since_start_s"].min() == 0.0
    assert (start, end) == (3.0, 8.0)
    assert set(frame["metric"]) == set(TL.METRICS)
    empty, s, e = TL.tidy_timeline(pd.DataFrame())
    assert empty.empty and s is None and e is None


def _run(
    results: Path,
    run_id: str,
    *,
    gpu: str | None,
    steady: float,
    task: str = "lm-arena-chat",
    status: str = "ok",
    timeline: bool = True,
) -> Path:
    from harness.measuring import store

    run_dir = results / "study" / run_id
    record = {
        "study": "study",
        "run_id": run_id,
        "status": status,
        "is_stable": True,
        "config": {"task": task, "model": "tiny-qwen3", "num_gpus": 1, "max_num_seqs": 8},
        "environment": {"gpu_model": gpu} if gpu else {},
        "metrics": {
            "steady_start_time_s": 1002.0,
            "steady_end_time_s": 1002.0 + steady,
            "steady_duration_s": steady,
            "energy_source": None if gpu else "no energy counter",
        },
    }
    tables = {"timeline.parquet": _timeline(1000.0, with_power=bool(gpu))} if timeline else None
    store.write_run(run_dir, record, tables)
    return run_dir


def test_find_run_prefers_gpu_runs_then_the_longest_steady_window(tmp_path):
    assert TL.find_run(tmp_path) is None
    cpu_long = _run(tmp_path, "cpu-long", gpu=None, steady=8.0)
    _run(tmp_path, "cpu-short", gpu=None, steady=2.0)
    _run(tmp_path, "failed", gpu="H100", steady=9.0, status="failed")
    _run(tmp_path, "image", gpu="H100", steady=9.0, task="text-to-image")
    _run(tmp_path, "no-telemetry", gpu="H100", steady=9.0, timeline=False)
    assert TL.find_run(tmp_path) == cpu_long
    gpu_run = _run(tmp_path, "gpu", gpu="H100", steady=1.0)
    assert TL.find_run(tmp_path) == gpu_run


def test_a_cpu_run_has_no_power_and_says_why(tmp_path):
    run = TL.run_timeline(_run(tmp_path, "cpu", gpu=None, steady=5.0))
    assert run is not None and not run.has_power and run.energy_source == "no energy counter"
    assert set(run.frame["metric"]) == {"num_requests_running", "kv_cache_usage_fraction"}
    assert (run.steady_start_s, run.steady_end_s) == (2.0, 7.0)
    assert run.label == "tiny-qwen3 on text conversation, batch 8, 1 x CPU"
    assert TL.run_timeline(tmp_path / "nowhere") is None


def test_the_findings_table_reads_no_typed_number():
    """Every number of the findings rows comes from a finding: the module's source holds no literal figure of the
    paper's (25x, 3.56x, 34.7%, ...) beside the band it draws."""
    source = (REPO / "harness" / "analysis" / "takeaways.py").read_text()
    literals = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", source))
    assert literals <= {"3.0", "5.0"}, literals  # the paper's band, drawn beside the distribution
