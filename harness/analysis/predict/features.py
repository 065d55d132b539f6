"""From facts to the regression's columns, and from the modelled quantities back to the published ones.

A configuration's facts (model size, precision, GPU model and count, task, architecture, batch knob) become
physically named features (log2 batch, log active weight bytes per GPU, log memory headroom, ...), see
:func:`base_features` and :class:`Design`; the modelled quantities are logs (:func:`targets`), and the published
quantities follow from them through the framework's identities (:func:`derive`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.vocabulary.hardware import GPU_MEMORY_GB, GPU_MEMORY_UTILIZATION
from harness.vocabulary.precisions import BYTES_PER_VALUE
from harness.vocabulary.tasks import DIFFUSION_TASKS

# A GPU the table does not know is taken as an H100 (80 GB); a precision it does not know as bfloat16 (2 bytes).
FALLBACK_GPU_MEMORY_GB = GPU_MEMORY_GB["H100"]
FALLBACK_BYTES_PER_VALUE = BYTES_PER_VALUE["bfloat16"]


@dataclass(frozen=True)
class KindSpec:
    """What one kind of model (LLM or diffusion) is keyed and modelled by."""

    kind: str
    series_keys: tuple[str, ...]
    batch: str
    base: tuple[str, ...]  # modelled quantities (log), before the identities


LLM = KindSpec(
    "llm",
    ("model_id", "task", "gpu_model", "num_gpus"),
    "max_num_seqs",
    ("avg_batch_size", "median_itl_ms", "avg_power_watts", "step_time_ratio"),
)
DIFFUSION = KindSpec(
    "diffusion",
    (
        "model_id",
        "task",
        "gpu_model",
        "num_gpus",
        "ulysses_degree",
        "ring_degree",
        "height_pixels",
        "width_pixels",
        "inference_steps",
        "num_frames",
    ),
    "batch_size",
    ("batch_latency_s", "avg_power_watts"),
)
# Predicted quantities per kind, named as the reference names them.
OUTPUTS = {
    "llm": (
        "energy_per_token_joules",
        "avg_power_watts",
        "median_itl_ms",
        "output_throughput_tokens_per_sec",
        "avg_batch_size",
        "energy_per_request_joules",
    ),
    "diffusion": ("energy_per_output_joules", "avg_power_watts", "batch_latency_s", "throughput_outputs_per_sec"),
}
FACT_COLUMNS = (
    "task",
    "gpu_model",
    "num_gpus",
    "total_params_billions",
    "activated_params_billions",
    "weight_precision",
)


def kind_of(frame: pd.DataFrame | Mapping[str, Any]) -> str:
    """``"diffusion"`` when the (first) row's task is a diffusion task, else ``"llm"``."""
    task = frame["task"].iloc[0] if isinstance(frame, pd.DataFrame) else frame["task"]
    return "diffusion" if task in DIFFUSION_TASKS else "llm"


def spec_of(kind: str) -> KindSpec:
    """The :class:`KindSpec` of ``"llm"`` or ``"diffusion"``."""
    return LLM if kind == "llm" else DIFFUSION


def _col(frame: pd.DataFrame, name: str, default: Any = np.nan) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(default, index=frame.index)


def base_features(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Facts that do not depend on the fit's categories.

    ``L`` is log2 of the batch knob; ``log_active_bytes_per_gpu`` the natural log of the active weights each GPU
    reads per step (billions of parameters x bytes per value / GPUs, i.e. GB); for LLMs ``log_headroom`` is log2
    of the GB of GPU memory left for the KV cache and ``z`` the log2 of the requests it could hold, up to a constant.
    """
    g = _col(frame, "num_gpus").astype(float)
    bytes_ = _col(frame, "weight_precision", "bfloat16").map(
        lambda p: BYTES_PER_VALUE.get(str(p).lower(), FALLBACK_BYTES_PER_VALUE)
    )
    total = _col(frame, "total_params_billions").astype(float)
    active = _col(frame, "activated_params_billions").astype(float)
    mem = _col(frame, "gpu_model").map(lambda m: GPU_MEMORY_GB.get(str(m), FALLBACK_GPU_MEMORY_GB)).astype(float)
    b = _col(frame, spec_of(kind).batch).astype(float)
    out = pd.DataFrame(index=frame.index)
    out["L"] = np.log2(b)
    out["log_active_bytes_per_gpu"] = np.log(active * bytes_ / g)
    out["log_gpus"] = np.log2(g)
    if kind == "llm":
        headroom = np.maximum(g * mem * GPU_MEMORY_UTILIZATION - total * bytes_, 0.05 * g * mem)
        out["log_headroom"] = np.log2(headroom)
        out["log_total"] = np.log2(total)
        # requests the KV cache could hold, up to a constant: headroom over a per-request KV size ~ model size^0.5
        out["z"] = out["L"] - out["log_headroom"] + 0.5 * out["log_total"]
    else:
        frames_ = _col(frame, "num_frames", 1).fillna(1).astype(float)
        work = (
            _col(frame, "inference_steps").astype(float)
            * _col(frame, "height_pixels").astype(float)
            * _col(frame, "width_pixels").astype(float)
            * frames_
        )
        out["log_work"] = np.log(work)
        out["log_ulysses"] = np.log2(_col(frame, "ulysses_degree", 1).fillna(1).astype(float))
        out["log_ring"] = np.log2(_col(frame, "ring_degree", 1).fillna(1).astype(float))
        out["log_frames"] = np.log2(frames_)
    return out


@dataclass
class Design:
    """How facts become the regression's columns (categories and hinge knots fixed by the fit set)."""

    kind: str
    gpus: tuple[str, ...]
    tasks: tuple[str, ...]
    knots: tuple[float, ...]
    columns: tuple[str, ...] = ()

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The design matrix of ``frame``'s rows (one column per name in ``columns``, set by this call)."""
        f = base_features(frame, self.kind)
        cols: dict[str, pd.Series] = {"one": pd.Series(1.0, index=frame.index)}
        L = f["L"]
        cols["L"], cols["L2"] = L, L**2
        for name in f.columns:
            if name not in ("L", "z"):
                cols[name] = f[name]
                cols[f"L*{name}"] = L * f[name]
        for gpu in self.gpus[1:]:
            is_gpu = (frame["gpu_model"].astype(str) == gpu).astype(float)
            cols[f"gpu={gpu}"] = is_gpu
            cols[f"L*gpu={gpu}"] = L * is_gpu
        for task in self.tasks[1:]:
            is_task = (frame["task"].astype(str) == task).astype(float)
            cols[f"task={task}"] = is_task
            cols[f"L*task={task}"] = L * is_task
        if self.kind == "llm":
            arch = _col(frame, "architecture", "").astype(str).str.lower()
            prec = _col(frame, "weight_precision", "bfloat16").astype(str).str.lower()
            for name, mask in (
                ("moe", arch.str.contains("moe")),
                ("hybrid", arch.str.contains("mamba")),
                ("fp8", prec == "fp8"),
                ("mxfp4", prec == "mxfp4"),
            ):
                cols[name] = mask.astype(float)
                cols[f"L*{name}"] = L * mask.astype(float)
            for k in self.knots:
                cols[f"hinge{k:.1f}"] = np.maximum(f["z"] - k, 0.0)
        frame_cols = pd.DataFrame(cols)
        self.columns = tuple(frame_cols.columns)
        return frame_cols.to_numpy(dtype=float)


def make_design(frame: pd.DataFrame, kind: str) -> Design:
    """The design of a fit set: its GPU models and tasks as categories; for LLMs, hinge knots at quantiles of z."""
    gpus = tuple(sorted(frame["gpu_model"].astype(str).unique()))
    tasks = tuple(sorted(frame["task"].astype(str).unique()))
    knots: tuple[float, ...] = ()
    if kind == "llm":
        z = base_features(frame, kind)["z"]
        knots = tuple(float(np.round(q, 1)) for q in np.quantile(z, [0.3, 0.55, 0.8]))
    return Design(kind, gpus, tasks, knots)


def targets(frame: pd.DataFrame, kind: str) -> np.ndarray:
    """Log of the modelled quantities, one column each (see ``KindSpec.base``)."""
    if kind == "llm":
        c = frame["avg_batch_size"].astype(float)
        itl = frame["median_itl_ms"].astype(float)
        ratio = frame["output_throughput_tokens_per_sec"].astype(float) * itl / 1000.0 / c
        cols = [c, itl, frame["avg_power_watts"].astype(float), ratio]
    else:
        cols = [frame["batch_latency_s"].astype(float), frame["avg_power_watts"].astype(float)]
    return np.log(np.column_stack(cols))


def derive(logs: np.ndarray, b: np.ndarray, kind: str, output_len: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The published quantities from the modelled ones (batch knob ``b``), through the framework's identities.

    LLM: batch reached (requests), median ITL (ms), power (W), output throughput (tokens/s), energy per token (J)
    and, given the mean output length (tokens), energy per request (J). Diffusion: batch latency (s), power (W),
    throughput (outputs/s) and energy per output (J).
    """
    if kind == "llm":
        c = np.minimum(np.exp(logs[:, 0]), b)
        itl, power, ratio = np.exp(logs[:, 1]), np.exp(logs[:, 2]), np.exp(logs[:, 3])
        throughput = ratio * c / (itl / 1000.0)
        out = {
            "avg_batch_size": c,
            "median_itl_ms": itl,
            "avg_power_watts": power,
            "output_throughput_tokens_per_sec": throughput,
            "energy_per_token_joules": power / throughput,
        }
        if output_len is not None:
            out["energy_per_request_joules"] = out["energy_per_token_joules"] * output_len
        return out
    latency, power = np.exp(logs[:, 0]), np.exp(logs[:, 1])
    return {
        "batch_latency_s": latency,
        "avg_power_watts": power,
        "throughput_outputs_per_sec": b / latency,
        "energy_per_output_joules": power * latency / b,
    }


def observed(frame: pd.DataFrame, kind: str) -> dict[str, np.ndarray]:
    """The measured values of the predicted quantities (NaN where the table lacks a column)."""
    names = OUTPUTS[kind]
    return {n: frame[n].to_numpy(float) if n in frame.columns else np.full(len(frame), np.nan) for n in names}


def batch_values(frame: pd.DataFrame, kind: str) -> np.ndarray:
    """The batch knob of each row (``max_num_seqs`` for LLMs, ``batch_size`` for diffusion), as floats."""
    return frame[spec_of(kind).batch].astype(float).to_numpy()


def series_id(frame: pd.DataFrame, kind: str) -> pd.Series:
    """A text key per row naming its series (the kind's series keys joined by ``|``)."""
    keys = [k for k in spec_of(kind).series_keys if k in frame.columns]
    out = _key_text(frame[keys[0]])
    for k in keys[1:]:
        out = out + "|" + _key_text(frame[k])
    return out


def _key_text(column: pd.Series) -> pd.Series:
    """Text of a key column, numbers written without a trailing .0 (own runs and selectors give floats)."""
    if pd.api.types.is_numeric_dtype(column):
        return column.map(lambda v: str(int(v)) if pd.notna(v) and float(v).is_integer() else str(v))
    return column.astype(str)


def model_task_id(frame: pd.DataFrame) -> pd.Series:
    """A text key per row naming its model and task (``model_id|task``)."""
    return frame["model_id"].astype(str) + "|" + frame["task"].astype(str)
