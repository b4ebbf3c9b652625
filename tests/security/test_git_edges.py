"""Issue 14 items 3 and 7: nothing is written into ``.git``, a pass that pushed nothing
never says it pushed, and commit messages of any size reach git (through stdin)."""

from __future__ import annotations

import pytest

from reconciler.errors import GitError
from reconciler.gitrepo import WorkTree
from tests.helpers.configrepo import result_json, run_cli
from tests.helpers.gitserver import run_git
from tests.security.support import one_pass, shop

OVERLAY = "deploy/shop/overlays/dev"
PROJECTS = 360  # with such names: ~150 KiB of message today (argv takes 128 KiB)


@pytest.mark.parametrize("target", [".git/HEAD", ".git/config", "deploy/.GIT/HEAD"])
def test_a_target_in_git_is_never_written_and_nothing_claims_a_push(
    registry, bare_remote, tmp_path, target
):
    _, files = shop(registry)
    project = files["projects/shop/project.yaml"]
    files["projects/shop/project.yaml"] = project.replace(
        f"    overlay: {OVERLAY}\n",
        f"    overlay: {OVERLAY}\n"
        f"    targets:\n      - {{kind: kustomize-images, file: {target}}}\n",
    )
    remote = bare_remote(seed=files)
    before = remote.head()
    work = tmp_path / "work"

    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")

    out = result_json(proc)
    assert proc.returncode != 0 and out["ok"] is False
    assert out["pushed"] is False and not out["commit"]
    assert remote.head() == before
    assert (work / "repo/.git/HEAD").read_text() == "ref: refs/heads/main\n"


def test_a_commit_that_leaves_no_commit_at_head_is_an_error(bare_remote, tmp_path):
    remote = bare_remote(seed={"deploy/a.yaml": "a: 1\n"})
    tree = WorkTree(remote.url, tmp_path / "w", "main", author=("bot", "bot@example.com"))
    try:
        tree.sync()
        (tmp_path / "w/deploy/a.yaml").write_text("a: 2\n")
        # What a write into .git did on main: HEAD names a branch that cannot exist.
        (tmp_path / "w/.git/HEAD").write_text("ref: refs/heads/..\n")
        with pytest.raises(GitError):
            tree.commit("Release shop 1.0.0\n")
    finally:
        tree.close()


def test_a_commit_message_larger_than_the_argument_limit_is_committed(bare_remote, tmp_path):
    remote = bare_remote(seed={"deploy/a.yaml": "a: 1\n"})
    lines = [f"Release: project-{i:04d} 1.0.{i} ({'x' * 200})" for i in range(1000)]
    message = "Release 1000 projects\n\n" + "\n".join(lines) + "\n"
    assert len(message.encode()) > 200 * 1024  # one argv string may hold 128 KiB
    tree = WorkTree(remote.url, tmp_path / "w", "main", author=("bot", "bot@example.com"))
    try:
        tree.sync()
        (tmp_path / "w/deploy/a.yaml").write_text("a: 2\n")
        sha = tree.commit(message)
        tree.push()
    finally:
        tree.close()
    assert sha and remote.head() == sha
    pushed = run_git("--git-dir", str(remote.path), "log", "-1", "--format=%B", "main")
    assert pushed == message.strip()


def test_first_pass_over_hundreds_of_projects_commits(registry, bare_remote, tmp_path):
    _, files = shop(registry)
    template = files.pop("projects/shop/project.yaml")
    trigger = files.pop("projects/shop/triggers.yaml")
    overlay = files.pop(f"{OVERLAY}/kustomization.yaml")
    files = {k: v for k, v in files.items() if not k.startswith("deploy/shop/overlays/")}
    files["lifecycles/standard.yaml"] = (
        "apiVersion: reconciler.dev/v1\nkind: Lifecycle\nname: standard\n"
        "phases:\n  - {name: development, environments: [dev]}\n"
    )
    for i in range(PROJECTS):
        name = f"p{i:03d}-{'long-name' * 5}"  # its trigger's name: 57 characters
        files[f"projects/{name}/project.yaml"] = (
            template.replace("name: shop\n", f"name: {name}\n")
            .replace("deploy/shop/", f"deploy/{name}/")
            .split("  staging:\n")[0]
        )
        files[f"projects/{name}/triggers.yaml"] = trigger.replace("shop", name)
        files[f"deploy/{name}/overlays/dev/kustomization.yaml"] = overlay
    remote = bare_remote(seed=files)
    before = remote.head()

    result = one_pass(remote, tmp_path / "work")

    assert result.ok, (result.git_error, result.project_errors, result.config_error)
    assert result.pushed and len(result.releases) == PROJECTS
    assert run_git("--git-dir", str(remote.path), "rev-parse", "main~1") == before
