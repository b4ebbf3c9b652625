"""GitHub.com and GitHub Enterprise Server pull requests (REST API version 2022-11-28).

Source of the request and response shapes: GitHub's REST reference, "Pulls" and
"Issue comments" (docs.github.com/en/rest/pulls/pulls).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from reconciler.pullrequests.client import (
    LIST_PAGE_SIZE,
    PullRequest,
    RepoPullsClient,
)
from reconciler.pullrequests.urls import HostKind

__all__ = ["GitHubPullRequests"]


class GitHubPullRequests(RepoPullsClient):
    """GitHub.com and GitHub Enterprise Server (REST API version 2022-11-28)."""

    kind: ClassVar[HostKind] = "github"
    base_headers: ClassVar[Mapping[str, str]] = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    conflict_status: ClassVar[int] = 422
    merged_at_counts: ClassVar[bool] = True

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

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
