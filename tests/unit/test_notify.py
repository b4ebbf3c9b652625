"""Outbound notifications (reconciler.notify) against an httpx MockTransport."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from reconciler.logs import clear_secrets, register_secret
from reconciler.notify import (
    Notification,
    NotificationTarget,
    Notifier,
    parse_targets,
)

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
URLS = {
    "HOOK_URL": "https://hooks.example/generic/T0KEN-generic",
    "SLACK_URL": "https://hooks.slack.example/services/T000/B000/XXXXsecretXXXX",
    "TEAMS_URL": "https://example.webhook.office.example/workflows/abc?sig=teams-sig-123",
}

RELEASE = Notification(
    event="release-created",
    subject="shop 1.4.0",
    message="Release 1.4.0 of shop created from api 1.4.2",
    project="shop",
    release="1.4.0",
    details={"channel": "stable"},
)
AUTH_FAILED = Notification(
    event="auth-failed",
    subject="ghcr",
    message="registry rejected the credentials",
    feed="ghcr",
)


class Recorder:
    """A MockTransport handler remembering every request."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


def notifier(recorder: Recorder, *targets: NotificationTarget) -> Notifier:
    return Notifier(
        targets, environ=URLS, transport=httpx.MockTransport(recorder), clock=lambda: NOW
    )


def test_generic_webhook_payload() -> None:
    recorder = Recorder()
    with notifier(recorder, NotificationTarget("webhook", "HOOK_URL")) as sender:
        assert sender.notify(RELEASE) == 1
    [request] = recorder.requests
    assert str(request.url) == URLS["HOOK_URL"]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "event": "release-created",
        "severity": "info",
        "subject": "shop 1.4.0",
        "title": "Release created: shop 1.4.0",
        "message": "Release 1.4.0 of shop created from api 1.4.2",
        "project": "shop",
        "release": "1.4.0",
        "environment": None,
        "feed": None,
        "details": {"channel": "stable"},
        "timestamp": "2026-11-23T18:00:00+00:00",
    }


def test_slack_payload_has_text_and_blocks() -> None:
    recorder = Recorder()
    with notifier(recorder, NotificationTarget("slack", "SLACK_URL")) as sender:
        sender.notify(RELEASE)
    [body] = recorder.bodies()
    assert body["text"].startswith("Release created: shop 1.4.0")
    types = [block["type"] for block in body["blocks"]]
    assert types == ["header", "section", "section", "context"]
    assert body["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": "Release created: shop 1.4.0",
    }
    fields = [f["text"] for f in body["blocks"][2]["fields"]]
    assert fields == ["*project*\nshop", "*release*\n1.4.0", "*channel*\nstable"]


def test_teams_payload_is_an_adaptive_card_message() -> None:
    recorder = Recorder()
    with notifier(recorder, NotificationTarget("teams", "TEAMS_URL")) as sender:
        sender.notify(AUTH_FAILED)
    [body] = recorder.bodies()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, message, facts, _footer = card["body"]
    assert title["text"] == "Feed authentication failed: ghcr"
    assert title["color"] == "Attention"
    assert message["text"] == "registry rejected the credentials"
    assert facts == {"type": "FactSet", "facts": [{"title": "feed", "value": "ghcr"}]}


def test_targets_receive_only_the_events_they_subscribe_to() -> None:
    recorder = Recorder()
    targets = (
        NotificationTarget("webhook", "HOOK_URL", events=("auth-failed",)),
        NotificationTarget("slack", "SLACK_URL"),
    )
    with notifier(recorder, *targets) as sender:
        assert sender.notify(RELEASE) == 1
        assert sender.notify(AUTH_FAILED) == 2
    assert [str(r.url) for r in recorder.requests] == [
        URLS["SLACK_URL"],
        URLS["HOOK_URL"],
        URLS["SLACK_URL"],
    ]


def test_a_persistent_failure_notifies_once_until_it_clears() -> None:
    recorder = Recorder()
    with notifier(recorder, NotificationTarget("webhook", "HOOK_URL")) as sender:
        assert sender.notify(AUTH_FAILED) == 1
        assert sender.notify(AUTH_FAILED) == 0  # still failing on the next pass
        other_feed = Notification("auth-failed", "dockerhub", "rejected", feed="dockerhub")
        assert sender.notify(other_feed) == 1  # a different subject is news
        assert sender.active_failures() == [("auth-failed", "dockerhub"), ("auth-failed", "ghcr")]
        assert sender.clear("auth-failed", "ghcr") == 1  # "resolved"
        assert sender.clear("auth-failed", "ghcr") == 0  # nothing left to resolve
        assert sender.notify(AUTH_FAILED) == 1  # failing again is news again
        assert sender.notify(RELEASE) == 1
        assert sender.notify(RELEASE) == 1  # progress events are never deduplicated
    events = [body["event"] for body in recorder.bodies()]
    assert events == [
        "auth-failed",
        "auth-failed",
        "resolved",
        "auth-failed",
        "release-created",
        "release-created",
    ]
    assert recorder.bodies()[2]["details"] == {"resolved": "auth-failed"}


def test_secrets_are_scrubbed_from_payloads() -> None:
    register_secret("hunter2-password")
    leaky = Notification(
        event="push-rejected",
        subject="config repo",
        message=(
            "push to https://bot:hunter2-password@git.example/acme/config.git failed; "
            f"see {URLS['SLACK_URL']}"
        ),
        details={"remote": "https://bot:tok3n@git.example/x.git"},
    )
    recorder = Recorder()
    with notifier(
        recorder,
        NotificationTarget("webhook", "HOOK_URL"),
        NotificationTarget("slack", "SLACK_URL"),
    ) as sender:
        sender.notify(leaky)
    for request in recorder.requests:
        text = request.content.decode()
        assert "hunter2-password" not in text
        assert "tok3n" not in text
        assert "XXXXsecretXXXX" not in text
        assert "***" in text


def test_delivery_failures_are_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    caplog.set_level(logging.WARNING, logger="reconciler.notify")
    targets = (
        NotificationTarget("slack", "SLACK_URL"),
        NotificationTarget("teams", "TEAMS_URL"),
        NotificationTarget("webhook", "UNSET_URL"),
    )
    with Notifier(targets, environ=URLS, transport=httpx.MockTransport(refuse)) as sender:
        assert sender.notify(RELEASE) == 0
    with notifier(Recorder(status=500), NotificationTarget("webhook", "HOOK_URL")) as sender:
        assert sender.notify(RELEASE) == 0
    log_text = caplog.text
    assert "$SLACK_URL" in log_text and "$UNSET_URL is not set" in log_text
    assert "answered 500" in log_text
    for url in URLS.values():
        assert url not in log_text  # webhook URLs are secrets


def test_parse_targets() -> None:
    assert parse_targets(None) == ()
    assert parse_targets(
        [{"kind": "slack", "urlEnv": "SLACK_URL", "events": ["release-created", "auth-failed"]}]
    ) == (NotificationTarget("slack", "SLACK_URL", ("release-created", "auth-failed")),)
    for bad, message in [
        ({"kind": "email", "urlEnv": "X"}, "notifications[0].kind"),
        ({"kind": "slack"}, "notifications[0].urlEnv"),
        ({"kind": "slack", "urlEnv": "X", "events": ["nope"]}, "notifications[0].events"),
    ]:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_targets([bad])
