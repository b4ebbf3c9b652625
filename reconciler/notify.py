"""Outbound notifications: generic JSON webhooks, Slack and Microsoft Teams.

Configured by an optional ``notifications:`` section (see
:class:`NotificationTarget`). Webhook URLs carry their own credentials, so the
config names an environment variable holding the URL, never the URL itself.

Rules:

* Failures (``auth-failed``, ``rate-limited``, ...) notify once per
  ``(event, subject)`` until :meth:`Notifier.clear` reports them resolved; a
  feed failing on every pass for a day is one message, plus one "resolved".
* Every payload is scrubbed of registered secrets (``logs.register_secret``)
  and of the target URLs themselves.
* Notifying never raises: a broken chat integration must not stop releases.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from reconciler.grants import reserved_env_problem
from reconciler.logs import scrub

log = logging.getLogger(__name__)

TargetKind = Literal["webhook", "slack", "teams"]

#: Events that report progress: sent every time.
PROGRESS_EVENTS = (
    "release-created",
    "promoted",
    "waiting-for-approval",
    "drift-detected",
    "verified",
    "verification-failed",  # sent once: a verdict is reached once (a timeout included)
)
#: Events that report a failure: sent once per (event, subject) until cleared.
FAILURE_EVENTS = (
    "auth-failed",
    "rate-limited",
    "push-rejected",
    "no-tag-matched",
    "config-invalid",
)
#: A version the signature gate refused: sent every time it is given, which announce.py
#: does once per (package, digest, refusal kind), remembered in the work dir.
GATE_EVENTS = ("signature-refused",)
#: Sent when a failure clears; targets subscribed to the failure get it.
RESOLVED_EVENT = "resolved"
EVENTS = (*PROGRESS_EVENTS, *FAILURE_EVENTS, *GATE_EVENTS)

_TITLES = {
    "release-created": "Release created",
    "promoted": "Release promoted",
    "waiting-for-approval": "Waiting for approval",
    "drift-detected": "Drift detected",
    "verified": "Deployment verified",
    "verification-failed": "Deployment failed verification",
    "auth-failed": "Feed authentication failed",
    "rate-limited": "Feed rate limited",
    "push-rejected": "Git push rejected",
    "no-tag-matched": "No tag matched",
    "config-invalid": "Config invalid",
    "signature-refused": "Signature gate refused a version",
    RESOLVED_EVENT: "Resolved",
}


@dataclass(frozen=True)
class NotificationTarget:
    """One destination. ``events`` empty = every event."""

    kind: TargetKind
    url_env: str  # name of the environment variable holding the webhook URL
    events: tuple[str, ...] = ()

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


@dataclass(frozen=True)
class Notification:
    """Something worth telling people. ``subject`` identifies what it is about
    (``"shop 1.4.0"``, a feed name) and is half of the failure dedup key."""

    event: str
    subject: str
    message: str
    project: str | None = None
    release: str | None = None
    environment: str | None = None
    feed: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_failure(self) -> bool:
        return self.event in FAILURE_EVENTS

    @property
    def severity(self) -> str:
        """``error`` for failures, ``warning`` for refused versions, else ``info``."""
        if self.is_failure:
            return "error"
        return "warning" if self.event in GATE_EVENTS else "info"

    @property
    def title(self) -> str:
        return f"{_TITLES.get(self.event, self.event)}: {self.subject}"

    def facts(self) -> dict[str, str]:
        """Named values shown as fields: project, release, environment, feed, details."""
        named = {
            "project": self.project,
            "release": self.release,
            "environment": self.environment,
            "feed": self.feed,
        }
        facts = {key: value for key, value in named.items() if value}
        facts.update(self.details)
        return facts


def parse_targets(raw: Any) -> tuple[NotificationTarget, ...]:
    """Targets from the ``notifications:`` config section (a list of mappings).

    ``[{kind: slack, urlEnv: SLACK_WEBHOOK_URL, events: [release-created]}]``;
    raises ``ValueError`` naming the offending entry.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("notifications: must be a list")
    targets = []
    for index, entry in enumerate(raw):
        where = f"notifications[{index}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: must be a mapping")
        kind = entry.get("kind")
        if kind not in _PAYLOADS:
            raise ValueError(f"{where}.kind: must be one of {', '.join(_PAYLOADS)}")
        url_env = entry.get("urlEnv", entry.get("url_env"))
        if not isinstance(url_env, str) or not url_env:
            raise ValueError(f"{where}.urlEnv: name of the env var holding the URL is required")
        events = entry.get("events", [])
        if not isinstance(events, list) or any(e not in EVENTS for e in events):
            raise ValueError(f"{where}.events: each must be one of {', '.join(EVENTS)}")
        targets.append(NotificationTarget(kind=kind, url_env=url_env, events=tuple(events)))
    return tuple(targets)


# ---------------------------------------------------------------------- payloads


def generic_payload(note: Notification, now: datetime) -> dict[str, Any]:
    """A flat JSON document for custom receivers."""
    return {
        "event": note.event,
        "severity": note.severity,
        "subject": note.subject,
        "title": note.title,
        "message": note.message,
        "project": note.project,
        "release": note.release,
        "environment": note.environment,
        "feed": note.feed,
        "details": dict(note.details),
        "timestamp": now.isoformat(timespec="seconds"),
    }


def slack_payload(note: Notification, now: datetime) -> dict[str, Any]:
    """Slack incoming webhook: ``text`` (notifications, fallback) plus Block Kit blocks."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": note.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": note.message}},
    ]
    facts = note.facts()
    if facts:
        blocks.append(
            {
                "type": "section",
                # Slack allows at most 10 fields per section.
                "fields": [
                    {"type": "mrkdwn", "text": f"*{key}*\n{value}"}
                    for key, value in list(facts.items())[:10]
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"reconciler · {now:%Y-%m-%d %H:%M:%S} UTC"}],
        }
    )
    return {"text": f"{note.title}\n{note.message}", "blocks": blocks}


def teams_payload(note: Notification, now: datetime) -> dict[str, Any]:
    """Teams incoming webhook (Workflows): a message carrying one Adaptive Card."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": note.title,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": {"error": "Attention", "warning": "Warning"}.get(note.severity, "Default"),
        },
        {"type": "TextBlock", "text": note.message, "wrap": True},
    ]
    facts = note.facts()
    if facts:
        body.append(
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts.items()]}
        )
    body.append(
        {
            "type": "TextBlock",
            "text": f"reconciler · {now:%Y-%m-%d %H:%M:%S} UTC",
            "isSubtle": True,
            "size": "Small",
        }
    )
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


_PAYLOADS = {"webhook": generic_payload, "slack": slack_payload, "teams": teams_payload}


def _scrub_document(document: Any, secrets: tuple[str, ...]) -> Any:
    """``document`` with every string scrubbed (keys included)."""
    if isinstance(document, str):
        return scrub(document, secrets)
    if isinstance(document, dict):
        return {scrub(k, secrets): _scrub_document(v, secrets) for k, v in document.items()}
    if isinstance(document, list):
        return [_scrub_document(item, secrets) for item in document]
    return document


# ---------------------------------------------------------------------- notifier


class Notifier:
    """Sends :class:`Notification` values to the configured targets. Thread-safe.

    ``transport`` is an httpx transport (``httpx.MockTransport`` in tests).
    Sending is synchronous with a short ``timeout``.
    """

    def __init__(
        self,
        targets: Iterable[NotificationTarget],
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 5.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.targets = tuple(targets)
        self._environ = environ if environ is not None else os.environ
        self._client = httpx.Client(transport=transport, timeout=timeout)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._active_failures: dict[tuple[str, str], Notification] = {}
        self._lock = threading.Lock()

    def notify(self, note: Notification) -> int:
        """Send ``note`` to every target that wants it; returns how many accepted it.

        A failure already reported and not yet cleared is not sent again.
        """
        if note.is_failure:
            key = (note.event, note.subject)
            with self._lock:
                if key in self._active_failures:
                    return 0
                self._active_failures[key] = note
        return self._send(note, note.event)

    def clear(self, event: str, subject: str) -> int:
        """The failure ``(event, subject)`` is over: re-arm it and send "resolved" once."""
        with self._lock:
            previous = self._active_failures.pop((event, subject), None)
        if previous is None:
            return 0
        resolved = Notification(
            event=RESOLVED_EVENT,
            subject=subject,
            message=f"{_TITLES.get(event, event)} no longer happens.",
            project=previous.project,
            feed=previous.feed,
            environment=previous.environment,
            details={"resolved": event},
        )
        return self._send(resolved, event)

    def active_failures(self) -> list[tuple[str, str]]:
        """The ``(event, subject)`` failures currently reported and not cleared."""
        with self._lock:
            return sorted(self._active_failures)

    def remembered(self) -> list[dict[str, str | None]]:
        """The reported failures as JSON-able records, for :meth:`restore` in a later
        process (a cron-style ``once`` must not repeat a persistent failure either)."""
        with self._lock:
            return [
                {
                    "event": note.event,
                    "subject": note.subject,
                    "project": note.project,
                    "feed": note.feed,
                    "environment": note.environment,
                }
                for _, note in sorted(self._active_failures.items())
            ]

    def restore(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Take back failures reported by an earlier process (see :meth:`remembered`)."""
        with self._lock:
            for record in records:
                event, subject = record.get("event"), record.get("subject")
                if not isinstance(event, str) or not isinstance(subject, str):
                    continue  # a damaged work dir: forget it rather than fail
                self._active_failures[(event, subject)] = Notification(
                    event,
                    subject,
                    "",
                    project=record.get("project"),
                    feed=record.get("feed"),
                    environment=record.get("environment"),
                )

    def _send(self, note: Notification, subscribed_event: str) -> int:
        delivered = 0
        for target in self.targets:
            if target.wants(subscribed_event) and self._post(target, note):
                delivered += 1
        return delivered

    def _post(self, target: NotificationTarget, note: Notification) -> bool:
        refused = reserved_env_problem(target.url_env)
        if refused is not None:  # the URL would carry one of the reconciler's own secrets
            log.warning(
                "notification target %s: $%s refused: %s", target.kind, target.url_env, refused
            )
            return False
        url = self._environ.get(target.url_env)
        if not url:
            log.warning("notification target %s: $%s is not set", target.kind, target.url_env)
            return False
        other_urls = tuple(self._environ.get(t.url_env) or "" for t in self.targets)
        payload = _scrub_document(_PAYLOADS[target.kind](note, self._clock()), (url, *other_urls))
        try:
            response = self._client.post(url, json=payload)
        except httpx.HTTPError as exc:
            # The URL is a secret: name the env var, never the URL.
            log.warning(
                "notification to %s ($%s) failed: %s",
                target.kind,
                target.url_env,
                scrub(type(exc).__name__ + ": " + str(exc), (url,)),
            )
            return False
        if response.is_success:
            return True
        log.warning(
            "notification to %s ($%s) answered %d",
            target.kind,
            target.url_env,
            response.status_code,
        )
        return False

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
