"""Pure judgements: a document the agent reports (or a probe's answer) in, an Outcome out.

Nothing here does I/O; :mod:`reconciler.verify.probes` fetches the documents. Field
names follow the agents' documented APIs:

* Argo CD ``Application`` (``argoproj.io/v1alpha1``): ``status.sync.{status,revision,
  revisions}``, ``status.health.{status,message}``, ``status.operationState.{phase,
  message,syncResult.revision(s),operation.sync.revision}``
  (argo-cd ``pkg/apis/application/v1alpha1/types.go``; health statuses from
  ``gitops-engine/pkg/health``).
* Flux ``Kustomization`` (``kustomize.toolkit.fluxcd.io/v1``) and ``HelmRelease``
  (``helm.toolkit.fluxcd.io/v2``): ``status.conditions[type=Ready]``,
  ``status.lastAppliedRevision``, ``status.lastAttemptedRevision``,
  ``status.observedGeneration`` (Flux API reference, "Status" sections).
* Commit statuses: GitHub ``state`` error|failure|pending|success and check runs'
  ``status``/``conclusion``; GitLab ``status`` pending|running|success|failed|canceled|
  skipped|created|manual; Gitea ``status`` pending|success|error|failure|warning.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.documents import field
from reconciler.verify.model import Outcome

__all__ = [
    "StatusEntry",
    "argocd_outcome",
    "combine",
    "commit_status_outcome",
    "flux_outcome",
    "http_outcome",
    "names_commit",
]

_MIN_SHA = 7  # an abbreviated SHA shorter than git's default says too little


def _same_commit(revision: str, sha: str) -> bool:
    revision, sha = revision.strip().lower(), sha.strip().lower()
    if len(revision) < _MIN_SHA or len(sha) < _MIN_SHA:
        return False
    return revision.startswith(sha) or sha.startswith(revision)


Commits = str | Sequence[str]
"""The deploying commit, or it followed by the later commits of the branch: an agent
synced to a later commit runs the deployment too (other projects' commits move HEAD)."""


def _commits(sha: Commits) -> tuple[str, ...]:
    return (sha,) if isinstance(sha, str) else tuple(sha)


def names_commit(revision: object, sha: Commits) -> bool:
    """Whether an agent's revision string names commit ``sha`` (or one of them).

    Accepts a bare SHA, Flux's ``main@sha1:<sha>`` and ``sha1:<sha>``, the older
    ``main/<sha>``, and a Helm chart version built from a Git source, ``1.2.3+<sha12>``.
    """
    if not isinstance(revision, str) or not revision:
        return False
    part = revision
    for separator in ("@sha1:", "sha1:", "/", "+"):
        if separator in revision:
            part = revision.rsplit(separator, 1)[1]
            break
    return any(_same_commit(part, commit) for commit in _commits(sha))


def _short(sha: Commits) -> str:
    commits = _commits(sha)
    return commits[0][:12] if commits else "?"


# -------------------------------------------------------------------------- Argo CD

_ARGO_FAILED_HEALTH = ("Degraded", "Missing")
_ARGO_FAILED_PHASES = ("Failed", "Error")


def _argocd_revisions(status: Any) -> tuple[list[str], list[str]]:
    """(revisions the app is synced to, revisions of its last sync operation)."""
    synced = [field(status, "sync", "revision"), *list(field(status, "sync", "revisions") or [])]
    operation = [
        field(status, "operationState", "syncResult", "revision"),
        field(status, "operationState", "operation", "sync", "revision"),
        *list(field(status, "operationState", "syncResult", "revisions") or []),
        *list(field(status, "operationState", "operation", "sync", "revisions") or []),
    ]
    return [r for r in synced if isinstance(r, str)], [r for r in operation if isinstance(r, str)]


def argocd_outcome(application: Mapping[str, Any], sha: Commits) -> Outcome:
    """Verified when synced to ``sha`` and Healthy; failed when Degraded/Missing, or the
    sync operation ended Failed/Error, at that revision; else pending."""
    name = field(application, "metadata", "name") or "application"
    status = application.get("status") or {}
    synced, operated = _argocd_revisions(status)
    at_synced = any(names_commit(r, sha) for r in synced)
    at_operation = any(names_commit(r, sha) for r in operated)
    health = field(status, "health", "status") or "Unknown"
    health_message = field(status, "health", "message") or ""
    sync_status = field(status, "sync", "status") or "Unknown"
    phase = field(status, "operationState", "phase") or ""
    if at_operation and phase in _ARGO_FAILED_PHASES:
        message = field(status, "operationState", "message") or ""
        return Outcome.failed(f"sync {phase}: {message}".rstrip(": "))
    if at_synced and health in _ARGO_FAILED_HEALTH:
        return Outcome.failed(f"{health}: {health_message}".rstrip(": "))
    if at_synced and sync_status == "Synced" and health == "Healthy":
        return Outcome.verified(f"Application {name} synced to {_short(sha)} and Healthy")
    where = "at" if at_synced else "not yet at"
    return Outcome.pending(
        f"Application {name} {where} {_short(sha)} (sync {sync_status}, health {health})"
    )


# ----------------------------------------------------------------------------- Flux

# Ready=False reasons that mean "still working on it", not a verdict.
_FLUX_TRANSIENT_REASONS = frozenset(
    {"Progressing", "ProgressingWithRetry", "DependencyNotReady", "ArtifactFailed"}
)


def _ready_condition(document: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in field(document, "status", "conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return {}


def flux_outcome(document: Mapping[str, Any], sha: Commits) -> Outcome:
    """Verified when Ready=True for the current generation and ``lastAppliedRevision``
    names ``sha``; failed when Ready=False (a non-transient reason) at that revision."""
    kind = document.get("kind") or "object"
    name = f"{kind} {field(document, 'metadata', 'name') or '?'}"
    status = document.get("status") or {}
    ready = _ready_condition(document)
    ready_status, reason = ready.get("status", "Unknown"), ready.get("reason", "")
    message = ready.get("message", "")
    generation = field(document, "metadata", "generation")
    observed = status.get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        return Outcome.pending(f"{name} has not observed generation {generation} yet")
    applied = names_commit(status.get("lastAppliedRevision"), sha)
    attempted = names_commit(status.get("lastAttemptedRevision"), sha) or applied
    if ready_status == "True" and applied:
        return Outcome.verified(f"{name} Ready at {_short(sha)}")
    if ready_status == "False" and attempted and reason not in _FLUX_TRANSIENT_REASONS:
        return Outcome.failed(f"{reason or 'NotReady'}: {message}".rstrip(": "))
    where = "at" if attempted else "not yet at"
    return Outcome.pending(f"{name} {where} {_short(sha)} (Ready={ready_status} {reason})".strip())


# ------------------------------------------------------------------- commit statuses


@dataclass(frozen=True)
class StatusEntry:
    """One status or check run on a commit, in the Git host's own words."""

    context: str
    state: str  # the host's own state word, lower case
    description: str = ""
    created: str = ""  # ISO time when known: the newest entry per context wins


_SUCCESS = frozenset({"success", "neutral", "skipped"})
_FAILURE = frozenset(
    {"failure", "error", "failed", "canceled", "cancelled", "timed_out", "action_required"}
)


def _newest_per_context(entries: Iterable[StatusEntry]) -> dict[str, StatusEntry]:
    newest: dict[str, StatusEntry] = {}
    for entry in entries:
        known = newest.get(entry.context)
        if known is None or entry.created > known.created:
            newest[entry.context] = entry
    return newest


def commit_status_outcome(entries: Sequence[StatusEntry], pattern: str, sha: str) -> Outcome:
    """All statuses whose context matches ``pattern`` succeeded -> verified; any failed
    -> failed; none yet or some still running -> pending."""
    matching = {
        context: entry
        for context, entry in _newest_per_context(entries).items()
        if fnmatch.fnmatchcase(context, pattern)
    }
    if not matching:
        return Outcome.pending(f"no commit status matching {pattern!r} on {_short(sha)} yet")
    failed = sorted(c for c, e in matching.items() if e.state in _FAILURE)
    if failed:
        entry = matching[failed[0]]
        return Outcome.failed(f"{entry.context} {entry.state}: {entry.description}".rstrip(": "))
    waiting = sorted(c for c, e in matching.items() if e.state not in _SUCCESS)
    if waiting:
        return Outcome.pending(f"{', '.join(waiting)} still {matching[waiting[0]].state}")
    return Outcome.verified(f"{', '.join(sorted(matching))} succeeded on {_short(sha)}")


# ----------------------------------------------------------------------------- http


def http_outcome(url: str, status_code: int, body: str, expect: str | None) -> Outcome:
    """Verified on 2xx whose body contains ``expect`` (already rendered); else pending."""
    if not 200 <= status_code < 300:
        return Outcome.pending(f"GET {url} answered {status_code}")
    if expect is not None and expect not in body:
        return Outcome.pending(f"GET {url} does not show {expect!r} yet")
    return Outcome.verified(f"GET {url} answered {status_code}")


# -------------------------------------------------------------------------- combine


def combine(
    outcomes: Sequence[Outcome],
    *,
    deployed_at: datetime,
    now: datetime,
    timeout: float,
    interval: float,
) -> Outcome:
    """One verdict from every check's: any failure fails; all verified verifies; else
    pending, and failed once ``timeout`` seconds have passed since ``deployed_at``."""
    failed = [o for o in outcomes if o.state == "failed"]
    if failed:
        return Outcome.failed("; ".join(o.reason for o in failed))
    pending = [o for o in outcomes if o.state == "pending"]
    if not pending:
        return Outcome.verified("; ".join(o.reason for o in outcomes) or "no checks")
    reason = "; ".join(o.reason for o in pending)
    waited = (now - deployed_at).total_seconds()
    if waited >= timeout:
        return Outcome.failed(f"timed out after {_duration(timeout)}: {reason}")
    delays = [o.retry_after for o in pending if o.retry_after is not None]
    retry = max([interval, *delays])  # a rate limit's Retry-After outranks the interval
    return Outcome.pending(reason, max(0.0, min(retry, timeout - waited)))


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"
