"""The table of every notebook's parameters, generated from ``book/notebooks.yml`` for the *reproduce* page.

Under each chapter, a row per parameter: the value the book runs it with (``book/notebooks.yml``), and what it
sets (the comment beside it in the notebook's cell tagged ``parameters``) with the notebook's default. The builder writes the
table to ``book/_generated/notebook-parameters.md`` before Jupyter Book runs; ``book/reproduce.md`` includes it,
so the page never lists a parameter a notebook does not have.
"""  # noqa: E501

from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path

from harness.report.book.config import (
    CONFIG,
    GENERATED,
    BookConfig,
    declared_parameters,
)

PARAMETERS_PAGE = GENERATED / "notebook-parameters.md"


def _code(value: object) -> str:
    """A value as inline code; a long one may wrap anywhere (a long path would widen the table past the page)."""
    text = str(value if isinstance(value, str) else json.dumps(value))
    style = ' style="word-break: break-all"' if len(text) > 24 else ""
    return f'<code class="docutils literal"{style}>{html.escape(text)}</code>'


_IDENTIFIER = re.compile(
    r"\$?\b[\w-]+\.(?:md|csv|ipynb|json|parquet|ya?ml|py)\b|\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b"
    r"|\$[A-Z][A-Z0-9_]*"
)


def _prose(text: str) -> str:
    """A parameter's comment as HTML: file names, snake_case names and $VARIABLES set as code, the rest escaped."""
    out, last = [], 0
    for match in _IDENTIFIER.finditer(text):
        code = f'<code class="docutils literal">{html.escape(match.group(0))}</code>'
        out += [html.escape(text[last : match.start()]), code]
        last = match.end()
    return "".join(out) + html.escape(text[last:])


def parameters_markdown(root: Path, config: BookConfig) -> str:
    """The parameters of every registered notebook as one table (raw HTML in the Markdown page, so that each chapter
    heads its own rows and long values wrap), in the registry's order. Chapter links are relative to ``book/``."""
    head = (
        "<thead><tr><th>Parameter</th><th>In the book</th><th>What it sets (the notebook's default)</th></tr></thead>"
    )
    rows = ['<table class="table joules-parameters">', head, "<tbody>"]
    for name, spec in config.notebooks.items():
        href = spec.output.relative_to("book").with_suffix(".html").as_posix()
        rows.append(
            f'<tr><th colspan="3"><a href="{href}">{html.escape(name)}</a> '
            f"<small>({_code(spec.source.as_posix())})</small></th></tr>"
        )
        for param, info in declared_parameters(root, spec).items():
            book = _code(spec.parameters[param]) if param in spec.parameters else "the default"
            rows.append(
                f"<tr><td>{_code(param)}</td><td>{book}</td><td>{_prose(info.get('help', ''))} "
                f"({_code(info.get('default', ''))})</td></tr>"
            )
    rows += ["</tbody>", "</table>"]
    return "\n".join(rows) + "\n"


def _sources_key(root: Path, config: BookConfig) -> str:
    """A hash of what the table is made from: this module, the registry's text and each notebook's path, size and
    modification time."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update((root / CONFIG).read_bytes() if (root / CONFIG).is_file() else b"")
    for spec in config.notebooks.values():
        try:
            st = (root / spec.source).stat()
            digest.update(f"{spec.name}\0{spec.source}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{spec.name}\0missing\n".encode())
    return digest.hexdigest()


def write_parameters_page(root: Path, config: BookConfig) -> Path:
    """Write :data:`PARAMETERS_PAGE` (only when its text changes, so Sphinx rebuilds nothing for an unchanged
    table); returns its path. Its first line records a hash of the registry and the notebooks it was made from:
    while they are unchanged, no notebook is read again."""
    path = root / PARAMETERS_PAGE
    stamp = f"<!-- made from book/notebooks.yml and the notebooks: {_sources_key(root, config)} -->\n"
    try:
        if path.read_text(encoding="utf-8").startswith(stamp):
            return path
    except OSError:
        pass
    text = stamp + parameters_markdown(root, config)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path
