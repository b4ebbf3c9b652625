"""Where a config repository lives: clone URL -> web host and path, and which kind of
Git host (GitHub, GitLab, Gitea) serves it, from its name or its API URL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import urlsplit

from reconciler.logs import scrub

__all__ = [
    "HOST_KINDS",
    "HostKind",
    "RepoLocation",
    "as_kind",
    "commit_web_url",
    "default_api_url",
    "detect_kind",
    "kind_from_api_url",
    "parse_repo_url",
    "repository_path",
]

HostKind = Literal["github", "gitlab", "gitea", "bitbucket", "bitbucket-server", "azure-devops"]
HOST_KINDS: tuple[HostKind, ...] = get_args(HostKind)

_API_VERSION_SUFFIX = re.compile(r"(?:/rest)?/api/(?:v\d+|\d+\.\d+|latest)/?$")


@dataclass(frozen=True)
class RepoLocation:
    """Where a repository lives on its host's web side.

    ``scheme`` is the scheme of the web/API side (ssh URLs give ``https``),
    ``host`` the host name (with the port for http(s) URLs only: an ssh port says
    nothing about the API's), ``path`` the repository path without ``.git``:
    ``owner/repo``, or ``group/sub/project`` on GitLab.
    """

    scheme: str
    host: str
    path: str

    @property
    def hostname(self) -> str:
        return self.host.rsplit(":", 1)[0] if self.host.count(":") == 1 else self.host


_URL_SCHEMES = ("https", "http", "ssh", "git", "git+ssh", "ssh+git")
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")


def parse_repo_url(url: str) -> RepoLocation:
    """Split a clone URL into web scheme, host and repository path.

    Accepts ``https://[user[:pass]@]host[:port]/path[.git]``, ``http://``,
    ``ssh://[user@]host[:port]/path[.git]``, ``git://`` and the scp-like
    ``[user@]host:path[.git]``. Credentials in the URL are dropped.
    """
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in _URL_SCHEMES or not parts.hostname:
            raise ValueError(f"cannot tell the Git host from {scrub(text)!r}")
        host = parts.hostname.lower()
        web_scheme = scheme if scheme in ("http", "https") else "https"
        if web_scheme == scheme and parts.port is not None:
            host = f"{host}:{parts.port}"
        path = parts.path
    else:
        match = _SCP_LIKE.match(text)
        if match is None:
            raise ValueError(f"cannot tell the Git host from {scrub(text)!r}")
        web_scheme, host, path = "https", match.group("host").lower(), match.group("path")
    path = path.strip("/")
    path = path.removesuffix(".git").strip("/")
    if not path or "/" not in path:
        raise ValueError(f"{scrub(text)!r} names no owner/repository path")
    return RepoLocation(web_scheme, host, path)


def as_kind(value: str | None) -> HostKind | None:
    for kind in HOST_KINDS:
        if value == kind:
            return kind
    return None


def detect_kind(hostname: str) -> HostKind | None:
    """The host kind implied by well-known host names; None when the name says nothing."""
    if hostname in ("github.com", "www.github.com", "ssh.github.com"):
        return "github"
    if hostname.startswith("gitlab.") or hostname == "altssh.gitlab.com":
        return "gitlab"
    if hostname in ("gitea.com", "codeberg.org") or hostname.startswith("gitea."):
        return "gitea"
    if hostname in ("bitbucket.org", "www.bitbucket.org", "altssh.bitbucket.org"):
        return "bitbucket"
    if hostname.startswith(("bitbucket.", "stash.")):
        return "bitbucket-server"  # Bitbucket Data Center (formerly Server, formerly Stash)
    if hostname in ("dev.azure.com", "ssh.dev.azure.com") or hostname.endswith(".visualstudio.com"):
        return "azure-devops"
    return None


def kind_from_api_url(api_url: str | None) -> HostKind | None:
    """``/api/v3`` is GHES, ``/api/v4`` GitLab, ``/api/v1`` Gitea, ``/rest/api/1.0``
    Bitbucket Data Center; nothing else is guessed."""
    if not api_url:
        return None
    path = urlsplit(api_url).path.rstrip("/")
    if urlsplit(api_url).hostname == "api.github.com" or path.endswith("/api/v3"):
        return "github"
    if path.endswith("/api/v4"):
        return "gitlab"
    if path.endswith("/api/v1"):
        return "gitea"
    if urlsplit(api_url).hostname == "api.bitbucket.org":
        return "bitbucket"
    if path.endswith(("/rest/api/1.0", "/rest/api/latest")):
        return "bitbucket-server"
    return None


def default_api_url(kind: HostKind, location: RepoLocation) -> str:
    """Where the host kind's REST API usually is, for a repository at ``location``."""
    web = f"{location.scheme}://{location.host}"
    if kind == "github":
        if location.hostname in ("github.com", "www.github.com", "ssh.github.com"):
            return "https://api.github.com"
        return f"{web}/api/v3"
    if kind == "bitbucket":
        return "https://api.bitbucket.org/2.0"
    if kind == "bitbucket-server":
        # Clone URLs put repositories under /scm/ (https) or at the root (ssh).
        prefix = location.path.split("/scm/", 1)[0] if "/scm/" in location.path else ""
        return f"{web}{'/' + prefix if prefix else ''}/rest/api/1.0"
    if kind == "azure-devops":
        if location.hostname.endswith(".visualstudio.com"):
            return web
        return "https://dev.azure.com"
    version = "v4" if kind == "gitlab" else "v1"
    return f"{web}/api/{version}"


def repository_path(location: RepoLocation, api_url: str) -> str:
    """The repository path relative to the host's web root.

    A server under a sub-path (``https://example.com/gitea/api/v1`` with clone URL
    ``https://example.com/gitea/owner/repo.git``) has that sub-path in the clone URL
    too; it is not part of the repository's name.
    """
    api = urlsplit(api_url)
    prefix = _API_VERSION_SUFFIX.sub("", api.path).strip("/")
    if (
        prefix
        and (api.hostname or "") == location.hostname
        and location.path.startswith(prefix + "/")
    ):
        return location.path[len(prefix) + 1 :]
    return location.path


_COMMIT_PAGES: dict[HostKind, str] = {
    "github": "{web}/{path}/commit/{sha}",
    "gitlab": "{web}/{path}/-/commit/{sha}",
    "gitea": "{web}/{path}/commit/{sha}",
    "bitbucket": "{web}/{path}/commits/{sha}",
    "azure-devops": "{web}/{path}/commit/{sha}",  # path: org/project/_git/repo
}


def commit_web_url(repo_url: str, sha: str, kind: str | None = None) -> str | None:
    """The web page of commit ``sha`` of the repository cloned from ``repo_url``, or None
    when unknown: a URL with no web host (``file://``, a local path), a host whose kind
    neither ``kind`` nor its name tells, or a layout not derivable from the clone URL
    (Bitbucket Data Center, Azure DevOps over ssh)."""
    try:
        location = parse_repo_url(repo_url)
    except ValueError:
        return None
    resolved = as_kind(kind) or detect_kind(location.hostname)
    page = _COMMIT_PAGES.get(resolved) if resolved is not None else None
    if page is None or (resolved == "azure-devops" and "/_git/" not in location.path):
        return None
    web = f"{location.scheme}://{location.host}"
    return page.format(web=web, path=location.path, sha=sha)
