"""Native cloud registry credentials: ``credentials: {provider: aws|gcp|azure}``.

Each provider turns the pod's workload identity into registry credentials, cached until
shortly before they expire (``CloudTokens``):

- **aws** (ECR): web identity (IRSA: ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE`` ->
  STS ``AssumeRoleWithWebIdentity``), EKS Pod Identity
  (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``)
  or ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` -> ``ecr:GetAuthorizationToken``,
  signed with a small SigV4 signer (``sigv4_headers``; botocore would add ~20 MB and a
  slow import for one signed POST).
- **gcp** (Artifact Registry, GCR): ``GOOGLE_APPLICATION_CREDENTIALS`` naming a
  service-account key (a JWT-bearer grant signed with PyJWT) or, without it, the GKE
  metadata server; user ``oauth2accesstoken``. External-account (federation) files are
  not supported yet and say so.
- **azure** (ACR): the federated token file (``AZURE_FEDERATED_TOKEN_FILE``,
  ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``) -> Entra ID client-credentials token -> the
  registry's ``/oauth2/exchange`` -> an ACR refresh token, used as an identity token.

Every endpoint comes from the operator's environment (the SDKs' own variables:
``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL_ECR``, ``GCE_METADATA_HOST``,
``AZURE_AUTHORITY_HOST``), never from the config. A provider's credentials go only to
that provider's registry hosts (``*.dkr.ecr.*.amazonaws.com``, ``gcr.io``,
``*-docker.pkg.dev``, ``*.azurecr.io``, plus hosts the operator names in
``RECONCILER_CLOUD_REGISTRIES`` as ``provider=host``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import httpx

from reconciler.errors import FeedAuthError
from reconciler.grants import provider_host_problem

__all__ = ["PROVIDERS", "CloudTokens", "sigv4_headers"]

PROVIDERS = ("aws", "gcp", "azure")
REFRESH_MARGIN = 300.0
"""Renew this many seconds before expiry (or at half the lifetime, if shorter)."""
HTTP_TIMEOUT = 10.0

ACR_USER = "00000000-0000-0000-0000-000000000000"
GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AZURE_SCOPE = "https://containerregistry.azure.net/.default"


class CloudTokens:
    """Registry credentials per (provider, host), renewed before they expire; thread-safe.

    ``get`` returns (username, password) or, for ACR, ("", refresh token) meaning an
    identity token. ``clock`` is the wall clock (expiry times are absolute).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[tuple[str, str], tuple[float, tuple[str, str]]] = {}

    def get(
        self, feed: str, provider: str, host: str, env: Mapping[str, str], *, scheme: str = "https"
    ) -> tuple[str, str]:
        problem = provider_host_problem(provider, host, env)
        if problem is not None:
            raise FeedAuthError(feed, f"credentials refused: {problem}", retry_after=3600.0)
        key = (provider, host)
        with self._lock:
            cached = self._cached.get(key)
            if cached is not None and self._clock() < cached[0]:
                return cached[1]
            now = self._clock()
            try:
                secret, expires_at = _FETCH[provider](host, env, now, scheme)
            except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError) as exc:
                raise FeedAuthError(
                    feed, f"{provider} credentials: {_reason(exc)}", retry_after=60.0
                ) from None
            lifetime = max(0.0, expires_at - now)
            self._cached[key] = (now + lifetime - min(REFRESH_MARGIN, lifetime / 2), secret)
            return secret


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{exc.request.url.host} answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return f"unexpected answer ({type(exc).__name__})"


def _post(url: str, **kwargs: Any) -> Any:
    with httpx.Client(timeout=HTTP_TIMEOUT) as client:
        response = client.post(url, **kwargs)
        response.raise_for_status()
        return response


# -- aws ---------------------------------------------------------------------------


def sigv4_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    amz_date: str,
) -> dict[str, str]:
    """The ``Authorization`` (and ``X-Amz-Date``) headers of AWS Signature Version 4.

    ``amz_date`` is ``YYYYMMDDTHHMMSSZ``. Every header in ``headers`` plus ``host`` and
    ``x-amz-date`` is signed. Query strings are signed as given (sorted by name).
    """
    parts = httpx.URL(url)
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed["host"] = parts.netloc.decode("ascii")
    signed["x-amz-date"] = amz_date
    names = sorted(signed)
    query = "&".join(
        sorted(f"{_quote(k)}={_quote(v)}" for k, v in httpx.QueryParams(parts.query).multi_items())
    )
    canonical = "\n".join(
        [
            method,
            parts.raw_path.decode("ascii").split("?")[0] or "/",
            query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "X-Amz-Date": amz_date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}",
    }


def _quote(text: str) -> str:
    return quote(text, safe="-_.~")


def _aws_region(host: str) -> str:
    return host.split(".dkr.ecr", 1)[1].split(".")[1] if ".dkr.ecr" in host else "us-east-1"


def _aws_session(env: Mapping[str, str], region: str) -> tuple[str, str, str | None]:
    """(access key, secret key, session token) from the pod's identity."""
    if env.get("AWS_ROLE_ARN") and env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        endpoint = env.get("AWS_ENDPOINT_URL_STS") or f"https://sts.{region}.amazonaws.com"
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": env["AWS_ROLE_ARN"],
            "RoleSessionName": env.get("AWS_ROLE_SESSION_NAME") or "reconciler",
            "WebIdentityToken": Path(env["AWS_WEB_IDENTITY_TOKEN_FILE"]).read_text().strip(),
        }
        # The operator's STS endpoint answers; expat >= 2.4 caps entity amplification.
        document = ElementTree.fromstring(_post(endpoint, data=form).text)  # noqa: S314
        found = {el.tag.rsplit("}", 1)[-1]: el.text or "" for el in document.iter()}
        return found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"]
    if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        headers = {"Authorization": Path(token_file).read_text().strip()} if token_file else {}
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            answer = client.get(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], headers=headers)
            answer.raise_for_status()
        data = answer.json()
        return data["AccessKeyId"], data["SecretAccessKey"], data.get("Token")
    return env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN")


def _aws(
    host: str, env: Mapping[str, str], now: float, scheme: str
) -> tuple[tuple[str, str], float]:
    region = env.get("AWS_REGION") or _aws_region(host)
    access, secret, session = _aws_session(env, region)
    endpoint = env.get("AWS_ENDPOINT_URL_ECR") or f"https://api.ecr.{region}.amazonaws.com/"
    body = b"{}"
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
    }
    if session:
        headers["X-Amz-Security-Token"] = session
    amz_date = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    headers |= sigv4_headers(
        "POST",
        endpoint,
        headers,
        body,
        access_key=access,
        secret_key=secret,
        region=region,
        service="ecr",
        amz_date=amz_date,
    )
    data = _post(endpoint, content=body, headers=headers).json()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return (user, password), float(data["expiresAt"])


# -- gcp ---------------------------------------------------------------------------


def _gcp(
    host: str, env: Mapping[str, str], now: float, scheme: str
) -> tuple[tuple[str, str], float]:
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        key = json.loads(Path(key_file).read_text())
        if key.get("type") != "service_account":
            raise ValueError(f"credential type {key.get('type')!r} is not supported")
        claims = {
            "iss": key["client_email"],
            "scope": GCP_SCOPE,
            "aud": key["token_uri"],
            "iat": int(now),
            "exp": int(now) + 3600,
        }
        import jwt  # PyJWT pulls in cryptography's x509: only for a service-account key

        assertion = jwt.encode(claims, key["private_key"], algorithm="RS256")
        grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
        data = _post(key["token_uri"], data={"grant_type": grant, "assertion": assertion}).json()
    else:
        metadata = env.get("GCE_METADATA_HOST") or "metadata.google.internal"
        url = f"http://{metadata}/computeMetadata/v1/instance/service-accounts/default/token"
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            answer = client.get(url, headers={"Metadata-Flavor": "Google"})
            answer.raise_for_status()
        data = answer.json()
    return ("oauth2accesstoken", data["access_token"]), now + float(data["expires_in"])


# -- azure -------------------------------------------------------------------------


def _azure(
    host: str, env: Mapping[str, str], now: float, scheme: str
) -> tuple[tuple[str, str], float]:
    authority = (env.get("AZURE_AUTHORITY_HOST") or "https://login.microsoftonline.com/").rstrip(
        "/"
    )
    tenant = env["AZURE_TENANT_ID"]
    form = {
        "client_id": env["AZURE_CLIENT_ID"],
        "scope": AZURE_SCOPE,
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": Path(env["AZURE_FEDERATED_TOKEN_FILE"]).read_text().strip(),
    }
    entra = _post(f"{authority}/{tenant}/oauth2/v2.0/token", data=form).json()
    exchange = {
        "grant_type": "access_token",
        "service": host,
        "tenant": tenant,
        "access_token": entra["access_token"],
    }
    refresh = _post(f"{scheme}://{host}/oauth2/exchange", data=exchange).json()["refresh_token"]
    return ("", refresh), now + float(entra["expires_in"])


_FETCH: dict[str, Callable[[str, Mapping[str, str], float, str], tuple[tuple[str, str], float]]] = {
    "aws": _aws,
    "gcp": _gcp,
    "azure": _azure,
}
