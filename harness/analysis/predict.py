"""Predict a configuration's time and energy from its facts, with intervals, and validate the model.

The model follows the framework's structure rather than being a black box.

LLM (per series: model, task, GPU model and count; batch knob ``b`` = max_num_seqs):

* batch reached ``c(b)``: ``log c = log b + f_c(x, b)``, where the hinge terms of ``f_c`` switch on once the
  KV cache is full (memory headroom ``H = G * HBM - total params x bytes`` against the KV bytes a request needs,
  taken as growing with the model's size), so ``c`` saturates at a cap set by memory;
* decode step time: ``log ITL = f_t(x, b)`` (weights read per step ``A x bytes / G`` plus KV traffic growing with ``c``);
* power: ``log P = f_p(x, b)``; ratio of mean to median step time: ``log k = f_k(x, b)``;
* output throughput ``T = k c / ITL`` and energy per token ``e = P / T`` (the identities of the framework).

Each ``f`` is linear in physically named features of the facts (log2 batch and its square, log active weight
bytes per GPU, log memory headroom, GPU model, GPU count, task, architecture, precision, interactions with the
batch and the memory hinges), fitted by ridge least squares on the log quantities. Diffusion uses the same
structure with the batch latency and power (``energy per output = P x latency / batch``).

Where the fit holds measurements of the same series, a residual curve in log2 batch (linear between measured
batches, flat beyond them) corrects the fact-based prediction ("series" level); where it holds only other series
of the same model and task, their mean residual curve does ("model" level); otherwise facts alone do ("facts").
Intervals are split-conformal: quantiles of cross-validated log errors at the same level (leave one batch out,
leave one series out, leave one model out), the series level split into interior and edge batches and widened
with the distance in log2 batch to the nearest measured batch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from harness.errors import HarnessError, SelectorError

from harness.vocabulary.hardware import GPU_MEMORY_GB
from harness.vocabulary.precisions import BYTES_PER_VALUE as PRECISION_BYTES
LEVELS = ("series", "model", "facts")
DEFAULT_COVERAGE = 0.8


@dataclass(frozen=True)
class KindSpec:
    kind: str
    series_keys: tuple[str, ...]
    batch: str
    base: tuple[str, ...]  # modelled quantities (log), before the identities


LLM = KindSpec("llm", ("model_id", "task", "gpu_model", "num_gpus"), "max_num_seqs",
               ("avg_batch_size", "median_itl_ms", "avg_power_watts", "step_time_ratio"))
DIFFUSION = KindSpec("diffusion", ("model_id", "task", "gpu_model", "num_gpus", "ulysses_degree", "ring_degree",
                                   "height_pixels", "width_pixels", "inference_steps", "num_frames"),
                     "batch_size", ("batch_latency_s", "avg_power_watts"))
# Predicted quantities per kind, named as the reference names them.
OUTPUTS = {
    "llm": ("energy_per_token_joules", "avg_power_watts", "median_itl_ms", "output_throughput_tokens_per_sec",
            "avg_batch_size", "energy_per_request_joules"),
    "diffusion": ("energy_per_output_joules", "avg_power_watts", "batch_latency_s", "throughput_outputs_per_sec"),
}
FACT_COLUMNS = ("task", "gpu_model", "num_gpus", "total_params_billions", "activated_params_billions",
                "weight_precision")


def kind_of(frame: pd.DataFrame | Mapping) -> str:
    task = frame["task"].iloc[0] if isinstance(frame, pd.DataFrame) else frame["task"]
    from harness.published.reference import DIFFUSION_TASKS

    return "diffusion" if task in DIFFUSION_TASKS else "llm"


def spec_of(kind: str) -> KindSpec:
    return LLM if kind == "llm" else DIFFUSION


# ---------------------------------------------------------------- features


def _col(frame: pd.DataFrame, name: str, default=np.nan) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(default, index=frame.index)


def _base_features(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Facts that do not depend on the fit's categories."""
    g = _col(frame, "num_gpus").astype(float)
    bytes_ = _col(frame, "weight_precision", "bfloat16").map(lambda p: PRECISION_BYTES.get(str(p).lower(), 2.0))
    total = _col(frame, "total_params_billions").astype(float)
    active = _col(frame, "activated_params_billions").astype(float)
    mem = _col(frame, "gpu_model").map(lambda m: GPU_MEMORY_GB.get(str(m), 80.0)).astype(float)
    b = _col(frame, spec_of(kind).batch).astype(float)
    out = pd.DataFrame(index=frame.index)
    out["L"] = np.log2(b)
    out["log_active_bytes_per_gpu"] = np.log(active * bytes_ / g)
    out["log_gpus"] = np.log2(g)
    if kind == "llm":
        headroom = np.maximum(g * mem * 0.9 - total * bytes_, 0.05 * g * mem)
        out["log_headroom"] = np.log2(headroom)
        out["log_total"] = np.log2(total)
        # requests the KV cache could hold, up to a constant: headroom over a per-request KV size ~ model size^0.5
        out["z"] = out["L"] - out["log_headroom"] + 0.5 * out["log_total"]
    else:
        frames_ = _col(frame, "num_frames", 1).fillna(1).astype(float)
        work = (_col(frame, "inference_steps").astype(float) * _col(frame, "height_pixels").astype(float)
                * _col(frame, "width_pixels").astype(float) * frames_)
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
        f = _base_features(frame, self.kind)
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
            for name, mask in (("moe", arch.str.contains("moe")), ("hybrid", arch.str.contains("mamba")),
                               ("fp8", prec == "fp8"), ("mxfp4", prec == "mxfp4")):
                cols[name] = mask.astype(float)
                cols[f"L*{name}"] = L * mask.astype(float)
            for k in self.knots:
                cols[f"hinge{k:.1f}"] = np.maximum(f["z"] - k, 0.0)
        frame_cols = pd.DataFrame(cols)
        self.columns = tuple(frame_cols.columns)
        return frame_cols.to_numpy(dtype=float)


def make_design(frame: pd.DataFrame, kind: str) -> Design:
    gpus = tuple(sorted(frame["gpu_model"].astype(str).unique()))
    tasks = tuple(sorted(frame["task"].astype(str).unique()))
    knots: tuple[float, ...] = ()
    if kind == "llm":
        z = _base_features(frame, kind)["z"]
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
    """The published quantities from the modelled ones (batch knob ``b``), through the framework's identities."""
    if kind == "llm":
        c = np.minimum(np.exp(logs[:, 0]), b)
        itl, power, ratio = np.exp(logs[:, 1]), np.exp(logs[:, 2]), np.exp(logs[:, 3])
        throughput = ratio * c / (itl / 1000.0)
        out = {"avg_batch_size": c, "median_itl_ms": itl, "avg_power_watts": power,
               "output_throughput_tokens_per_sec": throughput, "energy_per_token_joules": power / throughput}
        if output_len is not None:
            out["energy_per_request_joules"] = out["energy_per_token_joules"] * output_len
        return out
    latency, power = np.exp(logs[:, 0]), np.exp(logs[:, 1])
    return {"batch_latency_s": latency, "avg_power_watts": power, "throughput_outputs_per_sec": b / latency,
            "energy_per_output_joules": power * latency / b}


# ---------------------------------------------------------------- fit


def _ridge(X: np.ndarray, Y: np.ndarray, lam: float = 1e-3) -> np.ndarray:
    return _Normal(X, Y, lam).solve()


class _Normal:
    """Ridge normal equations on standardized columns, so that a fold's rows can be taken out cheaply."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, lam: float = 1e-3):
        self.scale = X.std(axis=0)
        self.scale[self.scale == 0] = 1.0
        self.Xs, self.Y = X / self.scale, Y
        self.XtX, self.XtY = self.Xs.T @ self.Xs, self.Xs.T @ Y
        self.lam = lam

    def solve(self, out: np.ndarray | None = None) -> np.ndarray:
        XtX, XtY, n = self.XtX, self.XtY, len(self.Xs)
        if out is not None and len(out):
            XtX = XtX - self.Xs[out].T @ self.Xs[out]
            XtY = XtY - self.Xs[out].T @ self.Y[out]
            n -= len(out)
        shrink = self.lam * n * np.eye(XtX.shape[0])
        shrink[0, 0] = 0.0  # the intercept is not shrunk
        return np.linalg.solve(XtX + shrink, XtY) / self.scale[:, None]


def _interp(L_known: np.ndarray, r_known: np.ndarray, L: float) -> np.ndarray:
    """Residual curve at L: linear in log2 batch between measured batches, flat beyond them."""
    order = np.argsort(L_known)
    Lk, rk = L_known[order], r_known[order]
    return np.array([np.interp(L, Lk, rk[:, j]) for j in range(rk.shape[1])])


class _Index:
    """Positions of a fit's rows by series and by model-and-task, for residual corrections."""

    def __init__(self, series: np.ndarray, model_task: np.ndarray, L: np.ndarray):
        self.series, self.model_task, self.L = series, model_task, L
        self.by_series: dict[str, np.ndarray] = {}
        for s in np.unique(series):
            self.by_series[s] = np.flatnonzero(series == s)
        self.series_of_mt: dict[str, list[str]] = {}
        for s, pos in self.by_series.items():
            self.series_of_mt.setdefault(model_task[pos[0]], []).append(s)

    def correct(self, R: np.ndarray, q_series, q_mt, q_L, excluded: set | None = None):
        """Residual correction, level, log2 distance to the nearest measured batch, interior flag per query."""
        excluded = excluded or set()
        n = len(q_series)
        out = np.zeros((n, R.shape[1]))
        levels, dist, interior = [], np.full(n, np.nan), np.zeros(n, bool)

        cache: dict = {}

        def members(s):
            if s in cache:
                return cache[s]
            pos = self.by_series.get(s)
            if pos is not None and excluded:
                pos = np.array([p for p in pos if p not in excluded], dtype=int)
            cache[s] = pos if pos is not None and len(pos) else None
            return cache[s]

        for i in range(n):
            pos = members(q_series[i])
            if pos is not None:
                Ls = self.L[pos]
                out[i] = _interp(Ls, R[pos], q_L[i])
                levels.append("series")
                dist[i] = float(np.min(np.abs(Ls - q_L[i])))
                interior[i] = Ls.min() < q_L[i] < Ls.max()
                continue
            curves = []
            for s in self.series_of_mt.get(q_mt[i], ()):
                pos = members(s)
                if pos is not None:
                    curves.append(_interp(self.L[pos], R[pos], q_L[i]))
            if curves:
                out[i] = np.mean(curves, axis=0)
                levels.append("model")
            else:
                levels.append("facts")
        return out, levels, dist, interior


def series_id(frame: pd.DataFrame, kind: str) -> pd.Series:
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
    return frame["model_id"].astype(str) + "|" + frame["task"].astype(str)


@dataclass
class Fit:
    """A fitted model of one kind (LLM or diffusion) over a tidy table."""

    kind: str
    frame: pd.DataFrame
    design: Design
    beta: np.ndarray
    residuals: np.ndarray
    series: np.ndarray
    model_task: np.ndarray
    L: np.ndarray
    output_len: dict = field(default_factory=dict)
    task_output_len: dict = field(default_factory=dict)
    calibration: dict | None = None

    @functools.cached_property
    def index(self) -> _Index:
        return _Index(self.series, self.model_task, self.L)

    def predict_logs(self, query: pd.DataFrame):
        X = self.design.matrix(query)
        corr, levels, dist, interior = self.index.correct(
            self.residuals, series_id(query, self.kind).to_numpy(), model_task_id(query).to_numpy(),
            _base_features(query, self.kind)["L"].to_numpy())
        return X @ self.beta + corr, levels, dist, interior

    def output_lengths(self, query: pd.DataFrame) -> np.ndarray:
        mt = model_task_id(query)
        return np.array([self.output_len.get(k, self.task_output_len.get(t, np.nan))
                         for k, t in zip(mt, query["task"].astype(str))])

    def predict(self, query: pd.DataFrame, coverage: float = DEFAULT_COVERAGE) -> pd.DataFrame:
        """Point predictions, intervals (``<name>_low`` / ``<name>_high``) and the level of each query row."""
        logs, levels, dist, interior = self.predict_logs(query)
        lengths = self.output_lengths(query) if self.kind == "llm" else None
        point = derive(logs, _batch(query, self.kind), self.kind, lengths)
        out = pd.DataFrame(point, index=query.index)
        cal = self.calibrated()
        for name in point:
            lo, hi = np.empty(len(query)), np.empty(len(query))
            for i, level in enumerate(levels):
                qlo, qhi = cal.quantiles(name, _stratum(level, interior[i]), coverage, dist[i])
                lo[i], hi[i] = point[name][i] * math.exp(qlo), point[name][i] * math.exp(qhi)
            if name == "avg_batch_size":  # never more requests running than the batch knob allows
                b = _batch(query, self.kind)
                lo, hi = np.minimum(lo, b), np.minimum(hi, b)
            out[f"{name}_low"], out[f"{name}_high"] = lo, hi
        out["level"] = levels
        return out

    def calibrated(self) -> "Calibration":
        if self.calibration is None:
            self.calibration = calibrate(self)
        return self.calibration


def _stratum(level: str, interior: bool) -> str:
    if level == "series":
        return "series-interior" if interior else "series-edge"
    return level


def _batch(frame: pd.DataFrame, kind: str) -> np.ndarray:
    return frame[spec_of(kind).batch].astype(float).to_numpy()


def fit(frame: pd.DataFrame, kind: str | None = None) -> Fit:
    """Fit the model of one kind to a tidy table with the reference's columns."""
    kind = kind or kind_of(frame)
    frame = usable_rows(frame, kind)
    if len(frame) < 8:
        raise HarnessError(f"too few usable {kind} rows to fit the model ({len(frame)}; need at least 8 with "
                           f"the facts and measured time and power)")
    design = make_design(frame, kind)
    X, Y = design.matrix(frame), targets(frame, kind)
    beta = _ridge(X, Y)
    out = Fit(kind, frame, design, beta, Y - X @ beta, series_id(frame, kind).to_numpy(),
              model_task_id(frame).to_numpy(), _base_features(frame, kind)["L"].to_numpy())
    if kind == "llm" and "avg_output_len" in frame.columns:
        out.output_len = frame.groupby(model_task_id(frame))["avg_output_len"].mean().to_dict()
        out.task_output_len = frame.groupby("task")["avg_output_len"].median().to_dict()
    return out


def usable_rows(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Rows of ``kind`` with the facts and positive measured time and power (own CPU runs have no power)."""
    from harness.published.reference import DIFFUSION_TASKS

    frame = frame[frame["task"].isin(DIFFUSION_TASKS) == (kind == "diffusion")]
    need = list(FACT_COLUMNS) + [spec_of(kind).batch]
    need += (["avg_batch_size", "median_itl_ms", "output_throughput_tokens_per_sec", "avg_power_watts"]
             if kind == "llm" else ["batch_latency_s", "avg_power_watts"])
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise HarnessError(f"the fit table lacks the column(s) {', '.join(missing)}")
    ok = frame[need].notna().all(axis=1)
    for c in need:
        if pd.api.types.is_numeric_dtype(frame[c]):
            ok &= frame[c].astype(float) > 0
    return frame[ok].copy()


# ---------------------------------------------------------------- cross-validation and calibration


SPLITS = ("batch", "gpu-count", "model", "transfer")
SPLIT_NAMES = {"batch": "leave one batch out", "gpu-count": "leave one GPU count out",
               "model": "leave one model out (facts only)", "transfer": "H100 to B200 transfer"}


def folds(frame: pd.DataFrame, kind: str, split: str) -> Iterable[tuple[str, np.ndarray]]:
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
        key = (frame["model_id"].astype(str) + "|" + frame["task"].astype(str) + "|"
               + frame["gpu_model"].astype(str)).to_numpy()
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
    normal, index = _Normal(X, Y), base.index
    b = _batch(frame, kind)
    lengths = frame["avg_output_len"].to_numpy(float) if kind == "llm" else None
    actual = observed(frame, kind)
    tasks = frame["task"].astype(str).to_numpy()
    parts: dict[str, list] = {k: [] for k in ("group", "pos", "level", "interior", "distance")}
    preds: dict[str, list] = {}
    for group, mask in folds(frame, kind, split):
        pos = np.flatnonzero(mask)
        beta = normal.solve(pos)
        R = Y - X @ beta
        corr, levels, dist, interior = index.correct(R, base.series[pos], base.model_task[pos], base.L[pos],
                                                     set(pos.tolist()))
        pred = derive(X[pos] @ beta + corr, b[pos], kind, None if lengths is None else lengths[pos])
        for name, values in pred.items():
            preds.setdefault(name, []).append(values)
        for key, values in (("group", [group] * len(pos)), ("pos", pos), ("level", levels), ("interior", interior),
                            ("distance", dist)):
            parts[key].append(np.asarray(values))
    if not parts["pos"]:
        return pd.DataFrame(columns=["split", "group", "row", "task", "quantity", "level", "stratum", "distance",
                                     "actual", "predicted", "log_error"])
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    strata = np.array([_stratum(lv, it) for lv, it in zip(cat["level"], cat["interior"])])
    frames = []
    for name, values in preds.items():
        predicted = np.concatenate(values)
        a = actual[name][cat["pos"]]
        ok = np.isfinite(a) & (a > 0) & np.isfinite(predicted) & (predicted > 0)
        frames.append(pd.DataFrame({
            "split": split, "group": cat["group"][ok], "row": frame.index.to_numpy()[cat["pos"][ok]],
            "task": tasks[cat["pos"][ok]], "quantity": name, "level": cat["level"][ok], "stratum": strata[ok],
            "distance": cat["distance"][ok], "actual": a[ok], "predicted": predicted[ok],
            "log_error": np.log(a[ok] / predicted[ok])}))
    return pd.concat(frames, ignore_index=True)


def observed(frame: pd.DataFrame, kind: str) -> dict[str, np.ndarray]:
    names = OUTPUTS[kind]
    return {n: frame[n].to_numpy(float) if n in frame.columns else np.full(len(frame), np.nan) for n in names}


@dataclass
class Calibration:
    """Log-error samples per (quantity, stratum), from cross-validation on the fit set."""

    samples: dict

    def quantiles(self, quantity: str, stratum: str, coverage: float, distance: float = np.nan) -> tuple[float, float]:
        errs = self.samples.get((quantity, stratum))
        if errs is None or len(errs) < 5:
            errs = self.samples.get((quantity, "facts"))
        if errs is None or len(errs) == 0:
            return (-np.inf, np.inf)
        a = (1 - coverage) / 2
        lo, hi = np.quantile(errs, [a, 1 - a])
        if stratum.startswith("series") and np.isfinite(distance):
            widen = max(1.0, distance)  # the samples are at about one grid step from a measured batch
            lo, hi = lo * widen, hi * widen
        return float(lo), float(hi)


CALIBRATION_SPLIT = {"series-interior": "batch", "series-edge": "batch", "model": "gpu-count", "facts": "model"}


def calibrate(f: Fit) -> Calibration:
    samples = {}
    for split in ("batch", "gpu-count", "model"):
        errs = held_out_errors(f.frame, f.kind, split)
        if errs.empty:
            continue
        for (q, stratum), g in errs.groupby(["quantity", "stratum"]):
            if CALIBRATION_SPLIT.get(stratum) == split:
                samples[(q, stratum)] = g["log_error"].to_numpy()
    return Calibration(samples)


def jackknife_coverage(errs: pd.DataFrame, coverage: float = DEFAULT_COVERAGE) -> pd.Series:
    """Whether each held-out error falls in the interval made from the other groups' errors (same quantity, stratum)."""
    a = (1 - coverage) / 2
    inside = pd.Series(False, index=errs.index)
    for (q, stratum), g in errs.groupby(["quantity", "stratum"]):
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
    from harness.published.reference import OUTPUT_UNIT  # noqa: F401

    return {"lm-arena-chat": "chat", "gpqa": "reasoning", "sourcegraph-fim": "code", "image-chat": "multimodal",
            "video-chat": "multimodal", "text-to-image": "image", "text-to-video": "video"}.get(task, task)


def validation_table(frame: pd.DataFrame, splits: Iterable[str] = SPLITS, coverage: float = DEFAULT_COVERAGE
                     ) -> pd.DataFrame:
    """Median and p90 absolute relative error of energy per token/output and interval coverage per split and family."""
    rows = []
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
            for fam, g in errs.groupby("family"):
                rows.append({"split": split, "family": fam, "quantity": energy, "points": len(g),
                             "median_abs_rel_error": float(g["abs_rel_error"].median()),
                             "p90_abs_rel_error": float(g["abs_rel_error"].quantile(0.9)),
                             "coverage": float(g["covered"].mean())})
            if split == "batch":  # between measured batches and beyond the ends of a series
                for stratum, g in errs.groupby("stratum"):
                    where = "interior" if stratum.endswith("interior") else "edge"
                    rows.append({"split": split, "family": f"{kind} {where}", "quantity": energy, "points": len(g),
                                 "median_abs_rel_error": float(g["abs_rel_error"].median()),
                                 "p90_abs_rel_error": float(g["abs_rel_error"].quantile(0.9)),
                                 "coverage": float(g["covered"].mean())})
            rows.append({"split": split, "family": f"all {kind}", "quantity": energy, "points": len(errs),
                         "median_abs_rel_error": float(errs["abs_rel_error"].median()),
                         "p90_abs_rel_error": float(errs["abs_rel_error"].quantile(0.9)),
                         "coverage": float(errs["covered"].mean())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- queries


@functools.lru_cache(maxsize=4)
def _cached_fit(source: str, kind: str) -> Fit:
    return fit(load_fit_table(source), kind)


def load_fit_table(source: str) -> pd.DataFrame:
    """``reference``, a results folder of own runs, or a CSV with the reference's columns."""
    from pathlib import Path

    if source == "reference":
        from harness.published import reference

        return reference.all_table()
    path = Path(source)
    if path.is_dir():
        from harness.measuring import store

        table = store.collect(path)
        table = table[table["status"] == "ok"]
        if table.empty:
            raise HarnessError(f"--fit {source}: no finished runs in that results folder")
        return with_model_facts(table)
    if path.is_file() and path.suffix == ".csv":
        return with_model_facts(pd.read_csv(path))
    raise HarnessError(f"--fit {source}: not 'reference', a results folder or a .csv table")


def with_model_facts(table: pd.DataFrame) -> pd.DataFrame:
    """Fill missing model facts (parameters, precision, architecture) from the reference's model index."""
    from harness.published import reference

    try:
        models = reference.model_index()["models"]
    except HarnessError:
        models = {}
    table = table.copy()
    for col in ("total_params_billions", "activated_params_billions", "weight_precision", "architecture"):
        facts = table["model_id"].map(lambda m: (models.get(str(m)) or {}).get(col))
        table[col] = table[col].where(table[col].notna(), facts) if col in table.columns else facts
    if "base_model_id" not in table.columns:
        table["base_model_id"] = table["model_id"]
    return table


QUERY_NUMBERS = ("num_gpus", "max_num_seqs", "batch_size", "total_params_billions", "activated_params_billions",
                 "height_pixels", "width_pixels", "inference_steps", "num_frames", "ulysses_degree", "ring_degree")
QUERY_ALIASES = {"total": "total_params_billions", "active": "activated_params_billions",
                 "params": "total_params_billions", "steps": "inference_steps", "height": "height_pixels",
                 "width": "width_pixels", "frames": "num_frames", "arch": "architecture"}


def query_row(selector: str, table: pd.DataFrame) -> pd.DataFrame:
    """One-row frame of facts from a selector; a known model's facts come from the table."""
    from harness.published.reference import TASKS
    from harness.analysis.tables import parse_selector

    terms = {QUERY_ALIASES.get(k, k): v for k, v in parse_selector(selector).items()}
    if "task" not in terms:
        raise SelectorError(f"selector {selector!r} names no task (known: {', '.join(TASKS)})")
    task = terms["task"]
    if task not in TASKS and task not in set(table["task"].astype(str)):
        raise SelectorError(f"selector {selector!r}: unknown task {task!r} (known: {', '.join(TASKS)})")
    row: dict = {"task": task}
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
            for col in ("total_params_billions", "activated_params_billions", "weight_precision", "architecture",
                        "base_model_id"):
                if col in known.index:
                    row[col] = known[col]
        elif not {"total_params_billions", "activated_params_billions"} <= set(terms):
            import difflib

            close = difflib.get_close_matches(model, sorted(set(ids)), n=2, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise SelectorError(f"unknown model {model!r}: give its facts instead (total=..., active=... in billions "
                                f"of parameters, precision=bfloat16|fp8|mxfp4){hint}")
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
            raise SelectorError(f"selector {selector!r}: unknown key {k!r} (known: model, task, gpu, gpus, batch, "
                                f"max_num_seqs, total, active, precision, arch, steps, height, width, frames, "
                                f"ulysses, ring)")
    kind = "diffusion" if task in ("text-to-image", "text-to-video") else "llm"
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
        for col, default in (("height_pixels", None), ("width_pixels", None), ("inference_steps", None),
                             ("num_frames", 1), ("ulysses_degree", 1), ("ring_degree", 1)):
            if col not in row:
                if not same.empty and col in same.columns:
                    row[col] = same[col].mode().iloc[0]
                elif default is not None:
                    row[col] = default
                else:
                    raise SelectorError(f"selector {selector!r}: give {col.split('_')[0]}= for an unseen model")
    return pd.DataFrame([row])


def predict_selector(selector: str, source: str = "reference", coverage: float = DEFAULT_COVERAGE) -> dict:
    """Predicted quantities (reference column names) with intervals, the level and the model's factors."""
    table = load_fit_table(source)
    query = query_row(selector, table)
    kind = kind_of(query)
    f = _cached_fit(source, kind) if source == "reference" else fit(table, kind)
    known_gpus = f.design.gpus
    if str(query.at[0, "gpu_model"]) not in known_gpus:
        raise SelectorError(f"GPU {query.at[0, 'gpu_model']!r} is not in the fit (known: {', '.join(known_gpus)})")
    if str(query.at[0, "task"]) not in f.design.tasks:
        raise SelectorError(f"task {query.at[0, 'task']!r} is not in the fit (known: {', '.join(f.design.tasks)})")
    pred = f.predict(query, coverage).iloc[0]
    out = {k: (v.item() if hasattr(v, "item") else v) for k, v in query.iloc[0].items()}
    for name in OUTPUTS[kind]:
        if name in pred.index and np.isfinite(pred[name]):
            out[name] = float(pred[name])
            out[f"{name}_low"], out[f"{name}_high"] = float(pred[f"{name}_low"]), float(pred[f"{name}_high"])
    out["level"] = pred["level"]
    out["interval_coverage"] = coverage
    out["fit"] = source
    out["explanation"] = explain(out, f)
    return out


def explain(predicted: Mapping, f: Fit) -> dict | None:
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
        gap = gap + 4 * (np.log(pool["activated_params_billions"].astype(float))
                         - math.log(float(predicted["activated_params_billions"]))).abs()
    if "num_gpus" in pool.columns:
        gap = gap + (np.log2(pool["num_gpus"].astype(float)) - math.log2(float(predicted["num_gpus"]))).abs()
    nearest = pool.loc[gap.idxmin()]
    row = pd.Series({**nearest.to_dict(), **{k: v for k, v in predicted.items() if not isinstance(v, dict)}})
    if f.kind == "llm":
        row["avg_output_len"] = predicted.get("energy_per_request_joules", np.nan) / predicted["energy_per_token_joules"]
    try:
        att = attribute(nearest, row)
    except HarnessError:
        return None
    return {"against": att.label_a, "factors": [{"factor": x.name, "ratio": float(x.ratio)} for x in att.factors]}
