"""index.yaml parsing and HelmRepoClient logic against in-memory transports."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from reconciler.errors import FeedAuthError, FeedError, FeedNotFound, FeedRateLimited
from reconciler.feeds.helm import (
    HelmOciClient,
    HelmRepoClient,
    chart_version_from_tag,
    index_url,
    is_chart_version,
    oci_tag,
    open_helm_feed,
    redacted_url,
    registry_feed,
)
from reconciler.feeds.helmindex import ChartVersion, IndexFormatError, parse_index
from reconciler.model import Credentials, Feed

DIGEST_A = "a" * 64
DIGEST_B = "b" * 64

INDEX_YAML = f"""\
apiVersion: v1
entries:
  web:
  - apiVersion: v2
    appVersion: "1.0"
    created: "2024-03-01T10:00:00.123456789Z"
    description: web frontend
    digest: {DIGEST_A}
    name: web
    urls:
    - charts/web-1.0.0.tgz
    version: 1.0.0
    dependencies:
    - name: redis
      version: 17.0.0
      repository: https://charts.example.com
  - name: web
    version: 1.1.0+build.7
    created: "2024-03-02T10:00:00-02:00"
    digest: {DIGEST_B}
    urls: ["https://other.example.com/web-1.1.0+build.7.tgz"]
    annotations: {{category: Web}}
  - name: web
    version: 1.0
  api:
  - name: api
    version: 9.9.9
    digest: {"c" * 64}
generated: "2024-03-02T10:00:00Z"
serverInfo: {{contextPath: /v1}}
"""


def parse(text: str | bytes, charts: list[str]) -> dict[str, list[ChartVersion]]:
    data = text.encode() if isinstance(text, str) else text
    return parse_index(io.BytesIO(data), charts)


class TestParseIndex:
    def test_yaml_keeps_only_wanted_charts_and_four_fields(self) -> None:
        reduced = parse(INDEX_YAML, ["web"])
        assert list(reduced) == ["web"]
        assert reduced["web"] == [
            ChartVersion(
                "1.0.0", DIGEST_A, "2024-03-01T10:00:00.123456789Z", "charts/web-1.0.0.tgz"
            ),
            ChartVersion(
                "1.1.0+build.7",
                DIGEST_B,
                "2024-03-02T10:00:00-02:00",
                "https://other.example.com/web-1.1.0+build.7.tgz",
            ),
            # `version: 1.0` is a float to a YAML loader; we keep the text as written
            ChartVersion("1.0", None, None),
        ]

    def test_dependency_versions_do_not_leak_into_chart_versions(self) -> None:
        versions = [v.version for v in parse(INDEX_YAML, ["web"])["web"]]
        assert "17.0.0" not in versions

    def test_json_index_gives_the_same_result(self) -> None:
        document = {
            "apiVersion": "v1",
            "entries": {
                "web": [
                    {
                        "name": "web",
                        "version": "1.0.0",
                        "digest": DIGEST_A,
                        "created": "2024-03-01T10:00:00Z",
                        "urls": ["web-1.0.0.tgz"],
                        "dependencies": [{"name": "redis", "version": "17.0.0"}],
                    },
                    {"name": "web", "version": "2.0.0+meta"},
                ],
                "api": [{"name": "api", "version": "9.9.9"}],
                "version": [{"name": "version", "version": "0.1.0"}],
            },
        }
        reduced = parse(json.dumps(document), ["web", "version"])
        assert reduced == {
            "web": [
                ChartVersion("1.0.0", DIGEST_A, "2024-03-01T10:00:00Z", "web-1.0.0.tgz"),
                ChartVersion("2.0.0+meta", None, None),
            ],
            # a chart literally named "version" is still a chart, not an entry
            "version": [ChartVersion("0.1.0", None, None)],
        }

    def test_flow_style_json_like_yaml_that_is_not_json_falls_back_to_yaml(self) -> None:
        text = "{apiVersion: v1, entries: {web: [{version: 3.0.0}]}}"
        assert parse(text, ["web"]) == {"web": [ChartVersion("3.0.0", None, None)]}

    def test_missing_chart_is_an_empty_list(self) -> None:
        assert parse(INDEX_YAML, ["nope"]) == {"nope": []}

    def test_missing_api_version_is_rejected_like_helm(self) -> None:
        with pytest.raises(IndexFormatError, match="apiVersion"):
            parse("entries:\n  web:\n  - version: 1.0.0\n", ["web"])

    def test_invalid_yaml_names_the_line(self) -> None:
        with pytest.raises(IndexFormatError, match=r"line 3"):
            parse("apiVersion: v1\nentries:\n  web: {a: 1]\ngenerated: x\n", ["web"])

    def test_not_a_mapping(self) -> None:
        with pytest.raises(IndexFormatError, match="not a mapping"):
            parse("- 1\n- 2\n", ["web"])

    def test_malformed_entries_are_skipped(self) -> None:
        text = (
            "apiVersion: v1\nentries:\n  web:\n"
            "  - just a string\n  - {name: web}\n  - {version: 1.2.3}\n"
        )
        assert parse(text, ["web"]) == {"web": [ChartVersion("1.2.3", None, None)]}

    def test_big_index_parses_and_reports_its_time(self) -> None:
        """20,000 entries (~7 MB): the tracked chart comes out; the time is printed."""
        data = generated_index(charts=200, versions=100)
        started = time.perf_counter()
        reduced = parse(data, ["chart7"])
        elapsed = time.perf_counter() - started
        print(f"\n20k-entry index ({len(data) / 1e6:.1f} MB) parsed in {elapsed:.2f} s")
        assert len(reduced["chart7"]) == 100
        assert reduced["chart7"][42].version == "1.42.0"

    def test_memory_stays_flat_while_parsing(self) -> None:
        """Peak allocation while parsing is a small fraction of the document size: the
        document is never built as Python objects (that would be several times its size).
        Smaller index than above because tracemalloc slows allocation-heavy code ~10x."""
        data = generated_index(charts=40, versions=50)
        tracemalloc.start()
        try:
            reduced = parse(data, ["chart3"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(reduced["chart3"]) == 50
        assert peak < len(data) / 4


def generated_index(*, charts: int, versions: int) -> bytes:
    lines = ["apiVersion: v1", "entries:"]
    for chart in range(charts):
        lines.append(f"  chart{chart}:")
        for minor in range(versions):
            lines += [
                "  - apiVersion: v2",
                f'    appVersion: "1.{minor}.0"',
                f'    created: "2024-01-01T10:{minor % 60:02d}:00.123456789Z"',
                f"    description: chart {chart} with a fairly long description text",
                f"    digest: {DIGEST_A}",
                f"    name: chart{chart}",
                "    urls:",
                f"    - https://charts.example.com/chart{chart}-1.{minor}.0.tgz",
                f"    version: 1.{minor}.0",
            ]
    return ("\n".join(lines) + "\n").encode()


class TestHelpers:
    def test_index_url_keeps_query_and_drops_trailing_slash(self) -> None:
        assert str(index_url("https://h.example/charts/?sig=x")) == (
            "https://h.example/charts/index.yaml?sig=x"
        )

    def test_redacted_url_hides_user_info_and_query(self) -> None:
        assert redacted_url("https://u:pw@h.example/c/index.yaml?token=t") == (
            "https://h.example/c/index.yaml"
        )

    @pytest.mark.parametrize(
        ("tag", "expected"),
        [
            ("1.2.3", True),
            ("1.2.3-rc.1_build.5", True),
            ("v1.2.3", False),
            ("1.2", False),
            ("latest", False),
            ("01.2.3", False),
        ],
    )
    def test_strict_semver_tags_only(self, tag: str, expected: bool) -> None:
        assert is_chart_version(chart_version_from_tag(tag)) is expected

    def test_plus_round_trip(self) -> None:
        assert oci_tag("1.0.0+abc") == "1.0.0_abc"
        assert chart_version_from_tag("1.0.0_abc") == "1.0.0+abc"

    def test_registry_feed_maps_scheme_by_insecure(self) -> None:
        feed = Feed(name="c", type="helm", url="oci://reg.example:5000/team/charts")
        assert registry_feed(feed).url == "https://reg.example:5000/team/charts"
        assert registry_feed(feed).type == "oci"
        insecure = Feed(name="c", type="helm", url="oci://reg.example/charts", insecure=True)
        assert registry_feed(insecure).url == "http://reg.example/charts"

    def test_open_helm_feed_chooses_the_client(self) -> None:
        oci = open_helm_feed(Feed(name="o", type="helm", url="oci://reg.example/charts"))
        http = open_helm_feed(Feed(name="h", type="helm", url="https://charts.example.com"))
        try:
            assert isinstance(oci, HelmOciClient)
            assert isinstance(http, HelmRepoClient)
        finally:
            oci.close()
            http.close()

    def test_open_helm_feed_refuses_plain_http_unless_insecure(self) -> None:
        with pytest.raises(FeedError, match="insecure"):
            open_helm_feed(Feed(name="h", type="helm", url="http://charts.example.com"))
        with pytest.raises(FeedError, match="neither"):
            open_helm_feed(Feed(name="h", type="helm", url="ftp://charts.example.com"))


def client_for(handler: object, *, feed: Feed | None = None, **kwargs: object) -> HelmRepoClient:
    feed = feed or Feed(name="charts", type="helm", url="https://charts.example.com/stable")
    transport = httpx.MockTransport(handler)  # type: ignore[arg-type]
    return HelmRepoClient(feed, transport=transport, **kwargs)  # type: ignore[arg-type]


class TestHelmRepoClient:
    def test_tags_digest_created(self) -> None:
        client = client_for(lambda request: httpx.Response(200, text=INDEX_YAML))
        assert client.list_tags("web") == ["1.0.0", "1.1.0+build.7", "1.0"]
        assert client.digest("web", "1.1.0+build.7") == f"sha256:{DIGEST_B}"
        assert client.digest("web", "1.0") is None  # entry without a digest
        assert client.digest("web", "7.7.7") is None
        assert client.created("web", "1.0.0") == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
        assert client.created("web", "1.1.0+build.7") == datetime(2024, 3, 2, 12, tzinfo=UTC)

    def test_unknown_chart_is_feed_not_found(self) -> None:
        client = client_for(lambda request: httpx.Response(200, text=INDEX_YAML))
        with pytest.raises(FeedNotFound, match="chart nope is not in"):
            client.list_tags("nope")

    def test_one_download_per_pass_even_for_charts_asked_later(self) -> None:
        requests: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return httpx.Response(200, text=INDEX_YAML)

        client = client_for(handler)
        client.list_tags("web")
        client.list_tags("api")  # not parsed the first time: re-parsed from the kept body
        client.digest("web", "1.0.0")
        assert len(requests) == 1
        assert client.list_tags("api") == ["9.9.9"]

    def test_size_limit_by_content_length_and_by_streamed_bytes(self) -> None:
        big = "apiVersion: v1\n" + "#" * 5000 + "\n"

        def declared(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, text=big)

        def undeclared(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=iter([big.encode()]))  # chunked, no length

        for handler in (declared, undeclared):
            client = client_for(handler, max_bytes=1000)
            with pytest.raises(FeedError, match="larger than"):
                client.list_tags("web")

    @pytest.mark.parametrize(
        ("status", "error", "message"),
        [
            (401, FeedAuthError, "401"),
            (403, FeedAuthError, "403"),
            (404, FeedNotFound, "no index.yaml"),
            (500, FeedError, "HTTP 500"),
        ],
    )
    def test_status_mapping(self, status: int, error: type[FeedError], message: str) -> None:
        client = client_for(lambda request: httpx.Response(status))
        with pytest.raises(error, match=message) as caught:
            client.list_tags("web")
        assert caught.value.feed == "charts"

    def test_429_carries_retry_after(self) -> None:
        client = client_for(lambda r: httpx.Response(429, headers={"Retry-After": "42"}))
        with pytest.raises(FeedRateLimited) as caught:
            client.list_tags("web")
        assert caught.value.retry_after == 42.0

    def test_retry_after_date_is_read_against_the_injected_wall_clock(self) -> None:
        """An HTTP-date Retry-After counts from the client's wall clock, not time.time()."""
        when = "Wed, 21 Oct 2015 07:28:00 GMT"
        epoch = 1445412480.0  # that date
        client = client_for(
            lambda r: httpx.Response(429, headers={"Retry-After": when}),
            wall_clock=lambda: epoch - 90.0,
        )
        with pytest.raises(FeedRateLimited) as caught:
            client.list_tags("web")
        assert caught.value.retry_after == 90.0

    def test_network_error_is_a_feed_error(self) -> None:
        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        with pytest.raises(FeedError, match="ConnectError"):
            client_for(refuse).list_tags("web")

    def test_errors_never_contain_credentials(self) -> None:
        feed = Feed(
            name="charts",
            type="helm",
            url="https://user:urlsecret@charts.example.com/stable?sig=querysecret",
            credentials=Credentials(username="bob", password_env="RECONCILER_FEED_PW"),
        )
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request.headers.get("Authorization", ""))
            return httpx.Response(401)

        client = client_for(handler, feed=feed, env={"RECONCILER_FEED_PW": "envsecret"})
        with pytest.raises(FeedAuthError) as caught:
            client.list_tags("web")
        text = str(caught.value)
        assert "credentials rejected" in text
        for secret in ("urlsecret", "querysecret", "envsecret"):
            assert secret not in text
        assert seen and seen[0].startswith("Basic ")

    def test_invalid_index_is_a_feed_error(self) -> None:
        client = client_for(lambda r: httpx.Response(200, text="entries: {}\n"))
        with pytest.raises(FeedError, match="apiVersion"):
            client.list_tags("web")

    def test_state_file_survives_restart_and_ignores_other_urls(self, tmp_path: Path) -> None:
        sent: list[dict[str, str]] = []

        def handler(request: httpx.Request) -> httpx.Response:
            sent.append(dict(request.headers))
            if request.headers.get("If-None-Match") == '"v1"':
                return httpx.Response(304)
            return httpx.Response(200, text=INDEX_YAML, headers={"ETag": '"v1"'})

        first = client_for(handler, state_dir=tmp_path)
        assert first.list_tags("web")[0] == "1.0.0"
        first.close()
        second = client_for(handler, state_dir=tmp_path)
        assert second.list_tags("web")[0] == "1.0.0"  # from the state file, after a 304
        assert sent[1]["if-none-match"] == '"v1"'
        other = Feed(name="charts", type="helm", url="https://charts.example.com/other")
        third = client_for(handler, feed=other, state_dir=tmp_path)
        third.list_tags("web")
        assert "if-none-match" not in sent[2]

    def test_corrupt_state_file_is_ignored(self, tmp_path: Path) -> None:
        client = client_for(lambda r: httpx.Response(200, text=INDEX_YAML), state_dir=tmp_path)
        client.list_tags("web")
        (state_file,) = tmp_path.glob("helm-*.json")
        url = "https://charts.example.com/stable/index.yaml"
        damaged = json.dumps({"format": 2, "url": url, "etag": '"x"', "charts": {"web": [[1]]}})
        for text in ("{not json", damaged):
            state_file.write_text(text)
            sent: list[httpx.Request] = []

            def handler(request: httpx.Request, sent: list[httpx.Request] = sent) -> httpx.Response:
                sent.append(request)
                return httpx.Response(200, text=INDEX_YAML)

            again = client_for(handler, state_dir=tmp_path)
            assert again.list_tags("web") == ["1.0.0", "1.1.0+build.7", "1.0"]
            assert "If-None-Match" not in sent[0].headers
