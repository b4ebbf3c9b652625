"""Artifact Registry notifications through an authenticated Pub/Sub push subscription:
the sidecar verifies Google's OIDC push token (reconciler/pubsubpush.py).

Google's side is played by a real HTTP server on loopback serving a JWKS in the shape
of ``https://www.googleapis.com/oauth2/v3/certs`` (``{"keys": [{kty: RSA, alg: RS256,
use: sig, kid, n, e}]}``), and by tokens the tests sign with the claims the Pub/Sub docs
("Authenticate push subscriptions") list: ``iss`` https://accounts.google.com, ``aud``
the subscription's audience, ``azp``, ``sub``, ``email``, ``email_verified``, ``iat``,
``exp``. Deliveries go to the real sidecar HTTP server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.errors import WebhookRejected
from reconciler.pubsubpush import MAX_JWKS_BYTES, PushTokenRules, PushTokenVerifier
from reconciler.server import ReconcilerServer, WebhookSecrets
from reconciler.webhooks import WebhookEvent
from tests.unit.test_registry_webhooks import ARTIFACT_REGISTRY

AUDIENCE = "https://reconciler.example.com/hooks/artifactregistry"
PUSHER = "pubsub-push@my-project.iam.gserviceaccount.com"
SECRET = "ar-path-secret-6d1f"


class GoogleCerts:
    """Serves a JWKS of the keys in ``keys`` (kid -> RSA key) and counts fetches;
    ``down`` makes it answer 503."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {"key-1": _rsa()}
        self.fetches = 0
        self.down = False
        certs = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                certs.fetches += 1
                body = json.dumps(certs.jwks()).encode()
                self.send_response(503 if certs.down else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/oauth2/v3/certs"

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": keys}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def certs() -> Iterator[GoogleCerts]:
    server = GoogleCerts()
    yield server
    server.stop()


def push_token(
    certs: GoogleCerts,
    *,
    kid: str = "key-1",
    key: rsa.RSAPrivateKey | None = None,
    now: float | None = None,
    **changes: Any,
) -> str:
    """A push token as Pub/Sub signs it, with ``changes`` to its claims."""
    issued = int(now if now is not None else time.time())
    claims = {
        "aud": AUDIENCE,
        "azp": "113774264463038321964",
        "email": PUSHER,
        "email_verified": True,
        "exp": issued + 3600,
        "iat": issued,
        "iss": "https://accounts.google.com",
        "sub": "113774264463038321964",
    } | changes
    signer = key if key is not None else certs.keys[kid]
    return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sidecar(environ: dict[str, str], queued: list[WebhookEvent]) -> ReconcilerServer:
    return ReconcilerServer(
        ("127.0.0.1", 0), on_event=queued.append, secrets=WebhookSecrets(environ=environ)
    )


def _deliver(app: ReconcilerServer, token: str | None, path: str = "") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(
        f"{app.url}/hooks/artifactregistry{path}",
        content=json.dumps(ARTIFACT_REGISTRY).encode(),
        headers=headers,
    )


def _oidc_env(certs: GoogleCerts, **extra: str) -> dict[str, str]:
    return {
        "RECONCILER_WEBHOOK_PUBSUB_AUDIENCE": AUDIENCE,
        "RECONCILER_WEBHOOK_PUBSUB_EMAIL": PUSHER,
        "RECONCILER_WEBHOOK_PUBSUB_JWKS_URL": certs.url,
        **extra,
    }


def test_a_google_signed_push_is_accepted_and_the_keys_are_cached(certs: GoogleCerts) -> None:
    queued: list[WebhookEvent] = []
    with _sidecar(_oidc_env(certs), queued) as app:
        first = _deliver(app, push_token(certs))
        again = _deliver(app, push_token(certs, sub="other"))
    assert (first.status_code, again.status_code) == (202, 202)
    assert [(e.source, e.repository, e.tag) for e in queued] == [
        ("artifactregistry", "my-project/my-repo/hello-world", "1.1")
    ]  # the second delivery repeats the message id: a replay
    assert certs.fetches == 1


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda c: push_token(c, aud="https://attacker.example/hook"), "Audience"),
        (lambda c: push_token(c, iss="https://attacker.example"), "issuer is not Google"),
        (lambda c: push_token(c, now=time.time() - 7200), "expired"),
        (lambda c: push_token(c, key=_rsa()), "Signature verification failed"),
        (lambda c: push_token(c, kid="made-up", key=c.keys["key-1"]), "unknown key id"),
        (lambda c: push_token(c, email="someone@else.iam.gserviceaccount.com"), "service acc"),
        (lambda c: push_token(c, email_verified=False), "service account"),
        (
            lambda c: jwt.encode({"aud": AUDIENCE}, "k" * 32, algorithm="HS256"),
            "unknown key id ''",
        ),
        (lambda c: None, "token missing"),
    ],
)
def test_a_push_token_that_is_not_right_is_401(
    certs: GoogleCerts, token: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    queued: list[WebhookEvent] = []
    caplog.set_level("INFO", logger="reconciler.server")
    with _sidecar(_oidc_env(certs), queued) as app:
        answer = _deliver(app, token(certs))
    assert answer.status_code == 401
    assert reason in answer.json()["error"]
    assert queued == []


def test_an_hs256_token_keyed_with_a_public_key_is_refused(certs: GoogleCerts) -> None:
    """The algorithm is fixed to RS256: a token "signed" with HMAC over the public key
    (the classic key-confusion forgery) does not verify."""
    verifier = PushTokenVerifier(PushTokenRules(AUDIENCE, jwks_url=certs.url))
    verifier.verify(f"Bearer {push_token(certs)}")  # the keys are loaded
    public_pem = (
        certs.keys["key-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
    claims = {"aud": AUDIENCE, "iss": "https://accounts.google.com", "exp": 2**40, "iat": 0}
    signed = f"{header}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(public_pem, signed.encode(), hashlib.sha256).digest()
    forged = f"{signed}.{_b64(mac)}"
    with pytest.raises(WebhookRejected, match="alg"):
        verifier.verify(f"Bearer {forged}")


def test_a_path_secret_and_a_push_token_are_both_required_when_both_are_set(
    certs: GoogleCerts,
) -> None:
    queued: list[WebhookEvent] = []
    env = _oidc_env(certs, RECONCILER_WEBHOOK_SECRET_ARTIFACTREGISTRY=SECRET)
    with _sidecar(env, queued) as app:
        token_only = _deliver(app, push_token(certs))
        secret_only = _deliver(app, None, f"/{SECRET}")
        both = _deliver(app, push_token(certs), f"/{SECRET}")
    assert [token_only.status_code, secret_only.status_code, both.status_code] == [401, 401, 202]
    assert len(queued) == 1


def test_the_path_secret_alone_still_works_and_no_setting_is_404() -> None:
    queued: list[WebhookEvent] = []
    with _sidecar({"RECONCILER_WEBHOOK_SECRET": SECRET}, queued) as app:
        accepted = _deliver(app, None, f"/{SECRET}")
    with _sidecar({}, queued) as app:
        disabled = _deliver(app, None)
    assert (accepted.status_code, disabled.status_code) == (202, 404)
    assert len(queued) == 1


def test_unknown_key_ids_refetch_the_keys_at_most_once_a_minute(certs: GoogleCerts) -> None:
    """Google rotates its keys: a token with a new ``kid`` fetches the JWKS again, but
    made-up ids cannot make every delivery a fetch."""
    now = [1_000_000.0]
    verifier = PushTokenVerifier(PushTokenRules(AUDIENCE, jwks_url=certs.url), clock=lambda: now[0])
    verifier.verify(f"Bearer {push_token(certs, now=now[0])}")
    assert certs.fetches == 1
    certs.keys["key-2"] = _rsa()  # rotated in
    for _ in range(5):
        now[0] += 5
        with pytest.raises(WebhookRejected, match="unknown key id"):
            verifier.verify(f"Bearer {push_token(certs, kid='made-up', key=certs.keys['key-1'])}")
    assert certs.fetches == 1  # within a minute of the last fetch: no new fetch
    now[0] += 60
    verifier.verify(f"Bearer {push_token(certs, kid='key-2', now=now[0])}")
    assert certs.fetches == 2


def test_keys_survive_an_outage_of_the_certs_endpoint(certs: GoogleCerts) -> None:
    now = [1_000_000.0]
    verifier = PushTokenVerifier(PushTokenRules(AUDIENCE, jwks_url=certs.url), clock=lambda: now[0])
    verifier.verify(f"Bearer {push_token(certs, now=now[0])}")
    certs.down = True
    now[0] += 3601  # the cache is old: a fetch is tried, fails, the old keys still verify
    verifier.verify(f"Bearer {push_token(certs, now=now[0])}")
    assert certs.fetches == 2
    cold = PushTokenVerifier(PushTokenRules(AUDIENCE, jwks_url=certs.url))
    with pytest.raises(WebhookRejected) as info:
        cold.verify(f"Bearer {push_token(certs)}")
    assert info.value.status == 503  # Pub/Sub retries the delivery later


def test_an_audience_without_the_pushing_account_leaves_the_endpoint_off(
    certs: GoogleCerts, caplog: pytest.LogCaptureFixture
) -> None:
    """Any Google account can mint a token for any audience: a valid token alone proves
    nothing until the pushing service account is pinned, or a path secret is also set."""
    queued: list[WebhookEvent] = []
    unpinned = {
        "RECONCILER_WEBHOOK_PUBSUB_AUDIENCE": AUDIENCE,
        "RECONCILER_WEBHOOK_PUBSUB_JWKS_URL": certs.url,
    }
    stranger = push_token(certs, email="anyone@some-other-project.iam.gserviceaccount.com")
    with caplog.at_level("WARNING", logger="reconciler.server"), _sidecar(unpinned, queued) as app:
        alone = _deliver(app, stranger)
    assert alone.status_code == 404 and queued == []
    assert "RECONCILER_WEBHOOK_PUBSUB_EMAIL" in caplog.text  # the operator is told why
    with _sidecar({**unpinned, "RECONCILER_WEBHOOK_SECRET": SECRET}, queued) as app:
        with_secret = _deliver(app, push_token(certs), f"/{SECRET}")
    assert with_secret.status_code == 202 and len(queued) == 1


def test_a_huge_jwks_answer_is_not_read_past_the_cap() -> None:
    """The keys endpoint is the operator's, but a broken or hijacked one must not make
    every delivery buffer an endless body: reading stops at MAX_JWKS_BYTES."""
    sent = [0]

    def endless() -> Iterator[bytes]:
        chunk = b" " * 65536
        for _ in range(16 * 1024):  # 1 GiB if nobody stops reading
            sent[0] += len(chunk)
            yield chunk

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=endless()))
    verifier = PushTokenVerifier(
        PushTokenRules(AUDIENCE, PUSHER, "https://keys.example/certs"), transport=transport
    )
    with pytest.raises(WebhookRejected) as info:
        verifier.verify("Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.c2ln")
    assert info.value.status == 503
    assert sent[0] <= MAX_JWKS_BYTES + 2 * 65536
