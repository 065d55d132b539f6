"""`make publish`: the built book becomes the gh-pages branch of the remote (a local bare repository here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.report import publish

pytest.importorskip("ghp_import")


def git(cwd: Path, *args: str) -> str:
    env_args = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"]
    return subprocess.run(["git", *env_args, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.invalid")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--bare", str(bare))
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init")
    (work / "README.md").write_text("study\n")
    git(work, "add", "README.md")
    git(work, "commit", "-m", "first")
    git(work, "remote", "add", "origin", str(bare))
    html = work / "_build" / "html"
    (html / "_static").mkdir(parents=True)
    (html / "index.html").write_text("<html>the report</html>")
    (html / "_static" / "vega.js").write_text("// bundle")
    return work, bare


def test_publish_pushes_the_built_html_as_gh_pages(repo):
    work, bare = repo
    commit = publish.publish(work)
    files = git(bare, "ls-tree", "-r", "--name-only", "gh-pages").split()
    assert sorted(files) == [".nojekyll", "_static/vega.js", "index.html"]
    assert git(bare, "rev-parse", "gh-pages").strip() == commit
    assert git(bare, "show", "gh-pages:index.html") == "<html>the report</html>"
    # the working branch and tree are untouched
    assert git(work, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert "README.md" in git(work, "ls-files")
    # publishing again replaces the tree (a removed page disappears)
    (work / "_build" / "html" / "_static" / "vega.js").unlink()
    publish.publish(work)
    assert sorted(git(bare, "ls-tree", "-r", "--name-only", "gh-pages").split()) == [".nojekyll", "index.html"]


def test_publish_errors_name_their_cause(repo, tmp_path):
    work, _ = repo
    with pytest.raises(ConfigError, match="no remote 'upstream'"):
        publish.publish(work, remote="upstream")
    with pytest.raises(ConfigError, match="run `make book` first"):
        publish.publish(work, html_dir="_build/missing")
    assert publish.main(["--root", str(work), "--remote", "upstream"]) == 2
