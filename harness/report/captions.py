"""Numbered figures with captions, one numbering per page.

A chapter numbers its figures in the order it shows them; each figure gets an anchor, so prose can point at
it::

    from harness.report.captions import Figures
    figures = Figures()
    figures.show(chart, "batch-effect", "The batch effect over every published series. ...")
    display(Markdown(f"{figures.ref('batch-effect')} shows ..."))   # a link: "Figure 1"

The figure is an HTML ``<figure>`` holding the chart (drawn by the offline renderer, see
:func:`harness.report.charts.html_fragment`) and a ``<figcaption>`` that starts "Figure N.". Jupyter Book's own
figure numbering (MyST ``{figure}``) applies to images in Markdown pages; charts come out of notebook cells,
hence this helper. A new :class:`Figures` per notebook: the kernel that runs several notebooks keeps modules
loaded, so a module-level counter would run on from one chapter into the next.
"""

from __future__ import annotations

import html
import re
from typing import Any

FIGURE_CLASS = "joules-figure"


def _anchor(name: str) -> str:
    return "fig-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


class Figures:
    """The numbered figures of one page."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def number(self, name: str) -> int:
        """The figure's number on this page (the next one the first time a name is used)."""
        if name not in self._numbers:
            self._numbers[name] = len(self._numbers) + 1
        return self._numbers[name]

    def ref(self, name: str) -> str:
        """An HTML link to the figure, ``Figure N`` (raw HTML, so MyST leaves the page-local anchor alone)."""
        return f'<a href="#{_anchor(name)}">Figure {self.number(name)}</a>'

    def html(self, chart: Any, name: str, caption: str) -> str:
        """The figure as HTML: the chart's offline fragment and its numbered caption (``caption`` is plain text)."""
        from harness.report import charts

        number = self.number(name)
        return (
            f'<figure class="{FIGURE_CLASS}" id="{_anchor(name)}">\n{charts.html_fragment(chart.to_dict())}\n'
            f"<figcaption><strong>Figure {number}.</strong> {html.escape(caption)}</figcaption>\n</figure>"
        )

    def show(self, chart: Any, name: str, caption: str) -> None:
        """Display the figure in the notebook (the chart, then "Figure N." and the caption)."""
        from IPython.display import HTML, display

        display(HTML(self.html(chart, name, caption)))
