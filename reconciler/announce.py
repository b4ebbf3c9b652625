"""What a pass tells people: PassResult -> notifications (pure).

Progress events (release created, promoted, waiting for approval, drift) are sent once
per fact: "waiting for approval" for the same release and environment is announced once,
not on every pass. Failures are keyed by (event, subject) so the Notifier sends each once
until it clears; ``failing`` lists the keys failing now so the caller can clear the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.notify import Notification

_FEED_EVENTS = {"auth": "auth-failed", "rate-limited": "rate-limited"}


@dataclass
class Announcement:
    notes: list[Notification] = field(default_factory=list)
    failing: set[tuple[str, str]] = field(default_factory=set)
    waiting_seen: set[str] = field(default_factory=set)


def announce(result: Any, already_waiting: set[str]) -> Announcement:
    """Notifications for ``result`` (a reconcile.PassResult)."""
    out = Announcement()
    if result.pushed:
        for r in result.releases:
            pkgs = ", ".join(f"{p.name} {p.version}" for p in r.packages)
            out.notes.append(
                Notification(
                    "release-created",
                    f"{r.project} {r.version}",
                    f"Release {r.project} {r.version} (channel {r.channel}): {pkgs}",
                    project=r.project,
                    release=r.version,
                )
            )
        for project, env, version in result.promotions:
            out.notes.append(
                Notification(
                    "promoted",
                    f"{project} {version} -> {env}",
                    f"{project} {version} deployed to {env}",
                    project=project,
                    release=version,
                    environment=env,
                )
            )
        for verdict in result.verifications:
            failed = verdict.result == "failed"
            out.notes.append(
                Notification(
                    "verification-failed" if failed else "verified",
                    f"{verdict.project} {verdict.release} in {verdict.environment}",
                    f"{verdict.project} {verdict.release} in {verdict.environment}: "
                    + (f"failed verification: {verdict.reason}" if failed else verdict.reason),
                    project=verdict.project,
                    release=verdict.release,
                    environment=verdict.environment,
                )
            )
        for project, env, policy, why in result.drift:
            out.notes.append(
                Notification(
                    "drift-detected",
                    f"{project}/{env}",
                    f"Drift in {project}/{env} ({policy}): {why}",
                    project=project,
                    environment=env,
                )
            )
    for project, env, reason in result.waiting:
        if "manual approval pending" not in reason and "waiting for pull request" not in reason:
            continue
        key = f"{project}/{env}/{reason}"
        out.waiting_seen.add(key)
        if key in already_waiting:
            continue
        out.notes.append(
            Notification(
                "waiting-for-approval",
                f"{project}/{env}",
                f"{project}/{env}: {reason}",
                project=project,
                environment=env,
            )
        )
    for feed, (error_class, message) in sorted(result.failed_feeds.items()):
        event = _FEED_EVENTS.get(error_class)
        if event is not None:
            out.failing.add((event, feed))
            out.notes.append(Notification(event, feed, message, feed=feed))
    for decision in result.decisions:
        if decision.release is None and decision.reason.startswith("no version of "):
            subject = f"{decision.project}/{decision.trigger}"
            out.failing.add(("no-tag-matched", subject))
            out.notes.append(
                Notification("no-tag-matched", subject, decision.reason, project=decision.project)
            )
    if result.config_error is not None:
        out.failing.add(("config-invalid", "config"))
        first = "\n".join(str(p) for p in result.config_error.problems[:10])
        out.notes.append(Notification("config-invalid", "config", first))
    if result.git_error and "rejected" in result.git_error:
        out.failing.add(("push-rejected", "push"))
        out.notes.append(Notification("push-rejected", "push", result.git_error))
    return out
