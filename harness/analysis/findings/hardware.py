"""The hardware and precision findings: B200 against H100 at matched latency, and FP8 against BF16 weights by
batch-size band. Energies are J per token (LLM) or J per image or video (diffusion)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.analysis import paper as P
from harness.analysis.findings.record import Finding
from harness.analysis.findings.wording import percent_text, stats
from harness.analysis.tables.choice import compare_at_latency
from harness.analysis.tables.columns import ENERGY_PER_TOKEN as E_TOKEN
from harness.errors import HarnessError

# Latency targets of the B200-H100 comparison: median ITL in ms (LLM), whole-batch time in s (diffusion).
LATENCY_TARGETS = {
    "llm_median_itl_ms": (50, 100, 250),
    "text-to-image_batch_latency_s": (10, 30, 60),
    "text-to-video_batch_latency_s": (100, 500, 1000),
}
# Batch-size bands of the FP8-BF16 comparison: (smallest batch, largest batch, name).
FP8_BANDS = ((8, 16, "8-16"), (17, 64, "17-64"), (65, 256, "65-256"))


def b200_vs_h100_table(llm: pd.DataFrame, diffusion: pd.DataFrame) -> pd.DataFrame:
    """Every (model, precision, task, target) comparison of H100 (A) and B200 (B) at a latency target
    (:data:`LATENCY_TARGETS`); ``gain`` is (H100 - B200) / H100 of the energy per output."""
    by = ("model_id", "weight_precision", "task")
    parts = [
        compare_at_latency(
            llm[llm["task"].isin(["gpqa", "lm-arena-chat"])],
            "gpu_model",
            "H100",
            "B200",
            LATENCY_TARGETS["llm_median_itl_ms"],
            by=by,
        )
    ]
    for task in ("text-to-image", "text-to-video"):
        parts.append(
            compare_at_latency(
                diffusion[diffusion["task"] == task],
                "gpu_model",
                "H100",
                "B200",
                LATENCY_TARGETS[f"{task}_batch_latency_s"],
                by=by,
            )
        )
    parts = [p for p in parts if len(p)]
    if not parts:
        raise HarnessError("no (model, task) measured on both H100 and B200 meets any latency target in this selection")
    table = pd.concat(parts, ignore_index=True)
    table["family"] = np.where(table["task"].isin(["gpqa", "lm-arena-chat"]), "llm", table["task"])
    return table


def b200_vs_h100(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """B200 against H100 at matched latency: per family, how many comparisons B200 wins and the gain it gets."""
    table = b200_vs_h100_table(llm, diffusion)
    values: dict[str, Any] = {}
    for family, part in table.groupby("family", sort=False):
        values[family] = {
            "comparisons": len(part),
            "b200_wins": int((part["gain"] > 0).sum()),
            "share_b200_wins": float((part["gain"] > 0).mean()),
            "gain": stats(part["gain"]),
            "by_target": {
                str(t): stats(p["gain"]) | {"b200_wins": int((p["gain"] > 0).sum())} for t, p in part.groupby("target")
            },
        }
    names = {
        "llm": "language models (problem solving and chat; median ITL at 50/100/250 ms)",
        "text-to-image": "images (batch time at 10/30/60 s)",
        "text-to-video": "videos (batch time at 100/500/1,000 s)",
    }
    parts = []
    for fam, v in values.items():
        g = v["gain"]
        parts.append(
            f"{names[fam]}: B200 uses less energy in {v['b200_wins']} of {v['comparisons']} comparisons, "
            f"median change {percent_text(g['median'])} (range {percent_text(g['min'])} to "
            f"{percent_text(g['max'])})"
        )
    summary = "At matched latency targets, " + "; ".join(parts) + "."
    llm_med = values.get("llm", {}).get("gain", {}).get("median")
    diff_meds = [values[f]["gain"]["median"] for f in ("text-to-image", "text-to-video") if f in values]
    comparison = (
        f"B200 loses {int((table['gain'] <= 0).sum())} of {len(table)} comparisons; "
        f"median LLM gain "
        f"{percent_text(llm_med)} against {', '.join(percent_text(m) for m in diff_meds)} for images and "
        f"videos."
    )
    filters = {
        "tasks": ["gpqa", "lm-arena-chat", "text-to-image", "text-to-video"],
        "targets": LATENCY_TARGETS,
        "pairs": "(model, precision) measured on both GPUs",
        "selection": "per GPU, the lowest-energy configuration (any GPU count, any batch) meeting the target",
        "gain": "(H100 - B200) / H100 of energy per token (LLM) or per output (diffusion)",
    }
    return Finding(
        id="b200-vs-h100",
        title="B200 against H100 at matched latency",
        values=values,
        filters=filters,
        method="Lowest-energy configuration per GPU under each latency target; gain = (H100 - B200) / H100.",
        paper=P.claim("b200-vs-h100"),
        comparison=comparison,
        summary=summary,
        rows=table.drop(columns=["row_a", "row_b"]),
    )


def fp8_vs_bf16_table(llm: pd.DataFrame) -> pd.DataFrame:
    """FP8 and BF16 runs paired on base model, task, GPU model, GPU count and batch (batch >= 16, Qwen3 Coder
    480B left out): their energy per token (J) and median ITL (ms), the ratios FP8 / BF16 and the batch band."""
    keys = ["base_model_id", "task", "gpu_model", "num_gpus", "batch_size"]
    s = llm[~llm["base_model_id"].str.contains("Qwen3-Coder-480B")]
    fp8, bf16 = s[s["weight_precision"] == "fp8"], s[s["weight_precision"] == "bfloat16"]
    cols = [*keys, E_TOKEN, "median_itl_ms", "avg_power_watts"]
    pairs = fp8[cols].merge(bf16[cols], on=keys, suffixes=("_fp8", "_bf16"))
    pairs = pairs[pairs["batch_size"] >= 16].copy()
    pairs["energy_ratio"] = pairs[f"{E_TOKEN}_fp8"] / pairs[f"{E_TOKEN}_bf16"]
    pairs["itl_ratio"] = pairs["median_itl_ms_fp8"] / pairs["median_itl_ms_bf16"]
    pairs["band"] = None
    for lo, hi, name in FP8_BANDS:
        pairs.loc[pairs["batch_size"].between(lo, hi), "band"] = name
    return pairs.reset_index(drop=True)


def fp8_vs_bf16(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """FP8 against BF16 weights per batch band (:data:`FP8_BANDS`): how often FP8 uses less energy per token,
    and the median ratios of energy per token and of median ITL."""
    table = fp8_vs_bf16_table(llm)
    bands: dict[str, dict[str, Any]] = {}
    for _, _, name in FP8_BANDS:
        part = table[table["band"] == name]
        bands[name] = {
            "pairs": len(part),
            "fp8_wins": int((part["energy_ratio"] < 1).sum()),
            "energy_ratio": stats(part["energy_ratio"]),
            "itl_ratio": stats(part["itl_ratio"]),
        }
    outside = table[table["band"].isna()]
    values: dict[str, Any] = {
        "pairs": len(table),
        "bands": bands,
        "pairs_outside_bands": len(outside),
        "models": sorted(table["base_model_id"].unique()),
    }
    summary = (
        "FP8 against BF16 at the same model, task, GPU, GPU count and batch: "
        + "; ".join(
            f"batch {name}: FP8 uses less energy per token in {b['fp8_wins']} of {b['pairs']} pairs, median ratio "
            f"{b['energy_ratio']['median']:.2f} (range {b['energy_ratio']['min']:.2f} to {b['energy_ratio']['max']:.2f}), "  # noqa: E501
            f"median ITL ratio {b['itl_ratio']['median']:.2f}"
            for name, b in bands.items()
            if b["pairs"]
        )
        + "."
    )
    small, large = bands["8-16"], bands["65-256"]
    comparison = (
        f"FP8's median energy ratio is {small['energy_ratio']['median']:.2f} at batch 8-16 "
        f"and {large['energy_ratio']['median']:.2f} at 65-256, so the effect does turn on batch size."
        if small["pairs"] and large["pairs"]
        else "Not enough pairs in the smallest or largest band."
    )
    filters = {
        "pairing": "same base model, task, GPU model, GPU count and batch size",
        "batch_size": ">= 16",
        "excluded": "Qwen3 Coder 480B (outlier)",
        "bands": [b[2] for b in FP8_BANDS],
    }
    return Finding(
        id="fp8-vs-bf16",
        title="FP8 against BF16 by batch-size band",
        values=values,
        filters=filters,
        method="Ratio FP8 / BF16 of energy per token and of median ITL per matched pair.",
        paper=P.claim("fp8-vs-bf16"),
        comparison=comparison,
        summary=summary,
        rows=table,
    )
