"""Where the paper and its companion post state each finding: the part of the paper (:data:`WHERE_IN_PAPER`, with
the companion post's section) and the paper's own section and figure numbers where a copy of it showed them
(:data:`LOCATIONS`; none is guessed). One module for both, so each fact about where a finding stands is defined once.
"""

from __future__ import annotations

from dataclasses import dataclass

COMPANION_POST = "Reading the ML.ENERGY Leaderboard v3.0"  # the paper's companion post on the ML.ENERGY blog
COMPANION_POST_URL = "https://ml.energy/blog/"

# Where each finding is stated: (in the paper, the companion post's section).
WHERE_IN_PAPER: dict[str, tuple[str, str]] = {
    "reasoning-vs-chat": ("abstract (task type: 25x) and the LLM results", "Energy by Architecture: LLM"),
    "qwen3-32b-b200": ("the LLM results (Qwen3 32B case study)", "Energy by Architecture: LLM"),
    "multimodal-overhead": ("the multimodal LLM results", "Energy by Architecture: Multimodal LLM"),
    "text-to-image-spread": ("the diffusion results", "Energy by Architecture: Diffusion Models"),
    "text-to-video-range": (
        "abstract (video over images: more than 100x) and the diffusion results",
        "Energy by Architecture: Diffusion Models",
    ),
    "batch-size-effect": (
        "abstract (GPU utilization: 3 to 5x) and the batch-size results",
        "Deeper Dive into Energy: Batch Size",
    ),
    "moe-vs-dense": ("the model-size results", "Deeper Dive into Energy: Model Size"),
    "b200-vs-h100": ("the GPU-generation results", "Deeper Dive into Energy: B200 versus H100"),
    "fp8-vs-bf16": ("the precision results", "Deeper Dive into Energy: Precision"),
    "multi-gpu": ("the multi-GPU results", "Deeper Dive into Energy: Multi-GPU Scaling"),
}


@dataclass(frozen=True)
class Location:
    """Where the paper states one finding: its section and figure as the paper numbers them ("4.2", "3"), None where
    the stored copy of the paper searched for this project did not show them (never a guessed number), and whether
    its abstract states the finding's figure."""

    paper_section: str | None
    paper_figure: str | None
    in_abstract: bool
    evidence: str  # what showed it: the page searched and the words that show it, or why it is not located


_NOT_LOCATED = (
    "not located: the stored copy of the paper (arxiv.org/html/2601.22076v1) returns only its abstract and the start "
    "of its introduction, which number no section or figure for this finding"
)
_ABSTRACT = (
    "the abstract (arxiv.org/html/2601.22076v1) gives {}; section and figure not located: the stored copy returns "
    "only the abstract and the start of the introduction"
)

# Each finding's place in the paper, searched in a stored copy of arXiv 2601.22076v1 (HTML). Only the abstract and the
# start of section 1 (Introduction) came back, so no finding has a section or figure number here.
LOCATIONS: dict[str, Location] = {
    "reasoning-vs-chat": Location(None, None, True, _ABSTRACT.format("task type: 25x")),
    "qwen3-32b-b200": Location(None, None, False, _NOT_LOCATED),
    "multimodal-overhead": Location(None, None, False, _NOT_LOCATED),
    "text-to-image-spread": Location(None, None, False, _NOT_LOCATED),
    "text-to-video-range": Location(None, None, True, _ABSTRACT.format("video over images: more than 100x")),
    "batch-size-effect": Location(None, None, True, _ABSTRACT.format("GPU utilization: 3 to 5x")),
    "moe-vs-dense": Location(None, None, False, _NOT_LOCATED),
    "b200-vs-h100": Location(None, None, False, _NOT_LOCATED),
    "fp8-vs-bf16": Location(None, None, False, _NOT_LOCATED),
    "multi-gpu": Location(None, None, False, _NOT_LOCATED),
}


def located(finding_id: str) -> bool:
    """Whether the paper's section or figure number of a finding is recorded in :data:`LOCATIONS`."""
    where = LOCATIONS.get(finding_id)
    return where is not None and bool(where.paper_section or where.paper_figure)


def location_text(finding_id: str) -> str:
    """Where the paper states a finding, in short: ``"abstract; section 4.2, Figure 3"``, or ``"section and figure not
    located"`` for what the stored copy of the paper did not show."""
    where = LOCATIONS.get(finding_id)
    if where is None:
        return "section and figure not located"
    parts = ["abstract"] if where.in_abstract else []
    section = f"section {where.paper_section}" if where.paper_section else "section not located"
    figure = f"Figure {where.paper_figure}" if where.paper_figure else "figure not located"
    if not where.paper_section and not where.paper_figure:
        parts.append("section and figure not located")
    else:
        parts.append(f"{section}, {figure}")
    return "; ".join(parts)
