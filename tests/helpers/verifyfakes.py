"""Local fakes of the APIs verification reads, each serving real HTTP on loopback.

None of these services runs here, so each fake answers with the documented shapes:

* :class:`FakeKubernetesAPI` - the Kubernetes API's custom-resource paths
  (``GET /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}``, a ``Status`` object
  with ``reason: NotFound``/``code: 404`` when absent, bearer-token auth), per the
  Kubernetes API concepts page ("API terminology", "Resource URIs") and the ``Status``
  kind in ``meta/v1``. The objects it serves are Argo CD Applications (argo-cd
  ``pkg/apis/application/v1alpha1/types.go``) and Flux Kustomizations/HelmReleases (Flux
  API reference, kustomize.toolkit.fluxcd.io/v1 and helm.toolkit.fluxcd.io/v2).
* :class:`FakeArgoCDServer` - Argo CD's REST API, ``GET /api/v1/applications/{name}
  ?appNamespace=`` with ``Authorization: Bearer <token>`` (Argo CD "API docs", swagger
  ``ApplicationService_Get``); a missing app is 404 ``{"error","code":5,"message"}``
  (gRPC NotFound through grpc-gateway).
* :class:`FakeGitHost` - commit statuses: GitHub REST "List commit statuses for a
  reference" and "List check runs for a Git reference"; GitLab "List the statuses of a
  commit" (``/projects/:id/repository/commits/:sha/statuses``); Gitea/Forgejo
  ``GET /repos/{owner}/{repo}/commits/{ref}/statuses`` (swagger ``CommitStatus``).

Each fake records the requests it got (``requests``), so tests can assert on auth.
Setting ``outage`` to an HTTP status makes every answer that status.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Route = Callable[[str, dict[str, list[str]], dict[str, str]], tuple[int, Any]]


@dataclass
class Recorded:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class _FakeServer:
    """A loopback HTTP server that hands GETs to ``route``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.outage: int | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                query = parse_qs(parts.query)
                fake.requests.append(Recorded(parts.path, query, headers))
                if fake.outage is not None:
                    status, body = fake.outage, {"message": "unavailable"}
                else:
                    status, body = fake.route(unquote(parts.path), query, headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def route(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, Any]:
        raise NotImplementedError

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _status_not_found(group: str, plural: str, name: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'{plural}.{group} "{name}" not found',
        "reason": "NotFound",
        "details": {"name": name, "group": group, "kind": plural},
        "code": 404,
    }


class FakeKubernetesAPI(_FakeServer):
    """Custom resources by path; ``objects[(plural, namespace, name)] = object``."""

    TOKEN = "fake-service-account-token"

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        super().__init__()

    def put(self, document: dict[str, Any]) -> None:
        plural = {"Application": "applications", "Kustomization": "kustomizations"}.get(
            document["kind"], "helmreleases"
        )
        meta = document["metadata"]
        self.objects[(plural, meta["namespace"], meta["name"])] = document

    def route(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.TOKEN}":
            return 401, {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": "Unauthorized",
                "reason": "Unauthorized",
                "code": 401,
            }
        parts = path.strip("/").split("/")
        # apis / group / version / namespaces / ns / plural / name
        if len(parts) != 7 or parts[0] != "apis" or parts[3] != "namespaces":
            return 404, _status_not_found("", "", path)
        group, _, _, namespace, plural, name = parts[1:]
        found = self.objects.get((plural, namespace, name))
        if found is None:
            return 404, _status_not_found(group, plural, name)
        return 200, found

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "reader", "user": {"token": self.TOKEN}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "reader"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path


class FakeArgoCDServer(_FakeServer):
    """``applications[(namespace, name)] = Application``; needs ``Bearer TOKEN``."""

    TOKEN = "fake-argocd-token"

    def __init__(self) -> None:
        self.applications: dict[tuple[str, str], dict[str, Any]] = {}
        super().__init__()

    def route(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.TOKEN}":
            return 401, {"error": "invalid session", "code": 16, "message": "invalid session"}
        prefix = "/api/v1/applications/"
        if not path.startswith(prefix):
            return 404, {"error": "Not Found", "code": 5, "message": "Not Found"}
        name = path[len(prefix) :]
        namespace = query.get("appNamespace", ["argocd"])[0]
        found = self.applications.get((namespace, name))
        if found is None:
            message = f'applications.argoproj.io "{name}" not found'
            return 404, {"error": message, "code": 5, "message": message}
        return 200, found


@dataclass
class _Commit:
    statuses: list[dict[str, Any]] = field(default_factory=list)
    check_runs: list[dict[str, Any]] = field(default_factory=list)


class FakeGitHost(_FakeServer):
    """Statuses per commit, for ``kind`` github, gitlab or gitea (API roots as the real
    hosts: ``/api/v3`` for GHES, ``/api/v4`` GitLab, ``/api/v1`` Gitea)."""

    TOKEN = "fake-git-token"

    def __init__(self, kind: str, repository: str = "acme/config") -> None:
        self.kind = kind
        self.repository = repository
        self.commits: dict[str, _Commit] = {}
        super().__init__()

    @property
    def api_url(self) -> str:
        return self.url + {"github": "/api/v3", "gitlab": "/api/v4", "gitea": "/api/v1"}[self.kind]

    def post_status(self, sha: str, context: str, state: str, description: str = "") -> None:
        """As the host stores a status a CI or GitOps agent posted (newest first)."""
        commit = self.commits.setdefault(sha, _Commit())
        stamp = f"2026-01-01T00:00:{len(commit.statuses):02d}Z"
        if self.kind == "gitlab":
            row = {
                "id": len(commit.statuses) + 1,
                "sha": sha,
                "ref": "main",
                "status": state,
                "name": context,
                "description": description,
                "created_at": stamp,
                "target_url": None,
                "allow_failure": False,
            }
        elif self.kind == "gitea":
            row = {
                "id": len(commit.statuses) + 1,
                "status": state,
                "context": context,
                "description": description,
                "created_at": stamp,
                "updated_at": stamp,
                "target_url": "",
                "url": "",
            }
        else:
            row = {
                "id": len(commit.statuses) + 1,
                "state": state,
                "context": context,
                "description": description,
                "created_at": stamp,
                "updated_at": stamp,
                "target_url": None,
                "url": "",
            }
        commit.statuses.insert(0, row)

    def add_check_run(self, sha: str, name: str, status: str, conclusion: str | None) -> None:
        """A GitHub check run (``status`` queued|in_progress|completed)."""
        commit = self.commits.setdefault(sha, _Commit())
        commit.check_runs.append(
            {
                "id": len(commit.check_runs) + 1,
                "head_sha": sha,
                "name": name,
                "status": status,
                "conclusion": conclusion,
                "started_at": "2026-01-01T00:00:00Z",
                "completed_at": "2026-01-01T00:01:00Z" if status == "completed" else None,
                "output": {"title": f"{name} {conclusion or status}", "summary": ""},
            }
        )

    def _authorised(self, headers: dict[str, str]) -> bool:
        if self.kind == "gitlab":
            return headers.get("private-token") == self.TOKEN
        return headers.get("authorization") == f"token {self.TOKEN}"

    def route(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, Any]:
        if not self._authorised(headers):
            return 401, {"message": "Bad credentials"}
        root = urlsplit(self.api_url).path
        rest = path[len(root) :]
        for sha, commit in self.commits.items():
            if self.kind == "gitlab":
                if rest == f"/projects/{self.repository}/repository/commits/{sha}/statuses":
                    return 200, commit.statuses
            elif rest == f"/repos/{self.repository}/commits/{sha}/statuses":
                return 200, commit.statuses
            elif (
                self.kind == "github"
                and rest == f"/repos/{self.repository}/commits/{sha}/check-runs"
            ):
                return 200, {"total_count": len(commit.check_runs), "check_runs": commit.check_runs}
        if rest.endswith("/check-runs"):
            return 200, {"total_count": 0, "check_runs": []}
        return 200, []
