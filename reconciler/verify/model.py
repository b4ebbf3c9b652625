"""What a verification is about, how it is configured, and what it concluded.

A *deployment* is one release arriving in one environment through one commit the
reconciler pushed. Its verification asks the GitOps agent (or a probe) whether that
commit now runs; the answer is an :class:`Outcome`, plain data:

* ``verified`` - every check passed;
* ``pending`` - not yet, or the agent could not be asked (an outage is never a
  failure); ``retry_after`` says when to ask again;
* ``failed`` - a check saw the commit fail, or ``timeout`` passed while pending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "ArgoCDCheck",
    "Check",
    "CommitStatusCheck",
    "DeploymentFacts",
    "FluxCheck",
    "HttpCheck",
    "OnFailure",
    "Outcome",
    "OutcomeState",
    "VerifySpec",
]

OutcomeState = Literal["verified", "pending", "failed"]
OnFailure = Literal["hold", "rollback"]

DEFAULT_TIMEOUT = 15 * 60.0  # seconds
DEFAULT_INTERVAL = 30.0  # seconds between polls of a pending check


@dataclass(frozen=True)
class ArgoCDCheck:
    """An Argo CD Application, read from the Kubernetes API or (``via="server"``) from
    the Argo CD API server. The server's URL and token are the operator's settings
    (``RECONCILER_ARGOCD_SERVER``, ``RECONCILER_ARGOCD_TOKEN``), never the config
    repository's: a config author must not be able to send the token elsewhere."""

    name: str
    namespace: str = "argocd"
    via: Literal["kubernetes", "server"] = "kubernetes"
    kind: Literal["argocd"] = "argocd"


@dataclass(frozen=True)
class FluxCheck:
    """A Flux Kustomization or HelmRelease, read from the Kubernetes API."""

    name: str
    namespace: str = "flux-system"
    resource: Literal["Kustomization", "HelmRelease"] = "Kustomization"
    kind: Literal["flux"] = "flux"


@dataclass(frozen=True)
class CommitStatusCheck:
    """Commit statuses (and GitHub check runs) on the deploying commit whose context
    (name) matches ``context``, a shell-style pattern such as ``argocd/*``."""

    context: str
    kind: Literal["commitStatus"] = "commitStatus"


@dataclass(frozen=True)
class HttpCheck:
    """GET ``url``: verified on a 2xx answer whose body contains ``expect`` (rendered
    with ``{version}``, ``{packages.<name>.version}``, ``{packages.<name>.digest}``)."""

    url: str
    expect: str | None = None
    kind: Literal["http"] = "http"


Check = ArgoCDCheck | FluxCheck | CommitStatusCheck | HttpCheck


@dataclass(frozen=True)
class VerifySpec:
    """An environment's ``verify:`` block: all checks must pass within ``timeout``."""

    checks: tuple[Check, ...]
    timeout: float = DEFAULT_TIMEOUT
    interval: float = DEFAULT_INTERVAL
    on_failure: OnFailure = "hold"


@dataclass(frozen=True)
class DeploymentFacts:
    """The deployment being verified."""

    project: str
    environment: str
    release: str
    commit: str  # the full SHA of the commit that deployed it
    deployed_at: datetime
    packages: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """package name -> (version, digest or None)"""
    later_commits: tuple[str, ...] = ()
    """commits on the branch after ``commit``: an agent synced to one of them runs it too"""


@dataclass(frozen=True)
class Outcome:
    """What one check, or a whole verification, concluded (module docstring)."""

    state: OutcomeState
    reason: str
    retry_after: float | None = None  # pending: seconds until it is worth asking again

    @classmethod
    def verified(cls, reason: str) -> Outcome:
        return cls("verified", reason)

    @classmethod
    def pending(cls, reason: str, retry_after: float | None = None) -> Outcome:
        return cls("pending", reason, retry_after)

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls("failed", reason)
