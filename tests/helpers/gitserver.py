"""Real Git remotes for tests: bare repositories over file:// and smart HTTP.

Fixtures:

``bare_remote``
    Factory ``bare_remote(name="remote", seed=None) -> BareRemote``. ``seed`` is a
    directory or a ``{path: text}`` mapping committed as the initial commit on
    ``main``; without it the remote is empty (no branch at all).
``git_http_server`` (session scoped)
    A threaded ``http.server`` in front of ``git http-backend`` with Basic auth on
    every request. ``server.create_repo(name, seed=None)`` returns a ``BareRemote``
    whose ``url`` is the HTTP URL (without credentials); ``server.username`` and
    ``server.password`` are the valid credentials; ``server.requests`` logs
    ``(method, path, status, user)`` for assertions.

``BareRemote`` reads the remote's branches without a work tree (``show``,
``head``, ``subjects``), installs server hooks, and makes "human" commits from a
separate clone (``human_commit``), as a teammate pushing concurrently would.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

Seed = Path | Mapping[str, str] | None

# Helpers never depend on the developer's git configuration.
_HERMETIC_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "Test Setup",
    "GIT_AUTHOR_EMAIL": "setup@example.com",
    "GIT_COMMITTER_NAME": "Test Setup",
    "GIT_COMMITTER_EMAIL": "setup@example.com",
}


def run_git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run git hermetically; return stdout (stripped); raise with stderr on failure."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_HERMETIC_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def write_files(root: Path, files: Mapping[str, str | None]) -> None:
    """Write each ``path: text`` under root; a ``None`` text deletes the file."""
    for relative, text in files.items():
        target = root / relative
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")


@dataclass
class BareRemote:
    """A bare repository standing in for the Git host."""

    path: Path
    url: str
    branch: str = "main"
    _scratch: Iterator[int] = field(default_factory=itertools.count, repr=False)

    def head(self, ref: str | None = None) -> str | None:
        """The sha the branch points at, or None when it does not exist."""
        out = subprocess.run(
            [
                "git",
                "--git-dir",
                str(self.path),
                "rev-parse",
                "--verify",
                "--quiet",
                f"refs/heads/{ref or self.branch}",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **_HERMETIC_ENV},
        )
        return out.stdout.strip() if out.returncode == 0 else None

    def show(self, file: str, ref: str | None = None) -> str:
        """The text of ``file`` on the branch."""
        return run_git("--git-dir", str(self.path), "show", f"{ref or self.branch}:{file}")

    def files(self, ref: str | None = None) -> list[str]:
        out = run_git(
            "--git-dir", str(self.path), "ls-tree", "-r", "--name-only", ref or self.branch
        )
        return out.splitlines()

    def subjects(self, ref: str | None = None) -> list[str]:
        """Commit subjects of the branch, newest first."""
        return run_git(
            "--git-dir", str(self.path), "log", "--format=%s", ref or self.branch
        ).splitlines()

    def log_format(self, fmt: str, ref: str | None = None) -> list[str]:
        return run_git(
            "--git-dir", str(self.path), "log", f"--format={fmt}", ref or self.branch
        ).splitlines()

    def install_hook(self, name: str, body: str) -> None:
        """Install a server hook, e.g. ``install_hook("pre-receive", "exit 1")``."""
        hook = self.path / "hooks" / name
        hook.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        hook.chmod(0o755)

    def human_commit(
        self,
        files: Mapping[str, str | None],
        message: str = "human change",
        *,
        author: tuple[str, str] = ("Hu Man", "human@example.com"),
    ) -> str:
        """Commit ``files`` on the branch from a separate clone and push it; return its sha."""
        clone = self.path.parent / f"{self.path.name}-human-{next(self._scratch)}-{os.getpid()}"
        run_git("clone", "--quiet", str(self.path), str(clone))
        try:
            if self.head() is None:
                run_git("checkout", "--quiet", "--orphan", self.branch, cwd=clone)
            write_files(clone, files)
            name, email = author
            identity = {
                "GIT_AUTHOR_NAME": name,
                "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": name,
                "GIT_COMMITTER_EMAIL": email,
            }
            run_git("add", "--all", cwd=clone)
            run_git("commit", "--quiet", "-m", message, cwd=clone, env=identity)
            run_git("push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}", cwd=clone)
            return run_git("rev-parse", "HEAD", cwd=clone)
        finally:
            shutil.rmtree(clone, ignore_errors=True)


def create_bare_repo(path: Path, url: str, seed: Seed = None) -> BareRemote:
    run_git("init", "--quiet", "--bare", "--initial-branch=main", str(path))
    remote = BareRemote(path=path, url=url)
    if isinstance(seed, Path):
        files = {
            str(p.relative_to(seed)): p.read_text(encoding="utf-8")
            for p in sorted(seed.rglob("*"))
            if p.is_file()
        }
        remote.human_commit(files, "initial", author=("Test Setup", "setup@example.com"))
    elif seed is not None:
        remote.human_commit(seed, "initial", author=("Test Setup", "setup@example.com"))
    return remote


@pytest.fixture
def bare_remote(tmp_path: Path) -> Callable[..., BareRemote]:
    counter = itertools.count()

    def make(name: str = "remote", seed: Seed = None) -> BareRemote:
        path = tmp_path / f"{name}-{next(counter)}.git"
        return create_bare_repo(path, path.as_uri(), seed)

    return make


# -- smart HTTP --------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int
    user: str | None


class GitHttpServer:
    """``git http-backend`` behind Basic auth on 127.0.0.1 (port chosen by the OS)."""

    def __init__(
        self,
        root: Path,
        username: str = "bot",
        password: str = "s3cr3t-pa55",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: a server context, to serve HTTPS instead of HTTP."""
        self.root = root
        self.username = username
        self.password = password
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._names = itertools.count()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def create_repo(self, name: str = "repo", seed: Seed = None) -> BareRemote:
        """A new bare repo served at ``<base_url>/<unique name>.git``; pushes allowed."""
        unique = f"{name}-{next(self._names)}.git"
        remote = create_bare_repo(self.root / unique, f"{self.base_url}/{unique}", seed)
        run_git("--git-dir", str(remote.path), "config", "http.receivepack", "true")
        return remote

    def requests_for(self, remote: BareRemote) -> list[RequestRecord]:
        prefix = urlsplit(remote.url).path
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def authorized_user(self, header: str | None) -> str | None:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if header == f"Basic {expected}":
            return self.username
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(server: GitHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean; assertions use server.requests

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            user = server.authorized_user(self.headers.get("Authorization"))
            if user is None:
                server.record(RequestRecord(self.command, path, 401, None))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = self._read_body()
            env = {
                **os.environ,
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": user,
                "REMOTE_ADDR": self.client_address[0],
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                **_HERMETIC_ENV,
            }
            result = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
            )
            head, _, payload = result.stdout.partition(b"\r\n\r\n")
            if not payload and b"\n\n" in head:
                head, _, payload = result.stdout.partition(b"\n\n")
            status = 200
            headers: list[tuple[str, str]] = []
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.split()[0])
                elif key:
                    headers.append((key, value.strip()))
            server.record(RequestRecord(self.command, path, status, user))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    return Handler


@pytest.fixture(scope="session")
def git_http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    server = GitHttpServer(tmp_path_factory.mktemp("git-http"))
    try:
        yield server
    finally:
        server.close()
