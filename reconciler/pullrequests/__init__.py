"""Pull (merge) requests on the Git host, for ``promotion: pull-request`` mode.

In pull-request mode a promotion is not committed to the target branch directly:
the reconciler pushes ``promote/<project>/<env>/<version>`` (``gitrepo.WorkTree``
does the git side) and opens a pull request here. Merging it *is* the approval;
later passes look the request up with :meth:`PullRequestHost.find` and act on
``merged`` or ``closed``. A request for a superseded release is closed with a
comment, or updated in place.

One class per host API, all behind :class:`PullRequestHost`:

* GitHub and GitHub Enterprise Server (REST, ``/api/v3`` on GHES),
* GitLab (``/api/v4``; merge requests are addressed by their per-project ``iid``),
* Gitea and Forgejo (``/api/v1``),
* Bitbucket Cloud (REST 2.0) and Bitbucket Data Center (``/rest/api/1.0``),
* Azure DevOps Repos (REST 7.1, personal access tokens).

The package: ``urls`` (clone URL -> host, path and kind), ``client`` (the shared
HTTP client, the error and the protocol), then one module per host: ``github``,
``gitlab``, ``gitea``, ``bitbucket`` (Cloud), ``bitbucket_server`` (Data Center),
``azure``.

:func:`host_for` picks the class from the config repository's URL (https, ssh or
scp-like ``git@host:owner/repo.git``), or from explicit settings for self-hosted
servers whose name says nothing (``RECONCILER_GIT_HOST_KIND``,
``RECONCILER_GIT_API_URL``).

See ``client`` for the token and error rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from reconciler.pullrequests.azure import AzureDevOpsPullRequests
from reconciler.pullrequests.bitbucket import BitbucketCloudPullRequests
from reconciler.pullrequests.bitbucket_server import BitbucketServerPullRequests
from reconciler.pullrequests.client import (
    DEFAULT_TOKEN_ENV,
    TRANSIENT_RETRY_AFTER,
    HostClient,
    PullRequest,
    PullRequestError,
    PullRequestHost,
    PullRequestState,
)
from reconciler.pullrequests.gitea import GITEA_MAX_PAGES, GiteaPullRequests
from reconciler.pullrequests.github import GitHubPullRequests
from reconciler.pullrequests.gitlab import GitLabMergeRequests
from reconciler.pullrequests.urls import (
    HOST_KINDS,
    HostKind,
    RepoLocation,
    as_kind,
    default_api_url,
    detect_kind,
    kind_from_api_url,
    parse_repo_url,
    repository_path,
)

__all__ = [
    "ENV_API_URL",
    "ENV_HOST_KIND",
    "GITEA_MAX_PAGES",
    "TRANSIENT_RETRY_AFTER",
    "AzureDevOpsPullRequests",
    "BitbucketCloudPullRequests",
    "BitbucketServerPullRequests",
    "GitHubPullRequests",
    "GitLabMergeRequests",
    "GiteaPullRequests",
    "HostKind",
    "PullRequest",
    "PullRequestError",
    "PullRequestHost",
    "PullRequestState",
    "RepoLocation",
    "host_for",
    "parse_repo_url",
]

ENV_HOST_KIND = "RECONCILER_GIT_HOST_KIND"
ENV_API_URL = "RECONCILER_GIT_API_URL"

_HOST_CLASSES: Mapping[HostKind, type[HostClient]] = {
    "github": GitHubPullRequests,
    "gitlab": GitLabMergeRequests,
    "gitea": GiteaPullRequests,
    "bitbucket": BitbucketCloudPullRequests,
    "bitbucket-server": BitbucketServerPullRequests,
    "azure-devops": AzureDevOpsPullRequests,
}


def host_for(
    repo_url: str,
    *,
    kind: HostKind | None = None,
    api_url: str | None = None,
    token_env: str = DEFAULT_TOKEN_ENV,
    env: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> PullRequestHost:
    """The pull request client for the host serving ``repo_url``.

    ``kind`` and ``api_url`` default to ``RECONCILER_GIT_HOST_KIND`` and
    ``RECONCILER_GIT_API_URL`` from ``env`` (default ``os.environ``), then to what
    the URL says: github.com, ``gitlab.*``, gitea.com, codeberg.org, ``gitea.*``,
    bitbucket.org, ``bitbucket.*`` / ``stash.*`` (Data Center), dev.azure.com and
    ``*.visualstudio.com`` are recognised; an API URL ending in ``/api/v3``,
    ``/api/v4``, ``/api/v1`` or ``/rest/api/1.0`` names GHES, GitLab, Gitea or
    Bitbucket Data Center. Anything else needs the kind configured.
    """
    environment: Mapping[str, str] = os.environ if env is None else env
    try:
        location = parse_repo_url(repo_url)
    except ValueError as error:
        raise PullRequestError("git host", str(error)) from None
    api_url = api_url or environment.get(ENV_API_URL, "").strip() or None
    configured_kind = kind or environment.get(ENV_HOST_KIND, "").strip().lower() or None
    if configured_kind is not None and as_kind(configured_kind) is None:
        raise PullRequestError(
            location.host,
            f"unknown Git host kind {configured_kind!r} (expected one of {', '.join(HOST_KINDS)})",
        )
    resolved = (
        as_kind(configured_kind) or detect_kind(location.hostname) or kind_from_api_url(api_url)
    )
    if resolved is None:
        raise PullRequestError(
            location.host,
            "cannot tell which kind of Git host this is: set "
            f"{ENV_HOST_KIND} to one of {', '.join(HOST_KINDS)} (and {ENV_API_URL} if the "
            "API is not at the usual place)",
        )
    api_url = (api_url or default_api_url(resolved, location)).rstrip("/")
    path = repository_path(location, api_url)
    host_class = _HOST_CLASSES[resolved]
    return host_class(api_url, path, token_env=token_env, env=environment, transport=transport)
