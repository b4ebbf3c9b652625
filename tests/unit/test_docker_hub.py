"""Docker Hub conventions: ``docker.io/nginx`` is ``registry-1.docker.io/library/nginx``,
its credentials live under ``https://index.docker.io/v1/`` in config.json, and its token
realm on auth.docker.io is paired with it out of the box.

Docker Hub's host names cannot be served locally, so this uses httpx's MockTransport,
answering as Docker Hub documents (challenge realm ``https://auth.docker.io/token``,
service ``registry.docker.io``).
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

import httpx
import pytest

from reconciler import model
from reconciler.feeds.oci import RegistryClient
from reconciler.grants import policy_from_env

SECRET = "hub-password-4c1d"


class FakeHub:
    """registry-1.docker.io + auth.docker.io as Docker documents them."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "auth.docker.io":
            return httpx.Response(200, json={"token": "hub-token", "expires_in": 300})
        assert request.url.host == "registry-1.docker.io"
        if request.headers.get("authorization") != "Bearer hub-token":
            scope = request.url.path.split("/v2/")[1].rsplit("/tags/", 1)[0]
            challenge = (
                'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                f'scope="repository:{scope}:pull"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, json={"name": "x", "tags": ["1.27.0"]})


def client(url: str, hub: FakeHub, credentials: model.Credentials | None = None, **env: str):
    feed = model.Feed("hub", "oci", url, credentials=credentials)
    return RegistryClient(feed, transport=httpx.MockTransport(hub), env=env)


@pytest.mark.parametrize("url", ["docker.io", "https://docker.io", "https://index.docker.io"])
def test_official_images_are_under_library_on_the_api_host(url: str) -> None:
    hub = FakeHub()
    assert client(url, hub).list_tags("nginx") == ["1.27.0"]
    assert client(url, hub).list_tags("bitnami/nginx") == ["1.27.0"]
    registry_paths = [str(r.url) for r in hub.requests if r.url.host != "auth.docker.io"]
    assert "https://registry-1.docker.io/v2/library/nginx/tags/list" in registry_paths
    assert "https://registry-1.docker.io/v2/bitnami/nginx/tags/list" in registry_paths
    scopes = [r.url.params["scope"] for r in hub.requests if r.url.host == "auth.docker.io"]
    assert scopes == ["repository:library/nginx:pull", "repository:bitnami/nginx:pull"]


def test_a_namespace_in_the_feed_url_is_not_library() -> None:
    hub = FakeHub()
    client("docker.io/bitnami", hub).list_tags("nginx")
    assert hub.requests[0].url.path == "/v2/bitnami/nginx/tags/list"


def test_config_json_hub_key_is_sent_to_the_hub_token_realm(tmp_path: Path) -> None:
    auth = base64.b64encode(f"me:{SECRET}".encode()).decode()
    config = Path(tempfile.mkdtemp(dir=tmp_path)) / "config.json"
    config.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}}))
    hub = FakeHub()
    credentials = model.Credentials(docker_config=str(config))
    grants = {"RECONCILER_CREDENTIALS_DIR": f"docker.io={tmp_path}"}
    assert client("docker.io", hub, credentials, **grants).list_tags("nginx") == ["1.27.0"]
    [token_request] = [r for r in hub.requests if r.url.host == "auth.docker.io"]
    expected = "Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode()
    assert token_request.headers["authorization"] == expected
    assert token_request.url.params["service"] == "registry.docker.io"


def test_grants_name_docker_hub_by_any_alias() -> None:
    policy = policy_from_env({"RECONCILER_FEED_ENV_PREFIX": "docker.io=RECONCILER_FEED_HUB_"})
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert policy.env_problem("RECONCILER_FEED_HUB_TOKEN", host) is None
        assert policy.realm_allowed(host, "auth.docker.io")
    assert policy.env_problem("RECONCILER_FEED_HUB_TOKEN", "ghcr.io") is not None
    assert not policy.realm_allowed("ghcr.io", "auth.docker.io")
