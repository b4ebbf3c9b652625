"""Bitbucket Cloud pull requests (REST API 2.0).

Source of the request and response shapes: Atlassian's "Bitbucket Cloud REST API",
group "Pullrequests" (developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests):
list ``GET /repositories/{workspace}/{repo_slug}/pullrequests`` (``state`` repeated,
``q`` filter, a ``{"values", "next"}`` page), create ``POST`` on the same path,
``PUT .../pullrequests/{id}`` to edit, ``POST .../{id}/decline`` to close unmerged,
``POST .../{id}/comments`` with ``{"content": {"raw"}}``. States are ``OPEN``,
``MERGED``, ``DECLINED`` and ``SUPERSEDED``.

Authentication: a repository, project or workspace access token (``Bearer``), or
an app password with the account's user name in ``RECONCILER_GIT_USERNAME``
(Basic), the same pair HTTPS Git uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from reconciler.pullrequests.client import (
    HostClient,
    PullRequest,
    PullRequestError,
    PullRequestState,
    field,
)
from reconciler.pullrequests.urls import HostKind

__all__ = ["BitbucketCloudPullRequests"]

PAGE_LENGTH = 50
"""Bitbucket Cloud's largest ``pagelen`` for pull requests."""


class BitbucketCloudPullRequests(HostClient):
    """Bitbucket Cloud (bitbucket.org) pull requests, REST API 2.0."""

    kind: ClassVar[HostKind] = "bitbucket"
    description_field: ClassVar[str] = "description"
    update_method: ClassVar[str] = "PUT"
    conflict_status: ClassVar[int] = 400
    conflict_text: ClassVar[str] = "already"
    _STATES: ClassVar[Mapping[str, PullRequestState]] = {
        "OPEN": "open",
        "MERGED": "merged",
        "DECLINED": "closed",
        "SUPERSEDED": "closed",
    }

    def _configure_paths(self) -> None:
        parts = self.repository.split("/")
        if len(parts) != 2:
            raise PullRequestError(self.host, f"{self.repository!r} is not workspace/repository")
        workspace, slug = (quote(p, safe="") for p in parts)
        self._pulls = f"/repositories/{workspace}/{slug}/pullrequests"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return self._bearer_or_basic(token)

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        return self._build(
            response,
            payload,
            number=field(payload, "id"),
            url=field(payload, "links", "html", "href"),
            state=self._STATES.get(str(field(payload, "state"))),
            head=field(payload, "source", "branch", "name"),
            base=field(payload, "destination", "branch", "name"),
            title=field(payload, "title"),
        )

    def find(self, head: str, base: str) -> PullRequest | None:
        query = (
            f"source.branch.name = {json.dumps(head)} "
            f"AND destination.branch.name = {json.dumps(base)}"
        )
        response = self._request(
            "GET",
            self._pulls,
            params=[  # state repeats
                *(("state", state) for state in self._STATES),
                ("q", query),
                ("sort", "-created_on"),
                ("pagelen", PAGE_LENGTH),
            ],
        )
        return self._match(response, field(self._json(response), "values"), head, base)

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        payload = {
            "title": title,
            "description": body,
            "source": {"branch": {"name": head}},
            "destination": {"branch": {"name": base}},
            "close_source_branch": True,
        }
        return self._create(self._pulls, payload, head, base)

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            self._request(
                "POST", f"{self._item(number)}/comments", json={"content": {"raw": comment}}
            )
        return self._one(self._request("POST", f"{self._item(number)}/decline"))
