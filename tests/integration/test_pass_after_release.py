"""The first "nothing new" pass after a release does no more work than a steady one
(issue 22, item 1): the selection cache and the "already checked" overlay memo hold
what the releasing pass decided. Work is counted (selections computed, overlay files
parsed), never timed. A pass whose push fails leaves nothing that misleads the next."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from reconciler import rendering
from reconciler.reconcile import PassOptions, PassResult, PassSettings, Reconciler, selectioncache
from tests.helpers.configrepo import DEV_ONLY, AppSpec, config_files


def _pass(remote_url: str, work: Path) -> PassResult:
    """One ``once``-style pass: a new Reconciler on the same work dir."""
    reconciler = Reconciler(PassOptions(PassSettings(repo_url=remote_url, work_dir=work)))
    try:
        return reconciler.run_pass()
    finally:
        reconciler.close()


class Work:
    """Counts the work a pass does: selections computed, overlay files parsed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.selections = 0
        self.overlay_reads = 0
        real_select, real_read = selectioncache.select, rendering.current_versions

        def counting_select(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.selections += 1
            return real_select(*args, **kwargs)

        def counting_read(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.overlay_reads += 1
            return real_read(*args, **kwargs)

        monkeypatch.setattr(selectioncache, "select", counting_select)
        monkeypatch.setattr(rendering, "current_versions", counting_read)

    def reset(self) -> None:
        self.selections = self.overlay_reads = 0


def _apps(count: int) -> list[AppSpec]:
    ns = f"after{uuid.uuid4().hex[:8]}"
    return [AppSpec(f"app{i}", f"{ns}/app{i}", f"example.com/{ns}/app{i}") for i in range(count)]


def _observed(work: Path) -> dict[str, list[str]]:
    state = json.loads((work / "cache" / "state.json").read_text())
    return dict(state.get("observed", {}))


@pytest.mark.parametrize(
    "rules",
    [
        '      - range: ">=1.0.0"\n        prerelease: "^$"\n',
        "      - strategy: suffix\n        samePrecision: true\n",
    ],
    ids=["semver", "suffix"],
)
def test_the_first_pass_after_a_release_selects_and_parses_nothing(
    registry, bare_remote, tmp_path, monkeypatch, rules
):
    apps = _apps(2)
    for app in apps:
        registry.push(app.repository, "1.0.0")
    files = config_files(registry.url, apps, rules=rules, lifecycle=DEV_ONLY, envs=("dev",))
    remote = bare_remote(seed=files)
    work = tmp_path / "w"
    counted = Work(monkeypatch)
    assert [r.version for r in _pass(remote.url, work).releases] == ["1.0.0"]

    registry.push(apps[0].repository, "1.1.0")
    released = _pass(remote.url, work)  # a releasing pass on warm caches
    assert released.pushed and [r.version for r in released.releases] == ["1.0.1"]
    assert released.promotions == [("shop", "dev", "1.0.1")]

    counted.reset()
    head = remote.head()
    after = _pass(remote.url, work)
    assert after.ok and after.releases == [] and remote.head() == head
    assert (counted.selections, counted.overlay_reads) == (0, 0)

    steady = _pass(remote.url, work)  # ... the same as every pass after it
    assert steady.ok and steady.releases == []
    assert (counted.selections, counted.overlay_reads) == (0, 0)


def test_a_pass_that_fails_to_push_leaves_no_memo_of_its_state(
    registry, bare_remote, tmp_path, monkeypatch
):
    apps = _apps(1)
    registry.push(apps[0].repository, "1.0.0")
    files = config_files(registry.url, apps, lifecycle=DEV_ONLY, envs=("dev",))
    remote = bare_remote(seed=files)
    work = tmp_path / "w"
    assert _pass(remote.url, work).pushed
    remembered = _observed(work)
    assert [entry[0] for entry in remembered.values()] == ["1.0.0"]

    registry.push(apps[0].repository, "1.1.0")
    remote.install_hook("pre-receive", "exit 1")
    refused = _pass(remote.url, work)
    assert not refused.ok and not refused.pushed
    assert _observed(work) == remembered  # nothing claims the release that never landed

    remote.install_hook("pre-receive", "exit 0")
    counted = Work(monkeypatch)
    again = _pass(remote.url, work)
    assert again.pushed and [r.version for r in again.releases] == ["1.0.1"]
    assert remote.files().count("releases/shop/1.0.1.yaml") == 1
    assert "newTag: 1.1.0" in remote.show("deploy/shop/overlays/dev/kustomization.yaml")
    counted.reset()
    idle = _pass(remote.url, work)
    assert idle.ok and idle.releases == []
    assert (counted.selections, counted.overlay_reads) == (0, 0)
