"""harness.report.book: notebook registry, the execution cache, one-notebook reruns, clear failures.

Most tests replace the papermill call with a recorder (the cache logic is what is
under test); the last few run tiny notebooks through papermill for real.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from harness.errors import ConfigError
from harness.report import book
from harness.report.book.html import _sphinx_cause


def _notebook(path: Path, params: str = "x = 1\nlabel = 'a'", body: str = "y = x * 2") -> Path:
    cells = [new_markdown_cell("# Tiny"), new_code_cell(params), new_code_cell(body)]
    cells[1].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _write_config(root: Path, entries: dict, code_cells: str | None = "hide-input") -> None:
    import yaml

    (root / "book").mkdir(parents=True, exist_ok=True)
    (root / "book" / "notebooks.yml").write_text(yaml.safe_dump({"code_cells": code_cells, "notebooks": entries}))
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "chapters": [{"file": f"book/_generated/{name}"} for name in entries],
    }
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))


@pytest.fixture
def root(tmp_path) -> Path:
    _notebook(tmp_path / "notebooks" / "one.ipynb")
    _notebook(tmp_path / "notebooks" / "two.ipynb")
    (tmp_path / "results").mkdir()
    _write_config(
        tmp_path,
        {
            "one": {"source": "notebooks/one.ipynb", "parameters": {"x": 2}},
            "two": {"source": "notebooks/two.ipynb", "parameters": {"x": 3}, "inputs": ["reference", "results"]},
        },
    )
    return tmp_path


@pytest.fixture
def recorder(monkeypatch):
    """Replaces the papermill run: records (name, params) and writes a stand-in executed notebook."""
    calls: list[tuple[str, dict]] = []

    def fake_execute(root, spec, params, code_cells, km=None):
        calls.append((spec.name, dict(params)))
        out = root / spec.output
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"params": params}))
        return 0.01

    monkeypatch.setattr(book, "execute", fake_execute)
    return calls


def _run(root: Path, **kwargs) -> dict:
    return book.execute_all(root, book.load_config(root), log=lambda *_: None, **kwargs)


def _executed(calls) -> list[str]:
    names = sorted(name for name, _ in calls)
    calls.clear()
    return names


# --- the cache ----------------------------------------------------------------------------------------
def test_second_build_executes_nothing(root, recorder):
    assert _executed(recorder) == []
    _run(root)
    assert _executed(recorder) == ["one", "two"]
    status = _run(root)
    assert _executed(recorder) == [] and set(status.values()) == {"cached"}


def test_changed_notebook_source_reexecutes_only_that_notebook(root, recorder):
    _run(root)
    _executed(recorder)
    _notebook(root / "notebooks" / "one.ipynb", body="y = x * 3")
    _run(root)
    assert _executed(recorder) == ["one"]


def test_touching_a_notebook_without_changing_it_executes_nothing(root, recorder):
    _run(root)
    _executed(recorder)
    path = root / "notebooks" / "two.ipynb"
    os.utime(path, (time.time() + 10, time.time() + 10))
    _run(root)
    assert _executed(recorder) == []


def test_saving_a_notebook_after_an_interactive_run_executes_nothing(root, recorder):
    _run(root)
    _executed(recorder)
    path = root / "notebooks" / "one.ipynb"
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"fresh-{index}"
        if cell.cell_type == "code":
            cell.execution_count = index
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="4\n")]
    nbformat.write(nb, path)
    _run(root)
    assert _executed(recorder) == []
    nb.cells[2].metadata["tags"] = ["remove-input"]  # tags change the page: executed again
    nbformat.write(nb, path)
    _run(root)
    assert _executed(recorder) == ["one"]


def test_changed_parameters_reexecute_only_that_notebook(root, recorder):
    _run(root)
    _executed(recorder)
    _write_config(
        root,
        {
            "one": {"source": "notebooks/one.ipynb", "parameters": {"x": 2}},
            "two": {"source": "notebooks/two.ipynb", "parameters": {"x": 4}, "inputs": ["reference", "results"]},
        },
    )
    _run(root)
    assert recorder == [("two", {"x": 4})]


def test_changed_input_folder_reexecutes_the_notebooks_that_read_it(root, recorder):
    _run(root)
    _executed(recorder)
    (root / "results" / "run-1").mkdir()
    (root / "results" / "run-1" / "run.json").write_text("{}")
    _run(root)
    assert _executed(recorder) == ["two"]
    (root / "results" / "run-1" / "run.json").write_text('{"energy_per_token_joules": 0.5}')
    _run(root)
    assert _executed(recorder) == ["two"]


def test_changed_harness_code_reexecutes_everything(root, recorder, monkeypatch):
    _run(root)
    _executed(recorder)
    monkeypatch.setattr(book, "code_fingerprint", lambda: "another version of harness")
    _run(root)
    assert _executed(recorder) == ["one", "two"]


def test_missing_output_or_stamp_reexecutes(root, recorder):
    _run(root)
    _executed(recorder)
    (root / "book" / "_generated" / "one.ipynb").unlink()
    (root / "book" / "_generated" / ".stamps" / "two.json").write_text("not json")
    _run(root)
    assert _executed(recorder) == ["one", "two"]


def test_force_executes_everything(root, recorder):
    _run(root)
    _executed(recorder)
    _run(root, force=True)
    assert _executed(recorder) == ["one", "two"]


def test_failed_notebook_is_retried_next_time(root, recorder, monkeypatch):
    def failing(root_, spec, params, code_cells, km=None):
        raise book.NotebookError(f"notebook {spec.name} failed in cell 2 [boom]")

    monkeypatch.setattr(book, "execute", failing)
    with pytest.raises(book.NotebookError) as info:
        _run(root)
    assert "2 notebooks failed" in str(info.value) and "notebook one failed in cell 2" in str(info.value)
    assert not (root / "book" / "_generated" / ".stamps").exists()


def test_fingerprint_parts(root):
    config = book.load_config(root)
    spec = config.notebooks["two"]
    digest, parts = book.fingerprint(root, spec, spec.parameters, code="c")
    assert set(parts) == {"notebook", "parameters", "harness", "requirements", "input:reference", "input:results"}
    assert book.fingerprint(root, spec, spec.parameters, code="c")[0] == digest
    assert book.fingerprint(root, spec, {"x": 5}, code="c")[0] != digest
    assert book.fingerprint(root, spec, spec.parameters, code="d")[0] != digest


def test_code_fingerprint_covers_the_harness_package():
    first = book.code_fingerprint()
    assert len(first) == 64 and book.code_fingerprint() == first


# --- one notebook with overrides --------------------------------------------------------------------
def test_override_run_then_book_build_restores_book_parameters(root, recorder):
    _run(root)
    _executed(recorder)
    book.run_one(root, "one", {"x": 10}, html=False, log=lambda *_: None)
    assert recorder == [("one", {"x": 10})]
    recorder.clear()
    _run(root)  # the executed copy was made with other parameters than the book's
    assert recorder == [("one", {"x": 2})]


def test_override_of_an_unknown_parameter_or_notebook_is_refused(root, recorder):
    with pytest.raises(ConfigError, match=r"notebook one has no parameter gpu \(its parameters: x, label\)"):
        book.run_one(root, "one", {"gpu": "B200"}, html=False, log=lambda *_: None)
    with pytest.raises(ConfigError, match=r"no notebook named 'three'.*known: one, two"):
        book.run_one(root, "three", {}, html=False, log=lambda *_: None)
    assert recorder == []


def test_parse_overrides_reads_yaml_values():
    assert book.parse_overrides(["gpus=[B200, H100]", "x=8", "models=qwen", "out=null", "f=0.5", "s="]) == {
        "gpus": ["B200", "H100"],
        "x": 8,
        "models": "qwen",
        "out": None,
        "f": 0.5,
        "s": "",
    }
    with pytest.raises(ConfigError, match="name=value"):
        book.parse_overrides(["gpus"])
    with pytest.raises(ConfigError, match="name=value"):
        book.parse_overrides(["not a name=1"])


# --- configuration errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "entries, message",
    [
        ({"one": {"parameters": {}}}, "notebook 'one' needs a 'source'"),
        ({"one": {"source": "notebooks/none.ipynb"}}, "source notebooks/none.ipynb does not exist"),
        ({"One Two": {"source": "notebooks/one.ipynb"}}, "names are lower-case"),
        ({"one": {"source": "notebooks/one.ipynb", "params": {}}}, "unknown key"),
        ({"one": {"source": "notebooks/one.ipynb", "inputs": "results"}}, "inputs must be a list"),
        ({"one": {"source": "notebooks/one.ipynb", "timeout_s": -1}}, "timeout_s"),
    ],
)
def test_config_errors_name_the_entry(root, entries, message):
    _write_config(root, entries)
    with pytest.raises(ConfigError, match=message):
        book.load_config(root)


def test_unknown_book_parameter_is_refused_before_anything_runs(root, recorder):
    _write_config(root, {"one": {"source": "notebooks/one.ipynb", "parameters": {"gpu": "B200"}}})
    with pytest.raises(ConfigError, match="notebook one has no parameter gpu"):
        _run(root)
    assert recorder == []


def test_toc_and_registry_must_agree(root):
    config = book.load_config(root)
    book.check_toc(root, config)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n- file: book/_generated/one\n- file: book/_generated/three\n"
    )
    with pytest.raises(ConfigError, match=r"lists book/_generated/three but book/notebooks.yml registers no"):
        book.check_toc(root, config)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/_generated/one\n")
    with pytest.raises(ConfigError, match=r"registers two but _toc.yml has no entry"):
        book.check_toc(root, config)


def test_the_repository_registry_matches_its_toc():
    repo = Path(__file__).resolve().parents[1]
    config = book.load_config(repo)
    book.check_toc(repo, config)
    assert "overview" in config.notebooks
    for spec in config.notebooks.values():
        book.check_parameters(repo, spec, spec.parameters)


# --- real papermill runs ----------------------------------------------------------------------------
def test_papermill_run_injects_parameters_and_tags_cells(root):
    config = book.load_config(root)
    book.execute(root, config.notebooks["one"], {"x": 21}, "hide-input")
    nb = nbformat.read(root / "book" / "_generated" / "one.ipynb", as_version=4)
    tags = {cell.source.splitlines()[0]: cell.metadata.get("tags", []) for cell in nb.cells if cell.cell_type == "code"}
    assert "remove-cell" in tags["x = 1"]  # the defaults, and ...
    assert "remove-cell" in tags["# Parameters"]  # ... the injected values: a toggle would show only assignments
    assert tags["y = x * 2"] == ["hide-input"]
    assert "x = 21" in nb.cells[2].source
    assert not (root / "book" / "_generated" / "one.failed.ipynb").exists()


def test_papermill_failure_names_notebook_and_cell_and_keeps_the_traceback(root):
    _notebook(root / "notebooks" / "one.ipynb", body="import math\nraise ValueError('no such GPU: A100')")
    config = book.load_config(root)
    with pytest.raises(book.NotebookError) as info:
        book.execute(root, config.notebooks["one"], {"x": 1}, None)
    message = str(info.value)
    assert "\n" not in message
    assert "notebook one (notebooks/one.ipynb) failed in cell 2 [import math]" in message
    assert "ValueError: no such GPU: A100" in message
    assert (root / "book" / "_generated" / "one.failed.ipynb").is_file()
    assert not (root / "book" / "_generated" / "one.ipynb").exists()


def test_stderr_output_fails_the_notebook(root):
    _notebook(root / "notebooks" / "two.ipynb", body="import sys\nsys.stderr.write('careful: deprecated\\n')")
    config = book.load_config(root)
    with pytest.raises(book.NotebookError, match=r"notebook two .* wrote to stderr in cell 2: careful: deprecated"):
        book.execute(root, config.notebooks["two"], {}, None)


def test_sphinx_cause_is_the_warning_that_stopped_the_build():
    output = (
        "reading sources... [100%] book/reproduce\n\n\x1b[91mWarning, treated as error:\x1b[39;49;00m\n"
        "/r/book/intro.md:27:unknown document: 'nowhere'\nTraceback (most recent call last):\n"
        "RuntimeError: \n"
    )
    assert _sphinx_cause(output) == "/r/book/intro.md:27:unknown document: 'nowhere'"
    assert _sphinx_cause("x\n/r/a.md:3: WARNING: duplicate label\nmore") == "/r/a.md:3: WARNING: duplicate label"
    # Sphinx itself crashed (a venv's package docs with template front matter, read as a page): the
    # exception and the file it was reading, not jupyter-book's empty RuntimeError
    crash = (
        "reading sources... [  9%] \x1b[35m.venv-x/lib/pkg/README\x1b[39;49;00m\n\n\x1b[91mException occurred:"
        "\x1b[39;49;00m\nyaml.constructor.ConstructorError: while constructing a mapping\n  in line 3\n"
        "Traceback (most recent call last):\nRuntimeError: \n"
    )
    assert _sphinx_cause(crash) == (
        "yaml.constructor.ConstructorError: while constructing a mapping (reading .venv-x/lib/pkg/README)"
    )


def test_one_kernel_runs_a_workers_notebooks_each_in_a_clean_namespace(root):
    """With one worker, the three notebooks share a kernel (one process), but none sees another's
    variables and each counts its cells from 1; a notebook that fails does not break the next one."""
    _notebook(root / "notebooks" / "one.ipynb", body="import os\nleak = 'from one'\nprint(os.getpid())")
    _notebook(
        root / "notebooks" / "two.ipynb", body="import os\nassert 'leak' not in globals(), leak\nprint(os.getpid())"
    )
    _notebook(root / "notebooks" / "bad.ipynb", body="raise ValueError('broken on purpose')")
    _notebook(root / "notebooks" / "after.ipynb", body="assert 'leak' not in globals()\nprint('ok')")
    _write_config(root, {name: {"source": f"notebooks/{name}.ipynb"} for name in ("one", "two", "bad", "after")})
    with pytest.raises(book.NotebookError, match=r"^notebook bad \(notebooks/bad.ipynb\) failed in cell 2"):
        book.execute_all(root, book.load_config(root), jobs=1, log=lambda *_: None)
    runs = {
        name: nbformat.read(root / "book" / "_generated" / f"{name}.ipynb", as_version=4) for name in ("one", "two")
    }
    pids = {name: nb.cells[-1].outputs[0]["text"].strip() for name, nb in runs.items()}
    assert pids["one"] == pids["two"]  # the same kernel ...
    for nb in runs.values():  # ... each notebook numbered from 1, as in a kernel of its own
        counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
        assert counts == list(range(1, len(counts) + 1))
    after = nbformat.read(root / "book" / "_generated" / "after.ipynb", as_version=4)
    assert after.cells[-1].outputs[0]["text"].strip() == "ok"
    assert (root / "book" / "_generated" / "bad.failed.ipynb").is_file()


# --- the reproduce page's parameter table -----------------------------------------------------------------
def test_parameter_table_lists_every_declared_parameter_with_the_books_value(root):
    import html
    import re

    table = book.parameters_markdown(root, book.load_config(root))
    assert table.startswith('<table class="table joules-parameters">') and table.rstrip().endswith("</table>")
    chapters = re.findall(r'<th colspan="3"><a href="([^"]+)">(\w+)</a>', table)
    assert chapters == [("_generated/one.html", "one"), ("_generated/two.html", "two")]
    rows = [html.unescape(re.sub(r"<[^>]+>", "", r)) for r in re.findall(r"<tr><td>.*?</tr>", table)]
    assert rows == ["x2 (1)", "labelthe default ('a')", "x3 (1)", "labelthe default ('a')"]
    _notebook(root / "notebooks" / "one.ipynb", params="x = 1  # a <b>bold</b> knob")
    assert "a &lt;b&gt;bold&lt;/b&gt; knob" in book.parameters_markdown(root, book.load_config(root))


def test_parameter_table_of_the_repository_covers_every_notebook():
    repo = Path(__file__).resolve().parents[1]
    config = book.load_config(repo)
    table = book.parameters_markdown(repo, config)
    for name, spec in config.notebooks.items():
        assert f'<a href="_generated/{name}.html">{name}</a>' in table
        for param in book.declared_parameters(repo, spec):
            assert '<td><code class="docutils literal"' in table and f">{param}</code></td>" in table
    assert "{include} _generated/notebook-parameters.md" in (repo / "book" / "reproduce.md").read_text()


def test_parameter_page_is_rewritten_only_when_it_changes(root):
    config = book.load_config(root)
    path = book.write_parameters_page(root, config)
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp - 10**9, stamp - 10**9))
    book.write_parameters_page(root, config)
    assert path.stat().st_mtime_ns == stamp - 10**9  # same text: not touched, Sphinx rebuilds nothing
    _notebook(root / "notebooks" / "one.ipynb", params="x = 1\nlabel = 'a'\nextra = 3  # a new knob")
    book.write_parameters_page(root, config)
    assert ">extra</code>" in path.read_text() and "a new knob" in path.read_text()


def test_cached_notebooks_and_an_unchanged_table_read_no_notebook(root, recorder, monkeypatch):
    config = book.load_config(root)
    _run(root)
    book.write_parameters_page(root, config)

    def unread(*args, **kwargs):
        raise AssertionError("a notebook's parameters were read again")

    monkeypatch.setattr(book, "check_parameters", unread)
    monkeypatch.setattr("harness.report.book.parameters.declared_parameters", unread)
    assert set(_run(root).values()) == {"cached"}  # checked when they were executed: their fingerprint holds
    book.write_parameters_page(root, config)  # registry and notebooks unchanged: the table stands
    os.utime(root / "notebooks" / "two.ipynb")  # a notebook saved again: its table rows are read again
    with pytest.raises(AssertionError, match="read again"):
        book.write_parameters_page(root, config)


def test_chapter_titles_come_from_the_first_heading(root):
    assert book.chapter_titles(root) == {"one": "Tiny", "two": "Tiny"}


# --- repeated paragraphs --------------------------------------------------------------------------------------
def _page(path: Path, *paragraphs: str, table: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    path.write_text(
        f'<html><nav><p>{"menu " * 20}</p></nav><article class="bd-article" role="main">{body}{table}</article></html>'
    )


def test_repeated_paragraphs_are_found_across_pages(tmp_path):
    long = "The batch effect is the energy per token at a small batch over that at the largest batch of a series."
    _page(tmp_path / "a.html", long, "Short text.", table=f"<table><tr><td><p>{long} in a cell</p></td></tr></table>")
    _page(tmp_path / "b" / "c.html", f"<em>{long.split()[0]}</em> " + " ".join(long.split()[1:]), "Other words.")
    _page(tmp_path / "d.html", "Another long paragraph of more than twelve words, which appears only once here.")
    _page(tmp_path / "_static" / "e.html", long)
    found = book.repeated_paragraphs(tmp_path)
    assert found == {long: ["a.html", "b/c.html"]}  # tags and whitespace ignored; menus, tables, _static not read
    _page(tmp_path / "b" / "c.html", "Other words.")
    assert book.repeated_paragraphs(tmp_path) == {}


# --- the book's pages: order, citations, glossary terms --------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def test_the_framework_comes_before_the_task_chapters():
    docs = book.toc_documents(REPO)
    assert docs.index("book/_generated/framework") < docs.index("book/_generated/llm-chat")
    assert docs.index("book/_generated/findings") < docs.index("book/_generated/framework")
    assert {"book/glossary", "book/references", "book/reproduce"} <= set(docs)


def _book_texts() -> dict[str, str]:
    import json as _json

    texts = {p.name: p.read_text() for p in (REPO / "book").glob("*.md")}
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        cells = _json.loads(nb.read_text())["cells"]
        texts[nb.name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return texts


def test_every_citation_is_in_the_bibliography_and_every_entry_cited():
    import re

    bib = (REPO / "book" / "references.bib").read_text()
    keys = set(re.findall(r"^@\w+\{([^,]+),", bib, re.MULTILINE))
    cited = {
        key.strip()
        for text in _book_texts().values()
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text)
        for key in group.split(",")
    }
    assert cited <= keys, cited - keys
    assert keys <= cited, keys - cited  # a reference nobody cites would only pad the list
    for required in (
        "kwon2023vllm",
        "you2023zeus",
        "chung2025mlenergy",
        "chung2026joules",
        "jacobs2023ulysses",
        "liu2023ring",
        "niu2025tokenpowerbench",
        "aienergyscore2025",
        "mlenergyleaderboard",
    ):
        assert required in keys
    assert "bibtex_bibfiles" in (REPO / "_config.yml").read_text()


def test_every_term_used_is_in_the_glossary():
    import re

    glossary = (REPO / "book" / "glossary.md").read_text()
    block = glossary.split("```{glossary}")[1].split("```")[0]
    terms = {line.strip().lower() for line in block.splitlines() if line and not line.startswith(" ")}
    used = {t.lower() for text in _book_texts().values() for t in re.findall(r"\{term\}`([^`<]+)`", text)}
    assert used and used <= terms, used - terms


# --- publishing: the GitHub Actions workflow runs the Makefile targets CI runs ------------------------------
def _make_prerequisites(makefile: str, target: str) -> list[str]:
    import re

    match = re.search(rf"^{re.escape(target)}:([^\n=]*)$", makefile, re.MULTILINE)
    assert match, f"no target {target} in the Makefile"
    return match.group(1).split()


def test_the_pages_workflow_runs_the_makefile_targets_ci_runs():
    import re

    import yaml

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    makefile = (REPO / "Makefile").read_text()
    trigger = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert trigger["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build = workflow["jobs"]["build"]["steps"]
    commands = [step["run"].strip() for step in build if "run" in step]
    assert commands == ["make setup", "make book"], commands  # the Makefile installs and builds, nothing else
    for command in commands:
        _make_prerequisites(makefile, command.split()[1])  # each is a target of the Makefile
    # CI runs `make test` (.ci/run), which builds `make setup` first: the same environments the book is built in
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, re.MULTILINE)
    assert "setup" in _make_prerequisites(makefile, "test") and "setup" in _make_prerequisites(makefile, "book")
    text = (REPO / ".github" / "workflows" / "book.yml").read_text()
    assert "pip install" not in text and "HARNESS_REFERENCE_DIR" not in text  # the pinned download, checksummed
    uses = [step.get("uses", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    upload = next(step for step in build if step.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert workflow["jobs"]["deploy"]["needs"] == "build"
    assert "nvidia" not in text.lower() and "gpu" not in workflow["jobs"]["build"]["runs-on"]
