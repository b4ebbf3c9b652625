"""Bitbucket Cloud, Bitbucket Data Center and Azure DevOps clients against the fakes
of tests/helpers/githosts.py: host detection, credentials, duplicates, updates."""

from __future__ import annotations

import httpx
import pytest

from reconciler.pullrequests import (
    AzureDevOpsPullRequests,
    BitbucketCloudPullRequests,
    BitbucketServerPullRequests,
    PullRequestError,
    host_for,
)
from tests.helpers.githosts import HOSTS, TOKEN

HEAD, BASE = "promote/shop/prod/1.4.0", "main"


def _host(kind: str, **env: str):  # type: ignore[no-untyped-def]
    url, settings, fake_class = HOSTS[kind]
    fake = fake_class()
    host = host_for(url, env={**settings, **env}, transport=httpx.MockTransport(fake.handle))
    return host, fake


@pytest.mark.parametrize(
    ("url", "expected", "api"),
    [
        (
            "https://bitbucket.org/acme/config.git",
            BitbucketCloudPullRequests,
            "https://api.bitbucket.org/2.0",
        ),
        (
            "git@bitbucket.org:acme/config.git",
            BitbucketCloudPullRequests,
            "https://api.bitbucket.org/2.0",
        ),
        (
            "https://bitbucket.acme.internal/scm/OPS/config.git",
            BitbucketServerPullRequests,
            "https://bitbucket.acme.internal/rest/api/1.0",
        ),
        (
            "https://acme@dev.azure.com/acme/shop/_git/config",
            AzureDevOpsPullRequests,
            "https://dev.azure.com",
        ),
        (
            "git@ssh.dev.azure.com:v3/acme/shop/config",
            AzureDevOpsPullRequests,
            "https://dev.azure.com",
        ),
        (
            "https://acme.visualstudio.com/shop/_git/config",
            AzureDevOpsPullRequests,
            "https://acme.visualstudio.com",
        ),
    ],
)
def test_host_kind_and_api_url_from_the_clone_url(url: str, expected: type, api: str) -> None:
    host = host_for(url, env={})
    assert type(host) is expected
    assert host.api_url == api  # type: ignore[attr-defined]


def test_the_kind_can_be_set_for_hosts_whose_name_says_nothing() -> None:
    host = host_for(
        "ssh://git@git.acme.internal:7999/OPS/config.git",
        env={"RECONCILER_GIT_HOST_KIND": "bitbucket-server"},
    )
    assert type(host) is BitbucketServerPullRequests
    assert host.api_url == "https://git.acme.internal/rest/api/1.0"  # type: ignore[attr-defined]
    with pytest.raises(PullRequestError, match="azure-devops"):
        host_for("https://git.acme.internal/a/b.git", env={})


@pytest.mark.parametrize("kind", sorted(HOSTS))
def test_open_find_update_close_and_a_duplicate_returns_the_open_one(kind: str) -> None:
    host, fake = _host(kind)
    opened = host.open(HEAD, BASE, "Promote shop 1.4.0 to prod", "body")
    assert (opened.number, opened.state, opened.head, opened.base) == (1, "open", HEAD, BASE)
    assert opened.url.startswith("https://")
    again = host.open(HEAD, BASE, "Promote shop 1.4.0 to prod", "body")  # host refuses: same one
    assert again.number == 1 and len(fake.prs) == 1
    assert host.find(HEAD, BASE) == opened
    assert host.find("promote/other", BASE) is None
    assert host.update(1, title="New title").title == "New title"
    assert host.update(1, body="only the body").title == "New title"
    closed = host.close(1, "Superseded by release 1.4.1.")
    assert closed.state == "closed" and fake.comments == [(1, "Superseded by release 1.4.1.")]
    fake.merge(0)
    assert host.get(1).state == "merged"


@pytest.mark.parametrize("kind", sorted(HOSTS))
def test_a_wrong_token_is_a_clear_error_that_never_shows_the_token(kind: str) -> None:
    host, _ = _host(kind, RECONCILER_GIT_TOKEN="wrong-" + TOKEN)
    with pytest.raises(PullRequestError) as caught:
        host.find(HEAD, BASE)
    assert caught.value.status == 401 and "authentication failed" in str(caught.value)
    assert TOKEN not in str(caught.value)
