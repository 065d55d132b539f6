"""The book's registry: ``book/notebooks.yml`` read and checked, its agreement with ``_toc.yml``, and the
notebooks' declared parameters (those given in the registry and those overridden on the command line)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

CONFIG = Path("book") / "notebooks.yml"
GENERATED = Path("book") / "_generated"
STAMPS = GENERATED / ".stamps"
BUILD = Path("_build")
TOC = Path("_toc.yml")
KERNEL = "python3"
VISIBILITY_TAGS = ("remove-cell", "remove-input", "remove-output", "hide-cell", "hide-input", "hide-output")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclasses.dataclass(frozen=True)
class NotebookSpec:
    """One notebook of the book, as registered in ``book/notebooks.yml``."""

    name: str
    source: Path  # relative to the repository root
    parameters: dict
    inputs: tuple[str, ...] = ("reference",)
    timeout_s: int = 600

    @property
    def output(self) -> Path:
        return GENERATED / f"{self.name}.ipynb"

    @property
    def failed_output(self) -> Path:
        return GENERATED / f"{self.name}.failed.ipynb"

    @property
    def stamp(self) -> Path:
        return STAMPS / f"{self.name}.json"


@dataclasses.dataclass(frozen=True)
class BookConfig:
    notebooks: dict[str, NotebookSpec]
    code_cells: str | None  # tag given to code cells that have no visibility tag


def load_config(root: Path) -> BookConfig:
    """Read and check ``book/notebooks.yml``; every error names the entry at fault."""
    import yaml

    path = root / CONFIG
    if not path.is_file():
        raise ConfigError(f"{CONFIG} not found under {root}: run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{CONFIG} is not valid YAML: {str(exc).splitlines()[0]}") from None
    unknown = set(raw) - {"notebooks", "code_cells"}
    if unknown:
        raise ConfigError(
            f"{CONFIG}: unknown top-level key(s) {', '.join(sorted(unknown))} (known: notebooks, code_cells)"
        )
    code_cells = raw.get("code_cells")
    if code_cells is not None and code_cells not in VISIBILITY_TAGS:
        raise ConfigError(
            f"{CONFIG}: code_cells must be one of {', '.join(VISIBILITY_TAGS)} or null, not {code_cells!r}"
        )
    specs: dict[str, NotebookSpec] = {}
    for name, entry in (raw.get("notebooks") or {}).items():
        where = f"{CONFIG}: notebook {name!r}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}: names are lower-case letters, digits, '-' and '_'")
        if not isinstance(entry, dict) or "source" not in entry:
            raise ConfigError(f"{where} needs a 'source' (a notebook under notebooks/)")
        extra = set(entry) - {"source", "parameters", "inputs", "timeout_s"}
        if extra:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(extra))} (known: source, parameters, inputs, timeout_s)"
            )
        source = Path(entry["source"])
        if not (root / source).is_file():
            raise ConfigError(f"{where}: source {source} does not exist")
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: parameters must be a mapping of name: value")
        inputs = entry.get("inputs", ["reference"]) or []
        if isinstance(inputs, str) or not isinstance(inputs, list):
            raise ConfigError(f"{where}: inputs must be a list (reference, or paths such as results)")
        timeout = entry.get("timeout_s", 600)
        if not isinstance(timeout, int) or timeout <= 0:
            raise ConfigError(f"{where}: timeout_s must be a positive whole number of seconds")
        specs[name] = NotebookSpec(name, source, dict(params), tuple(str(i) for i in inputs), timeout)
    return BookConfig(specs, code_cells)


def toc_documents(root: Path) -> list[str]:
    """Every document named in ``_toc.yml`` (``root``, ``file`` entries), in order."""
    import yaml

    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    path = root / TOC
    if path.is_file():
        walk(yaml.safe_load(path.read_text()) or {})
    return found


def check_toc(root: Path, config: BookConfig) -> None:
    """Each generated notebook in ``_toc.yml`` is registered, and each registered one is in the toc."""
    prefix = GENERATED.as_posix() + "/"
    in_toc = {d[len(prefix) :].removesuffix(".ipynb") for d in toc_documents(root) if d.startswith(prefix)}
    missing = sorted(in_toc - set(config.notebooks))
    if missing:
        raise ConfigError(
            f"{TOC} lists {', '.join(prefix + m for m in missing)} but {CONFIG} registers no notebook of that name"
        )
    unlisted = sorted(set(config.notebooks) - in_toc)
    if unlisted:
        raise ConfigError(f"{CONFIG} registers {', '.join(unlisted)} but {TOC} has no entry {prefix}<name> for it")


_DECLARED: dict[tuple[str, int, int], dict[str, dict]] = {}  # (path, mtime_ns, size) -> declared parameters


def declared_parameters(root: Path, spec: NotebookSpec) -> dict[str, dict]:
    """Parameters declared in the notebook's cell tagged ``parameters`` (name -> papermill's description).

    Kept per file version (path, modification time, size): a build reads them twice (to check the registry, then
    for the reproduce page's table), and papermill takes about 0.1 s a notebook."""
    import papermill

    path = root / spec.source
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    if key is not None and key in _DECLARED:
        return {name: dict(info) for name, info in _DECLARED[key].items()}
    try:
        declared = dict(papermill.inspect_notebook(str(path)))
    except Exception as exc:  # papermill raises bare exceptions for unreadable notebooks  # noqa: BLE001
        raise ConfigError(f"notebook {spec.name} ({spec.source}) cannot be read: {exc}") from None
    if key is not None:
        _DECLARED[key] = {name: dict(info) for name, info in declared.items()}
    return declared


def check_parameters(root: Path, spec: NotebookSpec, params: dict) -> None:
    """Every name in ``params`` is a parameter the notebook declares (its cell tagged ``parameters``)."""
    declared = declared_parameters(root, spec)
    if not declared:
        raise ConfigError(f"notebook {spec.name} ({spec.source}) has no cell tagged 'parameters'")
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ConfigError(
            f"notebook {spec.name} has no parameter {', '.join(unknown)} (its parameters: {', '.join(declared)})"
        )


def parse_overrides(pairs: Iterable[str]) -> dict:
    """``key=value`` strings to a dict; values are read as YAML (``8`` -> 8, ``[a, b]`` -> list, ``null``)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"parameter {pair!r} is not of the form name=value")
        try:
            out[key] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key] = value
    return out


def chapter_titles(root: Path, config: BookConfig | None = None) -> dict[str, str]:
    """Each registered notebook's title: the text of its first Markdown ``# `` heading (its name when none)."""
    import json

    config = config or load_config(root)
    titles: dict[str, str] = {}
    for name, spec in config.notebooks.items():
        titles[name] = name
        try:
            cells = json.loads((root / spec.source).read_text(encoding="utf-8")).get("cells", [])
        except (OSError, ValueError):
            continue
        for cell in cells:
            if cell.get("cell_type") != "markdown":
                continue
            heading = next(
                (line[2:].strip() for line in "".join(cell.get("source", "")).splitlines() if line.startswith("# ")),
                None,
            )
            if heading:
                titles[name] = heading
                break
    return titles
