"""A deployment must change what the environment pulls (issue 15, item 2): a release
holding new content under the same tags is rendered by digest when the project
renders digests, and otherwise refused with the reason, never recorded as deployed
by a commit that touches only releases/ and state/."""

from __future__ import annotations

import uuid
from pathlib import Path

from reconciler import yamlio
from reconciler.reconcile import PassOptions, PassResult, PassSettings, Reconciler
from tests.helpers.configrepo import AppSpec, config_files

DEV = "deploy/shop/overlays/dev/kustomization.yaml"


def _pass(remote_url: str, work: Path) -> PassResult:
    reconciler = Reconciler(PassOptions(PassSettings(repo_url=remote_url, work_dir=work)))
    try:
        return reconciler.run_pass()
    finally:
        reconciler.close()


def _dev_runs(remote) -> str:
    state = yamlio.load_one(remote.show("state/shop.yaml"))
    return str(state["environments"]["dev"][-1]["release"])


def _setup(registry, bare_remote, project_extra: str):
    apps = [AppSpec("api", f"same{uuid.uuid4().hex[:8]}/api", "example.com/same/api")]
    registry.push(apps[0].repository, "1.0.0")
    remote = bare_remote(seed=config_files(registry.url, apps, project_extra=project_extra))
    return apps, remote


def test_new_content_under_the_same_tag_is_not_recorded_as_deployed_by_tag(
    registry, bare_remote, tmp_path
):
    apps, remote = _setup(registry, bare_remote, "")
    work = tmp_path / "w"
    for _ in range(2):  # release (dev), then staging
        assert _pass(remote.url, work).ok
    assert _dev_runs(remote) == "1.0.0"
    registry.push(apps[0].repository, "1.0.0", content=b"rebuilt under the same tag")
    # a fresh work dir asks the registry (a kept answer is trusted for an hour)
    again = _pass(remote.url, tmp_path / "w2")
    assert [r.version for r in again.releases] == ["1.0.1"]
    assert again.promotions == []
    assert _dev_runs(remote) == "1.0.0"  # not recorded: nothing would roll
    (reason,) = [r for p, e, r in again.waiting if e == "dev"]
    assert "1.0.1: not deployed: api changed content but not tag" in reason
    assert "renderDigest" in reason
    assert again.files_changed == ["releases/shop/1.0.1.yaml", "state/shop.yaml"]


def test_new_content_under_the_same_tag_is_rendered_by_digest(registry, bare_remote, tmp_path):
    apps, remote = _setup(registry, bare_remote, "renderDigest: true\n")
    work = tmp_path / "w"
    for _ in range(2):
        assert _pass(remote.url, work).ok
    digest = registry.push(apps[0].repository, "1.0.0", content=b"rebuilt under the same tag")
    again = _pass(remote.url, tmp_path / "w2")
    assert [r.version for r in again.releases] == ["1.0.1"]
    assert [(p, e, v) for p, e, v in again.promotions] == [("shop", "dev", "1.0.1")]
    assert DEV in again.files_changed and _dev_runs(remote) == "1.0.1"
    assert f"digest: {digest}" in remote.show(DEV)
