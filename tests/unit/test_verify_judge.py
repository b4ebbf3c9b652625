"""reconciler.verify.judge and .template: agents' documents in, outcomes out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.verify.judge import (
    StatusEntry,
    argocd_outcome,
    combine,
    commit_status_outcome,
    flux_outcome,
    http_outcome,
    names_commit,
)
from reconciler.verify.model import Outcome
from reconciler.verify.template import TemplateError, render, unknown_variables

SHA = "3f4e5d6c7b8a99887766554433221100ffeeddcc"
OLD = "1111111111111111111111111111111111111111"


def application(
    revision: str = SHA,
    *,
    sync: str = "Synced",
    health: str = "Healthy",
    phase: str = "Succeeded",
    operation_revision: str | None = None,
    message: str = "",
) -> dict[str, Any]:
    """An Application as argo-cd's types.go shapes its status."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop-dev", "namespace": "argocd"},
        "status": {
            "sync": {"status": sync, "revision": revision},
            "health": {"status": health, "message": message},
            "operationState": {
                "phase": phase,
                "message": "one or more objects failed to apply" if phase == "Failed" else "",
                "operation": {"sync": {"revision": operation_revision or revision}},
                "syncResult": {"revision": operation_revision or revision},
            },
        },
    }


def kustomization(
    applied: str | None,
    *,
    ready: str = "True",
    reason: str = "ReconciliationSucceeded",
    attempted: str | None = None,
    generation: int = 1,
    observed: int = 1,
    message: str = "",
) -> dict[str, Any]:
    """A Flux Kustomization (kustomize.toolkit.fluxcd.io/v1) status."""
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "shop-dev", "namespace": "flux-system", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "lastAppliedRevision": applied,
            "lastAttemptedRevision": attempted or applied,
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    }


# ------------------------------------------------------------------------ revisions


@pytest.mark.parametrize(
    "revision",
    [
        SHA,
        f"main@sha1:{SHA}",
        f"main/{SHA}",
        f"sha1:{SHA}",
        f"refs/heads/main@sha1:{SHA}",
        f"0.1.0+{SHA[:12]}",
        SHA[:7],
    ],
)
def test_revision_forms_name_the_commit(revision: str) -> None:
    assert names_commit(revision, SHA)


@pytest.mark.parametrize("revision", [OLD, f"main@sha1:{OLD}", f"main/{OLD}", "", None, "3f4e5"])
def test_other_revisions_do_not(revision: str | None) -> None:
    assert not names_commit(revision, SHA)


# -------------------------------------------------------------------------- Argo CD


def test_argocd_synced_and_healthy_at_the_commit_is_verified() -> None:
    assert argocd_outcome(application(), SHA).state == "verified"


def test_argocd_healthy_at_an_older_commit_is_pending() -> None:
    outcome = argocd_outcome(application(OLD), SHA)
    assert outcome.state == "pending"
    assert "not yet at" in outcome.reason


def test_argocd_multi_source_revisions_count() -> None:
    app = application(OLD)
    app["status"]["sync"] = {"status": "Synced", "revisions": ["0.3.1", SHA]}
    assert argocd_outcome(app, SHA).state == "verified"


@pytest.mark.parametrize("health", ["Degraded", "Missing"])
def test_argocd_degraded_or_missing_at_the_commit_fails(health: str) -> None:
    outcome = argocd_outcome(application(health=health, message="Back-off restarting"), SHA)
    assert outcome == Outcome.failed(f"{health}: Back-off restarting")


def test_argocd_degraded_at_an_older_commit_is_not_this_commits_failure() -> None:
    assert argocd_outcome(application(OLD, health="Degraded"), SHA).state == "pending"


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_argocd_sync_operation_failed_at_the_commit_fails(phase: str) -> None:
    app = application(OLD, sync="OutOfSync", phase=phase, operation_revision=SHA)
    outcome = argocd_outcome(app, SHA)
    assert outcome.state == "failed"
    assert outcome.reason.startswith(f"sync {phase}")


def test_argocd_progressing_or_out_of_sync_is_pending() -> None:
    assert argocd_outcome(application(health="Progressing"), SHA).state == "pending"
    assert argocd_outcome(application(sync="OutOfSync"), SHA).state == "pending"
    assert argocd_outcome({"metadata": {"name": "x"}}, SHA).state == "pending"


# ----------------------------------------------------------------------------- Flux


@pytest.mark.parametrize("form", [f"main@sha1:{SHA}", f"main/{SHA}"])
def test_flux_ready_at_the_commit_is_verified(form: str) -> None:
    assert flux_outcome(kustomization(form), SHA).state == "verified"


def test_flux_ready_at_an_older_revision_is_pending() -> None:
    assert flux_outcome(kustomization(f"main@sha1:{OLD}"), SHA).state == "pending"


@pytest.mark.parametrize(
    "reason", ["HealthCheckFailed", "ReconciliationFailed", "InstallFailed", "UpgradeFailed"]
)
def test_flux_not_ready_at_the_commit_fails(reason: str) -> None:
    document = kustomization(
        f"main@sha1:{OLD}",
        ready="False",
        reason=reason,
        attempted=f"main@sha1:{SHA}",
        message="health check failed after 30s",
    )
    assert flux_outcome(document, SHA) == Outcome.failed(f"{reason}: health check failed after 30s")


def test_flux_still_progressing_or_an_old_generation_is_pending() -> None:
    progressing = kustomization(f"main@sha1:{SHA}", ready="False", reason="Progressing")
    assert flux_outcome(progressing, SHA).state == "pending"
    stale = kustomization(f"main@sha1:{SHA}", generation=3, observed=2)
    assert flux_outcome(stale, SHA).state == "pending"


def test_flux_not_ready_at_an_older_revision_is_not_this_commits_failure() -> None:
    document = kustomization(f"main@sha1:{OLD}", ready="False", reason="HealthCheckFailed")
    assert flux_outcome(document, SHA).state == "pending"


# ------------------------------------------------------------------- commit statuses


def test_commit_statuses_all_matching_success_verify() -> None:
    entries = [
        StatusEntry("argocd/shop-dev", "success", created="2"),
        StatusEntry("argocd/shop-dev", "pending", created="1"),
        StatusEntry("ci/lint", "failure", created="1"),
    ]
    assert commit_status_outcome(entries, "argocd/*", SHA).state == "verified"


def test_commit_statuses_a_matching_failure_fails() -> None:
    entries = [
        StatusEntry("kustomization/shop-dev", "failure", "HealthCheckFailed", "2"),
        StatusEntry("kustomization/shop-dev", "pending", created="1"),
    ]
    outcome = commit_status_outcome(entries, "kustomization/*", SHA)
    assert outcome == Outcome.failed("kustomization/shop-dev failure: HealthCheckFailed")


def test_commit_statuses_none_or_running_is_pending() -> None:
    assert commit_status_outcome([], "argocd/*", SHA).state == "pending"
    running = [StatusEntry("argocd/a", "running", created="1")]
    assert commit_status_outcome(running, "argocd/*", SHA).state == "pending"


# ----------------------------------------------------------------------------- http


def test_http_outcomes() -> None:
    assert http_outcome("u", 200, "v1.0.1", "1.0.1").state == "verified"
    assert http_outcome("u", 204, "", None).state == "verified"
    assert http_outcome("u", 200, "v1.0.0", "1.0.1").state == "pending"
    assert http_outcome("u", 404, "1.0.1", "1.0.1").state == "pending"


# -------------------------------------------------------------------------- combine

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_combine_needs_every_check() -> None:
    verified, pending = Outcome.verified("a"), Outcome.pending("b")
    assert combine([verified], deployed_at=T0, now=T0, timeout=60, interval=10).state == "verified"
    both = combine([verified, pending], deployed_at=T0, now=T0, timeout=60, interval=10)
    assert both == Outcome.pending("b", 10)
    failed = combine(
        [pending, Outcome.failed("c")], deployed_at=T0, now=T0, timeout=60, interval=10
    )
    assert failed == Outcome.failed("c")


def test_combine_fails_a_pending_deployment_once_the_timeout_passes() -> None:
    pending = [Outcome.pending("unreachable: Argo CD answered 503", 30)]
    before = combine(
        pending, deployed_at=T0, now=T0 + timedelta(seconds=899), timeout=900, interval=30
    )
    assert before.state == "pending"
    assert before.retry_after == 1  # never sleeps past the timeout
    after = combine(
        pending, deployed_at=T0, now=T0 + timedelta(seconds=900), timeout=900, interval=30
    )
    assert after == Outcome.failed("timed out after 15m: unreachable: Argo CD answered 503")


def test_combine_honours_a_longer_retry_after() -> None:
    outcome = combine(
        [Outcome.pending("rate limited", 120)], deployed_at=T0, now=T0, timeout=900, interval=30
    )
    assert outcome.retry_after == 120


# ------------------------------------------------------------------------- template

PACKAGES = {"api": ("2.3.4", "sha256:" + "ab" * 32)}


def test_template_renders_the_documented_variables() -> None:
    rendered = render(
        "{version} {packages.api.version} {packages.api.digest} {{x}}", "1.0.1", PACKAGES
    )
    assert rendered == f"1.0.1 2.3.4 sha256:{'ab' * 32} {{x}}"


@pytest.mark.parametrize(
    "template",
    ["{version.__class__}", "{version:>99999999}", "{packages.web.version}", "{0}", "{}"],
)
def test_template_refuses_everything_else(template: str) -> None:
    assert unknown_variables(template, ["api"])
    with pytest.raises(TemplateError):
        render(template, "1.0.1", PACKAGES)


def test_template_refuses_lone_braces_and_huge_templates() -> None:
    with pytest.raises(TemplateError):
        render("{version", "1", {})
    with pytest.raises(TemplateError):
        render("x" * 5000, "1", {})


def test_an_agent_at_a_later_commit_runs_the_deployment_too() -> None:
    later = "2" * 40
    app = application(later)
    assert argocd_outcome(app, SHA).state == "pending"
    assert argocd_outcome(app, (SHA, later)).state == "verified"
    assert flux_outcome(kustomization(f"main@sha1:{later}"), (SHA, later)).state == "verified"
