"""RegistryClient against the real docker-registry (anonymous, Basic, bearer tokens),
and OciLayoutClient against layouts holding the same images."""

from __future__ import annotations

import base64
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import model
from reconciler.errors import FeedAuthError, FeedError, FeedNotFound
from reconciler.feeds.helm import HELM_CONFIG_MEDIA_TYPE as HELM_CONFIG
from reconciler.feeds.oci import MANIFEST_ACCEPT, RegistryClient
from reconciler.feeds.ocilayout import OciLayoutClient, build_image, write_image
from tests.helpers.oci import write_layout
from tests.helpers.registry import REFRESH_TOKEN, RegistryServer, unique_repo

JAN = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
FEB = datetime(2024, 2, 20, 8, 30, tzinfo=UTC)


def registry_digest(server: RegistryServer, repo: str, ref: str) -> str:
    """What the registry itself reports for ``repo:ref`` (independent of the client)."""
    response = server.client.get(
        f"{server.url}/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
    )
    response.raise_for_status()
    return response.headers["docker-content-digest"]


def test_anonymous_tags_digests_and_created(registry: RegistryServer) -> None:
    repo = unique_repo()
    oci = registry.push(repo, "1.0.0", created=JAN, content=b"one")
    docker = registry.push(repo, "1.1.0", created=FEB, content=b"two", docker=True)
    index = registry.push(
        repo,
        "2.0.0",
        content=b"three",
        platform_index=True,
        attestation=True,
        platform_created={"linux/amd64": JAN, "linux/arm64/v8": FEB},
    )
    docker_list = registry.push(
        repo, "2.1.0", content=b"four", platform_index=True, docker=True, created=FEB
    )
    with RegistryClient(registry.feed()) as client:
        assert sorted(client.list_tags(repo)) == ["1.0.0", "1.1.0", "2.0.0", "2.1.0"]
        for tag, pushed in [
            ("1.0.0", oci),
            ("1.1.0", docker),
            ("2.0.0", index),
            ("2.1.0", docker_list),
        ]:
            assert client.digest(repo, tag) == pushed == registry_digest(registry, repo, tag)
        assert client.created(repo, "1.0.0") == JAN
        assert client.created(repo, "1.1.0") == FEB
        assert client.created(repo, "2.0.0") == JAN  # default linux/amd64
        assert client.created(repo, "2.0.0", "linux/arm64/v8") == FEB
        assert client.created(repo, "2.1.0", "linux/arm64") == FEB
        with pytest.raises(FeedNotFound, match="no image for platform linux/ppc64le"):
            client.created(repo, "2.0.0", "linux/ppc64le")


def test_created_is_cached_per_manifest_digest(registry: RegistryServer) -> None:
    repo = unique_repo()
    registry.push(repo, "1.0.0", created=JAN, content=b"a", platform_index=True)
    registry.push(repo, "latest", created=JAN, content=b"a", platform_index=True)  # same digest
    with RegistryClient(registry.feed()) as client:
        assert client.created(repo, "1.0.0") == JAN
        cold = dict(client.requests_by_kind)
        assert cold == {"manifest_head": 1, "manifest_get": 2, "blob": 1}
        for _ in range(5):
            assert client.created(repo, "1.0.0") == JAN
        assert client.created(repo, "latest") == JAN
        # warm: one HEAD per call, the index, manifest and config are never fetched again
        assert client.requests_by_kind == {"manifest_head": 7, "manifest_get": 2, "blob": 1}


def test_helm_chart_config_is_recognised(registry: RegistryServer) -> None:
    repo = unique_repo("charts")
    registry.push(
        repo,
        "1.2.3_build.1",
        config_media_type=HELM_CONFIG,
        annotations={"org.opencontainers.image.created": "2024-01-15T12:00:00Z"},
    )
    with RegistryClient(registry.feed()) as client:
        media_type, config = client.manifest_config(repo, "1.2.3_build.1")
        assert media_type == HELM_CONFIG
        assert config["architecture"] == "amd64"
        # the config has no `created`; helm's manifest annotation is used instead
        assert client.created(repo, "1.2.3_build.1") == JAN


def test_unknown_repository_and_tag_are_not_found(registry: RegistryServer) -> None:
    repo = unique_repo()
    registry.push(repo, "1.0.0")
    with RegistryClient(registry.feed()) as client:
        with pytest.raises(FeedNotFound, match="NAME_UNKNOWN"):
            client.list_tags(unique_repo())
        with pytest.raises(FeedNotFound):
            client.digest(repo, "9.9.9")


def test_tags_are_empty_after_every_tag_is_deleted(registry: RegistryServer) -> None:
    repo = unique_repo()
    first = registry.push(repo, "1.0.0", content=b"x")
    second = registry.push(repo, "1.0.1", content=b"y")
    registry.delete(repo, first)
    registry.delete(repo, second)
    with RegistryClient(registry.feed()) as client:
        assert client.list_tags(repo) == []


def test_concurrent_use_from_threads(registry: RegistryServer) -> None:
    repo = unique_repo()
    digests = {
        f"1.0.{i}": registry.push(repo, f"1.0.{i}", content=str(i).encode()) for i in range(6)
    }
    found: dict[str, str | None] = {}
    feed = registry.feed(limits=model.Limits(concurrency=2))
    with RegistryClient(feed) as client:
        threads = [
            threading.Thread(target=lambda t=tag: found.update({t: client.digest(repo, t)}))
            for tag in digests
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert found == digests


# -- Basic auth ------------------------------------------------------------------


def test_basic_auth_with_env_credentials(registry_basic: RegistryServer) -> None:
    repo = unique_repo()
    pushed = registry_basic.push(repo, "1.0.0", created=JAN)
    feed = registry_basic.feed(credentials=registry_basic.credentials())
    with RegistryClient(feed, env=registry_basic.env()) as client:
        assert client.list_tags(repo) == ["1.0.0"]
        assert client.digest(repo, "1.0.0") == pushed
        assert client.created(repo, "1.0.0") == JAN
        # one 401 to learn the scheme; every later request authenticates up front
        assert client.requests_made == 1 + 1 + 1 + 2 + 1


def test_basic_auth_from_docker_config(registry_basic: RegistryServer, tmp_path: Path) -> None:
    repo = unique_repo()
    registry_basic.push(repo, "1.0.0")
    raw = f"{registry_basic.username}:{registry_basic.password}".encode()
    config = {"auths": {registry_basic.host: {"auth": base64.b64encode(raw).decode()}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    feed = registry_basic.feed(credentials=model.Credentials(docker_config=str(tmp_path)))
    with RegistryClient(feed, env=registry_basic.operator_env()) as client:
        assert client.list_tags(repo) == ["1.0.0"]


def test_basic_auth_wrong_password_and_no_credentials(registry_basic: RegistryServer) -> None:
    repo = unique_repo()
    registry_basic.push(repo, "1.0.0")
    wrong = registry_basic.feed(credentials=registry_basic.credentials())
    env = registry_basic.env(password="wrong-password")
    with RegistryClient(wrong, env=env) as client, pytest.raises(FeedAuthError) as caught:
        client.list_tags(repo)
    assert "wrong-password" not in str(caught.value)
    with (
        RegistryClient(registry_basic.feed()) as anonymous,
        pytest.raises(FeedAuthError, match="no credentials"),
    ):
        anonymous.digest(repo, "1.0.0")


# -- bearer tokens ---------------------------------------------------------------


def test_token_flow_caches_tokens_per_scope(registry_token: RegistryServer) -> None:
    tokens = registry_token.token_server
    assert tokens is not None
    repos = [unique_repo(), unique_repo()]
    pushed = {
        repo: registry_token.push(repo, "1.0.0", created=FEB, content=repo.encode())
        for repo in repos
    }
    feed = registry_token.feed(credentials=registry_token.credentials())
    before = len(tokens.requests)
    with RegistryClient(feed, env=registry_token.env()) as client:
        for _ in range(10):
            for repo in repos:
                assert client.list_tags(repo) == ["1.0.0"]
                assert client.digest(repo, "1.0.0") == pushed[repo]
        assert client.created(repos[0], "1.0.0") == FEB
        assert client.requests_by_kind["token"] == 2  # one per repository scope
    issued = tokens.requests[before:]
    assert [r["scopes"] for r in issued] == [[f"repository:{repo}:pull"] for repo in repos]
    assert {r["user"] for r in issued} == {registry_token.username}


def test_token_flow_wrong_password(registry_token: RegistryServer) -> None:
    repo = unique_repo()
    registry_token.push(repo, "1.0.0")
    feed = registry_token.feed(credentials=registry_token.credentials())
    env = registry_token.env(password="nope-nope")
    with RegistryClient(feed, env=env) as client, pytest.raises(FeedAuthError) as caught:
        client.list_tags(repo)
    assert "token server" in str(caught.value)
    assert "nope-nope" not in str(caught.value)


@pytest.mark.parametrize("source", ["identitytoken", "credential-helper"])
def test_identity_token_is_exchanged_at_the_token_server(
    registry_token: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    """An identity token (``docker login`` against Azure/Harbor OIDC, or a credential
    helper answering ``<token>``) is a refresh token: it goes to the token server as an
    OAuth2 refresh-token grant, and the access token it buys reads the registry."""
    tokens = registry_token.token_server
    assert tokens is not None
    repo = unique_repo()
    registry_token.push(repo, "1.0.0")
    host = registry_token.host
    if source == "identitytoken":
        document = {"auths": {host: {"identitytoken": REFRESH_TOKEN}}}
    else:
        helper = tmp_path / "bin" / "docker-credential-oidc"
        helper.parent.mkdir()
        answer = {"ServerURL": host, "Username": "<token>", "Secret": REFRESH_TOKEN}
        helper.write_text(f"#!/bin/sh\nread -r server\necho '{json.dumps(answer)}'\n")
        helper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{helper.parent}:{os.environ['PATH']}")
        document = {"credHelpers": {host: "oidc"}}
    config = tmp_path / "config.json"
    config.write_text(json.dumps(document))
    feed = registry_token.feed(credentials=model.Credentials(docker_config=str(config)))
    before = len(tokens.requests)
    with RegistryClient(feed, env=registry_token.operator_env()) as client:
        assert client.list_tags(repo) == ["1.0.0"]
    [grant] = tokens.requests[before:]
    assert grant == {
        "grant": "refresh_token",
        "user": registry_token.username,
        "scopes": [f"repository:{repo}:pull"],
        "rejected": False,
    }

    config.write_text(json.dumps({"auths": {host: {"identitytoken": "revoked-token"}}}))
    other = registry_token.feed(credentials=model.Credentials(docker_config=str(config)))
    with (
        RegistryClient(other, env=registry_token.operator_env()) as client,
        pytest.raises(FeedAuthError) as caught,
    ):
        client.list_tags(repo)
    assert str(caught.value).endswith("rejected the identity token")
    assert "revoked-token" not in str(caught.value)


def test_anonymous_token_reads_public_repositories_only(registry_token: RegistryServer) -> None:
    public = unique_repo("public")
    private = unique_repo("private")
    registry_token.push(public, "1.0.0")
    registry_token.push(private, "1.0.0")
    with RegistryClient(registry_token.feed()) as client:
        assert client.list_tags(public) == ["1.0.0"]
        with pytest.raises(FeedAuthError):
            client.list_tags(private)


# -- OCI image layout ------------------------------------------------------------


def test_layout_digests_match_the_registry(registry: RegistryServer, tmp_path: Path) -> None:
    repo = unique_repo()
    options = {
        "content": b"same bytes",
        "platform_index": True,
        "platform_created": {"linux/amd64": JAN, "linux/arm64/v8": FEB},
    }
    pushed = registry.push(repo, "3.0.0", **options)
    written = write_layout(tmp_path / "feed", repo, "3.0.0", **options)
    write_layout(tmp_path / "feed", repo, "3.1.0", created=FEB, content=b"other")
    layout = OciLayoutClient(
        model.Feed(name="demo", type="oci-layout", url="feed"), base_dir=tmp_path
    )
    assert written == pushed
    assert layout.list_tags(repo) == ["3.0.0", "3.1.0"]
    assert layout.digest(repo, "3.0.0") == pushed
    assert layout.created(repo, "3.0.0") == JAN
    assert layout.created(repo, "3.0.0", "linux/arm64/v8") == FEB
    assert layout.created(repo, "3.1.0") == FEB
    with pytest.raises(FeedNotFound):
        layout.digest(repo, "9.9.9")
    with pytest.raises(FeedNotFound):
        layout.list_tags("absent/repo")


def test_single_layout_with_full_reference_names(tmp_path: Path) -> None:
    image = build_image(created=JAN)
    write_image(tmp_path, "acme/web:1.0.0", image)
    write_image(tmp_path, "acme/api:2.0.0", build_image(created=FEB, content=b"api"))
    layout = OciLayoutClient(
        model.Feed(name="demo", type="oci-layout", url=str(tmp_path)),
        env={"RECONCILER_OCI_LAYOUT_DIRS": str(tmp_path)},
    )
    assert layout.list_tags("acme/web") == ["1.0.0"]
    assert layout.digest("acme/web", "1.0.0") == image.digest
    assert layout.created("acme/api", "2.0.0") == FEB


def test_layout_tag_rewrite_replaces_the_entry(tmp_path: Path) -> None:
    write_layout(tmp_path, "app", "latest", created=JAN, content=b"1")
    newer = write_layout(tmp_path, "app", "latest", created=FEB, content=b"2")
    layout = OciLayoutClient(
        model.Feed(name="demo", type="oci-layout", url=str(tmp_path)),
        env={"RECONCILER_OCI_LAYOUT_DIRS": str(tmp_path)},
    )
    assert layout.list_tags("app") == ["latest"]
    assert layout.digest("app", "latest") == newer


def test_insecure_feed_needed_for_plain_http_registry(registry: RegistryServer) -> None:
    feed = registry.feed(insecure=False)
    with RegistryClient(feed) as client, pytest.raises(FeedError, match="insecure: true"):
        client.list_tags("anything")
    assert client.requests_made == 0
