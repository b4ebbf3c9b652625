"""Issue 22 item 4 (Git part): a steady sync is two git processes, fetch and checkout;
``git clean`` runs only when the work tree holds something untracked."""

from __future__ import annotations

from pathlib import Path

from reconciler.gitrepo import WorkTree


def _counted(tree: WorkTree) -> list[str]:
    """The git subcommands ``tree`` runs from now on."""
    ran: list[str] = []
    real = tree._execute

    def execute(command, env, stdin):  # type: ignore[no-untyped-def]
        ran.append(next(a for a in command[1:] if not a.startswith("-") and "=" not in a))
        return real(command, env, stdin)

    tree._execute = execute  # type: ignore[method-assign]
    return ran


def test_a_steady_sync_is_fetch_and_checkout(bare_remote, tmp_path: Path) -> None:
    remote = bare_remote(seed={"deploy/a.yaml": "a: 1\n", "README.md": "x\n"})
    with WorkTree(remote.url, tmp_path / "w", "main", author=("b", "b@example.com")) as tree:
        tree.sync()
        ran = _counted(tree)
        assert tree.sync() == remote.head()
        assert ran == ["fetch", "checkout"]

        (tmp_path / "w/releases/shop").mkdir(parents=True)
        (tmp_path / "w/releases/shop/1.0.0.yaml").write_text("left by a killed pass\n")
        (tmp_path / "w/deploy/a.yaml").write_text("a: 2\n")
        ran.clear()
        tree.sync()
        assert ran == ["fetch", "checkout", "clean"]
        assert not (tmp_path / "w/releases").exists()
        assert (tmp_path / "w/deploy/a.yaml").read_text() == "a: 1\n"
