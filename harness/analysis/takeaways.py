"""The findings at a glance: one row per knob (what it changes, by how much, where, what to do), and the batch
effect over every published series.

Every number comes from the findings (:mod:`harness.analysis.findings`) or the published table, each time the
book is built; only the words around them are written here. Pure functions over findings and DataFrames::

    found = findings.compute_all(llm, diffusion)
    table = takeaways.takeaways(found, llm)       # knob, effect, condition, what to do, finding, chapter
    series = takeaways.batch_effect_series(llm)   # every series' batch effect, with its task and GPU
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from harness.analysis import findings as F
from harness.analysis import tables as an
from harness.analysis.claim_conditions import Evidence, Stated, gpus_text, levels
from harness.analysis.findings.wording import energy_text, ratio_text
from harness.vocabulary.tasks import TASK_NAMES

# The chapter (notebook name in book/notebooks.yml) that works each finding through, for links.
CHAPTER_OF: dict[str, str] = {
    "reasoning-vs-chat": "llm-reasoning",
    "qwen3-32b-b200": "llm-reasoning",
    "batch-size-effect": "llm-chat",
    "multimodal-overhead": "multimodal-code",
    "text-to-image-spread": "text-to-image",
    "text-to-video-range": "text-to-video",
    "moe-vs-dense": "hardware-precision",
    "fp8-vs-bf16": "hardware-precision",
    "multi-gpu": "hardware-precision",
    "b200-vs-h100": "hardware-precision",
}

# The paper's band for the batch effect ("3 to 5x"), drawn beside the distribution.
PAPER_BATCH_BAND_X = (3.0, 5.0)

MOE_PAIR = ("Qwen/Qwen3-32B", "Qwen/Qwen3-30B-A3B-Thinking-2507")  # dense, MoE (the paper's comparison)


@dataclass(frozen=True)
class Takeaway:
    """One row of the findings table: a knob, what it does to energy, where that holds, and what to do."""

    knob: str  # the choice, in a reader's words
    layer: str  # algorithm, software or hardware (the framework's layers)
    effect: str  # the effect size, with its numbers
    condition: str  # where the data show it (GPU, count, batch, task, selection)
    what_to_do: str  # the practical consequence
    finding: str  # the finding id the numbers come from
    # per condition column, the levels the effect is stated for and the words naming each (claim_conditions.Stated)
    stated: Stated = field(default_factory=dict)
    evidence: Evidence | None = field(default=None, compare=False, repr=False)  # the rows the effect comes from

    @property
    def chapter(self) -> str:
        return CHAPTER_OF.get(self.finding, "")

    @property
    def sentence(self) -> str:
        """The claim in words: its effect and where the data show it."""
        return f"{self.effect}; {self.condition}"


_x = ratio_text  # a factor as the book writes it: 3.97x, 25.2x, 174x
_joules = energy_text  # J, kJ or MJ at three significant digits


def _pct(fraction: float) -> str:
    return f"{100 * fraction:+.0f}%"


def moe_same_batch(llm: pd.DataFrame, dense: str = MOE_PAIR[0], moe: str = MOE_PAIR[1]) -> dict:
    """Dense over MoE energy per token at the batch sizes both reached (problem solving, 1 x B200, BF16), and the
    split of the ratio of the two minima into the same-batch saving and the saving of the MoE's larger batch.

    Returns ``{"batches": [...], "min": r, "max": r, "at_largest_common": r, "largest_common": b,
    "moe_best_batch": b, "batch_gain": r}`` where ``batch_gain`` is the MoE's energy per token at the largest
    common batch over its minimum (ratios, no unit), so ``at_largest_common * batch_gain`` is the ratio of the two
    minima when the dense model's cheapest batch is the largest common one; an empty dict when the two models share
    no batch size there."""
    s = llm[
        (llm["task"] == "gpqa")
        & (llm["gpu_model"] == "B200")
        & (llm["num_gpus"] == 1)
        & (llm["weight_precision"] == "bfloat16")
        & llm["model_id"].isin([dense, moe])
    ]
    wide = s.pivot_table(index="batch_size", columns="model_id", values=an.ENERGY_PER_TOKEN)
    if not {dense, moe} <= set(wide.columns):
        return {}
    ratio = (wide[dense] / wide[moe]).dropna()
    if ratio.empty:
        return {}
    largest = int(ratio.index.max())
    moe_curve = wide[moe].dropna()
    return {
        "batches": [int(b) for b in ratio.index],
        "min": float(ratio.min()),
        "max": float(ratio.max()),
        "at_largest_common": float(ratio.loc[largest]),
        "largest_common": largest,
        "moe_best_batch": int(str(min(moe_curve.items(), key=lambda kv: kv[1])[0])),
        "batch_gain": float(moe_curve.loc[largest] / moe_curve.min()),
    }


def _band_batches(finding: F.Finding, band: str) -> str:
    """The batch sizes a band of the FP8 finding actually holds ("16", "32 to 64"), from its pairs."""
    rows = finding.rows
    if rows is None or "band" not in rows.columns:
        return band
    sizes = sorted(int(b) for b in rows.loc[rows["band"] == band, "batch_size"].unique())
    if not sizes:
        return band
    return str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"


def _by_id(found: Iterable[F.Finding]) -> dict[str, F.Finding]:
    return {f.id: f for f in found}


def takeaways(found: Iterable[F.Finding], llm: pd.DataFrame | None = None) -> list[Takeaway]:
    """One :class:`Takeaway` per knob the findings cover, in the framework's layer order.

    ``llm``: the published LLM rows (for the MoE same-batch split); None leaves that split out."""
    by = _by_id(found)
    rows: list[Takeaway] = []
    if "reasoning-vs-chat" in by:
        v = by["reasoning-vs-chat"].values
        per_token = v["reasoning_mean_energy_per_token_joules"] / v["chat_mean_energy_per_token_joules"]
        rows.append(
            Takeaway(
                "Reasoning on (the task's output length)",
                "algorithm",
                f"{_x(v['energy_per_response_ratio'])} the energy per response: {_x(v['output_tokens_ratio'])} the "
                f"tokens, each {_x(per_token)} dearer",
                f"B200, problem solving against chat, mean over {v['reasoning_models']} and {v['chat_models']} models, "
                "each model at its cheapest configuration",
                "Keep reasoning off where the task allows it; energy per response grows with every token generated.",
                "reasoning-vs-chat",
            )
        )
    if "qwen3-32b-b200" in by:
        v = by["qwen3-32b-b200"].values
        rows.append(
            Takeaway(
                "Long contexts (memory taken by the KV cache)",
                "algorithm",
                f"batch capped at {v['reasoning_max_num_seqs']} against {v['chat_max_num_seqs']}; "
                f"{_x(v['energy_per_token_ratio'])} the energy per token ({_x(v['energy_per_token_ratio_at_same_batch'])} "  # noqa: E501
                f"at the same batch {v['reasoning_max_num_seqs']})",
                "Qwen3 32B on 1 x B200, problem solving against chat, each at its largest batch",
                "Give long-output work more memory per request (more or larger GPUs) so that the batch can grow.",
                "qwen3-32b-b200",
            )
        )
    if "moe-vs-dense" in by:
        v = by["moe-vs-dense"].values
        same = moe_same_batch(llm) if llm is not None else {}
        split = (
            (
                f" = {_x(same['at_largest_common'])} at the same batch {same['largest_common']} x "
                f"{_x(same['batch_gain'])} from the larger batch ({same['moe_best_batch']}) the MoE's smaller weights "
                f"leave room for; at the batches both ran, {_x(same['min'])} to {_x(same['max'])}"
            )
            if same
            else ""
        )
        rows.append(
            Takeaway(
                "Mixture of experts instead of dense",
                "algorithm",
                f"dense {_x(v['dense_over_moe'])} the energy per token of the MoE{split}",
                f"Qwen3 32B against Qwen3 30B A3B Thinking, problem solving, 1 x B200, BF16, each at its cheapest batch "  # noqa: E501
                f"({v['dense_max_num_seqs']} and {v['moe_max_num_seqs']})",
                "Prefer an MoE of similar total size, and serve it at the large batch its smaller active weights allow.",  # noqa: E501
                "moe-vs-dense",
            )
        )
    if "fp8-vs-bf16" in by:
        bands = by["fp8-vs-bf16"].values["bands"]
        small, large = bands.get("8-16", {}), bands.get("65-256", {})
        if small.get("pairs") and large.get("pairs"):
            rows.append(
                Takeaway(
                    "FP8 weights instead of BF16",
                    "algorithm",
                    f"{_pct(small['energy_ratio']['median'] - 1)} energy per token at batch "
                    f"{_band_batches(by['fp8-vs-bf16'], '8-16')} (FP8 wins "
                    f"{small['fp8_wins']} of {small['pairs']}), {_pct(large['energy_ratio']['median'] - 1)} at batch 65-256 "  # noqa: E501
                    f"(wins {large['fp8_wins']} of {large['pairs']})",
                    "same base model, task, GPU, GPU count and batch; batches of at least 16; Qwen3 Coder 480B left out",  # noqa: E501
                    "Use FP8 only where the batch is large; at small batches its overhead costs more than it saves.",
                    "fp8-vs-bf16",
                    {
                        "band": {
                            "8-16": f"at batch {_band_batches(by['fp8-vs-bf16'], '8-16')}",
                            "65-256": "at batch 65-256",
                        }
                    },
                    _fp8_evidence(by["fp8-vs-bf16"]),
                )
            )
    if "batch-size-effect" in by:
        v = by["batch-size-effect"].values
        st = v["all_series"]
        per_gpu, stated, evidence = "", {}, None
        if llm is not None:
            series = batch_effect_series(llm)
            overall = batch_effect_summary(series)
            overall = overall[overall["task_name"] == "all tasks"]
            evidence = batch_effect_evidence(series)
            per_gpu = (
                "; median "
                + ", ".join(
                    f"{_x(r['median'])} on {r['gpu_model']} ({r['series']} series)" for _, r in overall.iterrows()
                )
                + "; by GPU count, median "
                + batch_effect_by_count(evidence)
            )
            stated = batch_effect_stated(evidence, overall["gpu_model"])
        rows.append(
            Takeaway(
                "Batch size (the most requests vLLM runs at once)",
                "software",
                f"median {_x(st['median'])} less energy per token from a small to the largest batch "
                f"(range {_x(st['min'])} to {_x(st['max'])}; the paper's two series "
                + " and ".join(_x(h["ratio"]) for h in v["highlighted"].values())
                + ")"
                + per_gpu,
                f"all {st['n']} published language-model series, smallest batch of at least 16 against the largest",
                "Run the largest batch your latency target and memory allow.",
                "batch-size-effect",
                stated,
                evidence,
            )
        )
    if "multimodal-overhead" in by:
        v = by["multimodal-overhead"].values
        img, vid = v["image_over_text"], v["video_over_text"]
        rows.append(
            Takeaway(
                "Image or video inputs (work on the CPU)",
                "software",
                f"image chat {_x(img['min'])} to {_x(img['max'])} (median {_x(img['median'])}), video chat "
                f"{_x(vid['min'])} to {_x(vid['max'])} (median {_x(vid['median'])}) the energy per token of text chat",
                f"{v['pairs']} vision-language models against their text-only siblings on B200, at the text model's "
                "cheapest GPU count",
                "Feed the GPU: CPU-side preprocessing caps the batch, and a faster GPU alone will wait longer.",
                "multimodal-overhead",
                evidence=rows_evidence(by["multimodal-overhead"], "video_over_text", ("num_gpus",)),
            )
        )
    if "multi-gpu" in by:
        v = by["multi-gpu"].values
        parts = [f"{d['energy_rises']} of {d['pairs']} same-batch pairs on {gpu}" for gpu, d in v["by_gpu"].items()]
        oss = v.get("gpt_oss_120b_gpqa_h100")
        unlock = (
            (
                f"; when memory capped the batch, a second GPU cut the minimum {_x(1 / oss['min_energy_ratio'])} "
                f"(gpt-oss 120B, 1 to 2 x H100, batch {oss['max_batch_1_gpu']} to {oss['max_batch_2_gpus']})"
            )
            if oss
            else ""
        )
        rows.append(
            Takeaway(
                "More GPUs per copy of the model",
                "hardware",
                "more energy per token at the same batch in " + " and ".join(parts) + unlock,
                "problem solving, chat and code; every pair of GPU counts at the same batch size",
                "Use the fewest GPUs that hold the model and the batch you need; add GPUs only when memory caps the batch.",  # noqa: E501
                "multi-gpu",
                {"gpu_model": {gpu: f"on {gpu}" for gpu in v["by_gpu"]}},
                rows_evidence(by["multi-gpu"], "energy_ratio", ("gpu_model",)),
            )
        )
    if "b200-vs-h100" in by:
        v = by["b200-vs-h100"].values
        parts = []
        for fam, name in FAMILY_WORDS.items():
            if fam in v:
                parts.append(
                    f"{name} {_pct(-v[fam]['gain']['median'])} (B200 wins {v[fam]['b200_wins']} of "
                    f"{v[fam]['comparisons']})"
                )
        tight = v.get("llm", {}).get("by_target", {}).get("50")
        tail = (f"; at 50 ms B200 wins {tight['b200_wins']} of {tight['n']}") if tight else ""
        rows.append(
            Takeaway(
                "B200 instead of H100",
                "hardware",
                "median change in energy: " + ", ".join(parts),
                "each GPU's cheapest configuration (any GPU count and batch) under the same latency target" + tail,
                "Prefer B200 for language models; for video the two GPUs cost about the same energy.",
                "b200-vs-h100",
                {"family": {fam: name for fam, name in FAMILY_WORDS.items() if fam in v}},
                _b200_evidence(by["b200-vs-h100"]),
            )
        )
    if "text-to-image-spread" in by and "text-to-video-range" in by:
        img, vid = by["text-to-image-spread"].values, by["text-to-video-range"].values
        rows.append(
            Takeaway(
                "The diffusion model (steps, resolution, frames)",
                "algorithm",
                f"images {_joules(img['min_energy_per_image_joules'])} to {_joules(img['max_energy_per_image_joules'])} "  # noqa: E501
                f"({_x(img['spread'])}); videos {_joules(vid['min_energy_per_video_joules'])} to "
                f"{_joules(vid['max_energy_per_video_joules'])} ({_x(vid['range'])}); the dearest video "
                f"{_x(vid['dearest_video_over_dearest_image'])} the dearest image",
                f"B200, {img['models']} image and {vid['models']} video models, each at its cheapest configuration",
                "Choose the model, its steps, resolution and frame count for the output you need: they set the work.",
                "text-to-video-range",
            )
        )
    order = {"algorithm": 0, "software": 1, "hardware": 2}
    return sorted(rows, key=lambda t: order.get(t.layer, 3))


def takeaways_table(rows: Iterable[Takeaway]) -> pd.DataFrame:
    """The takeaways as a table: knob, layer, effect, condition, what_to_do, finding, chapter."""
    columns = ["knob", "layer", "effect", "condition", "what_to_do", "finding", "chapter"]
    return pd.DataFrame([{c: getattr(t, c) for c in columns} for t in rows], columns=columns)


# ------------------------------------------------------------------ the data each claim is made from

FAMILY_WORDS: dict[str, str] = {"llm": "language models", "text-to-image": "images", "text-to-video": "videos"}


def rows_evidence(finding: F.Finding, value: str, conditions: tuple[str, ...]) -> Evidence | None:
    """A finding's own rows as a claim's evidence (``value``: a ratio column, no unit); None without such rows."""
    rows = finding.rows
    return None if rows is None or value not in rows.columns else Evidence(rows, value, conditions=conditions)


def _fp8_evidence(finding: F.Finding) -> Evidence | None:
    """FP8 over BF16 energy per token (no unit) per pair, split by batch band, GPU and GPU count."""
    return rows_evidence(finding, "energy_ratio", ("band", "gpu_model", "num_gpus"))


def _b200_evidence(finding: F.Finding) -> Evidence | None:
    """H100 over B200 energy per output (no unit; from ``gain`` = (H100 - B200) / H100) per comparison, split by
    family and precision."""
    rows = finding.rows
    if rows is None or "gain" not in rows.columns:
        return None
    ratio = rows.assign(h100_over_b200=1 / (1 - rows["gain"]))
    return Evidence(ratio, "h100_over_b200", conditions=("family", "weight_precision"))


def batch_effect_evidence(series: pd.DataFrame) -> Evidence:
    """The batch effect of every series (:func:`batch_effect_series`; ratio, no unit), split by GPU and GPU count."""
    return Evidence(series, "ratio", conditions=("gpu_model", "num_gpus"))


def batch_effect_by_count(evidence: Evidence) -> str:
    """The median batch effect per GPU count: ``"3.46x on 1 GPU (51 series), 3.91x on 2 GPUs (21 series)"``."""
    table = levels(evidence, "num_gpus")
    return ", ".join(f"{_x(r.stat)} on {gpus_text(r.level)} ({r.n} series)" for r in table.itertuples())


def batch_effect_stated(evidence: Evidence, gpus: Iterable[str]) -> dict[str, dict]:
    """The conditions a batch-effect sentence states: each GPU model and each GPU count of the evidence."""
    return {
        "gpu_model": {g: f"on {g}" for g in gpus},
        "num_gpus": {r.level: f"on {gpus_text(r.level)}" for r in levels(evidence, "num_gpus").itertuples()},
    }


def batch_effect_series(llm: pd.DataFrame, highlighted: Mapping[str, tuple] | None = None) -> pd.DataFrame:
    """Every published language-model series' batch effect (:data:`tables.BATCH_EFFECT_DEFINITION`), with the
    task's name, the GPU model and count, whether it lies in the paper's 3-5x band, and the paper's two series.

    Columns: those of :func:`findings.batch_size_effect_table` plus ``task_name``, ``nickname`` (where the table
    has it), ``in_paper_band`` (bool) and ``paper_example`` (bool); ``ratio`` has no unit."""
    table = F.batch_size_effect_table(llm)
    if table.empty:
        return table.assign(task_name=[], in_paper_band=[], paper_example=[])
    table["task_name"] = table["task"].map(lambda t: TASK_NAMES.get(t, t))
    if "nickname" in llm.columns:
        names = llm.drop_duplicates("model_id").set_index("model_id")["nickname"]
        table["nickname"] = table["model_id"].map(names).fillna(table["model_id"])
    else:
        table["nickname"] = table["model_id"]
    low, high = PAPER_BATCH_BAND_X
    table["in_paper_band"] = table["ratio"].between(low, high)
    examples = set(
        (
            highlighted
            or {
                "DeepSeek R1": ("deepseek-ai/DeepSeek-R1-0528", "gpqa", "B200", 8),
                "Qwen3 Coder 30B A3B": ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "sourcegraph-fim", "B200", 1),
            }
        ).values()
    )
    keys = list(zip(table["model_id"], table["task"], table["gpu_model"], table["num_gpus"], strict=False))
    table["paper_example"] = [k in examples for k in keys]
    return table


def batch_effect_summary(series: pd.DataFrame) -> pd.DataFrame:
    """The batch effect per GPU model and task, then per GPU model over all tasks: series count, median, lowest,
    highest and the share at least 3x (ratios, no unit)."""
    if series.empty:
        return pd.DataFrame(columns=["gpu_model", "task_name", "series", "median", "min", "max", "share_at_least_3"])

    def stats(group: pd.DataFrame) -> dict:
        r = group["ratio"]
        return {
            "series": len(r),
            "median": float(r.median()),
            "min": float(r.min()),
            "max": float(r.max()),
            "share_at_least_3": float((r >= 3).mean()),
        }

    rows = []
    for gpu in [g for g in ("H100", "B200") if g in set(series["gpu_model"])] + sorted(
        set(series["gpu_model"]) - {"H100", "B200"}
    ):
        part = series[series["gpu_model"] == gpu]
        for task, group in part.groupby("task_name", sort=False):
            rows.append({"gpu_model": gpu, "task_name": task} | stats(group))
        rows.append({"gpu_model": gpu, "task_name": "all tasks"} | stats(part))
    return pd.DataFrame(rows)
