"""What it takes to reproduce the paper's figures from its data, and where its words and its data part.

Three tables for the chapter "The paper and the data", each a pure function of the findings
(:mod:`harness.analysis.findings`) and the published tables:

* :func:`analysis_choices` -- every choice a finding makes (GPU, tasks, selection, exclusions, pairing), read
  from the finding's own ``filters``, in a reader's words;
* :func:`prose_against_data` -- statements of the paper (and of its companion post) whose wording the data qualify,
  each with what the data say under every condition they cover;
* :func:`caveats` -- conditions a claim needs that the chapters found in the data (GPU generation, GPU count,
  the batches a band really holds, pairs left out).

:data:`WHERE_IN_PAPER` says where each finding is stated: the paper's abstract for the three headline figures, and
the companion post's section for each finding (the post presents the same results under named sections); the
paper's own section and figure numbers, or "not located", are :data:`harness.analysis.paper.LOCATIONS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.analysis import findings as F
from harness.analysis import tables as an
from harness.analysis.claim_conditions import Evidence, Stated
from harness.analysis.paper_locations import COMPANION_POST, COMPANION_POST_URL, WHERE_IN_PAPER  # noqa: F401
from harness.analysis.takeaways import (
    MOE_PAIR,
    batch_effect_by_count,
    batch_effect_evidence,
    batch_effect_series,
    batch_effect_stated,
    batch_effect_summary,
    moe_same_batch,
    rows_evidence,
)
from harness.vocabulary.tasks import TASK_NAMES

# A finding's filter keys in a reader's words.
CHOICE_WORDS: dict[str, str] = {
    "gpu_model": "GPU",
    "task": "task",
    "tasks": "tasks",
    "text_task": "text task",
    "modal_tasks": "multimodal tasks",
    "num_gpus": "GPU count",
    "weight_precision": "precision",
    "model_id": "model",
    "models": "models",
    "selection": "which configuration",
    "small": "small batch",
    "large": "large batch",
    "series": "a series is",
    "pairing": "pairs",
    "pairs": "pairs",
    "batch_size": "batch sizes",
    "excluded": "left out",
    "bands": "batch bands",
    "targets": "latency targets",
    "gain": "gain",
    "gpu_count": "GPU count",
    "not_paired": "not paired",
}
_COLUMN_WORDS = {
    "model_id": "model",
    "task": "task",
    "gpu_model": "GPU model",
    "num_gpus": "GPU count",
    "bfloat16": "BF16",
    "fp8": "FP8",
    "llm_median_itl_ms": "language models, median ITL (ms)",
    "text-to-image_batch_latency_s": "images, batch time (s)",
    "text-to-video_batch_latency_s": "videos, batch time (s)",
}


def _words(value: Any, names: Mapping[str, str]) -> str:
    """A filter value as text: task ids and model ids by name, lists joined, mappings as ``key: value``."""
    if isinstance(value, str):
        return TASK_NAMES.get(value) or names.get(value) or _COLUMN_WORDS.get(value) or value
    if isinstance(value, Mapping):
        return "; ".join(f"{_words(k, names)}: {_words(v, names)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_words(v, names) for v in value)
    if isinstance(value, bool) or value is None:
        return str(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _model_names(frames: Iterable[pd.DataFrame]) -> dict[str, str]:
    names: dict[str, str] = {}
    for frame in frames:
        if frame is not None and {"model_id", "nickname"} <= set(frame.columns):
            pairs = frame.drop_duplicates("model_id")[["model_id", "nickname"]].astype(str).itertuples(index=False)
            names.update(dict(pairs))
    return names


def analysis_choices(found: Iterable[F.Finding], *tables: pd.DataFrame) -> pd.DataFrame:
    """Every analysis choice of every finding, from its ``filters``: columns ``finding``, ``title``, ``choice``,
    ``value`` (words; model and task ids by their names, from ``tables`` where given)."""
    names = _model_names(tables)
    rows = []
    for f in found:
        for key, value in f.filters.items():
            rows.append(
                {
                    "finding": f.id,
                    "title": f.title,
                    "choice": CHOICE_WORDS.get(key, key.replace("_", " ")),
                    "value": _words(value, names),
                }
            )
        rows.append({"finding": f.id, "title": f.title, "choice": "method", "value": f.method})
    return pd.DataFrame(rows, columns=["finding", "title", "choice", "value"])


@dataclass(frozen=True)
class Statement:
    """A statement of the paper or its companion post, beside what the data say under each condition."""

    finding: str
    where: str  # where it is said
    says: str  # the statement, as written there
    data: str  # what the published data say, computed
    verdict: str  # "holds", "holds under a condition", "differs"


def _x(ratio: float) -> str:
    if ratio < 10:
        return f"{ratio:.2f}x"
    if ratio < 100:
        return f"{ratio:.1f}x"
    return f"{ratio:,.0f}x"


def per_model_task_ratio(llm: pd.DataFrame, gpu: str = "B200") -> pd.DataFrame:
    """Models that ran both problem solving and chat on ``gpu``: each task's lowest-energy-per-token configuration
    (any GPU count, any batch), and the ratio of energy per response, reasoning over chat (no unit)."""
    rows = llm[(llm["gpu_model"] == gpu) & llm["task"].isin(["gpqa", "lm-arena-chat"])]
    best = an.min_energy_configs(rows, by=("model_id", "task"))
    wide = best.pivot_table(index="model_id", columns="task", values="energy_per_request_joules")
    wide = wide.dropna(subset=[c for c in ("gpqa", "lm-arena-chat") if c in wide.columns])
    if not {"gpqa", "lm-arena-chat"} <= set(wide.columns) or wide.empty:
        return pd.DataFrame(columns=["model_id", "ratio"])
    return pd.DataFrame({"model_id": wide.index, "ratio": (wide["gpqa"] / wide["lm-arena-chat"]).to_numpy()})


def prose_against_data(found: Iterable[F.Finding], llm: pd.DataFrame) -> list[Statement]:
    """Statements whose words the data qualify, each with the data under every condition they cover.

    ``found``: the findings on the published rows; ``llm``: the published language-model rows."""
    by = {f.id: f for f in found}
    out: list[Statement] = []
    names = _model_names([llm])
    if "reasoning-vs-chat" in by:
        v = by["reasoning-vs-chat"].values
        same = per_model_task_ratio(llm)
        spread = (
            (
                f"; for the {len(same)} models that ran both tasks, each at its cheapest, the ratio runs from "
                f"{_x(same['ratio'].min())} to {_x(same['ratio'].max())}"
            )
            if len(same)
            else ""
        )
        out.append(
            Statement(
                "reasoning-vs-chat",
                "abstract",
                "LLM task type can lead to 25x energy differences",
                f"{_x(v['energy_per_response_ratio'])} is the ratio of two means over different models "
                f"({v['reasoning_models']} reasoning, {v['chat_models']} chat) on B200{spread}",
                "holds under a condition",
            )
        )
    if "text-to-video-range" in by:
        v = by["text-to-video-range"].values
        img = by.get("text-to-image-spread")
        cheap_pair = ""
        if img is not None:
            cheap = v["min_energy_per_video_joules"] / img.values["min_energy_per_image_joules"]
            cheap_pair = f"{_x(cheap)} the cheapest image but "
        out.append(
            Statement(
                "text-to-video-range",
                "abstract",
                "video generation sometimes consumes more than 100x the energy of images (the companion post: one to "
                "two orders of magnitude more)",
                f"on B200 the dearest video costs {_x(v['dearest_video_over_dearest_image'])} the dearest image and "
                f"{_x(v['dearest_video_over_cheapest_image'])} the cheapest; the cheapest video costs {cheap_pair}only "
                f"{_x(v['cheapest_video_over_dearest_image'])} the dearest image",
                "holds under a condition",
            )
        )
    if "batch-size-effect" in by:
        v = by["batch-size-effect"].values
        st = v["all_series"]
        overall = batch_effect_summary(batch_effect_series(llm))
        overall = overall[overall["task_name"] == "all tasks"]
        per_gpu = ", ".join(f"median {_x(r['median'])} on {r['gpu_model']}" for _, r in overall.iterrows())
        out.append(
            Statement(
                "batch-size-effect",
                "abstract; the companion post: Batch Size",
                "GPU utilization differences can result in 3 to 5x energy differences",
                "the paper's two series give "
                + " and ".join(_x(h["ratio"]) for h in v["highlighted"].values())
                + f"; over all {st['n']} series the ratio runs from {_x(st['min'])} to {_x(st['max'])} ({per_gpu}), "
                f"and {100 * v['share_between_3_and_5']:.0f}% of series lie within 3 to 5x",
                "holds under a condition",
            )
        )
    if "moe-vs-dense" in by:
        v = by["moe-vs-dense"].values
        split = moe_same_batch(llm)
        active = v["dense_active_params_billions"] / v["moe_active_params_billions"]
        at_same: str = (
            (
                f"; at the same batch the dense model costs only {_x(split['min'])} to {_x(split['max'])} the "
                f"MoE's energy per token ({_x(split['at_largest_common'])} at batch {split['largest_common']}), and "
                f"the MoE's larger batch {split['moe_best_batch']} saves another {_x(split['batch_gain'])}: most of "
                "the gap is the batch its memory allows"
            )
            if split
            else ""
        )
        out.append(
            Statement(
                "moe-vs-dense",
                "the companion post: Model Size",
                "the number of active parameters is an important factor (3.56x lower energy per token for the MoE)",
                f"{_x(v['dense_over_moe'])} with {_x(active)} fewer active parameters; the MoE ran batch "
                f"{v['moe_max_num_seqs']} against {v['dense_max_num_seqs']}{at_same}",
                "holds under a condition",
            )
        )
    if "fp8-vs-bf16" in by:
        f = by["fp8-vs-bf16"]
        bands = f.values["bands"]
        held = f.rows.groupby("band")["batch_size"].unique() if f.rows is not None and len(f.rows) else {}
        small_sizes = ", ".join(str(int(b)) for b in sorted(held.get("8-16", []))) if len(held) else "?"
        mid = bands.get("17-64", {})
        out.append(
            Statement(
                "fp8-vs-bf16",
                "the paper; the companion post: Precision",
                "FP8 loses at batch size 8-16, then wins at batch sizes from 32",
                f"the analysis keeps batches of at least 16, so the band 8-16 holds batch {small_sizes} only; at batch "
                f"17-64 FP8 uses less energy in {mid.get('fp8_wins', 0)} of {mid.get('pairs', 0)} pairs (median ratio "
                f"{mid.get('energy_ratio', {}).get('median', float('nan')):.2f}), at 65-256 in "
                f"{bands.get('65-256', {}).get('fp8_wins', 0)} of {bands.get('65-256', {}).get('pairs', 0)}",
                "differs",
            )
        )
    if "multimodal-overhead" in by:
        v = by["multimodal-overhead"].values
        out.append(
            Statement(
                "multimodal-overhead",
                "the companion post: Multimodal LLM",
                "video uses 1.3-15.0x the energy per token of text",
                f"the largest video ratio is {v['video_over_text']['max']:.2f}x (about 15x, as the paper rounds it, "
                f"but not 15.0x); the range covers {v['pairs']} pairs"
                + (
                    f", leaving out {', '.join(names.get(m, m) for m in v.get('excluded', {}))} (no B200 GPU count with "  # noqa: E501
                    "all three tasks)"
                    if v.get("excluded")
                    else ""
                ),
                "differs",
            )
        )
    return out


def statements_table(rows: Iterable[Statement]) -> pd.DataFrame:
    """The statements as a table: finding, where, says, data, verdict."""
    columns = ["finding", "where", "says", "data", "verdict"]
    return pd.DataFrame([{c: getattr(s, c) for c in columns} for s in rows], columns=columns)


def diffusion_batching(diffusion: pd.DataFrame, task: str = "text-to-image", gpu: str = "B200") -> pd.DataFrame:
    """Per model and GPU count: energy per output at the smallest batch over the lowest energy per output at any
    batch (ratio, no unit; 1 means batching saves nothing), over all parallel degrees."""
    rows = diffusion[(diffusion["task"] == task) & (diffusion["gpu_model"] == gpu)]
    out = []
    for (model, count), group in rows.groupby(["model_id", "num_gpus"], sort=True):
        small = group[group["batch_size"] == group["batch_size"].min()][an.ENERGY_PER_OUTPUT].min()
        best = group.sort_values(an.ENERGY_PER_OUTPUT).iloc[0]
        out.append(
            {
                "model_id": model,
                "nickname": best.get("nickname", model),
                "num_gpus": count,
                "smallest_batch": int(group["batch_size"].min()),
                "best_batch": int(best["batch_size"]),
                "ratio": float(small / best[an.ENERGY_PER_OUTPUT]),
            }
        )
    return pd.DataFrame(out, columns=["model_id", "nickname", "num_gpus", "smallest_batch", "best_batch", "ratio"])


@dataclass(frozen=True)
class Caveat:
    """A condition a claim needs, found in the data: the claim, the condition and the numbers."""

    finding: str
    claim: str
    condition: str
    # per condition column, the levels the condition states and the words naming each (claim_conditions.Stated)
    stated: Stated = field(default_factory=dict)
    evidence: Evidence | None = field(default=None, compare=False, repr=False)  # the rows the claim is made from

    @property
    def sentence(self) -> str:
        """The claim with its condition, in words."""
        return f"{self.claim}: {self.condition}"


def caveats(found: Iterable[F.Finding], llm: pd.DataFrame, diffusion: pd.DataFrame) -> list[Caveat]:
    """Conditions the chapters' claims need, each computed from the published rows."""
    by = {f.id: f for f in found}
    out: list[Caveat] = []
    series = batch_effect_series(llm)
    if len(series):
        overall = batch_effect_summary(series)
        overall = overall[overall["task_name"] == "all tasks"].set_index("gpu_model")
        if {"H100", "B200"} <= set(overall.index):
            stats = overall.to_dict("index")
            h, b = stats["H100"], stats["B200"]
            largest = series.groupby("gpu_model")["large_batch"].median()
            evidence = batch_effect_evidence(series)
            out.append(
                Caveat(
                    "batch-size-effect",
                    "batching cuts energy per token severalfold",
                    f"the effect depends on the GPU generation: median {_x(b['median'])} on B200 ({int(b['series'])} "
                    f"series, {100 * b['share_at_least_3']:.0f}% at least 3x) against {_x(h['median'])} on H100 "
                    f"({int(h['series'])} series, {100 * h['share_at_least_3']:.0f}% at least 3x); the median series "
                    f"reaches batch {largest['B200']:,.0f} on B200 against {largest['H100']:,.0f} on H100; and on the "
                    f"GPU count: median {batch_effect_by_count(evidence)}",
                    batch_effect_stated(evidence, ("H100", "B200")),
                    evidence,
                )
            )
    table = diffusion_batching(diffusion)
    if len(table):
        most = int(table["num_gpus"].max())
        one, many = table[table["num_gpus"] == 1], table[table["num_gpus"] == most]
        top = many.loc[many["ratio"].idxmax()] if len(many) else None
        if len(one) and top is not None:
            out.append(
                Caveat(
                    "text-to-image-spread",
                    "batching helps images far less than language models",
                    f"true on 1 x B200 (batch saves at most {_x(one['ratio'].max())}), not on {most} x B200, where "
                    f"batching cuts energy per image {_x(many['ratio'].min())} to {_x(many['ratio'].max())} "
                    f"({top['nickname']} the most): split over many GPUs, one image leaves each GPU underfed",
                    {"num_gpus": {1: "1 x B200", most: f"{most} x B200"}},
                    Evidence(table, "ratio", statistic="max", conditions=("num_gpus",)),
                )
            )
    if "fp8-vs-bf16" in by and by["fp8-vs-bf16"].rows is not None:
        rows = by["fp8-vs-bf16"].rows
        sizes = sorted(int(b) for b in rows.loc[rows["band"] == "8-16", "batch_size"].unique())
        if sizes:
            out.append(
                Caveat(
                    "fp8-vs-bf16",
                    "FP8 costs more energy per token at batch 8-16",
                    f"the pairs of that band are at batch {', '.join(map(str, sizes))} only (batches below 16 are left "
                    "out, as the paper does), so the band says nothing about batch 8",
                    evidence=Evidence(
                        rows[rows["band"] == "8-16"], "energy_ratio", conditions=("gpu_model", "num_gpus")
                    ),
                )
            )
    if "multimodal-overhead" in by and by["multimodal-overhead"].values.get("excluded"):
        names = _model_names([llm])
        excluded = by["multimodal-overhead"].values["excluded"]
        out.append(
            Caveat(
                "multimodal-overhead",
                "image and video chat cost more per token than text chat",
                "measured on B200 pairs only; "
                + "; ".join(f"{names.get(m, m)} is left out: {why}" for m, why in excluded.items()),
                evidence=rows_evidence(by["multimodal-overhead"], "video_over_text", ("num_gpus",)),
            )
        )
    if "moe-vs-dense" in by:
        dense, moe = MOE_PAIR
        out.append(
            Caveat(
                "moe-vs-dense",
                "an MoE model costs less energy per token than a dense one of similar size",
                f"one pair ({_model_names([llm]).get(dense, dense)} against {_model_names([llm]).get(moe, moe)}) on one "  # noqa: E501
                "GPU, one task and one precision; the ratio mixes the active weights with the batch each model reached",
            )
        )
    if "multi-gpu" in by:
        v = by["multi-gpu"].values
        out.append(
            Caveat(
                "multi-gpu",
                "more GPUs raise energy per token",
                f"at the same batch size; counting the larger batches extra memory allows, the larger GPU count reaches "  # noqa: E501
                f"a lower minimum in {100 * v['share_more_gpus_lower_min_energy']:.0f}% of (model, task, GPU) cases",
                evidence=rows_evidence(by["multi-gpu"], "energy_ratio", ("gpu_model",)),
            )
        )
    return out


def caveats_table(rows: Iterable[Caveat]) -> pd.DataFrame:
    """The caveats as a table: finding, claim, condition."""
    columns = ["finding", "claim", "condition"]
    return pd.DataFrame([{c: getattr(r, c) for c in columns} for r in rows], columns=columns)
