"""The language-model findings: reasoning against chat (over all models, and for Qwen3 32B at its largest batch),
image and video chat against text chat, and a mixture of experts against a dense model.

Each function takes the LLM and diffusion tables of published rows and returns a
:class:`~harness.analysis.findings.record.Finding` whose ``agrees`` the paper comparison sets later.
Energies are J per token or J per response, as the value names say.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.analysis import paper as P
from harness.analysis.findings.record import Finding
from harness.analysis.findings.wording import nickname, ratio_text, stats, task_name
from harness.analysis.tables.attribution import attribute
from harness.analysis.tables.choice import largest_batch_rows
from harness.analysis.tables.columns import ENERGY_PER_TOKEN as E_TOKEN
from harness.analysis.tables.frontiers import min_energy_configs
from harness.errors import HarnessError

E_RESPONSE = "energy_per_request_joules"

# Vision-language model -> its text-only sibling (FP8 variants are separate models).
MULTIMODAL_SIBLINGS = {
    "Qwen/Qwen3-VL-8B-Instruct": "Qwen/Qwen3-8B",
    "Qwen/Qwen3-VL-32B-Instruct": "Qwen/Qwen3-32B",
    "Qwen/Qwen3-VL-30B-A3B-Instruct": "Qwen/Qwen3-30B-A3B-Instruct-2507",
    "Qwen/Qwen3-Omni-30B-A3B-Instruct": "Qwen/Qwen3-30B-A3B-Instruct-2507",
    "Qwen/Qwen3-VL-235B-A22B-Instruct": "Qwen/Qwen3-235B-A22B-Instruct-2507",
    "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8": "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
    "nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16": "nvidia/NVIDIA-Nemotron-Nano-12B-v2",
}


def reasoning_vs_chat(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """Reasoning (problem solving) against chat on B200: mean output tokens and energy per response (J) of each
    model's lowest-energy-per-token run."""
    filters = {
        "gpu_model": "B200",
        "tasks": ["gpqa", "lm-arena-chat"],
        "selection": "per model, the run with the lowest energy per token (any GPU count, any batch size)",
        "models": "FP8 variants count as separate models",
    }
    best = min_energy_configs(llm[llm["gpu_model"] == "B200"], by=("model_id", "task"))
    r, c = best[best["task"] == "gpqa"], best[best["task"] == "lm-arena-chat"]
    values: dict[str, Any] = {
        "reasoning_models": len(r),
        "chat_models": len(c),
        "reasoning_mean_output_tokens": float(r["avg_output_len"].mean()),
        "chat_mean_output_tokens": float(c["avg_output_len"].mean()),
        "reasoning_mean_energy_per_response_joules": float(r[E_RESPONSE].mean()),
        "chat_mean_energy_per_response_joules": float(c[E_RESPONSE].mean()),
        "reasoning_mean_energy_per_token_joules": float(r[E_TOKEN].mean()),
        "chat_mean_energy_per_token_joules": float(c[E_TOKEN].mean()),
    }
    values["output_tokens_ratio"] = values["reasoning_mean_output_tokens"] / values["chat_mean_output_tokens"]
    values["energy_per_response_ratio"] = (
        values["reasoning_mean_energy_per_response_joules"] / values["chat_mean_energy_per_response_joules"]
    )
    summary = (
        f"On B200, problem solving (reasoning on, {values['reasoning_models']} models) averages "
        f"{values['reasoning_mean_output_tokens']:,.0f} output tokens and "
        f"{values['reasoning_mean_energy_per_response_joules']:,.0f} J per response against "
        f"{values['chat_mean_output_tokens']:,.0f} tokens and {values['chat_mean_energy_per_response_joules']:,.0f} J "
        f"for chat ({values['chat_models']} models): {ratio_text(values['output_tokens_ratio'])} the tokens and "
        f"{ratio_text(values['energy_per_response_ratio'])} the energy per response."
    )
    rows = best[best["task"].isin(["gpqa", "lm-arena-chat"])][
        ["task", "model_id", "num_gpus", "max_num_seqs", "avg_output_len", E_TOKEN, E_RESPONSE]
    ].sort_values(["task", "model_id"])
    return Finding(
        id="reasoning-vs-chat",
        title="Reasoning against chat: output length and energy per response",
        values=values,
        filters=filters,
        method="Mean over models of the minimum-energy-per-token configuration's output length and energy per "
        "response.",
        paper=P.claim("reasoning-vs-chat"),
        comparison="",  # the paper's figures are checked by harness.analysis.paper.judge
        summary=summary,
        rows=rows.reset_index(drop=True),
    )


def qwen3_32b_b200(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """Qwen3 32B on one B200, each task at its largest batch: the batch reached, tokens per response, J per token
    and J per response, reasoning against chat."""
    model = "Qwen/Qwen3-32B"
    filters = {
        "model_id": model,
        "gpu_model": "B200",
        "num_gpus": 1,
        "tasks": ["gpqa", "lm-arena-chat"],
        "selection": "per task, the run with the largest batch size (not the cheapest run)",
    }
    s = llm[(llm["model_id"] == model) & (llm["gpu_model"] == "B200") & (llm["num_gpus"] == 1)]
    top = largest_batch_rows(s, by=("task",)).set_index("task")
    if not {"gpqa", "lm-arena-chat"} <= set(top.index):
        raise HarnessError(f"{model} on 1 x B200 lacks gpqa or lm-arena-chat runs in the reference data")
    values: dict[str, Any] = {}
    for task, name in (("gpqa", "reasoning"), ("lm-arena-chat", "chat")):
        row = top.loc[task]
        values[f"{name}_max_num_seqs"] = int(row["max_num_seqs"])
        values[f"{name}_avg_batch_size"] = float(row["avg_batch_size"])
        values[f"{name}_mean_output_tokens"] = float(row["avg_output_len"])
        values[f"{name}_energy_per_token_joules"] = float(row[E_TOKEN])
        values[f"{name}_energy_per_response_joules"] = float(row[E_RESPONSE])
    values["energy_per_response_ratio"] = (
        values["reasoning_energy_per_response_joules"] / values["chat_energy_per_response_joules"]
    )
    values["energy_per_token_ratio"] = (
        values["reasoning_energy_per_token_joules"] / values["chat_energy_per_token_joules"]
    )
    chat = s[(s["task"] == "lm-arena-chat") & (s["max_num_seqs"] == values["reasoning_max_num_seqs"])]
    values["chat_energy_per_token_at_reasoning_batch_joules"] = float(chat[E_TOKEN].iloc[0]) if len(chat) else None
    if len(chat):
        values["energy_per_token_ratio_at_same_batch"] = (
            values["reasoning_energy_per_token_joules"] / values["chat_energy_per_token_at_reasoning_batch_joules"]
        )
    summary = (
        f"Qwen3 32B on one B200 reaches batch {values['reasoning_max_num_seqs']} on problem solving "
        f"({values['reasoning_mean_output_tokens']:,.0f} tokens per response, "
        f"{values['reasoning_energy_per_token_joules']:.3f} J/token, "
        f"{values['reasoning_energy_per_response_joules']:,.0f} J per response) and batch "
        f"{values['chat_max_num_seqs']} on chat ({values['chat_mean_output_tokens']:,.0f} tokens, "
        f"{values['chat_energy_per_token_joules']:.3f} J/token, {values['chat_energy_per_response_joules']:,.0f} J): "
        f"{ratio_text(values['energy_per_response_ratio'])} the energy per response."
    )
    if values["chat_energy_per_token_at_reasoning_batch_joules"] is not None:
        summary += (
            f" At batch {values['reasoning_max_num_seqs']} chat costs "
            f"{values['chat_energy_per_token_at_reasoning_batch_joules']:.3f} J/token, so reasoning's longer "
            f"contexts cost {ratio_text(values['energy_per_token_ratio_at_same_batch'])} per token even at the same "
            f"batch."
        )
    mechanism_holds = (
        values["reasoning_max_num_seqs"] < values["chat_max_num_seqs"] and values["energy_per_token_ratio"] > 1
    )
    comparison = (
        f"{'Consistent' if mechanism_holds else 'Inconsistent'} with the paper's mechanism: reasoning's batch cap "
        f"{values['reasoning_max_num_seqs']} vs chat's {values['chat_max_num_seqs']}, energy per token "
        f"{ratio_text(values['energy_per_token_ratio'])}."
    )
    rows = top.reset_index()[
        ["task", "max_num_seqs", "avg_batch_size", "avg_output_len", E_TOKEN, E_RESPONSE, "median_itl_ms"]
    ]
    return Finding(
        id="qwen3-32b-b200",
        title="Qwen3 32B on one B200: reasoning against chat at the largest batch",
        values=values,
        filters=filters,
        method="Largest-batch run per task; ratio of energy per response.",
        paper=P.claim("qwen3-32b-b200"),
        comparison=comparison,
        summary=summary,
        rows=rows,
    )


def multimodal_overhead(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """Image chat and video chat against text chat of the same family on B200: ratios of the minimum energy per
    token (J), at the text model's best GPU count."""
    filters = {
        "gpu_model": "B200",
        "text_task": "lm-arena-chat",
        "modal_tasks": ["image-chat", "video-chat"],
        "pairs": MULTIMODAL_SIBLINGS,
        "gpu_count": "among counts where text, image and video runs all exist, the one where the text "
        "model's minimum energy per token is lowest",
        "not_paired": "natively multimodal models (Gemma 3, Llama 4) serve text and images with one model, "
        "have no text-only sibling and no video-chat runs",
    }
    b = llm[llm["gpu_model"] == "B200"]
    mins = b.groupby(["model_id", "task", "num_gpus"])[E_TOKEN].min()
    rows, excluded = [], {}
    for vlm, text in MULTIMODAL_SIBLINGS.items():
        counts = []
        for n in sorted(b["num_gpus"].unique()):
            keys = [(text, "lm-arena-chat", n), (vlm, "image-chat", n), (vlm, "video-chat", n)]
            if all(k in mins.index for k in keys):
                counts.append(n)
        if not counts:
            have = sorted(task_name(t).lower() for t in b.loc[b["model_id"].isin([vlm, text]), "task"].unique())
            excluded[vlm] = (
                f"no B200 GPU count with text, image and video runs (B200 tasks: {', '.join(have) or 'none'})"
            )
            continue
        n = min(counts, key=lambda k: mins[(text, "lm-arena-chat", k)])
        t = mins[(text, "lm-arena-chat", n)]
        rows.append(
            {
                "vision_model_id": vlm,
                "text_model_id": text,
                "num_gpus": int(n),
                "text_energy_per_token_joules": float(t),
                "image_energy_per_token_joules": float(mins[(vlm, "image-chat", n)]),
                "video_energy_per_token_joules": float(mins[(vlm, "video-chat", n)]),
                "image_over_text": float(mins[(vlm, "image-chat", n)] / t),
                "video_over_text": float(mins[(vlm, "video-chat", n)] / t),
            }
        )
    table = pd.DataFrame(rows)
    values: dict[str, Any] = {
        "pairs": len(table),
        "image_over_text": stats(table["image_over_text"]),
        "video_over_text": stats(table["video_over_text"]),
        "excluded": excluded,
    }
    iv, vv = values["image_over_text"], values["video_over_text"]
    summary = (
        f"Over {len(table)} vision-language/text pairs on B200, image chat costs {iv['min']:.2f}x to {iv['max']:.2f}x "
        f"(median {iv['median']:.2f}x) the energy per token of text chat, and video chat {vv['min']:.2f}x to "
        f"{vv['max']:.2f}x (median {vv['median']:.2f}x)."
    )
    top = table.loc[table["video_over_text"].idxmax()]
    summary += f" The largest video overhead is {nickname(llm, top['vision_model_id'])}'s."
    direction_holds = bool((table["image_over_text"] > 1).all() and (table["video_over_text"] > 1).all())
    comparison = (
        f"{'Consistent' if direction_holds else 'Partly inconsistent'} with the paper's direction: "
        f"{int((table['image_over_text'] > 1).sum())} of {len(table)} image ratios and "
        f"{int((table['video_over_text'] > 1).sum())} of {len(table)} video ratios exceed 1."
    )
    return Finding(
        id="multimodal-overhead",
        title="Image and video chat against text chat (same model family)",
        values=values,
        filters=filters,
        method="Ratio of minimum energy per token, modality over text, at the text model's best GPU count.",
        paper=P.claim("multimodal-overhead"),
        comparison=comparison,
        summary=summary,
        rows=table,
    )


def moe_vs_dense(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """The dense Qwen3 32B against the MoE Qwen3 30B A3B Thinking on problem solving, 1 x B200, BF16: the ratio
    of their minimum energy per token (J) over batch sizes, and the factors behind it."""
    dense, moe = "Qwen/Qwen3-32B", "Qwen/Qwen3-30B-A3B-Thinking-2507"
    s = llm[
        (llm["task"] == "gpqa")
        & (llm["gpu_model"] == "B200")
        & (llm["num_gpus"] == 1)
        & (llm["weight_precision"] == "bfloat16")
        & llm["model_id"].isin([dense, moe])
    ]
    best = min_energy_configs(s, by=("model_id",)).set_index("model_id")
    if not {dense, moe} <= set(best.index):
        raise HarnessError("moe-vs-dense needs Qwen3 32B and Qwen3 30B A3B Thinking on gpqa, 1 x B200")
    d, m = best.loc[dense], best.loc[moe]
    values: dict[str, Any] = {
        "dense_energy_per_token_joules": float(d[E_TOKEN]),
        "dense_max_num_seqs": int(d["max_num_seqs"]),
        "moe_energy_per_token_joules": float(m[E_TOKEN]),
        "moe_max_num_seqs": int(m["max_num_seqs"]),
        "dense_over_moe": float(d[E_TOKEN] / m[E_TOKEN]),
        "dense_active_params_billions": float(d["activated_params_billions"]),
        "moe_active_params_billions": float(m["activated_params_billions"]),
        "dense_max_batch": int(s.loc[s["model_id"] == dense, "max_num_seqs"].max()),
        "moe_max_batch": int(s.loc[s["model_id"] == moe, "max_num_seqs"].max()),
    }
    attribution = attribute(m, d)
    values["attribution"] = {f.name: f.ratio for f in attribution.factors}
    summary = (
        f"On problem solving, 1 x B200, the dense Qwen3 32B's cheapest run costs "
        f"{values['dense_energy_per_token_joules']:.3f} J/token (batch {values['dense_max_num_seqs']}) against "
        f"{values['moe_energy_per_token_joules']:.3f} J/token for the MoE Qwen3 30B A3B Thinking (batch "
        f"{values['moe_max_num_seqs']}): {ratio_text(values['dense_over_moe'])}. The MoE activates "
        f"{values['moe_active_params_billions']:.0f}B of its parameters per token against "
        f"{values['dense_active_params_billions']:.0f}B and reaches batch {values['moe_max_batch']} against "
        f"{values['dense_max_batch']}."
    )
    filters = {
        "task": "gpqa",
        "gpu_model": "B200",
        "num_gpus": 1,
        "weight_precision": "bfloat16",
        "models": [dense, moe],
        "selection": "minimum energy per token over batch sizes",
    }
    rows = best.reset_index()[
        ["model_id", "max_num_seqs", "avg_batch_size", E_TOKEN, "median_itl_ms", "avg_power_watts"]
    ]
    return Finding(
        id="moe-vs-dense",
        title="MoE against dense: Qwen3 30B A3B against Qwen3 32B",
        values=values,
        filters=filters,
        method="Ratio of minimum energy per token over batch sizes.",
        paper=P.claim("moe-vs-dense"),
        comparison="",  # the paper's 3.56x is checked by harness.analysis.paper.judge
        summary=summary,
        rows=rows,
    )
