"""What every chapter notebook shares: writing its figures and tables, showing a table, and the sentences it repeats.

A notebook imports these instead of defining them again::

    from harness.report.notebook import html_table, own_note, pct, save
    save(chart, "chat-batch", output_dir)      # an SVG (chart) or CSV (table) in output_dir; nothing when it is empty
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.report import charts

if TYPE_CHECKING:
    from IPython.display import HTML


def save(chart: Any, name: str, output_dir: str | Path | None) -> None:
    """Write a chart (as ``<name>.svg``) or a table (as ``<name>.csv``) into ``output_dir`` when one is given."""
    if not output_dir:
        return
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    if isinstance(chart, pd.DataFrame):
        chart.to_csv(Path(output_dir) / f"{name}.csv", index=False)
    else:
        charts.save(chart, Path(output_dir) / f"{name}.svg")


def own_note(frame: pd.DataFrame, results_dir: str | Path) -> str:
    """A sentence on the harness's own runs in a selection (empty when there are none)."""
    own = frame[frame["source"] == "own"] if "source" in frame.columns else frame.iloc[0:0]
    return f" It includes {len(own)} of the harness's own runs from `{results_dir}`." if len(own) else ""


def pct(fraction: float) -> str:
    """A fraction as a percentage with one decimal: ``0.1234`` -> ``"12.3%"``."""
    return f"{100 * fraction:.1f}%"


def html_table(rows: list[tuple[Any, ...]], header: list[str]) -> HTML:
    """``rows`` under ``header`` as an HTML table without an index column (class ``table``)."""
    from IPython.display import HTML

    return HTML(pd.DataFrame(rows, columns=header).to_html(index=False, border=0, classes="table"))
