"""The paper's published figures, as data, and the one comparison that says whether a recomputed value agrees.

These are facts quoted from arXiv 2601.22076 (*Where Do the Joules Go?*), finding by finding, never our
measurements. Each :class:`Figure` keeps the number as the paper writes it (``"4,625"``, ``"3.56"``,
``"34.7"``) so that the tolerance is the paper's own rounding:

    a recomputed value agrees with a published figure when it rounds to that figure at the precision the
    paper wrote it: 3.56x stands for 3.555x to 3.565x, 4,625 J for 4,624.5 J to 4,625.5 J, 1.16 MJ for
    1.155 MJ to 1.165 MJ, and a count such as 63 (of 72) must match exactly. "3 to 5x" holds when every
    value it covers rounds into 3 to 5; "more than 100x" when the value exceeds 100.

:func:`check` is that rule; :func:`judge` applies it to a :class:`~harness.analysis.findings.Finding`,
and both the findings' ``agrees`` field and ``python -m harness findings`` come from it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

ARXIV_ID = "2601.22076"
PAPER_URL = f"https://arxiv.org/abs/{ARXIV_ID}"
PAPER_TITLE = "Where Do the Joules Go? Diagnosing Inference Energy Consumption"
PAPER_AUTHORS = "J.-W. Chung, R. Wu, J. J. Ma and M. Chowdhury"
LEADERBOARD_URL = "https://ml.energy/leaderboard"

TOLERANCE_RULE = (
    "A recomputed value agrees with the paper's figure when it rounds to that figure at the precision the paper "
    "wrote it (3.56x stands for 3.555x to 3.565x, 4,625 J for 4,624.5 J to 4,625.5 J, 1.16 MJ for 1.155 MJ to "
    "1.165 MJ); counts must match exactly; a range such as 3 to 5x holds when every value it covers rounds into "
    "it; \"more than 100x\" when the value exceeds 100."
)

ROUNDED, RANGE, ABOVE = "rounded", "range", "above"


@dataclass(frozen=True)
class Figure:
    """One published number: where it belongs, how the paper writes it and how to read ours."""

    finding: str  # finding id
    label: str  # what it is, in words
    text: str  # the number as the paper writes it: "4,625", "3.56", "3 to 5", "100"
    unit: str  # unit of the written number: "J", "kJ", "MJ", "x", "%", "tokens", "" (a count)
    value: Callable[[dict], Any]  # finding.values -> our number (in the written unit), or a list for RANGE
    kind: str = ROUNDED

    def bounds(self) -> tuple[float, float]:
        """The interval of values that round to the figure as written."""
        if self.kind == ABOVE:
            return _number(self.text), math.inf
        if self.kind == RANGE:
            lo, hi = (part.strip() for part in self.text.split(" to "))
            return _number(lo) - _half_unit(lo), _number(hi) + _half_unit(hi)
        return _number(self.text) - _half_unit(self.text), _number(self.text) + _half_unit(self.text)

    @property
    def written(self) -> str:
        text = {ABOVE: f"more than {self.text}"}.get(self.kind, self.text)
        if self.unit in ("x", "%"):
            return f"{text}{self.unit}"
        return f"{text} {self.unit}".strip()


@dataclass(frozen=True)
class Check:
    figure: Figure
    computed: Any  # float, or a list of floats for RANGE
    agrees: bool
    difference: float | None  # (computed - published) / published, None for ranges and lower bounds

    def as_dict(self) -> dict:
        return {"label": self.figure.label, "paper": self.figure.written, "unit": self.figure.unit,
                "computed": self.computed, "computed_text": format_value(self.figure, self.computed),
                "agrees": self.agrees, "relative_difference": self.difference, "kind": self.figure.kind}


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("+", ""))


def _half_unit(text: str) -> float:
    """Half a unit of the last digit written: "3.56" -> 0.005, "4,625" -> 0.5, "63" -> 0.5."""
    exponent = Decimal(text.replace(",", "").replace("+", "")).as_tuple().exponent
    return 0.5 * 10.0 ** exponent


def check(figure: Figure, computed) -> Check:
    """The comparison: does a recomputed value agree with the paper's figure, at the paper's rounding?"""
    lo, hi = figure.bounds()
    eps = 1e-9 * max(1.0, abs(lo), abs(hi) if math.isfinite(hi) else 0.0)
    if computed is None:
        return Check(figure, None, False, None)
    if figure.kind == RANGE:
        values = [float(v) for v in computed]
        return Check(figure, values, bool(values) and all(lo - eps <= v <= hi + eps for v in values), None)
    value = float(computed)
    if figure.kind == ABOVE:
        return Check(figure, value, value > lo, None)
    published = _number(figure.text)
    diff = (value - published) / published if published else None
    return Check(figure, value, lo - eps <= value <= hi + eps, diff)


def format_value(figure: Figure, value) -> str:
    """Our value at one more digit than the paper wrote (enough to see which way it rounds)."""
    if value is None:
        return "not computed"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(dataclasses.replace(figure, kind=ROUNDED, text="1.0"), v) for v in value)
    exponent = Decimal(figure.text.split(" to ")[0].replace(",", "").replace("+", "")).as_tuple().exponent
    digits = max(0, -exponent + 1) if figure.unit != "" else 0
    text = f"{value:,.{digits}f}"
    if figure.unit in ("x", "%"):
        return f"{text}{figure.unit}"
    return f"{text} {figure.unit}".strip()


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


# ------------------------------------------------------------------ the figures (PAPER-CLAIMS table)

FIGURES: tuple[Figure, ...] = (
    Figure("reasoning-vs-chat", "reasoning: mean output tokens per response", "6,988", "tokens",
           lambda v: v["reasoning_mean_output_tokens"]),
    Figure("reasoning-vs-chat", "reasoning: mean energy per response", "4,625", "J",
           lambda v: v["reasoning_mean_energy_per_response_joules"]),
    Figure("reasoning-vs-chat", "chat: mean output tokens per response", "717", "tokens",
           lambda v: v["chat_mean_output_tokens"]),
    Figure("reasoning-vs-chat", "chat: mean energy per response", "184", "J",
           lambda v: v["chat_mean_energy_per_response_joules"]),
    Figure("reasoning-vs-chat", "output tokens, reasoning over chat (about)", "10", "x",
           lambda v: v["output_tokens_ratio"]),
    Figure("reasoning-vs-chat", "energy per response, reasoning over chat (about)", "25", "x",
           lambda v: v["energy_per_response_ratio"]),
    Figure("qwen3-32b-b200", "chat: largest batch", "512", "", lambda v: v["chat_max_num_seqs"]),
    Figure("qwen3-32b-b200", "reasoning: largest batch", "128", "", lambda v: v["reasoning_max_num_seqs"]),
    Figure("qwen3-32b-b200", "chat: output tokens per response", "627", "tokens",
           lambda v: v["chat_mean_output_tokens"]),
    Figure("qwen3-32b-b200", "reasoning: output tokens per response", "7,035", "tokens",
           lambda v: v["reasoning_mean_output_tokens"]),
    Figure("qwen3-32b-b200", "chat: energy per token", "0.151", "J", lambda v: v["chat_energy_per_token_joules"]),
    Figure("qwen3-32b-b200", "reasoning: energy per token", "0.312", "J",
           lambda v: v["reasoning_energy_per_token_joules"]),
    Figure("qwen3-32b-b200", "chat: energy per response", "95", "J", lambda v: v["chat_energy_per_response_joules"]),
    Figure("qwen3-32b-b200", "reasoning: energy per response", "2,192", "J",
           lambda v: v["reasoning_energy_per_response_joules"]),
    Figure("multimodal-overhead", "image chat over text chat: lowest", "1.1", "x", lambda v: v["image_over_text"]["min"]),
    Figure("multimodal-overhead", "image chat over text chat: highest", "5.2", "x", lambda v: v["image_over_text"]["max"]),
    Figure("multimodal-overhead", "video chat over text chat: lowest", "1.3", "x", lambda v: v["video_over_text"]["min"]),
    Figure("multimodal-overhead", "video chat over text chat: highest (about)", "15", "x",
           lambda v: v["video_over_text"]["max"]),
    Figure("text-to-image-spread", "lowest energy per image, cheapest model", "338", "J",
           lambda v: v["min_energy_per_image_joules"]),
    Figure("text-to-image-spread", "lowest energy per image, dearest model", "6,679", "J",
           lambda v: v["max_energy_per_image_joules"]),
    Figure("text-to-image-spread", "spread, dearest over cheapest (about)", "20", "x", lambda v: v["spread"]),
    Figure("text-to-video-range", "lowest energy per video, cheapest model", "26.4", "kJ",
           lambda v: v["min_energy_per_video_joules"] / 1e3),
    Figure("text-to-video-range", "lowest energy per video, dearest model", "1.16", "MJ",
           lambda v: v["max_energy_per_video_joules"] / 1e6),
    Figure("text-to-video-range", "dearest video over dearest image", "100", "x",
           lambda v: v.get("dearest_video_over_dearest_image"), ABOVE),
    Figure("batch-size-effect", "DeepSeek R1, problem solving, 8 x B200", "3.0", "x",
           lambda v: v["highlighted"].get("DeepSeek R1 on problem solving, 8 x B200", {}).get("ratio")),
    Figure("batch-size-effect", "Qwen3 Coder 30B A3B, code completion, 1 x B200", "5.4", "x",
           lambda v: v["highlighted"].get("Qwen3 Coder 30B A3B on code completion, 1 x B200", {}).get("ratio")),
    Figure("batch-size-effect", "the two series, as the abstract puts it", "3 to 5", "x",
           lambda v: [h["ratio"] for h in v["highlighted"].values()], RANGE),
    Figure("moe-vs-dense", "dense over MoE energy per token", "3.56", "x", lambda v: v["dense_over_moe"]),
    Figure("b200-vs-h100", "language models: comparisons B200 wins", "63", "", lambda v: v["llm"]["b200_wins"]),
    Figure("b200-vs-h100", "language models: comparisons", "72", "", lambda v: v["llm"]["comparisons"]),
    Figure("b200-vs-h100", "language models: median energy saved by B200", "34.7", "%",
           lambda v: _pct(v["llm"]["gain"]["median"])),
    Figure("b200-vs-h100", "text to image: comparisons B200 wins", "18", "", lambda v: v["text-to-image"]["b200_wins"]),
    Figure("b200-vs-h100", "text to image: comparisons", "21", "", lambda v: v["text-to-image"]["comparisons"]),
    Figure("b200-vs-h100", "text to image: median energy saved by B200", "14.9", "%",
           lambda v: _pct(v["text-to-image"]["gain"]["median"])),
    Figure("b200-vs-h100", "text to video: comparisons B200 wins", "11", "", lambda v: v["text-to-video"]["b200_wins"]),
    Figure("b200-vs-h100", "text to video: comparisons", "14", "", lambda v: v["text-to-video"]["comparisons"]),
    Figure("fp8-vs-bf16", "batch 8-16: median change in energy per token with FP8", "+29.9", "%",
           lambda v: _pct(v["bands"]["8-16"]["energy_ratio"]["median"] - 1)),
    Figure("fp8-vs-bf16", "batch 65-256: median change in energy per token with FP8", "-10.6", "%",
           lambda v: _pct(v["bands"]["65-256"]["energy_ratio"]["median"] - 1)),
    Figure("multi-gpu", "B200: same-batch pairs where more GPUs raise energy per token", "37", "",
           lambda v: v["by_gpu"]["B200"]["energy_rises"]),
    Figure("multi-gpu", "B200: same-batch pairs", "37", "", lambda v: v["by_gpu"]["B200"]["pairs"]),
    Figure("multi-gpu", "H100: same-batch pairs where more GPUs raise energy per token", "39", "",
           lambda v: v["by_gpu"]["H100"]["energy_rises"]),
    Figure("multi-gpu", "H100: same-batch pairs", "42", "", lambda v: v["by_gpu"]["H100"]["pairs"]),
    Figure("multi-gpu", "gpt-oss 120B, problem solving: 2 x H100 lowers the minimum energy per token by", "67.8", "%",
           lambda v: _pct(1 - v["gpt_oss_120b_gpqa_h100"]["min_energy_ratio"]) if "gpt_oss_120b_gpqa_h100" in v else None),
)

# The abstract's headline figures and the finding whose values recompute each.
HEADLINES: tuple[Figure, ...] = (
    Figure("reasoning-vs-chat", "task type: energy per response, problem solving over chat (up to)", "25", "x",
           lambda v: v["energy_per_response_ratio"]),
    Figure("text-to-video-range", "video generation over image generation (sometimes more than)", "100", "x",
           lambda v: v.get("dearest_video_over_dearest_image"), ABOVE),
    Figure("batch-size-effect", "GPU utilization (batch size): energy per token", "3 to 5", "x",
           lambda v: [h["ratio"] for h in v["highlighted"].values()], RANGE),
)


def figures_of(finding_id: str) -> tuple[Figure, ...]:
    return tuple(f for f in FIGURES if f.finding == finding_id)


def _safe(fn: Callable[[dict], Any], values: dict):
    try:
        return fn(values)
    except (KeyError, TypeError, IndexError):
        return None


def checks(finding) -> list[Check]:
    """Every published figure of one finding, checked against its recomputed values."""
    return [check(fig, _safe(fig.value, finding.values)) for fig in figures_of(finding.id)]


def headline_checks(found: list) -> list[Check]:
    by_id = {f.id: f for f in found}
    return [check(fig, _safe(fig.value, by_id[fig.finding].values) if fig.finding in by_id else None)
            for fig in HEADLINES]


def verdict(results: list[Check]) -> str:
    """One sentence: agrees on all figures, or which differ and by how much."""
    if not results:
        return "The paper publishes no figure for this finding."
    bad = [c for c in results if not c.agrees]
    if not bad:
        rel = [abs(c.difference) for c in results if c.difference is not None]
        tail = f" (largest relative difference {100 * max(rel):.2f}%)" if rel else ""
        which = {1: "its published figure", 2: "both published figures"}.get(len(results),
                                                                            f"all {len(results)} published figures")
        return f"Agrees with the paper on {which} at the paper's rounding{tail}."
    parts = [f"{c.figure.label}: {format_value(c.figure, c.computed)} against the paper's {c.figure.written}"
             + (f" ({100 * c.difference:+.1f}%)" if c.difference is not None else "") for c in bad]
    return f"Differs from the paper on {len(bad)} of {len(results)} published figures: " + "; ".join(parts) + "."


def judge(finding):
    """The finding with ``agrees`` and ``comparison`` set from the paper's figures (the one comparison)."""
    results = checks(finding)
    if not results:
        return finding
    paper = dict(finding.paper, figures=[c.as_dict() for c in results])
    comparison = verdict(results) + (f" {finding.comparison}" if finding.comparison else "")
    return dataclasses.replace(finding, agrees=all(c.agrees for c in results), paper=paper, comparison=comparison)
