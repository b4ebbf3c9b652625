"""Shared pieces of the security suite: hostile repositories and one in-process pass."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.reconcile import PassOptions, PassResult, PassSettings, Reconciler
from tests.helpers.configrepo import AppSpec, config_files
from tests.helpers.gitserver import BareRemote, run_git


def shop(registry: Any, tag: str = "1.2.0") -> tuple[AppSpec, dict[str, str]]:
    """A one-package project ``shop`` whose feed holds ``tag``; its config files."""
    app = AppSpec("api", f"sec{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")
    registry.push(app.repository, tag)
    return app, config_files(registry.url, [app])


def place_links(root: Path, links: Mapping[str, str]) -> None:
    """Put the symlinks ``path -> target`` under ``root``, replacing what is there."""
    for path, target in links.items():
        where = root / path
        if where.is_dir() and not where.is_symlink():
            shutil.rmtree(where)
        elif os.path.lexists(where):
            where.unlink()
        where.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, where)


def commit_links(remote: BareRemote, links: Mapping[str, str], scratch: Path) -> str:
    """Commit symlinks ``path -> target`` (replacing what is at ``path``) as a
    hostile contributor would; return the new head."""
    clone = scratch / f"links-{uuid.uuid4().hex[:8]}"
    run_git("clone", "--quiet", str(remote.path), str(clone))
    place_links(clone, links)
    run_git("add", "--all", cwd=clone)
    run_git("commit", "--quiet", "-m", "hostile links", cwd=clone)
    run_git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=clone)
    head = run_git("rev-parse", "HEAD", cwd=clone)
    shutil.rmtree(clone)
    return head


def one_pass(remote: BareRemote, work_dir: Path, **settings: Any) -> PassResult:
    """One pass of an in-process reconciler (closed afterwards)."""
    reconciler = Reconciler(
        PassOptions(PassSettings(repo_url=remote.url, work_dir=work_dir, **settings))
    )
    try:
        return reconciler.run_pass()
    finally:
        reconciler.close()


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` (links not followed) and its bytes."""
    found = {}
    for here, _, names in os.walk(folder):
        for name in names:
            path = Path(here) / name
            if not path.is_symlink():
                found[path.relative_to(folder).as_posix()] = path.read_bytes()
    return found


def hostile_remote(
    scratch: Path, files: Mapping[str, str], links: Mapping[str, str], name: str = "remote"
) -> BareRemote:
    """A bare remote whose one commit holds ``files`` and the symlinks ``links``."""
    bare = scratch / f"{name}.git"
    work = scratch / f"{name}-seed"
    run_git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    run_git("init", "--quiet", "--initial-branch=main", str(work))
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text, encoding="utf-8")
    place_links(work, links)
    run_git("add", "--all", cwd=work)
    run_git("commit", "--quiet", "-m", "initial", cwd=work)
    run_git("push", "--quiet", str(bare), "HEAD:refs/heads/main", cwd=work)
    shutil.rmtree(work)
    return BareRemote(path=bare, url=bare.as_uri())
