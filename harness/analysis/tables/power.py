"""Power: the static floor every GPU draws and its share of the energy, throughput per watt, and the
configuration that serves the most under a power budget (W)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from harness.analysis.tables.columns import (
    ENERGY_PER_OUTPUT,
    group_keys,
    is_llm,
    split_kinds,
    table_kind,
)


def estimate_floor_power(df: pd.DataFrame) -> pd.DataFrame:
    """Per GPU model, a per-GPU power floor (W) and where it comes from.

    When the table carries a measured ``idle_power_watts`` (the harness's own runs: the
    mean idle power of one of the run's GPUs, read before the load) its median is used. Otherwise the floor is the
    lowest per-GPU average power of any run on that GPU model: no GPU serving a load
    draws less, so it bounds the static power from above and the static shares built
    on it are upper bounds. The published data holds no idle readings.
    """
    rows = []
    for gpu, part in df.groupby("gpu_model"):
        per_gpu_idle = None
        if "idle_power_watts" in part.columns:
            idle = part["idle_power_watts"].dropna()
            if len(idle):
                per_gpu_idle = float(idle.median())
        if per_gpu_idle is not None:
            rows.append(
                {"gpu_model": gpu, "floor_power_watts_per_gpu": per_gpu_idle, "floor_source": "measured idle power"}
            )
        else:
            per_gpu = (part["avg_power_watts"] / part["num_gpus"]).dropna()
            rows.append(
                {
                    "gpu_model": gpu,
                    "floor_power_watts_per_gpu": float(per_gpu.min()),
                    "floor_source": "lowest per-GPU average power of any run, an upper bound on static power",
                }
            )
    return pd.DataFrame(rows, columns=["gpu_model", "floor_power_watts_per_gpu", "floor_source"])


def static_power_share(df: pd.DataFrame, floor_watts_per_gpu: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Each row with its static power (floor x GPUs, W), its share of average power (a fraction, at most 1) and the
    static and dynamic energy per output (J).

    ``floor_watts_per_gpu`` maps GPU model to a per-GPU floor (W); by default it is
    :func:`estimate_floor_power` of the same table.
    """
    if floor_watts_per_gpu is None:
        est = estimate_floor_power(df)
        floor_watts_per_gpu = dict(zip(est["gpu_model"], est["floor_power_watts_per_gpu"], strict=False))
    out = df.copy()
    floor = out["gpu_model"].map(floor_watts_per_gpu).astype(float)
    out["static_power_watts"] = floor * out["num_gpus"]
    out["static_power_share"] = (out["static_power_watts"] / out["avg_power_watts"]).clip(upper=1.0)
    out["static_energy_per_output_joules"] = out[ENERGY_PER_OUTPUT] * out["static_power_share"]
    out["dynamic_energy_per_output_joules"] = out[ENERGY_PER_OUTPUT] - out["static_energy_per_output_joules"]
    return out


def share_bound(floor_source: str) -> str:
    """ "at most " when the floor is an upper bound on static power (no idle reading), else "": one wording of
    the static share for every chapter."""
    return "at most " if "upper bound" in str(floor_source) else ""


def throughput_per_watt(df: pd.DataFrame) -> pd.DataFrame:
    """Adds ``tokens_per_sec_per_watt`` (LLM rows; tokens/s per W = 1 / energy per token in J) and
    ``outputs_per_sec_per_watt`` (responses, images or videos per second per W)."""
    out = df.copy()
    llm = is_llm(out)
    tokens = pd.Series(np.nan, index=out.index)
    if "output_throughput_tokens_per_sec" in out.columns:
        tokens[llm] = out.loc[llm, "output_throughput_tokens_per_sec"] / out.loc[llm, "avg_power_watts"]
    out["tokens_per_sec_per_watt"] = tokens
    if ENERGY_PER_OUTPUT in out.columns:
        out["outputs_per_sec_per_watt"] = 1.0 / out[ENERGY_PER_OUTPUT]
    else:
        out["outputs_per_sec_per_watt"] = 1.0 / out["energy_per_request_joules"]
    return out


def _throughput(df: pd.DataFrame) -> pd.Series:
    """Tokens/s (LLM rows) or outputs/s (diffusion rows)."""
    if table_kind(df) == "llm":
        return df["output_throughput_tokens_per_sec"]
    return df["throughput_outputs_per_sec"]


def best_under_power_budget(
    df: pd.DataFrame, budget_watts: float, by: Iterable[str] = ("model_id", "task", "gpu_model")
) -> pd.DataFrame:
    """Per group, the configuration that serves the most under a power budget.

    A power-capped site runs as many copies of one configuration as its budget
    powers: ``replicas_in_budget = floor(budget / avg_power)`` (average power of
    all its GPUs) and ``throughput_in_budget = replicas x throughput`` (tokens/s
    for LLMs, outputs/s for diffusion). The best configuration maximises the latter;
    configurations drawing more than the budget are left out.
    """
    out = []
    for part in split_kinds(df):
        part = part[part["avg_power_watts"] <= budget_watts].dropna(subset=["avg_power_watts"]).copy()
        if part.empty:
            continue
        part["replicas_in_budget"] = np.floor(budget_watts / part["avg_power_watts"]).astype(int)
        part["throughput_in_budget"] = part["replicas_in_budget"] * _throughput(part)
        part = part.dropna(subset=["throughput_in_budget"])
        keys = group_keys(by, part)
        out.append(part.loc[list(part.groupby(keys, sort=True)["throughput_in_budget"].idxmax())])
    return pd.concat(out).reset_index(drop=True) if out else df.iloc[0:0].copy()
