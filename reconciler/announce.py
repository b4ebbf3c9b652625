"""What a pass tells people: PassResult -> notifications (pure).

Progress events (release created, promoted, waiting for approval, drift) are sent once
per fact: "waiting for approval" for the same release and environment is announced once,
not on every pass. A version the signature gate refused is announced once per
(project/package, digest, refusal kind): the caller keeps those keys in the work dir.
Failures are keyed by (event, subject) so the Notifier sends each once
until it clears; ``failing`` lists the keys failing now so the caller can clear the rest.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from reconciler.notify import Notification

_FEED_EVENTS = {"auth": "auth-failed", "rate-limited": "rate-limited"}

REFUSALS_REMEMBERED = 30 * 86400.0
"""Seconds a refusal stays remembered as announced after it was last judged."""


@dataclass
class Announcement:
    notes: list[Notification] = field(default_factory=list)
    failing: set[tuple[str, str]] = field(default_factory=set)
    waiting_seen: set[str] = field(default_factory=set)
    refused_seen: set[str] = field(default_factory=set)  # refusal keys judged this pass


def refusal_key(project: str, package: str, digest: str, kind: str) -> str:
    """What a refusal is announced once per: ``project/package|digest|kind``."""
    return f"{project}/{package}|{digest}|{kind}"


def announce(
    result: Any, already_waiting: set[str], already_refused: Collection[str] = ()
) -> Announcement:
    """Notifications for ``result`` (a reconcile.PassResult); ``already_refused``: the
    refusal keys announced before."""
    out = Announcement()
    _announce_refusals(result, already_refused, out)
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


def remember_refusals(memory: dict[str, float], seen: Collection[str], now: float) -> None:
    """Update the work dir's ``memory`` of announced refusals (key -> last judged at):
    the keys judged this pass are kept, and forgotten a month after they were last
    judged, so the memory stays small and a version refused again within that month
    is not announced twice (nor after a restart)."""
    memory.update(dict.fromkeys(seen, now))
    for key in [k for k, when in memory.items() if now - when > REFUSALS_REMEMBERED]:
        del memory[key]


def _announce_refusals(result: Any, already: Collection[str], out: Announcement) -> None:
    """One note per refused version not announced before; every key judged is seen."""
    for project, package, refusal in result.refusals():
        key = refusal_key(project, package, refusal.digest or refusal.tag, refusal.kind)
        out.refused_seen.add(key)
        if key in already:
            continue
        out.notes.append(
            Notification(
                "signature-refused",
                f"{project}/{package} {refusal.tag}",
                f"{project}/{package} {refusal.tag} was not selected: {refusal.reason}",
                project=project,
                details={"digest": refusal.digest or "(none)", "refusal": refusal.kind},
            )
        )
