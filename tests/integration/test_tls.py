"""TLS is verified by default: a real HTTPS server with a self-signed certificate.

Both feed kinds that speak HTTP (OCI registries, Helm repositories) must refuse the
unverifiable certificate unless the feed says ``insecure: true``, and an insecure
feed is logged as such once.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler import model
from reconciler.errors import FeedError
from reconciler.feeds.helm import open_helm_feed
from reconciler.feeds.oci import RegistryClient

INDEX = """apiVersion: v1
entries:
  shop:
    - name: shop
      version: 1.2.0
      created: "2026-11-01T10:00:00Z"
      digest: "{digest}"
      urls: [shop-1.2.0.tgz]
""".format(digest="a" * 64)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/v2/app/tags/list"):
            body, kind = json.dumps({"name": "app", "tags": ["1.0.0"]}).encode(), "json"
        elif self.path == "/v2/":
            body, kind = b"{}", "json"
        elif self.path == "/charts/index.yaml":
            body, kind = INDEX.encode(), "yaml"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", f"application/{kind}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def https_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)  # self-signed: no trusted CA vouches for it
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (workdir / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (workdir / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(workdir / "cert.pem", workdir / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _feed(url: str, *, insecure: bool, kind: str = "oci") -> model.Feed:
    return model.Feed(name=f"tls-{kind}-{insecure}", type=kind, url=url, insecure=insecure)


def test_registry_certificates_are_verified_unless_insecure(
    https_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with RegistryClient(_feed(https_url, insecure=False)) as client:
        with pytest.raises(FeedError) as refused:
            client.list_tags("app")
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)

    caplog.set_level(logging.WARNING)
    with RegistryClient(_feed(https_url, insecure=True)) as client:
        assert client.list_tags("app") == ["1.0.0"]
    with RegistryClient(_feed(https_url, insecure=True)) as client:
        assert client.list_tags("app") == ["1.0.0"]
    warnings = [r.getMessage() for r in caplog.records if "is insecure" in r.getMessage()]
    assert warnings == ["feed tls-oci-True is insecure: plain http and unverified TLS are allowed"]


def test_helm_repository_certificates_are_verified_unless_insecure(
    https_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{https_url}/charts"
    strict = open_helm_feed(_feed(url, insecure=False, kind="helm"))
    try:
        with pytest.raises(FeedError) as refused:
            strict.list_tags("shop")
    finally:
        strict.close()
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)

    caplog.set_level(logging.WARNING)
    lenient = open_helm_feed(_feed(url, insecure=True, kind="helm"))
    try:
        assert lenient.list_tags("shop") == ["1.2.0"]
    finally:
        lenient.close()
    expected = "feed tls-helm-True is insecure: plain http and unverified TLS are allowed"
    assert any(r.getMessage() == expected for r in caplog.records)
