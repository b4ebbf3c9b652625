"""What a pass asks the registry, counted by a proxy in front of a real registry
(issue 15, item 3): the ``digest`` strategy's idle cost, the first pass after a 429's
deadline, and ``digestRecheck``."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from reconciler.reconcile import PassOptions, PassResult, PassSettings, Reconciler
from tests.helpers.configrepo import AppSpec, config_files
from tests.reliability.faultproxy import FaultProxy


def _pass(remote_url: str, work: Path) -> PassResult:
    """One ``once``-style pass: a new Reconciler on the same work dir."""
    reconciler = Reconciler(PassOptions(PassSettings(repo_url=remote_url, work_dir=work)))
    try:
        return reconciler.run_pass()
    finally:
        reconciler.close()


def _apps(prefix: str, count: int) -> list[AppSpec]:
    ns = f"{prefix}{uuid.uuid4().hex[:8]}"
    return [AppSpec(f"app{i}", f"{ns}/app{i}", f"example.com/{ns}/app{i}") for i in range(count)]


def test_an_idle_pass_over_a_digest_strategy_repository_sends_one_manifest_head(
    registry, bare_remote, tmp_path
):
    apps = _apps("follow", 1)
    registry.push(apps[0].repository, "latest")
    registry.push(apps[0].repository, "1.0.0")
    rules = "      - strategy: digest\n        tag: latest\n"
    with FaultProxy(registry.url) as proxy:
        remote = bare_remote(seed=config_files(proxy.url, apps, rules=rules))
        work = tmp_path / "w"
        for _ in range(3):  # release, then dev and staging settle
            assert _pass(remote.url, work).ok
        head = remote.head()
        proxy.requests.clear()
        idle = _pass(remote.url, work)
        requests = list(proxy.requests)
        assert idle.ok and remote.head() == head
        assert requests == [("HEAD", f"/v2/{apps[0].repository}/manifests/latest")]

        # ... and the tag pushed again is still noticed by that one request
        digest = registry.push(apps[0].repository, "latest", content=b"rebuilt")
        moved = _pass(remote.url, work)
        assert [r.packages[0].digest for r in moved.releases] == [digest]


def test_a_followed_tag_that_does_not_exist_is_explained_from_the_tag_list(
    registry, bare_remote, tmp_path
):
    apps = _apps("follow", 1)
    registry.push(apps[0].repository, "1.0.0")
    rules = "      - strategy: digest\n        tag: latest\n"
    remote = bare_remote(seed=config_files(registry.url, apps, rules=rules))
    result = _pass(remote.url, tmp_path / "w")
    assert result.releases == [] and not result.feed_errors
    (decision,) = result.decisions
    assert "nothing passes channel stable" in decision.reason
    assert "not the followed tag latest" in decision.reason


def test_the_first_pass_after_a_retry_after_deadline_asks_only_what_it_must(
    registry, bare_remote, tmp_path
):
    """Answers kept about chosen tags outlive a 429: once the deadline has passed, the
    pass lists each repository's tags and asks for no digest it already knows."""
    apps = _apps("patient", 4)
    for app in apps:
        registry.push(app.repository, "1.0.0")
    with FaultProxy(registry.url) as proxy:
        remote = bare_remote(seed=config_files(proxy.url, apps))
        work = tmp_path / "w"
        for _ in range(3):
            assert _pass(remote.url, work).ok
        proxy.retry_after = "1"
        proxy.set_fault(r"/tags/list", "429")
        limited = _pass(remote.url, work)
        assert limited.failed_feeds["reg"][0] == "rate-limited"
        proxy.clear()
        time.sleep(1.5)  # past the deadline
        proxy.requests.clear()
        after = _pass(remote.url, work)
        requests = sorted(proxy.requests)
    assert after.ok and after.releases == []
    assert requests == sorted(("GET", f"/v2/{app.repository}/tags/list") for app in apps)


def test_digest_recheck_sets_how_soon_polling_notices_a_repushed_tag(
    registry, bare_remote, tmp_path
):
    apps = _apps("recheck", 1)
    registry.push(apps[0].repository, "1.0.0")
    files = config_files(registry.url, apps)
    files["reconciler.yaml"] += "digestRecheck: 0s\n"
    remote = bare_remote(seed=files)
    work = tmp_path / "w"
    first = _pass(remote.url, work)
    assert first.ok and [r.version for r in first.releases] == ["1.0.0"]
    digest = registry.push(apps[0].repository, "1.0.0", content=b"pushed again")
    again = _pass(remote.url, work)
    assert again.ok
    assert [(r.version, r.packages[0].digest) for r in again.releases] == [("1.0.1", digest)]
