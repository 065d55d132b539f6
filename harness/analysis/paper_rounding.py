"""A published figure and the one rule that says whether a recomputed value agrees with it: at the precision the
paper wrote it (:func:`check`); :mod:`harness.analysis.paper` holds the figures themselves."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

TOLERANCE_RULE = (
    "A recomputed value agrees with the paper's figure when it rounds to that figure at the precision the paper "
    "wrote it (3.56x stands for 3.555x to 3.565x, 4,625 J for 4,624.5 J to 4,625.5 J, 1.16 MJ for 1.155 MJ to "
    "1.165 MJ); counts must match exactly; a range such as 3 to 5x holds when every value it covers rounds into "
    'it; "more than 100x" when the value exceeds 100.'
)

ROUNDED, RANGE, ABOVE = "rounded", "range", "above"


@dataclass(frozen=True)
class Figure:
    """One published number: where it belongs, how the paper writes it and how to read ours."""

    finding: str  # finding id
    label: str  # what it is, in words
    text: str  # the number as the paper writes it: "4,625", "3.56", "3 to 5", "100"
    unit: str  # unit of the written number: "J", "kJ", "MJ", "x", "%", "tokens", "" (a count)
    value: Callable[[dict], Any]  # finding.values -> our number (in the written unit), or a list for RANGE
    kind: str = ROUNDED

    def bounds(self) -> tuple[float, float]:
        """The interval of values that round to the figure as written."""
        if self.kind == ABOVE:
            return _number(self.text), math.inf
        if self.kind == RANGE:
            lo, hi = (part.strip() for part in self.text.split(" to "))
            return _number(lo) - _half_unit(lo), _number(hi) + _half_unit(hi)
        return _number(self.text) - _half_unit(self.text), _number(self.text) + _half_unit(self.text)

    @property
    def written(self) -> str:
        """The figure as the paper writes it, with its unit: "3.56x", "4,625 J", "more than 100x"."""
        text = {ABOVE: f"more than {self.text}"}.get(self.kind, self.text)
        if self.unit in ("x", "%"):
            return f"{text}{self.unit}"
        return f"{text} {self.unit}".strip()


@dataclass(frozen=True)
class Check:
    figure: Figure
    computed: Any  # float, or a list of floats for RANGE
    agrees: bool
    difference: float | None  # (computed - published) / published, None for ranges and lower bounds

    def as_dict(self) -> dict:
        """The check as plain data (``computed`` in the figure's written unit)."""
        return {
            "label": self.figure.label,
            "paper": self.figure.written,
            "unit": self.figure.unit,
            "computed": self.computed,
            "computed_text": format_value(self.figure, self.computed),
            "agrees": self.agrees,
            "relative_difference": self.difference,
            "kind": self.figure.kind,
        }


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("+", ""))


def _exponent(text: str) -> int:
    """The power of ten of the last digit written: "3.56" -> -2, "4,625" -> 0; a figure is a finite number."""
    exponent = Decimal(text.replace(",", "").replace("+", "")).as_tuple().exponent
    if not isinstance(exponent, int):  # "n", "N", "F": NaN, sNaN, infinity
        raise ValueError(f"not a finite number: {text!r}")
    return exponent


def _half_unit(text: str) -> float:
    """Half a unit of the last digit written: "3.56" -> 0.005, "4,625" -> 0.5, "63" -> 0.5."""
    return 0.5 * 10.0 ** _exponent(text)


def check(figure: Figure, computed: Any) -> Check:
    """The comparison: does a recomputed value agree with the paper's figure, at the paper's rounding?"""
    lo, hi = figure.bounds()
    eps = 1e-9 * max(1.0, abs(lo), abs(hi) if math.isfinite(hi) else 0.0)
    if computed is None:
        return Check(figure, None, False, None)
    if figure.kind == RANGE:
        values = [float(v) for v in computed]
        return Check(figure, values, bool(values) and all(lo - eps <= v <= hi + eps for v in values), None)
    value = float(computed)
    if figure.kind == ABOVE:
        return Check(figure, value, value > lo, None)
    published = _number(figure.text)
    diff = (value - published) / published if published else None
    return Check(figure, value, lo - eps <= value <= hi + eps, diff)


def format_value(figure: Figure, value: Any) -> str:
    """Our value at one more digit than the paper wrote (enough to see which way it rounds)."""
    if value is None:
        return "not computed"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(dataclasses.replace(figure, kind=ROUNDED, text="1.0"), v) for v in value)
    exponent = _exponent(figure.text.split(" to ")[0])
    digits = max(0, -exponent + 1) if figure.unit != "" else 0
    text = f"{value:,.{digits}f}"
    if figure.unit in ("x", "%"):
        return f"{text}{figure.unit}"
    return f"{text} {figure.unit}".strip()
