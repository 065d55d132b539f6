"""The paper against the data, as the book shows it: each published figure beside its recomputed value.

The findings and their checks are :mod:`harness.analysis.paper`'s; this module only words them for a reader
(a verdict, a relative difference in percent) and gathers them into the page's table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from harness.analysis import paper as P

if TYPE_CHECKING:
    from harness.analysis.findings import Finding


def verdict_text(check: P.Check) -> str:
    """``"agrees"``, or ``"DIFFERS"`` with the relative difference in percent (one decimal) where there is one."""
    if check.agrees:
        return "agrees"
    return "DIFFERS" + (f" ({100 * check.difference:+.1f}%)" if check.difference is not None else "")


def difference_text(check: P.Check) -> str:
    """The relative difference (recomputed - paper) / paper in percent with two decimals (``"0.00%"`` under
    0.005%); empty where the figure has none (ranges, lower bounds)."""
    if check.difference is None:
        return ""
    return "0.00%" if abs(check.difference) < 5e-5 else f"{100 * check.difference:+.2f}%"


def comparison_table(found: Iterable[Finding]) -> pd.DataFrame:
    """One row per published figure of each finding: ``finding`` (title), ``figure`` (its label), ``paper``
    (as the paper writes it), ``recomputed`` (in the same unit and style), ``agrees`` and
    ``relative_difference`` (a fraction; empty for ranges and lower bounds)."""
    records = []
    for finding in found:
        for c in P.checks(finding):
            records.append(
                {
                    "finding": finding.title,
                    "figure": c.figure.label,
                    "paper": c.figure.written,
                    "recomputed": P.format_value(c.figure, c.computed),
                    "agrees": c.agrees,
                    "relative_difference": c.difference,
                }
            )
    return pd.DataFrame(records)
