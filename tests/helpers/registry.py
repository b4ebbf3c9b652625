"""Real registry fixtures: Debian ``docker-registry`` (CNCF distribution 2.8).

``registry`` (anonymous), ``registry_basic`` (htpasswd) and ``registry_token``
(bearer tokens from a small token server in a thread) are session scoped: each
xdist worker starts its own servers on 127.0.0.1 port 0. Tests share a server, so
they must use their own repository names (``unique_repo``).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from reconciler import model
from tests.helpers.oci import RegistryAuth, delete_manifest, push_image

REGISTRY_BINARY = "docker-registry"
USERNAME = "tester"
PASSWORD = "s3cret:with-colon"  # a colon checks that user:password is split at the first
REFRESH_TOKEN = "refresh-0a1b2c"  # an identity token the token server exchanges for USERNAME
TOKEN_SERVICE = "test-registry"
TOKEN_ISSUER = "test-issuer"
START_TIMEOUT = 15.0


@dataclass
class TokenServer:
    """A tiny Docker-style token server (GET /token?service=&scope=...).

    Users in ``users`` get every action they ask for; anonymous callers get ``pull``
    on repositories under ``public/`` only. ``requests`` logs every call (user or
    None, scopes), so tests can count token fetches. ``expires_in`` is adjustable.
    ``POST /token`` takes the OAuth2 refresh-token grant (form: ``grant_type=
    refresh_token``, ``refresh_token``, ``scope``, ``service``, ``client_id``) for the
    tokens in ``refresh_tokens`` (token -> user), as ``docker login`` identity tokens use.
    """

    users: dict[str, str]
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    expires_in: int = 300
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    cert_path: Path | None = None
    _server: ThreadingHTTPServer | None = None
    _key: rsa.RSAPrivateKey | None = None
    _cert_der: bytes = b""

    def start(self, workdir: Path) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token issuer")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.cert_path = workdir / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _grant(self, user: str | None, scope: str) -> dict[str, Any] | None:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind != "repository" or not name:
            return None
        wanted = [a for a in actions.split(",") if a]
        if user is None:
            wanted = [a for a in wanted if a == "pull"] if name.startswith("public/") else []
        return {"type": kind, "name": name, "actions": wanted}

    def issue(self, user: str | None, scopes: list[str], service: str) -> str:
        assert self._key is not None
        now = int(time.time())
        access = [grant for scope in scopes if (grant := self._grant(user, scope)) is not None]
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": user or "",
            "aud": service,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        headers = {"x5c": [base64.b64encode(self._cert_der).decode()]}
        return jwt.encode(claims, self._key, algorithm="RS256", headers=headers)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                user: str | None = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    decoded = base64.b64decode(header[6:]).decode()
                    name, _, password = decoded.partition(":")
                    if server.users.get(name) != password:
                        server.requests.append({"user": name, "rejected": True})
                        self._send(401, {"details": "invalid credentials"})
                        return
                    user = name
                scopes = query.get("scope", [])
                server.requests.append({"user": user, "scopes": scopes, "rejected": False})
                token = server.issue(user, scopes, query.get("service", [""])[0])
                self._send(
                    200,
                    {"token": token, "access_token": token, "expires_in": server.expires_in},
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                grant = form.get("grant_type", [""])[0]
                user = server.refresh_tokens.get(form.get("refresh_token", [""])[0])
                if grant != "refresh_token" or user is None or not form.get("client_id"):
                    server.requests.append({"grant": grant, "user": None, "rejected": True})
                    self._send(401, {"error": "invalid_grant"})
                    return
                scopes = form.get("scope", [""])[0].split()
                server.requests.append(
                    {"grant": grant, "user": user, "scopes": scopes, "rejected": False}
                )
                token = server.issue(user, scopes, form.get("service", [""])[0])
                self._send(200, {"access_token": token, "expires_in": server.expires_in})

            def _send(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@dataclass
class RegistryServer:
    """A running docker-registry. ``push``/``delete`` use credentials when it has any."""

    url: str
    process: subprocess.Popen[bytes]
    root: Path
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        auth = RegistryAuth(self.username, self.password) if self.username else None
        self.client = httpx.Client(auth=auth, timeout=10.0)

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def feed(self, *, name: str = "test", **overrides: Any) -> model.Feed:
        """A ``model.Feed`` for this registry (insecure: it speaks plain http)."""
        fields: dict[str, Any] = {"name": name, "type": "oci", "url": self.url, "insecure": True}
        fields.update(overrides)
        return model.Feed(**fields)

    def operator_env(self) -> dict[str, str]:
        """The operator's grants (reconciler.grants) a client of this server needs: it
        speaks plain http, its token server (if any) listens on another port, and
        tests keep secret files in the temporary directory."""
        hosts = [self.host]
        env = {"RECONCILER_CREDENTIALS_DIR": tempfile.gettempdir()}
        if self.token_server is not None:
            realm_host = self.token_server.url.removeprefix("http://")
            hosts.append(realm_host)
            env["RECONCILER_TOKEN_REALMS"] = f"{self.host}={realm_host}"
        env["RECONCILER_ALLOW_HTTP_CREDENTIALS"] = ",".join(hosts)
        return env

    def env(self, password: str | None = None) -> dict[str, str]:
        """Environment holding this server's credentials (for ``password_env``), or
        ``password`` instead of the right one, plus ``operator_env``."""
        return {
            **self.operator_env(),
            "RECONCILER_FEED_REG_USER": self.username or "",
            "RECONCILER_FEED_REG_PASSWORD": password or self.password or "",
        }

    def credentials(self) -> model.Credentials:
        return model.Credentials(
            username_env="RECONCILER_FEED_REG_USER", password_env="RECONCILER_FEED_REG_PASSWORD"
        )

    def push(self, repo: str, tag: str, **options: Any) -> str:
        """Push a tiny image; options as ``tests.helpers.oci.image_kwargs``.

        Without ``content`` each tag is its own build (content ``repo:tag``), as in a
        real registry; pass the same ``content`` (and ``created``) to tag one image twice.
        """
        options.setdefault("content", f"{repo}:{tag}".encode())
        return push_image(self.client, self.url, repo, tag, **options)

    def delete(self, repo: str, digest: str) -> None:
        delete_manifest(self.client, self.url, repo, digest)

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.token_server is not None:
            self.token_server.stop()


def unique_repo(prefix: str = "t") -> str:
    """A repository name no other test uses (tests share one server per worker)."""
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def start_registry(
    workdir: Path,
    auth: dict[str, Any] | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    token_server: TokenServer | None = None,
    extra: dict[str, Any] | None = None,
    addr: str = "127.0.0.1:0",
) -> RegistryServer:
    """Start docker-registry on ``addr`` and wait until it listens.

    ``extra`` adds top-level config sections (e.g. ``notifications``).
    """
    binary = shutil.which(REGISTRY_BINARY) or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
    )
    if binary is None:
        pytest.fail(
            "docker-registry is not installed: apt-get install -y docker-registry apache2-utils"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": addr},
    }
    if auth is not None:
        config["auth"] = auth
    config.update(extra or {})
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, "serve", str(config_path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if "listening on" in line:
                address = line.split("listening on", 1)[1].strip().split()[0].strip('"')
                port = address.rsplit(":", 1)[1]
                return RegistryServer(
                    url=f"http://127.0.0.1:{port}",
                    process=process,
                    root=workdir,
                    username=username,
                    password=password,
                    token_server=token_server,
                )
        if process.poll() is not None:
            break
        time.sleep(0.02)
    process.kill()
    process.wait()
    pytest.fail(f"docker-registry did not start:\n{log_path.read_text(errors='replace')}")


def _htpasswd_line(username: str, password: str) -> str:
    """bcrypt at cost 4: the default cost 12 makes every request take ~280 ms."""
    result = subprocess.run(
        ["htpasswd", "-Bbn", "-C", "4", username, password],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() + "\n"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous registry."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry with htpasswd Basic auth; ``.username``/``.password`` are valid."""
    workdir = tmp_path_factory.mktemp("registry-basic")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(_htpasswd_line(USERNAME, PASSWORD))
    server = start_registry(
        workdir,
        {"htpasswd": {"realm": "test", "path": str(htpasswd)}},
        username=USERNAME,
        password=PASSWORD,
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry with bearer-token auth; ``.token_server.requests`` logs token fetches."""
    tokens = TokenServer(users={USERNAME: PASSWORD}, refresh_tokens={REFRESH_TOKEN: USERNAME})
    server = start_token_registry(tmp_path_factory.mktemp("registry-token"), tokens)
    yield server
    server.stop()


def start_token_registry(workdir: Path, tokens: TokenServer) -> RegistryServer:
    """A registry that trusts ``tokens`` (started here); pushes use its first user."""
    tokens.start(workdir)
    auth = {
        "token": {
            "realm": f"{tokens.url}/token",
            "service": TOKEN_SERVICE,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": str(tokens.cert_path),
        }
    }
    username, password = next(iter(tokens.users.items()))
    try:
        return start_registry(
            workdir, auth, username=username, password=password, token_server=tokens
        )
    except BaseException:
        tokens.stop()
        raise
