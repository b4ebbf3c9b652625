"""Bitbucket Data Center (formerly Server) pull requests (REST API 1.0).

Source of the request and response shapes: Atlassian's "Bitbucket Data Center REST
API", "Pull requests" (developer.atlassian.com/server/bitbucket/rest/, resource
``/rest/api/1.0/projects/{projectKey}/repos/{repositorySlug}/pull-requests``):
list with ``state=ALL``, ``at=refs/heads/<branch>`` and ``direction=OUTGOING``
(a ``{"values", "isLastPage", "nextPageStart"}`` page); create with ``fromRef`` /
``toRef`` ids; edit with ``PUT`` carrying the request's current ``version``
(optimistic locking); close unmerged with ``POST .../decline?version=N``; comment
with ``{"text"}``. A second open request for the same branches is refused with 409
and ``DuplicatePullRequestException``. States are ``OPEN``, ``MERGED``, ``DECLINED``.

Clone URLs are ``https://host[/context]/scm/<PROJECT>/<repo>.git`` or
``ssh://git@host:7999/<PROJECT>/<repo>.git``. Authentication: an HTTP access token
(``Bearer``), or a user name in ``RECONCILER_GIT_USERNAME`` with its password
or token (Basic).
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

__all__ = ["BitbucketServerPullRequests"]

_BRANCH_REF = "refs/heads/"


class BitbucketServerPullRequests(HostClient):
    """Bitbucket Data Center pull requests, REST API 1.0."""

    kind: ClassVar[HostKind] = "bitbucket-server"
    description_field: ClassVar[str] = "description"
    update_method: ClassVar[str] = "PUT"
    conflict_text: ClassVar[str] = "only one pull request may be open"
    _STATES: ClassVar[Mapping[str, PullRequestState]] = {
        "OPEN": "open",
        "MERGED": "merged",
        "DECLINED": "closed",
    }

    def _configure_paths(self) -> None:
        parts = self.repository.split("/")
        if parts[:1] == ["scm"]:
            parts = parts[1:]
        if len(parts) != 2:
            raise PullRequestError(self.host, f"{self.repository!r} is not PROJECT/repository")
        project, slug = (quote(p, safe="") for p in parts)
        self._pulls = f"/projects/{project}/repos/{slug}/pull-requests"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return self._bearer_or_basic(token)

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        links = field(payload, "links", "self")
        url = field(links[0], "href") if isinstance(links, list) and links else None
        return self._build(
            response,
            payload,
            number=field(payload, "id"),
            url=url,
            state=self._STATES.get(str(field(payload, "state"))),
            head=_branch(field(payload, "fromRef", "id")),
            base=_branch(field(payload, "toRef", "id")),
            title=field(payload, "title"),
        )

    def find(self, head: str, base: str) -> PullRequest | None:
        response = self._request(
            "GET",
            self._pulls,
            params={
                "state": "ALL",
                "at": _BRANCH_REF + head,
                "direction": "OUTGOING",
                "order": "NEWEST",
                "limit": LIST_PAGE_SIZE,
            },
        )
        return self._match(response, field(self._json(response), "values"), head, base)

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        payload = {
            "title": title,
            "description": body,
            "fromRef": {"id": _BRANCH_REF + head},
            "toRef": {"id": _BRANCH_REF + base},
        }
        return self._create(self._pulls, payload, head, base)

    def update(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        changes = {k: v for k, v in (("title", title), ("description", body)) if v is not None}
        if not changes:
            return self.get(number)
        version = self._version(number)
        response = self._request("PUT", self._item(number), json={"version": version, **changes})
        return self._one(response)

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            self._request("POST", f"{self._item(number)}/comments", json={"text": comment})
        version = self._version(number)
        response = self._request(
            "POST",
            f"{self._item(number)}/decline",
            params={"version": version},
            json={"version": version},
        )
        return self._one(response)

    def _version(self, number: int) -> int:
        """The request's current ``version``, which every change must name."""
        response = self._request("GET", self._item(number))
        version = field(self._json(response), "version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise self._malformed(response, "pull request without version")
        return version


def _branch(ref: Any) -> Any:
    """``refs/heads/x`` -> ``x``; anything else as it is (the PullRequest check names it)."""
    return ref.removeprefix(_BRANCH_REF) if isinstance(ref, str) else ref
