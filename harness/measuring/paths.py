"""Nothing a run writes leaves the results folder: every path proven inside it after resolving symlinks.

The results folder is resolved once, when a sweep names it (:func:`results_root`: the folder as given,
carrying where it really is, ``.real``). Each run folder ``<results>/<study>/<run-id>``, every entry
already in it (a ``server.log`` or ``.lock`` that is a symlink would be followed by an append) and the
study's ``.replaced`` folder are resolved, following every symlink, and must lie inside that resolved
folder; :func:`prove_files` does the same for each file :func:`harness.measuring.store.write_run` writes.
A symlink inside the results folder that points outside it is refused with :class:`OutsideResults`, one
line, before anything is written there. A results folder that is itself a symlink is fine: it is where
the user asked the results to go.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from harness.errors import HarnessError

REPLACED = ".replaced"  # <study>/.replaced/: where a run folder's old files are moved (the runner's _move_aside)


class OutsideResults(HarnessError):
    """A path a run would write resolves outside the results folder (a symlink points out of it)."""


class ResultsFolder(type(Path())):  # type: ignore[misc]
    """A results folder as given (it prints and compares as given), with ``real``: where it resolved to."""

    real: Path | None = None


def results_root(results_dir: Path | str) -> ResultsFolder:
    """``results_dir`` as given, resolved once now (symlinks followed; it need not exist yet)."""
    folder = ResultsFolder(results_dir)
    folder.real = Path(os.path.realpath(folder))
    return folder


def _real_root(results_dir: Path | str) -> Path:
    real = getattr(results_dir, "real", None)
    return real if real is not None else Path(os.path.realpath(results_dir))


def _inside(real: Path, root: Path) -> bool:
    return real == root or root in real.parents


def prove_inside(results_dir: Path | str, path: Path, what: str) -> Path:
    """``path`` unchanged when it resolves inside the results folder, else :class:`OutsideResults` (one line)."""
    root = _real_root(results_dir)
    real = Path(os.path.realpath(path))
    if not _inside(real, root):
        raise OutsideResults(
            f"refusing to write {what} {path}: it resolves to {real}, outside the results folder "
            f"{results_dir} ({root}); a symlink inside the results folder points out of it"
        )
    return path


def prove_run_folder(results_dir: Path | str, run_dir: Path) -> Path:
    """``run_dir`` when it, each entry already in it and its study's ``.replaced`` folder resolve inside the
    results folder; else :class:`OutsideResults` naming the first that does not."""
    prove_inside(results_dir, run_dir, "run folder")
    replaced = run_dir.parent / REPLACED
    if os.path.lexists(replaced):
        prove_inside(results_dir, replaced, "the folder of replaced runs")
    if run_dir.is_dir():
        for entry in sorted(os.listdir(run_dir)):
            prove_inside(results_dir, run_dir / entry, "file")
    return run_dir


def prove_files(run_dir: Path, names: Iterable[str]) -> None:
    """Each ``run_dir / name`` resolves to a file directly in the run folder (no symlink leads elsewhere)."""
    folder = Path(os.path.realpath(run_dir))
    for name in names:
        target = Path(run_dir) / name
        real = Path(os.path.realpath(target))
        if real.parent != folder or real.name in ("", ".", ".."):
            raise OutsideResults(
                f"refusing to write {target}: it resolves to {real}, outside its run folder {run_dir} ({folder})"
            )


__all__ = ["OutsideResults", "ResultsFolder", "prove_files", "prove_inside", "prove_run_folder", "results_root"]
