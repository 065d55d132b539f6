"""Build the study's book: papermill runs the notebooks, Jupyter Book renders the HTML.

``python -m harness.report.book build`` executes every notebook registered in
``book/notebooks.yml`` with papermill into ``book/_generated/<name>.ipynb`` and
then runs ``jupyter-book build . -W`` (warnings are errors; Jupyter Book itself
never executes a notebook). A notebook is executed again only when its
fingerprint changes: a hash of the notebook's source, its parameters, the input
data it names (the pinned reference files; folders such as ``results``), the
``harness`` package's code and the pinned requirements. The fingerprint of each
executed notebook is kept in ``book/_generated/.stamps/<name>.json``.

Notebooks are executed by one worker per CPU (``--jobs``, env ``BOOK_JOBS``); each worker keeps one
kernel for all the notebooks it runs, resetting its namespace between them (:class:`_Kernel`), so a
cold build starts two kernels, not one per notebook.

``python -m harness.report.book notebook NAME key=value ...`` executes one notebook
alone, always, with some parameters overridden (values are read as YAML:
``gpus=[B200]``, ``models=qwen``, ``output_dir=null``), then refreshes the HTML.

Failures are reported as one line naming the notebook and the cell; the
executed copy with the traceback is kept as ``book/_generated/<name>.failed.ipynb``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from harness.errors import ConfigError, HarnessError

CONFIG = Path("book") / "notebooks.yml"
GENERATED = Path("book") / "_generated"
STAMPS = GENERATED / ".stamps"
BUILD = Path("_build")
TOC = Path("_toc.yml")
KERNEL = "python3"
VISIBILITY_TAGS = ("remove-cell", "remove-input", "remove-output", "hide-cell", "hide-input", "hide-output")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_KNOWN_INPUTS = ("reference",)


class NotebookError(HarnessError):
    """A notebook that failed to execute (names the notebook and the cell)."""


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


# --- configuration --------------------------------------------------------------------------------
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
        raise ConfigError(f"{CONFIG}: unknown top-level key(s) {', '.join(sorted(unknown))} (known: notebooks, code_cells)")
    code_cells = raw.get("code_cells")
    if code_cells is not None and code_cells not in VISIBILITY_TAGS:
        raise ConfigError(f"{CONFIG}: code_cells must be one of {', '.join(VISIBILITY_TAGS)} or null, not {code_cells!r}")
    specs: dict[str, NotebookSpec] = {}
    for name, entry in (raw.get("notebooks") or {}).items():
        where = f"{CONFIG}: notebook {name!r}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}: names are lower-case letters, digits, '-' and '_'")
        if not isinstance(entry, dict) or "source" not in entry:
            raise ConfigError(f"{where} needs a 'source' (a notebook under notebooks/)")
        extra = set(entry) - {"source", "parameters", "inputs", "timeout_s"}
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))} (known: source, parameters, inputs, timeout_s)")
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
    in_toc = {d[len(prefix):].removesuffix(".ipynb") for d in toc_documents(root) if d.startswith(prefix)}
    missing = sorted(in_toc - set(config.notebooks))
    if missing:
        raise ConfigError(
            f"{TOC} lists {', '.join(prefix + m for m in missing)} but {CONFIG} registers no notebook of that name"
        )
    unlisted = sorted(set(config.notebooks) - in_toc)
    if unlisted:
        raise ConfigError(f"{CONFIG} registers {', '.join(unlisted)} but {TOC} has no entry {prefix}<name> for it")


def declared_parameters(root: Path, spec: NotebookSpec) -> dict[str, dict]:
    """Parameters declared in the notebook's cell tagged ``parameters`` (name -> papermill's description)."""
    import papermill

    try:
        return dict(papermill.inspect_notebook(str(root / spec.source)))
    except Exception as exc:  # papermill raises bare exceptions for unreadable notebooks
        raise ConfigError(f"notebook {spec.name} ({spec.source}) cannot be read: {exc}") from None


def check_parameters(root: Path, spec: NotebookSpec, params: dict) -> None:
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


# --- fingerprints ---------------------------------------------------------------------------------
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
        cells = [
            [c.get("cell_type"), "".join(c.get("source", "")), c.get("metadata", {})]
            for c in nb.get("cells", [])
        ]
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
    stamp = root / spec.stamp
    if not (root / spec.output).is_file() or not stamp.is_file():
        return False
    try:
        return json.loads(stamp.read_text()).get("digest") == digest
    except (OSError, ValueError):
        return False


def _write_stamp(root: Path, spec: NotebookSpec, digest: str, parts: dict, params: dict, seconds: float) -> None:
    path = root / spec.stamp
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"digest": digest, "parts": parts, "parameters": params, "execution_s": round(seconds, 2)}
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
    tmp.replace(path)


# --- execution ------------------------------------------------------------------------------------
def _first_line(text: str) -> str:
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

    ``km``: a kernel manager to execute in (see :class:`_Kernel`); None starts and stops a kernel of its own."""
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
    except Exception as exc:  # kernel died, timeout, unreadable notebook
        if running.exists():
            running.replace(failed)
        raise NotebookError(f"notebook {spec.name} ({spec.source}) did not run: {type(exc).__name__}: {_first_line(exc)}") from None
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


class _Kernel:
    """A kernel that executes several notebooks one after the other, each in a clean namespace.

    Before every notebook but the first, the kernel's user namespace, history and execution count are
    reset (``InteractiveShell.reset(new_session=True)``), so a notebook sees none of the previous one's
    variables; imported modules stay loaded, which is the point (their import is the largest cost of a
    small notebook). A kernel in which a notebook failed is shut down; the next notebook gets a new one."""

    RESET = "get_ipython().reset(new_session=True)"

    def __init__(self) -> None:
        self.km = None
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

        if not self.km.has_kernel:
            return False
        kc = BlockingKernelClient()
        kc.load_connection_info(self.km.get_connection_info())
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            reply = kc.execute_interactive(self.RESET, silent=True, store_history=False, timeout=60,
                                           output_hook=lambda msg: None)
        except Exception:
            return False
        finally:
            kc.stop_channels()
        return reply["content"].get("status") == "ok"

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the kernel process has used so far; 0 before it starts."""
        try:
            import psutil

            times = psutil.Process(self.km.provisioner.pid).cpu_times()
            return times.user + times.system
        except Exception:  # no kernel yet, or psutil unavailable
            return 0.0

    def close(self) -> None:
        km, self.km, self.used = self.km, None, False
        if km is not None and km.has_kernel:
            from jupyter_core.utils import run_sync

            try:
                run_sync(km.shutdown_kernel)(now=True)
            except Exception:  # already gone
                pass


def default_jobs() -> int:
    env = os.environ.get("BOOK_JOBS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def execute_all(root: Path, config: BookConfig, *, force: bool = False, jobs: int | None = None,
                only: Iterable[str] | None = None, log=print) -> dict[str, str]:
    """Execute the notebooks whose fingerprint changed (all with ``force``). Returns name -> status."""
    code = code_fingerprint()
    names = list(only) if only is not None else list(config.notebooks)
    todo: list[tuple[NotebookSpec, dict, str, dict]] = []
    status: dict[str, str] = {}
    for name in names:
        spec = config.notebooks[name]
        check_parameters(root, spec, spec.parameters)
        digest, parts = fingerprint(root, spec, spec.parameters, code)
        if not force and is_current(root, spec, digest):
            status[name] = "cached"
        else:
            todo.append((spec, spec.parameters, digest, parts))
    errors: list[str] = []
    if todo:
        workers = min(len(todo), jobs or default_jobs())
        queue = list(reversed(todo))
        lock = threading.Lock()

        def work() -> None:
            # one kernel per worker, kept across its notebooks: starting a kernel and importing pandas,
            # Altair and harness cost about as much CPU as a chapter's own cells
            kernel = _Kernel()
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
                    _write_stamp(root, spec, digest, parts, params, seconds)
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


# --- html -----------------------------------------------------------------------------------------
def _sphinx_cause(output: str) -> str:
    """The warning or error that stopped a Sphinx build, from its output."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in output.splitlines()]
    if "Exception occurred:" in lines:  # Sphinx crashed: its exception, and the file it was reading
        rest = [x for x in lines[lines.index("Exception occurred:") + 1:] if x]
        reading = [x for x in lines if x.startswith("reading sources...")]
        where = f" (reading {reading[-1].rsplit('] ', 1)[-1]})" if reading else ""
        if rest:
            return rest[0] + where
    for index, line in enumerate(lines):
        if line.startswith("Warning, treated as error"):
            rest = [x for x in lines[index + 1:] if x]
            if rest:
                return rest[0]
    flagged = [x for x in lines if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", x)]
    if flagged:
        return flagged[0]
    errors = [x for x in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", x)]
    return errors[-1] if errors else (lines[-1] if lines else "no output")


def jupyter_book(root: Path, log=print) -> Path:
    """``jupyter-book build . -W`` (incremental); returns the index page."""
    exe = Path(sys.executable).with_name("jupyter-book")
    command = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "-W"]
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        # a failed build must not leave an environment that hides its warnings next time
        (root / BUILD / ".doctrees" / "environment.pickle").unlink(missing_ok=True)
        raise HarnessError(f"jupyter-book build failed (warnings are errors): {_sphinx_cause(proc.stdout + proc.stderr)}")
    return root / BUILD / "html" / "index.html"


# --- commands -------------------------------------------------------------------------------------
def build(root: Path, *, force: bool = False, jobs: int | None = None, html: bool = True, log=print) -> dict:
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
        log("book: jupyter-book build . -W")
        index = jupyter_book(root, log=log)
    total = time.perf_counter() - start
    log(f"book: done in {total:.1f} s (notebooks {notebooks_s:.1f} s)" + (f" -> {index.relative_to(root)}" if index else ""))
    return {"status": status, "seconds": total, "notebooks_s": notebooks_s, "index": index}


def run_one(root: Path, name: str, overrides: dict, *, html: bool = True, log=print) -> Path:
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
    _write_stamp(root, spec, digest, parts, params, seconds)
    log(f"notebook {name}: executed in {seconds:.1f} s -> {spec.output}")
    if html:
        check_toc(root, config)
        jupyter_book(root, log=log)
        log(f"notebook {name}: page {BUILD / 'html' / spec.output.with_suffix('.html')}")
    return root / spec.output


def _cmd_build(args) -> int:
    build(Path(args.root).resolve(), force=args.force, jobs=args.jobs, html=not args.no_html)
    return 0


def _cmd_notebook(args) -> int:
    run_one(Path(args.root).resolve(), args.name, parse_overrides(args.params), html=not args.no_html)
    return 0


def _add_commands(sub) -> None:
    p = sub.add_parser("build", help="execute changed notebooks, then jupyter-book build -W")
    p.add_argument("--force", action="store_true", help="execute every notebook, even unchanged ones")
    p.add_argument("--jobs", type=int, default=None, help="notebooks executed at once (default: CPUs; env BOOK_JOBS)")
    p.add_argument("--no-html", action="store_true", help="execute notebooks only")
    p.add_argument("--root", default=".", help="repository root (default: current folder)")
    p.set_defaults(func=_cmd_build)
    p = sub.add_parser("notebook", help="execute one notebook with parameters overridden (key=value ...)")
    p.add_argument("name")
    p.add_argument("params", nargs="*", metavar="key=value")
    p.add_argument("--no-html", action="store_true", help="do not refresh the HTML")
    p.add_argument("--root", default=".", help="repository root (default: current folder)")
    p.set_defaults(func=_cmd_notebook)


def register(subparsers) -> None:
    """Adds ``book build`` and ``book notebook`` to ``python -m harness``."""
    parser = subparsers.add_parser("book", help="build the book (papermill + jupyter-book)")
    sub = parser.add_subparsers(dest="book_command", metavar="COMMAND")
    sub.required = True
    _add_commands(sub)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report.book", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_commands(sub)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
