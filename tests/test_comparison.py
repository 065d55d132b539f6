"""The paper-against-data page's wording and table (harness.report.comparison) and html_table."""

from __future__ import annotations

from types import SimpleNamespace

from harness.analysis import paper as P
from harness.report import comparison
from harness.report.notebook import html_table


def _check(agrees: bool, difference: float | None) -> P.Check:
    figure = P.Figure("f", "energy per response", "4,625", "J", lambda v: v["x"])
    return P.Check(figure, 4700.0, agrees, difference)


def test_verdict_and_difference_words():
    assert comparison.verdict_text(_check(True, 0.012)) == "agrees"
    assert comparison.verdict_text(_check(False, 0.0162)) == "DIFFERS (+1.6%)"
    assert comparison.verdict_text(_check(False, None)) == "DIFFERS"
    assert comparison.difference_text(_check(False, -0.01234)) == "-1.23%"
    assert comparison.difference_text(_check(True, 4e-5)) == "0.00%"  # under 0.005%: no sign
    assert comparison.difference_text(_check(True, None)) == ""


def test_comparison_table_has_one_row_per_published_figure(monkeypatch):
    figure = P.Figure("f", "ratio", "3.5", "x", lambda v: v["ratio"])
    finding = SimpleNamespace(id="f", title="A finding", values={"ratio": 3.52})
    monkeypatch.setattr(P, "figures_of", lambda finding_id: (figure,) if finding_id == "f" else ())
    table = comparison.comparison_table([finding])
    assert table.to_dict("records") == [
        {
            "finding": "A finding",
            "figure": "ratio",
            "paper": "3.5x",
            "recomputed": P.format_value(figure, 3.52),
            "agrees": True,
            "relative_difference": P.check(figure, 3.52).difference,
        }
    ]


def test_html_table_has_no_index_column():
    html = html_table([("a", 1), ("b", 2)], ["name", "count"]).data
    assert "<th>name</th>" in html and "<td>b</td>" in html and 'class="dataframe table"' in html
    assert "<th></th>" not in html
