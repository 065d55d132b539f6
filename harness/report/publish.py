"""Publish the built book on the ``gh-pages`` branch of the repository's remote (ghp-import).

``python -m harness.report.publish`` (``make publish``, after ``make book``) commits
``_build/html`` as the whole tree of the ``gh-pages`` branch, with a ``.nojekyll``
file so that GitHub Pages serves the ``_static`` folder as is, and pushes that
branch to the remote (``origin`` unless told otherwise). This is Jupyter Book's
own convention (``ghp-import -n -p -f _build/html``). The working tree and the
current branch are not touched.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from pathlib import Path

from harness.errors import ConfigError, HarnessError

BRANCH = "gh-pages"


def publish(
    root: str | Path = ".",
    html_dir: str | Path = "_build/html",
    remote: str = "origin",
    branch: str = BRANCH,
    message: str | None = None,
    push: bool = True,
) -> str:
    """Commit ``html_dir`` as ``branch`` of the repository at ``root`` and push it to ``remote``.

    Returns the commit id of the published branch. Errors name their cause: no built book,
    not a git repository, an unknown remote.
    """
    root = Path(root).resolve()
    html = (root / html_dir).resolve()
    if not (html / "index.html").is_file():
        raise ConfigError(f"no built book in {html} (index.html missing): run `make book` first")
    try:
        import ghp_import
    except ImportError:
        raise ConfigError("publishing needs the ghp-import package (requirements/base.in)") from None

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)

    if git("rev-parse", "--git-dir").returncode != 0:
        raise ConfigError(f"{root} is not a git repository: the book is published to a branch of its remote")
    if push and git("remote", "get-url", remote).returncode != 0:
        known = git("remote").stdout.split()
        raise ConfigError(f"the repository has no remote {remote!r} (remotes: {', '.join(known) or 'none'})")
    source = git("rev-parse", "--short", "HEAD").stdout.strip() or "an uncommitted tree"
    message = message or f"Publish the report built from {source}"
    with contextlib.chdir(root):
        try:
            ghp_import.ghp_import(
                str(html), mesg=message, remote=remote, branch=branch, push=push, force=True, nojekyll=True
            )
        except ghp_import.GhpError as exc:
            raise HarnessError(f"publishing to {remote} {branch} failed: {exc.message}") from None
    return git("rev-parse", branch).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report.publish", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="repository root (default: the current folder)")
    parser.add_argument("--html", default="_build/html", help="the built book (default: _build/html)")
    parser.add_argument("--remote", default="origin", help="the remote to push to (default: origin)")
    parser.add_argument("--branch", default=BRANCH, help=f"the branch to publish on (default: {BRANCH})")
    parser.add_argument("--no-push", action="store_true", help="commit the branch locally, do not push")
    args = parser.parse_args(argv)
    try:
        commit = publish(args.root, args.html, args.remote, args.branch, push=not args.no_push)
    except HarnessError as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 2
    where = "locally" if args.no_push else f"to {args.remote}"
    print(f"published {args.html} as {args.branch} ({commit[:12]}) {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
