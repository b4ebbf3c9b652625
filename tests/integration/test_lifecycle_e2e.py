"""Lifecycle end to end with real Git and kubectl: dev -> staging -> (manual) prod."""

from __future__ import annotations

import json
import uuid

from tests.helpers.configrepo import AppSpec, checkout, config_files, kustomize_images, run_cli


def _setup(registry, bare_remote):
    ns = f"lc{uuid.uuid4().hex[:8]}"
    apps = [AppSpec("api", f"{ns}/api", "example.com/shop/api")]
    registry.push(apps[0].repository, "1.0.0")
    remote = bare_remote(seed=config_files(registry.url, apps))
    return apps, remote


def _once(remote, work):
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def _cli(remote, work, *args):
    return run_cli(
        *args, "--repo", remote.url, "--work-dir", str(work), env={"RECONCILER_ACTOR": "alice"}
    )


def test_release_flows_to_staging_waits_for_prod_then_promote_block_rollback(
    registry, bare_remote, tmp_path
):
    apps, remote = _setup(registry, bare_remote)
    work = tmp_path / "w"
    out = _once(remote, work)
    assert [(p["environment"], p["release"]) for p in out["promotions"]] == [("dev", "1.0.0")]
    assert out["followUp"] is True  # staging (automatic, no soak) is open now
    out = _once(remote, work)
    assert [(p["environment"], p["release"]) for p in out["promotions"]] == [("staging", "1.0.0")]
    assert out["followUp"] is False  # prod is manual
    out = _once(remote, work)
    assert out["commit"] is None  # prod is manual: nothing happens by itself
    assert out["followUp"] is False
    assert {"project": "shop", "environment": "prod", "reason": "manual approval pending"} in out[
        "waiting"
    ]

    # status shows the wait
    status = _cli(remote, work, "status", "shop")
    assert status.returncode == 0, status.stderr
    assert "manual approval pending" in status.stdout

    # promote to prod: a commit with trailers naming who approved
    proc = _cli(remote, work, "promote", "shop", "1.0.0", "--to", "prod")
    assert proc.returncode == 0, proc.stderr
    trailers = remote.log_format("%(trailers:only,unfold)")
    assert "Promoted-By: alice" in trailers and "Environment: prod" in trailers
    co = checkout(remote.path, tmp_path / "co1")
    assert kustomize_images(co / "deploy/shop/overlays/prod") == {
        "api": "example.com/shop/api:1.0.0"
    }

    # promoting again is refused with the reason, nothing committed
    head = remote.head()
    proc = _cli(remote, work, "promote", "shop", "1.0.0", "--to", "prod")
    assert proc.returncode == 1
    assert "refused: release 1.0.0 is already deployed to prod" in proc.stderr
    assert remote.head() == head

    # a new image -> release 1.0.1 -> dev; block it: staging never gets it
    registry.push(apps[0].repository, "1.1.0")
    out = _once(remote, work)
    assert [r["version"] for r in out["releases"]] == ["1.0.1"]
    proc = _cli(remote, work, "block", "shop", "1.0.1", "--reason", "bad migration")
    assert proc.returncode == 0, proc.stderr
    out = _once(remote, work)
    assert out["promotions"] == []
    proc = _cli(remote, work, "promote", "shop", "1.0.1", "--to", "staging")
    assert proc.returncode == 1 and "blocked: bad migration" in proc.stderr

    # the next release is considered instead of the blocked one
    registry.push(apps[0].repository, "1.2.0")
    _once(remote, work)  # 1.0.2 -> dev
    out = _once(remote, work)
    assert [(p["environment"], p["release"]) for p in out["promotions"]] == [("staging", "1.0.2")]

    # rollback dev to the previous release: images restored
    proc = _cli(remote, work, "rollback", "shop", "--env", "dev", "--to", "1.0.0")
    assert proc.returncode == 0, proc.stderr
    co = checkout(remote.path, tmp_path / "co2")
    assert kustomize_images(co / "deploy/shop/overlays/dev") == {
        "api": "example.com/shop/api:1.0.0"
    }
    # automatic promotion does not undo a rollback
    assert _once(remote, work)["promotions"] == []

    # history: the trail from git log
    proc = _cli(remote, work, "history", "shop", "--env", "dev", "--json")
    assert proc.returncode == 0, proc.stderr
    events = json.loads(proc.stdout)
    deployed = [e["detail"] for e in events if e["event"] == "deployed"]
    assert deployed == ["1.0.0 dev", "1.0.2 dev", "1.0.1 dev", "1.0.0 dev"]
    assert events[0]["by"] == "alice" and events[0]["event"] in ("deployed", "rollback")


def test_pin_holds_an_environment_while_others_move(registry, bare_remote, tmp_path):
    apps, remote = _setup(registry, bare_remote)
    work = tmp_path / "w"
    _once(remote, work)  # 1.0.0 -> dev
    proc = _cli(remote, work, "pin", "shop", "--env", "dev", "--reason", "debugging")
    assert proc.returncode == 0, proc.stderr
    assert "reason: debugging" in remote.show("pins/shop/dev.yaml")
    registry.push(apps[0].repository, "1.1.0")
    out = _once(remote, work)
    assert [r["version"] for r in out["releases"]] == ["1.0.1"]  # releases still created
    assert ("dev", "1.0.1") not in [(p["environment"], p["release"]) for p in out["promotions"]]
    assert ("staging", "1.0.0") in [(p["environment"], p["release"]) for p in out["promotions"]]
    assert "newTag: 1.0.0" in remote.show("deploy/shop/overlays/dev/kustomization.yaml")
    status = _cli(remote, work, "status", "shop")
    assert "PINNED by alice: debugging" in status.stdout
    proc = _cli(remote, work, "unpin", "shop", "--env", "dev")
    assert proc.returncode == 0, proc.stderr
    out = _once(remote, work)
    assert ("dev", "1.0.1") in [(p["environment"], p["release"]) for p in out["promotions"]]


def test_manual_promote_and_rollback_commits_read_like_automatic_ones(
    registry, bare_remote, tmp_path
):
    apps, remote = _setup(registry, bare_remote)
    work = tmp_path / "w"
    _once(remote, work)  # 1.0.0 -> dev
    assert "deploy shop 1.0.0 to dev" in remote.log_format("%s")[0]
    registry.push(apps[0].repository, "1.1.0")
    _once(remote, work)  # release 1.0.1 -> dev, 1.0.0 -> staging

    proc = _cli(remote, work, "promote", "shop", "1.0.1", "--to", "staging")
    assert proc.returncode == 0, proc.stderr
    assert remote.log_format("%s")[0] == "reconciler: deploy shop 1.0.1 to staging"
    body = remote.log_format("%b")
    assert "shop/staging: 1.0.0 -> 1.0.1 (manual, by alice)" in body
    assert "  api: 1.0.0 -> 1.1.0" in body

    proc = _cli(remote, work, "rollback", "shop", "--env", "dev", "--to", "1.0.0")
    assert proc.returncode == 0, proc.stderr
    assert remote.log_format("%s")[0] == "reconciler: roll back shop dev to 1.0.0"
    body = remote.log_format("%b")
    assert "shop/dev: 1.0.1 -> 1.0.0 (rollback, by alice)" in body
    assert "  api: 1.1.0 -> 1.0.0" in body
