"""Native cloud registry auth (``credentials: {provider: aws|gcp|azure}``) against local
fakes of the providers' services, each built from the documented request and response
shapes named in its docstring, in front of a fake registry that accepts only what the
provider's flow yields.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler import model
from reconciler.config import load_config
from reconciler.errors import ConfigError, FeedAuthError
from reconciler.feeds.cloud import CloudTokens, sigv4_headers
from reconciler.feeds.oci import RegistryClient
from tests.helpers.configrepo import AppSpec, config_files, write_files
from tests.helpers.registry import RegistryServer, TokenServer, start_token_registry, unique_repo

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Fake:
    """A real HTTP server on loopback answering ``routes[(method, path)]``; records all."""

    routes: dict[tuple[str, str], Callable[[Request], Answer]]
    seen: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                fake.seen.append(request)
                route = fake.routes.get((self.command, urlsplit(self.path).path))
                status, headers, body = route(request) if route else (404, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _json(document: Any, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(document).encode()


def _registry(accept: Callable[[str], bool], challenge: str) -> Callable[[Request], Answer]:
    def tags(request: Request) -> Answer:
        if not accept(request.headers.get("authorization", "")):
            return 401, {"WWW-Authenticate": challenge}, b""
        return _json({"name": "app", "tags": ["1.0.0"]})

    return tags


@pytest.fixture
def fakes() -> Iterator[list[Fake]]:
    started: list[Fake] = []
    yield started
    for fake in started:
        fake.stop()


def _client(registry: Fake, provider: str, env: dict[str, str]) -> RegistryClient:
    operator = {
        "RECONCILER_CLOUD_REGISTRIES": f"{provider}={registry.host}",
        "RECONCILER_ALLOW_HTTP_CREDENTIALS": registry.host,
    }
    feed = model.Feed(
        "cloud",
        "oci",
        f"http://{registry.host}",
        insecure=True,
        credentials=model.Credentials(provider=provider),
    )
    return RegistryClient(feed, env={**operator, **env})


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- aws ---------------------------------------------------------------------------

STS_XML = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <SessionToken>session-token-xyz</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2030-01-01T00:00:00Z</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"""


def aws_fake(password: str) -> Fake:
    """STS and ECR on one host.

    STS ``AssumeRoleWithWebIdentity``: form-encoded query API (Action, Version, RoleArn,
    RoleSessionName, WebIdentityToken), XML answer with Credentials/{AccessKeyId,
    SecretAccessKey, SessionToken, Expiration} (AWS STS API reference). ECR
    ``GetAuthorizationToken``: JSON 1.1 protocol, ``X-Amz-Target:
    AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken``, answer
    ``authorizationData[].{authorizationToken: base64("AWS:<password>"), expiresAt,
    proxyEndpoint}`` (Amazon ECR API reference); SigV4-signed.
    """

    def sts(request: Request) -> Answer:
        form = request.form
        ok = form.get("Action") == "AssumeRoleWithWebIdentity" and form.get("RoleArn")
        if not ok or form.get("WebIdentityToken") != "projected-sa-token":
            return 403, {}, b"<Error/>"
        return 200, {"Content-Type": "text/xml"}, STS_XML.encode()

    def ecr(request: Request) -> Answer:
        target = request.headers.get("x-amz-target", "")
        authorization = request.headers.get("authorization", "")
        if (
            not target.endswith("GetAuthorizationToken")
            or "Credential=ASIAEXAMPLE/" not in authorization
        ):
            return _json({"__type": "UnrecognizedClientException"}, 400)
        token = base64.b64encode(f"AWS:{password}".encode()).decode()
        return _json(
            {"authorizationData": [{"authorizationToken": token, "expiresAt": time.time() + 43200}]}
        )

    return Fake({("POST", "/sts"): sts, ("POST", "/ecr"): ecr})


def test_aws_web_identity_to_ecr_token(fakes: list[Fake], tmp_path: Path) -> None:
    aws = aws_fake("ecr-password-1")
    registry = Fake(
        {
            ("GET", "/v2/app/tags/list"): _registry(
                lambda auth: auth == _basic("AWS", "ecr-password-1"), 'Basic realm="ecr"'
            )
        }
    )
    fakes += [aws, registry]
    token_file = tmp_path / "token"
    token_file.write_text("projected-sa-token\n")
    env = {
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/reconciler",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_STS": f"http://{aws.host}/sts",
        "AWS_ENDPOINT_URL_ECR": f"http://{aws.host}/ecr",
    }
    with _client(registry, "aws", env) as client:
        assert client.list_tags("app") == ["1.0.0"]
        assert client.list_tags("app") == ["1.0.0"]
    assert [r.path for r in aws.seen] == ["/sts", "/ecr"]  # cached: asked once
    ecr = aws.seen[1]
    assert ecr.headers["x-amz-security-token"] == "session-token-xyz"
    assert "/eu-west-1/ecr/aws4_request" in ecr.headers["authorization"]
    _check_with_botocore(ecr, f"http://{aws.host}/ecr")


def pod_identity_agent_fake() -> Fake:
    """The EKS Pod Identity agent (the SDKs' "container credential provider"): ``GET``
    on ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with ``Authorization: <the projected
    token file's text>`` answers ``{AccessKeyId, SecretAccessKey, Token, Expiration}``
    (AWS SDKs and Tools reference guide, "Container credential provider"; EKS user
    guide, "EKS Pod Identity")."""

    def credentials(request: Request) -> Answer:
        if request.headers.get("authorization") != "pod-identity-token":
            return 401, {}, b"{}"
        return _json(
            {
                "AccessKeyId": "ASIAEXAMPLE",
                "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
                "Token": "session-token-xyz",
                "Expiration": "2030-01-01T00:00:00Z",
            }
        )

    return Fake({("GET", "/v1/credentials"): credentials})


@pytest.mark.parametrize("source", ["pod-identity", "environment"])
def test_aws_pod_identity_and_environment_keys_to_ecr_token(
    fakes: list[Fake], tmp_path: Path, source: str
) -> None:
    aws = aws_fake("ecr-password-2")
    agent = pod_identity_agent_fake()
    registry = Fake(
        {
            ("GET", "/v2/app/tags/list"): _registry(
                lambda auth: auth == _basic("AWS", "ecr-password-2"), 'Basic realm="ecr"'
            )
        }
    )
    fakes += [aws, agent, registry]
    env = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_ECR": f"http://{aws.host}/ecr"}
    if source == "pod-identity":
        token_file = tmp_path / "eks-pod-identity-token"
        token_file.write_text("pod-identity-token\n")
        env |= {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://{agent.host}/v1/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
        }
    else:
        env |= {
            "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
            "AWS_SESSION_TOKEN": "session-token-xyz",
        }
    with _client(registry, "aws", env) as client:
        assert client.list_tags("app") == ["1.0.0"]
    assert len(agent.seen) == (1 if source == "pod-identity" else 0)
    [ecr] = aws.seen
    assert ecr.headers["x-amz-security-token"] == "session-token-xyz"
    _check_with_botocore(ecr, f"http://{aws.host}/ecr")


def _check_with_botocore(request: Request, url: str) -> None:
    """An independent SigV4 implementation must compute the same signature."""
    botocore = pytest.importorskip("botocore")
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    assert botocore
    headers = {
        "Content-Type": request.headers["content-type"],
        "X-Amz-Target": request.headers["x-amz-target"],
        "X-Amz-Security-Token": request.headers["x-amz-security-token"],
        "X-Amz-Date": request.headers["x-amz-date"],
    }
    aws_request = AWSRequest(method="POST", url=url, data=request.body, headers=headers)
    aws_request.context["timestamp"] = request.headers["x-amz-date"]
    credentials = Credentials(
        "ASIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY", "session-token-xyz"
    )
    signer = SigV4Auth(credentials, "ecr", "eu-west-1")
    # add_auth would stamp the current time; sign at the request's own timestamp.
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    assert request.headers["authorization"].rsplit("Signature=", 1)[1] == expected


def test_sigv4_matches_the_aws_documented_example() -> None:
    """The GET ListUsers example of AWS's "Signature Version 4 signing process" docs."""
    headers = sigv4_headers(
        "GET",
        "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        b"",
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        service="iam",
        amz_date="20150830T123600Z",
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


def test_tokens_are_renewed_shortly_before_they_expire(fakes: list[Fake], tmp_path: Path) -> None:
    now = [1_000_000.0]
    metadata = gcp_metadata_fake(lifetime=3600)
    fakes.append(metadata)
    tokens = CloudTokens(clock=lambda: now[0])
    env = {"GCE_METADATA_HOST": metadata.host, "RECONCILER_CLOUD_REGISTRIES": "gcp=r.test"}
    first = tokens.get("f", "gcp", "r.test", env)
    now[0] += 3600 - 301  # outside the 5-minute margin: the cached token
    assert tokens.get("f", "gcp", "r.test", env) == first
    now[0] += 2  # inside it: renewed before a request could carry an expired token
    assert tokens.get("f", "gcp", "r.test", env) != first
    assert len(metadata.seen) == 2


# -- gcp ---------------------------------------------------------------------------


def gcp_metadata_fake(lifetime: int = 3599) -> Fake:
    """The GCE/GKE metadata server: ``GET /computeMetadata/v1/instance/service-accounts/
    default/token`` with ``Metadata-Flavor: Google`` (refused without it) answers
    ``{access_token, expires_in, token_type: "Bearer"}`` (Compute Engine docs, "Get an
    access token from the metadata server")."""
    issued = iter(range(1, 1000))

    def token(request: Request) -> Answer:
        if request.headers.get("metadata-flavor") != "Google":
            return 403, {}, b""
        return _json(
            {
                "access_token": f"ya29.meta-{next(issued)}",
                "expires_in": lifetime,
                "token_type": "Bearer",
            }
        )

    return Fake({("GET", "/computeMetadata/v1/instance/service-accounts/default/token"): token})


def test_gcp_metadata_server_token_reads_artifact_registry(fakes: list[Fake]) -> None:
    metadata = gcp_metadata_fake()
    registry = Fake(
        {
            ("GET", "/v2/app/tags/list"): _registry(
                lambda auth: auth == _basic("oauth2accesstoken", "ya29.meta-1"), 'Basic realm="ar"'
            )
        }
    )
    fakes += [metadata, registry]
    with _client(registry, "gcp", {"GCE_METADATA_HOST": metadata.host}) as client:
        assert client.list_tags("app") == ["1.0.0"]


def test_gcp_service_account_key(fakes: list[Fake], tmp_path: Path) -> None:
    """A service-account key: a JWT-bearer grant at its ``token_uri`` (Google OAuth 2.0
    for server-to-server applications: RS256 assertion with iss, scope, aud, iat, exp)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()

    def token(request: Request) -> Answer:
        form = request.form
        claims = jwt.decode(
            form["assertion"], key.public_key(), algorithms=["RS256"], audience=token_uri
        )
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        assert claims["iss"] == "reconciler@proj.iam.gserviceaccount.com"
        return _json({"access_token": "ya29.sa", "expires_in": 3599, "token_type": "Bearer"})

    oauth = Fake({("POST", "/token"): token})
    registry = Fake(
        {
            ("GET", "/v2/app/tags/list"): _registry(
                lambda auth: auth == _basic("oauth2accesstoken", "ya29.sa"), 'Basic realm="ar"'
            )
        }
    )
    fakes += [oauth, registry]
    token_uri = f"http://{oauth.host}/token"
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "reconciler@proj.iam.gserviceaccount.com",
                "private_key": pem,
                "token_uri": token_uri,
            }
        )
    )
    env = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "RECONCILER_GCP_ENDPOINTS": f"http://{oauth.host}",  # the fake stands in for Google
    }
    with _client(registry, "gcp", env) as client:
        assert client.list_tags("app") == ["1.0.0"]


# -- azure -------------------------------------------------------------------------


def test_azure_workload_identity_to_acr(fakes: list[Fake], tmp_path: Path) -> None:
    """Entra ID: ``POST /{tenant}/oauth2/v2.0/token`` client-credentials grant with a
    federated ``client_assertion`` (Microsoft identity platform, "certificate credentials
    / federated"); ACR: ``POST /oauth2/exchange`` (grant_type=access_token, service,
    tenant, access_token) -> ``{refresh_token}``, then ``POST /oauth2/token``
    (grant_type=refresh_token, service, scope, refresh_token) -> ``{access_token}``
    (Azure/acr docs/AAD-OAuth.md)."""

    def entra(request: Request) -> Answer:
        form = request.form
        assert form["client_assertion"] == "federated-jwt"
        assert form["client_assertion_type"].endswith("jwt-bearer")
        assert form["client_id"] == "client-1" and form["grant_type"] == "client_credentials"
        return _json({"token_type": "Bearer", "expires_in": 3599, "access_token": "entra-at"})

    def exchange(request: Request) -> Answer:
        form = request.form
        if form.get("access_token") != "entra-at" or form.get("tenant") != "tenant-1":
            return 401, {}, b""
        return _json({"refresh_token": "acr-refresh"})

    def acr_token(request: Request) -> Answer:
        form = request.form
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != "acr-refresh":
            return 401, {}, b""
        return _json({"access_token": "acr-access"})

    authority = Fake({("POST", "/tenant-1/oauth2/v2.0/token"): entra})
    acr = Fake({})
    realm = 'Bearer realm="http://{host}/oauth2/token",service="{host}"'
    acr.routes.update(
        {
            ("POST", "/oauth2/exchange"): exchange,
            ("POST", "/oauth2/token"): acr_token,
            ("GET", "/v2/app/tags/list"): _registry(
                lambda auth: auth == "Bearer acr-access", realm.format(host=acr.host)
            ),
        }
    )
    fakes += [authority, acr]
    token_file = tmp_path / "azure-token"
    token_file.write_text("federated-jwt")
    env = {
        "AZURE_AUTHORITY_HOST": f"http://{authority.host}/",
        "AZURE_TENANT_ID": "tenant-1",
        "AZURE_CLIENT_ID": "client-1",
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
    }
    with _client(acr, "azure", env) as client:
        assert client.list_tags("app") == ["1.0.0"]
    assert [r.path for r in acr.seen if r.method == "POST"] == ["/oauth2/exchange", "/oauth2/token"]


# -- bound to their registries -------------------------------------------------------


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_cloud_credentials_never_go_to_another_registry(fakes: list[Fake], provider: str) -> None:
    metadata = gcp_metadata_fake()
    attacker = Fake(
        {("GET", "/v2/app/tags/list"): _registry(lambda auth: False, 'Basic realm="x"')}
    )
    fakes += [metadata, attacker]
    feed = model.Feed(
        "evil",
        "oci",
        f"http://{attacker.host}",
        insecure=True,
        credentials=model.Credentials(provider=provider),
    )
    env = {"GCE_METADATA_HOST": metadata.host, "RECONCILER_ALLOW_HTTP_CREDENTIALS": attacker.host}
    with RegistryClient(feed, env=env) as client, pytest.raises(FeedAuthError, match="not a"):
        client.list_tags("app")
    assert metadata.seen == []
    assert all("authorization" not in r.headers for r in attacker.seen)


def test_validate_names_a_provider_on_a_foreign_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECONCILER_CLOUD_REGISTRIES", raising=False)
    files = config_files(
        "https://registry.example.com",
        [AppSpec("api", "acme/api", "r/api")],
        feed_extra="credentials: {provider: gcp}\n",
    )
    write_files(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        "feeds/reg.yaml:6: credentials.provider: not granted: registry.example.com is not a "
        "gcp registry; the operator can add it to RECONCILER_CLOUD_REGISTRIES"
    ]
    ok = config_files(
        "https://europe-docker.pkg.dev/proj",
        [AppSpec("api", "acme/api", "r/api")],
        feed_extra="credentials: {provider: gcp}\n",
    )
    (tmp_path / "feeds/reg.yaml").write_text(ok["feeds/reg.yaml"])
    load_config(tmp_path)


# -- gcp external account (workload identity federation) ----------------------------

POOL = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p/providers/k8s"
SA_EMAIL = "reconciler@proj.iam.gserviceaccount.com"
IAM_PATH = f"/v1/projects/-/serviceAccounts/{SA_EMAIL}:generateAccessToken"
SUBJECT_JWT = "eyJhbGciOiJSUzI1NiJ9.subject.sig"
STS_TOKEN = "ya29.federated-sts"
STS_IAM_TOKEN = "ya29.federated-iam-only"
STS_SCOPES = {
    "https://www.googleapis.com/auth/cloud-platform": STS_TOKEN,
    "https://www.googleapis.com/auth/iam": STS_IAM_TOKEN,
}
IMPERSONATED = "ya29.impersonated-sa"


def google_sts_iam_fake(expire_time: str = "2030-01-01T00:00:00Z") -> Fake:
    """Google STS and IAM Credentials on one host.

    STS ``POST /v1/token`` (Google Cloud "Security Token Service API", method
    ``v1.token``; RFC 8693): form body ``grant_type=urn:ietf:params:oauth:grant-type:
    token-exchange``, ``audience`` (the workload identity pool provider), ``scope``,
    ``requested_token_type=urn:ietf:params:oauth:token-type:access_token``,
    ``subject_token``, ``subject_token_type``; answer ``{access_token, issued_token_type,
    token_type: Bearer, expires_in}``, or 400 ``{error: invalid_grant}``. The token is
    scoped as asked (``STS_SCOPES``): google-auth asks for the ``iam`` scope alone when
    it will only call IAM Credentials with it.
    IAM Credentials ``POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken``
    (IAM Service Account Credentials API reference): ``Authorization: Bearer <STS
    token>``, JSON ``{scope: [...], lifetime: "3600s"}``; answer ``{accessToken,
    expireTime}`` (RFC 3339, with 0, 3, 6 or 9 fraction digits); 401 for another bearer (here: one
    not scoped for IAM).
    """

    def sts(request: Request) -> Answer:
        form = dict(request.form)
        expected = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "audience": POOL,
            "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "subject_token": SUBJECT_JWT,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        }
        issued = STS_SCOPES.get(form.pop("scope", ""))
        if form != expected or issued is None:
            return _json({"error": "invalid_grant"}, 400)
        return _json(
            {
                "access_token": issued,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 3599,
            }
        )

    def generate(request: Request) -> Answer:
        if request.headers.get("authorization") != f"Bearer {STS_IAM_TOKEN}":
            return _json({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, 401)
        body = json.loads(request.body)
        assert body["scope"] == ["https://www.googleapis.com/auth/cloud-platform"]
        assert body["lifetime"] == "1800s"
        return _json({"accessToken": IMPERSONATED, "expireTime": expire_time})

    return Fake({("POST", "/v1/token"): sts, ("POST", IAM_PATH): generate})


def external_account(google: Fake, source: dict[str, Any], *, impersonate: bool = True) -> dict:
    """An external-account credential file as ``gcloud iam workload-identity-pools
    create-cred-config`` writes it (google-auth "Workload identity federation" docs,
    AIP-4117): ``type``, ``audience``, ``subject_token_type``, ``token_url``,
    ``credential_source``, optional ``service_account_impersonation_url``."""
    account: dict[str, Any] = {
        "type": "external_account",
        "audience": POOL,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"http://{google.host}/v1/token",
        "credential_source": source,
    }
    if impersonate:
        account["service_account_impersonation_url"] = f"http://{google.host}{IAM_PATH}"
        account["service_account_impersonation"] = {"token_lifetime_seconds": 1800}
    return account


def _google_env(google: Fake) -> dict[str, str]:
    """The operator lets the fakes stand in for Google's endpoints."""
    return {"RECONCILER_GCP_ENDPOINTS": f"http://{google.host}"}


@pytest.fixture(scope="module")
def artifact_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The real docker-registry behind a token server that, like Artifact Registry's
    ``/v2/token``, takes Basic ``oauth2accesstoken:<Google access token>``."""
    tokens = TokenServer(users={"oauth2accesstoken": IMPERSONATED})
    server = start_token_registry(tmp_path_factory.mktemp("artifact-registry"), tokens)
    yield server
    server.stop()


def test_gcp_external_account_file_to_impersonated_token_reads_the_real_registry(
    fakes: list[Fake], artifact_registry: RegistryServer, tmp_path: Path
) -> None:
    google = google_sts_iam_fake()
    fakes.append(google)
    repo = unique_repo("gcp")
    artifact_registry.push(repo, "1.2.3")
    subject = tmp_path / "oidc.json"
    subject.write_text(json.dumps({"id_token": SUBJECT_JWT}))
    source = {
        "file": str(subject),
        "format": {"type": "json", "subject_token_field_name": "id_token"},
    }
    identity = tmp_path / "federation.json"
    identity.write_text(json.dumps(external_account(google, source)))
    env = {
        **artifact_registry.operator_env(),
        **_google_env(google),
        "RECONCILER_CLOUD_REGISTRIES": f"gcp={artifact_registry.host}",
    }
    feed = artifact_registry.feed(
        credentials=model.Credentials(provider="gcp", identity_file=str(identity))
    )
    with RegistryClient(feed, env=env) as client:
        assert client.list_tags(repo) == ["1.2.3"]
        assert client.list_tags(repo) == ["1.2.3"]
    assert [r.path for r in google.seen] == ["/v1/token", IAM_PATH]  # cached: asked once
    assert SUBJECT_JWT not in str([r.headers for r in google.seen if r.path == IAM_PATH])


def test_gcp_external_account_url_source_uses_the_sts_token(fakes: list[Fake]) -> None:
    """A ``url`` source with headers and a text answer (Azure IMDS style), no
    impersonation: the STS token itself goes to the registry."""
    google = google_sts_iam_fake()
    identity_endpoint = Fake(
        {
            ("GET", "/token"): lambda r: (
                (200, {}, SUBJECT_JWT.encode())
                if r.headers.get("metadata") == "True"
                else (400, {}, b"")
            )
        }
    )
    registry = Fake(
        {
            ("GET", "/v2/app/tags/list"): _registry(
                lambda auth: auth == _basic("oauth2accesstoken", STS_TOKEN), 'Basic realm="ar"'
            )
        }
    )
    fakes += [google, identity_endpoint, registry]
    source = {"url": f"http://{identity_endpoint.host}/token", "headers": {"Metadata": "True"}}
    account = external_account(google, source, impersonate=False)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(account, file)
        file.flush()
        env = {"GOOGLE_APPLICATION_CREDENTIALS": file.name, **_google_env(google)}
        with _client(registry, "gcp", env) as client:
            assert client.list_tags("app") == ["1.0.0"]
    assert [r.path for r in google.seen] == ["/v1/token"]


def test_gcp_impersonated_token_is_renewed_before_its_expire_time(
    fakes: list[Fake], tmp_path: Path
) -> None:
    google = google_sts_iam_fake(expire_time="2030-01-01T00:00:00.500000000Z")
    fakes.append(google)
    subject = tmp_path / "token"
    subject.write_text(SUBJECT_JWT + "\n")
    identity = tmp_path / "federation.json"
    identity.write_text(json.dumps(external_account(google, {"file": str(subject)})))
    expires = 1893456000.5  # 2030-01-01T00:00:00.5Z
    now = [expires - 3600]
    tokens = CloudTokens(clock=lambda: now[0])
    env = {"RECONCILER_CLOUD_REGISTRIES": "gcp=r.test", **_google_env(google)}
    assert tokens.get("f", "gcp", "r.test", env, identity_file=str(identity)) == (
        "oauth2accesstoken",
        IMPERSONATED,
    )
    now[0] = expires - 301
    tokens.get("f", "gcp", "r.test", env, identity_file=str(identity))
    assert len(google.seen) == 2  # still the cached token
    now[0] = expires - 299
    tokens.get("f", "gcp", "r.test", env, identity_file=str(identity))
    assert len(google.seen) == 4  # renewed: STS and IAM again


def test_google_auth_sends_what_the_fakes_expect(fakes: list[Fake], tmp_path: Path) -> None:
    """Google's own library, given the same file, makes requests the fakes accept and
    gets the same token: the fakes' shapes are the ones Google's clients speak."""
    pytest.importorskip("google.auth")
    pytest.importorskip("requests")
    from google.auth import identity_pool
    from google.auth.transport.requests import Request as GoogleRequest

    google = google_sts_iam_fake()
    fakes.append(google)
    subject = tmp_path / "token"
    subject.write_text(SUBJECT_JWT)
    account = external_account(google, {"file": str(subject)})
    credentials = identity_pool.Credentials.from_info(
        account, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(GoogleRequest())
    assert credentials.token == IMPERSONATED
    theirs = _bodies(google.seen)
    google.seen.clear()
    identity = tmp_path / "federation.json"
    identity.write_text(json.dumps(account))
    env = {"RECONCILER_CLOUD_REGISTRIES": "gcp=r.test", **_google_env(google)}
    assert CloudTokens().get("f", "gcp", "r.test", env, identity_file=str(identity))[1] == (
        credentials.token
    )
    ours = _bodies(google.seen)
    assert ours == theirs


def _bodies(seen: list[Request]) -> list[tuple[str, dict[str, Any]]]:
    """Each request's form or JSON fields; an optional field sent as null is left out."""
    found = []
    for r in seen:
        fields = r.form if r.path == "/v1/token" else json.loads(r.body)
        found.append((r.path, {k: v for k, v in fields.items() if v is not None}))
    return found


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token_url": "https://sts.attacker.example/v1/token"}, "token_url must be"),
        ({"token_url": "http://sts.googleapis.com/v1/token"}, "token_url must be"),
        ({"token_url": "https://sts.googleapis.com@attacker.example/"}, "token_url must be"),
        (
            {"service_account_impersonation_url": f"https://attacker.example{IAM_PATH}"},
            "service_account_impersonation_url must be",
        ),
        (
            {"credential_source": {"executable": {"command": "/bin/sh -c 'id'"}}},
            "executable would run a command",
        ),
        (
            {"credential_source": {"url": "http://10.0.0.7/token", "headers": {"A": "b"}}},
            "credential_source.url must be",
        ),
        ({"credential_source": {"environment_id": "aws1"}}, "only file and url sources"),
        ({"credential_source": {"file": "relative/token"}}, "must be an absolute path"),
        ({"type": "authorized_user"}, "'authorized_user' is not supported"),
    ],
)
def test_gcp_credential_file_refusals(
    fakes: list[Fake], tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    """Without the operator's ``RECONCILER_GCP_ENDPOINTS``, the file's URLs must be
    Google's own: a file pointing elsewhere would hand the pod's subject token (or the
    STS token) to that host. Nothing is sent anywhere when a file is refused."""
    subject = tmp_path / "token"
    subject.write_text(SUBJECT_JWT)
    google = google_sts_iam_fake()
    fakes.append(google)
    account = external_account(google, {"file": str(subject)})
    account["token_url"] = "https://sts.googleapis.com/v1/token"
    account["service_account_impersonation_url"] = (
        f"https://iamcredentials.googleapis.com{IAM_PATH}"
    )
    account |= change
    identity = tmp_path / "federation.json"
    identity.write_text(json.dumps(account))
    env = {"RECONCILER_CLOUD_REGISTRIES": "gcp=r.test"}
    with pytest.raises(FeedAuthError, match=message) as info:
        CloudTokens().get("f", "gcp", "r.test", env, identity_file=str(identity))
    assert info.value.retry_after == 3600.0
    assert SUBJECT_JWT not in str(info.value)
    assert google.seen == []


def test_gcp_service_account_key_token_uri_must_be_google(tmp_path: Path) -> None:
    """A key's signed assertion is a credential for an hour: it goes only to Google's
    OAuth endpoint unless the operator lists another origin."""
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": SA_EMAIL,
                "private_key": "unused",
                "token_uri": "https://oauth.attacker.example/token",
            }
        )
    )
    env = {"RECONCILER_CLOUD_REGISTRIES": "gcp=r.test"}
    with pytest.raises(FeedAuthError, match=r"token_uri must be https://oauth2\.googleapis\.com"):
        CloudTokens().get("f", "gcp", "r.test", env, identity_file=str(key_file))


@pytest.mark.parametrize("which", ["identity file", "subject token file"])
def test_gcp_files_larger_than_the_cap_are_not_read_whole(
    fakes: list[Fake], tmp_path: Path, which: str
) -> None:
    """An identity file, or the subject-token file it names, is read up to the cap and
    refused past it (a config-named file must not fill the memory); nothing is sent."""
    from reconciler.feeds.secretfiles import MAX_SECRET_FILE_BYTES

    google = google_sts_iam_fake()
    fakes.append(google)
    subject = tmp_path / "token"
    subject.write_text(
        SUBJECT_JWT if which == "identity file" else "x" * (MAX_SECRET_FILE_BYTES + 1)
    )
    identity = tmp_path / "federation.json"
    account = json.dumps(external_account(google, {"file": str(subject)}))
    if which == "identity file":
        account += " " * MAX_SECRET_FILE_BYTES  # still valid JSON, only too big
    identity.write_text(account)
    env = {"RECONCILER_CLOUD_REGISTRIES": "gcp=r.test", **_google_env(google)}
    with pytest.raises(FeedAuthError, match=f"larger than {MAX_SECRET_FILE_BYTES} bytes"):
        CloudTokens().get("f", "gcp", "r.test", env, identity_file=str(identity))
    assert google.seen == []


def test_identity_file_must_be_granted(fakes: list[Fake], tmp_path: Path) -> None:
    """``identityFile`` comes from the untrusted config: the operator's grants decide
    which files a feed may name, at validate time and again before reading."""
    google = google_sts_iam_fake()
    registry = Fake({})
    fakes += [google, registry]
    outside = tmp_path / "elsewhere" / "federation.json"
    outside.parent.mkdir()
    outside.write_text(json.dumps(external_account(google, {"file": "/dev/null"})))
    granted = tmp_path / "granted"
    granted.mkdir()
    env = {
        "RECONCILER_CLOUD_REGISTRIES": f"gcp={registry.host}",
        "RECONCILER_ALLOW_HTTP_CREDENTIALS": registry.host,
        "RECONCILER_CREDENTIALS_DIR": str(granted),
        **_google_env(google),
    }
    (granted / "link.json").symlink_to(outside)
    for named in (outside, granted / "link.json"):
        feed = model.Feed(
            "cloud",
            "oci",
            f"http://{registry.host}",
            insecure=True,
            credentials=model.Credentials(provider="gcp", identity_file=str(named)),
        )
        with RegistryClient(feed, env=env) as client, pytest.raises(FeedAuthError) as info:
            client.list_tags("app")
        assert "credentials refused" in str(info.value)
    assert google.seen == []


def test_validate_checks_identity_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILER_CREDENTIALS_DIR", raising=False)
    monkeypatch.setenv("RECONCILER_CLOUD_REGISTRIES", "aws=registry.example.com")
    files = config_files(
        "https://europe-docker.pkg.dev/proj",
        [AppSpec("api", "acme/api", "r/api")],
        feed_extra="credentials: {provider: gcp, identityFile: /etc/gcp/federation.json}\n",
    )
    write_files(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        "feeds/reg.yaml:6: credentials.identityFile: not granted: /etc/gcp/federation.json is "
        "outside the directories granted to feeds (/var/run/secrets/reconciler)"
    ]
    wrong = config_files(
        "https://registry.example.com",
        [AppSpec("api", "acme/api", "r/api")],
        feed_extra="credentials:\n  provider: aws\n"
        "  identityFile: /var/run/secrets/reconciler/gcp.json\n",
    )
    (tmp_path / "feeds/reg.yaml").write_text(wrong["feeds/reg.yaml"])
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        "feeds/reg.yaml:8: credentials.identityFile: needs provider: gcp"
    ]
    ok = config_files(
        "https://europe-docker.pkg.dev/proj",
        [AppSpec("api", "acme/api", "r/api")],
        feed_extra="credentials:\n  provider: gcp\n"
        "  identityFile: /var/run/secrets/reconciler/g.json\n",
    )
    (tmp_path / "feeds/reg.yaml").write_text(ok["feeds/reg.yaml"])
    load_config(tmp_path)
