"""Which projects a changed path may concern (reconcile/memo.py ``affected``): the
memo forgets exactly those, and every project for a path nobody owns."""

from __future__ import annotations

from pathlib import Path

from reconciler.config import load_config
from reconciler.reconcile.memo import ProjectMemo, affected, project_files
from tests.helpers.configrepo import AppSpec, config_files, write_files


def _config(tmp_path: Path):  # type: ignore[no-untyped-def]
    files: dict[str, str] = {}
    for name in ("alpha", "beta"):
        apps = [AppSpec("api", f"ns/{name}", f"example.com/{name}")]
        files.update(config_files("http://127.0.0.1:5000", apps, project=name))
    # beta names its dev overlay with a "./" and a trailing slash: the same files
    files["projects/beta/project.yaml"] = files["projects/beta/project.yaml"].replace(
        "overlay: deploy/beta/overlays/dev", "overlay: ./deploy/beta/overlays/dev/"
    )
    return load_config(write_files(tmp_path, files))


def _projects(tmp_path: Path):  # type: ignore[no-untyped-def]
    return list(_config(tmp_path).projects.values())


def test_paths_belong_to_their_project_and_unknown_paths_to_all(tmp_path):
    projects = _projects(tmp_path)
    assert "deploy/beta/overlays/dev/kustomization.yaml" in project_files(projects[1])
    cases = {
        "releases/alpha/1.0.0.yaml": {"alpha"},
        "state/beta.yaml": {"beta"},
        "pins/alpha/prod.yaml": {"alpha"},
        "deploy/alpha/overlays/staging/kustomization.yaml": {"alpha"},
        "deploy/beta/overlays/dev/kustomization.yaml": {"beta"},
        "deploy/beta/overlays/dev/Kustomization": {"beta"},
        "deploy/alpha/base/api.yaml": {"*"},  # a base: any overlay may include it
        "deploy/beta/overlays/dev/patch.yaml": {"*"},  # not a file a pass reads itself
        "projects/alpha/project.yaml": {"*"},
        "reconciler.yaml": {"*"},
        "state/alpha.yml": {"*"},
        "README.md": {"*"},
    }
    for path, expected in cases.items():
        assert affected([path], projects) == expected, path
    assert affected(["state/alpha.yaml", "pins/beta/dev.yaml"], projects) == {"alpha", "beta"}
    assert affected(["state/alpha.yaml", "README.md"], projects) == {"*"}
    assert affected([], projects) == set()


def test_previous_releases_are_kept_while_the_diff_leaves_the_project_alone(tmp_path):
    config = _config(tmp_path)
    memo = ProjectMemo()
    old, new, newer = "a" * 40, "b" * 40, "c" * 40
    diffs = {(old, new): ["state/alpha.yaml"], (new, newer): None}  # None: git cannot tell
    memo.advance(old, config, lambda a, b: diffs[(a, b)])
    assert memo.previous("alpha", {"stable"}) is None
    memo.keep_previous("alpha", {"stable": None})
    memo.keep_previous("beta", {"stable": None})
    assert memo.previous("beta", {"stable"}) == {"stable": None}
    assert memo.previous("beta", {"stable", "beta"}) is None  # other channels: read again
    memo.advance(new, config, lambda a, b: diffs[(a, b)])
    assert memo.previous("alpha", {"stable"}) is None  # its state file changed
    assert memo.previous("beta", {"stable"}) == {"stable": None}
    memo.advance(newer, config, lambda a, b: diffs[(a, b)])
    assert memo.previous("beta", {"stable"}) is None
