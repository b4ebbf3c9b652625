"""Commit messages tell the truth (issue 15, item 13): with ``onDrift: report`` a hand
edit stays in the overlay, and the next deployment's message names the edited value
as the old one, not the recorded release's."""

from __future__ import annotations

import uuid

from reconciler.reconcile import PassOptions, PassSettings, Reconciler
from tests.helpers.configrepo import AppSpec, config_files
from tests.helpers.gitserver import run_git

DEV = "deploy/shop/overlays/dev/kustomization.yaml"


def test_the_next_deployment_names_the_hand_edited_value_it_overwrites(
    registry, bare_remote, tmp_path
):
    apps = [AppSpec("api", f"truth{uuid.uuid4().hex[:8]}/api", "example.com/truth/api")]
    registry.push(apps[0].repository, "1.0.0")
    files = config_files(registry.url, apps)
    key = "projects/shop/project.yaml"
    files[key] = files[key].replace(
        "overlay: deploy/shop/overlays/dev\n",
        "overlay: deploy/shop/overlays/dev\n    onDrift: report\n",
    )
    remote = bare_remote(seed=files)
    reconciler = Reconciler(PassOptions(PassSettings(repo_url=remote.url, work_dir=tmp_path / "w")))
    try:
        assert reconciler.run_pass().ok
        overlay = remote.show(DEV)
        assert "newTag: 1.0.0" in overlay
        remote.human_commit({DEV: overlay.replace("newTag: 1.0.0", "newTag: 1.0.0-hotfix")})
        reported = reconciler.run_pass()
        assert [(e, p) for _, e, p, _ in reported.drift] == [("dev", "report")]
        registry.push(apps[0].repository, "1.0.1")
        deployed = reconciler.run_pass()
    finally:
        reconciler.close()
    assert ("shop", "dev", "1.0.1") in deployed.promotions
    message = run_git("--git-dir", str(remote.path), "log", "-1", "--format=%B", "main")
    assert "shop/dev: 1.0.0 -> 1.0.1" in message
    assert "  api: 1.0.0-hotfix -> 1.0.1" in message, message
    assert "newTag: 1.0.1" in remote.show(DEV)
