"""Every figure the paper publishes (../shared/PAPER-CLAIMS.md), against the value recomputed from the published data.

The expected numbers are written here as the paper writes them, and the rounding rule is this file's own
(not :mod:`harness.analysis.paper`'s): a value agrees when it lies within half a unit of the paper's last
digit ("3.56" covers 3.555 to 3.565, "4,625" 4,624.5 to 4,625.5, a count must match exactly). Any change
that makes ``python -m harness findings`` say a finding DIFFERS from the paper fails one of these tests.
"""

from __future__ import annotations

import os
import re

import pytest

from harness.analysis import findings as F
from harness.errors import ReferenceDataError
from test_paper import _claims_file, _claims_table


def _within_rounding(value, text: str) -> bool:
    """Does ``value`` round to ``text`` at the precision ``text`` is written in?"""
    digits = text.replace(",", "").lstrip("+")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return value is not None and abs(float(value) - float(digits)) <= 0.5 * 10.0**-decimals + 1e-9


def _pct(ratio: float) -> float:
    return 100.0 * ratio


DEEPSEEK = "DeepSeek R1 on problem solving, 8 x B200"
CODER = "Qwen3 Coder 30B A3B on code completion, 1 x B200"

# (finding id, what, the paper's figure as PAPER-CLAIMS.md writes it, our value from the finding's values)
CLAIMS = [
    ("reasoning-vs-chat", "reasoning tokens per response", "6,988", lambda v: v["reasoning_mean_output_tokens"]),
    (
        "reasoning-vs-chat",
        "reasoning J per response",
        "4,625",
        lambda v: v["reasoning_mean_energy_per_response_joules"],
    ),
    ("reasoning-vs-chat", "chat tokens per response", "717", lambda v: v["chat_mean_output_tokens"]),
    ("reasoning-vs-chat", "chat J per response", "184", lambda v: v["chat_mean_energy_per_response_joules"]),
    (
        "reasoning-vs-chat",
        "about 10x the tokens",
        "10",
        lambda v: v["reasoning_mean_output_tokens"] / v["chat_mean_output_tokens"],
    ),
    (
        "reasoning-vs-chat",
        "25x the energy",
        "25",
        lambda v: v["reasoning_mean_energy_per_response_joules"] / v["chat_mean_energy_per_response_joules"],
    ),
    ("qwen3-32b-b200", "chat batch", "512", lambda v: v["chat_max_num_seqs"]),
    ("qwen3-32b-b200", "reasoning batch", "128", lambda v: v["reasoning_max_num_seqs"]),
    ("qwen3-32b-b200", "chat tokens", "627", lambda v: v["chat_mean_output_tokens"]),
    ("qwen3-32b-b200", "reasoning tokens", "7,035", lambda v: v["reasoning_mean_output_tokens"]),
    ("qwen3-32b-b200", "chat J per token", "0.151", lambda v: v["chat_energy_per_token_joules"]),
    ("qwen3-32b-b200", "reasoning J per token", "0.312", lambda v: v["reasoning_energy_per_token_joules"]),
    ("qwen3-32b-b200", "chat J per response", "95", lambda v: v["chat_energy_per_response_joules"]),
    ("qwen3-32b-b200", "reasoning J per response", "2,192", lambda v: v["reasoning_energy_per_response_joules"]),
    ("multimodal-overhead", "image chat, lowest", "1.1", lambda v: v["image_over_text"]["min"]),
    ("multimodal-overhead", "image chat, highest", "5.2", lambda v: v["image_over_text"]["max"]),
    ("multimodal-overhead", "video chat, lowest", "1.3", lambda v: v["video_over_text"]["min"]),
    ("multimodal-overhead", "video chat, about 15x", "15", lambda v: v["video_over_text"]["max"]),
    ("text-to-image-spread", "SANA 1.5 1.6B J per image", "338", lambda v: v["min_energy_per_image_joules"]),
    ("text-to-image-spread", "FLUX.1 dev J per image", "6,679", lambda v: v["max_energy_per_image_joules"]),
    (
        "text-to-image-spread",
        "about 20x",
        "20",
        lambda v: v["max_energy_per_image_joules"] / v["min_energy_per_image_joules"],
    ),
    ("text-to-video-range", "CogVideoX 2B kJ per video", "26.4", lambda v: v["min_energy_per_video_joules"] / 1e3),
    ("text-to-video-range", "HunyuanVideo MJ per video", "1.16", lambda v: v["max_energy_per_video_joules"] / 1e6),
    ("batch-size-effect", "DeepSeek R1, GPQA, 8 x B200", "3.0", lambda v: v["highlighted"][DEEPSEEK]["ratio"]),
    ("batch-size-effect", "Qwen3 Coder 30B A3B, code, 1 x B200", "5.4", lambda v: v["highlighted"][CODER]["ratio"]),
    (
        "moe-vs-dense",
        "Qwen3 32B over Qwen3 30B A3B Thinking per token",
        "3.56",
        lambda v: v["dense_energy_per_token_joules"] / v["moe_energy_per_token_joules"],
    ),
    ("moe-vs-dense", "the ratio the finding reports", "3.56", lambda v: v["dense_over_moe"]),
    ("b200-vs-h100", "LLM comparisons B200 wins", "63", lambda v: v["llm"]["b200_wins"]),
    ("b200-vs-h100", "LLM comparisons", "72", lambda v: v["llm"]["comparisons"]),
    ("b200-vs-h100", "LLM median reduction %", "34.7", lambda v: _pct(v["llm"]["gain"]["median"])),
    ("b200-vs-h100", "text-to-image comparisons B200 wins", "18", lambda v: v["text-to-image"]["b200_wins"]),
    ("b200-vs-h100", "text-to-image comparisons", "21", lambda v: v["text-to-image"]["comparisons"]),
    ("b200-vs-h100", "text-to-image median reduction %", "14.9", lambda v: _pct(v["text-to-image"]["gain"]["median"])),
    ("b200-vs-h100", "text-to-video comparisons B200 wins", "11", lambda v: v["text-to-video"]["b200_wins"]),
    ("b200-vs-h100", "text-to-video comparisons", "14", lambda v: v["text-to-video"]["comparisons"]),
    (
        "fp8-vs-bf16",
        "batch 8-16 median change %",
        "+29.9",
        lambda v: _pct(v["bands"]["8-16"]["energy_ratio"]["median"] - 1.0),
    ),
    (
        "fp8-vs-bf16",
        "batch 65-256 median change %",
        "-10.6",
        lambda v: _pct(v["bands"]["65-256"]["energy_ratio"]["median"] - 1.0),
    ),
    ("multi-gpu", "B200 pairs where energy rises", "37", lambda v: v["by_gpu"]["B200"]["energy_rises"]),
    ("multi-gpu", "B200 pairs", "37", lambda v: v["by_gpu"]["B200"]["pairs"]),
    ("multi-gpu", "H100 pairs where energy rises", "39", lambda v: v["by_gpu"]["H100"]["energy_rises"]),
    ("multi-gpu", "H100 pairs", "42", lambda v: v["by_gpu"]["H100"]["pairs"]),
    (
        "multi-gpu",
        "gpt-oss 120B on GPQA, 2 x H100 lower by %",
        "67.8",
        lambda v: _pct(
            1.0
            - v["gpt_oss_120b_gpqa_h100"]["min_energy_per_token_2_gpus_joules"]
            / v["gpt_oss_120b_gpqa_h100"]["min_energy_per_token_1_gpu_joules"]
        ),
    ),
]


_COMPUTED: dict = {}


def _finding(finding_id: str):
    """One finding recomputed from the published data, once per test session; afresh in every test under mutation
    testing (``MUTANT_UNDER_TEST`` set by mutmut), so that each test is mapped to the code it checks."""
    if os.environ.get("MUTANT_UNDER_TEST") or finding_id not in _COMPUTED:
        try:
            computed = F.compute(finding_id)
        except ReferenceDataError as exc:
            pytest.fail(f"reference data needed (set HARNESS_REFERENCE_DIR): {exc}")
        if os.environ.get("MUTANT_UNDER_TEST"):
            return computed
        _COMPUTED[finding_id] = computed
    return _COMPUTED[finding_id]


class _Found(dict):
    def __missing__(self, finding_id):
        return _finding(finding_id)


@pytest.fixture
def found():
    """The findings by id, each computed when a test first asks for it."""
    return _Found()


def test_the_rounding_rule_of_this_file():
    assert _within_rounding(3.557, "3.56") and _within_rounding(3.565, "3.56") and not _within_rounding(3.5651, "3.56")
    assert not _within_rounding(3.554, "3.56") and not _within_rounding(3.07, "3.56")
    assert _within_rounding(4624.6, "4,625") and not _within_rounding(4624.4, "4,625")
    assert (
        _within_rounding(29.89, "+29.9") and _within_rounding(-10.60, "-10.6") and not _within_rounding(10.6, "-10.6")
    )
    assert _within_rounding(63, "63") and not _within_rounding(62, "63") and not _within_rounding(None, "63")


@pytest.mark.parametrize("finding, what, paper, ours", CLAIMS, ids=[f"{c[0]}: {c[1]}" for c in CLAIMS])
def test_published_figure(found, finding, what, paper, ours):
    value = ours(found[finding].values)
    assert _within_rounding(value, paper), f"{finding}, {what}: {value!r} against the paper's {paper}"


def test_counts_are_whole_numbers(found):
    counts = [c for c in CLAIMS if c[1].endswith((" batch", " pairs", "energy rises", "comparisons", "B200 wins"))]
    assert len(counts) == 12
    for finding, what, paper, ours in counts:
        value = ours(found[finding].values)
        assert value == int(paper), (finding, what, value)


def test_the_abstracts_ranges(found):
    ratios = [h["ratio"] for h in found["batch-size-effect"].values["highlighted"].values()]
    assert len(ratios) == 2 and all(3 <= round(r) <= 5 for r in ratios), ratios  # "3 to 5x"
    image = found["text-to-image-spread"].values["max_energy_per_image_joules"]
    video = found["text-to-video-range"].values["max_energy_per_video_joules"]
    assert video / image > 100  # "video generation sometimes more than 100x the energy of images"
    rvc = found["reasoning-vs-chat"].values
    assert round(rvc["reasoning_mean_energy_per_response_joules"] / rvc["chat_mean_energy_per_response_joules"]) == 25


def test_every_finding_agrees_with_the_paper(found):
    assert {c[0] for c in CLAIMS} == set(F.FINDINGS)
    for finding_id in F.FINDINGS:
        f = found[finding_id]
        assert f.id == finding_id
        assert f.agrees is True, (f.id, f.comparison)
        assert f.comparison.startswith("Agrees with the paper"), (f.id, f.comparison)


def test_the_findings_command_says_no_finding_differs(capsys):
    from harness.cli import main

    assert main(["findings"]) == 0
    out = capsys.readouterr().out
    assert out.count("(agrees with the paper)") == len(F.FINDINGS)
    assert "Differs from the paper" not in out and "DIFFERS" not in out


def test_this_table_quotes_paper_claims():
    """Each figure above is written, as is, in the finding's row of PAPER-CLAIMS.md."""
    path = _claims_file()
    if path is None:
        pytest.skip("PAPER-CLAIMS.md not found beside the checkout (set HARNESS_PAPER_CLAIMS)")
    rows = _claims_table(path)
    for finding, what, paper, _ in CLAIMS:
        assert re.search(rf"(?<![\d.,]){re.escape(paper)}(?!\d|,\d|\.\d)", rows[finding]), (finding, what, paper)
