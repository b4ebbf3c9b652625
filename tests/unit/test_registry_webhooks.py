"""Issue 21 item 4: registry webhooks from Quay, ACR, Artifact Registry (Pub/Sub push),
ECR (EventBridge API destination), the GitLab container registry and JFrog Artifactory,
each with the payload its provider documents and authenticated as the provider allows."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from reconciler.server import ReconcilerServer, WebhookSecrets
from reconciler.webhooks import WebhookEvent, WebhookRejected, hmac_sha256_hex, receive

SECRET = "registry-hook-secret-0123"
DIGEST = "sha256:" + "ab" * 32

# Quay docs, "Repository notifications": the Push to Repository webhook body.
QUAY = {
    "repository": "mynamespace/repository",
    "namespace": "mynamespace",
    "name": "repository",
    "docker_url": "quay.io/mynamespace/repository",
    "homepage": "https://quay.io/repository/mynamespace/repository",
    "updated_tags": ["latest", "1.2.0"],
}

# Azure docs, "Azure Container Registry webhook reference": push event payload.
ACR = {
    "id": "cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
    "timestamp": "2017-11-17T16:52:01.343145347Z",
    "action": "push",
    "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 524,
        "digest": DIGEST,
        "length": 524,
        "repository": "hello-world",
        "tag": "v1",
    },
    "request": {
        "id": "3cbb6949-7549-4fa1-86cd-a6d5451dffc7",
        "host": "myregistry.azurecr.io",
        "method": "PUT",
        "useragent": "docker/17.09.0-ce go/go1.8.3 git-commit/afdb6d4 kernel/4.10.0-27-generic",
    },
}

# Google docs, Artifact Registry "Configure notifications": the Pub/Sub message data,
# delivered by a push subscription wrapped as Pub/Sub documents for push endpoints.
AR_DATA = {
    "action": "INSERT",
    "digest": f"us-east1-docker.pkg.dev/my-project/my-repo/hello-world@{DIGEST}",
    "tag": "us-east1-docker.pkg.dev/my-project/my-repo/hello-world:1.1",
}
ARTIFACT_REGISTRY = {
    "message": {
        "attributes": {},
        "data": base64.b64encode(json.dumps(AR_DATA).encode()).decode(),
        "messageId": "2070443601311540",
        "message_id": "2070443601311540",
        "publishTime": "2021-02-26T19:13:55.749Z",
        "publish_time": "2021-02-26T19:13:55.749Z",
    },
    "subscription": "projects/my-project/subscriptions/reconciler",
}

# AWS docs, "Amazon ECR events and EventBridge": event for a completed image push.
ECR = {
    "version": "0",
    "id": "13cde686-328b-6117-af20-0e5566167482",
    "detail-type": "ECR Image Action",
    "source": "aws.ecr",
    "account": "123456789012",
    "time": "2019-11-16T01:54:34Z",
    "region": "us-west-2",
    "resources": [],
    "detail": {
        "result": "SUCCESS",
        "repository-name": "my-repository-name",
        "image-digest": DIGEST,
        "action-type": "PUSH",
        "image-tag": "latest",
    },
}

# JFrog docs, "Domain: Docker", event "pushed" (data), in the webhook envelope.
ARTIFACTORY = {
    "domain": "docker",
    "event_type": "pushed",
    "data": {
        "repo_key": "docker-local",
        "event_type": "pushed",
        "path": "library/ubuntu/latest/list.manifest.json",
        "name": "list.manifest.json",
        "sha256": "35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce",
        "size": 1206,
        "image_name": "library/ubuntu",
        "tag": "latest",
        "platforms": [{"architecture": "amd64", "os": "linux"}],
    },
    "subscription_key": "reconciler",
    "jpd_origin": "https://acme.jfrog.io",
    "source": "jfrog/user@example.com",
}

# GitLab's container registry is distribution: gitlab.rb registry['notifications'].
GITLAB_REGISTRY = {
    "events": [
        {
            "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": DIGEST,
                "repository": "group/project/api",
                "tag": "2.0.0",
            },
            "request": {"host": "registry.gitlab.example.com"},
        }
    ]
}


def body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


BEARER = {"Authorization": f"Bearer {SECRET}"}


@pytest.mark.parametrize(
    ("endpoint", "document", "headers", "token", "expected"),
    [
        ("quay", QUAY, {}, SECRET, [("mynamespace/repository", "latest", None, "quay.io"),
                                    ("mynamespace/repository", "1.2.0", None, "quay.io")]),
        ("acr", ACR, BEARER, None, [("hello-world", "v1", DIGEST, "myregistry.azurecr.io")]),
        ("artifactregistry", ARTIFACT_REGISTRY, {}, SECRET,
         [("my-project/my-repo/hello-world", "1.1", DIGEST, "us-east1-docker.pkg.dev")]),
        ("ecr", ECR, BEARER, None, [("my-repository-name", "latest", DIGEST,
                                     "123456789012.dkr.ecr.us-west-2.amazonaws.com")]),
        ("artifactory", ARTIFACTORY, {"X-JFrog-Event-Auth": SECRET}, None,
         [("docker-local/library/ubuntu", "latest", "sha256:" + ARTIFACTORY["data"]["sha256"],  # type: ignore[index]
           "acme.jfrog.io")]),
        ("gitlab-registry", GITLAB_REGISTRY, BEARER, None,
         [("group/project/api", "2.0.0", DIGEST, "registry.gitlab.example.com")]),
    ],
)  # fmt: skip
def test_documented_push_payloads_become_registry_events(
    endpoint: str,
    document: dict[str, Any],
    headers: dict[str, str],
    token: str | None,
    expected: list[tuple[str, str, str | None, str]],
) -> None:
    events, _ = receive(endpoint, headers, body(document), SECRET, path_token=token)
    assert [(e.repository, e.tag, e.digest, e.host) for e in events] == expected
    assert all(e.kind == "registry" for e in events)


@pytest.mark.parametrize(
    ("endpoint", "headers", "token"),
    [
        ("quay", {}, "wrong"),
        ("quay", {}, None),
        ("acr", {"Authorization": "Bearer wrong"}, None),
        ("artifactregistry", {}, "wrong"),
        ("ecr", {}, None),
        ("artifactory", {"X-JFrog-Event-Auth": "wrong"}, None),
        ("artifactory", {}, None),
        ("gitlab-registry", {"Authorization": "Bearer wrong"}, None),
    ],
)
def test_wrong_or_missing_secrets_are_401(
    endpoint: str, headers: dict[str, str], token: str | None
) -> None:
    with pytest.raises(WebhookRejected) as caught:
        receive(endpoint, headers, b"{}", SECRET, path_token=token)
    assert caught.value.status == 401


def test_artifactory_payload_signing() -> None:
    raw = body(ARTIFACTORY)
    signed = {"X-JFrog-Event-Auth": hmac_sha256_hex(SECRET, raw)}
    events, _ = receive("artifactory", signed, raw, SECRET)
    assert [e.repository for e in events] == ["docker-local/library/ubuntu"]
    tampered = raw.replace(b"latest", b"evil-1")
    with pytest.raises(WebhookRejected):
        receive("artifactory", signed, tampered, SECRET)


@pytest.mark.parametrize(
    ("endpoint", "document", "headers", "token"),
    [
        ("acr", {**ACR, "action": "ping"}, BEARER, None),
        ("acr", {**ACR, "action": "delete"}, BEARER, None),
        ("ecr", {**ECR, "detail": {**ECR["detail"], "result": "FAILURE"}}, BEARER, None),  # type: ignore[dict-item]
        ("ecr", {**ECR, "detail": {**ECR["detail"], "action-type": "DELETE"}}, BEARER, None),  # type: ignore[dict-item]
        ("artifactory", {**ARTIFACTORY, "event_type": "deleted"},
         {"X-JFrog-Event-Auth": SECRET}, None),
        ("artifactregistry", {"message": {"data": base64.b64encode(b'{"action": "DELETE", '
                                                                   b'"tag": "h/p/i:1"}').decode()}},
         {}, SECRET),
        ("quay", {**QUAY, "updated_tags": []}, {}, SECRET),
    ],
)  # fmt: skip
def test_events_that_are_not_tag_pushes_are_ignored(
    endpoint: str, document: dict[str, Any], headers: dict[str, str], token: str | None
) -> None:
    events, _ = receive(endpoint, headers, body(document), SECRET, path_token=token)
    assert events == []


def test_malformed_bodies_are_400() -> None:
    for endpoint, document, headers, token in [
        ("quay", {"updated_tags": ["x"]}, {}, SECRET),
        ("artifactregistry", {"message": {"data": "not base64!"}}, {}, SECRET),
        ("acr", {"action": "push", "target": {"tag": "1"}}, BEARER, None),
    ]:
        with pytest.raises(WebhookRejected) as caught:
            receive(endpoint, headers, body(document), SECRET, path_token=token)
        assert caught.value.status == 400, endpoint


def test_the_sidecar_serves_the_new_endpoints() -> None:
    queued: list[WebhookEvent] = []
    app = ReconcilerServer(
        ("127.0.0.1", 0),
        on_event=queued.append,
        secrets=WebhookSecrets(environ={"RECONCILER_WEBHOOK_SECRET": SECRET}),
    )
    with app:
        quay = httpx.post(f"{app.url}/hooks/quay/{SECRET}", content=body(QUAY))
        ecr = httpx.post(f"{app.url}/hooks/ecr", content=body(ECR), headers=BEARER)
        wrong = httpx.post(f"{app.url}/hooks/quay/nope", content=body(QUAY))
        no_token_in_path = httpx.post(f"{app.url}/hooks/acr/{SECRET}", content=body(ACR))
    assert (quay.status_code, ecr.status_code) == (202, 202)
    assert (wrong.status_code, no_token_in_path.status_code) == (401, 404)
    assert [e.source for e in queued] == ["quay", "quay", "ecr"]
