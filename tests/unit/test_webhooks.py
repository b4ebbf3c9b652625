"""Webhook authentication and parsing (reconciler.webhooks), with payloads shaped
like the ones in /work/shared/reference/protocols.md §4 and §5.4."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from reconciler.webhooks import (
    ReplayGuard,
    WebhookEvent,
    WebhookRejected,
    authenticate,
    hmac_sha256_hex,
    parse_event,
    receive,
)

SECRET = "s3cret-value"

DISTRIBUTION_PUSH = {
    "events": [
        {
            "id": "1ccda1aa-0001",
            "timestamp": "2026-11-23T18:38:23.92Z",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": "sha256:" + "05a3" * 16,
                "size": 534,
                "length": 534,
                "repository": "app/multi",
                "tag": "2.0.0",
                "url": "http://registry.example:5000/v2/app/multi/manifests/sha256:05a3",
            },
            "request": {
                "id": "req-1",
                "addr": "10.0.0.5:50448",
                "host": "registry.example:5000",
                "method": "PUT",
                "useragent": "python-httpx/0.28.1",
            },
            "actor": {},
            "source": {"addr": "registry-node:5000", "instanceID": "i-1"},
        },
        # A blob upload: also a push, but of application/octet-stream and without a tag.
        {
            "id": "1ccda1aa-0002",
            "action": "push",
            "target": {
                "mediaType": "application/octet-stream",
                "digest": "sha256:" + "aa" * 32,
                "repository": "app/multi",
            },
        },
        # A manifest read.
        {
            "id": "1ccda1aa-0003",
            "action": "pull",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "repository": "app/multi",
                "tag": "2.0.0",
            },
        },
        # A manifest pushed by digest only (untagged).
        {
            "id": "1ccda1aa-0004",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": "sha256:" + "bb" * 32,
                "repository": "app/multi",
            },
        },
    ]
}

DOCKERHUB_PUSH = {
    "callback_url": "https://registry.hub.docker.com/u/ns/repo/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
    "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "latest"},
    "repository": {
        "repo_name": "ns/repo",
        "namespace": "ns",
        "name": "repo",
        "is_private": True,
        "status": "Active",
    },
}

GITHUB_PACKAGE = {
    "action": "published",
    "package": {
        "id": 1,
        "name": "Hello-World",
        "namespace": "Octo-Org",
        "package_type": "CONTAINER",
        "package_version": {
            "id": 2,
            "version": "sha256:" + "cc" * 32,
            "container_metadata": {
                "tag": {"name": "1.4.2", "digest": "sha256:" + "cc" * 32},
                "manifest": {
                    "digest": "sha256:" + "cc" * 32,
                    "media_type": "application/vnd.oci.image.manifest.v1+json",
                },
            },
            "package_url": "ghcr.io/octo-org/hello-world:1.4.2",
        },
        "owner": {"login": "Octo-Org"},
    },
    "repository": {"full_name": "Octo-Org/Hello-World"},
    "sender": {"login": "octocat"},
}

HARBOR_PUSH = {
    "type": "PUSH_ARTIFACT",
    "occur_at": 1586922308,
    "operator": "admin",
    "event_data": {
        "resources": [
            {
                "digest": "sha256:" + "8a9e" * 16,
                "tag": "latest",
                "resource_url": "hub.harbor.com/test-webhook/debian:latest",
            }
        ],
        "repository": {
            "date_created": 1586922308,
            "name": "debian",
            "namespace": "test-webhook",
            "repo_full_name": "test-webhook/debian",
            "repo_type": "private",
        },
    },
}

AFTER = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
GITHUB_PUSH = {
    "ref": "refs/heads/main",
    "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    "after": AFTER,
    "deleted": False,
    "repository": {"full_name": "acme/config", "name": "config"},
    "commits": [],
}
GITLAB_PUSH = {
    "object_kind": "push",
    "ref": "refs/heads/main",
    "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
    "after": AFTER,
    "checkout_sha": AFTER,
    "project": {"path_with_namespace": "acme/config"},
    "total_commits_count": 1,
}
GITEA_PUSH = {
    "ref": "refs/heads/main",
    "before": "0" * 40,
    "after": AFTER,
    "repository": {"full_name": "acme/config"},
    "commits": [],
    "total_commits": 1,
}


def body_of(document: Any) -> bytes:
    return json.dumps(document).encode()


def github_headers(body: bytes, event: str, delivery: str = "72d3162e-cc78-11e3") -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(SECRET, body),
        "Content-Type": "application/json",
    }


# ------------------------------------------------------------------ signatures


def test_hmac_matches_githubs_published_test_vector() -> None:
    assert (
        hmac_sha256_hex("It's a Secret to Everybody", b"Hello, World!")
        == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_github_signature_test_vector_is_accepted() -> None:
    vector = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    headers = {"x-hub-signature-256": f"sha256={vector}"}
    authenticate("github", headers, b"Hello, World!", "It's a Secret to Everybody")


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=" + "0" * 64,  # wrong value
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",  # prefix missing
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "",
    ],
)
def test_bad_github_signature_is_401(signature: str) -> None:
    with pytest.raises(WebhookRejected) as caught:
        authenticate(
            "github",
            {"x-hub-signature-256": signature},
            b"Hello, World!",
            "It's a Secret to Everybody",
        )
    assert caught.value.status == 401


def test_github_signature_covers_the_raw_body() -> None:
    body = body_of(GITHUB_PUSH)
    headers = {"x-hub-signature-256": "sha256=" + hmac_sha256_hex(SECRET, body)}
    authenticate("github", headers, body, SECRET)
    with pytest.raises(WebhookRejected):
        authenticate("github", headers, body + b" ", SECRET)


def test_gitea_signature_has_no_prefix() -> None:
    body = body_of(GITEA_PUSH)
    authenticate("gitea", {"x-gitea-signature": hmac_sha256_hex(SECRET, body)}, body, SECRET)
    with pytest.raises(WebhookRejected) as caught:
        authenticate(
            "gitea", {"x-gitea-signature": "sha256=" + hmac_sha256_hex(SECRET, body)}, body, SECRET
        )
    assert caught.value.status == 401


def test_gitea_form_delivery_signs_the_json_only() -> None:
    payload = json.dumps(GITEA_PUSH)
    body = urlencode({"payload": payload}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Gitea-Signature": hmac_sha256_hex(SECRET, payload.encode()),
        "X-Gitea-Event": "push",
    }
    events, _ = receive("gitea", headers, body, SECRET)
    assert events[0].commit == AFTER


@pytest.mark.parametrize(
    ("endpoint", "good", "bad"),
    [
        ("distribution", {"authorization": f"Bearer {SECRET}"}, {"authorization": "Bearer nope"}),
        ("distribution", {"authorization": f"bearer {SECRET}"}, {"authorization": SECRET}),
        ("harbor", {"authorization": SECRET}, {"authorization": f"Bearer {SECRET}"}),
        ("gitlab", {"x-gitlab-token": SECRET}, {"x-gitlab-token": SECRET + "x"}),
        ("gitlab", {"x-gitlab-token": SECRET}, {}),
    ],
)
def test_token_authentication(endpoint: str, good: dict[str, str], bad: dict[str, str]) -> None:
    authenticate(endpoint, good, b"{}", SECRET)
    with pytest.raises(WebhookRejected) as caught:
        authenticate(endpoint, bad, b"{}", SECRET)
    assert caught.value.status == 401


def test_dockerhub_is_authenticated_by_the_url_token() -> None:
    authenticate("dockerhub", {}, b"{}", SECRET, path_token=SECRET)
    for token in (None, "", "guess"):
        with pytest.raises(WebhookRejected) as caught:
            authenticate("dockerhub", {}, b"{}", SECRET, path_token=token)
        assert caught.value.status == 401


def test_authentication_happens_before_parsing() -> None:
    """An unauthenticated sender learns nothing about what the parser accepts."""
    with pytest.raises(WebhookRejected) as caught:
        receive("gitlab", {"X-Gitlab-Token": "wrong"}, b"not json", SECRET)
    assert caught.value.status == 401


# ------------------------------------------------------------------ parsing


def test_distribution_acts_only_on_tagged_manifest_pushes() -> None:
    events = parse_event("distribution", {}, body_of(DISTRIBUTION_PUSH))
    assert events == [
        WebhookEvent(
            kind="registry",
            source="distribution",
            repository="app/multi",
            tag="2.0.0",
            digest="sha256:" + "05a3" * 16,
            host="registry.example:5000",
            delivery_id="1ccda1aa-0001",
        )
    ]


def test_registry_is_an_alias_of_distribution() -> None:
    headers = {"Authorization": f"Bearer {SECRET}"}
    events, _ = receive("registry", headers, body_of(DISTRIBUTION_PUSH), SECRET)
    assert [e.source for e in events] == ["distribution"]


def test_dockerhub_push() -> None:
    [event] = parse_event("dockerhub", {}, body_of(DOCKERHUB_PUSH))
    assert (event.kind, event.source, event.repository, event.tag, event.digest) == (
        "registry",
        "dockerhub",
        "ns/repo",
        "latest",
        None,
    )


def test_github_package_event_lower_cases_the_ghcr_path() -> None:
    body = body_of(GITHUB_PACKAGE)
    events, _ = receive("github", github_headers(body, "package"), body, SECRET)
    assert events == [
        WebhookEvent(
            kind="registry",
            source="github-package",
            repository="octo-org/hello-world",
            tag="1.4.2",
            digest="sha256:" + "cc" * 32,
            host="ghcr.io",
            delivery_id="72d3162e-cc78-11e3",
        )
    ]


def test_github_registry_package_event_uses_its_own_key() -> None:
    document = dict(GITHUB_PACKAGE)
    document["registry_package"] = document.pop("package")
    [event] = parse_event("github", {"x-github-event": "registry_package"}, body_of(document))
    assert event.tag == "1.4.2"


def test_github_untagged_package_push_and_ping_are_ignored() -> None:
    untagged = json.loads(json.dumps(GITHUB_PACKAGE))
    untagged["package"]["package_version"]["container_metadata"]["tag"]["name"] = ""
    assert parse_event("github", {"x-github-event": "package"}, body_of(untagged)) == []
    assert parse_event("github", {"x-github-event": "ping"}, b'{"zen": "Keep it simple"}') == []


def test_harbor_push_artifact() -> None:
    [event] = parse_event("harbor", {}, body_of(HARBOR_PUSH))
    assert (event.repository, event.tag, event.digest, event.host) == (
        "test-webhook/debian",
        "latest",
        "sha256:" + "8a9e" * 16,
        "hub.harbor.com",
    )
    pulled = dict(HARBOR_PUSH, type="PULL_ARTIFACT")
    assert parse_event("harbor", {}, body_of(pulled)) == []


HARBOR_CLOUDEVENT = {
    "specversion": "1.0",
    "id": "66e18103-09c1-41f6-982f-37df223f3eeb",
    "requestid": "51c0b694-0168-4f3c-b0db-282565455d7b",
    "source": "/projects/2/webhook/policies/15",
    "type": "harbor.artifact.pushed",
    "datacontenttype": "application/json",
    "time": "2023-04-03T06:04:46Z",
    "data": {
        "resources": [
            {
                "digest": "sha256:" + "954b" * 16,
                "tag": "1.4.0",
                "resource_url": "hub.harbor.com/team/api:1.4.0",
            },
            {  # an untagged push: Harbor repeats the digest as the tag
                "digest": "sha256:" + "954b" * 16,
                "tag": "sha256:" + "954b" * 16,
                "resource_url": "hub.harbor.com/team/api@sha256:" + "954b" * 16,
            },
        ],
        "repository": {"name": "api", "namespace": "team", "repo_full_name": "team/api"},
    },
    "operator": "robot$ci",
}


def test_harbor_cloudevents_structured_and_binary() -> None:
    expected = ("team/api", "1.4.0", "sha256:" + "954b" * 16, "hub.harbor.com")
    [event] = parse_event("harbor", {}, body_of(HARBOR_CLOUDEVENT))
    assert (event.repository, event.tag, event.digest, event.host) == expected
    assert event.delivery_id == HARBOR_CLOUDEVENT["id"]  # redeliveries are replays

    binary = {"ce-specversion": "1.0", "ce-type": "harbor.artifact.pushed", "ce-id": "b-1"}
    [event] = parse_event("harbor", binary, body_of(HARBOR_CLOUDEVENT["data"]))
    assert (event.repository, event.tag, event.digest, event.host) == expected
    assert event.delivery_id == "b-1"

    pulled = dict(HARBOR_CLOUDEVENT, type="harbor.artifact.pulled")
    assert parse_event("harbor", {}, body_of(pulled)) == []
    broken = dict(HARBOR_CLOUDEVENT, data={"resources": []})
    with pytest.raises(WebhookRejected, match=r"missing field data\.repository\.repo_full_name"):
        parse_event("harbor", {}, body_of(broken))


@pytest.mark.parametrize(
    ("endpoint", "headers", "document", "source"),
    [
        (
            "github",
            {"x-github-event": "push", "x-github-delivery": "d1"},
            GITHUB_PUSH,
            "github-push",
        ),
        (
            "gitlab",
            {"x-gitlab-event": "Push Hook", "x-gitlab-event-uuid": "d1"},
            GITLAB_PUSH,
            "gitlab-push",
        ),
        ("gitea", {"x-gitea-event": "push", "x-gitea-delivery": "d1"}, GITEA_PUSH, "gitea-push"),
    ],
)
def test_git_push_events(
    endpoint: str, headers: dict[str, str], document: dict[str, Any], source: str
) -> None:
    assert parse_event(endpoint, headers, body_of(document)) == [
        WebhookEvent(
            kind="git",
            source=source,  # type: ignore[arg-type]
            repository="acme/config",
            ref="refs/heads/main",
            commit=AFTER,
            delivery_id="d1",
        )
    ]


def test_deleted_ref_has_no_commit() -> None:
    deleted = dict(GITHUB_PUSH, after="0" * 40, deleted=True)
    [event] = parse_event("github", {"x-github-event": "push"}, body_of(deleted))
    assert event.commit is None


def test_gitlab_merge_request_hook_is_ignored() -> None:
    document = {"object_kind": "merge_request", "project": {"path_with_namespace": "a/b"}}
    assert parse_event("gitlab", {}, body_of(document)) == []


@pytest.mark.parametrize(
    ("endpoint", "headers", "body"),
    [
        ("distribution", {}, b"{not json"),
        ("distribution", {}, b"[1, 2]"),
        ("distribution", {}, b'{"events": "nope"}'),
        ("dockerhub", {}, b'{"push_data": {}}'),
        ("harbor", {}, b'{"type": "PUSH_ARTIFACT", "event_data": {}}'),
        ("github", {"x-github-event": "push"}, b'{"ref": "refs/heads/main"}'),
        ("gitea", {"x-gitea-event": "push"}, b"\xff\xfe"),
    ],
)
def test_malformed_bodies_are_400(endpoint: str, headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        parse_event(endpoint, headers, body)
    assert caught.value.status == 400


def test_unknown_endpoint_is_404() -> None:
    with pytest.raises(WebhookRejected) as caught:
        receive("nexus", {}, b"{}", SECRET)  # quay is known since issue 21
    assert caught.value.status == 404


# ------------------------------------------------------------------ replays


def test_replayed_delivery_is_dropped() -> None:
    guard = ReplayGuard()
    body = body_of(GITHUB_PUSH)
    headers = github_headers(body, "push", delivery="abc")
    first, replayed_first = receive("github", headers, body, SECRET, replays=guard)
    again, replayed_again = receive("github", headers, body, SECRET, replays=guard)
    assert (len(first), replayed_first) == (1, 0)
    assert (again, replayed_again) == ([], 1)
    other, _ = receive(
        "github", github_headers(body, "push", delivery="def"), body, SECRET, replays=guard
    )
    assert len(other) == 1


def test_all_resources_of_a_new_harbor_cloudevent_are_kept_and_a_redelivery_dropped() -> None:
    guard = ReplayGuard()
    document = json.loads(json.dumps(HARBOR_CLOUDEVENT))
    second = dict(document["data"]["resources"][0], tag="1.4.0-alpine")
    document["data"]["resources"].append(second)
    body = body_of(document)
    headers = {"Authorization": SECRET}
    first, replayed = receive("harbor", headers, body, SECRET, replays=guard)
    assert ([e.tag for e in first], replayed) == (["1.4.0", "1.4.0-alpine"], 0)
    again, replayed = receive("harbor", headers, body, SECRET, replays=guard)
    assert (again, replayed) == ([], 2)


def test_replay_guard_is_bounded_lru() -> None:
    guard = ReplayGuard(capacity=2)
    assert guard.first_time("s", "a")
    assert guard.first_time("s", "b")
    assert not guard.first_time("s", "a")  # refreshes "a"
    assert guard.first_time("s", "c")  # evicts "b", the least recently seen
    assert guard.first_time("s", "b")
    assert guard.first_time("other-source", "a")
    assert guard.first_time("s", None) and guard.first_time("s", None)
