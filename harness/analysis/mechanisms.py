"""Why the energy gaps happen, in the framework's latent metrics, with numbers computed from the data.

* KV-cache bytes per token from an architecture (layers x KV heads x head dim x 2 for keys and values x bytes
  per value), and the batch the memory left after the weights allows at a given context length;
* arithmetic intensity: FLOPs per byte read from memory, for LLM decode (grows with the batch) and for one
  diffusion denoising step (already large at batch 1), against the GPU's ridge point (peak FLOP/s over
  memory bandwidth): below it a kernel waits on memory, above it on compute;
* how much decode slows per request as the batch grows (the data's inter-token latency), the evidence that
  decode is memory-bound at small batch.

GPU figures (memory, bandwidth, dense BF16 peak) are the vendors' published specifications, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.vocabulary.hardware import GPU_MEMORY_UTILIZATION, GPU_SPECS, SPEC_SOURCE
from harness.vocabulary.precisions import BYTES_PER_VALUE

__all__ = ["BYTES_PER_VALUE", "GPU_MEMORY_UTILIZATION", "GPU_SPECS", "SPEC_SOURCE", "KvBudget", "kv_budget"]


def ridge_point_flops_per_byte(gpu: str) -> float:
    """Peak FLOP/s over memory bandwidth: the arithmetic intensity where a kernel stops waiting on memory."""
    s = GPU_SPECS[gpu]
    return s["bf16_dense_tflops"] * 1e12 / (s["bandwidth_tb_per_s"] * 1e12)


def kv_bytes_per_token(hf_config: dict, bytes_per_value: int = 2) -> int:
    """Bytes of KV cache one token of context holds: layers x KV heads x head dim x 2 (K and V) x bytes."""
    layers = int(hf_config["num_hidden_layers"])
    heads = int(hf_config.get("num_key_value_heads") or hf_config["num_attention_heads"])
    head_dim = int(hf_config.get("head_dim") or hf_config["hidden_size"] // hf_config["num_attention_heads"])
    return layers * heads * head_dim * 2 * bytes_per_value


@dataclass(frozen=True)
class KvBudget:
    model_id: str
    gpu: str
    num_gpus: int
    kv_bytes_per_token: int
    weights_bytes: float
    kv_capacity_bytes: float  # GPU memory vLLM may use, less the weights
    kv_capacity_tokens: float
    context_tokens: float
    batch_allowed: float  # requests whose whole context fits at once

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def kv_budget(
    model_id: str,
    hf_config: dict,
    total_params_billions: float,
    weight_precision: str,
    gpu: str,
    num_gpus: int,
    context_tokens: float,
) -> KvBudget:
    """The batch the KV cache allows: (usable memory - weights) / (KV bytes per token x tokens per request).

    Activations and CUDA graphs also take memory, so this is an upper bound on the batch memory allows."""
    per_token = kv_bytes_per_token(hf_config, 2)  # vLLM keeps the KV cache in BF16 unless told otherwise
    weights = total_params_billions * 1e9 * BYTES_PER_VALUE.get(weight_precision, 2)
    usable = GPU_MEMORY_UTILIZATION * GPU_SPECS[gpu]["memory_gb"] * 1e9 * num_gpus
    capacity = max(0.0, usable - weights)
    tokens = capacity / per_token
    return KvBudget(
        model_id,
        gpu,
        int(num_gpus),
        per_token,
        weights,
        capacity,
        tokens,
        float(context_tokens),
        tokens / context_tokens if context_tokens else float("nan"),
    )


def decode_intensity(batch: float, weight_bytes_per_param: float = 2.0) -> float:
    """FLOPs per byte of one decode step: 2 FLOPs per parameter per sequence, each weight read once per step
    (KV reads left out, so this is an upper bound)."""
    return 2.0 * batch / weight_bytes_per_param


def diffusion_tokens_per_image(height_pixels: float, width_pixels: float, vae_factor: int = 8, patch: int = 2) -> float:
    """Latent tokens a diffusion transformer processes per image per step (8x VAE, 2x2 patches, as in FLUX, SD3)."""
    return (height_pixels / vae_factor / patch) * (width_pixels / vae_factor / patch)


def diffusion_tokens_per_video(height_pixels: float, width_pixels: float, frames: float, temporal: int = 4) -> float:
    """Latent tokens per video per step: the autoencoder also keeps one frame in ``temporal`` (plus the first),
    as in Wan 2.1, HunyuanVideo and CogVideoX."""
    return ((frames - 1) // temporal + 1) * diffusion_tokens_per_image(height_pixels, width_pixels)


def diffusion_intensity(tokens_per_output: float, batch: float = 1, weight_bytes_per_param: float = 2.0) -> float:
    """FLOPs per weight byte of one denoising step: every latent token meets every weight (2 FLOPs each)."""
    return 2.0 * tokens_per_output * batch / weight_bytes_per_param


def itl_growth(series: pd.DataFrame) -> pd.DataFrame:
    """Per series (model, task, GPU model, count): how many times the batch grew from its smallest to its
    largest run and how many times the median inter-token latency grew with it."""
    rows = []
    for key, g in series.groupby(["model_id", "task", "gpu_model", "num_gpus"]):
        g = g.dropna(subset=["median_itl_ms"])
        if g["batch_size"].nunique() < 2:
            continue
        lo, hi = g.loc[g["batch_size"].idxmin()], g.loc[g["batch_size"].idxmax()]
        rows.append(
            dict(zip(["model_id", "task", "gpu_model", "num_gpus"], key, strict=False))
            | {
                "batch_growth": hi["batch_size"] / lo["batch_size"],
                "itl_growth": hi["median_itl_ms"] / lo["median_itl_ms"],
                "small_batch": lo["batch_size"],
                "large_batch": hi["batch_size"],
            }
        )
    return pd.DataFrame(rows)


# --- the KV cache against the largest batch that ran ----------------------------------------------
# Appended during the restructure (#20); its typing import joins the header's imports once they settle.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from harness.workloads.archs import Arch


@dataclass(frozen=True)
class BatchCap:
    """One task's largest batch that ran on one GPU, against the batch the KV cache allows."""

    task: str
    budget: KvBudget  # at the mean output length (tokens) of the task's runs on one GPU
    batch_size: float  # the largest batch setting that ran (max_num_seqs, requests)
    avg_batch_size: float  # requests running on average at that setting
    limit: str  # what caps the batch: "batch setting", "memory" or "beyond estimate"


@dataclass(frozen=True)
class ModelBatchCaps:
    """One architecture's published model (by its reasoning run's nickname) and its caps, reasoning first."""

    nickname: str
    caps: tuple[BatchCap, ...]


def batch_limit(avg_batch_size: float, batch_allowed: float) -> str:
    """What caps a batch that kept ``avg_batch_size`` requests running when memory allows ``batch_allowed``
    whole contexts (both in requests): ``"batch setting"`` below that, ``"memory"`` up to twice it (a decoding
    request holds half its answer on average) with 10% slack, ``"beyond estimate"`` above (vLLM preempts and
    recomputes requests when the cache is full)."""
    if avg_batch_size < batch_allowed:
        return "batch setting"
    if avg_batch_size <= 2 * batch_allowed * 1.1:
        return "memory"
    return "beyond estimate"


def kv_batch_caps(
    published: pd.DataFrame, archs: dict[str, Arch], gpu: str, tasks: tuple[str, ...] = ("gpqa", "lm-arena-chat")
) -> list[ModelBatchCaps]:
    """For each full-size LLM architecture with a published run on ``tasks[0]``: on each task, its model's
    largest batch that ran on one ``gpu`` against the KV-cache budget (:func:`kv_budget`) at the mean output
    length of those runs, and what capped it (:func:`batch_limit`).

    ``published``: published rows (``model_id``, ``nickname``, ``task``, ``num_gpus``, ``batch_size``,
    ``avg_batch_size``, ``avg_output_len`` in tokens, ``total_params_billions``, ``weight_precision``);
    ``archs``: the architecture files by name (``harness.workloads.archs.all_archs()``); each task's model is
    the architecture's reference model for it, else its model for ``tasks[0]``. Empty when ``gpu`` has no
    specification."""
    out: list[ModelBatchCaps] = []
    for arch in archs.values():
        if arch.kind != "llm" or arch.is_tiny or not arch.reference_model(tasks[0]) or gpu not in GPU_SPECS:
            continue
        first_model = arch.reference_model(tasks[0])
        runs = {
            t: published[
                (published["model_id"] == (arch.reference_model(t) or first_model))
                & (published["task"] == t)
                & (published["num_gpus"] == 1)
            ]
            for t in tasks
        }
        if runs[tasks[0]].empty:
            continue
        caps = []
        for task in tasks:
            rows = runs[task]
            if rows.empty:
                continue
            top = rows.loc[rows["batch_size"].idxmax()]
            budget = kv_budget(
                top["model_id"],
                arch.hf_config(),
                top["total_params_billions"],
                top["weight_precision"],
                gpu,
                1,
                rows["avg_output_len"].mean(),
            )
            running = float(top["avg_batch_size"])
            caps.append(
                BatchCap(task, budget, float(top["batch_size"]), running, batch_limit(running, budget.batch_allowed))
            )
        out.append(ModelBatchCaps(runs[tasks[0]]["nickname"].iloc[0], tuple(caps)))
    return out
