"""Runs an environment's checks for one deployment: :class:`Verifier`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx

from reconciler.verify.judge import (
    argocd_outcome,
    combine,
    commit_status_outcome,
    flux_outcome,
    http_outcome,
)
from reconciler.verify.model import (
    ArgoCDCheck,
    Check,
    CommitStatusCheck,
    DeploymentFacts,
    FluxCheck,
    HttpCheck,
    Outcome,
    VerifySpec,
)
from reconciler.verify.probes import (
    ARGOCD_SERVER_ENV,
    ArgoCDServer,
    GitHostStatuses,
    KubernetesObjects,
    ObjectSource,
    ProbeUnavailable,
    http_get,
)
from reconciler.verify.template import TemplateError, render

__all__ = ["Verifier"]


@dataclass
class Verifier:
    """Runs checks against the services they name. Every source is injectable.

    ``kubernetes`` reads Argo CD Applications and Flux objects (default: lightkube with
    ``KUBECONFIG`` or the in-cluster service account); ``argocd_server`` is the Argo CD
    API server for checks with ``via: server`` (None: they stay pending); ``statuses``
    is the Git host of the config repository (None: commitStatus checks stay pending).
    """

    http: httpx.Client
    kubernetes: ObjectSource | None = None
    statuses: GitHostStatuses | None = None
    argocd_server: ObjectSource | None = None

    @classmethod
    def from_environment(
        cls, http: httpx.Client, environ: Mapping[str, str], statuses: GitHostStatuses | None
    ) -> Verifier:
        """The sidecar's verifier: the Argo CD API server from ``RECONCILER_ARGOCD_SERVER``."""
        server = environ.get(ARGOCD_SERVER_ENV, "").strip()
        argocd = ArgoCDServer(server, http, environ) if server else None
        return cls(http=http, statuses=statuses, argocd_server=argocd)

    def __post_init__(self) -> None:
        if self.kubernetes is None:
            self.kubernetes = KubernetesObjects()

    def verify(self, spec: VerifySpec, deployment: DeploymentFacts, now: datetime) -> Outcome:
        """One verdict over all of ``spec``'s checks (see :func:`judge.combine`)."""
        outcomes = [self.check(check, deployment) for check in spec.checks]
        return combine(
            outcomes,
            deployed_at=deployment.deployed_at,
            now=now,
            timeout=spec.timeout,
            interval=spec.interval,
        )

    def check(self, check: Check, deployment: DeploymentFacts) -> Outcome:
        """One check's outcome; an unreachable service gives pending with a retry delay."""
        try:
            return self._check(check, deployment)
        except ProbeUnavailable as outage:
            return Outcome.pending(f"unreachable: {outage}", outage.retry_after)

    def _check(self, check: Check, deployment: DeploymentFacts) -> Outcome:
        sha = deployment.commit
        synced = (sha, *deployment.later_commits)
        if isinstance(check, ArgoCDCheck):
            source = self.argocd_server if check.via == "server" else self.kubernetes
            if source is None:
                return Outcome.pending(f"{ARGOCD_SERVER_ENV} is not set")
            application = source.get("Application", check.namespace, check.name)
            if application is None:
                return Outcome.pending(f"Application {check.namespace}/{check.name} not found")
            return argocd_outcome(application, synced)
        if isinstance(check, FluxCheck):
            assert self.kubernetes is not None
            document = self.kubernetes.get(check.resource, check.namespace, check.name)
            if document is None:
                return Outcome.pending(f"{check.resource} {check.namespace}/{check.name} not found")
            return flux_outcome(document, synced)
        if isinstance(check, CommitStatusCheck):
            if self.statuses is None:
                return Outcome.pending("no Git host API configured for commit statuses")
            return commit_status_outcome(self.statuses.statuses(sha), check.context, sha)
        return self._http(check, deployment)

    def _http(self, check: HttpCheck, deployment: DeploymentFacts) -> Outcome:
        try:
            expected = (
                render(check.expect, deployment.release, deployment.packages)
                if check.expect is not None
                else None
            )
        except TemplateError as error:
            return Outcome.failed(f"expect: {error}")
        status, body = http_get(self.http, check.url)
        return http_outcome(check.url, status, body, expected)

    def close(self) -> None:
        if isinstance(self.kubernetes, KubernetesObjects):
            self.kubernetes.close()
