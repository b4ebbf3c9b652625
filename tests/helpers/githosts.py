"""Stateful fakes of the pull-request APIs of Bitbucket Cloud, Bitbucket Data Center
and Azure DevOps, for ``httpx.MockTransport``.

Each keeps its pull requests in the host's own JSON shape, answers the calls
reconciler/pullrequests/ makes, checks the credentials, and refuses what the real
host refuses (a second open request for the same branches, a stale ``version``).
The shapes follow each API's reference, named in each class's docstring.
Tests drive reviewers through ``decline`` and ``merge``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx

TOKEN = "hostT0ken-0123456789"


class FakeHost:
    """What the tests need from every fake: the requests, the PRs, reviewer actions."""

    def __init__(self) -> None:
        self.prs: list[dict[str, Any]] = []
        self.comments: list[tuple[int, str]] = []
        self.requests: list[tuple[str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if not self.authorized(request.headers.get("authorization", "")):
            return httpx.Response(401, json=self.error("Unauthorized"))
        return self.route(request)

    # per host
    def authorized(self, header: str) -> bool:
        raise NotImplementedError

    def route(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def error(self, message: str) -> Any:
        raise NotImplementedError

    def head(self, index: int) -> str:
        raise NotImplementedError

    def state(self, index: int) -> str:
        """open, closed or merged, in the reconciler's words."""
        raise NotImplementedError

    def decline(self, index: int) -> None:
        raise NotImplementedError

    def merge(self, index: int) -> None:
        raise NotImplementedError


def _basic(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    return user, secret


class FakeBitbucketCloud(FakeHost):
    """Bitbucket Cloud REST 2.0, "Pullrequests" group
    (developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests): paged
    ``{"values", "pagelen", "size", "page"}`` lists filtered by ``state`` and ``q``;
    pull requests with ``id``, ``state`` (OPEN/MERGED/DECLINED/SUPERSEDED),
    ``source``/``destination.branch.name`` and ``links.html.href``; errors as
    ``{"type": "error", "error": {"message"}}``. Accepts an access token (Bearer)
    or ``bot`` + app password (Basic)."""

    BASE = "/2.0/repositories/acme/config/pullrequests"

    def authorized(self, header: str) -> bool:
        return header == f"Bearer {TOKEN}" or _basic(header) == ("bot", TOKEN)

    def error(self, message: str) -> Any:
        return {"type": "error", "error": {"message": message}}

    def route(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == self.BASE and method == "GET":
            states = request.url.params.get_list("state")
            query = request.url.params.get("q", "")
            wanted = dict(re.findall(r'(\S+) = "([^"]*)"', query))
            found = [
                pr
                for pr in reversed(self.prs)
                if pr["state"] in states
                and pr["source"]["branch"]["name"] == wanted.get("source.branch.name")
                and pr["destination"]["branch"]["name"] == wanted.get("destination.branch.name")
            ]
            return httpx.Response(
                200, json={"values": found, "pagelen": 50, "size": len(found), "page": 1}
            )
        if path == self.BASE and method == "POST":
            body = json.loads(request.content)
            head = body["source"]["branch"]["name"]
            if any(
                p["state"] == "OPEN" and p["source"]["branch"]["name"] == head for p in self.prs
            ):
                message = "There is already an open pull request from this branch"
                return httpx.Response(400, json=self.error(message))
            number = len(self.prs) + 1
            pr = {
                "type": "pullrequest",
                "id": number,
                "title": body["title"],
                "description": body.get("description", ""),
                "state": "OPEN",
                "source": {"branch": {"name": head}, "repository": {"full_name": "acme/config"}},
                "destination": {
                    "branch": {"name": body["destination"]["branch"]["name"]},
                    "repository": {"full_name": "acme/config"},
                },
                "close_source_branch": body.get("close_source_branch", False),
                "links": {
                    "html": {"href": f"https://bitbucket.org/acme/config/pull-requests/{number}"}
                },
            }
            self.prs.append(pr)
            return httpx.Response(201, json=pr)
        match = re.fullmatch(rf"{self.BASE}/(\d+)(/decline|/comments)?", path)
        if not match or int(match.group(1)) > len(self.prs):
            return httpx.Response(404, json=self.error("Resource not found"))
        pr = self.prs[int(match.group(1)) - 1]
        if match.group(2) == "/comments" and method == "POST":
            self.comments.append((pr["id"], json.loads(request.content)["content"]["raw"]))
            return httpx.Response(201, json={"type": "pullrequest_comment", "id": 7})
        if match.group(2) == "/decline" and method == "POST":
            pr["state"] = "DECLINED"
            return httpx.Response(200, json=pr)
        if method == "PUT":
            pr.update(json.loads(request.content))
            return httpx.Response(200, json=pr)
        return httpx.Response(200, json=pr)

    def head(self, index: int) -> str:
        return str(self.prs[index]["source"]["branch"]["name"])

    def state(self, index: int) -> str:
        return {"OPEN": "open", "MERGED": "merged"}.get(self.prs[index]["state"], "closed")

    def decline(self, index: int) -> None:
        self.prs[index]["state"] = "DECLINED"

    def merge(self, index: int) -> None:
        self.prs[index]["state"] = "MERGED"


class FakeBitbucketDataCenter(FakeHost):
    """Bitbucket Data Center REST 1.0, pull-requests resource
    (developer.atlassian.com/server/bitbucket/rest/): ``{"values", "size",
    "isLastPage", "start", "limit"}`` pages filtered by ``state``, ``at`` and
    ``direction``; pull requests with ``id``, ``version``, ``state``
    (OPEN/MERGED/DECLINED), ``fromRef``/``toRef.id`` (``refs/heads/...``) and
    ``links.self[].href``; 409 ``DuplicatePullRequestException`` and 409
    ``PullRequestOutOfDateException`` for a stale ``version``; errors as
    ``{"errors": [{"context", "message", "exceptionName"}]}``. HTTP access token."""

    BASE = "/bitbucket/rest/api/1.0/projects/OPS/repos/config/pull-requests"

    def authorized(self, header: str) -> bool:
        return header == f"Bearer {TOKEN}"

    def error(self, message: str, exception: str = "") -> Any:
        return {"errors": [{"context": None, "message": message, "exceptionName": exception}]}

    def route(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == self.BASE and method == "GET":
            at = request.url.params.get("at")
            found = [p for p in reversed(self.prs) if p["fromRef"]["id"] == at]
            page = {"size": len(found), "limit": 100, "isLastPage": True, "start": 0}
            return httpx.Response(200, json={**page, "values": found})
        if path == self.BASE and method == "POST":
            body = json.loads(request.content)
            source, target = body["fromRef"]["id"], body["toRef"]["id"]
            if any(
                p["state"] == "OPEN" and p["fromRef"]["id"] == source and p["toRef"]["id"] == target
                for p in self.prs
            ):
                return httpx.Response(
                    409,
                    json=self.error(
                        "Only one pull request may be open for a given source and target branch",
                        "com.atlassian.bitbucket.pull.DuplicatePullRequestException",
                    ),
                )
            number = len(self.prs) + 1
            pr = {
                "id": number,
                "version": 0,
                "title": body["title"],
                "description": body.get("description", ""),
                "state": "OPEN",
                "open": True,
                "closed": False,
                "fromRef": {"id": source, "displayId": source.removeprefix("refs/heads/")},
                "toRef": {"id": target, "displayId": target.removeprefix("refs/heads/")},
                "links": {
                    "self": [
                        {
                            "href": "https://bitbucket.acme.internal/bitbucket/projects/OPS/"
                            f"repos/config/pull-requests/{number}"
                        }
                    ]
                },
            }
            self.prs.append(pr)
            return httpx.Response(201, json=pr)
        match = re.fullmatch(rf"{self.BASE}/(\d+)(/decline|/comments)?", path)
        if not match or int(match.group(1)) > len(self.prs):
            return httpx.Response(404, json=self.error("Pull request does not exist"))
        pr = self.prs[int(match.group(1)) - 1]
        if match.group(2) == "/comments" and method == "POST":
            self.comments.append((pr["id"], json.loads(request.content)["text"]))
            return httpx.Response(201, json={"id": 3, "version": 0})
        if method in ("PUT", "POST") and match.group(2) != "/comments":
            version = json.loads(request.content or b"{}").get("version")
            if version != pr["version"]:
                return httpx.Response(
                    409,
                    json=self.error(
                        "You are attempting to modify a pull request based on out-of-date "
                        "information.",
                        "com.atlassian.bitbucket.pull.PullRequestOutOfDateException",
                    ),
                )
            pr["version"] += 1
            if match.group(2) == "/decline":
                pr.update(state="DECLINED", open=False, closed=True)
            else:
                body = json.loads(request.content)
                pr.update({k: body[k] for k in ("title", "description") if k in body})
        return httpx.Response(200, json=pr)

    def head(self, index: int) -> str:
        return str(self.prs[index]["fromRef"]["displayId"])

    def state(self, index: int) -> str:
        return {"OPEN": "open", "MERGED": "merged"}.get(self.prs[index]["state"], "closed")

    def decline(self, index: int) -> None:
        self.prs[index].update(state="DECLINED", version=self.prs[index]["version"] + 1)

    def merge(self, index: int) -> None:
        self.prs[index].update(state="MERGED", version=self.prs[index]["version"] + 1)


class FakeAzureDevOps(FakeHost):
    """Azure DevOps Services REST 7.1, Git Pull Requests and Pull Request Threads
    (learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests): lists as
    ``{"value", "count"}`` filtered by ``searchCriteria.*``; pull requests with
    ``pullRequestId``, ``status`` (active/completed/abandoned), ``sourceRefName``,
    ``targetRefName``, ``repository.webUrl``; 409 ``TF401179`` for a second active
    request; errors as ``{"$id", "message", "typeName", "errorCode"}``. Every call
    must carry ``api-version``; a PAT is sent as Basic with an empty user name."""

    BASE = "/acme/shop/_apis/git/repositories/config/pullrequests"

    def authorized(self, header: str) -> bool:
        return _basic(header) == ("", TOKEN)

    def error(self, message: str) -> Any:
        return {"$id": "1", "message": message, "typeName": "Exception", "errorCode": 0}

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("api-version") != "7.1":
            return httpx.Response(400, json=self.error("TF400813: api-version is required"))
        path, method = request.url.path, request.method
        params = request.url.params
        if path == self.BASE and method == "GET":
            found = [
                p
                for p in reversed(self.prs)
                if p["sourceRefName"] == params.get("searchCriteria.sourceRefName")
                and p["targetRefName"] == params.get("searchCriteria.targetRefName")
            ]
            return httpx.Response(200, json={"value": found, "count": len(found)})
        if path == self.BASE and method == "POST":
            body = json.loads(request.content)
            if any(
                p["status"] == "active"
                and p["sourceRefName"] == body["sourceRefName"]
                and p["targetRefName"] == body["targetRefName"]
                for p in self.prs
            ):
                message = (
                    "TF401179: An active pull request for the source and target branch "
                    "already exists."
                )
                return httpx.Response(409, json=self.error(message))
            number = len(self.prs) + 1
            pr = {
                "pullRequestId": number,
                "codeReviewId": number,
                "status": "active",
                "title": body["title"],
                "description": body.get("description", ""),
                "sourceRefName": body["sourceRefName"],
                "targetRefName": body["targetRefName"],
                "mergeStatus": "queued",
                "repository": {
                    "id": "3411ebc1-d5aa-464f-9615-0b527bc66719",
                    "name": "config",
                    "webUrl": "https://dev.azure.com/acme/shop/_git/config",
                },
                "url": f"https://dev.azure.com/acme/shop/_apis/git/repositories/config/pullRequests/{number}",
            }
            self.prs.append(pr)
            return httpx.Response(201, json=pr)
        match = re.fullmatch(rf"{self.BASE}/(\d+)(/threads)?", path)
        if not match or int(match.group(1)) > len(self.prs):
            return httpx.Response(
                404, json=self.error("TF401180: The requested pull request was not found.")
            )
        pr = self.prs[int(match.group(1)) - 1]
        if match.group(2) and method == "POST":
            thread = json.loads(request.content)
            self.comments.append((pr["pullRequestId"], thread["comments"][0]["content"]))
            return httpx.Response(200, json={"id": 11, **thread})
        if method == "PATCH":
            body = json.loads(request.content)
            pr.update({k: body[k] for k in ("title", "description", "status") if k in body})
        return httpx.Response(200, json=pr)

    def head(self, index: int) -> str:
        return str(self.prs[index]["sourceRefName"]).removeprefix("refs/heads/")

    def state(self, index: int) -> str:
        return {"active": "open", "completed": "merged"}.get(self.prs[index]["status"], "closed")

    def decline(self, index: int) -> None:
        self.prs[index]["status"] = "abandoned"

    def merge(self, index: int) -> None:
        self.prs[index]["status"] = "completed"


# repository URL, environment, fake: how each host is reached in the tests
HOSTS: dict[str, tuple[str, dict[str, str], type[FakeHost]]] = {
    "bitbucket": (
        "https://bitbucket.org/acme/config.git",
        {"RECONCILER_GIT_TOKEN": TOKEN},
        FakeBitbucketCloud,
    ),
    "bitbucket-app-password": (
        "git@bitbucket.org:acme/config.git",
        {"RECONCILER_GIT_TOKEN": TOKEN, "RECONCILER_GIT_USERNAME": "bot"},
        FakeBitbucketCloud,
    ),
    "bitbucket-server": (
        "https://bitbucket.acme.internal/bitbucket/scm/OPS/config.git",
        {
            "RECONCILER_GIT_TOKEN": TOKEN,
            "RECONCILER_GIT_API_URL": "https://bitbucket.acme.internal/bitbucket/rest/api/1.0",
        },
        FakeBitbucketDataCenter,
    ),
    "azure-devops": (
        "https://acme@dev.azure.com/acme/shop/_git/config",
        {"RECONCILER_GIT_TOKEN": TOKEN},
        FakeAzureDevOps,
    ),
}
