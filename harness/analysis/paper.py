"""The paper's published figures, as data, and the one comparison that says whether a recomputed value agrees.

These are facts quoted from arXiv 2601.22076 (*Where Do the Joules Go?*), finding by finding, never our
measurements. Each :class:`Figure` keeps the number as the paper writes it (``"4,625"``, ``"3.56"``,
``"34.7"``) so that the tolerance is the paper's own rounding:

    a recomputed value agrees with a published figure when it rounds to that figure at the precision the
    paper wrote it: 3.56x stands for 3.555x to 3.565x, 4,625 J for 4,624.5 J to 4,625.5 J, 1.16 MJ for
    1.155 MJ to 1.165 MJ, and a count such as 63 (of 72) must match exactly. "3 to 5x" holds when every
    value it covers rounds into 3 to 5; "more than 100x" when the value exceeds 100.

:func:`check` is that rule; :func:`judge` applies it to a :class:`~harness.analysis.findings.record.Finding`,
and both the findings' ``agrees`` field and ``python -m harness findings`` come from it (a finding never sets
``agrees`` itself).

The paper's words for each finding (:data:`CLAIMS`), its H100 orders of magnitude
(:data:`H100_MIN_ENERGY_JOULES`, compared by :func:`order_of_magnitude_check`) and the findings' ids in the book's
order (:data:`FINDING_IDS`) live here too: what the paper says is defined once, in this module, which imports no
pandas (the command line reads the ids from it).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from harness.analysis.paper_locations import LOCATIONS, Location, located, location_text  # noqa: F401 -- re-exported
from harness.analysis.paper_rounding import (  # noqa: F401 -- re-exported: the paper's figures and their comparison
    ABOVE,
    RANGE,
    ROUNDED,
    TOLERANCE_RULE,
    Check,
    Figure,
    _number,
    check,
    format_value,
)

if TYPE_CHECKING:
    from harness.analysis.findings.record import Finding

ARXIV_ID = "2601.22076"
PAPER_URL = f"https://arxiv.org/abs/{ARXIV_ID}"
PAPER_TITLE = "Where Do the Joules Go? Diagnosing Inference Energy Consumption"
PAPER_AUTHORS = "J.-W. Chung, R. Wu, J. J. Ma and M. Chowdhury"
LEADERBOARD_URL = "https://ml.energy/leaderboard"


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


# ------------------------------------------------------------------ the figures (PAPER-CLAIMS table)

FIGURES: tuple[Figure, ...] = (
    Figure(
        "reasoning-vs-chat",
        "reasoning: mean output tokens per response",
        "6,988",
        "tokens",
        lambda v: v["reasoning_mean_output_tokens"],
    ),
    Figure(
        "reasoning-vs-chat",
        "reasoning: mean energy per response",
        "4,625",
        "J",
        lambda v: v["reasoning_mean_energy_per_response_joules"],
    ),
    Figure(
        "reasoning-vs-chat",
        "chat: mean output tokens per response",
        "717",
        "tokens",
        lambda v: v["chat_mean_output_tokens"],
    ),
    Figure(
        "reasoning-vs-chat",
        "chat: mean energy per response",
        "184",
        "J",
        lambda v: v["chat_mean_energy_per_response_joules"],
    ),
    Figure(
        "reasoning-vs-chat", "output tokens, reasoning over chat (about)", "10", "x", lambda v: v["output_tokens_ratio"]
    ),
    Figure(
        "reasoning-vs-chat",
        "energy per response, reasoning over chat (about)",
        "25",
        "x",
        lambda v: v["energy_per_response_ratio"],
    ),
    Figure("qwen3-32b-b200", "chat: largest batch", "512", "", lambda v: v["chat_max_num_seqs"]),
    Figure("qwen3-32b-b200", "reasoning: largest batch", "128", "", lambda v: v["reasoning_max_num_seqs"]),
    Figure(
        "qwen3-32b-b200", "chat: output tokens per response", "627", "tokens", lambda v: v["chat_mean_output_tokens"]
    ),
    Figure(
        "qwen3-32b-b200",
        "reasoning: output tokens per response",
        "7,035",
        "tokens",
        lambda v: v["reasoning_mean_output_tokens"],
    ),
    Figure("qwen3-32b-b200", "chat: energy per token", "0.151", "J", lambda v: v["chat_energy_per_token_joules"]),
    Figure(
        "qwen3-32b-b200", "reasoning: energy per token", "0.312", "J", lambda v: v["reasoning_energy_per_token_joules"]
    ),
    Figure("qwen3-32b-b200", "chat: energy per response", "95", "J", lambda v: v["chat_energy_per_response_joules"]),
    Figure(
        "qwen3-32b-b200",
        "reasoning: energy per response",
        "2,192",
        "J",
        lambda v: v["reasoning_energy_per_response_joules"],
    ),
    Figure(
        "multimodal-overhead", "image chat over text chat: lowest", "1.1", "x", lambda v: v["image_over_text"]["min"]
    ),
    Figure(
        "multimodal-overhead", "image chat over text chat: highest", "5.2", "x", lambda v: v["image_over_text"]["max"]
    ),
    Figure(
        "multimodal-overhead", "video chat over text chat: lowest", "1.3", "x", lambda v: v["video_over_text"]["min"]
    ),
    Figure(
        "multimodal-overhead",
        "video chat over text chat: highest (about)",
        "15",
        "x",
        lambda v: v["video_over_text"]["max"],
    ),
    Figure(
        "text-to-image-spread",
        "lowest energy per image, cheapest model",
        "338",
        "J",
        lambda v: v["min_energy_per_image_joules"],
    ),
    Figure(
        "text-to-image-spread",
        "lowest energy per image, dearest model",
        "6,679",
        "J",
        lambda v: v["max_energy_per_image_joules"],
    ),
    Figure("text-to-image-spread", "spread, dearest over cheapest (about)", "20", "x", lambda v: v["spread"]),
    Figure(
        "text-to-video-range",
        "lowest energy per video, cheapest model",
        "26.4",
        "kJ",
        lambda v: v["min_energy_per_video_joules"] / 1e3,
    ),
    Figure(
        "text-to-video-range",
        "lowest energy per video, dearest model",
        "1.16",
        "MJ",
        lambda v: v["max_energy_per_video_joules"] / 1e6,
    ),
    Figure(
        "text-to-video-range",
        "dearest video over dearest image",
        "100",
        "x",
        lambda v: v.get("dearest_video_over_dearest_image"),
        ABOVE,
    ),
    Figure(
        "batch-size-effect",
        "DeepSeek R1, problem solving, 8 x B200",
        "3.0",
        "x",
        lambda v: v["highlighted"].get("DeepSeek R1 on problem solving, 8 x B200", {}).get("ratio"),
    ),
    Figure(
        "batch-size-effect",
        "Qwen3 Coder 30B A3B, code completion, 1 x B200",
        "5.4",
        "x",
        lambda v: v["highlighted"].get("Qwen3 Coder 30B A3B on code completion, 1 x B200", {}).get("ratio"),
    ),
    Figure(
        "batch-size-effect",
        "the two series, as the abstract puts it",
        "3 to 5",
        "x",
        lambda v: [h["ratio"] for h in v["highlighted"].values()],
        RANGE,
    ),
    Figure("moe-vs-dense", "dense over MoE energy per token", "3.56", "x", lambda v: v["dense_over_moe"]),
    Figure("b200-vs-h100", "language models: comparisons B200 wins", "63", "", lambda v: v["llm"]["b200_wins"]),
    Figure("b200-vs-h100", "language models: comparisons", "72", "", lambda v: v["llm"]["comparisons"]),
    Figure(
        "b200-vs-h100",
        "language models: median energy saved by B200",
        "34.7",
        "%",
        lambda v: _pct(v["llm"]["gain"]["median"]),
    ),
    Figure("b200-vs-h100", "text to image: comparisons B200 wins", "18", "", lambda v: v["text-to-image"]["b200_wins"]),
    Figure("b200-vs-h100", "text to image: comparisons", "21", "", lambda v: v["text-to-image"]["comparisons"]),
    Figure(
        "b200-vs-h100",
        "text to image: median energy saved by B200",
        "14.9",
        "%",
        lambda v: _pct(v["text-to-image"]["gain"]["median"]),
    ),
    Figure("b200-vs-h100", "text to video: comparisons B200 wins", "11", "", lambda v: v["text-to-video"]["b200_wins"]),
    Figure("b200-vs-h100", "text to video: comparisons", "14", "", lambda v: v["text-to-video"]["comparisons"]),
    Figure(
        "fp8-vs-bf16",
        "batch 8-16: median change in energy per token with FP8",
        "+29.9",
        "%",
        lambda v: _pct(v["bands"]["8-16"]["energy_ratio"]["median"] - 1),
    ),
    Figure(
        "fp8-vs-bf16",
        "batch 65-256: median change in energy per token with FP8",
        "-10.6",
        "%",
        lambda v: _pct(v["bands"]["65-256"]["energy_ratio"]["median"] - 1),
    ),
    Figure(
        "multi-gpu",
        "B200: same-batch pairs where more GPUs raise energy per token",
        "37",
        "",
        lambda v: v["by_gpu"]["B200"]["energy_rises"],
    ),
    Figure("multi-gpu", "B200: same-batch pairs", "37", "", lambda v: v["by_gpu"]["B200"]["pairs"]),
    Figure(
        "multi-gpu",
        "H100: same-batch pairs where more GPUs raise energy per token",
        "39",
        "",
        lambda v: v["by_gpu"]["H100"]["energy_rises"],
    ),
    Figure("multi-gpu", "H100: same-batch pairs", "42", "", lambda v: v["by_gpu"]["H100"]["pairs"]),
    Figure(
        "multi-gpu",
        "gpt-oss 120B, problem solving: 2 x H100 lowers the minimum energy per token by",
        "67.8",
        "%",
        lambda v: _pct(1 - v["gpt_oss_120b_gpqa_h100"]["min_energy_ratio"]) if "gpt_oss_120b_gpqa_h100" in v else None,
    ),
)

# The abstract's headline figures and the finding whose values recompute each.
HEADLINES: tuple[Figure, ...] = (
    Figure(
        "reasoning-vs-chat",
        "task type: energy per response, problem solving over chat (up to)",
        "25",
        "x",
        lambda v: v["energy_per_response_ratio"],
    ),
    Figure(
        "text-to-video-range",
        "video generation over image generation (sometimes more than)",
        "100",
        "x",
        lambda v: v.get("dearest_video_over_dearest_image"),
        ABOVE,
    ),
    Figure(
        "batch-size-effect",
        "GPU utilization (batch size): energy per token",
        "3 to 5",
        "x",
        lambda v: [h["ratio"] for h in v["highlighted"].values()],
        RANGE,
    ),
)


def _figure(finding_id: str, label: str) -> Figure:
    return next(f for f in FIGURES if f.finding == finding_id and f.label == label)


def _published(finding_id: str, label: str) -> int | float:
    """One published figure's number as the paper writes it, in its written unit (an int where it has no decimals)."""
    value = _number(_figure(finding_id, label).text)
    return int(value) if value.is_integer() else value


# ------------------------------------------------------------------ what the paper says, finding by finding

# Lowest energy per image and per video per model on H100 (J): the orders of magnitude the paper quotes.
H100_MIN_ENERGY_JOULES: dict[str, float] = {
    "stabilityai/stable-diffusion-3.5-medium": 1.6e3,
    "black-forest-labs/FLUX.1-dev": 7.6e3,
    "zai-org/CogVideoX-2b": 28e3,
    "Wan-AI/Wan2.1-T2V-14B-Diffusers": 288e3,
    "tencent/HunyuanVideo": 1.16e6,
}
ORDER_OF_MAGNITUDE_TOLERANCE = 0.05  # relative; those figures carry two or three significant digits

_REASONING = "reasoning-vs-chat"

# Each finding's ``paper`` field before :func:`judge` adds its figures: where the paper says it ("source"), what it
# says in words ("claim") and, for some, the published numbers beside them. In the order the book presents them.
CLAIMS: dict[str, dict[str, Any]] = {
    _REASONING: {
        "reasoning_models": 12,  # models averaged, as the paper counts them
        "chat_models": 16,
        "reasoning_mean_output_tokens": _published(_REASONING, "reasoning: mean output tokens per response"),
        "chat_mean_output_tokens": _published(_REASONING, "chat: mean output tokens per response"),
        "reasoning_mean_energy_per_response_joules": _published(_REASONING, "reasoning: mean energy per response"),
        "chat_mean_energy_per_response_joules": _published(_REASONING, "chat: mean energy per response"),
        "source": "the paper's published values",
        "claim": "about 10x the output tokens and about 25x the energy per response",
    },
    "qwen3-32b-b200": {
        "source": "the paper's explanation of reasoning against chat",
        "claim": "long reasoning outputs stress memory, cap the batch size and raise energy per token; "
        "energy per response multiplies the two",
    },
    "multimodal-overhead": {
        "source": "the paper's published range of ratios",
        "claim": "image and video inputs raise energy per token over text chat of the same family; the "
        "framework names CPU-side preprocessing of multimodal inputs as a non-GPU bottleneck",
    },
    "text-to-image-spread": {
        "source": "the paper's B200 minima (and its H100 orders of magnitude)",
        "claim": "lowest energy per image per model on B200: 338 J (SANA 1.5 1.6B) to 6,679 J (FLUX.1 dev), "
        "about 20x; on H100 SD 3.5 Medium 1.6 kJ and FLUX.1 dev 7.6 kJ",
    },
    "text-to-video-range": {
        "source": "the paper's abstract and its B200 and H100 minima",
        "claim": "video generation sometimes consumes more than 100x the energy of an image",
    },
    "batch-size-effect": {
        "source": "the paper and its abstract",
        "range_x": [
            int(_number(n))
            for n in _figure("batch-size-effect", "the two series, as the abstract puts it").text.split(" to ")
        ],
        "claim": "GPU utilization (batch size) moves energy per token by 3 to 5x (DeepSeek R1 on problem "
        "solving, 8 x B200; Qwen3 Coder 30B A3B on code completion, 1 x B200)",
    },
    "moe-vs-dense": {
        "source": "the paper's published ratio",
        "claim": "Qwen3 32B uses 3.56x the energy per token of Qwen3 30B A3B Thinking; more compute per output "
        "costs energy: an MoE model that activates few parameters per token should use less energy per "
        "token than a dense model of similar total size",
    },
    "b200-vs-h100": {
        "source": "the paper's published counts and medians",
        "claim": "B200 uses less energy in 63 of 72 LLM comparisons (median reduction 34.7%), 18 of 21 "
        "text-to-image (median 14.9%) and 11 of 14 text-to-video",
    },
    "fp8-vs-bf16": {
        "source": "the paper's published medians per batch band",
        "claim": "at batch 8-16 FP8 uses more energy per token (median +29.9%); at batch 65-256 less (median -10.6%)",
    },
    "multi-gpu": {
        "source": "the paper's published counts and the gpt-oss 120B example",
        "claim": "more GPUs at the same batch raise energy per token in 37 of 37 B200 pairs and 39 of 42 H100 "
        "pairs; gpt-oss 120B on GPQA: 2 x H100 lowers the minimum energy per token by 67.8% against "
        "1 x H100, by unlocking larger batches",
    },
}


# The findings' ids, in the order the book and ``python -m harness findings`` present them.
FINDING_IDS: tuple[str, ...] = tuple(CLAIMS)


def claim(finding_id: str) -> dict[str, Any]:
    """What the paper says for one finding (a fresh copy of its :data:`CLAIMS` entry, for a finding's ``paper``)."""
    return copy.deepcopy(CLAIMS[finding_id])


def order_of_magnitude_check(minima_joules: Mapping[str, float]) -> tuple[dict[str, dict[str, float]], bool]:
    """Per-model minimum energy (J, keyed by model id) against the paper's H100 orders of magnitude.

    Returns, for every model of :data:`H100_MIN_ENERGY_JOULES` that ``minima_joules`` holds, its
    ``published_joules``, ``computed_joules`` and ``rel_diff`` (a fraction), and whether every such model is
    within :data:`ORDER_OF_MAGNITUDE_TOLERANCE`.
    """
    out, ok = {}, True
    for model, published in H100_MIN_ENERGY_JOULES.items():
        if model in minima_joules:
            rel = abs(minima_joules[model] - published) / published
            out[model] = {
                "published_joules": published,
                "computed_joules": float(minima_joules[model]),
                "rel_diff": float(rel),
            }
            ok = ok and rel <= ORDER_OF_MAGNITUDE_TOLERANCE
    return out, ok


def figures_of(finding_id: str) -> tuple[Figure, ...]:
    """The published figures of one finding, in :data:`FIGURES` order."""
    return tuple(f for f in FIGURES if f.finding == finding_id)


def _safe(fn: Callable[[dict], Any], values: dict) -> Any:
    try:
        return fn(values)
    except (KeyError, TypeError, IndexError):
        return None


def checks(finding: Finding) -> list[Check]:
    """Every published figure of one finding, checked against its recomputed values."""
    return [check(fig, _safe(fig.value, finding.values)) for fig in figures_of(finding.id)]


def headline_checks(found: list[Finding]) -> list[Check]:
    """The abstract's headline figures (:data:`HEADLINES`), each checked against the finding that recomputes it."""
    by_id = {f.id: f for f in found}
    return [
        check(fig, _safe(fig.value, by_id[fig.finding].values) if fig.finding in by_id else None) for fig in HEADLINES
    ]


def verdict(results: list[Check]) -> str:
    """One sentence: agrees on all figures, or which differ and by how much."""
    if not results:
        return "The paper publishes no figure for this finding."
    bad = [c for c in results if not c.agrees]
    if not bad:
        rel = [abs(c.difference) for c in results if c.difference is not None]
        tail = f" (largest relative difference {100 * max(rel):.2f}%)" if rel else ""
        which = {1: "its published figure", 2: "both published figures"}.get(
            len(results), f"all {len(results)} published figures"
        )
        return f"Agrees with the paper on {which} at the paper's rounding{tail}."
    parts = [
        f"{c.figure.label}: {format_value(c.figure, c.computed)} against the paper's {c.figure.written}"
        + (f" ({100 * c.difference:+.1f}%)" if c.difference is not None else "")
        for c in bad
    ]
    return f"Differs from the paper on {len(bad)} of {len(results)} published figures: " + "; ".join(parts) + "."


def judge(finding: Finding) -> Finding:
    """The finding with ``agrees`` and ``comparison`` set from the paper's figures (the one comparison)."""
    results = checks(finding)
    if not results:
        return finding
    paper = dict(finding.paper, figures=[c.as_dict() for c in results])
    comparison = verdict(results) + (f" {finding.comparison}" if finding.comparison else "")
    return dataclasses.replace(finding, agrees=all(c.agrees for c in results), paper=paper, comparison=comparison)
