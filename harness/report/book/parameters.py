"""The table of every notebook's parameters, generated from ``book/notebooks.yml`` for the *reproduce* page.

Each row: the chapter, the parameter, the value the book runs it with (``book/notebooks.yml``), the notebook's
default (its cell tagged ``parameters``) and what it sets (the comment beside it there). The builder writes the
table to ``book/_generated/notebook-parameters.md`` before Jupyter Book runs; ``book/reproduce.md`` includes it,
so the page never lists a parameter a notebook does not have.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.report.book.config import GENERATED, BookConfig, declared_parameters

PARAMETERS_PAGE = GENERATED / "notebook-parameters.md"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _value(value: object) -> str:
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`"


def parameters_markdown(root: Path, config: BookConfig) -> str:
    """The parameters of every registered notebook as one Markdown table, in the registry's order."""
    lines = ["| Chapter | Parameter | In the book | Default | What it sets |", "|---|---|---|---|---|"]
    for name, spec in config.notebooks.items():
        declared = declared_parameters(root, spec)
        for index, (param, info) in enumerate(declared.items()):
            chapter = f"{{doc}}`{name} </{spec.output.with_suffix('').as_posix()}>`" if index == 0 else ""
            book = _value(spec.parameters[param]) if param in spec.parameters else "(default)"
            lines.append(f"| {chapter} | `{param}` | {book} | `{_cell(info.get('default', ''))}` | "
                         f"{_cell(info.get('help', ''))} |")
    return "\n".join(lines) + "\n"


def write_parameters_page(root: Path, config: BookConfig) -> Path:
    """Write :data:`PARAMETERS_PAGE` (only when its text changes, so Sphinx rebuilds nothing for an unchanged
    table); returns its path."""
    path = root / PARAMETERS_PAGE
    text = parameters_markdown(root, config)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path
