"""The factor attribution on rows built by hand: each factor's value, the residual, the words of the
explanation, the table and dictionary forms, the number formats and the refusals."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from harness.analysis import tables as T
from harness.analysis.tables import attribution
from harness.errors import HarnessError

# A: E = L x P / T = 500 x 400 / 2000 = 100 J; B: 5000 x 1000 / 2500 = 2000 J, but B reads 2200 J (residual 1.1)
A = pd.Series(
    {
        "model_id": "org/Small",
        "task": "lm-arena-chat",
        "gpu_model": "B200",
        "num_gpus": 1,
        "max_num_seqs": 64,
        "output_unit": "response",
        "energy_per_request_joules": 100.0,
        "avg_output_len": 500.0,
        "avg_power_watts": 400.0,
        "output_throughput_tokens_per_sec": 2000.0,
        "avg_batch_size": 40.0,
        "energy_per_token_joules": 0.2,
        "source": "published",
        "batch_size": float("nan"),
    }
)
B = pd.Series(
    {
        "model_id": "org/Big",
        "task": "gpqa",
        "gpu_model": "H100",
        "num_gpus": 2,
        "max_num_seqs": 128,
        "output_unit": "response",
        "energy_per_request_joules": 2200.0,
        "avg_output_len": 5000.0,
        "avg_power_watts": 1000.0,
        "output_throughput_tokens_per_sec": 2500.0,
        "avg_batch_size": 50.0,
        "energy_per_token_joules": 0.24,
        "source": "published",
    }
)
LABEL_A = "Small, text conversation, 1 x B200, batch 64"
LABEL_B = "Big, problem solving (reasoning), 2 x H100, batch 128"


def test_llm_factors_by_hand():
    att = T.attribute(A, B)
    assert (att.kind, att.label_a, att.label_b, att.energy_column) == (
        "llm",
        LABEL_A,
        LABEL_B,
        "energy_per_request_joules",
    )
    assert (att.energy_a, att.energy_b, att.ratio, att.per_token_ratio) == (100.0, 2200.0, 22.0, pytest.approx(1.2))
    assert [(f.name, f.value_a, f.value_b, f.unit) for f in att.factors] == [
        ("output length", 500.0, 5000.0, "tokens per response"),
        ("average power", 400.0, 1000.0, "W (all GPUs)"),
        ("token rate per running request", 50.0, 50.0, "tokens/s per request (inverse)"),  # 2000 / 40, 2500 / 50
        ("concurrency reached", 40.0, 50.0, "requests running (inverse)"),
        ("measurement residual", None, None, ""),
    ]
    assert [f.ratio for f in att.factors] == pytest.approx([10.0, 2.5, 1.0, 0.8, 1.1])  # inverse ones: A over B
    assert att.product == pytest.approx(22.0)
    assert (
        att.factors[-1].meaning == "what the row identities do not explain (1 when energy = power x time holds exactly)"
    )
    assert att.factors[0].log_share == pytest.approx(math.log(10.0))
    assert att.config_a == {
        "model_id": "org/Small",
        "task": "lm-arena-chat",
        "gpu_model": "B200",
        "num_gpus": 1,
        "max_num_seqs": 64,
        "source": "published",
        "output_unit": "response",
    }
    assert type(att.config_a["num_gpus"]) is int


def test_llm_explanation_word_for_word():
    assert T.attribute(A, B).explain() == (
        f"B ({LABEL_B}) uses 2,200 J per response against 100 J for A ({LABEL_A}): x22. Per token the gap is x1.2. "
        "Factors, largest first: "
        "output length x10 (500 -> 5,000 tokens per response): more tokens per response (task, reasoning on or off) "
        "cost proportionally more; "
        "average power x2.5 (400 -> 1,000 W (all GPUs)): GPU count, GPU generation and how busy the GPUs are; "
        "concurrency reached x0.8 (1/1.25) (40 -> 50 requests running (inverse)): more requests decoding together "
        "share the same power draw (memory headroom caps it); "
        "measurement residual x1.1: what the row identities do not explain (1 when energy = power x time holds exactly). "  # noqa: E501
        "Product of factors = 22 = the ratio."
    )
    same = T.attribute(A, A)
    assert same.explain() == (
        f"B ({LABEL_A}) uses 100 J per response against 100 J for A ({LABEL_A}): x1. Per token "
        "the gap is x1. All factors are 1. Product of factors = 1 = the ratio."
    )
    no_token = T.attribute(A.drop("energy_per_token_joules"), B)
    assert no_token.per_token_ratio is None and " Per token" not in no_token.explain()
    nan_token = T.attribute(A.copy().where(A.index != "energy_per_token_joules", float("nan")), B)
    assert nan_token.per_token_ratio is None


def test_the_table_and_dictionary_forms():
    att = T.attribute(A, B)
    frame = att.to_frame()
    assert list(frame.columns) == ["pair", "name", "ratio", "value_a", "value_b", "unit", "meaning", "log_share"]
    assert (frame["pair"] == f"{LABEL_A} -> {LABEL_B}").all()
    assert frame["log_share"].tolist() == pytest.approx([math.log(r) / math.log(22.0) for r in (10, 2.5, 1, 0.8, 1.1)])
    assert frame["log_share"].sum() == pytest.approx(1.0)
    assert T.attribute(A, A).to_frame()["log_share"].isna().all()  # ratio 1: no share of a zero log ratio
    d = att.as_dict()
    assert list(d) == [
        "kind",
        "a",
        "b",
        "config_a",
        "config_b",
        "energy_column",
        "energy_a",
        "energy_b",
        "ratio",
        "per_token_ratio",
        "factors",
        "explanation",
    ]
    assert (d["kind"], d["a"], d["b"], d["energy_a"], d["energy_b"], d["ratio"]) == (
        "llm",
        LABEL_A,
        LABEL_B,
        100.0,
        2200.0,
        22.0,
    )
    assert d["config_b"]["max_num_seqs"] == 128 and d["energy_column"] == "energy_per_request_joules"
    assert d["per_token_ratio"] == pytest.approx(1.2) and d["explanation"] == att.explain()
    assert d["factors"][0] == {
        "name": "output length",
        "ratio": 10.0,
        "value_a": 500.0,
        "value_b": 5000.0,
        "unit": "tokens per response",
        "meaning": "more tokens per response (task, reasoning on or off) cost proportionally more",
    }
    assert T.Factor("x", 0.0, None, None, "", "").log_share != T.Factor("x", 0.0, None, None, "", "").log_share  # nan


# E = P x t_batch / B: A 500 W x 0.4 s / 2 = 100 J per image; B 2000 W x 25 s / 1 = 50,000 J per video
DA = pd.Series(
    {
        "model_id": "org/Img",
        "task": "text-to-image",
        "gpu_model": "B200",
        "num_gpus": 1,
        "batch_size": 2,
        "output_unit": "image",
        "energy_per_output_joules": 100.0,
        "avg_power_watts": 500.0,
        "batch_latency_s": 0.4,
        "inference_steps": 20,
        "height_pixels": 1024,
        "width_pixels": 1024,
        "num_frames": float("nan"),
    }
)
DB = pd.Series(
    {
        "model_id": "org/Vid",
        "task": "text-to-video",
        "gpu_model": "B200",
        "num_gpus": 4,
        "batch_size": 1,
        "output_unit": "video",
        "energy_per_output_joules": 50000.0,
        "avg_power_watts": 2000.0,
        "batch_latency_s": 25.0,
        "inference_steps": 50,
        "height_pixels": 480,
        "width_pixels": 832,
        "num_frames": 81,
        "ulysses_degree": 2,
        "ring_degree": 2,
    }
)


def test_diffusion_factors_by_hand():
    att = T.attribute(DA, DB)
    assert (att.kind, att.energy_column, att.ratio, att.per_token_ratio) == (
        "diffusion",
        "energy_per_output_joules",
        500.0,
        None,
    )
    assert att.label_b == "Vid, text to video, 4 x B200, batch 1 (Ulysses 2 x Ring 2)"
    work_a, work_b = 20 * 1024 * 1024 * 1, 50 * 480 * 832 * 81  # steps x pixels x frames (no frames: 1)
    assert [(f.name, f.value_a, f.value_b) for f in att.factors[:-1]] == [
        ("denoising steps", 20.0, 50.0),
        ("pixels per frame", 1024 * 1024, 480 * 832),
        ("frames", 1.0, 81.0),
        ("batch size", 2.0, 1.0),
        ("average power", 500.0, 2000.0),
        ("batch time per unit of work", pytest.approx(0.4 / work_a * 1e9), pytest.approx(25.0 / work_b * 1e9)),
    ]
    assert [f.ratio for f in att.factors] == pytest.approx(
        [2.5, 399360 / 1048576, 81.0, 2.0, 4.0, (25.0 / work_b) / (0.4 / work_a), 1.0]
    )
    assert [f.unit for f in att.factors] == [
        "steps",
        "pixels",
        "frames",
        "outputs per batch (inverse)",
        "W (all GPUs)",
        "s per 1e9 step-pixel-frames",
        "",
    ]
    assert att.product == pytest.approx(500.0)
    assert att.explain() == (
        "B (Vid, text to video, 4 x B200, batch 1 (Ulysses 2 x Ring 2)) uses 50,000 J per output against 100 J for "
        "A (Img, text to image, 1 x B200, batch 2): x500. Factors, largest first: "
        "frames x81 (1 -> 81 frames): a video is many frames of work; "
        "average power x4 (500 -> 2,000 W (all GPUs)): GPU count, GPU generation and how busy the GPUs are; "
        "pixels per frame x0.381 (1/2.63) (1,048,576 -> 399,360 pixels): resolution sets the tokens per step; "
        "denoising steps x2.5 (20 -> 50 steps): each step runs the whole denoiser once; "
        "batch size x2 (2 -> 1 outputs per batch (inverse)): outputs generated together share the batch's energy; "
        "batch time per unit of work x0.81 (1/1.23) (19.1 -> 15.5 s per 1e9 step-pixel-frames): model size, batch "
        "size, parallelism and GPU speed set how fast a batch's work is done. Product of factors = 500 = the ratio."
    )
    images = T.attribute(DA, DA.copy())
    assert " uses 100 J per image against 100 J " in images.explain()
    assert T.attribute(DA, DA.copy().where(DA.index != "num_frames", 0)).factors[2].value_b == 1.0  # 0 frames: 1


def test_refusals():
    with pytest.raises(HarnessError, match="cannot attribute an LLM row against a diffusion row: their outputs differ"):
        T.attribute(A, DA)
    with pytest.raises(
        HarnessError, match=re.escape(f"cannot attribute {LABEL_A}: missing or non-positive avg_batch_size") + "$"
    ):
        T.attribute(A.drop("avg_batch_size"), B)
    with pytest.raises(
        HarnessError,
        match=re.escape(
            f"cannot attribute {LABEL_B}: missing or non-positive avg_power_watts, output_throughput_tokens_per_sec"
        )
        + "$",
    ):
        T.attribute(A, B.copy().where(~B.index.isin(["avg_power_watts", "output_throughput_tokens_per_sec"]), 0.0))
    with pytest.raises(HarnessError, match="missing or non-positive avg_output_len$"):  # noqa: RUF043
        T.attribute(A.copy().where(A.index != "avg_output_len", float("nan")), B)
    with pytest.raises(HarnessError, match="missing or non-positive width_pixels$"):  # noqa: RUF043
        T.attribute(DA.drop("width_pixels"), DB)
    with pytest.raises(HarnessError, match="missing or non-positive inference_steps$"):  # noqa: RUF043
        T.attribute(DA, DB.copy().where(DB.index != "inference_steps", -1))


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "n/a"),
        (float("nan"), "n/a"),
        (3.0, "3"),
        (12345678.0, "12,345,678"),
        (1e7, "10,000,000"),
        (12345.6, "12,346"),
        (2345.6, "2,346"),
        (234.5, "234"),
        (999.6, "1,000"),
        (-999.6, "-1,000"),
        (23.45, "23.4"),
        (2.345, "2.35"),
        (0.0234, "0.0234"),
        (0.00234, "0.00234"),
        (-5.0, "-5"),
        (-234.5, "-234"),
        (1.5e7, "15,000,000"),
        (2.5e7 + 0.5, "25,000,000"),
    ],
)
def test_number_format(value, text):
    assert attribution.format_number(value) == text


@pytest.mark.parametrize(
    "ratio, text",
    [(1.0, "x1"), (2.0, "x2"), (0.97, "x0.97"), (0.95, "x0.95 (1/1.05)"), (0.5, "x0.5 (1/2)"), (1.2345, "x1.23")],
)
def test_times_format(ratio, text):
    assert attribution._times(ratio) == text


# --- the edges the mutation run found untested ------------------------------------------------------------


def test_every_factors_meaning():
    assert [f.meaning for f in T.attribute(A, B).factors] == [
        "more tokens per response (task, reasoning on or off) cost proportionally more",
        "GPU count, GPU generation and how busy the GPUs are",
        "a slower decode step (bigger model, bigger batch, slower GPU) stretches the time power is drawn",
        "more requests decoding together share the same power draw (memory headroom caps it)",
        "what the row identities do not explain (1 when energy = power x time holds exactly)",
    ]
    assert [f.meaning for f in T.attribute(DA, DB).factors][:4] == [
        "each step runs the whole denoiser once",
        "resolution sets the tokens per step",
        "a video is many frames of work",
        "outputs generated together share the batch's energy",
    ]


def test_refusals_word_for_word():
    with pytest.raises(HarnessError) as err:
        T.attribute(A, DA)
    assert str(err.value) == "cannot attribute an LLM row against a diffusion row: their outputs differ"
    with pytest.raises(HarnessError) as err:
        T.attribute(DA.drop("width_pixels"), DB)
    assert (
        str(err.value) == "cannot attribute Img, text to image, 1 x B200, batch 2: missing or non-positive width_pixels"
    )


@pytest.mark.parametrize("value, text", [(100.5, "100"), (1000.5, "1,000"), (10.04, "10.0"), (9.996, "10")])
def test_number_format_at_the_branch_edges(value, text):
    assert attribution.format_number(value) == text


def test_times_at_the_five_percent_edge():
    assert attribution._times(1 / 1.05) == "x0.952 (1/1.05)"  # 1/r is 1.05 exactly: 5% or more is shown as a fraction
    assert attribution._times(0.9523809523809526) == "x0.952"  # 1/r = 1.0499999999999998: under 5%


def test_configs_from_a_table_row_are_plain_python():
    table = pd.DataFrame([dict(A, weight_precision="bfloat16"), dict(B, weight_precision="fp8")])
    att = T.attribute(table.iloc[0], table.iloc[1])
    assert att.config_a["weight_precision"] == "bfloat16" and att.config_b["weight_precision"] == "fp8"
    assert type(att.config_a["num_gpus"]) is int and type(att.config_a["max_num_seqs"]) is int
    assert "batch_size" not in att.config_a  # NaN: not part of the configuration


def test_an_llm_explanation_without_output_units_still_speaks_of_responses():
    att = T.attribute(A.drop("output_unit"), B.drop("output_unit"))
    assert att.explain().startswith(f"B ({LABEL_B}) uses 2,200 J per response against 100 J")


def test_shares_when_b_is_cheaper_and_when_the_ratio_is_one():
    cheaper = T.attribute(B, A).to_frame()
    assert cheaper["log_share"].tolist() == pytest.approx(
        [math.log(r) / math.log(1 / 22.0) for r in (0.1, 0.4, 1.0, 1.25, 1 / 1.1)]
    )
    # the same energy from twice the tokens at half the power: factors 2 and 0.5, a log ratio of 0, no shares
    even = T.attribute(
        A,
        B.copy().where(
            ~B.index.isin(
                [
                    "energy_per_request_joules",
                    "avg_output_len",
                    "avg_power_watts",
                    "output_throughput_tokens_per_sec",
                    "avg_batch_size",
                ]
            ),
            pd.Series(
                {
                    "energy_per_request_joules": 100.0,
                    "avg_output_len": 1000.0,
                    "avg_power_watts": 200.0,
                    "output_throughput_tokens_per_sec": 2000.0,
                    "avg_batch_size": 40.0,
                }
            ),
        ),
    )
    assert even.ratio == 1.0 and [f.ratio for f in even.factors][:2] == [2.0, 0.5]
    assert even.to_frame()["log_share"].isna().all()


def test_power_split_at_the_prefill_share():
    # A: 400 W with 20% of its energy in prefill, B: 1000 W with 50%: outside prefill 320 W -> 500 W (x1.5625),
    # and the prefill phase (1 - 0.2) / (1 - 0.5) = 1.6; together 2.5, the power ratio
    assert [f.name for f in T.attribute(A, B).factors][1] == "average power"  # no shares: one power factor
    a, b = A.copy(), B.copy()
    a["prefill_energy_fraction"], b["prefill_energy_fraction"] = 0.2, 0.5
    att = T.attribute(a, b)
    outside, phase = att.factors[1], att.factors[2]
    assert (outside.name, outside.value_a, outside.value_b, outside.unit) == (
        "average power outside prefill",
        320.0,
        500.0,
        "W (all GPUs)",
    )
    assert outside.ratio == pytest.approx(1.5625)
    assert outside.meaning == "GPU count, GPU generation and how busy decoding keeps the GPUs"
    assert (phase.name, phase.value_a, phase.value_b, phase.unit) == (
        "prefill phase",
        0.2,
        0.5,
        "share of the energy in prefill",
    )
    assert phase.ratio == pytest.approx(1.6)
    assert phase.meaning == "prompt tokens per output token and their cost (the phase estimator's prefill share)"
    assert [f.name for f in att.factors] == [
        "output length",
        "average power outside prefill",
        "prefill phase",
        "token rate per running request",
        "concurrency reached",
        "measurement residual",
    ]
    assert att.factors[-1].ratio == pytest.approx(1.1)  # the split leaves the residual as it was


@pytest.mark.parametrize(
    ("fa", "fb", "split"),
    [
        (0.0, 0.0, True),  # no prefill energy on either side is still a share
        (0.999, 0.3, True),
        (0.3, 0.999, True),
        (1.0, 0.3, False),  # all of A's energy in prefill: nothing outside it to compare
        (0.3, 1.0, False),
        (-0.1, 0.3, False),
        (0.3, -0.1, False),
        (1.5, 0.3, False),
        (0.3, 1.5, False),
        (None, 0.3, False),
        (0.3, None, False),
        (float("nan"), 0.3, False),
    ],
)
def test_power_is_split_only_where_both_shares_are_in_0_to_1(fa, fb, split):
    a, b = A.copy(), B.copy()
    a["prefill_energy_fraction"], b["prefill_energy_fraction"] = fa, fb
    names = [f.name for f in T.attribute(a, b).factors]
    assert ("prefill phase" in names) is split
    assert ("average power" in names) is not split
    if split:
        phase = names.index("prefill phase")
        assert T.attribute(a, b).factors[phase].ratio == pytest.approx((1 - fa) / (1 - fb))


def test_diagnose_selects_the_two_rows_by_selector():
    table = pd.DataFrame([A, B])
    att = attribution.diagnose({"model_id": "org/Small"}, {"model_id": "org/Big"}, table)
    assert (att.label_a, att.label_b, att.ratio) == (LABEL_A, LABEL_B, 22.0)
    back = attribution.diagnose({"model_id": "org/Big"}, {"model_id": "org/Small"}, table)
    assert (back.label_a, back.label_b, back.ratio) == (LABEL_B, LABEL_A, pytest.approx(1 / 22))


def test_a_factor_just_inside_the_5e4_band_does_not_hide_the_ones_after_it():
    # 0.99950005 is within 5e-4 of 1 (left out), 1.00050005 is not (listed), yet the left-out one has the larger
    # log (5.0008e-4 against 4.9993e-4), so it ranks first: the ones after it must still be listed
    factors = (
        attribution.Factor("inside", 0.99950005, 1.0, 1.0, "u", "left out"),
        attribution.Factor("outside", 1.00050005, 1.0, 1.0, "u", "listed"),
    )
    att = attribution.Attribution("diffusion", "a", "b", "energy", 1.0, 1.0 * 0.99950005 * 1.00050005, factors)
    assert "outside x1 (1 -> 1 u): listed" in att.explain()
    assert "inside" not in att.explain()
