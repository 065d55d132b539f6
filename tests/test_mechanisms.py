"""Mechanisms in numbers (harness.analysis.mechanisms) and the one batch-effect definition (tables)."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.analysis import mechanisms as mech
from harness.analysis import tables as an
from harness.workloads import archs


def test_kv_bytes_per_token_from_the_architecture():
    # Qwen3 8B: 36 layers x 8 KV heads x 128 head dim x 2 (K, V) x 2 bytes
    assert mech.kv_bytes_per_token(archs.get("qwen3-8b").hf_config()) == 36 * 8 * 128 * 2 * 2
    # without head_dim or KV heads: hidden / heads, and every head keeps K and V
    assert (
        mech.kv_bytes_per_token({"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 256}, 1)
        == 2 * 4 * 64 * 2
    )


def test_kv_budget_is_memory_left_after_weights_over_context():
    cfg = {"num_hidden_layers": 10, "num_key_value_heads": 1, "head_dim": 100, "num_attention_heads": 1}
    b = mech.kv_budget("m", cfg, 8.0, "bfloat16", "H100", 1, 1000)
    usable = 0.9 * 80e9
    assert b.weights_bytes == pytest.approx(16e9) and b.kv_capacity_bytes == pytest.approx(usable - 16e9)
    assert b.batch_allowed == pytest.approx((usable - 16e9) / (10 * 100 * 2 * 2) / 1000)
    fp8 = mech.kv_budget("m", cfg, 8.0, "fp8", "H100", 2, 1000)
    assert fp8.kv_capacity_bytes == pytest.approx(2 * usable - 8e9)  # FP8 weights: one byte each, two GPUs
    assert mech.kv_budget("m", cfg, 100.0, "bfloat16", "H100", 1, 1000).batch_allowed == 0  # weights do not fit


def test_intensity_decode_grows_with_batch_diffusion_starts_high():
    ridge = mech.ridge_point_flops_per_byte("B200")
    assert ridge == pytest.approx(2250 / 8.0)
    assert mech.decode_intensity(16) < ridge < mech.decode_intensity(1024)
    tokens = mech.diffusion_tokens_per_image(1024, 1024)
    assert tokens == 4096 and mech.diffusion_intensity(tokens) > 10 * ridge
    assert mech.diffusion_tokens_per_video(480, 832, 81) == 21 * 30 * 52  # Wan 2.1: 81 frames -> 21 latent frames


def test_itl_growth_per_series():
    rows = pd.DataFrame(
        {
            "model_id": ["a"] * 3 + ["b"],
            "task": ["t"] * 4,
            "gpu_model": ["B200"] * 4,
            "num_gpus": [1] * 4,
            "batch_size": [8, 64, 512, 8],
            "median_itl_ms": [5.0, 7.5, 20.0, 3.0],
        }
    )
    g = mech.itl_growth(rows)
    assert len(g) == 1 and g.iloc[0]["batch_growth"] == 64 and g.iloc[0]["itl_growth"] == pytest.approx(4.0)


def test_one_batch_effect_pair():
    s = pd.DataFrame({"batch_size": [8, 16, 32, 128], "energy_per_token_joules": [1.0, 0.6, 0.4, 0.2]})
    lo, hi = an.batch_effect_pair(s)
    assert (lo["batch_size"], hi["batch_size"]) == (16, 128)
    assert an.batch_effect_pair(s[s["batch_size"] <= 8]) is None  # nothing at 16 or more
    assert an.batch_effect_pair(s[s["batch_size"] == 16]) is None  # one batch size: no effect
    assert an.share_bound("lowest per-GPU average power of any run, an upper bound on static power") == "at most "
    assert an.share_bound("measured idle power") == ""
