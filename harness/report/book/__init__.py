"""Build the study's book: papermill runs the notebooks, Jupyter Book renders the HTML.

``python -m harness book build`` (or ``python -m harness.report.book build``, what ``make book`` runs)
executes every notebook registered in ``book/notebooks.yml`` with papermill into
``book/_generated/<name>.ipynb`` and then runs ``jupyter-book build . -W`` (warnings are errors; Jupyter Book
itself never executes a notebook). A notebook is executed again only when its fingerprint changes
(:mod:`.cache`): a hash of the notebook's source, its parameters, the input data it names, the ``harness``
package's code and the pinned requirements.

Notebooks are executed by one worker per CPU (``--jobs``, env ``BOOK_JOBS``); each worker keeps one
kernel for all the notebooks it runs, resetting its namespace between them
(:class:`.execution.ReusedKernel`), so a cold build starts two kernels, not one per notebook.

``python -m harness book notebook NAME key=value ...`` executes one notebook alone, always, with some
parameters overridden (values are read as YAML: ``gpus=[B200]``, ``models=qwen``, ``output_dir=null``),
then refreshes the HTML.

Failures are reported as one line naming the notebook and the cell; the executed copy with the traceback
is kept as ``book/_generated/<name>.failed.ipynb``.

The package, one concern a module: :mod:`.config` (the registry, the toc, parameters), :mod:`.cache`
(fingerprints and stamps), :mod:`.execution` (papermill, kernels), :mod:`.html` (Jupyter Book),
:mod:`.parameters` (the reproduce page's table of every notebook's parameters); this module builds from them.
The command line is :mod:`harness.cli.book`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, HarnessError
from harness.report.book.cache import (
    code_fingerprint,
    fingerprint,
    is_current,
    notebook_fingerprint,
    write_stamp,
)
from harness.report.book.config import (
    BUILD,
    CONFIG,
    GENERATED,
    KERNEL,
    STAMPS,
    TOC,
    VISIBILITY_TAGS,
    BookConfig,
    NotebookSpec,
    chapter_titles,
    check_parameters,
    check_toc,
    declared_parameters,
    load_config,
    parse_overrides,
    toc_documents,
)
from harness.report.book.execution import (
    NotebookError,
    ReusedKernel,
    default_jobs,
    execute,
)
from harness.report.book.html import jupyter_book, repeated_paragraphs
from harness.report.book.parameters import PARAMETERS_PAGE, parameters_markdown, write_parameters_page

__all__ = [
    "BUILD",
    "CONFIG",
    "GENERATED",
    "KERNEL",
    "PARAMETERS_PAGE",
    "STAMPS",
    "TOC",
    "VISIBILITY_TAGS",
    "BookConfig",
    "NotebookError",
    "NotebookSpec",
    "build",
    "chapter_titles",
    "check_parameters",
    "check_toc",
    "code_fingerprint",
    "declared_parameters",
    "default_jobs",
    "execute",
    "execute_all",
    "fingerprint",
    "is_current",
    "jupyter_book",
    "load_config",
    "notebook_fingerprint",
    "parameters_markdown",
    "parse_overrides",
    "repeated_paragraphs",
    "run_one",
    "toc_documents",
    "write_parameters_page",
]


def execute_all(
    root: Path,
    config: BookConfig,
    *,
    force: bool = False,
    jobs: int | None = None,
    only: Iterable[str] | None = None,
    log: Callable[[str], Any] = print,
) -> dict[str, str]:
    """Execute the notebooks whose fingerprint changed (all with ``force``). Returns name -> status."""
    code = code_fingerprint()
    names = list(only) if only is not None else list(config.notebooks)
    todo: list[tuple[NotebookSpec, dict, str, dict]] = []
    status: dict[str, str] = {}
    for name in names:
        spec = config.notebooks[name]
        digest, parts = fingerprint(root, spec, spec.parameters, code)
        if not force and is_current(root, spec, digest):
            # its source and parameters are those checked when it was executed (both are in the fingerprint)
            status[name] = "cached"
        else:
            check_parameters(root, spec, spec.parameters)  # every notebook to run, before any runs
            todo.append((spec, spec.parameters, digest, parts))
    errors: list[str] = []
    if todo:
        workers = min(len(todo), jobs or default_jobs())
        queue = list(reversed(todo))
        lock = threading.Lock()

        def work() -> None:
            # one kernel per worker, kept across its notebooks: starting a kernel and importing pandas,
            # Altair and harness cost about as much CPU as a chapter's own cells
            kernel = ReusedKernel()
            try:
                while True:
                    with lock:
                        if not queue:
                            return
                        spec, params, digest, parts = queue.pop()
                    try:
                        km = kernel.manager()
                        cpu_before = kernel.cpu_s()
                        seconds = execute(root, spec, params, config.code_cells, km=km)
                        cpu = kernel.cpu_s() - cpu_before
                    except HarnessError as exc:
                        kernel.close()  # the next notebook gets a fresh kernel
                        with lock:
                            errors.append(str(exc))
                            status[spec.name] = "failed"
                        log(f"  {spec.name}: FAILED")
                        continue
                    write_stamp(root, spec, digest, parts, params, seconds)
                    with lock:
                        status[spec.name] = f"executed in {seconds:.1f} s"
                    log(f"  {spec.name}: executed in {seconds:.1f} s (kernel CPU {cpu:.1f} s)")
            finally:
                kernel.close()

        threads = [threading.Thread(target=work, name=f"book-worker-{i}") for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise NotebookError(errors[0] if len(errors) == 1 else f"{len(errors)} notebooks failed; " + "; ".join(errors))
    return status


def build(
    root: Path, *, force: bool = False, jobs: int | None = None, html: bool = True, log: Callable[[str], Any] = print
) -> dict:
    """Execute the changed notebooks (all with ``force``), then render the HTML unless ``html`` is False.

    Returns the notebooks' status (name -> "cached", "executed in N s"), the total and notebook times in
    seconds (``seconds``, ``notebooks_s``) and the index page (``index``; None without HTML)."""
    start = time.perf_counter()
    config = load_config(root)
    check_toc(root, config)
    log(f"book: executing notebooks ({len(config.notebooks)} registered)")
    status = execute_all(root, config, force=force, jobs=jobs, log=log)
    cached = sorted(n for n, s in status.items() if s == "cached")
    if cached:
        log(f"  unchanged, not executed: {', '.join(cached)}")
    notebooks_s = time.perf_counter() - start
    index = None
    if html:
        write_parameters_page(root, config)  # the reproduce page's table of every notebook's parameters
        log("book: jupyter-book build . -W")
        index = jupyter_book(root, log=log)
        repeats = repeated_paragraphs(index.parent)
        if repeats:  # said, not fatal: a chapter's prose is its author's to change
            log(
                f"book: {len(repeats)} paragraph(s) appear more than once, e.g. on "
                f"{', '.join(sorted(set(next(iter(repeats.values())))))}"
            )
    total = time.perf_counter() - start
    log(
        f"book: done in {total:.1f} s (notebooks {notebooks_s:.1f} s)"
        + (f" -> {index.relative_to(root)}" if index else "")
    )
    return {"status": status, "seconds": total, "notebooks_s": notebooks_s, "index": index}


def run_one(root: Path, name: str, overrides: dict, *, html: bool = True, log: Callable[[str], Any] = print) -> Path:
    """Execute one notebook with some parameters overridden; refresh the HTML unless ``html`` is False."""
    config = load_config(root)
    if name not in config.notebooks:
        raise ConfigError(f"no notebook named {name!r} in {CONFIG} (known: {', '.join(config.notebooks)})")
    spec = config.notebooks[name]
    params = {**spec.parameters, **overrides}
    check_parameters(root, spec, params)
    digest, parts = fingerprint(root, spec, params)
    shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "book parameters"
    log(f"notebook {name}: executing {spec.source} with {shown}")
    seconds = execute(root, spec, params, config.code_cells)
    write_stamp(root, spec, digest, parts, params, seconds)
    log(f"notebook {name}: executed in {seconds:.1f} s -> {spec.output}")
    if html:
        check_toc(root, config)
        write_parameters_page(root, config)
        jupyter_book(root, log=log)
        log(f"notebook {name}: page {BUILD / 'html' / spec.output.with_suffix('.html')}")
    return root / spec.output
