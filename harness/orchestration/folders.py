"""What a sweep does to run folders besides writing runs: lock one, empty one, move one aside.

A folder's results are never deleted: a forced re-measurement or a damaged result moves the old files
to ``<study>/.replaced/<run-id>-<time>-<why>/``. Only an incomplete run (no result) is emptied.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError

LOCK = ".lock"


class StoreWriteError(HarnessError):
    """The results folder could not be written (disk full, read-only, permissions)."""


def clear(run_dir: Path) -> None:
    """Empty a run folder that holds no result (an incomplete run) before measuring again."""
    for path in run_dir.iterdir():
        if path.is_file() and path.name != LOCK:
            path.unlink()


def move_aside(run_dir: Path, why: str) -> Path:
    """Move a run folder's files to ``<study>/.replaced/<run-id>-<time>-<why>/`` (kept, never deleted)."""
    base = run_dir.parent / ".replaced" / f"{run_dir.name}-{time.strftime('%Y%m%dT%H%M%S')}-{why}"
    keep, n = base, 1
    while keep.exists():
        n += 1
        keep = base.with_name(f"{base.name}~{n}")
    keep.mkdir(parents=True)
    for path in run_dir.iterdir():
        if path.name != LOCK:
            os.replace(path, keep / path.name)
    return keep


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[bool]:
    """Hold an exclusive lock on a run folder (two processes never measure one configuration).

    Yields False, holding nothing, when another process holds it.
    """
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
