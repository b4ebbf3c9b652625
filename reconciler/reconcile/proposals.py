"""Pull-request mode: each promotion of an environment with ``promotion: pull-request``
is proposed as a branch and a pull request instead of being committed.

The merge is the approval (drift.py adopts the merged release). ``supersedes`` is the
rule for an open proposal when a newer release is proposed, as a pure function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from reconciler import environments, records
from reconciler.model import Config
from reconciler.pullrequests import PullRequestError, PullRequestHost
from reconciler.reconcile.report import PassResult
from reconciler.reconcile.workstate import Workspace

__all__ = ["propose", "supersedes"]


def supersedes(known: Mapping[str, Any], version: str) -> bool:
    """Whether proposing ``version`` closes the environment's ``known`` proposal: it is
    still open and for another release. A proposal closed or merged stays as it is."""
    return known.get("release") != version and known.get("state") == "open"


def propose(
    ws: Workspace,
    config: Config,
    result: PassResult,
    now: datetime,
    host_for: Callable[[], PullRequestHost],
    *,
    requested_by: str | None = None,
) -> None:
    """Pull-request mode: propose each promotion as a branch + pull request.

    The merge is the approval: the next pass sees the overlay match the release
    and records the deployment. A newer release supersedes (closes) an open
    proposal for the same environment; a proposal closed without merging is not
    reopened for that release. ``requested_by``: who asked for it from the dashboard
    (said in the body).
    """
    if not result.proposals:
        return
    base = ws.tree.branch
    open_prs: dict[str, Any] = ws.local.data.setdefault("pullRequests", {})
    try:
        host = host_for()
    except PullRequestError as exc:
        result.ok = False
        result.git_error = f"pull-request mode: {exc}"
        return
    made_branch = False
    try:
        for project_name, env_name, version in result.proposals:
            key = f"{project_name}/{env_name}"
            branch = f"promote/{project_name}/{env_name}/{version}"
            known = open_prs.get(key)
            if known and supersedes(known, version):
                host.close(known["number"], f"Superseded by release {version}.")
                result.pull_requests.append(
                    {
                        "environment": key,
                        "number": known["number"],
                        "action": "closed (superseded)",
                    }
                )
                known["state"] = "closed"
            existing = host.find(branch, base)
            if existing is not None and existing.state != "open":
                if existing.state == "closed":
                    result.waiting.append(
                        (
                            project_name,
                            env_name,
                            f"{version}: pull request #{existing.number} "
                            "was closed without merging",
                        )
                    )
                continue
            if existing is None:
                project = config.projects[project_name]
                release = records.read_release(ws.root, project_name, version)
                if release is None:
                    continue
                environments.render(ws.root, project, env_name, release)
                message = (
                    f"Promote {project_name} {version} to {env_name}\n\n"
                    f"Release: {project_name} {version}\nEnvironment: {env_name}\n"
                )
                if ws.tree.commit(message) is not None:
                    ws.tree.push_branch(branch)
                    made_branch = True
                ws.tree.sync()
                body = "\n".join(
                    [
                        f"Promotes **{project_name} {version}** to **{env_name}**.",
                        "",
                        "Merging this pull request is the approval; the reconciler records "
                        "the deployment on its next pass.",
                        "",
                    ]
                    + (
                        [f"Proposed from the dashboard by {requested_by}.", ""]
                        if requested_by
                        else []
                    )
                    + [f"- {p.name}: {p.version}" for p in release.packages]
                )
                existing = host.open(
                    branch, base, f"Promote {project_name} {version} to {env_name}", body
                )
                result.pull_requests.append(
                    {
                        "environment": key,
                        "number": existing.number,
                        "url": existing.url,
                        "action": "opened",
                    }
                )
            open_prs[key] = {
                "release": version,
                "number": existing.number,
                "state": existing.state,
                "at": now.isoformat(),
            }
            result.waiting.append(
                (
                    project_name,
                    env_name,
                    f"{version}: waiting for pull request #{existing.number}",
                )
            )
    except PullRequestError as exc:
        result.ok = False
        result.git_error = f"pull-request mode: {exc}"
    finally:
        if made_branch:
            ws.tree.sync()
