"""The execution cache: what an executed notebook depends on (its fingerprint), and the stamp that records it.

A notebook is executed again only when its fingerprint changes: a hash of the notebook's source, its
parameters, the input data it names (the pinned reference files; folders such as ``results``), the ``harness``
package's code and the pinned requirements. Each executed notebook's fingerprint is kept in
``book/_generated/.stamps/<name>.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from harness.errors import ConfigError
from harness.report.book.config import NotebookSpec


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree_state(path: Path) -> str:
    """Hash of a file's or folder's listing: relative names, sizes and modification times."""
    if not path.exists():
        return "absent"
    if path.is_file():
        st = path.stat()
        return _sha(f"{st.st_size}:{st.st_mtime_ns}".encode())
    lines = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            try:
                st = full.stat()
            except FileNotFoundError:
                continue
            lines.append(f"{full.relative_to(path).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}")
    return _sha("\n".join(lines).encode())


def notebook_fingerprint(path: Path) -> str:
    """Hash of what executing a notebook depends on: each cell's type, source and metadata (tags), and
    the kernel. Outputs, execution counts and cell ids are left out, so a notebook saved after an
    interactive run is not executed again for that."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = [[c.get("cell_type"), "".join(c.get("source", "")), c.get("metadata", {})] for c in nb.get("cells", [])]
        kernel = (nb.get("metadata") or {}).get("kernelspec", {}).get("name")
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(f"notebook {path} cannot be read: {exc}") from None
    return _sha(json.dumps([kernel, cells], sort_keys=True).encode())


def code_fingerprint() -> str:
    """Hash of the ``harness`` package's Python sources and data files."""
    import harness

    package = Path(harness.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc",):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(root: Path, spec: NotebookSpec, params: dict, code: str | None = None) -> tuple[str, dict]:
    """``(digest, parts)``: what a notebook's executed copy depends on."""
    lock = root / "requirements" / "lock-cpu.txt"
    parts = {
        "notebook": notebook_fingerprint(root / spec.source),
        "parameters": _sha(json.dumps(params, sort_keys=True, default=str).encode()),
        "harness": code or code_fingerprint(),
        "requirements": _sha(lock.read_bytes()) if lock.is_file() else "absent",
    }
    for item in spec.inputs:
        if item == "reference":
            from harness.published import reference

            parts["input:reference"] = _sha(json.dumps(reference.manifest(), sort_keys=True).encode())
        else:
            parts[f"input:{item}"] = _tree_state(root / item)
    digest = _sha(json.dumps(parts, sort_keys=True).encode())
    return digest, parts


def is_current(root: Path, spec: NotebookSpec, digest: str) -> bool:
    """Whether the executed copy exists and its stamp records the fingerprint ``digest``."""
    stamp = root / spec.stamp
    if not (root / spec.output).is_file() or not stamp.is_file():
        return False
    try:
        return json.loads(stamp.read_text()).get("digest") == digest
    except (OSError, ValueError):
        return False


def write_stamp(root: Path, spec: NotebookSpec, digest: str, parts: dict, params: dict, seconds: float) -> None:
    """Record that ``spec`` was executed with ``params`` (fingerprint ``digest``) in ``seconds`` of wall time."""
    path = root / spec.stamp
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"digest": digest, "parts": parts, "parameters": params, "execution_s": round(seconds, 2)}
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
    tmp.replace(path)
