"""Notifications from real passes: one per fact, failures deduplicated, no secrets."""

from __future__ import annotations

import json
import uuid

import httpx

from reconciler.reconcile import Injected, PassOptions, PassSettings, Reconciler
from tests.helpers.configrepo import AppSpec, config_files


def _receiver() -> tuple[list[dict], httpx.MockTransport]:
    """A notification endpoint: the JSON bodies it received, and its transport."""
    sent: list[dict] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, text="ok")

    return sent, httpx.MockTransport(receive)


def test_notifications_are_sent_once_per_fact_and_failures_deduplicated(
    registry, registry_basic, bare_remote, tmp_path, monkeypatch
):
    sent, receiver = _receiver()

    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.test/services/T0/B0/s3cr3t-hook")
    monkeypatch.setenv("RECONCILER_FEED_REG_USER", registry_basic.username)
    monkeypatch.setenv("RECONCILER_ALLOW_HTTP_CREDENTIALS", registry_basic.host)
    monkeypatch.setenv("RECONCILER_FEED_REG_PASSWORD", "wrong-Pa55word-zz9")
    ns = f"nt{uuid.uuid4().hex[:8]}"
    apps = [AppSpec("api", f"{ns}/api", "example.com/shop/api")]
    registry.push(apps[0].repository, "1.0.0")
    registry_basic.push(f"{ns}/worker", "1.0.0")
    files = config_files(registry.url, apps)
    files["reconciler.yaml"] += "notifications:\n  - {kind: slack, urlEnv: SLACK_URL}\n"
    # a second project on a feed whose password is wrong
    files["feeds/locked.yaml"] = (
        "apiVersion: reconciler.dev/v1\nkind: Feed\nname: locked\ntype: oci\n"
        f"url: {registry_basic.url}\ninsecure: true\n"
        "credentials: {usernameEnv: RECONCILER_FEED_REG_USER,\n"
        "              passwordEnv: RECONCILER_FEED_REG_PASSWORD}\n"
    )
    other = config_files(
        registry_basic.url, [AppSpec("worker", f"{ns}/worker", "x/worker")], project="billing"
    )
    for name, text in other.items():
        if name.startswith(("projects/billing", "deploy/billing")):
            files[name] = text.replace("feed: reg", "feed: locked")
    remote = bare_remote(seed=files)
    reconciler = Reconciler(
        PassOptions(
            PassSettings(repo_url=remote.url, work_dir=tmp_path / "w"),
            Injected(notify_transport=receiver),
        )
    )
    try:
        for _ in range(4):
            reconciler.run_pass()
        texts = [json.dumps(p) for p in sent]
        assert sum("Release created: shop 1.0.0" in t for t in texts) == 1
        assert sum("Feed authentication failed: locked" in t for t in texts) == 1  # not 4
        assert sum("Waiting for approval: shop/prod" in t for t in texts) == 1
        assert any("Release promoted: shop 1.0.0 -> staging" in t for t in texts)
        # the failure clears once the password is right: "resolved" is sent once
        monkeypatch.setenv("RECONCILER_FEED_REG_PASSWORD", registry_basic.password)
        reconciler.run_pass()
        reconciler.run_pass()
        texts = [json.dumps(p) for p in sent]
        assert sum("Resolved" in t for t in texts) == 1
        for text in texts:
            assert "wrong-Pa55word-zz9" not in text and "s3cr3t-hook" not in text
    finally:
        reconciler.close()


def test_a_persistent_failure_is_notified_once_across_processes(
    registry_basic, bare_remote, tmp_path, monkeypatch
):
    """Cron-style `once`: each pass a new process, the failure still reported once, and
    "resolved" once when it is over."""
    sent, receiver = _receiver()

    monkeypatch.setenv("HOOK_URL", "https://hooks.example.test/generic")
    monkeypatch.setenv("RECONCILER_FEED_REG_USER", registry_basic.username)
    monkeypatch.setenv("RECONCILER_ALLOW_HTTP_CREDENTIALS", registry_basic.host)
    monkeypatch.setenv("RECONCILER_FEED_REG_PASSWORD", "wrong-password-xyz")
    apps = [AppSpec("api", f"nt{uuid.uuid4().hex[:8]}/api", "x/api")]
    registry_basic.push(apps[0].repository, "1.0.0")
    files = config_files(
        registry_basic.url,
        apps,
        feed_extra="insecure: true\n"
        "credentials: {usernameEnv: RECONCILER_FEED_REG_USER,\n"
        "              passwordEnv: RECONCILER_FEED_REG_PASSWORD}\n",
    )
    files["reconciler.yaml"] += "notifications:\n  - {kind: webhook, urlEnv: HOOK_URL}\n"
    remote = bare_remote(seed=files)

    def one_process() -> None:
        reconciler = Reconciler(
            PassOptions(
                PassSettings(repo_url=remote.url, work_dir=tmp_path / "w"),
                Injected(notify_transport=receiver),
            )
        )
        try:
            reconciler.run_pass()
        finally:
            reconciler.close()

    for _ in range(3):
        one_process()
    events = [p["event"] for p in sent]
    assert events.count("auth-failed") == 1, events
    monkeypatch.setenv("RECONCILER_FEED_REG_PASSWORD", registry_basic.password)
    for _ in range(2):
        one_process()
    events = [p["event"] for p in sent]
    assert events.count("resolved") == 1 and events.count("auth-failed") == 1, events
