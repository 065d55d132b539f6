"""Drawn prompt and output lengths follow the requested distributions, seeded and recorded."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.errors import ConfigError, ReferenceDataError
from harness.workloads import lengths

SKEWED = lengths.Histogram(edges=(2.0, 50.5, 99.0, 147.5, 196.0), counts=(700, 200, 80, 20), source="test")


def _chi2_pvalue(hist: lengths.Histogram, draws: np.ndarray) -> float:
    observed = np.bincount(hist.bin_of(draws), minlength=len(hist.counts))
    expected = hist.probabilities * len(draws)
    keep = expected > 0
    return stats.chisquare(observed[keep], expected[keep]).pvalue


def _reference_or_skip(model: str, task: str) -> lengths.Histogram:
    try:
        return lengths.reference_histogram(model, task)
    except ReferenceDataError as exc:  # no reference data on this host
        pytest.skip(str(exc))


def test_draws_stay_inside_their_bins_and_are_integers():
    rng = np.random.default_rng(0)
    draws = lengths.draw_from_histogram(SKEWED, 5000, rng)
    assert draws.dtype.kind == "i"
    assert draws.min() >= 2 and draws.max() <= 196
    assert _chi2_pvalue(SKEWED, draws) > 1e-3
    # a histogram with one occupied bin yields only integers inside that bin, both ends reachable
    one = lengths.Histogram(SKEWED.edges, (0, 0, 5, 0), "one bin")
    draws = lengths.draw_from_histogram(one, 2000, rng)
    assert set(np.unique(draws)) == set(range(99, 148))


def test_chi_square_rejects_the_wrong_distribution():
    """The check can fail: draws from a flat histogram are rejected against the skewed one."""
    flat = lengths.Histogram(SKEWED.edges, (250, 250, 250, 250), "flat")
    draws = lengths.draw_from_histogram(flat, 5000, np.random.default_rng(1))
    assert _chi2_pvalue(SKEWED, draws) < 1e-6


def test_reference_chat_lengths_follow_the_published_histogram():
    hist = _reference_or_skip("meta-llama/Llama-3.1-8B-Instruct", "lm-arena-chat")
    p = lengths.plan("lm-arena-chat", 20000, seed=3, length_source="meta-llama/Llama-3.1-8B-Instruct")
    draws = np.asarray(p.output_tokens)
    assert _chi2_pvalue(hist, draws) > 1e-3
    # ... and not the reasoning one: GPQA answers of Qwen3 8B are an order of magnitude longer.
    gpqa = _reference_or_skip("Qwen/Qwen3-8B", "gpqa")
    assert np.median(draws) * 5 < np.median(
        lengths.plan("gpqa", 2000, seed=3, length_source="Qwen/Qwen3-8B").output_tokens
    )
    # KS against the histogram's piecewise-uniform CDF
    edges, cdf = np.asarray(hist.edges), np.concatenate([[0.0], np.cumsum(hist.probabilities)])
    assert stats.kstest(draws, lambda x: np.interp(x, edges, cdf)).pvalue > 1e-3
    assert (
        stats.kstest(
            draws,
            lambda x: np.interp(x, np.asarray(gpqa.edges), np.concatenate([[0.0], np.cumsum(gpqa.probabilities)])),
        ).pvalue
        < 1e-6
    )


def test_plan_is_seeded_and_recorded():
    _reference_or_skip("Qwen/Qwen3-8B", "gpqa")
    a = lengths.plan("gpqa", 64, seed=7, model="tiny-qwen3")
    b = lengths.plan("gpqa", 64, seed=7, model="tiny-qwen3")
    c = lengths.plan("gpqa", 64, seed=8, model="tiny-qwen3")
    assert a == b and a.output_tokens != c.output_tokens
    info = a.as_info()
    assert info["extra"]["length_source_model"] == "Qwen/Qwen3-8B"  # the architecture's default source
    assert "Qwen/Qwen3-8B" in info["output_source"] and "log-normal" in info["prompt_source"]
    assert len(info["prompt_tokens"]) == 64 and info["mean_output_tokens"] == pytest.approx(np.mean(a.output_tokens))


def test_scale_and_cap():
    _reference_or_skip("Qwen/Qwen3-8B", "gpqa")
    full = lengths.plan("gpqa", 500, seed=1, length_source="Qwen/Qwen3-8B")
    small = lengths.plan(
        "gpqa",
        500,
        seed=1,
        length_source="Qwen/Qwen3-8B",
        output_scale=0.01,
        max_output_tokens=100,
        max_prompt_tokens=50,
    )
    assert small.output_tokens_uncapped == full.output_tokens
    assert max(small.output_tokens) <= 100 and min(small.output_tokens) >= 1
    assert max(small.prompt_tokens) <= 50
    expected = np.minimum(np.maximum(1, np.rint(np.asarray(full.output_tokens) * 0.01)), 100)
    assert list(small.output_tokens) == expected.astype(int).tolist()
    # scaling keeps the shape: rank correlation with the unscaled draws stays high
    assert stats.spearmanr(small.output_tokens, full.output_tokens).statistic > 0.9


def test_prompt_lengths_follow_the_stated_model():
    model = lengths.PROMPT_MODELS["gpqa"]
    draws = lengths.draw_prompt_lengths(model, 20000, np.random.default_rng(0))
    assert draws.min() >= model.min_tokens and draws.max() <= model.max_tokens
    assert np.median(draws) == pytest.approx(model.median_tokens, rel=0.03)
    inner = draws[(draws > model.min_tokens) & (draws < model.max_tokens)]
    assert np.std(np.log(inner)) == pytest.approx(model.sigma, rel=0.1)


def test_prompt_token_ids_use_trained_ids_and_bos():
    prompts = lengths.prompt_token_ids((5, 1, 30), (2, 8191), 0, seed=0)
    assert [len(p) for p in prompts] == [5, 1, 30]
    assert all(p[0] == 0 for p in prompts)
    assert all(2 <= t <= 8191 for p in prompts for t in p[1:])
    assert prompts == lengths.prompt_token_ids((5, 1, 30), (2, 8191), 0, seed=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(task="gpqa", num_requests=0), "num_requests"),
        (dict(task="gpqa", num_requests=4, output_scale=0), "output_length_scale"),
        (dict(task="gpqa", num_requests=4, max_output_tokens=0), "max_output_tokens"),
        (dict(task="text-to-image", num_requests=4), "text-to-image"),
    ],
)
def test_bad_input_is_a_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        lengths.plan(**kwargs)


def test_exported_plans_replace_the_reference_where_it_is_missing(tmp_path, monkeypatch):
    _reference_or_skip("meta-llama/Llama-3.1-8B-Instruct", "lm-arena-chat")
    drawn = lengths.plan("lm-arena-chat", 40, seed=5, model="llama-3.1-8b", max_output_tokens=512)
    path = lengths.export_plans([drawn], tmp_path / "plans.json")
    monkeypatch.setattr(lengths, "_PRESETS", {})
    monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ReferenceDataError):
        lengths.plan("lm-arena-chat", 40, seed=5, model="llama-3.1-8b", max_output_tokens=512)
    assert lengths.load_plans(path) == 1
    assert lengths.plan("lm-arena-chat", 40, seed=5, model="llama-3.1-8b", max_output_tokens=512) == drawn
    with pytest.raises(ReferenceDataError):  # another seed was not prepared
        lengths.plan("lm-arena-chat", 40, seed=6, model="llama-3.1-8b", max_output_tokens=512)
