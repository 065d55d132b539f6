"""Why two configurations' energy differs: the energy ratio B/A as a product of factors.

The identities behind the attribution (they hold on every published row):

* LLM: ``E_response = L * P / T`` with ``T = C * r``: output length ``L`` (tokens),
  average power ``P`` (W, all GPUs), output throughput ``T`` (tokens/s), concurrency ``C``
  (the batch size actually reached, ``avg_batch_size``) and the token rate of
  one running request ``r = T / C`` (tokens/s per request).
* Diffusion: ``E_output = P * t_batch / B`` with ``t_batch = W * tau``: work per
  output ``W = steps * pixels * frames``, batch size ``B`` and the batch's time
  per unit of work ``tau = t_batch / W`` (s per 1e9 step-pixel-frames).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from harness.analysis.tables.columns import (
    CONFIG_KEYS,
    DIFFUSION_TIME,
    ENERGY_PER_OUTPUT,
    ENERGY_PER_TOKEN,
    config_label,
    is_number,
    row_is_llm,
)
from harness.analysis.tables.selectors import select_row
from harness.errors import HarnessError


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
        """The factor's natural log (NaN when the ratio is not positive)."""
        return math.log(self.ratio) if self.ratio > 0 else float("nan")


@dataclass(frozen=True)
class Attribution:
    """Energy per output of B over A, split into factors whose product is exactly the ratio."""

    kind: str  # "llm" or "diffusion"
    label_a: str
    label_b: str
    energy_column: str
    energy_a: float  # J per output (the unit of energy_column)
    energy_b: float
    factors: tuple[Factor, ...]
    per_token_ratio: float | None = None  # LLM only: ratio of energy per token
    config_a: dict = field(default_factory=dict)
    config_b: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Energy per output of B over A (dimensionless)."""
        return self.energy_b / self.energy_a

    @property
    def product(self) -> float:
        """The product of the factors (equals :attr:`ratio` up to rounding)."""
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
        """The attribution as plain data (energies in J per output of ``energy_column``)."""
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
            f"B ({self.label_b}) uses {format_number(self.energy_b)} J per {unit} against "
            f"{format_number(self.energy_a)} J for A ({self.label_a}): {_times(self.ratio)}."
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
                values = f" ({format_number(f.value_a)} -> {format_number(f.value_b)} {f.unit})"
            parts.append(f"{f.name} {_times(f.ratio)}{values}: {f.meaning}")
        body = " Factors, largest first: " + "; ".join(parts) + "." if parts else " All factors are 1."
        tail = f" Product of factors = {format_number(self.product)} = the ratio."
        return head + body + tail


def format_number(x: float | None) -> str:
    """A number as the attribution writes it: thousands separated, about three significant digits, "n/a" for
    None or NaN (no unit is added)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    ax = abs(x)
    if float(x).is_integer() and ax < 1e7:
        return f"{int(x):,}"
    if ax >= 1e4:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:,.0f}"  # 999.6 rounds to "1,000", separated like every other thousand
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
    keys = [
        k for k in (*CONFIG_KEYS, "weight_precision", "source", "output_unit") if k in row.index and is_number(row[k])
    ]
    out = {}
    for k in keys:
        v = row[k]
        out[k] = v.item() if hasattr(v, "item") else v
    return out


def _require(row: pd.Series, cols: Iterable[str], label: str) -> None:
    missing = [c for c in cols if c not in row.index or not is_number(row[c]) or row[c] <= 0]
    if missing:
        raise HarnessError(f"cannot attribute {label}: missing or non-positive {', '.join(missing)}")


def attribute(a: pd.Series, b: pd.Series) -> Attribution:
    """Split the energy-per-output ratio B/A into multiplicative factors (exact product).

    LLM (energy per response): output length, average power, token rate of one
    running request (inverse), concurrency reached (inverse), and a measurement
    residual that is 1 when the row identities hold. Where both rows carry the phase
    estimator's prefill share (own runs on a GPU), average power is two factors: the
    power outside prefill and the prefill phase (their product is the power ratio).
    Diffusion (energy per image/video): denoising steps, pixels, frames, batch
    size (inverse), average power, the batch's time per unit of work, and the residual.
    """
    a_llm, b_llm = row_is_llm(a), row_is_llm(b)
    if a_llm != b_llm:
        raise HarnessError("cannot attribute an LLM row against a diffusion row: their outputs differ")
    la, lb = config_label(a), config_label(b)
    return _attribute_llm(a, b, la, lb) if a_llm else _attribute_diffusion(a, b, la, lb)


def _factor(name: str, value_a: float, value_b: float, unit: str, meaning: str, inverse: bool = False) -> Factor:
    """A factor whose ratio is B over A (A over B for quantities that divide the energy)."""
    ratio = value_a / value_b if inverse else value_b / value_a
    return Factor(name, ratio, value_a, value_b, unit, meaning)


def _power_factor(a: pd.Series, b: pd.Series) -> Factor:
    return _factor(
        "average power",
        float(a["avg_power_watts"]),
        float(b["avg_power_watts"]),
        "W (all GPUs)",
        "GPU count, GPU generation and how busy the GPUs are",
    )


PREFILL_FRACTION = "prefill_energy_fraction"  # the phase estimator's share (harness.analysis.energy_split)


def _power_factors(a: pd.Series, b: pd.Series) -> list[Factor]:
    """The average-power factor; split in two where both rows carry the phase estimator's prefill share ``f``
    (own runs on a GPU): the average power outside prefill ``P (1 - f)`` and the prefill phase ``1 / (1 - f)``,
    whose product is the power ratio exactly."""
    fa, fb = a.get(PREFILL_FRACTION), b.get(PREFILL_FRACTION)
    if not (is_number(fa) and is_number(fb) and 0 <= fa < 1 and 0 <= fb < 1):
        return [_power_factor(a, b)]
    pa, pb = float(a["avg_power_watts"]), float(b["avg_power_watts"])
    return [
        _factor(
            "average power outside prefill",
            pa * (1 - fa),
            pb * (1 - fb),
            "W (all GPUs)",
            "GPU count, GPU generation and how busy decoding keeps the GPUs",
        ),
        Factor(
            "prefill phase",
            (1 - fa) / (1 - fb),
            float(fa),
            float(fb),
            "share of the energy in prefill",
            "prompt tokens per output token and their cost (the phase estimator's prefill share)",
        ),
    ]


def _with_residual(factors: list[Factor], ea: float, eb: float) -> tuple[Factor, ...]:
    """The factors plus the residual that makes their product equal the energy ratio exactly."""
    product = float(np.prod([f.ratio for f in factors]))
    residual = Factor(
        "measurement residual",
        (eb / ea) / product,
        None,
        None,
        "",
        "what the row identities do not explain (1 when energy = power x time holds exactly)",
    )
    return (*factors, residual)


def _attribute_llm(a: pd.Series, b: pd.Series, la: str, lb: str) -> Attribution:
    cols = ["energy_per_request_joules", "avg_output_len", "avg_power_watts", "output_throughput_tokens_per_sec"]
    for row, label in ((a, la), (b, lb)):
        _require(row, [*cols, "avg_batch_size"], label)
    ea, eb = float(a["energy_per_request_joules"]), float(b["energy_per_request_joules"])
    conc_a, conc_b = float(a["avg_batch_size"]), float(b["avg_batch_size"])
    rate_a = float(a["output_throughput_tokens_per_sec"]) / conc_a
    rate_b = float(b["output_throughput_tokens_per_sec"]) / conc_b
    factors = [
        _factor(
            "output length",
            float(a["avg_output_len"]),
            float(b["avg_output_len"]),
            "tokens per response",
            "more tokens per response (task, reasoning on or off) cost proportionally more",
        ),
        *_power_factors(a, b),
        _factor(
            "token rate per running request",
            rate_a,
            rate_b,
            "tokens/s per request (inverse)",
            "a slower decode step (bigger model, bigger batch, slower GPU) stretches the time power is drawn",
            inverse=True,
        ),
        _factor(
            "concurrency reached",
            conc_a,
            conc_b,
            "requests running (inverse)",
            "more requests decoding together share the same power draw (memory headroom caps it)",
            inverse=True,
        ),
    ]
    per_token = float(b[ENERGY_PER_TOKEN]) / float(a[ENERGY_PER_TOKEN]) if is_number(a.get(ENERGY_PER_TOKEN)) else None
    return Attribution(
        "llm",
        la,
        lb,
        "energy_per_request_joules",
        ea,
        eb,
        _with_residual(factors, ea, eb),
        per_token,
        _row_dict(a),
        _row_dict(b),
    )


def _attribute_diffusion(a: pd.Series, b: pd.Series, la: str, lb: str) -> Attribution:
    cols = [ENERGY_PER_OUTPUT, "avg_power_watts", DIFFUSION_TIME, "batch_size", "inference_steps", "height_pixels"]
    for row, label in ((a, la), (b, lb)):
        _require(row, [*cols, "width_pixels"], label)

    def frames(row: pd.Series) -> float:
        value = row.get("num_frames")
        return float(value) if is_number(value) and value > 0 else 1.0

    def work(row: pd.Series) -> float:
        return float(row["inference_steps"]) * float(row["height_pixels"]) * float(row["width_pixels"]) * frames(row)

    ea, eb = float(a[ENERGY_PER_OUTPUT]), float(b[ENERGY_PER_OUTPUT])
    tau_a = float(a[DIFFUSION_TIME]) / work(a) * 1e9  # s per giga step-pixel-frame
    tau_b = float(b[DIFFUSION_TIME]) / work(b) * 1e9
    px_a = float(a["height_pixels"]) * float(a["width_pixels"])
    px_b = float(b["height_pixels"]) * float(b["width_pixels"])
    factors = [
        _factor(
            "denoising steps",
            float(a["inference_steps"]),
            float(b["inference_steps"]),
            "steps",
            "each step runs the whole denoiser once",
        ),
        _factor("pixels per frame", px_a, px_b, "pixels", "resolution sets the tokens per step"),
        _factor("frames", frames(a), frames(b), "frames", "a video is many frames of work"),
        _factor(
            "batch size",
            float(a["batch_size"]),
            float(b["batch_size"]),
            "outputs per batch (inverse)",
            "outputs generated together share the batch's energy",
            inverse=True,
        ),
        _power_factor(a, b),
        _factor(
            "batch time per unit of work",
            tau_a,
            tau_b,
            "s per 1e9 step-pixel-frames",
            "model size, batch size, parallelism and GPU speed set how fast a batch's work is done",
        ),
    ]
    return Attribution(
        "diffusion",
        la,
        lb,
        ENERGY_PER_OUTPUT,
        ea,
        eb,
        _with_residual(factors, ea, eb),
        None,
        _row_dict(a),
        _row_dict(b),
    )


def diagnose(a: str | Mapping[str, str], b: str | Mapping[str, str], table: pd.DataFrame) -> Attribution:
    """Select two rows of ``table`` by selector (:func:`~harness.analysis.tables.selectors.select_row`) and
    attribute their energy gap, B over A."""
    return attribute(select_row(table, a), select_row(table, b))
