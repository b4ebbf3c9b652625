"""What verification concluded about deployments, as the lifecycle's input (pure).

``Verifications`` tells :func:`reconciler.lifecycle.decide` which environments
verify their deployments (and hold or roll back on failure) and the verdict on
each deployment seen so far; ``recorded_verifications`` reads them from the
deployment history the state file holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from reconciler.model import Deployment, Project

__all__ = [
    "NO_VERIFICATION",
    "VerificationState",
    "VerificationStatus",
    "Verifications",
    "recorded_verifications",
]


VerificationStatus = Literal["pending", "verified", "failed"]


@dataclass(frozen=True)
class VerificationState:
    """What verification concluded about one release in one environment.

    ``at``: when it was verified or failed (None while pending); ``retry_at``: when a
    pending check is next asked; ``reason``: the checks' own words.
    """

    status: VerificationStatus
    at: datetime | None = None
    reason: str = ""
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Verifications:
    """Input of :func:`reconciler.lifecycle.decide` for verified deployments.

    ``on_failure[env]`` for every environment with ``verify`` ("hold" or
    "rollback"); ``states[(env, release)]`` for deployments verification has seen.
    """

    on_failure: Mapping[str, str] = field(default_factory=dict)
    states: Mapping[tuple[str, str], VerificationState] = field(default_factory=dict)

    def verifies(self, environment: str) -> bool:
        return environment in self.on_failure

    def state(self, environment: str, release: str) -> VerificationState:
        return self.states.get((environment, release), VerificationState("pending"))

    def counted_at(self, environment: str, release: str, deployed: datetime) -> datetime | None:
        """When a deployment counts toward phase completion; None: not (yet)."""
        if not self.verifies(environment):
            return deployed
        state = self.state(environment, release)
        return state.at if state.status == "verified" else None


NO_VERIFICATION = Verifications()


def recorded_verifications(
    project: Project, history: Mapping[str, Sequence[Deployment]]
) -> Verifications:
    """The verdicts the state file holds for ``project``'s environments with verify:
    what ``status`` and ``promote`` decide with. A release without a verdict in an
    environment is pending there; one deployed again (a rollback) keeps its last
    verdict until the new deployment gets its own."""
    on_failure = {
        name: env.verify.on_failure for name, env in project.environments.items() if env.verify
    }
    states: dict[tuple[str, str], VerificationState] = {}
    for name in on_failure:
        for deployment in history.get(name, ()):  # oldest first: the latest verdict wins
            key = (name, deployment.release)
            if deployment.verification in ("verified", "failed"):
                status: VerificationStatus = (
                    "verified" if deployment.verification == "verified" else "failed"
                )
                states[key] = VerificationState(
                    status, deployment.verified_at, deployment.verification_reason
                )
    return Verifications(on_failure, states)
