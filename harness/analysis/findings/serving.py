"""The serving findings: how the batch size moves energy per token, and what more GPUs cost at the same batch
and unlock in larger batches. Energies are J per token."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.analysis import paper as P
from harness.analysis.findings.record import Finding
from harness.analysis.findings.wording import (
    nickname,
    percent_text,
    ratio_text,
    stats,
    task_name,
)
from harness.analysis.tables.choice import batch_effect_pair
from harness.analysis.tables.columns import ENERGY_PER_TOKEN as E_TOKEN
from harness.analysis.tables.columns import SERIES_KEYS, group_keys


def batch_size_effect_table(llm: pd.DataFrame) -> pd.DataFrame:
    """Every LLM series' batch effect (:data:`harness.analysis.tables.BATCH_EFFECT_DEFINITION`): energy per
    token (J) at the smallest batch >= 16 over that at the largest batch, with both rows' average power (W)."""
    rows = []
    keys = group_keys(SERIES_KEYS, llm)
    for key, group in llm.groupby(keys, sort=True):
        pair = batch_effect_pair(group)
        if pair is None:
            continue
        lo, hi = pair
        rows.append(
            dict(zip(keys, key, strict=False))
            | {
                "small_batch": int(lo["batch_size"]),
                "large_batch": int(hi["batch_size"]),
                "small_energy_per_token_joules": float(lo[E_TOKEN]),
                "large_energy_per_token_joules": float(hi[E_TOKEN]),
                "small_avg_power_watts": float(lo["avg_power_watts"]),
                "large_avg_power_watts": float(hi["avg_power_watts"]),
                "ratio": float(lo[E_TOKEN] / hi[E_TOKEN]),
            }
        )
    return pd.DataFrame(rows)


def batch_size_effect(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """The batch effect over every LLM series, and for the two series the paper names."""
    table = batch_size_effect_table(llm)
    named = {
        "DeepSeek R1 on problem solving, 8 x B200": ("deepseek-ai/DeepSeek-R1-0528", "gpqa", "B200", 8),
        "Qwen3 Coder 30B A3B on code completion, 1 x B200": (
            "Qwen/Qwen3-Coder-30B-A3B-Instruct",
            "sourcegraph-fim",
            "B200",
            1,
        ),
    }
    idx = table.set_index(list(SERIES_KEYS))
    highlighted = {}
    for name, key in named.items():
        if key in idx.index:
            r = idx.loc[key]
            highlighted[name] = {
                "small_batch": int(r["small_batch"]),
                "large_batch": int(r["large_batch"]),
                "ratio": float(r["ratio"]),
            }
    values: dict[str, Any] = {
        "series": len(table),
        "highlighted": highlighted,
        "all_series": stats(table["ratio"]),
        "share_between_3_and_5": float(table["ratio"].between(3, 5).mean()),
        "share_at_least_3": float((table["ratio"] >= 3).mean()),
    }
    st = values["all_series"]
    summary = (
        "Going from the smallest batch of at least 16 to the largest batch cuts energy per token by "
        + " and ".join(
            f"{ratio_text(v['ratio'])} for {k} (batch {v['small_batch']} to {v['large_batch']})"
            for k, v in highlighted.items()
        )
        + f"; over all {st['n']} series the ratio has median {ratio_text(st['median'])} and range "
        f"{ratio_text(st['min'])} to {ratio_text(st['max'])}."
    )
    ratios = [v["ratio"] for v in highlighted.values()]
    in_band = bool(ratios) and all(3 * 0.95 <= r <= 5 * 1.1 for r in ratios)
    comparison = (
        f"The paper's two series give {', '.join(ratio_text(r) for r in ratios)} against its 3 to 5x "
        f"({'in' if in_band else 'outside'} that band, allowing for its rounding); "
        f"{percent_text(values['share_between_3_and_5'])} of all series fall within 3 to 5x and "
        f"{percent_text(values['share_at_least_3'])} reach at least 3x."
    )
    filters = {
        "tasks": "all LLM tasks",
        "gpu_model": "both",
        "small": "smallest batch size >= 16 in the series",
        "large": "largest batch size in the series",
        "series": list(SERIES_KEYS),
    }
    return Finding(
        id="batch-size-effect",
        title="Batch size: energy per token at a small against the largest batch",
        values=values,
        filters=filters,
        method="Energy per token at the smallest batch >= 16 divided by that at the largest batch.",
        paper=P.claim("batch-size-effect"),
        comparison=comparison,
        summary=summary,
        rows=table,
    )


def multi_gpu_tables(llm: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(same-batch pairs of GPU counts, per-count capabilities: largest batch and minimum energy per token in J)."""
    s = llm[llm["task"].isin(["gpqa", "lm-arena-chat", "sourcegraph-fim"])]
    k = ["model_id", "task", "gpu_model", "batch_size"]
    cols = [*k, "num_gpus", E_TOKEN]
    p = s[cols].merge(s[cols], on=k, suffixes=("_n", "_m"))
    p = p[p["num_gpus_n"] < p["num_gpus_m"]].copy()
    p["energy_ratio"] = p[f"{E_TOKEN}_m"] / p[f"{E_TOKEN}_n"]
    p["rises"] = p["energy_ratio"] > 1
    cap = (
        s.groupby(["model_id", "task", "gpu_model", "num_gpus"])
        .agg(max_batch=("batch_size", "max"), min_energy_per_token_joules=(E_TOKEN, "min"))
        .reset_index()
    )
    u = cap.merge(cap, on=["model_id", "task", "gpu_model"], suffixes=("_n", "_m"))
    u = u[u["num_gpus_n"] < u["num_gpus_m"]].copy()
    u["min_energy_ratio"] = u["min_energy_per_token_joules_m"] / u["min_energy_per_token_joules_n"]
    u["max_batch_ratio"] = u["max_batch_m"] / u["max_batch_n"]
    return p.reset_index(drop=True), u.reset_index(drop=True)


def multi_gpu(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """More GPUs at the same batch (share of pairs where energy per token rises) and what a larger count unlocks
    (largest batch, minimum energy per token in J), with the paper's gpt-oss 120B example."""
    pairs, unlock = multi_gpu_tables(llm)
    values: dict[str, Any] = {
        "by_gpu": {
            g: {"pairs": len(p), "energy_rises": int(p["rises"].sum()), "share_energy_rises": float(p["rises"].mean())}
            for g, p in pairs.groupby("gpu_model")
        }
    }
    ex = unlock[
        (unlock["model_id"] == "openai/gpt-oss-120b")
        & (unlock["task"] == "gpqa")
        & (unlock["gpu_model"] == "H100")
        & (unlock["num_gpus_n"] == 1)
        & (unlock["num_gpus_m"] == 2)
    ]
    sentences = []
    for g, v in values["by_gpu"].items():
        sentences.append(
            f"on {g} energy per token rises with more GPUs in {v['energy_rises']} of {v['pairs']} "
            f"same-batch pairs ({percent_text(v['share_energy_rises'])})"
        )
    summary = "At the same batch size, " + " and ".join(sentences) + "."
    if len(ex):
        e = ex.iloc[0]
        values["gpt_oss_120b_gpqa_h100"] = {
            "max_batch_1_gpu": int(e["max_batch_n"]),
            "max_batch_2_gpus": int(e["max_batch_m"]),
            "min_energy_per_token_1_gpu_joules": float(e["min_energy_per_token_joules_n"]),
            "min_energy_per_token_2_gpus_joules": float(e["min_energy_per_token_joules_m"]),
            "min_energy_ratio": float(e["min_energy_ratio"]),
        }
        summary += (
            f" What a second GPU unlocks: gpt-oss 120B on problem solving reaches batch "
            f"{int(e['max_batch_n'])} on 1 x H100 but {int(e['max_batch_m'])} on 2 x H100, and its minimum "
            f"energy per token falls from {e['min_energy_per_token_joules_n']:.3f} to "
            f"{e['min_energy_per_token_joules_m']:.3f} J ({ratio_text(1 / e['min_energy_ratio'])} lower)."
        )
    big = unlock.loc[unlock["min_energy_ratio"].idxmin()]
    values["largest_unlock"] = {
        "model_id": big["model_id"],
        "task": big["task"],
        "gpu_model": big["gpu_model"],
        "num_gpus_from": int(big["num_gpus_n"]),
        "num_gpus_to": int(big["num_gpus_m"]),
        "max_batch_from": int(big["max_batch_n"]),
        "max_batch_to": int(big["max_batch_m"]),
        "min_energy_ratio": float(big["min_energy_ratio"]),
    }
    values["share_more_gpus_lower_min_energy"] = float((unlock["min_energy_ratio"] < 1).mean())
    summary += (
        f" The largest such drop is {nickname(llm, big['model_id'])} on {task_name(big['task']).lower()}: "
        f"{int(big['num_gpus_n'])} to {int(big['num_gpus_m'])} x {big['gpu_model']} lifts the largest batch "
        f"from {int(big['max_batch_n'])} to {int(big['max_batch_m'])} and cuts the minimum energy per token "
        f"{ratio_text(1 / big['min_energy_ratio'])}."
    )
    shares = [v["share_energy_rises"] for v in values["by_gpu"].values()]
    comparison = (
        "Energy per token rises with GPU count in "
        + ", ".join(f"{percent_text(s)}" for s in shares)
        + " of same-batch pairs per GPU type; in "
        f"{percent_text(values['share_more_gpus_lower_min_energy'])} of (model, task, GPU, n < m) cases "
        f"the larger count reaches a lower minimum energy per token."
    )
    filters = {
        "tasks": ["gpqa", "lm-arena-chat", "sourcegraph-fim"],
        "pairs": "within model, task and GPU type, every pair of GPU counts n < m at the same batch size",
    }
    return Finding(
        id="multi-gpu",
        title="More GPUs: energy at the same batch, and what extra memory unlocks",
        values=values,
        filters=filters,
        method="Share of same-batch GPU-count pairs where energy per token rises; largest batch and "
        "minimum energy per token per GPU count.",
        paper=P.claim("multi-gpu"),
        comparison=comparison,
        summary=summary,
        rows=pairs,
    )
