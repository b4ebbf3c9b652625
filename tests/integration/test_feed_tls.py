"""Private trust without disabling verification: a real local TLS server whose
certificate comes from a private CA and which demands a client certificate (mutual
TLS), read by OCI and Helm feeds through ``tls: {caFile, clientCert, clientKey}`` or the
operating system's trust store (truststore; ``SSL_CERT_FILE`` stands in for a CA added
with update-ca-certificates), and a local forward proxy named by ``HTTPS_PROXY`` /
``NO_PROXY``.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reconciler import model
from reconciler.config import load_config
from reconciler.errors import ConfigError, FeedError, GitError
from reconciler.feeds import open_feed
from reconciler.feeds._http import env_proxy, feed_transport
from reconciler.gitrepo import WorkTree
from tests.helpers.configrepo import AppSpec, config_files, write_files
from tests.helpers.gitserver import GitHttpServer

AUTHOR = ("reconciler-bot", "bot@example.com")

INDEX = "apiVersion: v1\nentries:\n  shop:\n    - {name: shop, version: 1.2.0, urls: [x.tgz]}\n"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    server: bool,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


@dataclass
class Pki:
    ca: Path
    client_cert: Path
    client_key: Path
    server_cert: Path
    server_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate."""
    base = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Private CA")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = Pki(
        base / "ca.pem",
        base / "client.pem",
        base / "client-key.pem",
        base / "server.pem",
        base / "server-key.pem",
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for cert_path, key_path, name, server in (
        (files.server_cert, files.server_key, "127.0.0.1", True),
        (files.client_cert, files.client_key, "reconciler", False),
    ):
        key = _key()
        cert = _issue(ca_key, ca_name, key, name, server=server)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
    return files


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/v2/app/tags/list"):
            body, kind = b'{"name": "app", "tags": ["1.0.0"]}', "application/json"
        elif self.path == "/charts/index.yaml":
            body, kind = INDEX.encode(), "application/yaml"
        else:
            body, kind = b"{}", "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def mtls_url(pki: Pki) -> Iterator[str]:
    """An HTTPS server that requires a client certificate signed by the private CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(pki.ca)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _grants(pki: Pki) -> dict[str, str]:
    return {"RECONCILER_CREDENTIALS_DIR": str(pki.ca.parent)}


def _list(url: str, kind: str, tls: model.Tls | None, env: dict[str, str]) -> list[str]:
    if kind == "helm":
        feed = model.Feed("charts", "helm", f"{url}/charts", tls=tls)
        repository = "shop"
    else:
        feed = model.Feed("reg", "oci", url, tls=tls)
        repository = "app"
    client = open_feed(feed, base_dir=Path("."), env=env)
    try:
        return client.list_tags(repository)
    finally:
        client.close()


@pytest.mark.parametrize("kind", ["oci", "helm"])
def test_private_ca_and_client_certificate(mtls_url: str, pki: Pki, kind: str) -> None:
    env = _grants(pki)
    full = model.Tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))
    assert _list(mtls_url, kind, full, env) in (["1.0.0"], ["1.2.0"])

    with pytest.raises(FeedError, match="CERTIFICATE_VERIFY_FAILED"):
        _list(mtls_url, kind, None, env)  # the private CA is not trusted by default
    with pytest.raises(FeedError):
        _list(mtls_url, kind, model.Tls(ca_file=str(pki.ca)), env)  # no client certificate


@pytest.mark.parametrize("kind", ["oci", "helm"])
def test_the_os_trust_store_is_used(
    mtls_url: str, pki: Pki, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """truststore reads OpenSSL's default locations, where update-ca-certificates puts an
    added CA; SSL_CERT_FILE points them at the private CA here."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    client_only = model.Tls(client_cert=str(pki.client_cert), client_key=str(pki.client_key))
    assert _list(mtls_url, kind, client_only, _grants(pki)) in (["1.0.0"], ["1.2.0"])


def test_tls_files_must_be_granted(mtls_url: str, pki: Pki, tmp_path: Path) -> None:
    full = model.Tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))
    env = {"RECONCILER_CREDENTIALS_DIR": str(tmp_path)}
    with pytest.raises(FeedError, match=r"tls\.caFile refused: .* outside the directories"):
        _list(mtls_url, "oci", full, env)
    with pytest.raises(FeedError, match=r"tls\.caFile refused"):
        _list(mtls_url, "helm", full, env)


def test_unreadable_tls_file_is_named(pki: Pki) -> None:
    broken = model.Tls(ca_file=str(pki.ca.parent / "missing.pem"))
    with pytest.raises(FeedError, match=r"tls\.caFile .*missing\.pem: No such file"):
        _list("https://127.0.0.1:9", "oci", broken, _grants(pki))


def test_validate_names_ungranted_tls_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECONCILER_CREDENTIALS_DIR", raising=False)
    files = config_files(
        "https://registry.example.com",
        [AppSpec("api", "acme/api", "r/api")],
        feed_extra="tls:\n  caFile: /etc/ssl/private-ca.pem\n"
        "  clientKey: /var/run/secrets/reconciler/k.pem\n",
    )
    write_files(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        "feeds/reg.yaml:7: tls.caFile: not granted: /etc/ssl/private-ca.pem is outside the "
        "directories granted to feeds (/var/run/secrets/reconciler)",
        "feeds/reg.yaml:8: tls.clientKey: needs clientCert",
    ]


# -- proxies -----------------------------------------------------------------------


class ConnectProxy:
    """A forward proxy on loopback speaking HTTP CONNECT; records each tunnel's target."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        method, target = head.split(b" ", 2)[:2]
        if method != b"CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        self.targets.append(target.decode())
        host, port = target.decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        sockets = [client, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 5)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    started = ConnectProxy()
    yield started
    started.close()


@pytest.mark.parametrize("kind", ["oci", "helm"])
def test_https_proxy_carries_feed_traffic_unless_no_proxy(
    mtls_url: str, pki: Pki, proxy: ConnectProxy, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    full = model.Tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))
    target = mtls_url.removeprefix("https://")
    assert _list(mtls_url, kind, full, _grants(pki))
    assert proxy.targets == [target]  # one tunnel, TLS verified end to end through it
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert _list(mtls_url, kind, full, _grants(pki))
    assert proxy.targets == [target]  # NO_PROXY: straight to the server


def test_wrapped_transport_keeps_tls_and_proxy(
    mtls_url: str, pki: Pki, proxy: ConnectProxy
) -> None:
    """The metrics wrapper builds its own transport: it must carry the feed's TLS files
    and the environment's proxy, which httpx only applies to transports it builds."""

    tls = model.Tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))
    feed = model.Feed("reg", "oci", mtls_url, tls=tls)
    env = {**_grants(pki), "HTTPS_PROXY": proxy.url}
    transport = feed_transport(feed, concurrency=2, http2=False, env=env)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"{mtls_url}/v2/app/tags/list").json()["tags"] == ["1.0.0"]
    assert proxy.targets == [mtls_url.removeprefix("https://")]


def test_env_proxy_rules() -> None:
    env = {
        "HTTPS_PROXY": "http://p:3128",
        "http_proxy": "http://q:3128",
        "NO_PROXY": ".corp,10.0.0.1",
    }
    assert env_proxy("https://ghcr.io/v2/", env) == "http://p:3128"
    assert env_proxy("http://charts.example.com/", env) == "http://q:3128"
    assert env_proxy("https://registry.corp/", env) is None
    assert env_proxy("https://a.registry.corp:5000/", env) is None
    assert env_proxy("https://10.0.0.1/", env) is None
    assert env_proxy("https://ghcr.io/", {"NO_PROXY": "*", "HTTPS_PROXY": "http://p"}) is None


# -- the Git side ----------------------------------------------------------------------


def test_git_host_behind_a_private_ca(pki: Pki, tmp_path: Path) -> None:
    """RECONCILER_GIT_CA_FILE: git trusts the private CA on top of the system's roots;
    without it the same clone is refused (verification stays on)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    server = GitHttpServer(tmp_path / "remotes", tls=context)
    try:
        remote = server.create_repo(seed={"README.md": "config repo\n"})
        assert remote.url.startswith("https://")
        env = {
            "RECONCILER_GIT_USERNAME": server.username,
            "RECONCILER_GIT_PASSWORD": server.password,
        }
        refused = WorkTree(remote.url, tmp_path / "plain", "main", author=AUTHOR, env=env)
        try:
            with pytest.raises(GitError, match=r"certificate|SSL"):
                refused.sync()
        finally:
            refused.close()
        trusted = WorkTree(
            remote.url,
            tmp_path / "trusted",
            "main",
            author=AUTHOR,
            env={**env, "RECONCILER_GIT_CA_FILE": str(pki.ca)},
        )
        try:
            assert trusted.sync() == remote.head()
            (trusted.root / "new.txt").write_text("over https\n")
            sha = trusted.commit("via a private CA")
            trusted.push()
            assert remote.head() == sha
        finally:
            trusted.close()
    finally:
        server.close()
