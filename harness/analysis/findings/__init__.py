"""The paper's findings, recomputed from the published measurements.

Each finding is a function of the two reference tables (LLM and diffusion) that
returns a :class:`~harness.analysis.findings.record.Finding`: its id, the values computed, the filters used, the
method in one sentence, what the paper reports (:data:`harness.analysis.paper.CLAIMS`) and a sentence on the
finding's own direction or mechanism. :func:`compute` and :func:`compute_all` then hand every finding to
:func:`harness.analysis.paper.judge`, the one comparison with the paper's published figures, which sets
``agrees``. Methods follow ``STUDY.md`` ("Findings and how they are computed").

One module per concern:

* :mod:`~harness.analysis.findings.record` -- the :class:`Finding` record and plain-JSON conversion;
* :mod:`~harness.analysis.findings.language` -- reasoning against chat, Qwen3 32B, multimodal chat, MoE against dense;
* :mod:`~harness.analysis.findings.generation` -- text to image and text to video;
* :mod:`~harness.analysis.findings.serving` -- the batch-size effect and more GPUs;
* :mod:`~harness.analysis.findings.hardware` -- B200 against H100, FP8 against BF16;
* :mod:`~harness.analysis.findings.framework` -- the framework's graph, with each edge's evidence;
* :mod:`~harness.analysis.findings.wording` -- how the sentences write numbers and names.

The tables a notebook works on come from :mod:`harness.analysis.loading` (re-exported here: ``load_table``,
``published``, ...). ``python -m harness findings`` and ``diagnose`` are in :mod:`harness.cli.findings`.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from harness.analysis import paper
from harness.analysis.findings.framework import (
    FRAMEWORK_EDGES,
    FRAMEWORK_NODES,
    framework_graph,
)
from harness.analysis.findings.generation import (
    diffusion_minima,
    text_to_image_spread,
    text_to_video_range,
)
from harness.analysis.findings.hardware import (
    FP8_BANDS,
    LATENCY_TARGETS,
    b200_vs_h100,
    b200_vs_h100_table,
    fp8_vs_bf16,
    fp8_vs_bf16_table,
)
from harness.analysis.findings.language import (
    MULTIMODAL_SIBLINGS,
    moe_vs_dense,
    multimodal_overhead,
    qwen3_32b_b200,
    reasoning_vs_chat,
)
from harness.analysis.findings.record import Finding, jsonable
from harness.analysis.findings.serving import (
    batch_size_effect,
    batch_size_effect_table,
    multi_gpu,
    multi_gpu_tables,
)
from harness.analysis.findings.wording import times_word
from harness.analysis.loading import (
    load_rows,
    load_rows_own,
    load_table,
    published,
    stack_rows,
)
from harness.analysis.tables.attribution import diagnose
from harness.errors import HarnessError

# In the order of :data:`harness.analysis.paper.FINDING_IDS` (the command line lists the ids from there).
FINDINGS: dict[str, Callable[[pd.DataFrame, pd.DataFrame], Finding]] = {
    "reasoning-vs-chat": reasoning_vs_chat,
    "qwen3-32b-b200": qwen3_32b_b200,
    "multimodal-overhead": multimodal_overhead,
    "text-to-image-spread": text_to_image_spread,
    "text-to-video-range": text_to_video_range,
    "batch-size-effect": batch_size_effect,
    "moe-vs-dense": moe_vs_dense,
    "b200-vs-h100": b200_vs_h100,
    "fp8-vs-bf16": fp8_vs_bf16,
    "multi-gpu": multi_gpu,
}


def _tables(llm: pd.DataFrame | None, diffusion: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The findings are the paper's: computed on published rows only, even from a table with own runs."""
    from harness.published import reference

    return (
        published(reference.llm_table() if llm is None else llm),
        published(reference.diffusion_table() if diffusion is None else diffusion),
    )


def compute(finding_id: str, llm: pd.DataFrame | None = None, diffusion: pd.DataFrame | None = None) -> Finding:
    """One finding by id, from the given tables or the reference data, judged against the paper's figures."""
    if finding_id not in FINDINGS:
        raise HarnessError(f"unknown finding {finding_id!r} (known: {', '.join(FINDINGS)})")
    llm, diffusion = _tables(llm, diffusion)
    return paper.judge(FINDINGS[finding_id](llm, diffusion))


def compute_all(llm: pd.DataFrame | None = None, diffusion: pd.DataFrame | None = None) -> list[Finding]:
    """Every finding, in :data:`FINDINGS` order, from the given tables or the reference data, each judged
    against the paper's figures."""
    llm, diffusion = _tables(llm, diffusion)
    return [paper.judge(fn(llm, diffusion)) for fn in FINDINGS.values()]


__all__ = [
    "FINDINGS",
    "FP8_BANDS",
    "FRAMEWORK_EDGES",
    "FRAMEWORK_NODES",
    "LATENCY_TARGETS",
    "MULTIMODAL_SIBLINGS",
    "Finding",
    "b200_vs_h100",
    "b200_vs_h100_table",
    "batch_size_effect",
    "batch_size_effect_table",
    "compute",
    "compute_all",
    "diagnose",
    "diffusion_minima",
    "fp8_vs_bf16",
    "fp8_vs_bf16_table",
    "framework_graph",
    "jsonable",
    "load_rows",
    "load_rows_own",
    "load_table",
    "moe_vs_dense",
    "multi_gpu",
    "multi_gpu_tables",
    "multimodal_overhead",
    "published",
    "qwen3_32b_b200",
    "reasoning_vs_chat",
    "stack_rows",
    "text_to_image_spread",
    "text_to_video_range",
    "times_word",
]
