"""Decide which releases to create, from data only.

Input: a project, a trigger, the previous release of the trigger's channel, and
what the feeds said about each package (``PackageChoice``, made by reconcile/polling.py
with selection.py). Output: a ``TriggerDecision`` holding the new release, or no
release and the reason. No I/O happens here, so every rule is unit-tested.

Rules (Octopus external feed triggers):
- The trigger fires when any of its source packages has a chosen version later
  than the one in the channel's previous release (for the ``digest`` strategy:
  a different digest of the followed tag).
- The release then takes the latest allowed version of *every* package.
- A package never goes backwards automatically: if a feed now offers only older
  versions (tags deleted, truncated list), the previous release's version is kept.
- If any package of the project cannot be resolved (feed failed, no version
  passes the rules and there is no previous release to fall back on), no release.
- Settle window: when the trigger has ``settle``, the candidate set of source
  versions must be unchanged for that long (bounded by ``max_wait``) first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler import versions
from reconciler.errors import FeedAuthError, FeedError, FeedNotFound, FeedRateLimited
from reconciler.model import Package, Project, Release, ReleasedPackage, Trigger, VersionRule
from reconciler.selection import Selection, is_newer


@dataclass(frozen=True)
class Refusal:
    """A version the signature gate refused: its tag, the digest judged (an image's
    manifest digest, a chart archive's SHA-256), the refusal kind (feeds.gate) and why."""

    tag: str
    digest: str
    kind: str
    reason: str


@dataclass(frozen=True)
class PackageChoice:
    """What polling found for one package: the chosen tag, or why there is none."""

    package: str
    tag: str | None = None
    digest: str | None = None
    selection: Selection | None = None
    error: str | None = None  # the feed failed; the reason
    retry_after: float | None = None
    error_class: str | None = None  # "auth" | "rate-limited" | "not-found" | "unavailable"
    built: datetime | None = None  # newest-build: the chosen image's creation time
    refused: tuple[Refusal, ...] = ()  # versions the signature gate refused


def failed_choice(package: str, error: FeedError) -> PackageChoice:
    """A PackageChoice recording why the feed could not be read."""
    if isinstance(error, FeedAuthError):
        kind = "auth"
    elif isinstance(error, FeedRateLimited):
        kind = "rate-limited"
    elif isinstance(error, FeedNotFound):
        kind = "not-found"
    else:
        kind = "unavailable"
    return PackageChoice(
        package, error=error.message, retry_after=error.retry_after, error_class=kind
    )


@dataclass(frozen=True)
class SettleState:
    """Per trigger, kept in the work dir (not in Git): when the candidate last changed."""

    candidate: tuple[tuple[str, str], ...]
    first_seen: datetime
    last_change: datetime


@dataclass(frozen=True)
class TriggerDecision:
    trigger: str
    project: str
    channel: str
    release: Release | None
    reason: str
    changes: tuple[tuple[str, str | None, str], ...] = ()  # (package, old, new)
    settle: SettleState | None = None  # new settle state to store (None = clear)
    details: tuple[str, ...] = field(default_factory=tuple)


def rule_for(project: Project, channel_name: str, package: str) -> VersionRule:
    """The first rule of the channel that names the package (or names none)."""
    channel = project.channel(channel_name)
    for rule in channel.rules:
        if not rule.packages or package in rule.packages:
            return rule
    return VersionRule()


def _newer(
    rule: VersionRule,
    choice: PackageChoice,
    previous: ReleasedPackage | None,
    replaced: frozenset[str] = frozenset(),
) -> bool:
    """Whether ``choice`` is new content after ``previous``. ``replaced``: digests that
    earlier releases held for ``previous``'s tag and a later release replaced; the tag
    never goes back to one of them (a writer with an old answer must not flip-flop)."""
    if choice.tag is None:
        return False
    if previous is None:
        return True
    if (
        choice.tag != previous.version
        and rule.strategy != "digest"
        and choice.digest
        and choice.digest == previous.digest
        and not _final_of_candidate(choice.tag, previous.version)
    ):
        return False  # the released content under one more name: not a new build
    if (
        choice.tag == previous.version
        and choice.digest
        and previous.digest
        and choice.digest != previous.digest
    ):
        # The same tag re-pushed with new content; never back to content it replaced.
        return choice.digest not in replaced
    if (
        rule.strategy == "newest-build"
        and choice.built is not None
        and previous.built is not None
        and choice.tag != previous.version
    ):
        # Build times from the record decide, also when the previous tag has gone from
        # the registry: an older build must never count as newer. Equal times (tools
        # like ko, Jib or Nix stamp every image alike) say nothing: other content is new.
        return choice.built >= previous.built
    return is_newer(
        rule,
        choice.tag,
        previous.version,
        candidate_digest=choice.digest,
        previous_digest=previous.digest,
    )


def _final_of_candidate(tag: str, previous: str) -> bool:
    """``1.3.0`` after ``1.3.0-rc.1``: a release candidate promoted by retagging it. The
    content is the same, but the version people deploy by is not, so it is released."""
    new, old = versions.parse_version(tag), versions.parse_version(previous)
    return (
        new is not None
        and old is not None
        and bool(old.prerelease)
        and not new.prerelease
        and new.key[0] == old.key[0]
    )


def _release_version(
    project: Project,
    previous: Release | None,
    packages: list[ReleasedPackage],
    existing: set[str],
    now: datetime,
) -> str:
    versioning = project.release_versioning
    if versioning.from_package:
        donor = next(p for p in packages if p.name == versioning.from_package)
        return versions.version_from_donor(donor.version, existing)
    return versions.next_release_version(
        versioning.template,
        previous.version if previous else None,
        existing,
        now,
        versioning.initial,
    )


def _settle(
    trigger: Trigger,
    candidate: tuple[tuple[str, str], ...],
    state: SettleState | None,
    now: datetime,
) -> tuple[bool, SettleState, str]:
    """Whether the settle window has passed; the new state; a reason when waiting."""
    if state is None or state.candidate != candidate:
        first = state.first_seen if state is not None else now
        state = SettleState(candidate, first, now)
    quiet = (now - state.last_change).total_seconds()
    waited = (now - state.first_seen).total_seconds()
    max_wait = trigger.max_wait or trigger.settle * 10
    if quiet >= trigger.settle or waited >= max_wait:
        return True, state, ""
    remaining = trigger.settle - quiet
    return False, state, f"settling: waiting {remaining:.0f}s more for the sources to be quiet"


def plan_release(
    project: Project,
    trigger: Trigger,
    previous: Release | None,
    choices: dict[str, PackageChoice],
    existing_versions: set[str],
    now: datetime,
    *,
    settle_state: SettleState | None = None,
    replaced: Mapping[str, frozenset[str]] | None = None,
) -> TriggerDecision:
    """Decide whether ``trigger`` creates a release now, and which.

    ``replaced``: per package, digests that earlier releases of the channel held for
    the previous release's tag and that a later release replaced (see ``_newer``).
    """
    replaced = replaced or {}

    def decision(release: Release | None, reason: str, **extra: Any) -> TriggerDecision:
        return TriggerDecision(
            trigger.name, project.name, trigger.channel, release, reason, **extra
        )

    if not trigger.enabled:
        return decision(None, "trigger disabled")
    failed = [c for c in choices.values() if c.error]
    if failed:
        names = ", ".join(f"{c.package} ({c.error})" for c in failed)
        return decision(None, f"feed failed for {names}")

    fired_by: list[str] = []
    for source in trigger.sources:
        choice = choices[source]
        rule = rule_for(project, trigger.channel, source)
        prev = previous.package(source) if previous else None
        if _newer(rule, choice, prev, replaced.get(source, frozenset())):
            fired_by.append(source)
    if not fired_by:
        return decision(None, _nothing_new(trigger, previous, choices, replaced))

    packages: list[ReleasedPackage] = []
    changes: list[tuple[str, str | None, str]] = []
    for pkg in project.packages:
        gone = replaced.get(pkg.name, frozenset())
        chosen = _resolve(project, trigger, pkg, previous, choices[pkg.name], gone)
        if chosen is None:
            reason = choices[pkg.name].selection
            why = _rejections(reason) if reason else "no versions"
            return decision(
                None,
                reason=f"no version of {pkg.name} passes channel {trigger.channel}: {why}",
            )
        packages.append(chosen)
        old = previous.package(pkg.name) if previous else None
        if old is None or (old.version, old.digest) != (chosen.version, chosen.digest):
            changes.append((pkg.name, old.version if old else None, chosen.version))

    candidate = tuple(sorted((p.name, f"{p.version}@{p.digest or ''}") for p in packages))
    new_settle: SettleState | None = None
    if trigger.settle > 0:
        ready, new_settle, waiting = _settle(trigger, candidate, settle_state, now)
        if not ready:
            return decision(None, waiting, settle=new_settle)
        new_settle = None

    version = _release_version(project, previous, packages, existing_versions, now)
    release = Release(
        project=project.name,
        version=version,
        channel=trigger.channel,
        trigger=trigger.name,
        created=now,
        packages=tuple(packages),
    )
    fired = ", ".join(f"{n} {choices[n].tag}" for n in fired_by)
    return decision(
        release,
        reason=f"new version of {fired}",
        changes=tuple(changes),
        settle=new_settle,
    )


def _resolve(
    project: Project,
    trigger: Trigger,
    pkg: Package,
    previous: Release | None,
    choice: PackageChoice,
    replaced: frozenset[str],
) -> ReleasedPackage | None:
    """The package's version for the new release; never older than the previous one."""
    prev = previous.package(pkg.name) if previous else None
    rule = rule_for(project, trigger.channel, pkg.name)
    source = pkg.manifest_name or pkg.repository
    if choice.tag is not None and (prev is None or _newer(rule, choice, prev, replaced)):
        return ReleasedPackage(
            pkg.name, pkg.kind, source, choice.tag, choice.digest, built=choice.built
        )
    if prev is not None:
        return prev
    return None


def _rejections(selection: Selection) -> str:
    if not selection.rejected:
        return "the feed has no tags"
    shown = "; ".join(c.reason for c in selection.rejected[:3])
    more = len(selection.rejected) - 3
    return shown + (f" (and {more} more)" if more > 0 else "")


def _nothing_new(
    trigger: Trigger,
    previous: Release | None,
    choices: dict[str, PackageChoice],
    replaced: Mapping[str, frozenset[str]],
) -> str:
    parts = []
    for source in trigger.sources:
        choice = choices[source]
        prev = previous.package(source) if previous else None
        if choice.tag is None:
            sel = choice.selection
            parts.append(
                f"{source}: nothing passes channel {trigger.channel}"
                + (f" ({_rejections(sel)})" if sel else "")
            )
        elif prev is not None and choice.digest in replaced.get(source, frozenset()):
            parts.append(
                f"{source}: {choice.tag}@{choice.digest} is content an earlier release"
                f" already replaced (now {prev.digest})"
            )
        else:
            parts.append(
                f"{source}: {choice.tag} is not newer than {prev.version if prev else '(none)'}"
            )
    return "no new version: " + "; ".join(parts)
