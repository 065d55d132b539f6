"""The paper's findings, recomputed from the published measurements, and the ``diagnose`` command.

Each finding is a function of the two reference tables (LLM and diffusion) that
returns a :class:`Finding`: its id, the values computed, the filters used, the
method in one sentence, what the paper reports (its published numbers where
STUDY.md gives them, else its qualitative claim) and a sentence comparing the two.
Methods follow ``STUDY.md`` ("Findings and how they are computed").

Command line::

    python -m harness findings [--json] [--id ID]
    python -m harness diagnose A B [--json] [--results DIR]
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import dataclass, field
from typing import Callable

from harness.errors import HarnessError
from harness.vocabulary.labels import label


class _OnFirstUse:
    """A module imported when one of its attributes is first used, so that ``python -m harness --help``
    (which imports this module to register its commands) does not pay for pandas."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


np = _OnFirstUse("numpy")
pd = _OnFirstUse("pandas")
an = _OnFirstUse("harness.analysis.tables")

E_TOKEN = "energy_per_token_joules"  # = analysis.ENERGY_PER_TOKEN
E_RESPONSE = "energy_per_request_joules"
E_OUTPUT = "energy_per_output_joules"  # = analysis.ENERGY_PER_OUTPUT

# What the paper publishes (STUDY.md). These are the reference's numbers, never ours.
PAPER_REASONING_VS_CHAT = {
    "reasoning_models": 12,
    "chat_models": 16,
    "reasoning_mean_output_tokens": 6988,
    "chat_mean_output_tokens": 717,
    "reasoning_mean_energy_per_response_joules": 4625,
    "chat_mean_energy_per_response_joules": 184,
}
PAPER_TOLERANCE = 0.02
# Lowest-energy image and video per model on H100 (STUDY.md, "Orders of magnitude").
PAPER_H100_MIN_ENERGY_JOULES = {
    "stabilityai/stable-diffusion-3.5-medium": 1.6e3,
    "black-forest-labs/FLUX.1-dev": 7.6e3,
    "zai-org/CogVideoX-2b": 28e3,
    "Wan-AI/Wan2.1-T2V-14B-Diffusers": 288e3,
    "tencent/HunyuanVideo": 1.16e6,
}
ORDER_OF_MAGNITUDE_TOLERANCE = 0.05  # those figures carry two or three significant digits

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
LATENCY_TARGETS = {
    "llm_median_itl_ms": (50, 100, 250),
    "text-to-image_batch_latency_s": (10, 30, 60),
    "text-to-video_batch_latency_s": (100, 500, 1000),
}
FP8_BANDS = ((8, 16, "8-16"), (17, 64, "17-64"), (65, 256, "65-256"))


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    values: dict
    filters: dict
    method: str
    paper: dict  # what the paper reports: "claim" (words) and its numbers where published
    comparison: str  # computed sentence: ours against the paper's
    summary: str  # computed sentence: the finding in words and numbers
    agrees: bool | None = None  # None where the paper gives no number to check against
    rows: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def as_dict(self, with_rows: bool = True) -> dict:
        out = {
            "id": self.id,
            "title": self.title,
            "summary": self.summary,
            "values": self.values,
            "filters": self.filters,
            "method": self.method,
            "paper": self.paper,
            "comparison": self.comparison,
            "agrees": self.agrees,
        }
        if with_rows and self.rows is not None:
            out["rows"] = self.rows.to_dict(orient="records")
        return jsonable(out)


def jsonable(obj):
    """Plain JSON types (numpy scalars to Python, NaN to None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(obj, np.bool_):
        return bool(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def _x(r: float) -> str:
    if r < 10:
        return f"{r:.2f}x"
    if r < 100:
        return f"{r:.1f}x"
    return f"{r:,.0f}x"


def _pct(r: float) -> str:
    return f"{100 * r:.0f}%"


def _j(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.3g} MJ"
    if value >= 1e3:
        return f"{value / 1e3:.3g} kJ"
    return f"{value:.3g} J"


def _short(model_id: str) -> str:
    return model_id.split("/")[-1]


def _task_name(task: str) -> str:
    from harness.published import reference

    return reference.TASK_NAMES.get(task, task)


def _nickname(frame: pd.DataFrame, model_id: str) -> str:
    """The display name the published data give a model (its id's last part when none)."""
    if "nickname" in frame.columns:
        names = frame.loc[frame["model_id"] == model_id, "nickname"].dropna()
        if len(names):
            return str(names.iloc[0])
    return _short(model_id)


def _stats(values: pd.Series) -> dict:
    values = values.dropna()
    if values.empty:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": int(len(values)), "median": float(values.median()), "min": float(values.min()), "max": float(values.max())}


# ---------------------------------------------------------------- findings


def reasoning_vs_chat(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    filters = {
        "gpu_model": "B200",
        "tasks": ["gpqa", "lm-arena-chat"],
        "selection": "per model, the run with the lowest energy per token (any GPU count, any batch size)",
        "models": "FP8 variants count as separate models",
    }
    best = an.min_energy_configs(llm[llm["gpu_model"] == "B200"], by=("model_id", "task"))
    r, c = best[best["task"] == "gpqa"], best[best["task"] == "lm-arena-chat"]
    values = {
        "reasoning_models": int(len(r)),
        "chat_models": int(len(c)),
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
    diffs = {
        k: abs(values[k] - v) / v for k, v in PAPER_REASONING_VS_CHAT.items() if k in values and v
    }
    worst = max(diffs, key=diffs.get)
    agrees = all(d <= PAPER_TOLERANCE for d in diffs.values())
    paper = dict(PAPER_REASONING_VS_CHAT, source="the paper's published values",
                 claim="about 10x the output tokens and about 25x the energy per response")
    summary = (
        f"On B200, problem solving (reasoning on, {values['reasoning_models']} models) averages "
        f"{values['reasoning_mean_output_tokens']:,.0f} output tokens and "
        f"{values['reasoning_mean_energy_per_response_joules']:,.0f} J per response against "
        f"{values['chat_mean_output_tokens']:,.0f} tokens and {values['chat_mean_energy_per_response_joules']:,.0f} J "
        f"for chat ({values['chat_models']} models): {_x(values['output_tokens_ratio'])} the tokens and "
        f"{_x(values['energy_per_response_ratio'])} the energy per response."
    )
    comparison = ""  # the paper's figures are checked by harness.analysis.paper.judge
    rows = best[best["task"].isin(["gpqa", "lm-arena-chat"])][
        ["task", "model_id", "num_gpus", "max_num_seqs", "avg_output_len", E_TOKEN, E_RESPONSE]
    ].sort_values(["task", "model_id"])
    return Finding(
        "reasoning-vs-chat",
        "Reasoning against chat: output length and energy per response",
        values,
        filters,
        "Mean over models of the minimum-energy-per-token configuration's output length and energy per response.",
        paper,
        comparison,
        summary,
        agrees,
        rows.reset_index(drop=True),
    )


def qwen3_32b_b200(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    model = "Qwen/Qwen3-32B"
    filters = {"model_id": model, "gpu_model": "B200", "num_gpus": 1, "tasks": ["gpqa", "lm-arena-chat"],
               "selection": "per task, the run with the largest batch size (not the cheapest run)"}
    s = llm[(llm["model_id"] == model) & (llm["gpu_model"] == "B200") & (llm["num_gpus"] == 1)]
    top = an.largest_batch_rows(s, by=("task",)).set_index("task")
    if not {"gpqa", "lm-arena-chat"} <= set(top.index):
        raise HarnessError(f"{model} on 1 x B200 lacks gpqa or lm-arena-chat runs in the reference data")
    values = {}
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
    values["energy_per_token_ratio"] = values["reasoning_energy_per_token_joules"] / values["chat_energy_per_token_joules"]
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
        f"{_x(values['energy_per_response_ratio'])} the energy per response."
    )
    if values["chat_energy_per_token_at_reasoning_batch_joules"] is not None:
        summary += (
            f" At batch {values['reasoning_max_num_seqs']} chat costs "
            f"{values['chat_energy_per_token_at_reasoning_batch_joules']:.3f} J/token, so reasoning's longer "
            f"contexts cost {_x(values['energy_per_token_ratio_at_same_batch'])} per token even at the same batch."
        )
    paper = {"source": "the paper's explanation of reasoning against chat",
             "claim": "long reasoning outputs stress memory, cap the batch size and raise energy per token; "
                      "energy per response multiplies the two"}
    agrees = values["reasoning_max_num_seqs"] < values["chat_max_num_seqs"] and values["energy_per_token_ratio"] > 1
    comparison = (
        f"{'Consistent' if agrees else 'Inconsistent'} with the paper's mechanism: reasoning's batch cap "
        f"{values['reasoning_max_num_seqs']} vs chat's {values['chat_max_num_seqs']}, energy per token "
        f"{_x(values['energy_per_token_ratio'])}."
    )
    rows = top.reset_index()[["task", "max_num_seqs", "avg_batch_size", "avg_output_len", E_TOKEN, E_RESPONSE, "median_itl_ms"]]
    return Finding("qwen3-32b-b200", "Qwen3 32B on one B200: reasoning against chat at the largest batch", values,
                   filters, "Largest-batch run per task; ratio of energy per response.", paper, comparison, summary,
                   agrees, rows)


def multimodal_overhead(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    filters = {"gpu_model": "B200", "text_task": "lm-arena-chat", "modal_tasks": ["image-chat", "video-chat"],
               "pairs": MULTIMODAL_SIBLINGS,
               "gpu_count": "among counts where text, image and video runs all exist, the one where the text "
                            "model's minimum energy per token is lowest",
               "not_paired": "natively multimodal models (Gemma 3, Llama 4) serve text and images with one model, "
                             "have no text-only sibling and no video-chat runs"}
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
            have = sorted(_task_name(t).lower() for t in b.loc[b["model_id"].isin([vlm, text]), "task"].unique())
            excluded[vlm] = f"no B200 GPU count with text, image and video runs (B200 tasks: {', '.join(have) or 'none'})"
            continue
        n = min(counts, key=lambda k: mins[(text, "lm-arena-chat", k)])
        t = mins[(text, "lm-arena-chat", n)]
        rows.append({
            "vision_model_id": vlm, "text_model_id": text, "num_gpus": int(n),
            "text_energy_per_token_joules": float(t),
            "image_energy_per_token_joules": float(mins[(vlm, "image-chat", n)]),
            "video_energy_per_token_joules": float(mins[(vlm, "video-chat", n)]),
            "image_over_text": float(mins[(vlm, "image-chat", n)] / t),
            "video_over_text": float(mins[(vlm, "video-chat", n)] / t),
        })
    table = pd.DataFrame(rows)
    values = {"pairs": int(len(table)), "image_over_text": _stats(table["image_over_text"]),
              "video_over_text": _stats(table["video_over_text"]), "excluded": excluded}
    iv, vv = values["image_over_text"], values["video_over_text"]
    summary = (
        f"Over {len(table)} vision-language/text pairs on B200, image chat costs {iv['min']:.2f}x to {iv['max']:.2f}x "
        f"(median {iv['median']:.2f}x) the energy per token of text chat, and video chat {vv['min']:.2f}x to "
        f"{vv['max']:.2f}x (median {vv['median']:.2f}x)."
    )
    top = table.loc[table["video_over_text"].idxmax()]
    summary += f" The largest video overhead is {_nickname(llm, top['vision_model_id'])}'s."
    paper = {"source": "the paper's published range of ratios",
             "claim": "image and video inputs raise energy per token over text chat of the same family; the "
                      "framework names CPU-side preprocessing of multimodal inputs as a non-GPU bottleneck"}
    agrees = bool((table["image_over_text"] > 1).all() and (table["video_over_text"] > 1).all())
    comparison = (f"{'Consistent' if agrees else 'Partly inconsistent'} with the paper's direction: "
                  f"{int((table['image_over_text'] > 1).sum())} of {len(table)} image ratios and "
                  f"{int((table['video_over_text'] > 1).sum())} of {len(table)} video ratios exceed 1.")
    return Finding("multimodal-overhead", "Image and video chat against text chat (same model family)", values,
                   filters, "Ratio of minimum energy per token, modality over text, at the text model's best GPU count.",
                   paper, comparison, summary, agrees, table)


def _diffusion_minima(diffusion: pd.DataFrame, task: str, gpu: str) -> pd.DataFrame:
    s = diffusion[(diffusion["task"] == task) & (diffusion["gpu_model"] == gpu)]
    best = an.min_energy_configs(s, by=("model_id",))
    return best[["model_id", "nickname", "num_gpus", "batch_size", "ulysses_degree", "ring_degree", E_OUTPUT,
                 "batch_latency_s"]].sort_values(E_OUTPUT).reset_index(drop=True)


def _h100_check(diffusion: pd.DataFrame, task: str) -> tuple[dict, bool]:
    mins = _diffusion_minima(diffusion, task, "H100").set_index("model_id")[E_OUTPUT]
    out, ok = {}, True
    for model, published in PAPER_H100_MIN_ENERGY_JOULES.items():
        if model in mins.index:
            rel = abs(mins[model] - published) / published
            out[model] = {"published_joules": published, "computed_joules": float(mins[model]), "rel_diff": float(rel)}
            ok = ok and rel <= ORDER_OF_MAGNITUDE_TOLERANCE
    return out, ok


def text_to_image_spread(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    table = _diffusion_minima(diffusion, "text-to-image", "B200")
    lo, hi = table.iloc[0], table.iloc[-1]
    values = {"models": int(len(table)), "min_energy_per_image_joules": float(lo[E_OUTPUT]),
              "min_model": lo["model_id"], "max_energy_per_image_joules": float(hi[E_OUTPUT]),
              "max_model": hi["model_id"], "spread": float(hi[E_OUTPUT] / lo[E_OUTPUT])}
    check, ok = _h100_check(diffusion, "text-to-image")
    values["h100_check"] = check
    summary = (f"On B200 the lowest energy per image ranges from {_j(values['min_energy_per_image_joules'])} "
               f"({lo['nickname']}) to {_j(values['max_energy_per_image_joules'])} ({hi['nickname']}) over "
               f"{values['models']} models: a {_x(values['spread'])} spread.")
    paper = {"source": "the paper's B200 minima (and its H100 orders of magnitude)",
             "claim": "lowest energy per image per model on B200: 338 J (SANA 1.5 1.6B) to 6,679 J (FLUX.1 dev), "
                      "about 20x; on H100 SD 3.5 Medium 1.6 kJ and FLUX.1 dev 7.6 kJ",
             "h100_min_energy_joules": {k: v for k, v in PAPER_H100_MIN_ENERGY_JOULES.items() if k in check}}
    comparison = (f"H100 per-model minima {'match' if ok else 'do not match'} the paper's orders of magnitude within "
                  f"{_pct(ORDER_OF_MAGNITUDE_TOLERANCE)} ("
                  + ", ".join(f"{_nickname(diffusion, m)} {_j(c['computed_joules'])} vs {_j(c['published_joules'])}"
                              for m, c in check.items()) + ").")
    filters = {"task": "text-to-image", "gpu_model": "B200",
               "selection": "per model, the lowest energy per image over GPU counts, batch sizes and parallel degrees"}
    return Finding("text-to-image-spread", "Text to image: spread of the lowest energy per image", values, filters,
                   "Per-model minimum energy per image; spread = max / min.", paper, comparison, summary, ok, table)


def text_to_video_range(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    table = _diffusion_minima(diffusion, "text-to-video", "B200")
    images = _diffusion_minima(diffusion, "text-to-image", "B200")
    lo, hi = table.iloc[0], table.iloc[-1]
    values = {"models": int(len(table)), "min_energy_per_video_joules": float(lo[E_OUTPUT]), "min_model": lo["model_id"],
              "max_energy_per_video_joules": float(hi[E_OUTPUT]), "max_model": hi["model_id"],
              "range": float(hi[E_OUTPUT] / lo[E_OUTPUT])}
    if len(images):
        values["dearest_video_over_dearest_image"] = float(hi[E_OUTPUT] / images[E_OUTPUT].max())
        values["dearest_video_over_cheapest_image"] = float(hi[E_OUTPUT] / images[E_OUTPUT].min())
        values["cheapest_video_over_dearest_image"] = float(lo[E_OUTPUT] / images[E_OUTPUT].max())
    check, ok_h100 = _h100_check(diffusion, "text-to-video")
    values["h100_check"] = check
    summary = (f"On B200 the lowest energy per video ranges from {_j(values['min_energy_per_video_joules'])} "
               f"({lo['nickname']}) to {_j(values['max_energy_per_video_joules'])} ({hi['nickname']}), "
               f"a {_x(values['range'])} range; the dearest video costs "
               f"{_x(values['dearest_video_over_dearest_image'])} the dearest image and "
               f"{_x(values['dearest_video_over_cheapest_image'])} the cheapest.")
    agrees = ok_h100 and values["dearest_video_over_dearest_image"] > 100
    paper = {"source": "the paper's abstract and its B200 and H100 minima",
             "claim": "video generation sometimes consumes more than 100x the energy of an image",
             "h100_min_energy_joules": {k: v for k, v in PAPER_H100_MIN_ENERGY_JOULES.items() if k in check}}
    comparison = (f"The dearest video is "
                  f"{_x(values['dearest_video_over_dearest_image'])} even the dearest image (paper: more than 100x); "
                  f"H100 minima " + ", ".join(f"{_nickname(diffusion, m)} {_j(c['computed_joules'])} vs {_j(c['published_joules'])}"
                                              for m, c in check.items()) + ".")
    filters = {"task": "text-to-video", "gpu_model": "B200",
               "selection": "per model, the lowest energy per video over GPU counts, batch sizes and parallel degrees"}
    return Finding("text-to-video-range", "Text to video: range of the lowest energy per video", values, filters,
                   "Per-model minimum energy per video; range = max / min; compared with the B200 image minima.",
                   paper, comparison, summary, agrees, table)


def batch_size_effect_table(llm: pd.DataFrame) -> pd.DataFrame:
    """Every LLM series' batch effect (:data:`harness.analysis.tables.BATCH_EFFECT_DEFINITION`): energy per
    token at the smallest batch >= 16 over that at the largest batch."""
    rows = []
    keys = an.columns.group_keys(an.SERIES_KEYS, llm)
    for key, group in llm.groupby(keys, sort=True):
        pair = an.batch_effect_pair(group)
        if pair is None:
            continue
        lo, hi = pair
        rows.append(dict(zip(keys, key)) | {
            "small_batch": int(lo["batch_size"]), "large_batch": int(hi["batch_size"]),
            "small_energy_per_token_joules": float(lo[E_TOKEN]), "large_energy_per_token_joules": float(hi[E_TOKEN]),
            "small_avg_power_watts": float(lo["avg_power_watts"]), "large_avg_power_watts": float(hi["avg_power_watts"]),
            "ratio": float(lo[E_TOKEN] / hi[E_TOKEN]),
        })
    return pd.DataFrame(rows)


def batch_size_effect(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    table = batch_size_effect_table(llm)
    named = {
        "DeepSeek R1 on problem solving, 8 x B200": ("deepseek-ai/DeepSeek-R1-0528", "gpqa", "B200", 8),
        "Qwen3 Coder 30B A3B on code completion, 1 x B200": ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "sourcegraph-fim", "B200", 1),
    }
    idx = table.set_index(list(an.SERIES_KEYS))
    highlighted = {}
    for name, key in named.items():
        if key in idx.index:
            r = idx.loc[key]
            highlighted[name] = {"small_batch": int(r["small_batch"]), "large_batch": int(r["large_batch"]),
                                 "ratio": float(r["ratio"])}
    values = {"series": int(len(table)), "highlighted": highlighted, "all_series": _stats(table["ratio"]),
              "share_between_3_and_5": float(table["ratio"].between(3, 5).mean()),
              "share_at_least_3": float((table["ratio"] >= 3).mean())}
    st = values["all_series"]
    summary = ("Going from the smallest batch of at least 16 to the largest batch cuts energy per token by "
               + " and ".join(f"{_x(v['ratio'])} for {k} (batch {v['small_batch']} to {v['large_batch']})"
                              for k, v in highlighted.items())
               + f"; over all {st['n']} series the ratio has median {_x(st['median'])} and range "
                 f"{_x(st['min'])} to {_x(st['max'])}.")
    ratios = [v["ratio"] for v in highlighted.values()]
    in_band = [3 * 0.95 <= r <= 5 * 1.1 for r in ratios]
    agrees = bool(ratios) and all(in_band)
    paper = {"source": "the paper and its abstract", "range_x": [3, 5],
             "claim": "GPU utilization (batch size) moves energy per token by 3 to 5x (DeepSeek R1 on problem "
                      "solving, 8 x B200; Qwen3 Coder 30B A3B on code completion, 1 x B200)"}
    comparison = (f"The paper's two series give {', '.join(_x(r) for r in ratios)} against its 3 to 5x "
                  f"({'in' if agrees else 'outside'} that band, allowing for its rounding); "
                  f"{_pct(values['share_between_3_and_5'])} of all series fall within 3 to 5x and "
                  f"{_pct(values['share_at_least_3'])} reach at least 3x.")
    filters = {"tasks": "all LLM tasks", "gpu_model": "both", "small": "smallest batch size >= 16 in the series",
               "large": "largest batch size in the series", "series": list(an.SERIES_KEYS)}
    return Finding("batch-size-effect", "Batch size: energy per token at a small against the largest batch", values,
                   filters, "Energy per token at the smallest batch >= 16 divided by that at the largest batch.",
                   paper, comparison, summary, agrees, table)


def moe_vs_dense(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    dense, moe = "Qwen/Qwen3-32B", "Qwen/Qwen3-30B-A3B-Thinking-2507"
    s = llm[(llm["task"] == "gpqa") & (llm["gpu_model"] == "B200") & (llm["num_gpus"] == 1)
            & (llm["weight_precision"] == "bfloat16") & llm["model_id"].isin([dense, moe])]
    best = an.min_energy_configs(s, by=("model_id",)).set_index("model_id")
    if not {dense, moe} <= set(best.index):
        raise HarnessError("moe-vs-dense needs Qwen3 32B and Qwen3 30B A3B Thinking on gpqa, 1 x B200")
    d, m = best.loc[dense], best.loc[moe]
    values = {"dense_energy_per_token_joules": float(d[E_TOKEN]), "dense_max_num_seqs": int(d["max_num_seqs"]),
              "moe_energy_per_token_joules": float(m[E_TOKEN]), "moe_max_num_seqs": int(m["max_num_seqs"]),
              "dense_over_moe": float(d[E_TOKEN] / m[E_TOKEN]),
              "dense_active_params_billions": float(d["activated_params_billions"]),
              "moe_active_params_billions": float(m["activated_params_billions"]),
              "dense_max_batch": int(s.loc[s["model_id"] == dense, "max_num_seqs"].max()),
              "moe_max_batch": int(s.loc[s["model_id"] == moe, "max_num_seqs"].max())}
    attribution = an.attribute(m, d)
    values["attribution"] = {f.name: f.ratio for f in attribution.factors}
    summary = (f"On problem solving, 1 x B200, the dense Qwen3 32B's cheapest run costs {values['dense_energy_per_token_joules']:.3f} "
               f"J/token (batch {values['dense_max_num_seqs']}) against {values['moe_energy_per_token_joules']:.3f} "
               f"J/token for the MoE Qwen3 30B A3B Thinking (batch {values['moe_max_num_seqs']}): "
               f"{_x(values['dense_over_moe'])}. The MoE activates {values['moe_active_params_billions']:.0f}B of its "
               f"parameters per token against {values['dense_active_params_billions']:.0f}B and reaches batch "
               f"{values['moe_max_batch']} against {values['dense_max_batch']}.")
    agrees = values["dense_over_moe"] > 1
    paper = {"source": "the paper's published ratio",
             "claim": "Qwen3 32B uses 3.56x the energy per token of Qwen3 30B A3B Thinking; more compute per output costs energy: an MoE model that activates few parameters per token "
                      "should use less energy per token than a dense model of similar total size"}
    comparison = ""  # the paper's 3.56x is checked by harness.analysis.paper.judge
    filters = {"task": "gpqa", "gpu_model": "B200", "num_gpus": 1, "weight_precision": "bfloat16",
               "models": [dense, moe], "selection": "minimum energy per token over batch sizes"}
    rows = best.reset_index()[["model_id", "max_num_seqs", "avg_batch_size", E_TOKEN, "median_itl_ms", "avg_power_watts"]]
    return Finding("moe-vs-dense", "MoE against dense: Qwen3 30B A3B against Qwen3 32B", values, filters,
                   "Ratio of minimum energy per token over batch sizes.", paper, comparison, summary, agrees, rows)


def b200_vs_h100_table(llm: pd.DataFrame, diffusion: pd.DataFrame) -> pd.DataFrame:
    """Every (model, precision, task, target) comparison of H100 (A) and B200 (B) at a latency target."""
    by = ("model_id", "weight_precision", "task")
    parts = [an.compare_at_latency(llm[llm["task"].isin(["gpqa", "lm-arena-chat"])], "gpu_model", "H100", "B200",
                                   LATENCY_TARGETS["llm_median_itl_ms"], by=by)]
    for task in ("text-to-image", "text-to-video"):
        parts.append(an.compare_at_latency(diffusion[diffusion["task"] == task], "gpu_model", "H100", "B200",
                                           LATENCY_TARGETS[f"{task}_batch_latency_s"], by=by))
    parts = [p for p in parts if len(p)]
    if not parts:
        raise HarnessError("no (model, task) measured on both H100 and B200 meets any latency target in this selection")
    table = pd.concat(parts, ignore_index=True)
    table["family"] = np.where(table["task"].isin(["gpqa", "lm-arena-chat"]), "llm", table["task"])
    return table


def b200_vs_h100(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    table = b200_vs_h100_table(llm, diffusion)
    values = {}
    for family, part in table.groupby("family", sort=False):
        values[family] = {"comparisons": int(len(part)), "b200_wins": int((part["gain"] > 0).sum()),
                          "share_b200_wins": float((part["gain"] > 0).mean()), "gain": _stats(part["gain"]),
                          "by_target": {str(t): _stats(p["gain"]) | {"b200_wins": int((p["gain"] > 0).sum())}
                                        for t, p in part.groupby("target")}}
    names = {"llm": "language models (problem solving and chat; median ITL at 50/100/250 ms)",
             "text-to-image": "images (batch time at 10/30/60 s)", "text-to-video": "videos (batch time at 100/500/1,000 s)"}
    parts = []
    for fam, v in values.items():
        g = v["gain"]
        parts.append(f"{names[fam]}: B200 uses less energy in {v['b200_wins']} of {v['comparisons']} comparisons, "
                     f"median change {_pct(g['median'])} (range {_pct(g['min'])} to {_pct(g['max'])})")
    summary = "At matched latency targets, " + "; ".join(parts) + "."
    agrees = None
    paper = {"source": "the paper's published counts and medians",
             "claim": "B200 uses less energy in 63 of 72 LLM comparisons (median reduction 34.7%), 18 of 21 "
                      "text-to-image (median 14.9%) and 11 of 14 text-to-video"}
    llm_med = values.get("llm", {}).get("gain", {}).get("median")
    diff_meds = [values[f]["gain"]["median"] for f in ("text-to-image", "text-to-video") if f in values]
    comparison = (f"B200 loses {int((table['gain'] <= 0).sum())} of {len(table)} comparisons; "
                  f"median LLM gain "
                  f"{_pct(llm_med)} against {', '.join(_pct(m) for m in diff_meds)} for images and videos.")
    filters = {"tasks": ["gpqa", "lm-arena-chat", "text-to-image", "text-to-video"], "targets": LATENCY_TARGETS,
               "pairs": "(model, precision) measured on both GPUs",
               "selection": "per GPU, the lowest-energy configuration (any GPU count, any batch) meeting the target",
               "gain": "(H100 - B200) / H100 of energy per token (LLM) or per output (diffusion)"}
    return Finding("b200-vs-h100", "B200 against H100 at matched latency", values, filters,
                   "Lowest-energy configuration per GPU under each latency target; gain = (H100 - B200) / H100.",
                   paper, comparison, summary, agrees, table.drop(columns=["row_a", "row_b"]))


def fp8_vs_bf16_table(llm: pd.DataFrame) -> pd.DataFrame:
    keys = ["base_model_id", "task", "gpu_model", "num_gpus", "batch_size"]
    s = llm[~llm["base_model_id"].str.contains("Qwen3-Coder-480B")]
    fp8, bf16 = s[s["weight_precision"] == "fp8"], s[s["weight_precision"] == "bfloat16"]
    cols = keys + [E_TOKEN, "median_itl_ms", "avg_power_watts"]
    pairs = fp8[cols].merge(bf16[cols], on=keys, suffixes=("_fp8", "_bf16"))
    pairs = pairs[pairs["batch_size"] >= 16].copy()
    pairs["energy_ratio"] = pairs[f"{E_TOKEN}_fp8"] / pairs[f"{E_TOKEN}_bf16"]
    pairs["itl_ratio"] = pairs["median_itl_ms_fp8"] / pairs["median_itl_ms_bf16"]
    pairs["band"] = None
    for lo, hi, name in FP8_BANDS:
        pairs.loc[pairs["batch_size"].between(lo, hi), "band"] = name
    return pairs.reset_index(drop=True)


def fp8_vs_bf16(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    table = fp8_vs_bf16_table(llm)
    bands = {}
    for _, _, name in FP8_BANDS:
        part = table[table["band"] == name]
        bands[name] = {"pairs": int(len(part)), "fp8_wins": int((part["energy_ratio"] < 1).sum()),
                       "energy_ratio": _stats(part["energy_ratio"]), "itl_ratio": _stats(part["itl_ratio"])}
    outside = table[table["band"].isna()]
    values = {"pairs": int(len(table)), "bands": bands, "pairs_outside_bands": int(len(outside)),
              "models": sorted(table["base_model_id"].unique())}
    summary = "FP8 against BF16 at the same model, task, GPU, GPU count and batch: " + "; ".join(
        f"batch {name}: FP8 uses less energy per token in {b['fp8_wins']} of {b['pairs']} pairs, median ratio "
        f"{b['energy_ratio']['median']:.2f} (range {b['energy_ratio']['min']:.2f} to {b['energy_ratio']['max']:.2f}), "
        f"median ITL ratio {b['itl_ratio']['median']:.2f}"
        for name, b in bands.items() if b["pairs"]) + "."
    small, large = bands["8-16"], bands["65-256"]
    agrees = None
    paper = {"source": "the paper's published medians per batch band",
             "claim": "at batch 8-16 FP8 uses more energy per token (median +29.9%); at batch 65-256 less "
                      "(median -10.6%)"}
    comparison = (f"FP8's median energy ratio is {small['energy_ratio']['median']:.2f} at batch 8-16 "
                  f"and {large['energy_ratio']['median']:.2f} at 65-256, so the effect does turn on batch size."
                  if small["pairs"] and large["pairs"] else "Not enough pairs in the smallest or largest band.")
    filters = {"pairing": "same base model, task, GPU model, GPU count and batch size", "batch_size": ">= 16",
               "excluded": "Qwen3 Coder 480B (outlier)", "bands": [b[2] for b in FP8_BANDS]}
    return Finding("fp8-vs-bf16", "FP8 against BF16 by batch-size band", values, filters,
                   "Ratio FP8 / BF16 of energy per token and of median ITL per matched pair.", paper, comparison,
                   summary, agrees, table)


def multi_gpu_tables(llm: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(same-batch pairs of GPU counts, per-count capabilities: largest batch and minimum energy per token)."""
    s = llm[llm["task"].isin(["gpqa", "lm-arena-chat", "sourcegraph-fim"])]
    k = ["model_id", "task", "gpu_model", "batch_size"]
    cols = k + ["num_gpus", E_TOKEN]
    p = s[cols].merge(s[cols], on=k, suffixes=("_n", "_m"))
    p = p[p["num_gpus_n"] < p["num_gpus_m"]].copy()
    p["energy_ratio"] = p[f"{E_TOKEN}_m"] / p[f"{E_TOKEN}_n"]
    p["rises"] = p["energy_ratio"] > 1
    cap = s.groupby(["model_id", "task", "gpu_model", "num_gpus"]).agg(
        max_batch=("batch_size", "max"), min_energy_per_token_joules=(E_TOKEN, "min")).reset_index()
    u = cap.merge(cap, on=["model_id", "task", "gpu_model"], suffixes=("_n", "_m"))
    u = u[u["num_gpus_n"] < u["num_gpus_m"]].copy()
    u["min_energy_ratio"] = u["min_energy_per_token_joules_m"] / u["min_energy_per_token_joules_n"]
    u["max_batch_ratio"] = u["max_batch_m"] / u["max_batch_n"]
    return p.reset_index(drop=True), u.reset_index(drop=True)


def multi_gpu(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    pairs, unlock = multi_gpu_tables(llm)
    values = {"by_gpu": {g: {"pairs": int(len(p)), "energy_rises": int(p["rises"].sum()),
                             "share_energy_rises": float(p["rises"].mean())}
                         for g, p in pairs.groupby("gpu_model")}}
    ex = unlock[(unlock["model_id"] == "openai/gpt-oss-120b") & (unlock["task"] == "gpqa")
                & (unlock["gpu_model"] == "H100") & (unlock["num_gpus_n"] == 1) & (unlock["num_gpus_m"] == 2)]
    sentences = []
    for g, v in values["by_gpu"].items():
        sentences.append(f"on {g} energy per token rises with more GPUs in {v['energy_rises']} of {v['pairs']} "
                         f"same-batch pairs ({_pct(v['share_energy_rises'])})")
    summary = "At the same batch size, " + " and ".join(sentences) + "."
    if len(ex):
        e = ex.iloc[0]
        values["gpt_oss_120b_gpqa_h100"] = {
            "max_batch_1_gpu": int(e["max_batch_n"]), "max_batch_2_gpus": int(e["max_batch_m"]),
            "min_energy_per_token_1_gpu_joules": float(e["min_energy_per_token_joules_n"]),
            "min_energy_per_token_2_gpus_joules": float(e["min_energy_per_token_joules_m"]),
            "min_energy_ratio": float(e["min_energy_ratio"])}
        summary += (f" What a second GPU unlocks: gpt-oss 120B on problem solving reaches batch {int(e['max_batch_n'])} on 1 x "
                    f"H100 but {int(e['max_batch_m'])} on 2 x H100, and its minimum energy per token falls from "
                    f"{e['min_energy_per_token_joules_n']:.3f} to {e['min_energy_per_token_joules_m']:.3f} J "
                    f"({_x(1 / e['min_energy_ratio'])} lower).")
    big = unlock.loc[unlock["min_energy_ratio"].idxmin()]
    values["largest_unlock"] = {"model_id": big["model_id"], "task": big["task"], "gpu_model": big["gpu_model"],
                                "num_gpus_from": int(big["num_gpus_n"]), "num_gpus_to": int(big["num_gpus_m"]),
                                "max_batch_from": int(big["max_batch_n"]), "max_batch_to": int(big["max_batch_m"]),
                                "min_energy_ratio": float(big["min_energy_ratio"])}
    values["share_more_gpus_lower_min_energy"] = float((unlock["min_energy_ratio"] < 1).mean())
    summary += (f" The largest such drop is {_nickname(llm, big['model_id'])} on {_task_name(big['task']).lower()}: {int(big['num_gpus_n'])} to "
                f"{int(big['num_gpus_m'])} x {big['gpu_model']} lifts the largest batch from {int(big['max_batch_n'])} "
                f"to {int(big['max_batch_m'])} and cuts the minimum energy per token {_x(1 / big['min_energy_ratio'])}.")
    shares = [v["share_energy_rises"] for v in values["by_gpu"].values()]
    oss = values.get("gpt_oss_120b_gpqa_h100")
    agrees = bool(oss) and oss["max_batch_2_gpus"] > oss["max_batch_1_gpu"] and oss["min_energy_ratio"] < 1
    paper = {"source": "the paper's published counts and the gpt-oss 120B example",
             "claim": "more GPUs at the same batch raise energy per token in 37 of 37 B200 pairs and 39 of 42 H100 "
                      "pairs; gpt-oss 120B on GPQA: 2 x H100 lowers the minimum energy per token by 67.8% against "
                      "1 x H100, by unlocking larger batches"}
    comparison = (f"Energy per token rises with GPU count in "
                  + ", ".join(f"{_pct(s)}" for s in shares) + " of same-batch pairs per GPU type; in "
                  f"{_pct(values['share_more_gpus_lower_min_energy'])} of (model, task, GPU, n < m) cases the larger "
                  f"count reaches a lower minimum energy per token.")
    filters = {"tasks": ["gpqa", "lm-arena-chat", "sourcegraph-fim"],
               "pairs": "within model, task and GPU type, every pair of GPU counts n < m at the same batch size"}
    return Finding("multi-gpu", "More GPUs: energy at the same batch, and what extra memory unlocks", values, filters,
                   "Share of same-batch GPU-count pairs where energy per token rises; largest batch and minimum "
                   "energy per token per GPU count.", paper, comparison, summary, agrees, pairs)


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


def published(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the published reference rows of a table that may also hold own runs."""
    if "is_reference" not in frame.columns:
        return frame
    return frame[frame["is_reference"].eq(True)]


def _tables(llm: pd.DataFrame | None, diffusion: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The findings are the paper's: computed on published rows only, even from a table with own runs."""
    from harness.published import reference

    return (published(reference.llm_table() if llm is None else llm),
            published(reference.diffusion_table() if diffusion is None else diffusion))


def compute(finding_id: str, llm: pd.DataFrame | None = None, diffusion: pd.DataFrame | None = None) -> Finding:
    """One finding by id, from the given tables or the reference data."""
    if finding_id not in FINDINGS:
        raise HarnessError(f"unknown finding {finding_id!r} (known: {', '.join(FINDINGS)})")
    from harness.analysis import paper

    llm, diffusion = _tables(llm, diffusion)
    return paper.judge(FINDINGS[finding_id](llm, diffusion))


def compute_all(llm: pd.DataFrame | None = None, diffusion: pd.DataFrame | None = None) -> list[Finding]:
    from harness.analysis import paper

    llm, diffusion = _tables(llm, diffusion)
    return [paper.judge(fn(llm, diffusion)) for fn in FINDINGS.values()]


# ---------------------------------------------------------------- diagnose


def load_rows(results_dir: str | None = None) -> pd.DataFrame:
    """Reference rows, plus the harness's own runs from ``results_dir`` when given (same columns)."""
    from harness.published import reference

    table = reference.all_table()
    if results_dir is None:
        return table
    try:
        from harness.measuring import store
    except ModuleNotFoundError as exc:
        if exc.name == "harness.measuring.store":
            raise HarnessError("own runs need harness.measuring.store, which is not installed in this checkout") from None
        raise
    own = store.collect(results_dir)
    if own is None or len(own) == 0:
        raise HarnessError(f"no runs found under {results_dir}")
    return _stack(table, own)


def diagnose(a: str, b: str, table: pd.DataFrame) -> an.Attribution:
    """Select two rows by selector and attribute their energy gap."""
    return an.attribute(an.select_row(table, a), an.select_row(table, b))


def format_attribution(att: an.Attribution) -> str:
    frame = att.to_frame()
    lines = [att.explain(), "", f"{'factor':34} {'B/A':>9} {'A':>12} {'B':>12}  unit"]
    for _, f in frame.iterrows():
        va = "" if f["value_a"] is None or pd.isna(f["value_a"]) else an.format_number(f["value_a"])
        vb = "" if f["value_b"] is None or pd.isna(f["value_b"]) else an.format_number(f["value_b"])
        lines.append(f"{f['name']:34} {f['ratio']:>9.4g} {va:>12} {vb:>12}  {f['unit']}")
    lines.append(f"{'product = energy ratio':34} {att.product:>9.4g} {an.format_number(att.energy_a):>12} "
                 f"{an.format_number(att.energy_b):>12}  {att.energy_column}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def register(sub) -> None:
    p = sub.add_parser("findings", help="recompute the paper's findings from the reference data")
    p.add_argument("--json", action="store_true", help="print every finding as JSON")
    p.add_argument("--id", dest="finding_id", metavar="ID", help=f"one finding: {', '.join(FINDINGS)}")
    p.add_argument("--rows", action="store_true", help="with --json, include each finding's per-item rows")
    p.set_defaults(func=_findings_cmd)

    d = sub.add_parser("diagnose", help="explain the energy gap between two configurations as a product of factors")
    d.add_argument("a", help="selector of configuration A, e.g. model=Qwen/Qwen3-32B,task=gpqa,gpu=B200,"
                             "num_gpus=1,max_num_seqs=128")
    d.add_argument("b", help="selector of configuration B")
    d.add_argument("--results", metavar="DIR", help="also select among the harness's own runs in DIR")
    d.add_argument("--json", action="store_true", help="print the attribution as JSON")
    d.set_defaults(func=_diagnose_cmd)


def _findings_cmd(args) -> int:
    found = [compute(args.finding_id)] if args.finding_id else compute_all()
    if args.json:
        payload = [f.as_dict(with_rows=args.rows) for f in found]
        print(json.dumps(payload if not args.finding_id else payload[0], indent=2))
        return 0
    for f in found:
        verdict = {True: "agrees with the paper", False: "DIFFERS from the paper", None: "no published claim"}[f.agrees]
        print(f"[{f.id}] {f.title}  ({verdict})")
        print(f"  {f.summary}")
        print(f"  paper ({f.paper.get('source', '')}): {f.paper.get('claim', '')}")
        print(f"  check: {f.comparison}")
        print(f"  filters: {json.dumps(jsonable(f.filters))}")
        print()
    return 0


def _diagnose_cmd(args) -> int:
    att = diagnose(args.a, args.b, load_rows(args.results))
    if args.json:
        print(json.dumps(jsonable(att.as_dict()), indent=2))
    else:
        print(format_attribution(att))
    return 0


# ---------------------------------------------------------------- helpers for the book's notebooks


def load_table(source: str = "reference", reference_dir: str | None = None, results_dir: str | None = None) -> pd.DataFrame:
    """The table a notebook works on: the published rows, plus own runs (status ok) from ``results_dir``."""
    from harness.published import reference
    from harness.analysis import summary

    table = summary.load(source, reference_dir)
    if results_dir:
        own = load_rows_own(results_dir)
        if len(own):
            own = own.assign(task_name=own["task"].map(reference.TASK_NAMES))
            table = _stack(table, own)
    return table


def _stack(reference_rows: pd.DataFrame, own: pd.DataFrame) -> pd.DataFrame:
    """Published rows and own runs in one table (columns either lacks are left empty)."""
    import warnings

    own = own.dropna(axis=1, how="all")  # an all-empty column would only blur the dtypes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return pd.concat([reference_rows, own], ignore_index=True)


def load_rows_own(results_dir: str) -> pd.DataFrame:
    """The harness's own runs under ``results_dir`` that finished (status ok), in the reference's columns."""
    from harness.measuring import store

    own = store.collect(results_dir)
    own = own[own["status"] == "ok"].copy()
    if "nickname" not in own.columns or own["nickname"].isna().all():
        own["nickname"] = own["model_id"].astype(str).str.split("/").str[-1] + " (own)"
    return own


def _reader_words(key: str) -> str:
    """A value's key as a reader's words: ``chat_mean_energy_per_response_joules`` -> "chat mean energy per response (J)"."""
    text = label(key)
    return text[:1].lower() + text[1:]


# The framework: layers of knobs and properties -> latent metrics -> end metrics. Each edge names the
# finding whose numbers show it in the data (None where the edge is an identity or a known mechanism).
FRAMEWORK_NODES = (
    # id, label, layer, description
    ("model_size", "Model size", "algorithm", "parameters the GPU must hold and read per token"),
    ("architecture", "Dense or MoE", "algorithm", "a mixture of experts activates a few parameters per token"),
    ("precision", "Weight precision", "algorithm", "BF16 or FP8 weights: bytes per parameter and math throughput"),
    ("output_length", "Output length (task, reasoning)", "algorithm", "tokens generated per response"),
    ("batch_knob", "Batch size knob", "software", "vLLM max_num_seqs, diffusion batch size"),
    ("parallelism", "Parallelism", "software", "tensor, expert or sequence parallel degrees across GPUs"),
    ("cpu_side", "Non-GPU bottlenecks", "software", "CPU-side preprocessing of images and videos"),
    ("gpu_generation", "GPU generation", "hardware", "H100 (80 GB, 700 W) or B200 (180 GB, 1,000 W)"),
    ("gpu_count", "GPU count", "hardware", "1, 2, 4 or 8 GPUs per configuration"),
    ("memory_footprint", "Memory footprint", "latent", "weights plus KV cache or activations"),
    ("memory_headroom", "Memory headroom", "latent", "GPU memory left for more concurrent work"),
    ("batch_reached", "Batch size reached", "latent", "requests or outputs actually processed together"),
    ("utilization", "GPU utilization", "latent", "how much of the GPU's compute and bandwidth is busy"),
    ("compute_volume", "Compute volume", "latent", "work per output: tokens x active parameters, steps x pixels x frames"),
    ("time", "Time", "end", "latency per token or per batch, and total time"),
    ("power", "Power", "end", "average GPU power; a floor is drawn even when idle"),
    ("energy", "Energy per output", "end", "power x time / outputs"),
    ("throughput_per_watt", "Throughput per watt", "end", "outputs per second per watt = 1 / energy per output"),
)
FRAMEWORK_EDGES = (
    # source, target, mechanism, finding id
    ("model_size", "memory_footprint", "weights take memory", None),
    ("model_size", "compute_volume", "more parameters to read and multiply per token", "moe-vs-dense"),
    ("architecture", "compute_volume", "MoE activates few parameters per token", "moe-vs-dense"),
    ("precision", "memory_footprint", "FP8 halves the bytes per weight", "fp8-vs-bf16"),
    ("precision", "utilization", "FP8 kernels help large batches, cost at small ones", "fp8-vs-bf16"),
    ("output_length", "compute_volume", "more tokens per response", "reasoning-vs-chat"),
    ("output_length", "memory_footprint", "long contexts grow the KV cache", "qwen3-32b-b200"),
    ("batch_knob", "batch_reached", "the knob caps concurrency", "batch-size-effect"),
    ("parallelism", "memory_footprint", "weights split across GPUs", "multi-gpu"),
    ("parallelism", "utilization", "communication and smaller shards per GPU", "multi-gpu"),
    ("cpu_side", "utilization", "the GPU waits for inputs", "multimodal-overhead"),
    ("gpu_generation", "memory_headroom", "more memory per GPU", "b200-vs-h100"),
    ("gpu_generation", "time", "faster compute and memory", "b200-vs-h100"),
    ("gpu_generation", "power", "higher power limit and floor", "b200-vs-h100"),
    ("gpu_count", "memory_headroom", "more GPUs, more memory", "multi-gpu"),
    ("gpu_count", "power", "every GPU draws its floor", "multi-gpu"),
    ("memory_footprint", "memory_headroom", "what is left after weights and cache", None),
    ("memory_headroom", "batch_reached", "memory caps the batch", "qwen3-32b-b200"),
    ("batch_reached", "utilization", "bigger batches keep the GPU busy", "batch-size-effect"),
    ("utilization", "power", "a busy GPU draws more power", "batch-size-effect"),
    ("utilization", "time", "a busy GPU finishes more outputs per second", "batch-size-effect"),
    ("compute_volume", "time", "more work takes longer", "text-to-video-range"),
    ("time", "energy", "energy = power x time", None),
    ("power", "energy", "energy = power x time", None),
    ("energy", "throughput_per_watt", "throughput per watt = 1 / energy per output", None),
)
_LAYER_COLUMNS = {"algorithm": 0, "software": 0, "hardware": 0, "latent": 1, "end": 2}


def framework_graph(found: list[Finding] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes (with x, y layout) and edges (with endpoints and, where given, the evidence's summary)."""
    nodes = pd.DataFrame(FRAMEWORK_NODES, columns=["id", "label", "layer", "description"])
    nodes["column"] = nodes["layer"].map(_LAYER_COLUMNS)
    nodes["row"] = nodes.groupby("column").cumcount()
    sizes = nodes.groupby("column")["row"].transform("max") + 1
    tallest = int(sizes.max())
    # stagger the latent and end columns so that edges inside a column do not run through other nodes
    nodes["x"] = nodes["column"] * 1.0 + np.where(nodes["column"] > 0, 0.2 * (nodes["row"] % 2), 0.0)
    nodes["y"] = (nodes["row"] + 0.5) * tallest / sizes
    pos = nodes.set_index("id")[["x", "y"]]
    evidence = {f.id: f.summary for f in (found or [])}
    edges = pd.DataFrame(FRAMEWORK_EDGES, columns=["source", "target", "mechanism", "finding"])
    edges["x"], edges["y"] = pos.loc[edges["source"], "x"].to_numpy(), pos.loc[edges["source"], "y"].to_numpy()
    edges["x2"], edges["y2"] = pos.loc[edges["target"], "x"].to_numpy(), pos.loc[edges["target"], "y"].to_numpy()
    edges["finding"] = edges["finding"].fillna("identity or mechanism")
    edges["evidence"] = edges["finding"].map(evidence).fillna("")
    labels = nodes.set_index("id")["label"]
    edges["edge"] = labels.loc[edges["source"]].to_numpy() + " -> " + labels.loc[edges["target"]].to_numpy()
    # arrowhead position, short of the target node
    edges["ax"] = edges["x"] + 0.85 * (edges["x2"] - edges["x"])
    edges["ay"] = edges["y"] + 0.85 * (edges["y2"] - edges["y"])
    return nodes, edges


def framework_chart(found: list[Finding] | None = None, width: int = 590, height: int = 470):
    """The causal picture as a Vega-Lite graph: layers -> latent metrics -> end metrics."""
    import altair as alt

    nodes, edges = framework_graph(found)
    xs = alt.Scale(domain=[-0.45, 2.6])
    ys = alt.Scale(domain=[float(nodes["y"].max()) + 0.6, -0.4])
    layer_colors = alt.Scale(domain=["algorithm", "software", "hardware", "latent", "end"],
                             range=["#1b9e77", "#7570b3", "#d95f02", "#e7298a", "#444444"])
    lines = alt.Chart(edges).mark_rule(opacity=0.35, strokeWidth=1.6).encode(
        x=alt.X("x:Q", scale=xs, axis=None), y=alt.Y("y:Q", scale=ys, axis=None), x2="x2:Q", y2="y2:Q",
        tooltip=[alt.Tooltip("edge:N", title="edge"), alt.Tooltip("mechanism:N"),
                 alt.Tooltip("finding:N", title="evidence (finding)"), alt.Tooltip("evidence:N", title="what the data say")])
    # arrowheads: a triangle turned along its edge in screen space (y grows downwards)
    span_x, span_y = xs.domain[1] - xs.domain[0], ys.domain[0] - ys.domain[1]
    dx_px = (edges["x2"] - edges["x"]) * width / span_x
    dy_px = (edges["y2"] - edges["y"]) * height / span_y
    edges["angle"] = np.degrees(np.arctan2(dy_px, dx_px)) % 360
    frac = (1 - 16 / np.hypot(dx_px, dy_px)).clip(lower=0.5)  # just outside the target's circle
    edges["ax"] = edges["x"] + frac * (edges["x2"] - edges["x"])
    edges["ay"] = edges["y"] + frac * (edges["y2"] - edges["y"])
    arrows = alt.Chart(edges).mark_point(shape="triangle-right", filled=True, size=60, opacity=0.6, color="#555").encode(
        x=alt.X("ax:Q", scale=xs, axis=None), y=alt.Y("ay:Q", scale=ys, axis=None), angle=alt.Angle("angle:Q", scale=None),
        tooltip=[alt.Tooltip("edge:N", title="edge"), alt.Tooltip("mechanism:N"),
                 alt.Tooltip("finding:N", title="evidence (finding)")])
    dots = alt.Chart(nodes).mark_circle(size=260, opacity=1).encode(
        x=alt.X("x:Q", scale=xs, axis=None), y=alt.Y("y:Q", scale=ys, axis=None),
        color=alt.Color("layer:N", scale=layer_colors, title="layer", legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("label:N", title="node"), alt.Tooltip("layer:N"), alt.Tooltip("description:N")])
    text = alt.Chart(nodes).mark_text(dy=-14, fontSize=11).encode(
        x=alt.X("x:Q", scale=xs, axis=None), y=alt.Y("y:Q", scale=ys, axis=None), text="label:N",
        tooltip=[alt.Tooltip("label:N", title="node"), alt.Tooltip("description:N")])
    heads = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [-0.3] * 3,
                          "title": ["Algorithm, software, hardware", "Latent metrics", "End metrics"]})
    header = alt.Chart(heads).mark_text(fontSize=13, fontWeight="bold").encode(
        x=alt.X("x:Q", scale=xs, axis=None), y=alt.Y("y:Q", scale=ys, axis=None), text="title:N",
        tooltip=[alt.Tooltip("title:N", title="column")])
    return alt.layer(lines, arrows, dots, text, header).properties(width=width, height=height).configure_view(stroke=None)


def times_word(ratio: float, up: str, down: str) -> str:
    """``3.2 -> "3.2 times slower"``, ``0.5 -> "2 times faster"`` (words for a factor above or below 1)."""
    if ratio >= 1:
        return f"{ratio:.3g} times {up}"
    return f"{1 / ratio:.3g} times {down}"
