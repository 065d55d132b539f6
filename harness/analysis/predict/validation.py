"""Cross-validation of the model: held-out splits, their log errors, and the validation table.

Splits: leave one batch out inside a series (interpolation), leave one GPU count out, leave one model out (all
precisions of a base model; predicted from its facts alone), and H100 to B200 (a model's B200 rows held out).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from harness.errors import SelectorError

from .features import OUTPUTS, batch_values, derive, model_task_id, observed, series_id, targets
from .model import DEFAULT_COVERAGE, NormalEquations, fit, stratum, usable_rows

SPLITS = ("batch", "gpu-count", "model", "transfer")
SPLIT_NAMES = {
    "batch": "leave one batch out",
    "gpu-count": "leave one GPU count out",
    "model": "leave one model out (facts only)",
    "transfer": "H100 to B200 transfer",
}
# The validation table's task families (image and video chat together as multimodal).
VALIDATION_FAMILIES = {
    "lm-arena-chat": "chat",
    "gpqa": "reasoning",
    "sourcegraph-fim": "code",
    "image-chat": "multimodal",
    "video-chat": "multimodal",
    "text-to-image": "image",
    "text-to-video": "video",
}


def folds(frame: pd.DataFrame, kind: str, split: str) -> Iterator[tuple[str, np.ndarray]]:
    """(group, held-out mask) per fold of a validation split."""
    sid = series_id(frame, kind).to_numpy()
    if split == "batch":
        sizes = pd.Series(sid).value_counts()
        for i in range(len(frame)):
            if sizes[sid[i]] >= 3:
                mask = np.zeros(len(frame), bool)
                mask[i] = True
                yield sid[i], mask
    elif split == "gpu-count":
        key = (
            frame["model_id"].astype(str) + "|" + frame["task"].astype(str) + "|" + frame["gpu_model"].astype(str)
        ).to_numpy()
        for s in np.unique(sid):
            mask = sid == s
            k = key[mask][0]
            if len(np.unique(sid[key == k])) > 1:
                yield s, mask
    elif split == "model":
        base = frame["base_model_id"] if "base_model_id" in frame.columns else frame["model_id"]
        base = base.astype(str).to_numpy()
        for m in np.unique(base):
            yield m, base == m
    elif split == "transfer":
        mt = model_task_id(frame).to_numpy()
        gpu = frame["gpu_model"].astype(str).to_numpy()
        for k in np.unique(mt):
            if {"H100", "B200"} <= set(gpu[mt == k]):
                yield k, (mt == k) & (gpu == "B200")
    else:
        raise SelectorError(f"unknown validation split {split!r} (known: {', '.join(SPLITS)})")


def held_out_errors(frame: pd.DataFrame, kind: str, split: str) -> pd.DataFrame:
    """Refit without each fold and predict it: log errors log(actual / predicted) per output quantity."""
    base = fit(frame, kind)
    frame, X, Y = base.frame, base.design.matrix(base.frame), targets(base.frame, kind)
    normal, index = NormalEquations(X, Y), base.index
    b = batch_values(frame, kind)
    lengths = frame["avg_output_len"].to_numpy(float) if kind == "llm" else None
    actual = observed(frame, kind)
    tasks = frame["task"].astype(str).to_numpy()
    parts: dict[str, list] = {k: [] for k in ("group", "pos", "level", "interior", "distance")}
    preds: dict[str, list] = {}
    for group, mask in folds(frame, kind, split):
        pos = np.flatnonzero(mask)
        beta = normal.solve(pos)
        R = Y - X @ beta
        corr, levels, dist, interior = index.correct(
            R, base.series[pos], base.model_task[pos], base.L[pos], set(pos.tolist())
        )
        pred = derive(X[pos] @ beta + corr, b[pos], kind, None if lengths is None else lengths[pos])
        for name, values in pred.items():
            preds.setdefault(name, []).append(values)
        for key, column in (
            ("group", [group] * len(pos)),
            ("pos", pos),
            ("level", levels),
            ("interior", interior),
            ("distance", dist),
        ):
            parts[key].append(np.asarray(column))
    if not parts["pos"]:
        return pd.DataFrame(
            columns=[
                "split",
                "group",
                "row",
                "task",
                "quantity",
                "level",
                "stratum",
                "distance",
                "actual",
                "predicted",
                "log_error",
            ]
        )
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    strata = np.array([stratum(lv, it) for lv, it in zip(cat["level"], cat["interior"], strict=False)])
    frames = []
    for name, chunks in preds.items():
        predicted = np.concatenate(chunks)
        a = actual[name][cat["pos"]]
        ok = np.isfinite(a) & (a > 0) & np.isfinite(predicted) & (predicted > 0)
        frames.append(
            pd.DataFrame(
                {
                    "split": split,
                    "group": cat["group"][ok],
                    "row": frame.index.to_numpy()[cat["pos"][ok]],
                    "task": tasks[cat["pos"][ok]],
                    "quantity": name,
                    "level": cat["level"][ok],
                    "stratum": strata[ok],
                    "distance": cat["distance"][ok],
                    "actual": a[ok],
                    "predicted": predicted[ok],
                    "log_error": np.log(a[ok] / predicted[ok]),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def jackknife_coverage(errs: pd.DataFrame, coverage: float = DEFAULT_COVERAGE) -> pd.Series:
    """Whether each held-out error falls in the interval made from the other groups' errors (same quantity, stratum)."""
    a = (1 - coverage) / 2
    inside = pd.Series(False, index=errs.index)
    for (_quantity, _stratum), g in errs.groupby(["quantity", "stratum"]):
        values, groups = g["log_error"].to_numpy(), g["group"].to_numpy()
        for grp in np.unique(groups):
            mine = groups == grp
            others = values[~mine]
            if len(others) < 5:
                others = values
            lo, hi = np.quantile(others, [a, 1 - a])
            inside.loc[g.index[mine]] = (values[mine] >= lo) & (values[mine] <= hi)
    return inside


def family(task: str) -> str:
    """The validation table's family of a task (chat, reasoning, code, multimodal, image, video)."""
    return VALIDATION_FAMILIES.get(task, task)


def held_out_energy(
    frame: pd.DataFrame, splits: Iterable[str] = SPLITS, coverage: float = DEFAULT_COVERAGE
) -> pd.DataFrame:
    """Every held-out prediction of energy per token (LLM) or per output (diffusion), one row per point and split.

    Columns: ``kind``, ``split``, ``group``, ``row`` (the index of the published row), ``task``, ``family``,
    ``stratum``, ``quantity``, ``actual`` and ``predicted`` (J per token or per output), ``covered`` (inside its
    interval of ``coverage``) and ``abs_rel_error`` (a fraction)."""
    parts = []
    for kind in ("llm", "diffusion"):
        sub = usable_rows(frame, kind)
        if len(sub) < 8:
            continue
        energy = OUTPUTS[kind][0]
        for split in splits:
            errs = held_out_errors(sub, kind, split)
            if errs.empty:
                continue
            errs = errs[errs["quantity"] == energy].copy()
            errs["covered"] = jackknife_coverage(errs, coverage)
            errs["abs_rel_error"] = (errs["predicted"] / errs["actual"] - 1).abs()
            errs["family"] = errs["task"].map(family)
            errs["kind"] = kind
            parts.append(errs)
    if not parts:
        return pd.DataFrame(
            columns=[
                "kind",
                "split",
                "group",
                "row",
                "task",
                "family",
                "stratum",
                "quantity",
                "actual",
                "predicted",
                "covered",
                "abs_rel_error",
            ]
        )
    return pd.concat(parts, ignore_index=True)


def _summary(g: pd.DataFrame) -> dict:
    return {
        "points": len(g),
        "median_abs_rel_error": float(g["abs_rel_error"].median()),
        "p90_abs_rel_error": float(g["abs_rel_error"].quantile(0.9)),
        "coverage": float(g["covered"].mean()),
    }


def summarize_validation(points: pd.DataFrame) -> pd.DataFrame:
    """The validation table from :func:`held_out_energy`'s points: per split, the families, the batch split's
    interior and edge points, and all points of each kind."""
    rows = []
    for (kind, split), errs in points.groupby(["kind", "split"], sort=False):
        energy = errs["quantity"].iloc[0]
        for fam, g in errs.groupby("family"):
            rows.append({"split": split, "family": fam, "quantity": energy} | _summary(g))
        if split == "batch":  # between measured batches and beyond the ends of a series
            for stratum_, g in errs.groupby("stratum"):
                where = "interior" if stratum_.endswith("interior") else "edge"
                rows.append({"split": split, "family": f"{kind} {where}", "quantity": energy} | _summary(g))
        rows.append({"split": split, "family": f"all {kind}", "quantity": energy} | _summary(errs))
    return pd.DataFrame(rows)


def validation_table(
    frame: pd.DataFrame, splits: Iterable[str] = SPLITS, coverage: float = DEFAULT_COVERAGE
) -> pd.DataFrame:
    """Median and p90 absolute relative error of energy per token/output and interval coverage per split and family."""
    return summarize_validation(held_out_energy(frame, splits, coverage))
