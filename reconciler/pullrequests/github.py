"""GitHub.com and GitHub Enterprise Server pull requests (REST API version 2022-11-28).

Source of the request and response shapes: GitHub's REST reference, "Pulls" and
"Issue comments" (docs.github.com/en/rest/pulls/pulls).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from reconciler.pullrequests.client import (
    LIST_PAGE_SIZE,
    HostClient,
    PullRequest,
    PullRequestError,
    PullRequestState,
    field,
)
from reconciler.pullrequests.urls import HostKind

__all__ = ["GitHubPullRequests"]


class GitHubPullRequests(HostClient):
    """GitHub.com and GitHub Enterprise Server (REST API version 2022-11-28)."""

    kind: ClassVar[HostKind] = "github"
    base_headers: ClassVar[Mapping[str, str]] = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    conflict_status: ClassVar[int] = 422

    def _configure_paths(self) -> None:
        parts = self.repository.split("/")
        if len(parts) != 2:
            raise PullRequestError(self.host, f"{self.repository!r} is not owner/repository")
        self.owner, self.name = parts
        self._pulls = f"/repos/{quote(self.owner, safe='')}/{quote(self.name, safe='')}/pulls"
        self._issues = f"/repos/{quote(self.owner, safe='')}/{quote(self.name, safe='')}/issues"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _item(self, number: int) -> str:
        return f"{self._pulls}/{number}"

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        state: PullRequestState | None = None
        if field(payload, "merged_at") or field(payload, "merged") is True:
            state = "merged"
        elif field(payload, "state") in ("open", "closed"):
            state = field(payload, "state")
        return self._build(
            response,
            payload,
            number=field(payload, "number"),
            url=field(payload, "html_url"),
            state=state,
            head=field(payload, "head", "ref"),
            base=field(payload, "base", "ref"),
            title=field(payload, "title"),
        )

    def find(self, head: str, base: str) -> PullRequest | None:
        response = self._request(
            "GET",
            self._pulls,
            params={
                "state": "all",
                "head": f"{self.owner}:{head}",  # without the owner GitHub ignores the filter
                "base": base,
                "sort": "created",
                "direction": "desc",
                "per_page": LIST_PAGE_SIZE,
            },
        )
        return self._match(response, self._json_list(response), head, base)

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        payload = {"title": title, "head": head, "base": base, "body": body}
        return self._create(self._pulls, payload, head, base)

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            # Pull requests are issues for comments: the review-comment API needs a diff line.
            self._request("POST", f"{self._issues}/{number}/comments", json={"body": comment})
        return self._one(self._request("PATCH", self._item(number), json={"state": "closed"}))
