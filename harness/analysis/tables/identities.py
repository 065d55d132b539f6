"""The row identities every published row satisfies, and which rows break them.

* LLM: ``energy_per_token (J) = avg_power (W) / output_throughput (tokens/s)`` and
  ``energy_per_request (J) = energy_per_token (J) x avg_output_len (tokens)``;
* diffusion: ``energy_per_output (J) = avg_power (W) x batch_latency (s) / batch_size`` and
  ``throughput (outputs/s) = batch_size / batch_latency (s)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.tables.columns import (
    CONFIG_KEYS,
    DIFFUSION_TIME,
    ENERGY_PER_OUTPUT,
    ENERGY_PER_TOKEN,
    is_llm,
    present_columns,
)


def identity_errors(df: pd.DataFrame) -> pd.DataFrame:
    """Relative error of every identity on every row (long format: one row per row x identity).

    LLM: ``energy_per_token = avg_power / output_throughput`` and
    ``energy_per_request = energy_per_token * avg_output_len``.
    Diffusion: ``energy_per_output = avg_power * batch_latency / batch_size`` and
    ``throughput = batch_size / batch_latency``. Rows without energy are skipped.
    ``rel_error`` is ``|expected - actual| / |actual|`` (a fraction, not a percentage).
    """
    frames = []
    llm = df[is_llm(df)]
    diff = df[~is_llm(df)]

    def rows(part: pd.DataFrame, name: str, expected: pd.Series, actual: pd.Series) -> None:
        ok = expected.notna() & actual.notna()
        if not ok.any():
            return
        rel = (expected[ok] - actual[ok]).abs() / actual[ok].abs().where(actual[ok] != 0, np.nan)
        keys = present_columns(CONFIG_KEYS, part)
        frame = part.loc[ok, keys].copy()
        frame["identity"] = name
        frame["expected"] = expected[ok]
        frame["actual"] = actual[ok]
        frame["rel_error"] = rel
        frames.append(frame)

    if len(llm):
        rows(
            llm,
            "energy_per_token = avg_power / output_throughput",
            llm["avg_power_watts"] / llm["output_throughput_tokens_per_sec"],
            llm[ENERGY_PER_TOKEN],
        )
        rows(
            llm,
            "energy_per_request = energy_per_token x avg_output_len",
            llm[ENERGY_PER_TOKEN] * llm["avg_output_len"],
            llm["energy_per_request_joules"],
        )
    if len(diff):
        rows(
            diff,
            "energy_per_output = avg_power x batch_latency / batch_size",
            diff["avg_power_watts"] * diff[DIFFUSION_TIME] / diff["batch_size"],
            diff[ENERGY_PER_OUTPUT],
        )
        rows(
            diff,
            "throughput = batch_size / batch_latency",
            diff["batch_size"] / diff[DIFFUSION_TIME],
            diff["throughput_outputs_per_sec"],
        )
    if not frames:
        return pd.DataFrame(columns=["identity", "expected", "actual", "rel_error"])
    return pd.concat(frames, ignore_index=True)


def check_identities(df: pd.DataFrame, rtol: float = 1e-3) -> pd.DataFrame:
    """Rows that break an identity by more than ``rtol`` (a relative error, as a fraction); empty when all hold."""
    errors = identity_errors(df)
    bad = errors["rel_error"].isna() | (errors["rel_error"] > rtol)
    return errors[bad].reset_index(drop=True)
