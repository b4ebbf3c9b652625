"""Pull request clients for GitHub, GitLab and Gitea, against recorded API shapes.

Every test talks to an ``httpx.MockTransport`` fake that answers from the JSON in
tests/fixtures/hosts/<host>.json and records what the client sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import pullrequests
from reconciler.errors import ReconcilerError
from reconciler.pullrequests import (
    GiteaPullRequests,
    GitHubPullRequests,
    GitLabMergeRequests,
    PullRequest,
    PullRequestError,
    host_for,
    parse_repo_url,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hosts"
TOKEN = "tok-S3cr3tValue-0123456789abcdef"
HEAD = "promote/shop/prod/1.4.0"
BASE = "main"
TITLE = "Promote shop 1.4.0 to prod"

GITHUB_PULLS = "/repos/octo-org/gitops-config/pulls"
GITLAB_MRS = "/api/v4/projects/platform%2Fdeploy%2Fgitops-config/merge_requests"
GITEA_PULLS = "/api/v1/repos/ops/gitops-config/pulls"


def fixture(host: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{host}.json").read_text(encoding="utf-8"))


Answer = dict[str, Any] | Callable[[httpx.Request], httpx.Response]


def respond(spec: dict[str, Any]) -> httpx.Response:
    """A fresh response from a recorded ``{"status", "headers", "json" | "text"}`` shape."""
    headers = spec.get("headers", {})
    if "text" in spec:
        return httpx.Response(spec["status"], headers=headers, text=spec["text"])
    return httpx.Response(spec["status"], headers=headers, json=spec.get("json"))


def ok(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"status": status, "json": payload, "headers": headers or {}}


class FakeApi:
    """Routes (method, raw path) to queued answers; the last answer repeats."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *answers: Answer) -> FakeApi:
        self.routes[(method, path)] = list(answers)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.raw_path.split(b"?", 1)[0].decode()
        answers = self.routes.get((request.method, path))
        if not answers:
            return httpx.Response(404, json={"message": f"no route {request.method} {path}"})
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(request) if callable(answer) else respond(answer)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def sent(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.raw_path.split(b"?", 1)[0].decode()) for r in self.requests]


def make_host(name: str, api: FakeApi, **env: str) -> Any:
    return host_for(
        fixture(name)["repo_url"],
        env={"RECONCILER_GIT_TOKEN": TOKEN, **env},
        transport=api.transport,
    )


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


# -- open ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "auth_header", "auth_value", "expected"),
    [
        (
            "github",
            "authorization",
            f"Bearer {TOKEN}",
            PullRequest(
                42, "https://github.com/octo-org/gitops-config/pull/42", "open", HEAD, BASE, TITLE
            ),
        ),
        (
            "gitlab",
            "private-token",
            TOKEN,
            PullRequest(
                12,
                "https://gitlab.example.com/platform/deploy/gitops-config/-/merge_requests/12",
                "open",
                HEAD,
                BASE,
                TITLE,
            ),
        ),
        (
            "gitea",
            "authorization",
            f"token {TOKEN}",
            PullRequest(
                7, "https://gitea.example.com/ops/gitops-config/pulls/7", "open", HEAD, BASE, TITLE
            ),
        ),
    ],
)
def test_open_sends_the_hosts_request_and_parses_the_answer(
    name: str, auth_header: str, auth_value: str, expected: PullRequest
) -> None:
    recorded = fixture(name)["open"]
    api = FakeApi().on(
        recorded["request"]["method"], recorded["request"]["path"], recorded["response"]
    )
    host = make_host(name, api)

    sent = recorded["request"]["json"]
    pr = host.open(HEAD, BASE, TITLE, sent.get("body", sent.get("description")))

    assert pr == expected
    (request,) = api.requests
    assert request.method == recorded["request"]["method"]
    assert request.url.raw_path.decode() == recorded["request"]["path"]
    assert body(request) == recorded["request"]["json"]
    assert request.headers[auth_header] == auth_value
    assert request.headers["content-type"] == "application/json"


def test_github_requests_carry_the_api_version_and_media_type() -> None:
    api = FakeApi().on("GET", f"{GITHUB_PULLS}/42", ok(fixture("github")["pull_open"]))
    make_host("github", api).get(42)
    (request,) = api.requests
    assert request.url.host == "api.github.com"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"


# -- open when one already exists ------------------------------------------------------


def test_github_duplicate_open_returns_the_open_pull_request() -> None:
    data = fixture("github")
    api = (
        FakeApi()
        .on("POST", GITHUB_PULLS, data["already_exists"])
        .on("GET", GITHUB_PULLS, ok([data["pull_open"]]))
    )
    pr = make_host("github", api).open(HEAD, BASE, TITLE, "body")

    assert (pr.number, pr.state) == (42, "open")
    lookup = api.requests[1]
    # Without the owner prefix GitHub silently ignores the head filter.
    assert lookup.url.params["head"] == f"octo-org:{HEAD}"
    assert lookup.url.params["base"] == BASE
    assert lookup.url.params["state"] == "all"


def test_github_422_for_another_reason_is_raised_with_the_apis_words() -> None:
    data = fixture("github")
    api = FakeApi().on("POST", GITHUB_PULLS, data["no_commits"])
    with pytest.raises(PullRequestError) as caught:
        make_host("github", api).open(HEAD, BASE, TITLE, "body")
    assert caught.value.status == 422
    assert f"No commits between main and {HEAD}" in str(caught.value)
    assert caught.value.retry_after is None
    assert api.sent() == [("POST", GITHUB_PULLS)]


def test_gitlab_duplicate_open_fetches_the_merge_request_the_409_names() -> None:
    data = fixture("gitlab")
    api = (
        FakeApi()
        .on("POST", GITLAB_MRS, data["already_exists"])
        .on("GET", f"{GITLAB_MRS}/12", ok(data["mr_open"]))
    )
    pr = make_host("gitlab", api).open(HEAD, BASE, TITLE, "body")
    assert (pr.number, pr.state, pr.head) == (12, "open", HEAD)
    assert api.sent() == [("POST", GITLAB_MRS), ("GET", f"{GITLAB_MRS}/12")]


def test_gitlab_duplicate_for_another_target_falls_back_to_a_lookup() -> None:
    data = fixture("gitlab")
    elsewhere = {**data["mr_open"], "target_branch": "staging"}
    api = (
        FakeApi()
        .on("POST", GITLAB_MRS, data["already_exists"])
        .on("GET", f"{GITLAB_MRS}/12", ok(elsewhere))
        .on("GET", GITLAB_MRS, ok([]))
    )
    with pytest.raises(PullRequestError) as caught:
        make_host("gitlab", api).open(HEAD, BASE, TITLE, "body")
    assert caught.value.status == 409
    assert "Another open merge request already exists" in str(caught.value)
    assert api.sent()[-1] == ("GET", GITLAB_MRS)


def test_gitlab_duplicate_whose_named_request_is_gone_is_found_by_listing() -> None:
    data = fixture("gitlab")
    api = (
        FakeApi()
        .on("POST", GITLAB_MRS, data["already_exists"])
        .on("GET", f"{GITLAB_MRS}/12", ok({"message": "404 Not found"}, status=404))
        .on("GET", GITLAB_MRS, ok([data["mr_open"]]))
    )
    pr = make_host("gitlab", api).open(HEAD, BASE, TITLE, "body")
    assert (pr.number, pr.state) == (12, "open")
    assert api.sent()[-1] == ("GET", GITLAB_MRS)


def test_gitlab_409_that_is_not_a_duplicate_is_raised() -> None:
    api = FakeApi().on("POST", GITLAB_MRS, fixture("gitlab")["validation_error"])
    with pytest.raises(PullRequestError) as caught:
        make_host("gitlab", api).open(HEAD, BASE, TITLE, "body")
    assert "base Cannot create merge request" in str(caught.value)
    assert len(api.requests) == 1


def test_gitea_duplicate_open_uses_the_index_in_the_409() -> None:
    data = fixture("gitea")
    api = (
        FakeApi()
        .on("POST", GITEA_PULLS, data["already_exists"])
        .on("GET", f"{GITEA_PULLS}/7", ok(data["pull_open"]))
    )
    pr = make_host("gitea", api).open(HEAD, BASE, TITLE, "body")
    assert (pr.number, pr.state) == (7, "open")
    assert api.sent() == [("POST", GITEA_PULLS), ("GET", f"{GITEA_PULLS}/7")]


def test_gitea_duplicate_from_an_older_version_is_found_by_listing() -> None:
    # Older Gitea puts a database id in issue_id: that "pull request" does not exist.
    data = fixture("gitea")
    api = (
        FakeApi()
        .on("POST", GITEA_PULLS, data["already_exists_old"])
        .on("GET", f"{GITEA_PULLS}/112", data["not_found"])
        .on("GET", GITEA_PULLS, ok([data["other_pull"], data["pull_open"]]))
    )
    pr = make_host("gitea", api).open(HEAD, BASE, TITLE, "body")
    assert (pr.number, pr.state) == (7, "open")
    assert api.sent()[-1] == ("GET", GITEA_PULLS)


# -- find and state mapping ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key", "state"),
    [
        ("github", "pull_open", "open"),
        ("github", "pull_merged", "merged"),
        ("github", "pull_closed", "closed"),
        ("gitlab", "mr_open", "open"),
        ("gitlab", "mr_locked", "open"),
        ("gitlab", "mr_merged", "merged"),
        ("gitlab", "mr_closed", "closed"),
        ("gitea", "pull_open", "open"),
        ("gitea", "pull_merged", "merged"),
        ("gitea", "pull_closed", "closed"),
    ],
)
def test_find_maps_each_hosts_state(name: str, key: str, state: str) -> None:
    payload = fixture(name)[key]
    path = {"github": GITHUB_PULLS, "gitlab": GITLAB_MRS, "gitea": GITEA_PULLS}[name]
    api = FakeApi().on("GET", path, ok([payload]))
    pr = make_host(name, api).find(HEAD, BASE)
    assert pr is not None
    assert pr.state == state
    assert pr.number == payload.get("number", payload.get("iid"))


def test_github_merged_needs_merged_at_in_list_items() -> None:
    # List items carry no "merged" flag; state is "closed" for merged and closed alike.
    merged = dict(fixture("github")["pull_merged"])
    del merged["merged"]
    api = FakeApi().on("GET", GITHUB_PULLS, ok([merged]))
    pr = make_host("github", api).find(HEAD, BASE)
    assert pr is not None
    assert pr.state == "merged"


def test_find_prefers_the_open_request_then_the_newest() -> None:
    data = fixture("github")
    newer_closed = {**data["pull_closed"], "number": 50}
    api = FakeApi().on("GET", GITHUB_PULLS, ok([newer_closed, data["pull_open"]]))
    host = make_host("github", api)
    pr = host.find(HEAD, BASE)
    assert pr is not None
    assert (pr.number, pr.state) == (42, "open")

    api.on("GET", GITHUB_PULLS, ok([data["pull_closed"], data["pull_merged"]]))
    pr = host.find(HEAD, BASE)
    assert pr is not None
    assert (pr.number, pr.state) == (42, "merged")


def test_find_returns_none_when_nothing_matches() -> None:
    api = FakeApi().on("GET", GITLAB_MRS, ok([]))
    assert make_host("gitlab", api).find(HEAD, BASE) is None


def test_gitlab_find_filters_on_the_server_and_ignores_forks() -> None:
    data = fixture("gitlab")
    api = FakeApi().on("GET", GITLAB_MRS, ok([data["mr_from_fork"], data["mr_closed"]]))
    pr = make_host("gitlab", api).find(HEAD, BASE)
    assert pr is not None
    assert (pr.number, pr.state) == (11, "closed")
    params = api.requests[0].url.params
    assert (params["source_branch"], params["target_branch"], params["state"]) == (
        HEAD,
        BASE,
        "all",
    )


def test_gitea_find_ignores_other_branches_and_forks() -> None:
    data = fixture("gitea")
    api = FakeApi().on(
        "GET", GITEA_PULLS, ok([data["other_pull"], data["pull_from_fork"], data["pull_merged"]])
    )
    pr = make_host("gitea", api).find(HEAD, BASE)
    assert pr is not None
    assert (pr.number, pr.state) == (7, "merged")


# -- Gitea pagination ------------------------------------------------------------------


def gitea_page(count: int, start: int) -> list[dict[str, Any]]:
    template = fixture("gitea")["other_pull"]
    return [
        {**template, "number": n, "head": {**template["head"], "ref": f"feature/{n}"}}
        for n in range(start, start - count, -1)
    ]


def test_gitea_find_walks_pages_until_the_open_match() -> None:
    data = fixture("gitea")
    page1 = gitea_page(50, 500)
    page2 = [*gitea_page(49, 450), data["pull_open"]]
    api = FakeApi().on("GET", GITEA_PULLS, ok(page1), ok(page2), ok(gitea_page(50, 400)))

    pr = make_host("gitea", api).find(HEAD, BASE)

    assert pr is not None
    assert (pr.number, pr.state) == (7, "open")
    pages = [(r.url.params["page"], r.url.params["limit"]) for r in api.requests]
    assert pages == [("1", "50"), ("2", "50")]  # stopped at the open match
    assert api.requests[0].url.params["base_branch"] == BASE
    assert api.requests[0].url.params["state"] == "all"


def test_gitea_find_stops_at_the_total_count() -> None:
    data = fixture("gitea")
    total = {"x-total-count": "51"}
    api = FakeApi().on(
        "GET",
        GITEA_PULLS,
        ok([*gitea_page(49, 500), data["pull_closed"]], headers=total),
        ok([data["pull_merged"]], headers=total),
        ok(gitea_page(50, 300), headers=total),
    )
    pr = make_host("gitea", api).find(HEAD, BASE)
    assert pr is not None
    assert (pr.number, pr.state) == (7, "merged")  # newest of the closed/merged matches
    assert len(api.requests) == 2


def test_gitea_find_stops_at_an_empty_page() -> None:
    api = FakeApi().on("GET", GITEA_PULLS, ok(gitea_page(50, 500)), ok([]))
    assert make_host("gitea", api).find(HEAD, BASE) is None
    assert len(api.requests) == 2


def test_gitea_find_gives_up_after_the_page_bound(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeApi().on("GET", GITEA_PULLS, lambda request: respond(ok(gitea_page(50, 999))))
    with caplog.at_level(logging.WARNING, logger="reconciler.pullrequests"):
        assert make_host("gitea", api).find(HEAD, BASE) is None
    assert len(api.requests) == pullrequests.GITEA_MAX_PAGES
    assert "stopped looking" in caplog.text


# -- update and close ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method", "path", "sent"),
    [
        ("github", "PATCH", f"{GITHUB_PULLS}/42", {"title": "New title", "body": "New body"}),
        ("gitlab", "PUT", f"{GITLAB_MRS}/12", {"title": "New title", "description": "New body"}),
        ("gitea", "PATCH", f"{GITEA_PULLS}/7", {"title": "New title", "body": "New body"}),
    ],
)
def test_update_sends_title_and_description(
    name: str, method: str, path: str, sent: dict[str, str]
) -> None:
    data = fixture(name)
    current = data.get("pull_open") or data["mr_open"]
    number = current.get("number", current.get("iid"))
    changed = {**current, "title": "New title"}
    api = FakeApi().on(method, path, ok(changed))

    pr = make_host(name, api).update(number, title="New title", body="New body")

    assert pr.title == "New title"
    assert [body(r) for r in api.requests] == [sent]


def test_update_sends_only_what_changes_and_nothing_when_nothing_does() -> None:
    data = fixture("gitlab")
    api = (
        FakeApi()
        .on("PUT", f"{GITLAB_MRS}/12", ok(data["mr_open"]))
        .on("GET", f"{GITLAB_MRS}/12", ok(data["mr_open"]))
    )
    host = make_host("gitlab", api)
    host.update(12, body="Only the description")
    assert body(api.requests[0]) == {"description": "Only the description"}

    host.update(12)  # GitLab rejects an empty PUT with 400
    assert api.sent()[-1] == ("GET", f"{GITLAB_MRS}/12")


@pytest.mark.parametrize(
    ("name", "comment_path", "close_method", "close_path", "close_body", "closed_key"),
    [
        (
            "github",
            "/repos/octo-org/gitops-config/issues/41/comments",
            "PATCH",
            f"{GITHUB_PULLS}/41",
            {"state": "closed"},
            "pull_closed",
        ),
        (
            "gitlab",
            f"{GITLAB_MRS}/11/notes",
            "PUT",
            f"{GITLAB_MRS}/11",
            {"state_event": "close"},
            "mr_closed",
        ),
        (
            "gitea",
            "/api/v1/repos/ops/gitops-config/issues/6/comments",
            "PATCH",
            f"{GITEA_PULLS}/6",
            {"state": "closed"},
            "pull_closed",
        ),
    ],
)
def test_close_comments_first_then_closes(
    name: str,
    comment_path: str,
    close_method: str,
    close_path: str,
    close_body: dict[str, str],
    closed_key: str,
) -> None:
    data = fixture(name)
    closed = data[closed_key]
    number = closed.get("number", closed.get("iid"))
    comment_answer = data.get("comment_created") or data["note_created"]
    api = (
        FakeApi().on("POST", comment_path, comment_answer).on(close_method, close_path, ok(closed))
    )
    host = make_host(name, api)

    pr = host.close(number, "Superseded by shop 1.5.0.")

    assert pr.state == "closed"
    assert api.sent() == [("POST", comment_path), (close_method, close_path)]
    assert body(api.requests[0]) == {"body": "Superseded by shop 1.5.0."}
    assert body(api.requests[1]) == close_body

    api.requests.clear()
    host.close(number)
    assert api.sent() == [(close_method, close_path)]


# -- GitLab project paths --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "encoded"),
    [
        (
            "git@gitlab.example.com:platform/deploy/gitops-config.git",
            "platform%2Fdeploy%2Fgitops-config",
        ),
        ("https://gitlab.com/a/b/c/d.git", "a%2Fb%2Fc%2Fd"),
        ("https://gitlab.com/my.group/my-project", "my.group%2Fmy-project"),
    ],
)
def test_gitlab_project_id_is_the_url_encoded_path_of_nested_groups(url: str, encoded: str) -> None:
    api = FakeApi().on("GET", f"/api/v4/projects/{encoded}/merge_requests", ok([]))
    host = host_for(url, env={"RECONCILER_GIT_TOKEN": TOKEN}, transport=api.transport)
    assert host.find(HEAD, BASE) is None
    assert len(api.requests) == 1


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path", "words"),
    [
        ("github", f"{GITHUB_PULLS}/42", "Bad credentials"),
        ("gitlab", f"{GITLAB_MRS}/12", "401 Unauthorized"),
        ("gitea", f"{GITEA_PULLS}/7", "user does not exist"),
    ],
)
def test_401_is_a_clear_authentication_error(name: str, path: str, words: str) -> None:
    api = FakeApi().on("GET", path, fixture(name)["unauthorized"])
    with pytest.raises(PullRequestError) as caught:
        make_host(name, api).get(int(path.rsplit("/", 1)[1]))
    error = caught.value
    assert isinstance(error, ReconcilerError)
    assert error.status == 401
    assert error.retry_after is None
    message = str(error)
    assert message.startswith(f"{name} ")
    assert "authentication failed" in message
    assert words in message
    assert "RECONCILER_GIT_TOKEN" in message
    assert TOKEN not in message


def test_token_never_appears_in_errors_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    echoing = FakeApi().on(
        "GET",
        f"{GITHUB_PULLS}/42",
        ok({"message": f"Bad credentials: {TOKEN}"}, status=401),
    )
    host = make_host("github", echoing)
    with caplog.at_level(logging.DEBUG), pytest.raises(PullRequestError) as caught:
        host.get(42)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caught.value.api_message
    assert TOKEN not in repr(caught.value)
    assert TOKEN not in repr(host)
    assert TOKEN not in caplog.text

    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused ({request.headers['authorization']})")

    broken = FakeApi().on("GET", f"{GITHUB_PULLS}/42", fail)
    with pytest.raises(PullRequestError) as caught:
        make_host("github", broken).get(42)
    assert TOKEN not in str(caught.value)
    assert "ConnectError" in str(caught.value)
    assert caught.value.retry_after == pullrequests.TRANSIENT_RETRY_AFTER


def test_missing_token_names_the_variable_and_sends_nothing() -> None:
    api = FakeApi()
    host = host_for(fixture("github")["repo_url"], env={}, transport=api.transport)
    with pytest.raises(PullRequestError, match="set RECONCILER_GIT_TOKEN"):
        host.get(42)
    assert api.requests == []


def test_token_comes_from_the_named_variable_or_file_at_every_request(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    env = {"BOT_TOKEN_FILE": str(token_file)}
    api = FakeApi().on("GET", f"{GITEA_PULLS}/7", ok(fixture("gitea")["pull_open"]))
    host = host_for(
        fixture("gitea")["repo_url"], token_env="BOT_TOKEN", env=env, transport=api.transport
    )
    host.get(7)
    env["BOT_TOKEN"] = "rotated-token-value"
    host.get(7)
    assert [r.headers["authorization"] for r in api.requests] == [
        f"token {TOKEN}",
        "token rotated-token-value",
    ]


def test_gitlab_429_gives_the_retry_after_delay() -> None:
    api = FakeApi().on("POST", GITLAB_MRS, fixture("gitlab")["rate_limited"])
    with pytest.raises(PullRequestError) as caught:
        make_host("gitlab", api).open(HEAD, BASE, TITLE, "body")
    assert caught.value.status == 429
    assert caught.value.retry_after == 42.0
    assert "rate limited" in str(caught.value)
    assert "Retry later" in str(caught.value)


def test_gitea_429_with_an_http_date() -> None:
    now = datetime(2024, 5, 2, 12, 0, 0, tzinfo=UTC)
    data = fixture("gitea")
    api = FakeApi().on("GET", f"{GITEA_PULLS}/7", data["rate_limited"])
    host = GiteaPullRequests(
        data["api_url"],
        "ops/gitops-config",
        env={"RECONCILER_GIT_TOKEN": TOKEN},
        transport=api.transport,
        clock=now.timestamp,
    )
    assert format_datetime(now, usegmt=True) < data["rate_limited"]["headers"]["retry-after"]
    with pytest.raises(PullRequestError) as caught:
        host.get(7)
    assert caught.value.retry_after == pytest.approx(100.0)


def test_github_secondary_rate_limit_is_a_403_with_retry_after() -> None:
    api = FakeApi().on("POST", GITHUB_PULLS, fixture("github")["secondary_rate_limit"])
    with pytest.raises(PullRequestError) as caught:
        make_host("github", api).open(HEAD, BASE, TITLE, "body")
    assert caught.value.status == 403
    assert caught.value.retry_after == 60.0
    assert "secondary rate limit" in str(caught.value)


def test_github_primary_rate_limit_waits_until_the_reset_time() -> None:
    data = fixture("github")
    reset = int(data["primary_rate_limit"]["headers"]["x-ratelimit-reset"])
    api = FakeApi().on("GET", f"{GITHUB_PULLS}/42", data["primary_rate_limit"])
    host = GitHubPullRequests(
        data["api_url"],
        "octo-org/gitops-config",
        env={"RECONCILER_GIT_TOKEN": TOKEN},
        transport=api.transport,
        clock=lambda: reset - 300.0,
    )
    with pytest.raises(PullRequestError) as caught:
        host.get(42)
    assert caught.value.retry_after == pytest.approx(300.0)


def test_github_403_without_rate_limit_signs_is_a_permission_error() -> None:
    api = FakeApi().on("POST", GITHUB_PULLS, fixture("github")["forbidden"])
    with pytest.raises(PullRequestError) as caught:
        make_host("github", api).open(HEAD, BASE, TITLE, "body")
    assert caught.value.retry_after is None
    assert "forbidden" in str(caught.value)
    assert "Resource not accessible by personal access token" in str(caught.value)


def test_server_errors_are_temporary_and_redirects_are_not_followed() -> None:
    api = FakeApi().on(
        "GET",
        f"{GITHUB_PULLS}/42",
        {
            "status": 502,
            "headers": {"content-type": "text/html"},
            "text": "<html>Bad gateway</html>",
        },
    )
    with pytest.raises(PullRequestError) as caught:
        make_host("github", api).get(42)
    assert caught.value.retry_after == pullrequests.TRANSIENT_RETRY_AFTER
    assert "<html>" not in str(caught.value)
    assert "Bad Gateway" in str(caught.value)

    moved = FakeApi().on(
        "GET",
        f"{GITHUB_PULLS}/42",
        {"status": 301, "headers": {"location": "https://elsewhere.example/x"}, "json": {}},
    )
    with pytest.raises(PullRequestError, match="redirected"):
        make_host("github", moved).get(42)
    assert len(moved.requests) == 1


def test_a_pull_request_without_required_fields_is_a_clear_error() -> None:
    broken = {**fixture("gitea")["pull_open"], "head": None}
    api = FakeApi().on("GET", f"{GITEA_PULLS}/7", ok(broken))
    with pytest.raises(PullRequestError, match="pull request without head"):
        make_host("gitea", api).get(7)


# -- host detection --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "env", "cls", "api_url", "repository"),
    [
        (
            "https://github.com/octo-org/gitops-config.git",
            {},
            GitHubPullRequests,
            "https://api.github.com",
            "octo-org/gitops-config",
        ),
        (
            "git@github.com:octo-org/gitops-config.git",
            {},
            GitHubPullRequests,
            "https://api.github.com",
            "octo-org/gitops-config",
        ),
        (
            "ssh://git@ssh.github.com:443/octo-org/gitops-config",
            {},
            GitHubPullRequests,
            "https://api.github.com",
            "octo-org/gitops-config",
        ),
        (
            "https://bot:hunter2@github.com/octo-org/gitops-config/",
            {},
            GitHubPullRequests,
            "https://api.github.com",
            "octo-org/gitops-config",
        ),
        (
            "https://gitlab.com/platform/deploy/gitops-config.git",
            {},
            GitLabMergeRequests,
            "https://gitlab.com/api/v4",
            "platform/deploy/gitops-config",
        ),
        (
            "ssh://git@gitlab.example.com:2222/platform/gitops.git",
            {},
            GitLabMergeRequests,
            "https://gitlab.example.com/api/v4",
            "platform/gitops",
        ),
        (
            "https://codeberg.org/ops/gitops-config.git",
            {},
            GiteaPullRequests,
            "https://codeberg.org/api/v1",
            "ops/gitops-config",
        ),
        (
            "git@git.example.com:ops/gitops-config.git",
            {"RECONCILER_GIT_HOST_KIND": "gitea"},
            GiteaPullRequests,
            "https://git.example.com/api/v1",
            "ops/gitops-config",
        ),
        (
            "https://ghe.example.com/octo-org/gitops-config.git",
            {"RECONCILER_GIT_HOST_KIND": "GitHub"},
            GitHubPullRequests,
            "https://ghe.example.com/api/v3",
            "octo-org/gitops-config",
        ),
        (
            "http://127.0.0.1:3000/ops/gitops-config.git",
            {"RECONCILER_GIT_HOST_KIND": "gitea"},
            GiteaPullRequests,
            "http://127.0.0.1:3000/api/v1",
            "ops/gitops-config",
        ),
        (
            "https://example.com/gitea/ops/gitops-config.git",
            {"RECONCILER_GIT_API_URL": "https://example.com/gitea/api/v1/"},
            GiteaPullRequests,
            "https://example.com/gitea/api/v1",
            "ops/gitops-config",
        ),
        (
            "https://code.example.com/team/app/gitops.git",
            {"RECONCILER_GIT_API_URL": "https://code.example.com/api/v4"},
            GitLabMergeRequests,
            "https://code.example.com/api/v4",
            "team/app/gitops",
        ),
    ],
)
def test_host_detection(
    url: str, env: dict[str, str], cls: type, api_url: str, repository: str
) -> None:
    host = host_for(url, env=env)
    assert type(host) is cls
    assert host.api_url == api_url
    assert host.repository == repository
    assert "hunter2" not in repr(host)


def test_explicit_arguments_override_the_environment_and_the_host_name() -> None:
    host = host_for(
        "https://gitlab.internal/ops/gitops",
        kind="gitea",
        api_url="https://forge.internal/api/v1",
        env={"RECONCILER_GIT_HOST_KIND": "gitlab"},
    )
    assert type(host) is GiteaPullRequests
    assert host.api_url == "https://forge.internal/api/v1"


def test_unknown_host_without_configuration_says_what_to_set() -> None:
    with pytest.raises(PullRequestError) as caught:
        host_for("https://bot:hunter2@git.example.com/ops/gitops.git", env={})
    assert "RECONCILER_GIT_HOST_KIND" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "env", "match"),
    [
        (
            "https://git.example.com/ops/gitops.git",
            {"RECONCILER_GIT_HOST_KIND": "sourcehut"},
            "unknown Git host kind 'sourcehut'",
        ),
        ("/srv/git/gitops.git", {}, "cannot tell the Git host"),
        ("file:///srv/git/gitops.git", {}, "cannot tell the Git host"),
        ("https://github.com/just-an-owner", {}, "no owner/repository path"),
        ("https://github.com/group/sub/repo.git", {}, "is not owner/repository"),
    ],
)
def test_unusable_configuration_is_rejected(url: str, env: dict[str, str], match: str) -> None:
    with pytest.raises(PullRequestError, match=match):
        host_for(url, env=env)


def test_parse_repo_url_forms() -> None:
    assert parse_repo_url("git@github.com:o/r.git") == pullrequests.RepoLocation(
        "https", "github.com", "o/r"
    )
    assert parse_repo_url("https://Git.Example.com:8443/o/r.git") == pullrequests.RepoLocation(
        "https", "git.example.com:8443", "o/r"
    )
    # An ssh port says nothing about where the API listens.
    assert parse_repo_url("ssh://git@git.example.com:2222/o/r") == pullrequests.RepoLocation(
        "https", "git.example.com", "o/r"
    )
