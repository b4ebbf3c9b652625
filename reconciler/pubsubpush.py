"""Verify the OIDC token a Pub/Sub push subscription sends (Artifact Registry webhooks).

A push subscription with authentication enabled puts a Google-signed OpenID Connect
ID token in ``Authorization: Bearer`` (Pub/Sub docs, "Authenticate push
subscriptions"): RS256, ``iss`` ``accounts.google.com`` or
``https://accounts.google.com``, ``aud`` the audience set on the subscription,
``email`` (with ``email_verified``) the service account the subscription pushes as,
``iat``/``exp`` about an hour apart. Google publishes the signing keys as a JWKS at
``GOOGLE_CERTS_URL``.

The operator enables it for ``/hooks/artifactregistry`` with
``RECONCILER_WEBHOOK_PUBSUB_AUDIENCE`` and ``RECONCILER_WEBHOOK_PUBSUB_EMAIL`` (and
optionally ``RECONCILER_WEBHOOK_PUBSUB_JWKS_URL``); without the email a token is
accepted only together with the endpoint's path secret (the server's rule). The
keys are fetched from the operator's URL only, kept for ``KEYS_LIFETIME`` seconds, and
fetched again for an unknown ``kid`` at most once per ``REFRESH_INTERVAL``, so
deliveries with made-up key ids cannot turn the sidecar into a request amplifier.
PyJWT (and cryptography behind it) is imported on the first verified delivery only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.errors import WebhookRejected

__all__ = ["GOOGLE_CERTS_URL", "PushTokenRules", "PushTokenVerifier"]

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
ISSUERS = ("accounts.google.com", "https://accounts.google.com")
AUDIENCE_VAR = "RECONCILER_WEBHOOK_PUBSUB_AUDIENCE"
EMAIL_VAR = "RECONCILER_WEBHOOK_PUBSUB_EMAIL"
JWKS_URL_VAR = "RECONCILER_WEBHOOK_PUBSUB_JWKS_URL"
KEYS_LIFETIME = 3600.0
REFRESH_INTERVAL = 60.0
CLOCK_SKEW = 60.0
HTTP_TIMEOUT = 10.0
MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True)
class PushTokenRules:
    """What a push token must say; ``email`` None accepts any Google-signed sender."""

    audience: str
    email: str | None = None
    jwks_url: str = GOOGLE_CERTS_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PushTokenRules | None:
        """The operator's rules, or None when no audience is set (OIDC not enabled)."""
        audience = env.get(AUDIENCE_VAR, "").strip()
        if not audience:
            return None
        return cls(
            audience,
            env.get(EMAIL_VAR, "").strip() or None,
            env.get(JWKS_URL_VAR, "").strip() or GOOGLE_CERTS_URL,
        )


class PushTokenVerifier:
    """Checks ``Authorization`` headers against one set of rules; thread-safe.

    ``transport`` is for tests of edge cases; ``clock`` is the wall clock.
    """

    def __init__(
        self,
        rules: PushTokenRules,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.rules = rules
        self._clock = clock
        self._transport = transport
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}  # kid -> PyJWK
        self._fetched_at: float | None = None

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims; ``WebhookRejected(401)`` naming what was wrong."""
        import jwt  # lazily: cryptography's RSA is loaded for Pub/Sub deliveries only

        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise WebhookRejected(401, "Pub/Sub push token missing (Authorization: Bearer)")
        try:
            header = jwt.get_unverified_header(token.strip())
            key = self._key(str(header.get("kid") or ""))
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                key=key,
                algorithms=["RS256"],
                audience=self.rules.audience,
                options={"require": ["iss", "aud", "exp", "iat"], "verify_exp": False},
            )
        except jwt.InvalidTokenError as error:
            raise WebhookRejected(401, f"Pub/Sub push token rejected: {error}") from None
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") not in ISSUERS:
            raise WebhookRejected(401, "Pub/Sub push token rejected: issuer is not Google")
        now = self._clock()
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, int | float) or now > expires + CLOCK_SKEW:
            raise WebhookRejected(401, "Pub/Sub push token rejected: expired")
        if not isinstance(issued, int | float) or issued > now + CLOCK_SKEW:
            raise WebhookRejected(401, "Pub/Sub push token rejected: issued in the future")
        wanted = self.rules.email
        if wanted is not None and (
            claims.get("email") != wanted or claims.get("email_verified") is not True
        ):
            raise WebhookRejected(
                401, "Pub/Sub push token rejected: not sent by the expected service account"
            )

    def _key(self, kid: str) -> Any:
        """The public key ``kid`` names: from the cache, or fetched when the cache is
        old, or when ``kid`` is unknown and the last fetch is older than
        ``REFRESH_INTERVAL``. A failed fetch keeps the old keys and is retried after
        ``REFRESH_INTERVAL``; with no keys at all the delivery gets a 503 (retried)."""
        import jwt

        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            unknown = kid not in self._keys and (age is None or age > REFRESH_INTERVAL)
            if age is None or age > KEYS_LIFETIME or unknown:
                try:
                    self._keys = self._fetch()
                    self._fetched_at = now
                except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as error:
                    if not self._keys:
                        raise WebhookRejected(
                            503, f"Pub/Sub signing keys unavailable ({type(error).__name__})"
                        ) from None
                    self._fetched_at = now - KEYS_LIFETIME + REFRESH_INTERVAL
            if kid not in self._keys:
                raise jwt.InvalidTokenError(f"unknown key id {kid!r}")
            return self._keys[kid]

    def _fetch(self) -> dict[str, Any]:
        """kid -> public key, from the operator's JWKS URL."""
        import jwt

        body = bytearray()
        with (
            httpx.Client(timeout=HTTP_TIMEOUT, transport=self._transport) as client,
            client.stream("GET", self.rules.jwks_url) as answer,
        ):
            answer.raise_for_status()
            for chunk in answer.iter_bytes():  # stop reading at the cap, not after it
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
        keys = jwt.PyJWKSet.from_dict(json.loads(body)).keys
        return {key.key_id: key.key for key in keys if key.key_id}
