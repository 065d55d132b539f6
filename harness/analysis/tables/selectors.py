"""Selectors: one row of a table named by ``key=value`` terms (``model=Qwen/Qwen3-32B,task=gpqa,gpu=B200``),
with one-line errors that say how to narrow or fix a selector."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import pandas as pd

from harness.errors import SelectorError

SELECTOR_ALIASES = {
    "model": "model_id",
    "gpu": "gpu_model",
    "gpus": "num_gpus",
    "batch": "batch_size",
    "precision": "weight_precision",
    "ulysses": "ulysses_degree",
    "ring": "ring_degree",
    "run": "run_id",
}
# Columns that tell two configurations of one model and task apart; shown when a selector is ambiguous.
DISTINGUISHING = (
    "source",
    "run_id",
    "task",
    "model_id",
    "gpu_model",
    "num_gpus",
    "max_num_seqs",
    "batch_size",
    "weight_precision",
    "ulysses_degree",
    "ring_degree",
    "tensor_parallel",
    "expert_parallel",
)


def parse_selector(text: str) -> dict[str, str]:
    """``"model=Qwen/Qwen3-32B,task=gpqa,gpu=B200"`` -> ``{"model_id": ..., "task": ..., "gpu_model": ...}``."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" not in part:
            raise SelectorError(f"selector term {part!r} is not key=value (selector {text!r})")
        key, value = (s.strip() for s in part.split("=", 1))
        key = SELECTOR_ALIASES.get(key, key)
        if not key or not value:
            raise SelectorError(f"selector term {part!r} has an empty key or value")
        out[key] = value
    if not out:
        raise SelectorError("empty selector: give key=value terms such as model=Qwen/Qwen3-32B,task=gpqa")
    return out


def _match_column(series: pd.Series, key: str, value: str) -> pd.Series:
    if key == "model_id":
        exact = series.astype(str) == value
        if exact.any():
            return exact
        # the short name after the organisation also selects ("Qwen3-32B")
        return series.astype(str).str.split("/").str[-1] == value
    if pd.api.types.is_numeric_dtype(series):
        try:
            number = float(value)
        except ValueError:
            raise SelectorError(f"selector {key}={value!r}: {key} is numeric") from None
        return series.astype(float) == number
    return series.astype(str).str.lower() == value.lower()


def select_row(df: pd.DataFrame, selector: str | Mapping[str, str]) -> pd.Series:
    """The one row a selector names; :class:`SelectorError` (one line) when it names none or several."""
    terms = parse_selector(selector) if isinstance(selector, str) else dict(selector)
    text = selector if isinstance(selector, str) else ",".join(f"{k}={v}" for k, v in terms.items())
    unknown = [k for k in terms if k not in df.columns]
    if unknown:
        keys = sorted(set(SELECTOR_ALIASES) | {c for c in DISTINGUISHING if c in df.columns})
        raise SelectorError(f"selector {text!r}: unknown key {', '.join(unknown)} (known: {', '.join(keys)})")
    masks = {k: _match_column(df[k], k, v) for k, v in terms.items()}
    mask = pd.concat(masks.values(), axis=1).all(axis=1)
    hits = df[mask]
    if len(hits) == 1:
        return hits.iloc[0]
    if hits.empty:
        raise SelectorError(f"selector {text!r} matches no row; {_near_misses(df, terms, masks)}")
    cols = [c for c in DISTINGUISHING if c in hits.columns and c not in terms and hits[c].nunique(dropna=True) > 1]
    options = "; ".join(f"{c} in {{{', '.join(_values(hits[c]))}}}" for c in cols) or "identical rows"
    raise SelectorError(f"selector {text!r} matches {len(hits)} rows; narrow it with {options}")


def _values(series: pd.Series, limit: int = 12) -> list[str]:
    vals = sorted(series.dropna().unique().tolist(), key=lambda v: (isinstance(v, str), v))
    out = [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in vals[:limit]]
    if len(vals) > limit:
        out.append(f"... {len(vals) - limit} more")
    return out


def _near_misses(df: pd.DataFrame, terms: dict, masks: dict) -> str:
    """For each term, how many rows the others match and which values that key takes among them."""
    hints, suggestions = [], []
    for key, value in terms.items():
        column = df[key]
        if masks[key].any() or pd.api.types.is_numeric_dtype(column):
            continue
        known = [str(v) for v in column.dropna().unique()]
        close = difflib.get_close_matches(value, known, n=3, cutoff=0.6)
        if close:
            suggestions.append(f"{key}={value} exists nowhere; did you mean {' or '.join(close)}?")
    for key in terms:
        others = [m for k, m in masks.items() if k != key]
        rest = pd.concat(others, axis=1).all(axis=1) if others else pd.Series(True, index=df.index)
        if rest.any():
            hints.append(
                f"without {key}={terms[key]} it matches {int(rest.sum())} rows with {key} in "
                f"{{{', '.join(_values(df.loc[rest, key]))}}}"
            )
    if not hints:
        hints.append("no two of its terms match together")
    return "; ".join(hints + suggestions)
