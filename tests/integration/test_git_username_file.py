"""RECONCILER_GIT_USERNAME_FILE (set by deploy/kubernetes and the Helm chart) is read:
a host that needs the real user name accepts the pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import GitError
from reconciler.gitrepo import WorkTree
from tests.helpers.gitserver import GitHttpServer

SEED = {"README.md": "seed\n"}


def test_user_name_from_a_mounted_file(git_http_server: GitHttpServer, tmp_path: Path) -> None:
    remote = git_http_server.create_repo(seed=SEED)
    (tmp_path / "username").write_text(git_http_server.username + "\n")
    (tmp_path / "password").write_text(git_http_server.password + "\n")
    env = {
        "RECONCILER_GIT_USERNAME_FILE": str(tmp_path / "username"),
        "RECONCILER_GIT_PASSWORD_FILE": str(tmp_path / "password"),
    }
    tree = WorkTree(remote.url, tmp_path / "work", "main", author=("bot", "b@x"), env=env)
    try:
        assert tree.sync() == remote.head()
        (tree.root / "new.txt").write_text("x\n")
        sha = tree.commit("via a username file")
        tree.push()
    finally:
        tree.close()
    assert remote.head() == sha
    pushes = [r for r in git_http_server.requests_for(remote) if "receive-pack" in r.path]
    assert pushes and all(r.user == git_http_server.username for r in pushes if r.status == 200)


def test_an_unreadable_user_name_file_is_a_git_error(
    git_http_server: GitHttpServer, tmp_path: Path
) -> None:
    remote = git_http_server.create_repo(seed=SEED)
    (tmp_path / "password").write_text(git_http_server.password)
    env = {
        "RECONCILER_GIT_USERNAME_FILE": str(tmp_path / "missing"),
        "RECONCILER_GIT_PASSWORD_FILE": str(tmp_path / "password"),
    }
    tree = WorkTree(remote.url, tmp_path / "work", "main", author=("bot", "b@x"), env=env)
    try:
        with pytest.raises(GitError, match="cannot read RECONCILER_GIT_USERNAME_FILE"):
            tree.sync()
    finally:
        tree.close()
