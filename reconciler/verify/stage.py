"""The pass's verification stage: ask about each environment's current deployment,
record what was concluded in the project's state, and hand the lifecycle its input.

For every environment with ``verify`` whose current deployment has no verdict yet,
the deploying commit is the last commit that changed the environment's files; an
agent synced to that commit or a later one on the branch runs it. A verdict
(verified or failed) is written into the deployment's entry of the state file, so it
is in Git with the pass's commit and its trailers; a pending answer changes nothing
(no commit) and only tells the lifecycle when to ask again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from reconciler import environments, records
from reconciler.gitrepo import CommitInfo
from reconciler.model import Deployment, Project
from reconciler.verdicts import Verifications, VerificationState, recorded_verifications
from reconciler.verify.model import DeploymentFacts, Outcome, VerifySpec

__all__ = ["Concluded", "verify_project"]

LATER_COMMITS = 200  # commits after the deploying one that an agent may be synced to


@dataclass(frozen=True)
class Concluded:
    """A verdict reached in this pass (for trailers, metrics and notifications)."""

    project: str
    environment: str
    release: str
    result: str  # "verified" or "failed"
    at: datetime
    reason: str


class _Tree(Protocol):
    """What the stage needs of the work tree (gitrepo.WorkTree has it)."""

    @property
    def root(self) -> Path: ...

    def log(
        self, paths: Sequence[str] = (), max_count: int | None = None, grep: str | None = None
    ) -> list[CommitInfo]: ...


Verify = Callable[[VerifySpec, DeploymentFacts, datetime], Outcome]


def _facts(tree: _Tree, project: Project, deployment: Deployment) -> DeploymentFacts | None:
    root = tree.root
    release = records.read_release(root, project.name, deployment.release)
    if release is None:
        return None
    artifacts = environments.artifacts_for(project, release)
    files = [t.file for t in environments.targets_for(root, project, deployment.environment,
                                                       artifacts)]  # fmt: skip
    deploying = tree.log(paths=files, max_count=1)
    if not deploying:
        return None
    sha = deploying[0].sha
    later: list[str] = []
    for commit in tree.log(max_count=LATER_COMMITS):
        if commit.sha == sha:
            break
        later.append(commit.sha)
    return DeploymentFacts(
        project=project.name,
        environment=deployment.environment,
        release=deployment.release,
        commit=sha,
        deployed_at=deployment.at,
        packages={p.name: (p.version, p.digest) for p in release.packages},
        later_commits=tuple(later),
    )


def verify_project(
    project: Project,
    history: dict[str, list[Deployment]],
    *,
    tree: _Tree,
    verify: Verify,
    now: datetime,
) -> tuple[Verifications, list[Concluded]]:
    """Ask about every environment's unverified current deployment.

    Verdicts are written into ``history`` (the state's own lists: the caller saves
    the state file when the list of verdicts is not empty).
    """
    known = recorded_verifications(project, history)
    states = dict(known.states)
    concluded: list[Concluded] = []
    for name, env in sorted(project.environments.items()):
        entries = history.get(name)
        if env.verify is None or not entries or entries[-1].verification:
            continue
        current = entries[-1]
        facts = _facts(tree, project, current)
        if facts is None:
            outcome = Outcome.pending("the deploying commit was not found")
        else:
            outcome = verify(env.verify, facts, now)
        if outcome.state == "pending":
            retry = outcome.retry_after if outcome.retry_after is not None else env.verify.interval
            states[(name, current.release)] = VerificationState(
                "pending", reason=outcome.reason, retry_at=now + timedelta(seconds=retry)
            )
            continue
        entries[-1] = replace(
            current, verification=outcome.state, verified_at=now, verification_reason=outcome.reason
        )
        states[(name, current.release)] = VerificationState(outcome.state, now, outcome.reason)
        concluded.append(
            Concluded(project.name, name, current.release, outcome.state, now, outcome.reason)
        )
    return Verifications(known.on_failure, states), concluded
