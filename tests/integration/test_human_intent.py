"""Human intent wins: drift policies, hand promotions, no downgrades, quiet idle passes."""

from __future__ import annotations

import json
import shutil
import time
import uuid

import pytest

from tests.helpers.configrepo import AppSpec, config_files, run_cli


def _setup(registry, bare_remote, *, project_extra: str = "", on_drift: str | None = None):
    ns = f"hi{uuid.uuid4().hex[:8]}"
    apps = [AppSpec("api", f"{ns}/api", "example.com/shop/api")]
    digests = {"1.0.0": registry.push(apps[0].repository, "1.0.0", content=b"a100")}
    files = config_files(registry.url, apps, project_extra=project_extra)
    if on_drift:
        files["projects/shop/project.yaml"] = files["projects/shop/project.yaml"].replace(
            "    overlay: deploy/shop/overlays/dev\n",
            f"    overlay: deploy/shop/overlays/dev\n    onDrift: {on_drift}\n",
        )
    remote = bare_remote(seed=files)
    return apps, remote, digests


def _once(remote, work, expect: int = 0):
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    assert proc.returncode == expect, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


DEV = "deploy/shop/overlays/dev/kustomization.yaml"


def _hand_edit(remote, tag: str) -> str:
    text = remote.show(DEV) + "\n"
    lines = [
        (line.split("newTag:")[0] + f"newTag: {tag}  # hotfix by hand")
        if "newTag:" in line
        else line
        for line in text.splitlines()
    ]
    return remote.human_commit(
        {DEV: "\n".join(lines) + "\n"},
        "hotfix: pin api by hand",
        author=("Dana Ops", "dana@example.com"),
    )


def test_drift_default_pins_and_respects_the_human(registry, bare_remote, tmp_path):
    apps, remote, _ = _setup(registry, bare_remote)
    work = tmp_path / "w"
    _once(remote, work)  # 1.0.0 -> dev
    registry.push(apps[0].repository, "0.9.9-hotfix")
    _hand_edit(remote, "0.9.9-hotfix")
    out = _once(remote, work)
    assert out["commit"] is not None
    pin = remote.show("pins/shop/dev.yaml")
    assert "drift: changed by Dana Ops <dana@example.com>" in pin
    assert "api: files say 0.9.9-hotfix, release 1.0.0 has 1.0.0" in pin
    assert "Drift: shop dev pin" in remote.log_format("%(trailers:only,unfold)")
    # new releases are still made, but dev keeps the human's tag
    registry.push(apps[0].repository, "1.1.0")
    out = _once(remote, work)
    assert [r["version"] for r in out["releases"]] == ["1.0.1"]
    assert ("dev", "1.0.1") not in [(p["environment"], p["release"]) for p in out["promotions"]]
    assert "newTag: 0.9.9-hotfix  # hotfix by hand" in remote.show(DEV)
    status = run_cli("status", "shop", "--repo", remote.url, "--work-dir", str(work))
    assert "PINNED by reconciler (drift)" in status.stdout


def test_drift_revert_restores_the_recorded_release(registry, bare_remote, tmp_path):
    _apps, remote, _ = _setup(registry, bare_remote, on_drift="revert")
    work = tmp_path / "w"
    _once(remote, work)
    _hand_edit(remote, "0.0.1")
    out = _once(remote, work)
    assert "newTag: 1.0.0  # hotfix by hand" in remote.show(DEV)  # only the value changed
    assert out["commit"] is not None
    assert _once(remote, work)["commit"] is None  # no flip-flop


def test_drift_report_changes_nothing(registry, bare_remote, tmp_path):
    _apps, remote, _ = _setup(registry, bare_remote, on_drift="report")
    work = tmp_path / "w"
    _once(remote, work)  # 1.0.0 -> dev
    _once(remote, work)  # 1.0.0 -> staging; then prod waits for a person
    head = _hand_edit(remote, "0.0.1")
    out = _once(remote, work)
    assert remote.head() == head
    assert any(
        w["environment"] == "dev" and w["reason"].startswith("drift:") for w in out["waiting"]
    )


def test_hand_promotion_matching_a_release_is_recorded(registry, bare_remote, tmp_path):
    """A merged promotion PR (or a hand edit) that matches a known release is adopted."""
    apps, remote, _ = _setup(registry, bare_remote)
    work = tmp_path / "w"
    _once(remote, work)  # 1.0.0 -> dev
    registry.push(apps[0].repository, "1.1.0")
    _once(remote, work)  # 1.0.1 -> dev, 1.0.0 -> staging
    prod = "deploy/shop/overlays/prod/kustomization.yaml"
    remote.human_commit(
        {prod: remote.show(prod).replace("newTag: 0.0.0", "newTag: 1.0.0") + "\n"},
        "promote prod by hand",
        author=("Rev Iewer", "rev@example.com"),
    )
    out = _once(remote, work)
    assert out["commit"] is not None
    state = remote.show("state/shop.yaml")
    assert "by: Rev Iewer <rev@example.com>" in state
    assert "Deployed: shop 1.0.0 prod" in remote.log_format("%(trailers:only,unfold)")


def test_no_automatic_downgrade_when_tags_disappear_or_work_dir_is_lost(
    registry, bare_remote, tmp_path
):
    apps, remote, _digests = _setup(registry, bare_remote)
    work = tmp_path / "w"
    newest = registry.push(apps[0].repository, "1.5.0", content=b"a150")
    _once(remote, work)
    assert "newTag: 1.5.0" in remote.show(DEV)
    registry.delete(apps[0].repository, newest)  # 1.5.0 vanishes from the registry
    shutil.rmtree(work)  # and the work dir is lost
    for _ in range(3):
        out = _once(remote, work)
        assert out["releases"] == []
        assert ("dev", "1.0.0") not in [(p["environment"], p["release"]) for p in out["promotions"]]
    assert "newTag: 1.5.0" in remote.show(DEV)


@pytest.mark.parametrize("passes", [6])
def test_idle_passes_make_no_commit_and_no_push(
    registry, bare_remote, git_http_server, tmp_path, passes
):
    apps = [AppSpec("api", f"idle{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")]
    registry.push(apps[0].repository, "1.0.0")
    remote = git_http_server.create_repo("idle", seed=config_files(registry.url, apps))
    env = {
        "RECONCILER_GIT_USERNAME": git_http_server.username,
        "RECONCILER_GIT_PASSWORD": git_http_server.password,
    }
    work = tmp_path / "w"
    for _ in range(3):  # release, dev, staging: then everything is settled
        run_cli("once", "--repo", remote.url, "--work-dir", str(work), env=env)
    head = remote.head()
    pushes_before = sum(
        r.path.endswith("git-receive-pack") for r in git_http_server.requests_for(remote)
    )
    for _ in range(passes):
        proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json", env=env)
        assert json.loads(proc.stdout)["commit"] is None
    assert remote.head() == head
    pushes_after = sum(
        r.path.endswith("git-receive-pack") for r in git_http_server.requests_for(remote)
    )
    assert pushes_after == pushes_before  # not even an empty push


def test_idle_passes_send_one_tag_list_request_per_repository_and_nothing_else(
    registry, bare_remote, tmp_path
):
    """Registry frugality across restarts: each pass is a new process, and the tag-list,
    digest and selection caches in the work dir keep idle passes to the bare minimum."""
    from tests.reliability.faultproxy import FaultProxy

    ns = f"frugal{uuid.uuid4().hex[:8]}"
    apps = [
        AppSpec("api", f"{ns}/api", "example.com/shop/api"),
        AppSpec("web", f"{ns}/web", "example.com/shop/web"),
    ]
    for app in apps:
        registry.push(app.repository, "1.0.0")
    with FaultProxy(registry.url) as proxy:  # a counting proxy here: no faults set
        remote = bare_remote(seed=config_files(proxy.url, apps))
        work = tmp_path / "w"
        for _ in range(3):  # release, dev, staging: then everything is settled
            _once(remote, work)
        head = remote.head()
        proxy.requests.clear()
        idle = 5
        for _ in range(idle):
            _once(remote, work)
        requests = list(proxy.requests)
    assert remote.head() == head
    tag_lists = [r for r in requests if r[1].split("?")[0].endswith("/tags/list")]
    others = [r for r in requests if r not in tag_lists]
    print(
        f"idle passes: {idle}, requests: {len(requests)} "
        f"({len(tag_lists)} tags/list, {len(others)} other)"
    )
    assert sorted(tag_lists) == sorted(
        ("GET", f"/v2/{app.repository}/tags/list") for app in apps for _ in range(idle)
    )
    assert others == []  # no manifest, blob or ping requests


def test_no_request_before_the_retry_after_deadline_even_across_restarts(
    registry, bare_remote, tmp_path
):
    """A 429 with Retry-After: 120 and then passes as new processes (cron-style `once`):
    none of them asks the registry again before the deadline."""
    from tests.reliability.faultproxy import FaultProxy

    ns = f"patient{uuid.uuid4().hex[:8]}"
    apps = [AppSpec("api", f"{ns}/api", "example.com/shop/api")]
    registry.push(apps[0].repository, "1.0.0")
    with FaultProxy(registry.url) as proxy:
        proxy.retry_after = "120"
        proxy.set_fault(r"/tags/list", "429")
        remote = bare_remote(seed=config_files(proxy.url, apps))
        work = tmp_path / "w"
        first = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
        assert first.returncode == 3 and proxy.hits["429"] == 1, first.stdout
        asked = len(proxy.requests)
        proxy.clear()  # the registry would answer now: the deadline must still be kept
        for _ in range(3):
            again = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
            assert again.returncode == 3
            error = json.loads(again.stdout)["feedErrors"]["shop/api"]
            assert "rate limited by the registry; next request allowed in" in error
        assert len(proxy.requests) == asked


def test_an_absurd_retry_after_is_honoured_for_an_hour_at_most(registry, bare_remote, tmp_path):
    from tests.reliability.faultproxy import FaultProxy

    apps = [AppSpec("api", f"capped{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")]
    registry.push(apps[0].repository, "1.0.0")
    with FaultProxy(registry.url) as proxy:
        proxy.retry_after = "99999999"  # about three years
        proxy.set_fault(r"/tags/list", "429")
        remote = bare_remote(seed=config_files(proxy.url, apps))
        work = tmp_path / "w"
        started = time.time()
        run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    kept = json.loads((work / "cache" / "state.json").read_text())["retryAfter"]
    assert list(kept) == ["reg"]
    assert started < kept["reg"] <= time.time() + 3600
