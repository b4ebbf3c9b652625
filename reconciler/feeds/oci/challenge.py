"""Registry authentication: the ``WWW-Authenticate`` challenge and how to answer it.

``Authenticator`` remembers the registry's last challenge, so later requests
authenticate up front, and turns a feed's credentials into an ``Authorization`` value:
Basic for a Basic challenge; for a Bearer challenge a token from the challenge's realm
(RFC 6750 syntax; the distribution token spec's GET flow, or its OAuth2 refresh-token
POST for identity tokens), cached per (realm, service, scopes, identity).

Secrets stay on their host (``reconciler.grants``): credentials go in clear only where
the operator allows it, and to a realm on another host only when the operator paired it
with the registry (Docker Hub's auth.docker.io is paired out of the box).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from reconciler import model
from reconciler.errors import FeedAuthError
from reconciler.feeds.auth import CredentialResolver, Secret, TokenCache, TokenKey
from reconciler.feeds.oci.transport import Response, Transport

__all__ = ["Authenticator", "Challenge", "parse_challenge"]

_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` challenge (RFC 6750 §3 syntax)."""

    scheme: str  # lower case: "basic" or "bearer"
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())

    @property
    def error(self) -> str:
        return self.params.get("error", "")


def parse_challenge(header: str) -> Challenge | None:
    """Parse the first challenge of a ``WWW-Authenticate`` value; None if unusable."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _CHALLENGE_PARAM.match(rest, position)
        if match is None or match.end() == position:
            break
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
        params[match.group(1).lower()] = value
        position = match.end()
    return Challenge(scheme.lower(), params)


def basic(secret: Secret) -> str:
    raw = f"{secret.username or ''}:{secret.password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class Authenticator:
    """Answers one registry's challenges with one feed's credentials; thread-safe.

    ``secure`` says whether the registry is reached over verified HTTPS.
    """

    def __init__(
        self,
        feed: model.Feed,
        credentials: CredentialResolver,
        tokens: TokenCache,
        transport: Transport,
        *,
        secure: bool,
    ) -> None:
        self._feed = feed
        self._credentials = credentials
        self._tokens = tokens
        self._transport = transport
        self._secure = secure
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None

    def learn(self, challenge: Challenge) -> None:
        """Keep the registry's latest challenge: later requests answer it up front."""
        with self._lock:
            self._challenge = challenge

    def has_basic_secret(self) -> bool:
        secret = self._credentials.resolve()
        return secret is not None and secret.has_basic

    def failure(self, name: str) -> FeedAuthError:
        """The error for a request still refused after answering the challenge."""
        if self._credentials.resolve() is None:
            message = (
                f"{name}: the registry requires authentication and no credentials are configured"
            )
        else:
            message = f"{name}: the registry rejected the credentials"
        return FeedAuthError(self._feed.name, message, retry_after=600.0)

    def invalidate(self, challenge: Challenge, scope: str, authorization: str) -> None:
        """Forget a bearer token the registry refused (revoked or expired early)."""
        self._tokens.invalidate(self.token_key(challenge, scope), authorization[7:])

    def token_key(self, challenge: Challenge, scope: str) -> TokenKey:
        secret = self._credentials.resolve()
        identity = ""
        if secret is not None:
            # Tokens are per identity; a refresh token is one identity (kept in the
            # key only as a hash, so no secret sits in the cache's keys).
            identity = secret.username or ""
            if not identity and secret.identity_token:
                digest = hashlib.sha256(secret.identity_token.encode()).hexdigest()[:16]
                identity = f"<token>{digest}"
        return (challenge.realm, challenge.service, tuple(sorted(scope.split())), identity)

    def authorization(self, scope: str) -> str | None:
        """The Authorization value for ``scope`` given the last challenge, or None."""
        with self._lock:
            challenge = self._challenge
        secret = self._credentials.resolve()
        if secret is not None and (secret.registry_token is not None or challenge is not None):
            # Anything derived from a secret (Basic, a registry token, a token fetched
            # with credentials) travels in clear only where the operator allows it.
            self._require_secure()
        if secret is not None and secret.registry_token is not None:
            return f"Bearer {secret.registry_token}"
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if secret is None or not secret.has_basic:
                return None
            return basic(secret)
        key = self.token_key(challenge, scope)
        token = self._tokens.get_or_fetch(key, lambda: self._fetch_token(challenge, scope, secret))
        return f"Bearer {token}"

    def _require_secure(self) -> None:
        """Refuse to send credentials over plain http or unverified TLS unless the
        operator allowed this host (``insecure: true`` in the config is not enough)."""
        self._credentials.refuse_in_clear(self._credentials.host, in_clear=not self._secure)

    def _check_realm(self, realm: httpx.URL, secret: Secret | None) -> None:
        """A token realm gets the registry's credentials only on the registry's own host
        or one the operator paired with it (docker and containerd send them to any
        realm; we follow go-containerregistry in keeping them on their host)."""
        if secret is None:
            return
        registry_host = self._credentials.host
        realm_host = realm.netloc.decode("ascii")
        policy = self._credentials.policy()
        if not policy.realm_allowed(registry_host, realm_host):
            raise FeedAuthError(
                self._feed.name,
                f"the registry sends its token requests to {realm.host}, another host;"
                f" credentials for {registry_host} are not sent there unless the operator"
                " allows it with --token-realm",
                retry_after=3600.0,
            )
        clear = realm.scheme != "https" or self._feed.insecure
        self._credentials.refuse_in_clear(realm_host, in_clear=clear)

    def _fetch_token(
        self, challenge: Challenge, scope: str, secret: Secret | None
    ) -> tuple[str, float]:
        """GET a bearer token from the challenge's realm (RFC-6750 token flow)."""
        try:
            realm = httpx.URL(challenge.realm)
        except httpx.InvalidURL:
            realm = httpx.URL("")
        if realm.scheme not in ("http", "https") or not realm.host:
            raise FeedAuthError(self._feed.name, f"unusable token realm {challenge.realm[:100]!r}")
        if realm.scheme != "https" and not self._feed.insecure:
            raise FeedAuthError(
                self._feed.name, "token realm uses plain http; set insecure: true to allow it"
            )
        self._check_realm(realm, secret)
        if secret is not None and secret.identity_token is not None:
            return self._exchange_refresh_token(realm, challenge, scope, secret.identity_token)
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params.extend(("scope", s) for s in scope.split())
        authorization = None
        if secret is not None and secret.has_basic:
            authorization = basic(secret)
            if secret.username:
                params.append(("account", secret.username))
        response = self._transport.send(
            "GET",
            realm.copy_merge_params(params),
            kind="token",
            accept="application/json",
            authorization=authorization,
            budget=None,
        )
        if response.status in (401, 403):
            raise FeedAuthError(
                self._feed.name,
                f"token server {realm.host} rejected the "
                + ("credentials" if secret is not None else "anonymous request"),
                retry_after=600.0,
            )
        return self._token_from(response, realm)

    def _exchange_refresh_token(
        self, realm: httpx.URL, challenge: Challenge, scope: str, refresh_token: str
    ) -> tuple[str, float]:
        """POST an OAuth2 refresh-token grant (the distribution token spec's OAuth2
        flow, what ``docker login`` with an identity token does)."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": "reconciler",
            "scope": scope,
        }
        if challenge.service:
            form["service"] = challenge.service
        response = self._transport.send(
            "POST",
            realm,
            kind="token",
            accept="application/json",
            authorization=None,
            budget=None,
            form=form,
        )
        if response.status in (400, 401, 403):
            raise FeedAuthError(
                self._feed.name,
                f"token server {realm.host} rejected the identity token",
                retry_after=600.0,
            )
        return self._token_from(response, realm)

    def _token_from(self, response: Response, realm: httpx.URL) -> tuple[str, float]:
        self._transport.check_status(response)
        document = self._transport.json(response, what=f"token from {realm.host}")
        token = None
        if isinstance(document, dict):
            token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._transport.malformed(f"token server {realm.host} answered without a token")
        expires_in = document.get("expires_in")
        usable = isinstance(expires_in, int | float) and expires_in > 0
        lifetime = float(expires_in) if usable else 60.0
        return token, lifetime
