"""Gitea and Forgejo pull requests (API v1).

Source of the request and response shapes: Gitea's API reference (the Swagger
document served at ``/api/swagger``, "repository" operations ``repoListPullRequests``,
``repoCreatePullRequest``, ``repoEditPullRequest``, ``issueCreateComment``).
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from reconciler.pullrequests.client import (
    PullRequest,
    RepoPullsClient,
    field,
    pick_newest,
)
from reconciler.pullrequests.urls import HostKind

__all__ = ["GITEA_MAX_PAGES", "GITEA_PAGE_SIZE", "GiteaPullRequests"]

log = logging.getLogger(__name__)

GITEA_PAGE_SIZE = 50
"""Gitea's default ``MAX_RESPONSE_ITEMS``; larger pages are cut to it anyway."""
GITEA_MAX_PAGES = 20
"""Bound on the pull request listing (1,000 requests): ``find`` must stay cheap per pass."""


class GiteaPullRequests(RepoPullsClient):
    """Gitea and Forgejo pull requests (API v1)."""

    kind: ClassVar[HostKind] = "gitea"
    existing_hint: ClassVar[re.Pattern[str] | None] = re.compile(r"issue_id:\s*(\d+)")
    """Recent Gitea puts the number in ``issue_id``; older versions a database id."""

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}"}

    @staticmethod
    def _same_repository(payload: Any) -> bool:
        head_repo = field(payload, "head", "repo_id")
        base_repo = field(payload, "base", "repo_id")
        return head_repo is None or base_repo is None or head_repo == base_repo

    def find(self, head: str, base: str) -> PullRequest | None:
        """List the repository's requests page by page and filter on head and base.

        Older Gitea versions cannot filter by head branch (and the by-base/head route
        is recent and cannot take ``/`` in branch names), so this walks the list, at
        most ``GITEA_MAX_PAGES`` pages; ``base_branch`` narrows it where supported.
        The walk stops at the first open match: only one can be open per head/base.
        """
        matches: list[PullRequest] = []
        seen = 0
        for page in range(1, GITEA_MAX_PAGES + 1):
            response = self._request(
                "GET",
                self._pulls,
                params={
                    "state": "all",
                    "base_branch": base,
                    "page": page,
                    "limit": GITEA_PAGE_SIZE,
                },
            )
            items = self._json_list(response)
            for item in items:
                pr = self._parse(response, item)
                if pr.head == head and pr.base == base and self._same_repository(item):
                    if pr.state == "open":
                        return pr
                    matches.append(pr)
            seen += len(items)
            total = response.headers.get("x-total-count", "")
            if not items or (total.isdigit() and seen >= int(total)):
                break
        else:
            log.warning(
                "%s: stopped looking for %s -> %s after %d pages of pull requests",
                self.host,
                head,
                base,
                GITEA_MAX_PAGES,
            )
        return pick_newest(matches)
