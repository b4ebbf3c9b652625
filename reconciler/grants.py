"""The credential namespace the operator grants to feeds.

The config repository is untrusted (anyone who can open a pull request edits it), so a
feed's ``credentials`` may only *name* secrets the operator set aside for feeds:

- environment variables whose names start with a granted prefix (default
  ``RECONCILER_FEED_``);
- files under a granted directory (default the mounted secrets directory
  ``/var/run/secrets/reconciler``);
- never one of the reconciler's own secrets (Git, webhook, pull-request API, cloud
  identity tokens, the kubeconfig), refused by name even when a prefix or directory
  would match.

A grant may be bound to one registry host (``ghcr.io=RECONCILER_FEED_GHCR_``,
``ghcr.io=/var/run/secrets/reconciler/ghcr``): then only feeds at that host may use it.

Two more operator-side rules decide where a secret may travel:

- over plain ``http`` (or TLS without verification, ``insecure: true``) only to hosts
  the operator lists in ``RECONCILER_ALLOW_HTTP_CREDENTIALS``; ``insecure: true`` in the
  config alone never sends a secret in clear;
- to a bearer-token realm on another host than the registry's only when the operator
  pairs them in ``RECONCILER_TOKEN_REALMS`` (``registry=realm-host``); Docker Hub's
  ``auth.docker.io`` is paired with its registry hosts out of the box.

The settings are read from environment variables (the CLI's ``--credentials-dir`` and
friends set them); lists are comma-separated. Pure: no file is opened here.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CREDENTIALS_DIR_VAR",
    "DEFAULT_CREDENTIALS_DIR",
    "DEFAULT_ENV_PREFIX",
    "DOCKER_HUB_ALIASES",
    "ENV_PREFIX_VAR",
    "HTTP_CREDENTIALS_VAR",
    "OCI_LAYOUT_DIRS_VAR",
    "TOKEN_REALMS_VAR",
    "CredentialPolicy",
    "Grant",
    "canonical_host",
    "feed_host",
    "oci_layout_problem",
    "policy_from_env",
    "provider_host_problem",
    "reserved_env_problem",
]

ENV_PREFIX_VAR = "RECONCILER_FEED_ENV_PREFIX"
CREDENTIALS_DIR_VAR = "RECONCILER_CREDENTIALS_DIR"
HTTP_CREDENTIALS_VAR = "RECONCILER_ALLOW_HTTP_CREDENTIALS"
TOKEN_REALMS_VAR = "RECONCILER_TOKEN_REALMS"  # noqa: S105  # a variable name
OCI_LAYOUT_DIRS_VAR = "RECONCILER_OCI_LAYOUT_DIRS"

DEFAULT_ENV_PREFIX = "RECONCILER_FEED_"
DEFAULT_CREDENTIALS_DIR = "/var/run/secrets/reconciler"

RESERVED_ENV_PREFIXES = (
    "RECONCILER_GIT_",
    "RECONCILER_WEBHOOK_",
    "RECONCILER_ASKPASS_",
    "RECONCILER_API_",
    "RECONCILER_ARGOCD_",
    "RECONCILER_GITHUB_APP_",
)
"""The reconciler's own secrets: Git credentials and the pull-request API token
(``RECONCILER_GIT_*``), webhook secrets, the askpass hand-over variables, the Argo CD
API token used by deployment verification, the GitHub App's settings."""

RESERVED_ENV_NAMES = frozenset(
    {
        ENV_PREFIX_VAR,
        CREDENTIALS_DIR_VAR,
        HTTP_CREDENTIALS_VAR,
        TOKEN_REALMS_VAR,
        OCI_LAYOUT_DIRS_VAR,
        "RECONCILER_CLOUD_REGISTRIES",
        "RECONCILER_GCP_ENDPOINTS",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_CLIENT_SECRET",
        "KUBECONFIG",
    }
)

RESERVED_FILE_VARS_PREFIXES = (
    "RECONCILER_GIT_",
    "RECONCILER_GITHUB_APP_",  # the App's private key: not under RECONCILER_GIT_
    "RECONCILER_WEBHOOK_SECRET",
    "RECONCILER_ARGOCD_",
    "RECONCILER_API_",
)
"""Variables ending in ``_FILE`` under these prefixes name the reconciler's own secret
files; their paths are refused wherever they sit."""

RESERVED_FILE_VARS = (
    "RECONCILER_GIT_KNOWN_HOSTS",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AZURE_FEDERATED_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
"""Cloud workload-identity token files: the operator's identity, not a feed's."""

KUBECONFIG_VAR = "KUBECONFIG"
"""The kubeconfig files verified deployments read the cluster with (a ``:``-separated
list; ``~/.kube/config`` when unset): cluster credentials, never a feed's."""

RESERVED_DIRS = ("/var/run/secrets/kubernetes.io", "/run/secrets/kubernetes.io")
"""The pod's service-account token: never a feed credential."""

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
"""One registry: ``docker.io`` is its name, ``registry-1.docker.io`` its API host and
``index.docker.io`` a legacy alias; grants name any of them for all of them."""

BUILTIN_REALMS = frozenset({(DOCKER_HUB, "auth.docker.io")})
"""Docker Hub's registry answers with a realm on auth.docker.io (documented by Docker)."""


def reserved_env_problem(name: str) -> str | None:
    """Why config may never name environment variable ``name`` (it is one of the
    reconciler's own settings or secrets), or None."""
    if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
        return f"{name} is one of the reconciler's own settings or secrets"
    return None


def oci_layout_problem(url: str, env: Mapping[str, str]) -> str | None:
    """Why an ``oci-layout`` feed may not read the directory ``url`` names, judged on its
    text; or None. A relative path stays inside the work tree (no ``..``, no ``.git``;
    the reader refuses symlinks through reconciler.safepaths); an absolute one (or
    ``~``) must lie under a directory the operator grants in ``RECONCILER_OCI_LAYOUT_DIRS``.
    """
    path = url.strip().removeprefix("file://")
    if path.startswith("~"):
        path = posixpath.expanduser(path)
    if not posixpath.isabs(path):
        names = [name for name in path.split("/") if name not in ("", ".")]
        if not names:
            return f"{path!r} names no directory"
        if ".." in names:
            return f"{path}: '..' is not allowed (the layout must lie inside the repository)"
        if any(name.casefold() == ".git" for name in names):
            return f"{path}: files in .git are not allowed"
        return None
    granted = [_normal_dir(d) for d in _split(env.get(OCI_LAYOUT_DIRS_VAR))]
    if any(_under(posixpath.normpath(path), directory) for directory in granted):
        return None
    allowed = ", ".join(granted) or "none"
    return (
        f"{path} is outside the repository and the layout directories the operator grants"
        f" ({OCI_LAYOUT_DIRS_VAR}: {allowed})"
    )


def canonical_host(host: str) -> str:
    """``host[:port]`` in lower case, Docker Hub's aliases as ``docker.io``."""
    host = host.strip().lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


@dataclass(frozen=True)
class Grant:
    """One granted value (an env prefix or a directory), for every host or one."""

    value: str
    host: str | None = None

    def applies_to(self, host: str) -> bool:
        return self.host is None or canonical_host(self.host) == canonical_host(host)


CLOUD_REGISTRIES_VAR = "RECONCILER_CLOUD_REGISTRIES"

_HOSTS = {
    "aws": re.compile(r"\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"),
    "gcp": re.compile(r"([a-z]+\.)?gcr\.io|[a-z0-9-]+-docker\.pkg\.dev"),
    "azure": re.compile(r"[a-z0-9]+\.azurecr\.(io|cn|us)"),
}


def provider_host_problem(provider: str, host: str, env: Mapping[str, str]) -> str | None:
    """Why ``provider``'s credentials may not go to ``host``, or None."""
    extra = {item.strip().lower() for item in env.get(CLOUD_REGISTRIES_VAR, "").split(",") if item}
    host = canonical_host(host)
    if f"{provider}={host}" in extra or _HOSTS[provider].fullmatch(host.split(":")[0]):
        return None
    return f"{host} is not a {provider} registry; the operator can add it to {CLOUD_REGISTRIES_VAR}"


def feed_host(url: str) -> str:
    """``host[:port]`` of a feed URL (``https://h/x``, ``oci://h/x``, bare ``h/x``), lower
    case and without user info."""
    rest = url.strip().split("://", 1)[-1]
    netloc = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return netloc.lower()


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _grant(item: str) -> Grant:
    """``value`` or ``host=value``; a host never holds ``/``, so a path with ``=`` stays whole."""
    host, sep, rest = item.partition("=")
    if sep and host and "/" not in host and rest:
        return Grant(rest.strip(), host.strip().lower())
    return Grant(item)


def _normal_dir(path: str) -> str:
    return posixpath.normpath(path).rstrip("/") or "/"


def _under(path: str, directory: str) -> bool:
    return directory in ("/", path) or path.startswith(directory + "/")


@dataclass(frozen=True)
class CredentialPolicy:
    """What the operator granted; see the module docstring."""

    env_prefixes: tuple[Grant, ...] = (Grant(DEFAULT_ENV_PREFIX),)
    directories: tuple[Grant, ...] = (Grant(DEFAULT_CREDENTIALS_DIR),)
    http_hosts: frozenset[str] = frozenset()
    realms: frozenset[tuple[str, str]] = BUILTIN_REALMS
    reserved_files: frozenset[str] = frozenset()
    docker_configs: frozenset[str] = frozenset()
    """The operator's docker ``config.json`` files: read only through ``dockerConfig``,
    which sends each entry to its own host; read whole as a ``passwordFile`` they would
    carry every registry's credentials to the feed's host."""

    def env_problem(self, name: str, host: str) -> str | None:
        """Why a feed at ``host`` may not read environment variable ``name``, or None."""
        reserved = reserved_env_problem(name)
        if reserved is not None:
            return reserved
        granted = [g.value for g in self.env_prefixes if g.applies_to(host)]
        if any(name.startswith(prefix) for prefix in granted):
            return None
        allowed = ", ".join(f"{p}*" for p in granted) or "none for this host"
        return f"{name} is outside the environment variables granted to feeds ({allowed})"

    def file_problem(self, path: str, host: str) -> str | None:
        """Why a feed at ``host`` may not read ``path``, judged on its text; or None.

        Callers that open the file check its resolved form too (``resolved_problem``).
        """
        if not posixpath.isabs(path):
            return f"{path} is not an absolute path"
        return self.resolved_problem(posixpath.normpath(path), host)

    def password_file_problem(self, path: str, host: str) -> str | None:
        """``file_problem`` for a ``passwordFile``: the operator's docker config is refused."""
        if posixpath.isabs(path) and posixpath.normpath(path) in self.docker_configs:
            return (
                f"{path} is the operator's docker config; name it with dockerConfig: default,"
                " whose entries go only to their own host"
            )
        return self.file_problem(path, host)

    def resolved_problem(self, path: str, host: str) -> str | None:
        """``file_problem`` for an already normalised or resolved absolute path."""
        if path in self.reserved_files or any(_under(path, d) for d in RESERVED_DIRS):
            return f"{path} is one of the reconciler's own secrets"
        granted = [_normal_dir(g.value) for g in self.directories if g.applies_to(host)]
        if any(_under(path, directory) for directory in granted):
            return None
        allowed = ", ".join(granted) or "none for this host"
        return f"{path} is outside the directories granted to feeds ({allowed})"

    def granted_dirs(self, host: str) -> list[str]:
        return [_normal_dir(g.value) for g in self.directories if g.applies_to(host)]

    def http_credentials_allowed(self, host: str) -> bool:
        """May a secret go to ``host`` in clear (plain http or unverified TLS)?"""
        return canonical_host(host) in self.http_hosts

    def realm_allowed(self, registry_host: str, realm_host: str) -> bool:
        """May the registry's credentials go to a token realm on ``realm_host``?"""
        registry_host, realm_host = canonical_host(registry_host), realm_host.lower()
        return canonical_host(realm_host) == registry_host or (
            (registry_host, realm_host) in self.realms
        )


def policy_from_env(env: Mapping[str, str]) -> CredentialPolicy:
    """The policy the environment describes (defaults for unset variables)."""
    reserved = tuple(
        value
        for name, value in env.items()
        if value
        and (
            name in RESERVED_FILE_VARS
            or (name.startswith(RESERVED_FILE_VARS_PREFIXES) and name.endswith("_FILE"))
        )
    )
    kubeconfigs = env.get(KUBECONFIG_VAR) or posixpath.join(env.get("HOME") or "/", ".kube/config")
    reserved += tuple(path for path in kubeconfigs.split(":") if path)
    docker_dirs = (env.get("DOCKER_CONFIG"), posixpath.join(env.get("HOME") or "/", ".docker"))
    return _policy(
        env.get(ENV_PREFIX_VAR),
        env.get(CREDENTIALS_DIR_VAR),
        env.get(HTTP_CREDENTIALS_VAR),
        env.get(TOKEN_REALMS_VAR),
        tuple(sorted(reserved)),
        tuple(posixpath.join(d, "config.json") for d in docker_dirs if d),
    )


@functools.lru_cache(maxsize=64)
def _policy(
    prefixes: str | None,
    directories: str | None,
    http_hosts: str | None,
    realms: str | None,
    reserved: tuple[str, ...],
    docker_configs: tuple[str, ...] = (),
) -> CredentialPolicy:
    pairs = {_grant(item) for item in _split(realms)}
    return CredentialPolicy(
        env_prefixes=tuple(_grant(p) for p in _split(prefixes)) or (Grant(DEFAULT_ENV_PREFIX),),
        directories=tuple(_grant(d) for d in _split(directories))
        or (Grant(DEFAULT_CREDENTIALS_DIR),),
        http_hosts=frozenset(canonical_host(h) for h in _split(http_hosts)),
        realms=BUILTIN_REALMS
        | {(canonical_host(p.host), p.value.lower()) for p in pairs if p.host},
        reserved_files=frozenset(posixpath.normpath(p) for p in reserved if posixpath.isabs(p)),
        docker_configs=frozenset(
            posixpath.normpath(p) for p in docker_configs if posixpath.isabs(p)
        ),
    )
