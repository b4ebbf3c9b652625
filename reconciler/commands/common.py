"""Options and helpers shared by the commands that work on a config repository."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_FEED = 3
EXIT_GIT = 4
EXIT_PROJECT = 5

F = TypeVar("F", bound=Callable[..., Any])


def repo_options(func: F) -> F:
    """--repo, --work-dir, --branch: where the config repository is and where to clone it."""
    func = click.option(
        "--branch",
        envvar="RECONCILER_BRANCH",
        default=None,
        help="Branch to read and push (default: reconciler.yaml's, else main).",
    )(func)
    func = click.option(
        "--work-dir",
        envvar="RECONCILER_WORKDIR",
        type=click.Path(path_type=Path),
        default=None,
        help="Where the clone and caches live (default: ~/.cache/reconciler/<repo hash>).",
    )(func)
    func = click.option(
        "--repo",
        envvar=["RECONCILER_REPO", "RECONCILER_REPO_URL"],
        required=True,
        help="Config repository URL (https://, ssh://, file://) or a local path to a clone.",
    )(func)
    return func


def repo_url(repo: str) -> str:
    """Turn a local path into a file:// URL; leave URLs alone."""
    if "://" in repo or repo.startswith("git@"):
        return repo
    return Path(repo).resolve().as_uri()


def default_work_dir(url: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reconciler"
    return base / hashlib.sha256(url.encode()).hexdigest()[:16]


def make_reconciler(repo: str, work_dir: Path | None, branch: str | None, **extra: Any) -> Any:
    from reconciler.reconcile import PassOptions, Reconciler

    url = repo_url(repo)
    if "git_env" not in extra and os.environ.get("RECONCILER_GITHUB_APP_ID"):
        from reconciler import githubapp  # PyJWT and cryptography: only when an App is used

        extra["git_env"] = githubapp.environment(url)
    options = PassOptions(
        repo_url=url,
        work_dir=(work_dir or default_work_dir(url)).resolve(),
        branch=branch,
        **extra,
    )
    return Reconciler(options)


def exit_code(result: Any) -> int:
    if result.config_error is not None:
        return EXIT_INVALID
    if result.git_error:
        return EXIT_GIT
    if result.project_errors:
        return EXIT_PROJECT
    if result.feed_errors:
        return EXIT_FEED
    return EXIT_OK


def tty_progress() -> Callable[[int, int], None] | None:
    """A one-line progress display on an interactive terminal; None in containers/CI."""
    import sys

    if not sys.stderr.isatty() or os.environ.get("CI"):
        return None

    def show(done: int, total: int) -> None:
        if total >= 20:  # only long scans are worth a display
            end = "\n" if done == total else ""
            sys.stderr.write(f"\rpolling repositories: {done}/{total}{end}")
            sys.stderr.flush()

    return show
