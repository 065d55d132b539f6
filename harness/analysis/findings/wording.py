"""How the findings write numbers and names in their sentences."""

from __future__ import annotations

import pandas as pd

from harness.vocabulary.tasks import TASK_NAMES


def ratio_text(r: float) -> str:
    """A ratio as "3.56x", "25.2x" or "3,433x" (two decimals below 10, one below 100, then whole numbers)."""
    if r < 10:
        return f"{r:.2f}x"
    if r < 100:
        return f"{r:.1f}x"
    return f"{r:,.0f}x"


def percent_text(r: float) -> str:
    """A fraction as a whole percentage: 0.347 -> "35%"."""
    return f"{100 * r:.0f}%"


def energy_text(value: float) -> str:
    """An energy in J at three significant digits, in J, kJ or MJ: 6679 -> "6.68 kJ"."""
    if value >= 1e6:
        return f"{value / 1e6:.3g} MJ"
    if value >= 1e3:
        return f"{value / 1e3:.3g} kJ"
    return f"{value:.3g} J"


def times_word(ratio: float, up: str, down: str) -> str:
    """``3.2 -> "3.2 times slower"``, ``0.5 -> "2 times faster"`` (words for a factor above or below 1)."""
    if ratio >= 1:
        return f"{ratio:.3g} times {up}"
    return f"{1 / ratio:.3g} times {down}"


def short_name(model_id: str) -> str:
    """A model id without its organisation: ``Qwen/Qwen3-32B`` -> ``Qwen3-32B``."""
    return model_id.split("/")[-1]


def task_name(task: str) -> str:
    """The reader's name of a task (the id itself when the vocabulary has none)."""
    return TASK_NAMES.get(task, task)


def nickname(frame: pd.DataFrame, model_id: str) -> str:
    """The display name the published data give a model (its id's last part when none)."""
    if "nickname" in frame.columns:
        names = frame.loc[frame["model_id"] == model_id, "nickname"].dropna()
        if len(names):
            return str(names.iloc[0])
    return short_name(model_id)


def stats(values: pd.Series) -> dict:
    """``n``, ``median``, ``min`` and ``max`` of a series, NaN left out (None each when nothing is left);
    in the series' unit."""
    values = values.dropna()
    if values.empty:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(values), "median": float(values.median()), "min": float(values.min()), "max": float(values.max())}
