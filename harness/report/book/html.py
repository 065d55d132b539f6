"""The HTML: ``jupyter-book build . -W`` (Jupyter Book never executes a notebook), and the one line that says
why a build stopped."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.report.book.config import BUILD


def _sphinx_cause(output: str) -> str:
    """The warning or error that stopped a Sphinx build, from its output."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in output.splitlines()]
    if "Exception occurred:" in lines:  # Sphinx crashed: its exception, and the file it was reading
        rest = [x for x in lines[lines.index("Exception occurred:") + 1 :] if x]
        reading = [x for x in lines if x.startswith("reading sources...")]
        where = f" (reading {reading[-1].rsplit('] ', 1)[-1]})" if reading else ""
        if rest:
            return rest[0] + where
    for index, line in enumerate(lines):
        if line.startswith("Warning, treated as error"):
            rest = [x for x in lines[index + 1 :] if x]
            if rest:
                return rest[0]
    flagged = [x for x in lines if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", x)]
    if flagged:
        return flagged[0]
    errors = [x for x in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", x)]
    return errors[-1] if errors else (lines[-1] if lines else "no output")


def jupyter_book(root: Path, log: Callable[[str], Any] = print) -> Path:
    """``jupyter-book build . -W`` (incremental); returns the index page."""
    exe = Path(sys.executable).with_name("jupyter-book")
    command = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "-W"]
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        # a failed build must not leave an environment that hides its warnings next time
        (root / BUILD / ".doctrees" / "environment.pickle").unlink(missing_ok=True)
        raise HarnessError(
            f"jupyter-book build failed (warnings are errors): {_sphinx_cause(proc.stdout + proc.stderr)}"
        )
    return root / BUILD / "html" / "index.html"


def repeated_paragraphs(html_dir: Path, min_words: int = 12) -> dict[str, list[str]]:
    """Paragraphs of at least ``min_words`` words that the built book shows more than once (on one page or
    several): their text -> the pages (relative paths, once per occurrence). Navigation, footers, tables and chart
    code are left out: only ``<p>`` elements of the pages' main article, outside tables, are read."""
    import html as html_lib

    seen: dict[str, list[str]] = {}
    for page in sorted(Path(html_dir).rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        main = re.search(r'<article class="bd-article"[^>]*>(.*?)</article>', text, re.DOTALL)
        if not main:
            continue
        body = re.sub(r"<table\b.*?</table>", " ", main.group(1), flags=re.DOTALL)  # table cells are not paragraphs
        for para in re.findall(r"<p\b[^>]*>(.*?)</p>", body, re.DOTALL):
            words = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", para)).split())
            if len(words.split()) >= min_words:
                seen.setdefault(words, []).append(page.relative_to(html_dir).as_posix())
    return {words: pages for words, pages in seen.items() if len(pages) > 1}
