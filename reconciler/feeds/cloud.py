"""Native cloud registry credentials: ``credentials: {provider: aws|gcp|azure}``.

Each provider turns the pod's workload identity into registry credentials, cached until
shortly before they expire (``CloudTokens``):

- **aws** (ECR): web identity (IRSA: ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE`` ->
  STS ``AssumeRoleWithWebIdentity``), EKS Pod Identity
  (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``)
  or ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` -> ``ecr:GetAuthorizationToken``,
  signed with a small SigV4 signer (``sigv4_headers``; botocore would add ~20 MB and a
  slow import for one signed POST).
- **gcp** (Artifact Registry, GCR): a Google credential file (the feed's
  ``identityFile``, granted like a password file, else ``GOOGLE_APPLICATION_CREDENTIALS``)
  holding a service-account key (a JWT-bearer grant signed with PyJWT) or an external
  account (workload identity federation: subject token -> Google STS -> optionally IAM
  Credentials ``generateAccessToken``); without one, the GKE metadata server. User
  ``oauth2accesstoken``. The URLs inside a credential file must be Google's own
  endpoints (``GOOGLE_ENDPOINT_HOSTS``) or origins the operator lists in
  ``RECONCILER_GCP_ENDPOINTS``, and a ``credential_source.url`` a node-local identity
  endpoint; ``credential_source.executable`` is refused (it would run a command).
- **azure** (ACR): the federated token file (``AZURE_FEDERATED_TOKEN_FILE``,
  ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``) -> Entra ID client-credentials token -> the
  registry's ``/oauth2/exchange`` -> an ACR refresh token, used as an identity token.

Every endpoint comes from the operator's environment (the SDKs' own variables:
``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL_ECR``, ``GCE_METADATA_HOST``,
``AZURE_AUTHORITY_HOST``) or from a credential file the operator mounted, never from
the config. A provider's credentials go only to
that provider's registry hosts (``*.dkr.ecr.*.amazonaws.com``, ``gcr.io``,
``*-docker.pkg.dev``, ``*.azurecr.io``, plus hosts the operator names in
``RECONCILER_CLOUD_REGISTRIES`` as ``provider=host``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
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
from reconciler.feeds.secretfiles import FileTooLarge, read_small_file
from reconciler.grants import provider_host_problem

__all__ = ["PROVIDERS", "CloudTokens", "sigv4_headers"]

PROVIDERS = ("aws", "gcp", "azure")
REFRESH_MARGIN = 300.0
"""Renew this many seconds before expiry (or at half the lifetime, if shorter)."""
HTTP_TIMEOUT = 10.0

ACR_USER = "00000000-0000-0000-0000-000000000000"
GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
IAM_SCOPE = "https://www.googleapis.com/auth/iam"
AZURE_SCOPE = "https://containerregistry.azure.net/.default"


class CloudTokens:
    """Registry credentials per (provider, host), renewed before they expire; thread-safe.

    ``get`` returns (username, password) or, for ACR, ("", refresh token) meaning an
    identity token. ``clock`` is the wall clock (expiry times are absolute).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[tuple[str, str, str], tuple[float, tuple[str, str]]] = {}

    def get(
        self,
        feed: str,
        provider: str,
        host: str,
        env: Mapping[str, str],
        *,
        scheme: str = "https",
        identity_file: str | None = None,
    ) -> tuple[str, str]:
        """``identity_file`` is a feed's own Google credential file (``identityFile``),
        already granted by the caller; without it the pod's identity is used."""
        problem = provider_host_problem(provider, host, env)
        if problem is not None:
            raise FeedAuthError(feed, f"credentials refused: {problem}", retry_after=3600.0)
        key = (provider, host, identity_file or "")
        with self._lock:
            cached = self._cached.get(key)
            if cached is not None and self._clock() < cached[0]:
                return cached[1]
            now = self._clock()
            try:
                secret, expires_at = _FETCH[provider](host, env, now, scheme, identity_file)
            except (CredentialFileRefused, FileTooLarge) as exc:
                raise FeedAuthError(
                    feed, f"{provider} credentials refused: {exc}", retry_after=3600.0
                ) from None
            except (
                httpx.HTTPError,
                httpx.InvalidURL,
                OSError,
                ValueError,
                KeyError,
                TypeError,
            ) as exc:
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
    host: str, env: Mapping[str, str], now: float, scheme: str, identity_file: str | None
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

GCP_USER = "oauth2accesstoken"
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105  # a URN
GCP_ENDPOINTS_VAR = "RECONCILER_GCP_ENDPOINTS"
GOOGLE_ENDPOINT_HOSTS = {
    "token_uri": ("oauth2.googleapis.com", "accounts.google.com"),
    "token_url": ("sts.googleapis.com",),
    "service_account_impersonation_url": ("iamcredentials.googleapis.com",),
}
"""Where each URL of a Google credential file may point (``https`` only), unless the
operator lists another origin in ``RECONCILER_GCP_ENDPOINTS``: a key's signed assertion,
a federated subject token and an STS token must only ever reach Google."""
IDENTITY_HOSTS = ("metadata.google.internal", "localhost")
"""Besides loopback and link-local addresses, the hosts ``credential_source.url`` may
name: the node-local identity endpoints (GCE/Azure IMDS, a sidecar)."""


class CredentialFileRefused(ValueError):
    """A Google credential file asks for something the reconciler will not do; the
    message says what (it names keys and hosts, never secrets)."""


def _operator_origins(env: Mapping[str, str]) -> set[tuple[str, str, int | None]]:
    origins = set()
    for item in env.get(GCP_ENDPOINTS_VAR, "").split(","):
        if item.strip():
            url = httpx.URL(item.strip())
            origins.add((url.scheme, url.host, url.port))
    return origins


def _google_endpoint(document: Mapping[str, Any], key: str, env: Mapping[str, str]) -> str:
    """The URL at ``document[key]`` if it is one of Google's (``GOOGLE_ENDPOINT_HOSTS``)
    or on an origin the operator lists; CredentialFileRefused if not."""
    value = document[key]
    url = httpx.URL(value) if isinstance(value, str) else None
    if url is not None and not url.userinfo:
        if url.scheme == "https" and url.host in GOOGLE_ENDPOINT_HOSTS[key] and url.port is None:
            return str(url)
        if (url.scheme, url.host, url.port) in _operator_origins(env):
            return str(url)
    hosts = ", ".join(GOOGLE_ENDPOINT_HOSTS[key])
    raise CredentialFileRefused(
        f"{key} must be https://{hosts} (or an origin the operator lists in {GCP_ENDPOINTS_VAR})"
    )


def _identity_url(source: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """``credential_source.url`` if it names a node-local identity endpoint or an origin
    the operator lists: the reconciler fetches it with the file's headers, so any other
    host would make it a GET proxy into the cluster's network."""
    url = httpx.URL(str(source["url"]))
    if url.scheme in ("http", "https") and not url.userinfo:
        if url.host in IDENTITY_HOSTS or (url.scheme, url.host, url.port) in _operator_origins(env):
            return str(url)
        try:
            address = ipaddress.ip_address(url.host)
        except ValueError:
            address = None
        if address is not None and (address.is_loopback or address.is_link_local):
            return str(url)
        if address == ipaddress.ip_address("fd00:ec2::254"):  # EC2 IMDS over IPv6
            return str(url)
    raise CredentialFileRefused(
        "credential_source.url must be a loopback, link-local or metadata.google.internal"
        f" address (or an origin the operator lists in {GCP_ENDPOINTS_VAR})"
    )


def _subject_token(source: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """The external identity's token, from a file or a local URL (AIP-4117 ``file`` and
    ``url`` sources, ``format: text`` or ``json``)."""
    if "executable" in source:
        raise CredentialFileRefused(
            "credential_source.executable would run a command the file names; not supported"
        )
    if "environment_id" in source or "certificate" in source:
        raise CredentialFileRefused(
            "credential_source: only file and url sources are supported (not AWS or X.509)"
        )
    if "file" in source:
        if not Path(str(source["file"])).is_absolute():
            raise CredentialFileRefused("credential_source.file must be an absolute path")
        text = read_small_file(str(source["file"])).decode("utf-8")
    elif "url" in source:
        headers = {str(k): str(v) for k, v in (source.get("headers") or {}).items()}
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            answer = client.get(_identity_url(source, env), headers=headers)
            answer.raise_for_status()
        text = answer.text
    else:
        raise CredentialFileRefused("credential_source names neither file nor url")
    form = source.get("format") or {}
    kind = form.get("type", "text")
    if kind == "json":
        text = json.loads(text)[form["subject_token_field_name"]]
    elif kind != "text":
        raise CredentialFileRefused(f"credential_source.format.type {kind!r} is not supported")
    token = str(text).strip()
    if not token:
        raise CredentialFileRefused("the credential source holds an empty subject token")
    return token


def _gcp_service_account(
    key: Mapping[str, Any], env: Mapping[str, str], now: float
) -> tuple[str, float]:
    """A JWT-bearer grant signed with the key (Google "OAuth 2.0 for server to server
    applications")."""
    token_uri = _google_endpoint(key, "token_uri", env)
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
    data = _post(token_uri, data={"grant_type": grant, "assertion": assertion}).json()
    return data["access_token"], now + float(data["expires_in"])


def _gcp_external_account(
    account: Mapping[str, Any], env: Mapping[str, str], now: float
) -> tuple[str, float]:
    """Workload identity federation: subject token -> STS token exchange (RFC 8693,
    Google STS ``v1/token``) -> optionally IAM Credentials ``generateAccessToken`` for
    the service account the file names. Hand-written like the other providers:
    google-auth would add 110-260 ms of imports and a ``requests`` transport beside
    httpx, and its URLs would still need the checks below."""
    token_url = _google_endpoint(account, "token_url", env)
    impersonate = None
    if account.get("service_account_impersonation_url"):
        impersonate = _google_endpoint(account, "service_account_impersonation_url", env)
    form = {
        "grant_type": EXCHANGE_GRANT,
        "audience": str(account["audience"]),
        # Only IAM Credentials sees the STS token when impersonating: scope it to that.
        "scope": IAM_SCOPE if impersonate else GCP_SCOPE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "subject_token": _subject_token(account["credential_source"], env),
        "subject_token_type": str(account["subject_token_type"]),
    }
    headers = {}
    if account.get("client_id"):
        pair = f"{account['client_id']}:{account.get('client_secret') or ''}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    sts = _post(token_url, data=form, headers=headers).json()
    if impersonate is None:
        return sts["access_token"], now + float(sts["expires_in"])
    lifetime = int(
        (account.get("service_account_impersonation") or {}).get("token_lifetime_seconds", 3600)
    )
    answer = _post(
        impersonate,
        json={"scope": [GCP_SCOPE], "lifetime": f"{lifetime}s"},
        headers={"Authorization": f"Bearer {sts['access_token']}"},
    ).json()
    return answer["accessToken"], _rfc3339(answer["expireTime"])


def _rfc3339(stamp: str) -> float:
    """``2014-10-02T15:01:23.045123456Z`` (Google's nanosecond timestamps) -> epoch."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(
        f"0.{fraction or 0}"
    )


def _gcp(
    host: str, env: Mapping[str, str], now: float, scheme: str, identity_file: str | None
) -> tuple[tuple[str, str], float]:
    path = identity_file or env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        document = json.loads(read_small_file(path))
        kind = document.get("type") if isinstance(document, dict) else None
        if kind == "service_account":
            token, expires_at = _gcp_service_account(document, env, now)
        elif kind == "external_account":
            token, expires_at = _gcp_external_account(document, env, now)
        else:
            raise CredentialFileRefused(
                f"{path}: credential type {kind!r} is not supported"
                " (service_account or external_account)"
            )
        return (GCP_USER, token), expires_at
    metadata = env.get("GCE_METADATA_HOST") or "metadata.google.internal"
    url = f"http://{metadata}/computeMetadata/v1/instance/service-accounts/default/token"
    with httpx.Client(timeout=HTTP_TIMEOUT) as client:
        answer = client.get(url, headers={"Metadata-Flavor": "Google"})
        answer.raise_for_status()
    data = answer.json()
    return (GCP_USER, data["access_token"]), now + float(data["expires_in"])


# -- azure -------------------------------------------------------------------------


def _azure(
    host: str, env: Mapping[str, str], now: float, scheme: str, identity_file: str | None
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


Fetch = Callable[[str, Mapping[str, str], float, str, str | None], tuple[tuple[str, str], float]]
_FETCH: dict[str, Fetch] = {
    "aws": _aws,
    "gcp": _gcp,
    "azure": _azure,
}
