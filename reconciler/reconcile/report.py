"""What a pass did: ``PassResult`` and its JSON, and the commit message that says it.

The commit message is built from the result alone (plus the previous records for the
old values): subject, one body line per change, and the trailers ``history`` reads.
The user's ``commitTemplate`` is rendered by templates.py (never ``str.format``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler import records, templates
from reconciler.commitlines import (
    SUBJECT_PREFIX,
    deploy_subject,
    deployment_lines,
    package_changes,
    package_lines,
)
from reconciler.errors import ConfigError
from reconciler.model import COMMIT_VARIABLES, Config, Release
from reconciler.planning import PackageChoice, Refusal, TriggerDecision
from reconciler.verify.stage import Concluded

__all__ = [
    "BODY_LINES",
    "CANDIDATES_SHOWN",
    "DEFAULT_COMMIT_TEMPLATE",
    "AutomaticDeployment",
    "PassResult",
    "choices_json",
    "commit_message",
    "earliest",
    "package_changes",
    "release_json",
    "summary",
]

log = logging.getLogger("reconciler.pass")


@dataclass(frozen=True)
class AutomaticDeployment:
    """One automatic promotion of a pass, for the commit message."""

    project: str
    environment: str
    before: str | None  # the release the environment ran (None: its first deployment)
    release: str
    phase: str
    changes: list[tuple[str, str | None, str]]  # (package, old version, new version)


@dataclass
class PassResult:
    """What a pass did. ``ok`` is False when something failed (and was recorded)."""

    ok: bool = True
    commit: str | None = None
    pushed: bool = False
    releases: list[Release] = field(default_factory=list)
    promotions: list[tuple[str, str, str]] = field(default_factory=list)  # project, env, version
    decisions: list[TriggerDecision] = field(default_factory=list)
    waiting: list[tuple[str, str, str]] = field(default_factory=list)  # project, env, reason
    feed_errors: dict[str, str] = field(default_factory=dict)  # project/package -> error
    failed_feeds: dict[str, tuple[str, str]] = field(default_factory=dict)  # feed -> class, why
    retry_after: dict[str, float] = field(default_factory=dict)  # failed feed -> seconds to wait
    config_error: ConfigError | None = None
    git_error: str | None = None
    push_attempts: int = 0  # plans pushed (more than one: the remote moved under us)
    push_rebases: int = 0  # pushes retried after rebasing over unrelated commits
    duration: float = 0.0
    files_changed: list[str] = field(default_factory=list)
    choices: dict[tuple[str, str], dict[str, PackageChoice]] = field(default_factory=dict)
    adopted: list[tuple[str, str, str, str]] = field(default_factory=list)  # proj, env, rel, who
    proposals: list[tuple[str, str, str]] = field(default_factory=list)  # proj, env, release
    # proj, env, release awaiting a manual promotion (the dashboard can propose it)
    manual: list[tuple[str, str, str]] = field(default_factory=list)
    pull_requests: list[dict[str, Any]] = field(default_factory=list)  # opened/kept/closed
    drift: list[tuple[str, str, str, str]] = field(default_factory=list)  # proj, env, policy, why
    project_errors: dict[str, str] = field(default_factory=dict)  # project -> why it was skipped
    deployments: list[AutomaticDeployment] = field(default_factory=list)
    verifications: list[Concluded] = field(default_factory=list)  # verdicts reached this pass
    rollbacks: list[tuple[str, str, str, str]] = field(default_factory=list)  # p, env, from, to
    wake_at: datetime | None = None  # when time alone changes a decision (soak, freeze, poll)
    # A deployment made here opens a later automatic phase: once it is pushed, the
    # sidecar runs the next pass at once instead of leaving it to the interval.
    follow_up: bool = False

    _PER_PROJECT = ("releases", "promotions", "decisions", "waiting", "files_changed",
                    "adopted", "proposals", "manual", "drift", "deployments", "verifications",
                    "rollbacks")  # fmt: skip

    def mark(self) -> dict[str, int]:
        """Where each per-project list ends now (see :meth:`rewind`)."""
        return {name: len(getattr(self, name)) for name in self._PER_PROJECT}

    def rewind(self, mark: dict[str, int]) -> None:
        """Forget what was added since ``mark``: a project that failed half-way."""
        for name, length in mark.items():
            del getattr(self, name)[length:]

    def refusals(self) -> list[tuple[str, str, Refusal]]:
        """(project, package, refusal) for each version the signature gate refused this
        pass, once each (channels of a project judge the same versions)."""
        seen: dict[tuple[str, str, str, str], tuple[str, str, Refusal]] = {}
        for (project, _), per_package in sorted(self.choices.items()):
            for name, choice in per_package.items():
                for refusal in choice.refused:
                    key = (project, name, refusal.tag, refusal.digest)
                    seen.setdefault(key, (project, name, refusal))
        return list(seen.values())

    def to_json(self, *, candidates: bool = False) -> dict[str, Any]:
        """The pass as JSON; ``candidates`` adds each package's accepted and rejected
        tags with reasons (``plan``: costs a full selection per package)."""
        return {
            "ok": self.ok,
            "commit": self.commit,
            "pushed": self.pushed,
            "releases": [release_json(r) for r in self.releases],
            "promotions": [
                {"project": p, "environment": e, "release": v} for p, e, v in self.promotions
            ],
            "triggers": [
                {
                    "trigger": d.trigger,
                    "project": d.project,
                    "channel": d.channel,
                    "release": d.release.version if d.release else None,
                    "reason": d.reason,
                    "changes": [{"package": p, "from": o, "to": n} for p, o, n in d.changes],
                    "packages": choices_json(
                        self.choices.get((d.project, d.channel), {}), candidates
                    ),
                }
                for d in self.decisions
            ],
            "waiting": [{"project": p, "environment": e, "reason": r} for p, e, r in self.waiting],
            "feedErrors": self.feed_errors,
            "feedRetryAfterSeconds": self.retry_after,
            "projectErrors": self.project_errors,
            "configErrors": [str(p) for p in self.config_error.problems]
            if self.config_error
            else [],
            "gitError": self.git_error,
            "pushAttempts": self.push_attempts,
            "pushRebases": self.push_rebases,
            "pullRequests": self.pull_requests,
            "verifications": [
                {
                    "project": v.project,
                    "environment": v.environment,
                    "release": v.release,
                    "result": v.result,
                    "at": records.iso(v.at),
                    "reason": v.reason,
                }
                for v in self.verifications
            ],
            "rollbacks": [
                {"project": p, "environment": e, "from": f, "to": t}
                for p, e, f, t in self.rollbacks
            ],
            "wakeAt": records.iso(self.wake_at) if self.wake_at else None,
            "followUp": self.follow_up,  # run again now: a later automatic phase opened
            "filesChanged": self.files_changed,
            "durationSeconds": round(self.duration, 3),
        }


CANDIDATES_SHOWN = 20
"""Accepted / rejected tags listed per package in JSON output (the counts are exact)."""


def choices_json(choices: Mapping[str, PackageChoice], candidates: bool) -> dict[str, Any]:
    """Per package: the chosen tag or the feed error, and with ``candidates`` the best
    accepted tags and the rejected ones with their reasons (what ``explain`` prints)."""
    out: dict[str, Any] = {}
    for name, choice in sorted(choices.items()):
        entry: dict[str, Any] = {"chosen": choice.tag, "digest": choice.digest}
        if choice.error:
            entry["error"] = choice.error
        selection = choice.selection
        if candidates and selection is not None:
            entry["accepted"] = list(selection.accepted[:CANDIDATES_SHOWN])
            entry["acceptedCount"] = len(selection.accepted)
            entry["rejected"] = [
                {"tag": c.tag, "reason": c.reason} for c in selection.rejected[:CANDIDATES_SHOWN]
            ]
            entry["rejectedCount"] = len(selection.rejected)
        out[name] = entry
    return out


def release_json(release: Release) -> dict[str, Any]:
    return {
        "project": release.project,
        "version": release.version,
        "channel": release.channel,
        "trigger": release.trigger,
        "packages": {p.name: {"version": p.version, "digest": p.digest} for p in release.packages},
    }


DEFAULT_COMMIT_TEMPLATE = "{subject}\n\n{body}\n\n{trailers}\n"
"""Variables: subject, body (one line per change: package old -> new, environment),
trailers. Trailers are appended when a template leaves them out: history reads them."""


def earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    return min(t for t in (first, second) if t is not None) if first or second else None


def _one_line(text: str, limit: int = 200) -> str:
    """An agent's words on one bounded line: a newline must not start a trailer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _verification_lines(result: PassResult) -> tuple[list[str], list[str], list[str]]:
    """(subject parts, body lines, trailers) for verdicts and rollbacks."""
    subject, body, trailers = [], [], []
    for v in result.verifications:
        when = records.iso(v.at)
        if v.result == "verified":
            subject.append(f"verified {v.project} {v.release} in {v.environment}")
            trailers.append(f"Verified: {v.project} {v.release} {v.environment} at {when}")
        else:
            subject.append(f"{v.project} {v.release} failed in {v.environment}")
            trailers.append(
                f"Failed: {v.project} {v.release} {v.environment} at {when} ({_one_line(v.reason)})"
            )
        body.append(f"{v.project}/{v.environment}: {v.release} {v.result}: {_one_line(v.reason)}")
    for project, env, failed, back_to in result.rollbacks:
        body.append(f"{project}/{env}: rolled back from {failed} to {back_to}")
        trailers.append(f"Rolled-Back: {project} {env} {failed} -> {back_to}")
    return subject, body, trailers


def commit_message(config: Config, result: PassResult) -> str:
    """What changed, exactly: every package old -> new and every environment moved."""
    subject_parts = [f"release {r.project} {r.version}" for r in result.releases]
    by_release: dict[tuple[str, str], list[str]] = {}
    for project, env, version in result.promotions:
        by_release.setdefault((project, version), []).append(env)
    subject_parts += [deploy_subject(p, v, envs) for (p, v), envs in by_release.items()]
    subject_parts += [f"record {p}/{e} at {v}" for p, e, v, _ in result.adopted]
    subject_parts += [f"drift in {p}/{e}: {policy}" for p, e, policy, _ in result.drift]
    verified_subject, verified_body, verified_trailers = _verification_lines(result)
    subject_parts += verified_subject
    subject = "; ".join(subject_parts) or "update"
    if len(subject) > 72:
        subject = f"{len(result.releases)} release(s), {len(result.promotions)} deployment(s)" + (
            f", {len(result.drift)} drift(s)" if result.drift else ""
        )
    subject = SUBJECT_PREFIX + subject
    body: list[str] = []
    for decision in result.decisions:
        if decision.release is None:
            continue
        r = decision.release
        body.append(f"{r.project} {r.version} (channel {r.channel}, trigger {r.trigger}):")
        body += package_lines(decision.changes)
    for d in result.deployments:
        how = f"phase {d.phase}, automatic"
        body += deployment_lines(d.project, d.environment, d.before, d.release, how, d.changes)
    for project, env, version, who in result.adopted:
        body.append(f"{project}/{env}: now runs {version} (changed by {who})")
    for project, env, policy, why in result.drift:
        body.append(f"{project}/{env}: drift ({policy}): {why}")
    body += verified_body
    trailers = [f"Release: {r.project} {r.version}" for r in result.releases]
    for project, env, version in result.promotions:
        trailers.append(f"Environment: {env}")
        trailers.append(f"Deployed: {project} {version} {env}")
    for project, env, version, _ in result.adopted:
        trailers.append(f"Environment: {env}")
        trailers.append(f"Deployed: {project} {version} {env}")
    for project, env, policy, _ in result.drift:
        trailers.append(f"Drift: {project} {env} {policy}")
    trailers += verified_trailers
    if result.promotions:
        trailers.append("Promoted-By: reconciler (automatic)")
    for project, env, version, who in result.adopted:
        trailers.append(f"Promoted-By: {who}")
        # One commit may hold automatic promotions too: say whose this deployment is.
        trailers.append(f"Deployed-By: {project} {version} {env} {who}")
    trailer_text = "\n".join(dict.fromkeys(trailers))
    try:
        template = templates.parse(
            _template_for(config, result) or DEFAULT_COMMIT_TEMPLATE, COMMIT_VARIABLES
        )
    except templates.TemplateError as error:  # validate refuses it; defensive
        log.warning("commitTemplate is not a valid template (%s); using the default", error)
        template = templates.parse(DEFAULT_COMMIT_TEMPLATE, COMMIT_VARIABLES)
    values = {"subject": subject, "body": summary(body), "trailers": trailer_text}
    message = template.render(values)
    if (True, "trailers") not in template.parts:
        message = message.rstrip("\n") + "\n\n" + trailer_text + "\n"
    return message


def _template_for(config: Config, result: PassResult) -> str | None:
    """The project's own commitTemplate when the commit changes that project alone;
    otherwise (several projects, or none set) the Settings' one."""
    touched = (
        {r.project for r in result.releases}
        | {p for p, _, _ in result.promotions}
        | {p for p, _, _, _ in result.adopted}
        | {p for p, _, _, _ in result.drift}
    )
    if len(touched) == 1:
        project = config.projects.get(next(iter(touched)))
        if project is not None and project.commit_template is not None:
            return project.commit_template
    return config.settings.commit_template


BODY_LINES = 200
"""Body lines a commit message lists; a huge pass (hundreds of projects) ends with
"… and N more", while its trailers, which ``history`` reads, stay complete."""


def summary(body: list[str]) -> str:
    """``body`` cut at an entry (a line and its indented lines) after ``BODY_LINES``."""
    if len(body) <= BODY_LINES:
        return "\n".join(body)
    cut = BODY_LINES
    while cut > 0 and body[cut].startswith("  "):
        cut -= 1
    rest = sum(1 for line in body[cut:] if not line.startswith("  "))
    return "\n".join([*body[:cut], f"… and {rest} more (every one is named in the trailers)"])
