"""reconciler.verify against served APIs: lightkube reading a fake Kubernetes API,
httpx reading fake Argo CD and Git host APIs (tests/helpers/verifyfakes.py says which
documented shapes each follows), and the http check against a real local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube.config.kubeconfig import KubeConfig

from reconciler.verify.model import (
    ArgoCDCheck,
    CommitStatusCheck,
    DeploymentFacts,
    FluxCheck,
    HttpCheck,
    VerifySpec,
)
from reconciler.verify.probes import GitHostStatuses, KubernetesObjects
from reconciler.verify.runner import Verifier
from tests.helpers.verifyfakes import FakeArgoCDServer, FakeGitHost, FakeKubernetesAPI
from tests.unit.test_verify_judge import SHA, application, kustomization

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEPLOYMENT = DeploymentFacts(
    project="shop",
    environment="dev",
    release="1.0.1",
    commit=SHA,
    deployed_at=T0,
    packages={"api": ("2.3.4", "sha256:" + "cd" * 32)},
)


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubernetesAPI, KubernetesObjects]]:
    fake = FakeKubernetesAPI()
    path = fake.kubeconfig(tmp_path)
    objects = KubernetesObjects(lambda: KubeConfig.from_file(path))
    yield fake, objects
    objects.close()
    fake.close()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def test_argocd_application_read_through_the_kubernetes_api(
    kube: tuple[FakeKubernetesAPI, KubernetesObjects], http: httpx.Client
) -> None:
    fake, objects = kube
    verifier = Verifier(http=http, kubernetes=objects)
    spec = VerifySpec((ArgoCDCheck("shop-dev", "argocd"),))
    assert verifier.verify(spec, DEPLOYMENT, T0).state == "pending"  # not created yet
    fake.put(application(health="Progressing"))
    assert verifier.verify(spec, DEPLOYMENT, T0).state == "pending"
    fake.put(application())
    assert verifier.verify(spec, DEPLOYMENT, T0).state == "verified"
    fake.put(application(health="Degraded", message="Back-off restarting failed container"))
    outcome = verifier.verify(spec, DEPLOYMENT, T0)
    assert (outcome.state, outcome.reason) == (
        "failed",
        "Degraded: Back-off restarting failed container",
    )
    assert (
        fake.requests[-1].path
        == "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/shop-dev"
    )


@pytest.mark.parametrize("form", ["main@sha1:{}", "main/{}"])
def test_flux_kustomization_read_through_the_kubernetes_api(
    kube: tuple[FakeKubernetesAPI, KubernetesObjects], http: httpx.Client, form: str
) -> None:
    fake, objects = kube
    verifier = Verifier(http=http, kubernetes=objects)
    spec = VerifySpec((FluxCheck("shop-dev", "flux-system"),))
    fake.put(kustomization(form.format(SHA)))
    assert verifier.verify(spec, DEPLOYMENT, T0).state == "verified"
    assert fake.requests[-1].path == (
        "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/shop-dev"
    )


def test_flux_helmrelease_failure(
    kube: tuple[FakeKubernetesAPI, KubernetesObjects], http: httpx.Client
) -> None:
    fake, objects = kube
    document = kustomization(
        "0.1.0",
        ready="False",
        reason="UpgradeFailed",
        attempted=f"0.1.0+{SHA[:12]}",
        message="Helm upgrade failed: timed out waiting for the condition",
    )
    document.update(apiVersion="helm.toolkit.fluxcd.io/v2", kind="HelmRelease")
    fake.put(document)
    verifier = Verifier(http=http, kubernetes=objects)
    spec = VerifySpec((FluxCheck("shop-dev", "flux-system", resource="HelmRelease"),))
    outcome = verifier.verify(spec, DEPLOYMENT, T0)
    assert outcome.state == "failed"
    assert outcome.reason.startswith("UpgradeFailed: Helm upgrade failed")


def test_a_kubernetes_outage_is_pending_until_the_timeout(
    kube: tuple[FakeKubernetesAPI, KubernetesObjects], http: httpx.Client
) -> None:
    fake, objects = kube
    fake.put(application())
    fake.outage = 503
    verifier = Verifier(http=http, kubernetes=objects)
    spec = VerifySpec((ArgoCDCheck("shop-dev"),), timeout=600)
    early = verifier.verify(spec, DEPLOYMENT, T0 + timedelta(seconds=10))
    assert early.state == "pending"
    assert "unreachable" in early.reason and early.retry_after
    late = verifier.verify(spec, DEPLOYMENT, T0 + timedelta(seconds=600))
    assert late.state == "failed"
    assert late.reason.startswith("timed out after 10m")


def test_no_kubernetes_configuration_is_pending(
    tmp_path: Path, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    for objects in (
        KubernetesObjects(lambda: KubeConfig.from_file(tmp_path / "missing")),
        KubernetesObjects(),  # KUBECONFIG / in-cluster, as the sidecar uses it
    ):
        verifier = Verifier(http=http, kubernetes=objects)
        outcome = verifier.verify(VerifySpec((ArgoCDCheck("x"),)), DEPLOYMENT, T0)
        assert outcome.state == "pending"
        assert "Kubernetes configuration" in outcome.reason


def test_argocd_api_server_with_url_and_token_from_the_operator(http: httpx.Client) -> None:
    fake = FakeArgoCDServer()
    try:
        fake.applications[("argocd", "shop-dev")] = application()
        spec = VerifySpec((ArgoCDCheck("shop-dev", via="server"),))
        unset = Verifier.from_environment(http, {}, None)
        outcome = unset.verify(spec, DEPLOYMENT, T0)
        assert (outcome.state, outcome.reason) == ("pending", "RECONCILER_ARGOCD_SERVER is not set")
        without_token = Verifier.from_environment(
            http, {"RECONCILER_ARGOCD_SERVER": fake.url}, None
        )
        assert without_token.verify(spec, DEPLOYMENT, T0).state == "pending"  # 401: an outage
        env = {"RECONCILER_ARGOCD_SERVER": fake.url, "RECONCILER_ARGOCD_TOKEN": fake.TOKEN}
        verifier = Verifier.from_environment(http, env, None)
        verifier.kubernetes = _NoCluster()
        assert verifier.verify(spec, DEPLOYMENT, T0).state == "verified"
        assert fake.requests[-1].query == {"appNamespace": ["argocd"]}
    finally:
        fake.close()


class _NoCluster:
    def get(self, kind: str, namespace: str, name: str) -> None:
        raise AssertionError("the API server check must not read the cluster")


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_commit_statuses_from_each_git_host(kind: str, http: httpx.Client) -> None:
    fake = FakeGitHost(kind)
    try:
        statuses = GitHostStatuses(
            kind, fake.api_url, "acme/config", http, {"RECONCILER_GIT_TOKEN": FakeGitHost.TOKEN}
        )  # type: ignore[arg-type]
        verifier = Verifier(http=http, kubernetes=_NoCluster(), statuses=statuses)
        spec = VerifySpec((CommitStatusCheck("argocd/*"),))
        assert verifier.verify(spec, DEPLOYMENT, T0).state == "pending"
        fake.post_status(SHA, "argocd/shop-dev", "pending")
        assert verifier.verify(spec, DEPLOYMENT, T0).state == "pending"
        success = "success"
        fake.post_status(SHA, "argocd/shop-dev", success, "healthy")
        assert verifier.verify(spec, DEPLOYMENT, T0).state == "verified"
        failure = "failed" if kind == "gitlab" else "failure"
        fake.post_status(SHA, "argocd/shop-dev", failure, "Degraded")
        outcome = verifier.verify(spec, DEPLOYMENT, T0)
        assert outcome.state == "failed"
        assert "Degraded" in outcome.reason
    finally:
        fake.close()


def test_github_check_runs_count(http: httpx.Client) -> None:
    fake = FakeGitHost("github")
    try:
        statuses = GitHostStatuses(
            "github", fake.api_url, "acme/config", http, {"RECONCILER_GIT_TOKEN": FakeGitHost.TOKEN}
        )
        verifier = Verifier(http=http, kubernetes=_NoCluster(), statuses=statuses)
        spec = VerifySpec((CommitStatusCheck("deploy-*"),))
        fake.add_check_run(SHA, "deploy-dev", "in_progress", None)
        assert verifier.verify(spec, DEPLOYMENT, T0).state == "pending"
        fake.commits[SHA].check_runs.clear()
        fake.add_check_run(SHA, "deploy-dev", "completed", "failure")
        assert verifier.verify(spec, DEPLOYMENT, T0).state == "failed"
    finally:
        fake.close()


class _VersionHandler(BaseHTTPRequestHandler):
    body = b"{}"
    status = 200

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.send_header("Content-Length", str(len(type(self).body)))
        self.end_headers()
        self.wfile.write(type(self).body)


@pytest.fixture
def version_server() -> Iterator[tuple[str, type[_VersionHandler]]]:
    handler = type("Handler", (_VersionHandler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/version", handler
    server.shutdown()
    server.server_close()


def test_http_check_against_a_real_server(
    version_server: tuple[str, type[_VersionHandler]], http: httpx.Client
) -> None:
    url, handler = version_server
    verifier = Verifier(http=http, kubernetes=_NoCluster())
    spec = VerifySpec(
        (HttpCheck(url, expect='"api": "{packages.api.version}@{packages.api.digest}"'),)
    )
    handler.body = b'{"api": "2.3.3@sha256:old"}'
    assert verifier.verify(spec, DEPLOYMENT, T0).state == "pending"
    handler.body = ('{"api": "2.3.4@sha256:' + "cd" * 32 + '"}').encode()
    assert verifier.verify(spec, DEPLOYMENT, T0).state == "verified"
    handler.status = 503
    outcome = verifier.verify(spec, DEPLOYMENT, T0)
    assert outcome.state == "pending" and "unreachable" in outcome.reason


def test_http_check_of_a_closed_port_is_pending(http: httpx.Client) -> None:
    verifier = Verifier(http=http, kubernetes=_NoCluster())
    outcome = verifier.verify(
        VerifySpec((HttpCheck("http://127.0.0.1:9/version"),)), DEPLOYMENT, T0
    )
    assert outcome.state == "pending"
    assert outcome.retry_after
