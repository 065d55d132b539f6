"""Pure functions over tidy run tables: the diagnosis toolkit.

Every function takes the tidy tables of :mod:`harness.published.reference` (or the
harness's own runs, which carry the same columns) and returns new DataFrames or
small immutable records. Nothing here reads files.

Two kinds of rows share one table:

* LLM rows (``output_unit == "response"``): the energy to compare is
  ``energy_per_token_joules``, the time is ``median_itl_ms``;
* diffusion rows (``output_unit`` ``image`` or ``video``): the energy is
  ``energy_per_output_joules`` (per image or per video), the time is
  ``batch_latency_s`` (one whole batch).

The identities behind the attribution (they hold on every published row):

* LLM: ``E_response = L * P / T`` with ``T = C * r``: output length ``L``,
  average power ``P`` (all GPUs), output throughput ``T``, concurrency ``C``
  (the batch size actually reached, ``avg_batch_size``) and the token rate of
  one running request ``r = T / C``.
* Diffusion: ``E_output = P * t_batch / B`` with ``t_batch = W * tau``: work per
  output ``W = steps * pixels * frames``, batch size ``B`` and the batch's time
  per unit of work ``tau = t_batch / W``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from harness.errors import HarnessError, SelectorError

ENERGY_PER_TOKEN = "energy_per_token_joules"
ENERGY_PER_OUTPUT = "energy_per_output_joules"
LLM_TIME = "median_itl_ms"
DIFFUSION_TIME = "batch_latency_s"
SERIES_KEYS = ("model_id", "task", "gpu_model", "num_gpus")
CONFIG_KEYS = SERIES_KEYS + ("max_num_seqs", "batch_size", "ulysses_degree", "ring_degree")


# ---------------------------------------------------------------- row kinds and default columns


def is_llm(df: pd.DataFrame) -> pd.Series:
    """Mask of LLM-type rows (a response is the unit of output)."""
    if "output_unit" in df.columns:
        return df["output_unit"].eq("response")
    return df["task"].isin(("lm-arena-chat", "gpqa", "sourcegraph-fim", "image-chat", "video-chat"))


def _kind(df: pd.DataFrame) -> str:
    mask = is_llm(df)
    if mask.all():
        return "llm"
    if not mask.any():
        return "diffusion"
    raise HarnessError("the table mixes LLM and diffusion rows; split it with analysis.is_llm first")


def energy_column(df: pd.DataFrame) -> str:
    """The energy a table's rows are compared on: per token (LLM) or per image/video (diffusion)."""
    return ENERGY_PER_TOKEN if _kind(df) == "llm" else ENERGY_PER_OUTPUT


def time_column(df: pd.DataFrame) -> str:
    """The latency a table's rows are compared on: median ITL (LLM) or whole-batch time (diffusion)."""
    return LLM_TIME if _kind(df) == "llm" else DIFFUSION_TIME


def _split(df: pd.DataFrame) -> list[pd.DataFrame]:
    mask = is_llm(df)
    return [part for part in (df[mask], df[~mask]) if len(part)]


def _present(keys: Iterable[str], df: pd.DataFrame) -> list[str]:
    return [k for k in keys if k in df.columns]


def _group_keys(keys: Iterable[str], df: pd.DataFrame) -> list[str]:
    """Grouping columns present in ``df``; published rows and own runs never share a group."""
    out = _present(keys, df)
    if "source" in df.columns and "source" not in out and df["source"].nunique(dropna=False) > 1:
        out = ["source"] + out
    return out


def config_label(row: Mapping) -> str:
    """Short human label of one configuration, e.g. ``Qwen3 32B, problem solving (reasoning), 1 x B200, batch 128``."""
    model = str(row.get("nickname") or str(row["model_id"]).split("/")[-1])
    batch = row.get("max_num_seqs") if _row_is_llm(row) else row.get("batch_size")
    from harness.published.reference import TASK_NAMES

    task = TASK_NAMES.get(row["task"], row["task"]).lower()
    label = f"{model}, {task}, {int(row['num_gpus'])} x {row['gpu_model']}, batch {int(batch)}"
    uly, ring = row.get("ulysses_degree"), row.get("ring_degree")
    if _number(uly) and _number(ring) and (uly > 1 or ring > 1):
        label += f" (Ulysses {int(uly)} x Ring {int(ring)})"
    return label


def _row_is_llm(row: Mapping) -> bool:
    unit = row.get("output_unit")
    if isinstance(unit, str):
        return unit == "response"
    return row.get("task") in ("lm-arena-chat", "gpqa", "sourcegraph-fim", "image-chat", "video-chat")


def _number(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


# ---------------------------------------------------------------- minimum energy and the frontier


def min_energy_configs(df: pd.DataFrame, by: Iterable[str] = SERIES_KEYS, energy: str | None = None) -> pd.DataFrame:
    """The lowest-energy configuration of every group (default: model, task, GPU model, GPU count).

    LLM rows are ranked on energy per token and diffusion rows on energy per output
    unless ``energy`` names another column. Rows without energy (no counter) are skipped.
    """
    out = []
    for part in _split(df):
        col = energy or energy_column(part)
        part = part.dropna(subset=[col])
        if part.empty:
            continue
        keys = _group_keys(by, part)
        idx = part.groupby(keys, sort=True, dropna=False)[col].idxmin() if keys else [part[col].idxmin()]
        out.append(part.loc[list(idx)])
    if not out:
        return df.iloc[0:0].copy()
    return pd.concat(out).reset_index(drop=True)


def pareto_mask(time: pd.Series, energy: pd.Series) -> pd.Series:
    """True where no other point is at least as fast and at least as cheap, and strictly better in one."""
    order = np.lexsort((energy.to_numpy(), time.to_numpy()))
    mask = np.zeros(len(time), dtype=bool)
    best = math.inf
    for i in order:
        e = energy.iloc[i]
        if e < best:
            mask[i] = True
            best = e
    return pd.Series(mask, index=time.index)


def frontier(
    df: pd.DataFrame,
    by: Iterable[str] = ("model_id", "task", "gpu_model"),
    time: str | None = None,
    energy: str | None = None,
) -> pd.DataFrame:
    """The table with an ``on_frontier`` column: the time-energy Pareto frontier of each group.

    Default axes: median ITL vs energy per token (LLM), whole-batch time vs energy
    per output (diffusion). The default group pools GPU counts and batch sizes of
    one model, task and GPU model, so the frontier says which configuration to run
    for each latency.
    """
    parts = []
    for part in _split(df):
        t, e = time or time_column(part), energy or energy_column(part)
        part = part.dropna(subset=[t, e]).copy()
        keys = _group_keys(by, part)
        flags = []
        for _, group in part.groupby(keys, sort=False, dropna=False) if keys else [(None, part)]:
            flags.append(pareto_mask(group[t], group[e]))
        part["on_frontier"] = pd.concat(flags) if flags else pd.Series(dtype=bool)
        parts.append(part)
    if not parts:
        return df.assign(on_frontier=pd.Series(dtype=bool))
    return pd.concat(parts).sort_index()


def frontier_points(df: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """Only the configurations on the frontier, sorted by group and latency."""
    marked = frontier(df, **kwargs)
    on = marked[marked["on_frontier"]]
    keys = _present(kwargs.get("by", ("model_id", "task", "gpu_model")), on)
    sort_time = [c for c in (LLM_TIME, DIFFUSION_TIME) if c in on.columns]
    return on.sort_values(keys + sort_time[:1]).reset_index(drop=True)


# ---------------------------------------------------------------- identities


def identity_errors(df: pd.DataFrame) -> pd.DataFrame:
    """Relative error of every identity on every row (long format: one row per row x identity).

    LLM: ``energy_per_token = avg_power / output_throughput`` and
    ``energy_per_request = energy_per_token * avg_output_len``.
    Diffusion: ``energy_per_output = avg_power * batch_latency / batch_size`` and
    ``throughput = batch_size / batch_latency``. Rows without energy are skipped.
    """
    frames = []
    llm = df[is_llm(df)]
    diff = df[~is_llm(df)]

    def rows(part, name, expected, actual):
        ok = expected.notna() & actual.notna()
        if not ok.any():
            return
        rel = (expected[ok] - actual[ok]).abs() / actual[ok].abs().where(actual[ok] != 0, np.nan)
        keys = _present(CONFIG_KEYS, part)
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
    """Rows that break an identity by more than ``rtol`` (relative); empty when all hold."""
    errors = identity_errors(df)
    bad = errors["rel_error"].isna() | (errors["rel_error"] > rtol)
    return errors[bad].reset_index(drop=True)


# ---------------------------------------------------------------- attribution


@dataclass(frozen=True)
class Factor:
    """One multiplicative factor of an energy ratio (B over A)."""

    name: str
    ratio: float  # the factor itself: how many times B's energy this term makes A's
    value_a: float | None
    value_b: float | None
    unit: str
    meaning: str  # what moves this factor, in words

    @property
    def log_share(self) -> float:
        return math.log(self.ratio) if self.ratio > 0 else float("nan")


@dataclass(frozen=True)
class Attribution:
    """Energy per output of B over A, split into factors whose product is exactly the ratio."""

    kind: str  # "llm" or "diffusion"
    label_a: str
    label_b: str
    energy_column: str
    energy_a: float
    energy_b: float
    factors: tuple[Factor, ...]
    per_token_ratio: float | None = None  # LLM only: ratio of energy per token
    config_a: dict = field(default_factory=dict)
    config_b: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.energy_b / self.energy_a

    @property
    def product(self) -> float:
        return float(np.prod([f.ratio for f in self.factors]))

    def to_frame(self) -> pd.DataFrame:
        """One row per factor, with its share of the log ratio (shares sum to 1 when ratio != 1)."""
        frame = pd.DataFrame([asdict(f) for f in self.factors])
        logs = np.log(frame["ratio"].astype(float))
        total = math.log(self.ratio) if self.ratio > 0 else float("nan")
        frame["log_share"] = logs / total if total and not math.isnan(total) else np.nan
        frame.insert(0, "pair", f"{self.label_a} -> {self.label_b}")
        return frame

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "a": self.label_a,
            "b": self.label_b,
            "config_a": self.config_a,
            "config_b": self.config_b,
            "energy_column": self.energy_column,
            "energy_a": self.energy_a,
            "energy_b": self.energy_b,
            "ratio": self.ratio,
            "per_token_ratio": self.per_token_ratio,
            "factors": [asdict(f) for f in self.factors],
            "explanation": self.explain(),
        }

    def explain(self) -> str:
        """The gap in words and numbers, largest factors first."""
        units = {self.config_a.get("output_unit"), self.config_b.get("output_unit")}
        unit = units.pop() if len(units) == 1 and None not in units else "output"
        if self.kind == "llm":
            unit = "response"
        head = (
            f"B ({self.label_b}) uses {_fmt(self.energy_b)} J per {unit} against {_fmt(self.energy_a)} J for "
            f"A ({self.label_a}): {_times(self.ratio)}."
        )
        if self.per_token_ratio is not None:
            head += f" Per token the gap is {_times(self.per_token_ratio)}."
        parts = []
        ranked = sorted(self.factors, key=lambda f: -abs(f.log_share) if not math.isnan(f.log_share) else 0)
        for f in ranked:
            if abs(f.ratio - 1) < 5e-4:
                continue
            values = ""
            if f.value_a is not None and f.value_b is not None:
                values = f" ({_fmt(f.value_a)} -> {_fmt(f.value_b)} {f.unit})"
            parts.append(f"{f.name} {_times(f.ratio)}{values}: {f.meaning}")
        body = " Factors, largest first: " + "; ".join(parts) + "." if parts else " All factors are 1."
        tail = f" Product of factors = {_fmt(self.product)} = the ratio."
        return head + body + tail


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    ax = abs(x)
    if float(x).is_integer() and ax < 1e7:
        return f"{int(x):,}"
    if ax >= 1e4:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:,.0f}" if ax >= 1000 else f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.01:
        return f"{x:.3g}"
    return f"{x:.3g}"


def _times(r: float) -> str:
    if r >= 1 or 1 / r < 1.05:
        return f"x{r:.3g}"
    return f"x{r:.3g} (1/{1 / r:.3g})"


def _row_dict(row: pd.Series) -> dict:
    keys = [k for k in CONFIG_KEYS + ("weight_precision", "source", "output_unit") if k in row.index and _number(row[k])]
    out = {}
    for k in keys:
        v = row[k]
        out[k] = v.item() if hasattr(v, "item") else v
    return out


def _require(row: pd.Series, cols: Iterable[str], label: str) -> None:
    missing = [c for c in cols if c not in row.index or not _number(row[c]) or row[c] <= 0]
    if missing:
        raise HarnessError(f"cannot attribute {label}: missing or non-positive {', '.join(missing)}")


def attribute(a: pd.Series, b: pd.Series) -> Attribution:
    """Split the energy-per-output ratio B/A into multiplicative factors (exact product).

    LLM (energy per response): output length, average power, token rate of one
    running request (inverse), concurrency reached (inverse), and a measurement
    residual that is 1 when the row identities hold.
    Diffusion (energy per image/video): denoising steps, pixels, frames, batch
    size (inverse), average power, the batch's time per unit of work, and the residual.
    """
    a_llm, b_llm = _row_is_llm(a), _row_is_llm(b)
    if a_llm != b_llm:
        raise HarnessError("cannot attribute an LLM row against a diffusion row: their outputs differ")
    la, lb = config_label(a), config_label(b)
    return _attribute_llm(a, b, la, lb) if a_llm else _attribute_diffusion(a, b, la, lb)


def _factor(name: str, value_a: float, value_b: float, unit: str, meaning: str, inverse: bool = False) -> Factor:
    """A factor whose ratio is B over A (A over B for quantities that divide the energy)."""
    ratio = value_a / value_b if inverse else value_b / value_a
    return Factor(name, ratio, value_a, value_b, unit, meaning)


def _power_factor(a, b) -> Factor:
    return _factor("average power", float(a["avg_power_watts"]), float(b["avg_power_watts"]), "W (all GPUs)",
                   "GPU count, GPU generation and how busy the GPUs are")


def _with_residual(factors: list[Factor], ea: float, eb: float) -> tuple[Factor, ...]:
    """The factors plus the residual that makes their product equal the energy ratio exactly."""
    product = float(np.prod([f.ratio for f in factors]))
    residual = Factor("measurement residual", (eb / ea) / product, None, None, "",
                      "what the row identities do not explain (1 when energy = power x time holds exactly)")
    return tuple(factors) + (residual,)


def _attribute_llm(a, b, la, lb) -> Attribution:
    cols = ["energy_per_request_joules", "avg_output_len", "avg_power_watts", "output_throughput_tokens_per_sec"]
    for row, label in ((a, la), (b, lb)):
        _require(row, cols + ["avg_batch_size"], label)
    ea, eb = float(a["energy_per_request_joules"]), float(b["energy_per_request_joules"])
    conc_a, conc_b = float(a["avg_batch_size"]), float(b["avg_batch_size"])
    rate_a = float(a["output_throughput_tokens_per_sec"]) / conc_a
    rate_b = float(b["output_throughput_tokens_per_sec"]) / conc_b
    factors = [
        _factor("output length", float(a["avg_output_len"]), float(b["avg_output_len"]), "tokens per response",
                "more tokens per response (task, reasoning on or off) cost proportionally more"),
        _power_factor(a, b),
        _factor("token rate per running request", rate_a, rate_b, "tokens/s per request (inverse)",
                "a slower decode step (bigger model, bigger batch, slower GPU) stretches the time power is drawn",
                inverse=True),
        _factor("concurrency reached", conc_a, conc_b, "requests running (inverse)",
                "more requests decoding together share the same power draw (memory headroom caps it)", inverse=True),
    ]
    per_token = float(b[ENERGY_PER_TOKEN]) / float(a[ENERGY_PER_TOKEN]) if _number(a.get(ENERGY_PER_TOKEN)) else None
    return Attribution("llm", la, lb, "energy_per_request_joules", ea, eb, _with_residual(factors, ea, eb),
                       per_token, _row_dict(a), _row_dict(b))


def _attribute_diffusion(a, b, la, lb) -> Attribution:
    cols = [ENERGY_PER_OUTPUT, "avg_power_watts", DIFFUSION_TIME, "batch_size", "inference_steps", "height_pixels"]
    for row, label in ((a, la), (b, lb)):
        _require(row, cols + ["width_pixels"], label)

    def frames(row):
        value = row.get("num_frames")
        return float(value) if _number(value) and value > 0 else 1.0

    def work(row):
        return float(row["inference_steps"]) * float(row["height_pixels"]) * float(row["width_pixels"]) * frames(row)

    ea, eb = float(a[ENERGY_PER_OUTPUT]), float(b[ENERGY_PER_OUTPUT])
    tau_a = float(a[DIFFUSION_TIME]) / work(a) * 1e9  # s per giga step-pixel-frame
    tau_b = float(b[DIFFUSION_TIME]) / work(b) * 1e9
    px_a = float(a["height_pixels"]) * float(a["width_pixels"])
    px_b = float(b["height_pixels"]) * float(b["width_pixels"])
    factors = [
        _factor("denoising steps", float(a["inference_steps"]), float(b["inference_steps"]), "steps",
                "each step runs the whole denoiser once"),
        _factor("pixels per frame", px_a, px_b, "pixels", "resolution sets the tokens per step"),
        _factor("frames", frames(a), frames(b), "frames", "a video is many frames of work"),
        _factor("batch size", float(a["batch_size"]), float(b["batch_size"]), "outputs per batch (inverse)",
                "outputs generated together share the batch's energy", inverse=True),
        _power_factor(a, b),
        _factor("batch time per unit of work", tau_a, tau_b, "s per 1e9 step-pixel-frames",
                "model size, batch size, parallelism and GPU speed set how fast a batch's work is done"),
    ]
    return Attribution("diffusion", la, lb, ENERGY_PER_OUTPUT, ea, eb, _with_residual(factors, ea, eb), None,
                       _row_dict(a), _row_dict(b))


# ---------------------------------------------------------------- static power


def estimate_floor_power(df: pd.DataFrame) -> pd.DataFrame:
    """Per GPU model, a per-GPU power floor and where it comes from.

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
            rows.append({"gpu_model": gpu, "floor_power_watts_per_gpu": per_gpu_idle, "floor_source": "measured idle power"})
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
    """Each row with its static power (floor x GPUs), its share of average power and the static energy per output.

    ``floor_watts_per_gpu`` maps GPU model to a per-GPU floor; by default it is
    :func:`estimate_floor_power` of the same table.
    """
    if floor_watts_per_gpu is None:
        est = estimate_floor_power(df)
        floor_watts_per_gpu = dict(zip(est["gpu_model"], est["floor_power_watts_per_gpu"]))
    out = df.copy()
    floor = out["gpu_model"].map(floor_watts_per_gpu).astype(float)
    out["static_power_watts"] = floor * out["num_gpus"]
    out["static_power_share"] = (out["static_power_watts"] / out["avg_power_watts"]).clip(upper=1.0)
    out["static_energy_per_output_joules"] = out[ENERGY_PER_OUTPUT] * out["static_power_share"]
    out["dynamic_energy_per_output_joules"] = out[ENERGY_PER_OUTPUT] - out["static_energy_per_output_joules"]
    return out


def share_bound(floor_source: str) -> str:
    """"at most " when the floor is an upper bound on static power (no idle reading), else "": one wording of
    the static share for every chapter."""
    return "at most " if "upper bound" in str(floor_source) else ""


# ---------------------------------------------------------------- the batch effect (one definition)

BATCH_EFFECT_MIN_BATCH = 16
BATCH_EFFECT_DEFINITION = (
    "energy per token at a series' smallest batch of at least 16 divided by energy per token "
    "at its largest batch, a series being one model on one task, GPU model and GPU count"
)


def batch_effect_pair(series: pd.DataFrame) -> tuple[pd.Series, pd.Series] | None:
    """The two rows of one series the batch effect compares: its smallest batch of at least
    :data:`BATCH_EFFECT_MIN_BATCH`, and its largest batch; None when they are the same row or do not exist."""
    small = series[series["batch_size"] >= BATCH_EFFECT_MIN_BATCH]
    if small.empty or series["batch_size"].nunique() < 2:
        return None
    lo, hi = small.loc[small["batch_size"].idxmin()], series.loc[series["batch_size"].idxmax()]
    if lo.name == hi.name:
        return None
    return lo, hi


def smallest_batch_rows(df: pd.DataFrame, by: Iterable[str] = SERIES_KEYS) -> pd.DataFrame:
    """The smallest-batch row of every series (model, task, GPU model, GPU count)."""
    keys = _group_keys(by, df)
    idx = df.groupby(keys, sort=True)["batch_size"].idxmin()
    return df.loc[list(idx)].reset_index(drop=True)


def largest_batch_rows(df: pd.DataFrame, by: Iterable[str] = SERIES_KEYS) -> pd.DataFrame:
    """The largest-batch row of every series."""
    keys = _group_keys(by, df)
    idx = df.groupby(keys, sort=True)["batch_size"].idxmax()
    return df.loc[list(idx)].reset_index(drop=True)


# ---------------------------------------------------------------- throughput per watt and budgets


def throughput_per_watt(df: pd.DataFrame) -> pd.DataFrame:
    """Adds ``tokens_per_sec_per_watt`` (LLM rows; = 1 / energy per token) and
    ``outputs_per_sec_per_watt`` (responses, images or videos per second per watt)."""
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
    if _kind(df) == "llm":
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
    for part in _split(df):
        part = part[part["avg_power_watts"] <= budget_watts].dropna(subset=["avg_power_watts"]).copy()
        if part.empty:
            continue
        part["replicas_in_budget"] = np.floor(budget_watts / part["avg_power_watts"]).astype(int)
        part["throughput_in_budget"] = part["replicas_in_budget"] * _throughput(part)
        part = part.dropna(subset=["throughput_in_budget"])
        keys = _group_keys(by, part)
        out.append(part.loc[list(part.groupby(keys, sort=True)["throughput_in_budget"].idxmax())])
    return pd.concat(out).reset_index(drop=True) if out else df.iloc[0:0].copy()


def best_under_latency(
    df: pd.DataFrame,
    target: float,
    by: Iterable[str] = ("model_id", "task", "gpu_model"),
    time: str | None = None,
    energy: str | None = None,
) -> pd.DataFrame:
    """Per group, the lowest-energy configuration (any GPU count, any batch) whose latency meets ``target``.

    ``target`` is in the time column's unit: ms of median ITL (LLM) or s of whole-batch time (diffusion).
    """
    out = []
    for part in _split(df):
        t, e = time or time_column(part), energy or energy_column(part)
        part = part.dropna(subset=[t, e])
        part = part[part[t] <= target]
        if part.empty:
            continue
        keys = _group_keys(by, part)
        out.append(part.loc[list(part.groupby(keys, sort=True)[e].idxmin())])
    return pd.concat(out).reset_index(drop=True) if out else df.iloc[0:0].copy()


def compare_at_latency(
    df: pd.DataFrame,
    side: str,
    a: str,
    b: str,
    targets: Iterable[float],
    by: Iterable[str] = ("model_id", "task"),
    time: str | None = None,
    energy: str | None = None,
) -> pd.DataFrame:
    """For every group and target, each side's lowest-energy configuration that meets the target.

    ``side`` is the column that tells the sides apart (e.g. ``gpu_model`` with ``a="H100"``,
    ``b="B200"``). Returns one row per (group, target) where both sides have a
    qualifying configuration: ``energy_a``, ``energy_b``, their labels and
    ``gain = (energy_a - energy_b) / energy_a`` (positive when B uses less).
    """
    rows = []
    for part in _split(df):
        t, e = time or time_column(part), energy or energy_column(part)
        keys = _group_keys(by, part)
        for key, group in part.groupby(keys, sort=True):
            sa, sb = group[group[side] == a], group[group[side] == b]
            if sa.empty or sb.empty:
                continue
            for target in targets:
                qa = sa[sa[t] <= target].dropna(subset=[e])
                qb = sb[sb[t] <= target].dropna(subset=[e])
                if qa.empty or qb.empty:
                    continue
                ra, rb = qa.loc[qa[e].idxmin()], qb.loc[qb[e].idxmin()]
                key = key if isinstance(key, tuple) else (key,)
                row = dict(zip(keys, key))
                row.update(
                    {
                        "target": target,
                        "time_column": t,
                        "energy_column": e,
                        "energy_a": float(ra[e]),
                        "energy_b": float(rb[e]),
                        "time_a": float(ra[t]),
                        "time_b": float(rb[t]),
                        "config_a": config_label(ra),
                        "config_b": config_label(rb),
                        "row_a": ra.name,
                        "row_b": rb.name,
                        "gain": (float(ra[e]) - float(rb[e])) / float(ra[e]),
                    }
                )
                rows.append(row)
    return pd.DataFrame(rows)


def pick_model(df: pd.DataFrame, preferred: str | None = None) -> str:
    """The model id matching ``preferred`` (a case-insensitive regular expression on id or nickname);
    if none matches, the model with the most configurations in ``df``."""
    if df.empty:
        raise SelectorError("no configuration left to pick a model from")
    if preferred:
        names = df["model_id"].astype(str)
        nick = df["nickname"].fillna("").astype(str) if "nickname" in df.columns else names
        hit = names.str.contains(preferred, case=False, regex=True) | nick.str.contains(preferred, case=False, regex=True)
        if hit.any():
            exact = df.loc[hit & (names.str.lower() == preferred.lower()), "model_id"]
            return str(exact.iloc[0]) if len(exact) else str(df.loc[hit, "model_id"].value_counts().index[0])
    return str(df["model_id"].value_counts().index[0])


# ---------------------------------------------------------------- selectors


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
        import difflib

        known = [str(v) for v in column.dropna().unique()]
        close = difflib.get_close_matches(value, known, n=3, cutoff=0.6)
        if close:
            suggestions.append(f"{key}={value} exists nowhere; did you mean {' or '.join(close)}?")
    for key in terms:
        others = [m for k, m in masks.items() if k != key]
        rest = pd.concat(others, axis=1).all(axis=1) if others else pd.Series(True, index=df.index)
        if rest.any():
            hints.append(f"without {key}={terms[key]} it matches {int(rest.sum())} rows with {key} in "
                         f"{{{', '.join(_values(df.loc[rest, key]))}}}")
    if not hints:
        hints.append("no two of its terms match together")
    return "; ".join(hints + suggestions)
