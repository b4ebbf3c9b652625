"""The I/O edge of verification: read what the GitOps agent, the Git host or a service
reports. Every read returns the document as the agent wrote it (judged in
:mod:`reconciler.verify.judge`) or raises :class:`ProbeUnavailable`: an outage leaves a
deployment pending, it never fails it.

Kubernetes is read through lightkube (in-cluster service account or ``KUBECONFIG``,
exec and token auth handled by the library). Chosen over the official ``kubernetes``
client (urllib3 plus thousands of generated models, slow to import, no httpx), kr8s
(async-first with a sync shim) and pykube-ng (requests, little maintenance): lightkube
is small, typed, and its 0.x line is built on httpx like the rest of the reconciler.
Only ``get`` is used, so the RBAC it needs is read-only.

The Argo CD API server's URL (``RECONCILER_ARGOCD_SERVER``) and the secrets (the
Argo CD token, the Git host token) come from the operator's environment, never from
the config repository: ``RECONCILER_ARGOCD_TOKEN`` (or ``..._FILE``) and the
pull-request token ``RECONCILER_GIT_TOKEN`` (or ``..._FILE``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx

from reconciler.errors import ReconcilerError
from reconciler.logs import register_secret
from reconciler.verify.judge import StatusEntry

__all__ = [
    "ARGOCD_SERVER_ENV",
    "ARGOCD_TOKEN_ENV",
    "RESOURCES",
    "ArgoCDServer",
    "GitHostStatuses",
    "KubernetesObjects",
    "ObjectSource",
    "ProbeUnavailable",
    "http_get",
    "secret_from_env",
]

ARGOCD_SERVER_ENV = "RECONCILER_ARGOCD_SERVER"
ARGOCD_TOKEN_ENV = "RECONCILER_ARGOCD_TOKEN"  # noqa: S105 - a variable name
GIT_TOKEN_ENV = "RECONCILER_GIT_TOKEN"  # noqa: S105 - a variable name
OUTAGE_RETRY = 30.0  # seconds before asking an unreachable service again
MAX_BODY = 256 * 1024  # bytes of a probed body kept for ``expect``


class ProbeUnavailable(ReconcilerError):
    """The service could not be asked (network, 5xx, 429, auth): try again later."""

    def __init__(self, message: str, retry_after: float = OUTAGE_RETRY) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Resource:
    """A namespaced custom resource type, as the Kubernetes API addresses it."""

    group: str
    version: str
    kind: str
    plural: str


#: The kinds verification reads (what the read-only RBAC must allow: get).
RESOURCES: dict[str, Resource] = {
    "Application": Resource("argoproj.io", "v1alpha1", "Application", "applications"),
    "Kustomization": Resource(
        "kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"
    ),
    "HelmRelease": Resource("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"),
}


def secret_from_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``$NAME``, else the content of the file named by ``$NAME_FILE``; registered for
    redaction. Read on every use so rotations apply at once."""
    environ = os.environ if environ is None else environ
    value = environ.get(name, "").strip()
    if not value and environ.get(f"{name}_FILE"):
        try:
            value = Path(environ[f"{name}_FILE"]).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ProbeUnavailable(f"cannot read {name}_FILE: {error.strerror}") from None
    if value:
        register_secret(value)
    return value or None


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(1.0, min(float(response.headers.get("retry-after", "")), 3600.0))
    except ValueError:
        return OUTAGE_RETRY


def _answer_or_outage(response: httpx.Response, what: str) -> httpx.Response:
    """``response`` when usable; ProbeUnavailable for 5xx, 429, 401 and 403."""
    if response.status_code >= 500 or response.status_code in (401, 403, 429):
        raise ProbeUnavailable(f"{what} answered {response.status_code}", _retry_after(response))
    return response


class ObjectSource(Protocol):
    """Reads one namespaced object as a plain mapping; None when it does not exist."""

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...


class KubernetesObjects:
    """Objects from the Kubernetes API through lightkube (``KUBECONFIG`` or in-cluster)."""

    def __init__(self, config_factory: Callable[[], Any] | None = None) -> None:
        self._config_factory = config_factory
        self._client: Any = None

    def _connect(self) -> Any:
        if self._client is None:
            # lightkube is imported on first use: most sidecars never read the cluster.
            from lightkube import Client
            from lightkube.config.kubeconfig import KubeConfig
            from lightkube.core.exceptions import ConfigError

            try:
                config = (self._config_factory or KubeConfig.from_env)()
            except (ConfigError, OSError, ValueError) as error:
                # a kubeconfig being mounted or rotated: pending, like an outage
                raise ProbeUnavailable(f"no usable Kubernetes configuration: {error}") from None
            self._client = Client(config=config, timeout=httpx.Timeout(10.0))
        return self._client

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        from lightkube import ApiError
        from lightkube.generic_resource import create_namespaced_resource

        resource = RESOURCES[kind]
        client = self._connect()
        model = create_namespaced_resource(
            resource.group, resource.version, resource.kind, resource.plural
        )
        where = f"Kubernetes API ({kind} {namespace}/{name})"
        try:
            found = client.get(model, name, namespace=namespace)
        except ApiError as error:
            code = error.status.code or 0
            if code == 404:
                return None
            raise ProbeUnavailable(f"{where} answered {code}: {error.status.message}") from None
        except httpx.HTTPError as error:
            raise ProbeUnavailable(f"{where} unreachable: {type(error).__name__}") from None
        document: Mapping[str, Any] = found.to_dict()
        return document

    def close(self) -> None:
        if self._client is not None:
            self._client._client._client.close()  # lightkube keeps its httpx.Client there
            self._client = None


@dataclass
class ArgoCDServer:
    """Applications from the Argo CD API server: ``GET /api/v1/applications/{name}
    ?appNamespace={namespace}`` with a bearer token; the answer is the Application."""

    url: str
    http: httpx.Client
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        token = secret_from_env(ARGOCD_TOKEN_ENV, self.environ)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.url.rstrip('/')}/api/v1/applications/{quote(name, safe='')}"
        try:
            response = self.http.get(url, params={"appNamespace": namespace}, headers=headers)
        except httpx.HTTPError as error:
            raise ProbeUnavailable(f"Argo CD unreachable: {type(error).__name__}") from None
        _answer_or_outage(response, "Argo CD")
        if response.status_code == 404:
            return None
        application = _json_object(response, "Argo CD")
        if not isinstance(application, Mapping):
            raise ProbeUnavailable("Argo CD answered JSON that is not an Application")
        return application


def _json_object(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProbeUnavailable(f"{what} answered {response.status_code} without JSON") from None


@dataclass
class GitHostStatuses:
    """Commit statuses (and GitHub check runs) from a Git host's REST API.

    GitHub ``GET /repos/{repo}/commits/{sha}/statuses`` and ``.../check-runs``, GitLab
    ``GET /projects/{id}/repository/commits/{sha}/statuses``, Gitea/Forgejo
    ``GET /repos/{repo}/commits/{sha}/statuses``; token from ``RECONCILER_GIT_TOKEN``.
    """

    kind: Literal["github", "gitlab", "gitea"]
    api_url: str
    repository: str  # owner/name, or group/sub/project on GitLab
    http: httpx.Client
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        token = secret_from_env(GIT_TOKEN_ENV, self.environ)
        headers = {"Accept": "application/json"}
        if token:
            headers["PRIVATE-TOKEN" if self.kind == "gitlab" else "Authorization"] = (
                token if self.kind == "gitlab" else f"token {token}"
            )
        try:
            response = self.http.get(
                f"{self.api_url.rstrip('/')}{path}", params=params, headers=headers
            )
        except httpx.HTTPError as error:
            raise ProbeUnavailable(f"{self.kind} unreachable: {type(error).__name__}") from None
        _answer_or_outage(response, self.kind)
        if response.status_code == 404:
            return []
        return _json_object(response, self.kind)

    def statuses(self, sha: str) -> list[StatusEntry]:
        if self.kind == "gitlab":
            project = quote(self.repository, safe="")
            rows = self._get(
                f"/projects/{project}/repository/commits/{sha}/statuses", {"per_page": "100"}
            )
            return [_entry(r, "name", "status") for r in _rows(rows)]
        if self.kind == "gitea":
            rows = self._get(f"/repos/{self.repository}/commits/{sha}/statuses", {"limit": "50"})
            return [_entry(r, "context", "status") for r in _rows(rows)]
        rows = self._get(f"/repos/{self.repository}/commits/{sha}/statuses", {"per_page": "100"})
        entries = [_entry(r, "context", "state") for r in _rows(rows)]
        runs = self._get(f"/repos/{self.repository}/commits/{sha}/check-runs", {"per_page": "100"})
        check_runs = runs.get("check_runs", []) if isinstance(runs, Mapping) else []
        return entries + [_check_run(r) for r in _rows(check_runs)]


def _rows(value: Any) -> list[Mapping[str, Any]]:
    return [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []


def _entry(row: Mapping[str, Any], context_key: str, state_key: str) -> StatusEntry:
    return StatusEntry(
        context=str(row.get(context_key) or ""),
        state=str(row.get(state_key) or "").lower(),
        description=str(row.get("description") or ""),
        created=str(row.get("updated_at") or row.get("created_at") or ""),
    )


def _check_run(row: Mapping[str, Any]) -> StatusEntry:
    """A GitHub check run: its conclusion once completed, else queued/in_progress."""
    completed = row.get("status") == "completed"
    state = row.get("conclusion") if completed else row.get("status")
    output = row.get("output")
    summary = output.get("title") if isinstance(output, Mapping) else None
    return StatusEntry(
        context=str(row.get("name") or ""),
        state=str(state or "").lower(),
        description=str(summary or ""),
        created=str(row.get("completed_at") or row.get("started_at") or ""),
    )


def http_get(http: httpx.Client, url: str) -> tuple[int, str]:
    """(status, the first MAX_BODY bytes of the body as text); outages raise."""
    try:
        with http.stream("GET", url) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= MAX_BODY:
                    break
    except httpx.HTTPError as error:
        raise ProbeUnavailable(f"GET {url} failed: {type(error).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ProbeUnavailable(f"GET {url} answered {response.status_code}", _retry_after(response))
    return response.status_code, body[:MAX_BODY].decode("utf-8", "replace")


def git_host_statuses(
    repo_url: str, environ: Mapping[str, str], http: httpx.Client
) -> GitHostStatuses | None:
    """The commit-status reader for the config repository's host, resolved like
    pull-request mode (``RECONCILER_GIT_HOST_KIND``, ``RECONCILER_GIT_API_URL``, else
    the URL); None when the host cannot be told (commitStatus checks stay pending)."""
    from reconciler.pullrequests import urls  # the one place that parses clone URLs

    try:
        location = urls.parse_repo_url(repo_url)
    except ValueError:
        return None
    api_url = environ.get("RECONCILER_GIT_API_URL", "").strip() or None
    kind = (
        urls.as_kind(environ.get("RECONCILER_GIT_HOST_KIND", "").strip().lower() or None)
        or urls.detect_kind(location.hostname)
        or urls.kind_from_api_url(api_url)
    )
    if kind not in ("github", "gitlab", "gitea"):
        return None  # unknown, or a host whose statuses are not read (yet): pending
    api_url = (api_url or urls.default_api_url(kind, location)).rstrip("/")
    return GitHostStatuses(kind, api_url, urls.repository_path(location, api_url), http, environ)
