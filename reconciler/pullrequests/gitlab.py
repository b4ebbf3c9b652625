"""GitLab merge requests (API v4), addressed by the per-project ``iid``.

Source of the request and response shapes: GitLab's REST API reference, "Merge
requests API" and "Notes API" (docs.gitlab.com/ee/api/merge_requests.html).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from reconciler.pullrequests.client import (
    LIST_PAGE_SIZE,
    HostClient,
    PullRequest,
    PullRequestState,
    field,
    pick_newest,
)
from reconciler.pullrequests.urls import HostKind

__all__ = ["GitLabMergeRequests"]


class GitLabMergeRequests(HostClient):
    """GitLab merge requests (API v4), addressed by the per-project ``iid``."""

    kind: ClassVar[HostKind] = "gitlab"
    label: ClassVar[str] = "merge request !"
    description_field: ClassVar[str] = "description"
    update_method: ClassVar[str] = "PUT"
    existing_hint: ClassVar[re.Pattern[str] | None] = re.compile(r"!(\d+)")
    """``Another open merge request already exists for this source branch: !12``."""

    _STATES: ClassVar[Mapping[str, PullRequestState]] = {
        "opened": "open",
        "locked": "open",  # briefly, while GitLab merges it
        "merged": "merged",
        "closed": "closed",
    }

    def _configure_paths(self) -> None:
        # The project id may be the URL-encoded full path: every "/" becomes %2F.
        self.project_id = quote(self.repository, safe="")
        self._merge_requests = f"/projects/{self.project_id}/merge_requests"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token}

    def _item(self, number: int) -> str:
        return f"{self._merge_requests}/{number}"

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        return self._build(
            response,
            payload,
            number=field(payload, "iid"),
            url=field(payload, "web_url"),
            state=self._STATES.get(str(field(payload, "state"))),
            head=field(payload, "source_branch"),
            base=field(payload, "target_branch"),
            title=field(payload, "title"),
        )

    @staticmethod
    def _same_project(payload: Any) -> bool:
        """False for merge requests from forks that happen to use the same branch name."""
        source, target = field(payload, "source_project_id"), field(payload, "target_project_id")
        return source is None or target is None or source == target

    def find(self, head: str, base: str) -> PullRequest | None:
        response = self._request(
            "GET",
            self._merge_requests,
            params={
                "source_branch": head,
                "target_branch": base,
                "state": "all",
                "order_by": "created_at",
                "sort": "desc",
                "per_page": LIST_PAGE_SIZE,
            },
        )
        found = (
            self._parse(response, item)
            for item in self._json_list(response)
            if self._same_project(item)
        )
        return pick_newest(pr for pr in found if pr.head == head and pr.base == base)

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        payload = {
            "source_branch": head,
            "target_branch": base,
            "title": title,
            "description": body,
            "remove_source_branch": True,
        }
        # GitLab refuses a second open MR per source branch, whatever its target.
        return self._create(self._merge_requests, payload, head, base)

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            self._request("POST", f"{self._item(number)}/notes", json={"body": comment})
        return self._one(self._request("PUT", self._item(number), json={"state_event": "close"}))
