"""Azure DevOps Repos pull requests (REST API 7.1).

Source of the request and response shapes: Microsoft's "Azure DevOps Services REST
API 7.1", Git "Pull Requests" and "Pull Request Threads"
(learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests):
``GET .../_apis/git/repositories/{repo}/pullrequests`` with
``searchCriteria.sourceRefName``, ``searchCriteria.targetRefName`` and
``searchCriteria.status=all`` (a ``{"value", "count"}`` list); ``POST`` to create
(409 ``TF401179`` when an active one exists); ``PATCH .../pullrequests/{id}`` to edit
and, with ``{"status": "abandoned"}``, to close unmerged; a comment is a new thread.
Statuses are ``active``, ``completed`` (merged) and ``abandoned``. Every call
carries ``api-version=7.1``.

Clone URLs are ``https://dev.azure.com/<org>/<project>/_git/<repo>`` (the older
``https://<org>.visualstudio.com/<project>/_git/<repo>`` too) and
``git@ssh.dev.azure.com:v3/<org>/<project>/<repo>``. Authentication: a personal
access token, sent as Basic with an empty user name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from reconciler.pullrequests.client import (
    HostClient,
    PullRequest,
    PullRequestError,
    PullRequestState,
    basic_auth,
    field,
)
from reconciler.pullrequests.urls import HostKind

__all__ = ["AzureDevOpsPullRequests"]

API_VERSION = "7.1"
_BRANCH_REF = "refs/heads/"


class AzureDevOpsPullRequests(HostClient):
    """Azure DevOps Services (and Server 2022+) Repos pull requests, REST API 7.1."""

    kind: ClassVar[HostKind] = "azure-devops"
    description_field: ClassVar[str] = "description"
    conflict_text: ClassVar[str] = "tf401179"
    default_params: ClassVar[Mapping[str, str]] = {"api-version": API_VERSION}
    _STATES: ClassVar[Mapping[str, PullRequestState]] = {
        "active": "open",
        "completed": "merged",
        "abandoned": "closed",
    }

    def _configure_paths(self) -> None:
        parts = [p for p in self.repository.split("/") if p]
        if parts[:1] == ["v3"]:  # ssh: v3/<org>/<project>/<repo>
            parts = [*parts[1:3], "_git", *parts[3:]]
        if urlsplit(self.api_url).hostname != "dev.azure.com":
            # <org>.visualstudio.com or a server: the organisation is in the host name.
            parts = ["", *parts]
        if len(parts) != 4 or parts[2] != "_git":
            raise PullRequestError(
                self.host, f"{self.repository!r} is not <organisation>/<project>/_git/<repository>"
            )
        org, project, _, repo = (quote(p, safe="") for p in parts)
        prefix = f"/{org}/{project}" if org else f"/{project}"
        self._pulls = f"{prefix}/_apis/git/repositories/{repo}/pullrequests"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return basic_auth("", token)

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        number = field(payload, "pullRequestId")
        web = field(payload, "repository", "webUrl")
        return self._build(
            response,
            payload,
            number=number,
            url=f"{web}/pullrequest/{number}" if isinstance(web, str) else None,
            state=self._STATES.get(str(field(payload, "status"))),
            head=_branch(field(payload, "sourceRefName")),
            base=_branch(field(payload, "targetRefName")),
            title=field(payload, "title"),
        )

    def find(self, head: str, base: str) -> PullRequest | None:
        response = self._request(
            "GET",
            self._pulls,
            params={
                "searchCriteria.sourceRefName": _BRANCH_REF + head,
                "searchCriteria.targetRefName": _BRANCH_REF + base,
                "searchCriteria.status": "all",
            },
        )
        return self._match(response, field(self._json(response), "value"), head, base)

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        payload = {
            "sourceRefName": _BRANCH_REF + head,
            "targetRefName": _BRANCH_REF + base,
            "title": title,
            "description": body,
        }
        return self._create(self._pulls, payload, head, base)

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            thread = {
                "comments": [{"parentCommentId": 0, "content": comment, "commentType": 1}],
                "status": 1,  # active
            }
            self._request("POST", f"{self._item(number)}/threads", json=thread)
        return self._one(self._request("PATCH", self._item(number), json={"status": "abandoned"}))


def _branch(ref: Any) -> Any:
    return ref.removeprefix(_BRANCH_REF) if isinstance(ref, str) else ref
