"""Executing notebooks: papermill runs one into ``book/_generated``, and a kernel is kept for several.

Failures are reported as one line naming the notebook and the cell; the executed copy with the traceback is
kept as ``book/_generated/<name>.failed.ipynb``. A notebook that writes to stderr fails too (the book shows no
stderr).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.report.book.config import KERNEL, VISIBILITY_TAGS, NotebookSpec

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager


class NotebookError(HarnessError):
    """A notebook that failed to execute (names the notebook and the cell)."""


def _first_line(text: object) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()
    return text.splitlines()[0] if text else ""


def _source_index(nb, target: int) -> int:
    """Index of executed cell ``target`` in the source notebook (papermill adds cells of its own)."""
    added = ("injected-parameters", "papermill-error-cell-tag")
    return sum(1 for cell in nb.cells[:target] if not any(t in cell.metadata.get("tags", []) for t in added))


def _failed_cell(nb) -> str:
    """'cell N [first line]' of the cell whose output is an error (N counts from 0 in the source notebook)."""
    for index, cell in enumerate(nb.cells):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return f"cell {_source_index(nb, index)} [{_first_line(cell.source)[:60]}]"
    return "a cell (no error output was recorded)"


def _stderr_cell(nb) -> tuple[int, str] | None:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                return index, _first_line(output.get("text", ""))
    return None


def _tag_cells(nb, code_cells: str | None) -> None:
    """Parameter cells (the defaults and the values papermill injected) are removed from the page: a reader
    would find only assignments behind their toggle; the chapter's prose says what it shows (GPU, models)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = list(cell.metadata.get("tags", []))
        if "parameters" in tags or "injected-parameters" in tags:
            tags.append("remove-cell")
        elif code_cells and not any(t in VISIBILITY_TAGS for t in tags):
            tags.append(code_cells)
        cell.metadata["tags"] = list(dict.fromkeys(tags))


def execute(root: Path, spec: NotebookSpec, params: dict, code_cells: str | None, km=None) -> float:
    """Run one notebook with papermill into ``book/_generated``; returns its wall time in seconds.

    ``km``: a kernel manager to execute in (see :class:`ReusedKernel`); None starts and stops a kernel of its own."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out = root / spec.output
    running = out.with_name(f".{spec.name}.running.ipynb")
    failed = root / spec.failed_output
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(root / spec.source),
            str(running),
            parameters=params,
            kernel_name=KERNEL,
            cwd=str(root),
            progress_bar=False,
            request_save_on_cell_execute=False,
            execution_timeout=spec.timeout_s,
            # the kernel's own log (its TCP notice, the interrupt at shutdown) is not the notebook's output
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            **({"km": km} if km is not None else {}),
        )
    except PapermillExecutionError as exc:
        running.replace(failed)
        where = _failed_cell(nbformat.read(failed, as_version=4))
        raise NotebookError(
            f"notebook {spec.name} ({spec.source}) failed in {where}: "
            f"{exc.ename}: {_first_line(exc.evalue)} -- traceback in {spec.failed_output}"
        ) from None
    except Exception as exc:  # noqa: BLE001  # kernel died, timeout, unreadable notebook
        if running.exists():
            running.replace(failed)
        raise NotebookError(
            f"notebook {spec.name} ({spec.source}) did not run: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    seconds = time.perf_counter() - start
    nb = nbformat.read(running, as_version=4)
    noisy = _stderr_cell(nb)
    if noisy is not None:
        running.replace(failed)
        index, line = noisy
        index = _source_index(nb, index)
        raise NotebookError(
            f"notebook {spec.name} ({spec.source}) wrote to stderr in cell {index}: {line} "
            f"(the book shows no stderr; silence or fix it) -- output in {spec.failed_output}"
        )
    _tag_cells(nb, code_cells)
    nbformat.write(nb, running)
    running.replace(out)
    failed.unlink(missing_ok=True)
    return seconds


class ReusedKernel:
    """A kernel that executes several notebooks one after the other, each in a clean namespace.

    Before every notebook but the first, the kernel's user namespace, history and execution count are
    reset (``InteractiveShell.reset(new_session=True)``), so a notebook sees none of the previous one's
    variables; imported modules stay loaded, which is the point (their import is the largest cost of a
    small notebook). A kernel in which a notebook failed is shut down; the next notebook gets a new one."""

    RESET = "get_ipython().reset(new_session=True)"

    def __init__(self) -> None:
        self.km: AsyncKernelManager | None = None
        self.used = False

    def manager(self):
        if self.km is not None and self.used and not self._reset():
            self.close()  # a kernel that does not answer or cannot be reset: start afresh
        if self.km is None:
            from jupyter_client.manager import AsyncKernelManager

            self.km = AsyncKernelManager(kernel_name=KERNEL)  # papermill starts it (cwd, arguments) on first use
        self.used = True
        return self.km

    def _reset(self) -> bool:
        from jupyter_client import BlockingKernelClient

        if self.km is None or not self.km.has_kernel:  # manager() asks only with a kernel manager
            return False
        kc = BlockingKernelClient()
        kc.load_connection_info(self.km.get_connection_info())
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            reply = kc.execute_interactive(
                self.RESET, silent=True, store_history=False, timeout=60, output_hook=lambda msg: None
            )
        except Exception:  # noqa: BLE001  # a kernel that does not answer: the caller starts a new one
            return False
        finally:
            kc.stop_channels()
        return reply["content"].get("status") == "ok"

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the kernel process has used so far; 0 before it starts."""
        try:
            import psutil
            from jupyter_client.provisioning import LocalProvisioner

            provisioner = self.km.provisioner if self.km is not None else None
            if not isinstance(provisioner, LocalProvisioner):  # no kernel yet (the kernel is a local process)
                return 0.0
            times = psutil.Process(provisioner.pid).cpu_times()
            return times.user + times.system
        except Exception:  # noqa: BLE001  # no kernel yet, or psutil unavailable
            return 0.0

    def close(self) -> None:
        km, self.km, self.used = self.km, None, False
        if km is not None and km.has_kernel:
            from jupyter_core.utils import run_sync

            with contextlib.suppress(Exception):  # already gone
                run_sync(km.shutdown_kernel)(now=True)


def default_jobs() -> int:
    """Notebooks executed at once: ``$BOOK_JOBS``, else the CPUs this process may use."""
    env = os.environ.get("BOOK_JOBS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
