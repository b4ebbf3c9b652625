"""Helm feeds against real servers: charts made and indexed by the real helm binary,
served over HTTP with validators, and pushed with ``helm push`` to docker-registry."""

from __future__ import annotations

import email.utils
import hashlib
import logging
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from reconciler.errors import FeedAuthError, FeedError
from reconciler.feeds._http import parse_created
from reconciler.feeds.helm import HelmOciClient, HelmRepoClient, open_helm_feed
from reconciler.feeds.oci import MANIFEST_ACCEPT
from reconciler.model import Credentials, Feed
from tests.helpers.helmrepo import ChartFactory, Helm, HelmHttpRepo
from tests.helpers.registry import RegistryServer, unique_repo


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def http_feed(repo: HelmHttpRepo, **overrides: object) -> Feed:
    fields: dict[str, object] = {"name": "charts", "type": "helm", "url": repo.url}
    fields["insecure"] = True  # the test server speaks plain http
    fields.update(overrides)
    return Feed(**fields)  # type: ignore[arg-type]


def operator_env(repo: HelmHttpRepo) -> dict[str, str]:
    """The operator lets credentials go to the plain-http test server."""
    return {"RECONCILER_ALLOW_HTTP_CREDENTIALS": httpx.URL(repo.url).netloc.decode()}


@pytest.fixture
def web_repo(
    helm: Helm, helm_chart_factory: ChartFactory, helm_http_repo: HelmHttpRepo
) -> HelmHttpRepo:
    """A repository with chart ``web`` in four versions and ``api`` in one, indexed by helm."""
    for version in ("1.0.0", "1.1.0", "1.2.0+build.3", "2.0.0-rc.1"):
        helm_http_repo.add_chart(helm_chart_factory("web", version, app_version="7.0"))
    helm_http_repo.add_chart(helm_chart_factory("api", "0.3.0"))
    helm_http_repo.index_charts(helm)
    return helm_http_repo


class TestHttpRepository:
    def test_versions_digests_and_created_from_a_helm_generated_index(
        self, web_repo: HelmHttpRepo, tmp_path: Path
    ) -> None:
        client = HelmRepoClient(http_feed(web_repo))
        try:
            assert sorted(client.list_tags("web")) == [
                "1.0.0",
                "1.1.0",
                "1.2.0+build.3",
                "2.0.0-rc.1",
            ]
            chart = tmp_path / "charts" / "web-1.2.0+build.3.tgz"
            assert client.digest("web", "1.2.0+build.3") == (
                "sha256:" + hashlib.sha256(chart.read_bytes()).hexdigest()
            )
            created = client.created("web", "1.0.0")
            assert isinstance(created, datetime)
            assert abs((datetime.now(created.tzinfo) - created).total_seconds()) < 600
            assert client.list_tags("api") == ["0.3.0"]
        finally:
            client.close()
        assert len(web_repo.index_requests()) == 1  # two charts, one download

    def test_etag_unchanged_index_is_not_downloaded_again(self, web_repo: HelmHttpRepo) -> None:
        web_repo.send_last_modified = False  # prove ETag alone does it
        clock = FakeClock()
        client = HelmRepoClient(http_feed(web_repo), clock=clock)
        try:
            first = client.list_tags("web")
            clock.now += 3600  # next pass
            assert client.list_tags("web") == first
            initial, revalidation = web_repo.index_requests()
            assert initial.status == 200 and initial.body_bytes > 0
            assert revalidation.headers["if-none-match"] == initial_etag(web_repo)
            assert (revalidation.status, revalidation.body_bytes) == (304, 0)

            # A changed index is downloaded and parsed again.
            text = (web_repo.root / "index.yaml").read_text()
            web_repo.write_index(text.replace("version: 1.1.0\n", "version: 1.1.1\n"))
            clock.now += 3600
            assert "1.1.1" in client.list_tags("web")
            assert web_repo.index_requests()[-1].status == 200
        finally:
            client.close()

    def test_last_modified_is_the_fallback_without_etag(self, web_repo: HelmHttpRepo) -> None:
        web_repo.send_etag = False
        client = HelmRepoClient(http_feed(web_repo), max_age=0)
        try:
            client.list_tags("web")
            client.list_tags("web")
        finally:
            client.close()
        initial, revalidation = web_repo.index_requests()
        assert initial.status == 200 and "if-modified-since" not in initial.headers
        assert "if-none-match" not in revalidation.headers
        assert revalidation.headers["if-modified-since"] == initial_last_modified(web_repo)
        assert (revalidation.status, revalidation.body_bytes) == (304, 0)

    def test_without_validators_an_identical_body_is_not_parsed_again(
        self, web_repo: HelmHttpRepo, caplog: pytest.LogCaptureFixture
    ) -> None:
        web_repo.send_etag = web_repo.send_last_modified = False
        client = HelmRepoClient(http_feed(web_repo), max_age=0)
        try:
            with caplog.at_level(logging.DEBUG, logger="reconciler.feeds.helm"):
                client.list_tags("web")
                caplog.clear()
                assert "1.1.0" in client.list_tags("web")
        finally:
            client.close()
        assert [r.status for r in web_repo.index_requests()] == [200, 200]
        assert "index unchanged (same SHA-256), not parsed" in caplog.text

    def test_state_dir_keeps_validators_across_restarts(
        self, web_repo: HelmHttpRepo, tmp_path: Path
    ) -> None:
        state = tmp_path / "state"
        for _ in range(2):
            client = HelmRepoClient(http_feed(web_repo), state_dir=state)
            assert "1.0.0" in client.list_tags("web")
            client.close()
        assert [(r.status, r.body_bytes > 0) for r in web_repo.index_requests()] == [
            (200, True),
            (304, False),
        ]
        # A chart the saved entries do not cover needs the body: no validators sent.
        client = HelmRepoClient(http_feed(web_repo), state_dir=state)
        try:
            assert client.list_tags("api") == ["0.3.0"]
        finally:
            client.close()
        last = web_repo.index_requests()[-1]
        assert last.status == 200 and "if-none-match" not in last.headers

    def test_basic_auth_accepted(self, web_repo: HelmHttpRepo) -> None:
        web_repo.auth = ("alice", "pa:ss")
        credentials = Credentials(username="alice", password_env="RECONCILER_FEED_PW")
        feed = http_feed(web_repo, credentials=credentials)
        client = open_helm_feed(feed, env={"RECONCILER_FEED_PW": "pa:ss", **operator_env(web_repo)})
        try:
            assert "1.0.0" in client.list_tags("web")
        finally:
            client.close()

    @pytest.mark.parametrize("password", ["wrong", None])
    def test_basic_auth_refused(self, web_repo: HelmHttpRepo, password: str | None) -> None:
        web_repo.auth = ("alice", "pa:ss")
        named = Credentials(username="alice", password_env="RECONCILER_FEED_PW")
        credentials = named if password else None
        env = {"RECONCILER_FEED_PW": "wrong", **operator_env(web_repo)}
        client = open_helm_feed(http_feed(web_repo, credentials=credentials), env=env)
        try:
            with pytest.raises(FeedAuthError) as caught:
                client.list_tags("web")
        finally:
            client.close()
        assert "401" in str(caught.value)
        assert "wrong" not in str(caught.value)
        assert caught.value.feed == "charts"


def initial_etag(repo: HelmHttpRepo) -> str:
    data = (repo.root / "index.yaml").read_bytes()
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def initial_last_modified(repo: HelmHttpRepo) -> str:
    mtime = int((repo.root / "index.yaml").stat().st_mtime)
    return email.utils.formatdate(mtime, usegmt=True)


class TestOciCharts:
    @pytest.fixture
    def pushed(
        self, helm: Helm, helm_chart_factory: ChartFactory, registry: RegistryServer
    ) -> tuple[str, dict[str, str]]:
        """Charts pushed with ``helm push``: (oci:// URL, version -> pushed digest)."""
        namespace = unique_repo("helm")
        url = f"oci://{registry.host}/{namespace}"
        digests = {
            version: helm.push(helm_chart_factory("web", version), url)
            for version in ("1.0.0", "1.1.0+build.7", "2.0.0-rc.1")
        }
        # Not chart versions for Helm: a non-SemVer tag (an image, to be sure it is skipped
        # by its tag alone) and a `v` prefix.
        registry.push(f"{namespace}/web", "latest")
        registry.push(f"{namespace}/web", "v3.0.0")
        return url, digests

    def client(self, url: str) -> HelmOciClient:
        client = open_helm_feed(Feed(name="oci-charts", type="helm", url=url, insecure=True))
        assert isinstance(client, HelmOciClient)
        return client

    def test_versions_come_back_with_plus(self, pushed: tuple[str, dict[str, str]]) -> None:
        url, digests = pushed
        client = self.client(url)
        try:
            assert sorted(client.list_tags("web")) == sorted(digests)
        finally:
            client.close()

    def test_digest_is_what_helm_pushed_and_the_registry_reports(
        self, pushed: tuple[str, dict[str, str]], registry: RegistryServer
    ) -> None:
        url, digests = pushed
        namespace = url.split("/", 3)[3]
        client = self.client(url)
        try:
            digest = client.digest("web", "1.1.0+build.7")
        finally:
            client.close()
        head = httpx.head(
            f"{registry.url}/v2/{namespace}/web/manifests/1.1.0_build.7",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        assert digest == digests["1.1.0+build.7"] == head.headers["Docker-Content-Digest"]

    def test_created_comes_from_the_helm_annotation(
        self, pushed: tuple[str, dict[str, str]], registry: RegistryServer
    ) -> None:
        url, digests = pushed
        namespace = url.split("/", 3)[3]
        manifest = httpx.get(
            f"{registry.url}/v2/{namespace}/web/manifests/{digests['1.0.0']}",
            headers={"Accept": MANIFEST_ACCEPT},
        ).json()
        annotation = manifest["annotations"]["org.opencontainers.image.created"]
        client = self.client(url)
        try:
            created = client.created("web", "1.0.0")
        finally:
            client.close()
        assert created is not None
        assert created == parse_created(annotation)

    def test_an_image_where_a_chart_should_be_is_refused(
        self, pushed: tuple[str, dict[str, str]], registry: RegistryServer
    ) -> None:
        url, _ = pushed
        namespace = url.split("/", 3)[3]
        registry.push(f"{namespace}/web", "9.9.9")  # an image with a chart-like tag
        client = self.client(url)
        try:
            assert "9.9.9" in client.list_tags("web")  # listing does not fetch manifests
            with pytest.raises(FeedError, match="is not a Helm chart"):
                client.digest("web", "9.9.9")
        finally:
            client.close()

    def test_charts_behind_basic_auth(
        self, helm: Helm, helm_chart_factory: ChartFactory, registry_basic: RegistryServer
    ) -> None:
        assert registry_basic.username is not None and registry_basic.password is not None
        url = f"oci://{registry_basic.host}/{unique_repo('helm')}"
        pushed = helm.push(
            helm_chart_factory("web", "0.1.0+sha.abc"),
            url,
            credentials=(registry_basic.username, registry_basic.password),
        )
        feed = Feed(
            name="private-charts",
            type="helm",
            url=url,
            insecure=True,
            credentials=registry_basic.credentials(),
        )
        client = open_helm_feed(feed, env=registry_basic.env())
        try:
            assert client.list_tags("web") == ["0.1.0+sha.abc"]
            assert client.digest("web", "0.1.0+sha.abc") == pushed
        finally:
            client.close()
        anonymous = open_helm_feed(Feed(name="private-charts", type="helm", url=url, insecure=True))
        try:
            with pytest.raises(FeedAuthError):
                anonymous.list_tags("web")
        finally:
            anonymous.close()
