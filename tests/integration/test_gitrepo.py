"""WorkTree against real git: bare repos over file://, smart HTTP with Basic auth, fake ssh."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import pytest

from reconciler.errors import GitError, PushRejected
from reconciler.gitrepo import WorkTree
from reconciler.logs import scrub
from tests.helpers.gitserver import BareRemote, GitHttpServer, run_git
from tests.helpers.sshserver import SshServer

AUTHOR = ("Reconciler Bot", "bot@example.com")
SEED = {"README.md": "config repo\n", "deploy/app/kustomization.yaml": "images: []\n"}

MakeRemote = Callable[..., BareRemote]


@pytest.fixture
def worktrees(tmp_path: Path) -> Iterator[Callable[..., WorkTree]]:
    """Factory of WorkTrees in tmp_path, closed at the end of the test."""
    made: list[WorkTree] = []

    def make(url: str, name: str = "work", **kwargs: object) -> WorkTree:
        kwargs.setdefault("author", AUTHOR)
        kwargs.setdefault("env", {})
        tree = WorkTree(url, tmp_path / name, "main", **kwargs)  # type: ignore[arg-type]
        made.append(tree)
        return tree

    yield make
    for tree in made:
        tree.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git_files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under root/.git whose bytes contain needle."""
    return [
        p for p in (root / ".git").rglob("*") if p.is_file() and needle.encode() in p.read_bytes()
    ]


# -- file:// round trip ------------------------------------------------------------


def test_sync_commit_push_round_trip(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)

    assert tree.sync() == remote.head()
    assert (tree.root / "README.md").read_text() == "config repo\n"

    (tree.root / "releases").mkdir()
    (tree.root / "releases" / "shop.yaml").write_text("version: 1.0.0\n")
    sha = tree.commit("Release shop 1.0.0\n\nRelease: shop 1.0.0\n")
    assert sha is not None and sha == tree.head()
    tree.push()

    assert remote.head() == sha
    assert remote.show("releases/shop.yaml") == "version: 1.0.0"
    assert remote.log_format("%an|%ae|%cn|%ce")[0] == (
        "Reconciler Bot|bot@example.com|Reconciler Bot|bot@example.com"
    )
    assert remote.subjects() == ["Release shop 1.0.0", "initial"]

    tree.author = ("Config Named Bot", "named@example.com")  # from reconciler.yaml, after sync
    (tree.root / "README.md").write_text("changed\n")
    tree.commit("second")
    tree.push()
    assert remote.log_format("%an|%ce")[0] == "Config Named Bot|named@example.com"


def test_commit_without_changes_returns_none_and_makes_no_commit(
    bare_remote: MakeRemote, worktrees
) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    head = tree.sync()

    assert tree.commit("nothing") is None
    # A change that is undone before committing is no change either.
    (tree.root / "README.md").write_text("edited\n")
    (tree.root / "README.md").write_text("config repo\n")
    assert tree.commit("still nothing") is None
    assert tree.head() == head
    tree.push()
    assert remote.head() == head


def test_commit_keeps_hash_lines_and_deletions(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    tree.sync()
    (tree.root / "README.md").unlink()
    tree.commit("Remove readme\n\n# not a comment\n")
    tree.push()
    assert "README.md" not in remote.files()
    assert "# not a comment" in remote.log_format("%B")


# -- push rejection, races, hooks -------------------------------------------------


def test_push_rejected_when_remote_moved_then_retry_keeps_other_commit(
    bare_remote: MakeRemote, worktrees
) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    tree.sync()
    human = remote.human_commit({"human.txt": "hi\n"}, "human edit")

    (tree.root / "bot.txt").write_text("bot\n")
    tree.commit("bot edit")
    with pytest.raises(PushRejected):
        tree.push()
    assert remote.head() == human  # nothing was forced over the human commit

    tree.sync()
    assert (tree.root / "human.txt").exists() and not (tree.root / "bot.txt").exists()
    (tree.root / "bot.txt").write_text("bot\n")
    tree.commit("bot edit")
    tree.push()
    assert remote.subjects() == ["bot edit", "human edit", "initial"]


@pytest.mark.parametrize(
    ("human_change", "rebased"),
    [
        ({"docs/notes.md": "notes\n"}, True),
        ({"deploy/app/kustomization.yaml": "images: [x]\n"}, False),
        # A rename out of a guarded folder changes that folder: with rename
        # detection git would list only the new (unguarded) path.
        ({"deploy/app/kustomization.yaml": None, "docs/kustomization.yaml": "images: []\n"}, False),
    ],
    ids=["unrelated", "guarded-edit", "renamed-out-of-guarded"],
)
def test_rebase_if_unrelated_only_over_unguarded_changes(
    bare_remote: MakeRemote, worktrees, human_change: dict[str, str | None], rebased: bool
) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    tree.sync()
    human = remote.human_commit(human_change, "human edit")
    (tree.root / "bot.txt").write_text("bot\n")
    ours = tree.commit("bot edit")
    with pytest.raises(PushRejected):
        tree.push()

    assert tree.rebase_if_unrelated(lambda path: path.startswith("deploy/")) is rebased
    if rebased:
        tree.push()
        assert remote.subjects() == ["bot edit", "human edit", "initial"]
    else:
        assert tree.head() == ours  # left alone: the caller re-plans
        assert remote.head() == human


def test_two_writers_racing_both_land_without_force(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    trees = [worktrees(remote.url, name=f"writer{i}") for i in range(2)]
    rejections: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def write(index: int, tree: WorkTree) -> None:
        try:
            tree.sync()
            start.wait()
            for _ in range(10):  # bounded retries, as the reconcile pass does
                (tree.root / f"writer{index}.txt").write_text(f"{index}\n")
                tree.commit(f"writer {index}")
                try:
                    tree.push()
                    return
                except PushRejected:
                    rejections.append(index)
                    tree.sync()
            raise AssertionError("never pushed")
        except BaseException as err:  # surfaced in the main thread
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i, t)) for i, t in enumerate(trees)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    assert sorted(remote.subjects()[:2]) == ["writer 0", "writer 1"]
    assert {"writer0.txt", "writer1.txt"} <= set(remote.files())


def test_hook_rejection_is_git_error_with_hook_message(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    remote.install_hook("pre-receive", 'echo "frozen: deploys paused until Monday" >&2\nexit 1')
    tree = worktrees(remote.url)
    tree.sync()
    (tree.root / "x.txt").write_text("x\n")
    tree.commit("x")

    with pytest.raises(GitError) as caught:
        tree.push()
    assert not isinstance(caught.value, PushRejected)
    assert "frozen: deploys paused until Monday" in str(caught.value)


def test_push_on_unborn_branch_without_commit_is_a_no_op(
    bare_remote: MakeRemote, worktrees
) -> None:
    remote = bare_remote()
    tree = worktrees(remote.url)
    assert tree.sync() == ""
    tree.push()
    assert remote.head() is None


# -- unreachable remotes ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("file:///nonexistent/remote.git", id="file"),
        pytest.param(f"http://127.0.0.1:{closed_port()}/repo.git", id="http"),
    ],
)
def test_unreachable_remote_is_git_error(url: str, worktrees) -> None:
    tree = worktrees(url)
    with pytest.raises(GitError):
        tree.sync()


def test_hung_remote_fails_after_timeout(worktrees) -> None:
    """A server that accepts connections and never answers must not hang the pass."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel accepts; nobody ever reads or answers
        port = listener.getsockname()[1]
        tree = worktrees(f"http://127.0.0.1:{port}/repo.git", timeout=1.5)
        started = time.monotonic()
        with pytest.raises(GitError, match="did not complete"):
            tree.sync()
        assert time.monotonic() - started < 10


def test_unreachable_remote_keeps_existing_clone(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    head = tree.sync()
    moved = remote.path.with_name("moved.git")
    remote.path.rename(moved)

    with pytest.raises(GitError):
        tree.sync()
    assert tree.head() == head  # not wiped: the next sync only needs a fetch
    moved.rename(remote.path)
    assert tree.sync() == head


# -- smart HTTP and credentials ----------------------------------------------------


def test_http_basic_auth_from_env_never_persisted(
    git_http_server: GitHttpServer, worktrees
) -> None:
    remote = git_http_server.create_repo(seed=SEED)
    env = {
        "RECONCILER_GIT_USERNAME": git_http_server.username,
        "RECONCILER_GIT_PASSWORD": git_http_server.password,
    }
    tree = worktrees(remote.url, env=env)

    assert tree.sync() == remote.head()
    (tree.root / "new.txt").write_text("over http\n")
    sha = tree.commit("via http")
    tree.push()

    assert remote.head() == sha
    assert run_git("config", "--get", "remote.origin.url", cwd=tree.root) == remote.url
    assert git_files_containing(tree.root, git_http_server.password) == []
    pushes = [r for r in git_http_server.requests_for(remote) if "receive-pack" in r.path]
    assert pushes and all(r.user == git_http_server.username for r in pushes if r.status == 200)


def test_operator_credential_store_never_receives_our_password(
    git_http_server: GitHttpServer, worktrees, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "git-credentials"
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "credential.helper")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", f"store --file {store}")
    remote = git_http_server.create_repo(seed=SEED)
    tree = worktrees(
        remote.url,
        env={
            "RECONCILER_GIT_USERNAME": git_http_server.username,
            "RECONCILER_GIT_PASSWORD": git_http_server.password,
        },
    )
    tree.sync()
    (tree.root / "x.txt").write_text("x\n")
    tree.commit("x")
    tree.push()
    assert not store.exists()


def test_http_credentials_in_url_are_stripped(git_http_server: GitHttpServer, worktrees) -> None:
    remote = git_http_server.create_repo(seed=SEED)
    user, password = git_http_server.username, git_http_server.password
    with_userinfo = remote.url.replace("http://", f"http://{user}:{password}@")
    tree = worktrees(with_userinfo)

    assert tree.sync() == remote.head()
    assert tree.url == remote.url
    assert run_git("config", "--get", "remote.origin.url", cwd=tree.root) == remote.url
    assert git_files_containing(tree.root, password) == []


def test_wrong_password_fails_fast_and_is_scrubbed(
    git_http_server: GitHttpServer, worktrees
) -> None:
    remote = git_http_server.create_repo(seed=SEED)
    wrong = "wrong-Pa55word-value"
    url_with_secret = remote.url.replace("http://", f"http://bot:{wrong}@")
    cases = [
        worktrees(
            remote.url,
            name="env",
            env={"RECONCILER_GIT_USERNAME": "bot", "RECONCILER_GIT_PASSWORD": wrong},
        ),
        worktrees(url_with_secret, name="url"),
        worktrees(remote.url, name="none"),  # no credentials at all: must not prompt
    ]
    for tree in cases:
        started = time.monotonic()
        with pytest.raises(GitError) as caught:
            tree.sync()
        assert time.monotonic() - started < 10
        message = str(caught.value)
        assert wrong not in message
        assert "bot:" not in message
        assert remote.url.split("//")[1].split("/")[0] in message  # says which host failed


def test_password_file_is_read_at_each_operation(
    git_http_server: GitHttpServer, worktrees, tmp_path: Path
) -> None:
    remote = git_http_server.create_repo(seed=SEED)
    password_file = tmp_path / "password"
    password_file.write_text("old-rotated-out\n")
    tree = worktrees(
        remote.url,
        env={"RECONCILER_GIT_USERNAME": "bot", "RECONCILER_GIT_PASSWORD_FILE": str(password_file)},
    )
    with pytest.raises(GitError) as caught:
        tree.sync()
    assert "old-rotated-out" not in str(caught.value)

    password_file.write_text(git_http_server.password + "\n")  # rotation, no restart
    assert tree.sync() == remote.head()

    password_file.unlink()
    with pytest.raises(GitError, match="RECONCILER_GIT_PASSWORD_FILE"):
        tree.sync()


def test_askpass_script_is_private_and_outside_work_tree(
    git_http_server: GitHttpServer, worktrees
) -> None:
    remote = git_http_server.create_repo(seed=SEED)
    tree = worktrees(
        remote.url,
        env={"RECONCILER_GIT_PASSWORD": git_http_server.password, "RECONCILER_GIT_USERNAME": "bot"},
    )
    tree.sync()
    askpass_dir = tree._credentials.askpass_dir
    assert askpass_dir is not None and not askpass_dir.is_relative_to(tree.root)
    assert askpass_dir.stat().st_mode & 0o777 == 0o700
    assert git_http_server.password not in (askpass_dir / "askpass.sh").read_text()
    tree.close()
    assert not askpass_dir.exists()


def test_ssh_key_and_known_hosts_reach_ssh(
    bare_remote: MakeRemote, worktrees, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake ``ssh`` on PATH records its arguments and runs the git command locally."""
    remote = bare_remote(seed=SEED)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    args_file = tmp_path / "ssh-args"
    fake_ssh = bin_dir / "ssh"
    fake_ssh.write_text(
        "#!/bin/bash\n"
        f'printf "%s\\n" "$@" >> {args_file}\n'
        'eval "${@: -1}"\n'  # the last argument is the remote command
    )
    fake_ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    key, known_hosts = tmp_path / "id ed25519", tmp_path / "known_hosts"
    tree = worktrees(
        f"ssh://git@gitserver.invalid{remote.path}",
        env={
            "RECONCILER_GIT_SSH_KEY_FILE": str(key),
            "RECONCILER_GIT_KNOWN_HOSTS": str(known_hosts),
        },
    )

    assert tree.sync() == remote.head()
    args = args_file.read_text().splitlines()
    assert args[args.index("-i") + 1] == str(key)  # a path with a space survives quoting
    for option in (
        "IdentitiesOnly=yes",
        f"UserKnownHostsFile={known_hosts}",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
    ):
        assert option in args
    assert "git@gitserver.invalid" in args


# -- a real sshd -----------------------------------------------------------------


def test_round_trip_over_real_ssh_with_key_and_known_hosts(
    bare_remote: MakeRemote, worktrees, ssh_server: SshServer
) -> None:
    remote = bare_remote(seed=SEED)
    env = {
        "RECONCILER_GIT_SSH_KEY_FILE": str(ssh_server.client_key),
        "RECONCILER_GIT_KNOWN_HOSTS": str(ssh_server.known_hosts),
    }
    tree = worktrees(ssh_server.url(remote.path), env=env)
    assert tree.sync() == remote.head()
    (tree.root / "bot.txt").write_text("over ssh\n")
    sha = tree.commit("bot edit over ssh")
    tree.push()
    assert remote.head() == sha
    assert remote.show("bot.txt") == "over ssh"


@pytest.mark.parametrize(
    ("key", "known_hosts", "message"),
    [
        ("other_key", "known_hosts", "Permission denied"),
        ("client_key", "wrong_known_hosts", "Host key verification failed"),
    ],
    ids=["key-not-authorised", "host-key-changed"],
)
def test_real_ssh_refusals_are_git_errors(
    bare_remote: MakeRemote,
    worktrees,
    ssh_server: SshServer,
    key: str,
    known_hosts: str,
    message: str,
) -> None:
    remote = bare_remote(seed=SEED)
    env = {
        "RECONCILER_GIT_SSH_KEY_FILE": str(getattr(ssh_server, key)),
        "RECONCILER_GIT_KNOWN_HOSTS": str(getattr(ssh_server, known_hosts)),
    }
    tree = worktrees(ssh_server.url(remote.path), env=env, timeout=20)
    started = time.monotonic()
    with pytest.raises(GitError) as caught:
        tree.sync()
    assert message in str(caught.value)
    assert time.monotonic() - started < 15  # BatchMode: never waits for a prompt
    assert "BEGIN OPENSSH PRIVATE KEY" not in str(caught.value)


# -- log and trailers ---------------------------------------------------------------


def test_log_parses_trailers_and_filters(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    tree.sync()
    (tree.root / "releases").mkdir()
    (tree.root / "releases" / "shop-1.4.0.yaml").write_text("v\n")
    tree.commit(
        "Release shop 1.4.0\n\nCreated by trigger nightly.\n\n"
        "Release: shop 1.4.0\nPackage: api 1.4.0\nPackage: web\n  2.0.0\n"
    )
    (tree.root / "other.txt").write_text("o\n")
    tree.commit("Unrelated change")

    newest, release, initial = tree.log()
    assert newest.subject == "Unrelated change" and newest.trailers == {}
    assert release.subject == "Release shop 1.4.0"
    assert release.trailers == {
        "Release": ["shop 1.4.0"],
        "Package": ["api 1.4.0", "web 2.0.0"],  # continuation line unfolded
    }
    assert "Created by trigger nightly." in release.message
    assert release.author == "Reconciler Bot" and release.email == "bot@example.com"
    assert release.when.tzinfo is not None and release.when.utcoffset() == UTC.utcoffset(None)
    assert initial.subject == "initial" and initial.author == "Test Setup"

    assert [c.subject for c in tree.log(paths=["releases"])] == ["Release shop 1.4.0"]
    assert [c.subject for c in tree.log(max_count=1)] == ["Unrelated change"]
    assert [c.subject for c in tree.log(grep="Release: shop 1.4.0")] == ["Release shop 1.4.0"]
    assert tree.log(grep="shop 1.4.0.") == []  # a fixed string, not a pattern
    assert tree.last_commit_time("releases/shop-1.4.0.yaml") == release.when
    assert tree.last_commit_time("never/existed.yaml") is None


def test_log_on_empty_remote_is_empty(bare_remote: MakeRemote, worktrees) -> None:
    tree = worktrees(bare_remote().url)
    tree.sync()
    assert tree.log() == []
    assert tree.last_commit_time("anything") is None


# -- recovery from local damage -----------------------------------------------------


def test_sync_recovers_from_stale_index_lock(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    tree.sync()
    (tree.root / ".git" / "index.lock").write_text("")
    (tree.root / ".git" / "refs" / "heads" / "main.lock").write_text("")

    tree.sync()
    (tree.root / "after-lock.txt").write_text("ok\n")
    assert tree.commit("after a killed process") is not None
    tree.push()
    assert "after-lock.txt" in remote.files()


def test_sync_discards_uncommitted_junk_and_unpushed_commits(
    bare_remote: MakeRemote, worktrees
) -> None:
    remote = bare_remote(seed={**SEED, ".gitignore": "*.tmp\n"})
    tree = worktrees(remote.url)
    head = tree.sync()
    (tree.root / "README.md").write_text("half writ")  # half-written tracked file
    (tree.root / "stray.yaml").write_text("junk\n")
    (tree.root / "ignored.tmp").write_text("junk\n")
    (tree.root / "newdir" / "deep").mkdir(parents=True)
    (tree.root / "newdir" / "deep" / "f").write_text("junk\n")
    (tree.root / "deploy" / "app" / "kustomization.yaml").write_text("x")
    tree.commit("local only, never pushed")
    (tree.root / "README.md").write_text("dirty again")

    assert tree.sync() == head
    assert (tree.root / "README.md").read_text() == "config repo\n"
    assert (tree.root / "deploy" / "app" / "kustomization.yaml").read_text() == "images: []\n"
    for junk in ("stray.yaml", "ignored.tmp", "newdir"):
        assert not (tree.root / junk).exists()
    assert run_git("status", "--porcelain", "--ignored", cwd=tree.root) == ""


def test_sync_recovers_from_detached_head_and_other_branch(
    bare_remote: MakeRemote, worktrees
) -> None:
    remote = bare_remote(seed=SEED)
    remote.human_commit({"second.txt": "2\n"}, "second")
    tree = worktrees(remote.url)
    head = tree.sync()
    run_git("checkout", "--quiet", "--detach", "HEAD~1", cwd=tree.root)
    assert tree.sync() == head
    assert run_git("symbolic-ref", "HEAD", cwd=tree.root) == "refs/heads/main"

    run_git("checkout", "--quiet", "-b", "stray", cwd=tree.root)
    assert tree.sync() == head
    assert run_git("symbolic-ref", "HEAD", cwd=tree.root) == "refs/heads/main"


def test_sync_recovers_from_deleted_git_dir(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    head = tree.sync()
    shutil.rmtree(tree.root / ".git")
    (tree.root / "junk.txt").write_text("left behind\n")

    assert tree.sync() == head
    assert not (tree.root / "junk.txt").exists()
    assert (tree.root / "README.md").read_text() == "config repo\n"


@pytest.mark.parametrize("damage", ["head", "objects", "config"])
def test_sync_recovers_from_corrupt_clone(bare_remote: MakeRemote, worktrees, damage: str) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    head = tree.sync()
    git_dir = tree.root / ".git"
    if damage == "head":
        (git_dir / "HEAD").write_text("garbage\n")
    elif damage == "objects":
        for obj in (git_dir / "objects").rglob("*"):
            if obj.is_file():
                obj.chmod(0o644)
                obj.write_bytes(b"corrupt")
    else:
        (git_dir / "config").write_text("[[[ not config\n")

    assert tree.sync() == head
    assert run_git("fsck", "--no-progress", cwd=tree.root) == ""
    (tree.root / "after.txt").write_text("a\n")
    tree.commit("after repair")
    tree.push()
    assert remote.subjects()[0] == "after repair"


def test_sync_reclones_when_dir_is_a_clone_of_another_url(
    bare_remote: MakeRemote, worktrees
) -> None:
    first = bare_remote(name="first", seed={"first.txt": "1\n"})
    second = bare_remote(name="second", seed={"second.txt": "2\n"})
    worktrees(first.url, name="shared").sync()
    tree = worktrees(second.url, name="shared")

    assert tree.sync() == second.head()
    assert not (tree.root / "first.txt").exists()
    assert run_git("config", "--get", "remote.origin.url", cwd=tree.root) == second.url


def test_sync_does_not_touch_an_enclosing_repository(
    bare_remote: MakeRemote, worktrees, tmp_path: Path
) -> None:
    """With .git gone, git would find a parent repo; sync must re-clone, not reset that."""
    outer = tmp_path / "outer"
    outer.mkdir()
    run_git("init", "--quiet", cwd=outer)
    (outer / "precious.txt").write_text("keep\n")
    remote = bare_remote(seed=SEED)
    tree = WorkTree(remote.url, outer / "work", "main", author=AUTHOR, env={})
    try:
        assert tree.sync() == remote.head()
    finally:
        tree.close()
    assert (outer / "precious.txt").read_text() == "keep\n"


# -- empty remote -------------------------------------------------------------------


def test_empty_remote_bootstrap(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote()
    tree = worktrees(remote.url)
    assert tree.sync() == ""
    assert tree.head() == ""
    assert tree.commit("nothing yet") is None

    (tree.root / "reconciler.yaml").write_text("apiVersion: reconciler.dev/v1\n")
    sha = tree.commit("Bootstrap config repo")
    tree.push()
    assert remote.head() == sha
    assert remote.subjects() == ["Bootstrap config repo"]

    second = worktrees(remote.url, name="second")
    assert second.sync() == sha
    assert tree.sync() == sha


def test_branch_deleted_on_remote_resets_to_unborn(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    tree.sync()
    run_git("--git-dir", str(remote.path), "update-ref", "-d", "refs/heads/main")
    assert tree.sync() == ""
    assert not (tree.root / "README.md").exists()


# -- pull-request branches -----------------------------------------------------------


def test_push_branch_replaces_owned_branch_only(bare_remote: MakeRemote, worktrees) -> None:
    remote = bare_remote(seed=SEED)
    tree = worktrees(remote.url)
    base = tree.sync()
    (tree.root / "promote.txt").write_text("staging\n")
    first = tree.commit("Promote shop 1.4.0 to staging")
    tree.push_branch("promote/shop-staging")
    assert remote.head("promote/shop-staging") == first
    assert remote.head() == base  # the target branch is untouched

    # Next pass: recomputed from main, so the branch is replaced (not a fast-forward).
    tree.sync()
    (tree.root / "promote.txt").write_text("staging 1.4.1\n")
    second = tree.commit("Promote shop 1.4.1 to staging")
    tree.push_branch("promote/shop-staging")
    assert remote.head("promote/shop-staging") == second

    for forbidden in ("main", "feature/x", "-f"):
        with pytest.raises(ValueError):
            tree.push_branch(forbidden)


# -- scrub ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "fatal: https://bot:hunter2@git.example.com/r.git",
            "fatal: https://***@git.example.com/r.git",
        ),
        ("https://ghp_token123@github.com/o/r", "https://***@github.com/o/r"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("ssh://git:pw@host/r.git", "ssh://git:***@host/r.git"),
        ("Authorization: Basic Ym90Omh1bnRlcjI=", "Authorization: Basic ***"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_scrub_urls_and_headers(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_scrub_known_secrets_including_url_encoded() -> None:
    assert scrub("pw p@ss/w0rd and p%40ss%2Fw0rd", ["p@ss/w0rd", ""]) == "pw *** and ***"


def test_invalid_branch_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        WorkTree("file:///x", tmp_path / "w", "bad..name", author=AUTHOR, env={})
