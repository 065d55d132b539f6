"""A configuration named by a selector (``model=...,task=...,gpu=...,max_num_seqs=...``): its facts, its
prediction with intervals, and the prediction explained against the nearest measured configuration."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import HarnessError, SelectorError
from harness.vocabulary.tasks import DIFFUSION_TASKS, TASKS

from .calibration import fit
from .features import OUTPUTS, kind_of, spec_of
from .model import DEFAULT_COVERAGE, Fit
from .sources import cached_fit, load_fit_table, with_model_facts

QUERY_NUMBERS = (
    "num_gpus",
    "max_num_seqs",
    "batch_size",
    "total_params_billions",
    "activated_params_billions",
    "height_pixels",
    "width_pixels",
    "inference_steps",
    "num_frames",
    "ulysses_degree",
    "ring_degree",
)
QUERY_ALIASES = {
    "total": "total_params_billions",
    "active": "activated_params_billions",
    "params": "total_params_billions",
    "steps": "inference_steps",
    "height": "height_pixels",
    "width": "width_pixels",
    "frames": "num_frames",
    "arch": "architecture",
}


def query_row(selector: str, table: pd.DataFrame) -> pd.DataFrame:
    """One-row frame of facts from a selector; a known model's facts come from the table."""
    from harness.analysis.tables import parse_selector

    terms = {QUERY_ALIASES.get(k, k): v for k, v in parse_selector(selector).items()}
    if "task" not in terms:
        raise SelectorError(f"selector {selector!r} names no task (known: {', '.join(TASKS)})")
    task = terms["task"]
    if task not in TASKS and task not in set(table["task"].astype(str)):
        raise SelectorError(f"selector {selector!r}: unknown task {task!r} (known: {', '.join(TASKS)})")
    row: dict[str, Any] = {"task": task}
    model = terms.get("model_id")
    if model:
        ids = table["model_id"].astype(str)
        hit = ids[(ids == model) | (ids.str.split("/").str[-1] == model)]
        if hit.empty:  # not in the fit table (own runs): the published model index may still know its facts
            published = with_model_facts(pd.DataFrame({"model_id": [model]}))
            if published["total_params_billions"].notna().all():
                table = pd.concat([table, published], ignore_index=True)
                hit = pd.Series([model])
        if not hit.empty:
            model = hit.iloc[0]
            known = table[table["model_id"] == model].iloc[0]
            for col in (
                "total_params_billions",
                "activated_params_billions",
                "weight_precision",
                "architecture",
                "base_model_id",
            ):
                if col in known.index:
                    row[col] = known[col]
        elif not {"total_params_billions", "activated_params_billions"} <= set(terms):
            import difflib

            close = difflib.get_close_matches(model, sorted(set(ids)), n=2, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise SelectorError(
                f"unknown model {model!r}: give its facts instead (total=..., active=... in billions "
                f"of parameters, precision=bfloat16|fp8|mxfp4){hint}"
            )
        row["model_id"] = model
    else:
        row["model_id"] = "(unseen model)"
    for k, v in terms.items():
        if k in ("task", "model_id"):
            continue
        if k in QUERY_NUMBERS:
            try:
                row[k] = float(v)
            except ValueError:
                raise SelectorError(f"selector {selector!r}: {k}={v!r} is not a number") from None
        elif k in ("gpu_model", "weight_precision", "architecture"):
            row[k] = v
        else:
            raise SelectorError(
                f"selector {selector!r}: unknown key {k!r} (known: model, task, gpu, gpus, batch, "
                f"max_num_seqs, total, active, precision, arch, steps, height, width, frames, "
                f"ulysses, ring)"
            )
    kind = "diffusion" if task in DIFFUSION_TASKS else "llm"
    batch = spec_of(kind).batch
    if "batch_size" in row and kind == "llm":
        row["max_num_seqs"] = row.pop("batch_size")
    row.setdefault("weight_precision", "bfloat16")
    row.setdefault("num_gpus", 1.0)
    row.setdefault("base_model_id", row["model_id"])
    for k in ("total_params_billions", "activated_params_billions"):
        if k not in row or pd.isna(row[k]):
            raise SelectorError(f"selector {selector!r}: unknown model; give total= and active= parameters (billions)")
    if "gpu_model" not in row:
        raise SelectorError(f"selector {selector!r} names no GPU (gpu=H100 or gpu=B200)")
    if batch not in row:
        raise SelectorError(f"selector {selector!r} names no batch ({'max_num_seqs' if kind == 'llm' else 'batch'}=N)")
    if kind == "diffusion":
        same = table[(table["model_id"] == row["model_id"])] if "model_id" in row else table.iloc[:0]
        for col, default in (
            ("height_pixels", None),
            ("width_pixels", None),
            ("inference_steps", None),
            ("num_frames", 1),
            ("ulysses_degree", 1),
            ("ring_degree", 1),
        ):
            if col not in row:
                if not same.empty and col in same.columns:
                    row[col] = same[col].mode().iloc[0]
                elif default is not None:
                    row[col] = default
                else:
                    raise SelectorError(f"selector {selector!r}: give {col.split('_')[0]}= for an unseen model")
    return pd.DataFrame([row])


def predict_selector(selector: str, source: str = "reference", coverage: float = DEFAULT_COVERAGE) -> dict[str, Any]:
    """Predicted quantities (reference column names and units) with intervals, the level and the model's factors."""
    table = load_fit_table(source)
    query = query_row(selector, table)
    kind = kind_of(query)
    f = cached_fit(source, kind) if source == "reference" else fit(table, kind)
    known_gpus = f.design.gpus
    if str(query.at[0, "gpu_model"]) not in known_gpus:
        raise SelectorError(f"GPU {query.at[0, 'gpu_model']!r} is not in the fit (known: {', '.join(known_gpus)})")
    if str(query.at[0, "task"]) not in f.design.tasks:
        raise SelectorError(f"task {query.at[0, 'task']!r} is not in the fit (known: {', '.join(f.design.tasks)})")
    pred = f.predict(query, coverage).iloc[0]
    out: dict[str, Any] = {str(k): (v.item() if hasattr(v, "item") else v) for k, v in query.iloc[0].items()}
    for name in OUTPUTS[kind]:
        if name in pred.index and np.isfinite(pred[name]):
            out[name] = float(pred[name])
            out[f"{name}_low"], out[f"{name}_high"] = float(pred[f"{name}_low"]), float(pred[f"{name}_high"])
    out["level"] = pred["level"]
    out["interval_coverage"] = coverage
    out["fit"] = source
    out["explanation"] = explain(out, f)
    return out


def explain(predicted: Mapping[str, Any], f: Fit) -> dict[str, Any] | None:
    """The prediction against the nearest measured configuration in the fit, in ``diagnose``'s factors."""
    from harness.analysis.tables import attribute

    rows = f.frame
    same = rows[(rows["task"] == predicted["task"]) & (rows["gpu_model"] == predicted["gpu_model"])]
    if same.empty:
        return None
    mine = same[same["model_id"] == predicted.get("model_id")]
    pool = mine if not mine.empty else same
    batch = spec_of(f.kind).batch
    gap = (np.log2(pool[batch].astype(float)) - math.log2(float(predicted[batch]))).abs()
    if mine.empty:
        gap = (
            gap
            + 4
            * (
                np.log(pool["activated_params_billions"].astype(float))
                - math.log(float(predicted["activated_params_billions"]))
            ).abs()
        )
    if "num_gpus" in pool.columns:
        gap = gap + (np.log2(pool["num_gpus"].astype(float)) - math.log2(float(predicted["num_gpus"]))).abs()
    nearest = pool.loc[gap.idxmin()]
    row = pd.Series({**nearest.to_dict(), **{k: v for k, v in predicted.items() if not isinstance(v, dict)}})
    if f.kind == "llm":
        row["avg_output_len"] = (
            predicted.get("energy_per_request_joules", np.nan) / predicted["energy_per_token_joules"]
        )
    try:
        att = attribute(nearest, row)
    except HarnessError:
        return None
    return {"against": att.label_a, "factors": [{"factor": x.name, "ratio": float(x.ratio)} for x in att.factors]}
