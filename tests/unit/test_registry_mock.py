"""RegistryClient protocol logic against httpx.MockTransport (no network)."""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from reconciler import model
from reconciler.errors import FeedAuthError, FeedError, FeedNotFound, FeedRateLimited
from reconciler.feeds.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    next_link,
    parse_challenge,
)
from reconciler.feeds.ocilayout import build_image

BASE = "https://registry.test"
SECRET = "hunter2-very-secret"
OPERATOR = {
    "RECONCILER_TOKEN_REALMS": "registry.test=auth.test",
    "RECONCILER_CREDENTIALS_DIR": tempfile.gettempdir(),
}
"""The operator's grants in these tests: the fake registry's token realm is on another
host, and secret files live in the temporary directory."""


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    url: str = BASE,
    insecure: bool = False,
    credentials: model.Credentials | None = None,
    env: dict[str, str] | None = None,
    clock: FakeClock | None = None,
    limits: model.Limits | None = None,
    **kwargs: Any,
) -> RegistryClient:
    feed = model.Feed(
        name="hub",
        type="oci",
        url=url,
        insecure=insecure,
        credentials=credentials,
        limits=limits or model.Limits(),
        timeout=2.0,
    )
    clock = clock or FakeClock()
    return RegistryClient(
        feed,
        transport=httpx.MockTransport(handler),
        env={**OPERATOR, **(env or {})},
        clock=clock,
        sleep=clock.sleep,
        **kwargs,
    )


def tags_response(tags: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json={"name": "app", "tags": tags}, headers=headers or {})


BASIC_CREDS = model.Credentials(username="bob", password_env="RECONCILER_FEED_PW")
BASIC_ENV = {"RECONCILER_FEED_PW": SECRET}


# -- parsing helpers ---------------------------------------------------------


def test_parse_challenge_reads_quoted_params_and_multiple_scopes() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.test/token",service="reg",'
        'scope="repository:a/b:pull repository:c:pull",error="insufficient_scope"'
    )
    assert challenge is not None
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.test/token"
    assert challenge.scopes == ("repository:a/b:pull", "repository:c:pull")
    assert challenge.error == "insufficient_scope"


def test_next_link_resolves_relative_and_keeps_query_verbatim() -> None:
    request = httpx.URL("https://r.test/v2/app/tags/list")
    found = next_link('</v2/app/tags/list?next_page=a%2Fb%3D&n=2>; rel="next"', request)
    assert str(found) == "https://r.test/v2/app/tags/list?next_page=a%2Fb%3D&n=2"
    assert next_link('<https://r.test/x>; rel="prev"', request) is None


# -- tags ----------------------------------------------------------------------


def test_list_tags_follows_relative_links_with_opaque_tokens_verbatim() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        if "next_page" not in str(request.url):
            return tags_response(
                ["b", "a"], {"Link": '</v2/app/tags/list?next_page=Zm9v%2B%2F%3D&n=2>; rel="next"'}
            )
        if "page3" not in str(request.url):
            # a path-relative link this time, with a token the client must not touch
            return tags_response(["a", "c"], {"Link": '<list?next_page=page3~x>; rel="next"'})
        return tags_response(["d"])

    client = make_client(handler)
    assert client.list_tags("app") == ["b", "a", "c", "d"]  # registry order, deduped
    assert seen == [
        "/v2/app/tags/list",
        "/v2/app/tags/list?next_page=Zm9v%2B%2F%3D&n=2",
        "/v2/app/tags/list?next_page=page3~x",
    ]
    assert client.requests_by_kind["tags"] == 3


def test_list_tags_null_is_empty() -> None:
    client = make_client(lambda request: tags_response(None))
    assert client.list_tags("app") == []


def test_list_tags_refuses_next_page_on_another_host() -> None:
    client = make_client(
        lambda request: tags_response(["a"], {"Link": '<https://evil.test/v2/x>; rel="next"'})
    )
    with pytest.raises(FeedError, match="another host"):
        client.list_tags("app")


def test_list_tags_page_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciler.feeds.oci.client.MAX_TAG_PAGES", 5)
    client = make_client(
        lambda request: tags_response(["a"], {"Link": '</v2/app/tags/list?again>; rel="next"'})
    )
    with pytest.raises(FeedError, match="more than 5 pages"):
        client.list_tags("app")
    assert client.requests_made == 5


def test_oversized_streamed_body_is_refused_without_reading_it_all() -> None:
    chunks_sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal chunks_sent
        yield b'{"name": "app", "tags": ['
        while chunks_sent < 10_000:  # 10,000 x 64 KiB = 640 MB if read fully
            chunks_sent += 1
            yield b'"x",' * 16384

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(), headers={"Content-Type": "application/json"})

    client = make_client(handler, max_body_bytes=1024 * 1024)
    with pytest.raises(FeedError, match="larger than 1048576 bytes"):
        client.list_tags("app")
    assert chunks_sent < 40


def test_declared_oversized_body_is_refused() -> None:
    client = make_client(
        lambda request: httpx.Response(
            200, content=b"x" * 2000, headers={"Content-Type": "application/json"}
        ),
        max_body_bytes=1000,
    )
    with pytest.raises(FeedError, match="larger than 1000 bytes"):
        client.list_tags("app")


def test_tag_budget_spans_all_pages() -> None:
    page = json.dumps({"tags": [f"t{i}" for i in range(50)]}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=page,
            headers={
                "Content-Type": "application/json",
                "Link": f'</v2/app/tags/list?p={time.time_ns()}>; rel="next"',
            },
        )

    client = make_client(handler, max_body_bytes=len(page) * 3 + 10)
    with pytest.raises(FeedError, match="larger than"):
        client.list_tags("app")
    assert client.requests_made == 4


# -- errors --------------------------------------------------------------------


def test_404_is_feed_not_found_with_registry_code() -> None:
    client = make_client(
        lambda request: httpx.Response(
            404, json={"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}
        )
    )
    with pytest.raises(FeedNotFound) as caught:
        client.list_tags("nope")
    assert caught.value.feed == "hub"
    assert "NAME_UNKNOWN" in str(caught.value)


def test_429_retry_after_seconds_blocks_requests_until_the_deadline() -> None:
    clock = FakeClock()
    answers = iter([httpx.Response(429, headers={"Retry-After": "120"}), tags_response(["a"])])
    client = make_client(lambda request: next(answers), clock=clock)
    with pytest.raises(FeedRateLimited) as caught:
        client.list_tags("app")
    assert caught.value.retry_after == 120
    clock.now += 100
    with pytest.raises(FeedRateLimited) as again:
        client.list_tags("app")
    assert again.value.retry_after == pytest.approx(20)
    assert client.requests_made == 1  # nothing was sent before the deadline
    clock.now += 21
    assert client.list_tags("app") == ["a"]


def test_429_retry_after_http_date() -> None:
    wall = 1_700_000_000.0
    later = format_datetime(datetime.fromtimestamp(wall + 300, UTC), usegmt=True)
    client = make_client(
        lambda request: httpx.Response(429, headers={"Retry-After": later}),
        wall_clock=lambda: wall,
    )
    with pytest.raises(FeedRateLimited) as caught:
        client.digest("app", "1.0")
    assert caught.value.retry_after == pytest.approx(300)


def test_500_is_a_transient_feed_error() -> None:
    client = make_client(lambda request: httpx.Response(500, text="boom"))
    with pytest.raises(FeedError) as caught:
        client.list_tags("app")
    assert type(caught.value) is FeedError
    assert "HTTP 500" in str(caught.value)
    assert caught.value.retry_after == 30


def test_malformed_json_and_wrong_content_type() -> None:
    broken = make_client(
        lambda request: httpx.Response(
            200, content=b'{"tags": [', headers={"Content-Type": "application/json"}
        )
    )
    with pytest.raises(FeedError, match="malformed JSON"):
        broken.list_tags("app")
    html = make_client(
        lambda request: httpx.Response(
            200, content=b"<html>login</html>", headers={"Content-Type": "text/html"}
        )
    )
    with pytest.raises(FeedError, match="Content-Type text/html"):
        html.list_tags("app")
    not_strings = make_client(lambda request: tags_response([1, 2]))
    with pytest.raises(FeedError, match="not a list of strings"):
        not_strings.list_tags("app")


def test_timeout_and_connection_errors_become_feed_errors() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with pytest.raises(FeedError, match="timed out after 2 s"):
        make_client(slow).list_tags("app")

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(FeedError, match="ConnectError"):
        make_client(refused).digest("app", "1")


def test_plain_http_needs_insecure() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return tags_response(["a"])

    with pytest.raises(FeedError, match="insecure: true"):
        make_client(handler, url="http://registry.test").list_tags("app")
    assert calls == []
    assert make_client(handler, url="http://registry.test", insecure=True).list_tags("app") == ["a"]


def test_url_path_is_a_namespace_prefix() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return tags_response([])

    make_client(handler, url="oci://registry.test/acme").list_tags("shop")
    assert paths == ["/v2/acme/shop/tags/list"]


# -- digests ------------------------------------------------------------------


def test_digest_uses_head_with_full_accept_list() -> None:
    digest = "sha256:" + "a" * 64
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Docker-Content-Digest": digest})

    assert make_client(handler).digest("app", "1.0") == digest
    assert [r.method for r in seen] == ["HEAD"]
    accept = seen[0].headers["accept"]
    for media_type in (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST):
        assert media_type in accept


def test_digest_without_header_hashes_the_get_body() -> None:
    body = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"" if request.method == "HEAD" else body)

    client = make_client(handler)
    assert client.digest("app", "1.0") == "sha256:" + hashlib.sha256(body).hexdigest()
    assert client.requests_by_kind == {"manifest_head": 1, "manifest_get": 1}


def test_digest_rejects_malformed_digest_header() -> None:
    client = make_client(
        lambda request: httpx.Response(200, headers={"Docker-Content-Digest": "sha256:XYZ"})
    )
    with pytest.raises(FeedError, match="unusable digest"):
        client.digest("app", "1.0")


# -- created ------------------------------------------------------------------


def serve_image(image: Any, *, tag: str = "1.0") -> Callable[[httpx.Request], httpx.Response]:
    """A handler serving one built image (manifest, children, blobs) like a registry."""
    by_digest = {b.digest: b for b in (*image.blobs, *image.children, image.manifest)}

    def handler(request: httpx.Request) -> httpx.Response:
        ref = request.url.path.rsplit("/", 1)[1]
        blob = image.manifest if ref == tag else by_digest.get(ref)
        if blob is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        headers = {"Docker-Content-Digest": blob.digest, "Content-Type": blob.media_type}
        content = b"" if request.method == "HEAD" else blob.data
        return httpx.Response(200, content=content, headers=headers)

    return handler


def test_created_picks_the_platform_and_skips_attestations_then_caches() -> None:
    amd = datetime(2024, 1, 1, tzinfo=UTC)
    arm = datetime(2024, 2, 2, tzinfo=UTC)
    image = build_image(
        platforms=("linux/amd64", "linux/arm64/v8"),
        platform_created={"linux/amd64": amd, "linux/arm64/v8": arm},
        attestation=True,
    )
    client = make_client(serve_image(image))
    assert client.created("app", "1.0") == amd
    assert client.created("app", "1.0", "linux/arm64/v8") == arm
    assert client.created("app", "1.0", "linux/arm64") == arm
    with pytest.raises(FeedNotFound, match="offered: linux/amd64, linux/arm64/v8"):
        client.created("app", "1.0", "linux/s390x")
    before = client.requests_made
    assert client.created("app", "1.0") == amd
    assert client.requests_made == before + 1  # only the HEAD: the rest is cached by digest


def test_created_null_and_helm_config() -> None:
    image = build_image(
        created=None,
        config_media_type="application/vnd.cncf.helm.config.v1+json",
        config_extra={"name": "web", "version": "1.2.3"},
        annotations={"org.opencontainers.image.created": "2024-03-04T05:06:07Z"},
    )
    client = make_client(serve_image(image))
    media_type, config = client.manifest_config("charts/web", "1.0")
    assert media_type == "application/vnd.cncf.helm.config.v1+json"
    assert config["name"] == "web"
    assert client.created("charts/web", "1.0") == datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)

    plain = make_client(serve_image(build_image(created=None)))
    assert plain.created("app", "1.0") is None


def test_manifest_whose_content_does_not_match_its_digest_is_rejected() -> None:
    image = build_image(created=datetime(2024, 1, 1, tzinfo=UTC))
    inner = serve_image(image)

    def tampering(request: httpx.Request) -> httpx.Response:
        response = inner(request)
        if request.method == "GET" and "/blobs/" in request.url.path:
            return httpx.Response(200, content=b'{"created": "2030-01-01T00:00:00Z"}')
        return response

    with pytest.raises(FeedError, match="does not match its digest"):
        make_client(tampering).created("app", "1.0")


# -- authentication -----------------------------------------------------------


def test_basic_challenge_is_answered_and_remembered() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if (
            request.headers.get("authorization")
            != "Basic " + base64.b64encode(f"bob:{SECRET}".encode()).decode()
        ):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return tags_response(["a"])

    client = make_client(handler, credentials=BASIC_CREDS, env=BASIC_ENV)
    assert client.list_tags("app") == ["a"]
    assert client.list_tags("app") == ["a"]
    assert seen[0] is None  # no credentials before the registry asks
    assert len(seen) == 3  # the second call authenticates up front


def test_rejected_basic_credentials_raise_auth_error_without_the_secret() -> None:
    client = make_client(
        lambda request: httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}),
        credentials=BASIC_CREDS,
        env=BASIC_ENV,
    )
    with pytest.raises(FeedAuthError) as caught:
        client.list_tags("app")
    assert "rejected the credentials" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert base64.b64encode(f"bob:{SECRET}".encode()).decode() not in str(caught.value)
    assert client.requests_made == 2


def test_missing_credentials_fail_after_one_request() -> None:
    client = make_client(
        lambda request: httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
    )
    with pytest.raises(FeedAuthError, match="no credentials are configured"):
        client.list_tags("app")
    assert client.requests_made == 1


def test_403_is_auth_error() -> None:
    with pytest.raises(FeedAuthError, match="access denied"):
        make_client(lambda request: httpx.Response(403)).list_tags("app")


class TokenRegistry:
    """A fake registry + token server: tokens are "tok-<n>:<scopes>"; grants by scope."""

    def __init__(self, *, expires_in: int | None = 60, need: str = "repository:app:pull") -> None:
        self.expires_in = expires_in
        self.need = need
        self.issued = 0
        self.token_requests: list[httpx.Request] = []
        self.registry_requests: list[httpx.Request] = []
        self.revoked: set[str] = set()

    def challenge(self, scope: str, error: str | None = None) -> str:
        text = f'Bearer realm="https://auth.test/token",service="reg",scope="{scope}"'
        return text + (f',error="{error}"' if error else "")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            self.token_requests.append(request)
            self.issued += 1
            scopes = " ".join(request.url.params.get_list("scope"))
            document: dict[str, Any] = {"token": f"tok-{self.issued}:{scopes}"}
            if self.expires_in is not None:
                document["expires_in"] = self.expires_in
            return httpx.Response(200, json=document)
        self.registry_requests.append(request)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] in self.revoked:
            return httpx.Response(
                401, headers={"WWW-Authenticate": self.challenge("repository:app:pull")}
            )
        if self.need not in auth:
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": self.challenge(self.need, "insufficient_scope")},
            )
        return tags_response(["a"])


def test_bearer_token_is_fetched_once_and_reused() -> None:
    fake = TokenRegistry()
    client = make_client(fake, credentials=BASIC_CREDS, env=BASIC_ENV)
    for _ in range(5):
        assert client.list_tags("app") == ["a"]
    assert len(fake.token_requests) == 1
    token_request = fake.token_requests[0]
    assert token_request.url.params["service"] == "reg"
    assert token_request.url.params.get_list("scope") == ["repository:app:pull"]
    assert token_request.headers["authorization"].startswith("Basic ")
    assert len(fake.registry_requests) == 6  # one 401 to learn the challenge, then 5


def test_insufficient_scope_gets_a_token_for_the_challenged_scope() -> None:
    fake = TokenRegistry(need="repository:app:pull,push")
    client = make_client(fake)
    assert client.list_tags("app") == ["a"]
    scopes = [r.url.params.get_list("scope") for r in fake.token_requests]
    assert scopes == [["repository:app:pull"], ["repository:app:pull,push"]]


def test_token_is_refreshed_before_it_expires() -> None:
    clock = FakeClock()
    fake = TokenRegistry(expires_in=60)
    client = make_client(fake, clock=clock)
    client.list_tags("app")
    clock.now += 40
    client.list_tags("app")
    assert len(fake.token_requests) == 1
    clock.now += 15  # 55 s old: inside the safety margin of a 60 s token
    client.list_tags("app")
    assert len(fake.token_requests) == 2


def test_token_without_expires_in_defaults_to_60_seconds() -> None:
    clock = FakeClock()
    fake = TokenRegistry(expires_in=None)
    client = make_client(fake, clock=clock)
    client.list_tags("app")
    clock.now += 50
    client.list_tags("app")
    assert len(fake.token_requests) == 1
    clock.now += 10
    client.list_tags("app")
    assert len(fake.token_requests) == 2


def test_revoked_token_is_replaced_once() -> None:
    fake = TokenRegistry()
    client = make_client(fake)
    client.list_tags("app")
    fake.revoked.add("tok-1:repository:app:pull")
    assert client.list_tags("app") == ["a"]
    assert len(fake.token_requests) == 2


def test_token_server_rejecting_credentials_is_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(401, json={"details": "bad"})
        return httpx.Response(
            401, headers={"WWW-Authenticate": TokenRegistry().challenge("repository:app:pull")}
        )

    with pytest.raises(
        FeedAuthError, match=r"token server auth\.test rejected the credentials"
    ) as caught:
        make_client(handler, credentials=BASIC_CREDS, env=BASIC_ENV).list_tags("app")
    assert SECRET not in str(caught.value)


def test_plain_http_token_realm_is_refused_for_a_secure_feed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": 'Bearer realm="http://auth.test/token",service="reg"'},
        )

    client = make_client(handler, credentials=BASIC_CREDS, env=BASIC_ENV)
    with pytest.raises(FeedAuthError, match="plain http"):
        client.list_tags("app")
    assert client.requests_by_kind.get("token", 0) == 0


def test_registry_token_from_docker_config_is_sent_as_bearer(tmp_path: Any) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"registry.test": {"registrytoken": "rt-123"}}}))
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return tags_response([])

    make_client(handler, credentials=model.Credentials(docker_config=str(config))).list_tags("x")
    assert seen == ["Bearer rt-123"]


# -- concurrency and pacing ---------------------------------------------------


def test_in_flight_requests_are_bounded_by_feed_concurrency() -> None:
    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1
        return httpx.Response(200, headers={"Docker-Content-Digest": "sha256:" + "b" * 64})

    client = make_client(handler, limits=model.Limits(concurrency=2))
    threads = [threading.Thread(target=client.digest, args=("app", str(i))) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.requests_made == 8
    assert peak == 2


def test_requests_per_second_paces_requests() -> None:
    clock = FakeClock()
    client = make_client(
        lambda request: tags_response([]),
        clock=clock,
        limits=model.Limits(requests_per_second=2.0),
    )
    for _ in range(6):
        client.list_tags("app")
    # a burst of 2, then one request every 0.5 s
    assert clock.slept == pytest.approx([0.5, 0.5, 0.5, 0.5])


def test_identity_token_is_never_re_sent_to_a_redirect_target(tmp_path) -> None:
    """httpx drops Authorization on a redirect but not a POST body: the refresh-token
    grant must not follow a 307 to wherever it points."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.host}")
        if request.url.host == "registry.test":
            return httpx.Response(
                401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/token"'}
            )
        if request.url.host == "auth.test":
            return httpx.Response(307, headers={"Location": "https://elsewhere.test/steal"})
        return httpx.Response(200, json={"access_token": "t"})

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"registry.test": {"identitytoken": SECRET}}}))
    client = make_client(handler, credentials=model.Credentials(docker_config=str(config)))
    with pytest.raises(FeedError) as caught:
        client.list_tags("app")
    assert "elsewhere.test" not in " ".join(seen)
    assert seen[-1] == "POST auth.test"
    assert SECRET not in str(caught.value)
