"""Webhook receivers for GitOps agents' reports (issue 17): Argo CD notifications and
Flux notification-controller (generic and generic-hmac providers)."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from reconciler.server import ReconcilerServer, WebhookSecrets
from reconciler.webhooks import WebhookEvent, WebhookRejected, receive

SECRET = "agent-webhook-secret"
SHA = "3f4e5d6c7b8a99887766554433221100ffeeddcc"

# The body the documented Argo CD notifications template sends
# (docs/verified-promotion-argocd.md: template.reconciler-webhook).
ARGOCD_BODY = json.dumps(
    {
        "app": "shop-dev",
        "namespace": "argocd",
        "revision": SHA,
        "health": "Degraded",
        "sync": "Synced",
    }
).encode()

# A Flux notification-controller Event as the generic providers POST it (fluxcd docs,
# notification-controller "Provider" / generic webhook: the Event object).
FLUX_BODY = json.dumps(
    {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": "flux-system",
            "name": "shop-dev",
            "uid": "7d0cdc51-ddcf-4743-b223-83ca5c699632",
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "resourceVersion": "56921",
        },
        "severity": "error",
        "timestamp": "2026-01-01T11:21:50Z",
        "message": "health check failed after 30s: timeout waiting for: [Deployment/shop/api]",
        "reason": "HealthCheckFailed",
        "metadata": {"revision": f"main@sha1:{SHA}", "summary": "dev"},
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-7f5d6b4c9d-8x2wz",
    }
).encode()


def test_argocd_notification_with_the_bearer_secret() -> None:
    events, _ = receive("argocd", {"Authorization": f"Bearer {SECRET}"}, ARGOCD_BODY, SECRET)
    assert events == [
        WebhookEvent("deployment", "argocd", "Application/argocd/shop-dev", commit=SHA)
    ]
    with pytest.raises(WebhookRejected) as caught:
        receive("argocd", {"Authorization": "Bearer nope"}, ARGOCD_BODY, SECRET)
    assert caught.value.status == 401


@pytest.mark.parametrize("hash_name", ["sha256", "sha512"])
def test_flux_generic_hmac(hash_name: str) -> None:
    digest = hmac.new(SECRET.encode(), FLUX_BODY, getattr(hashlib, hash_name)).hexdigest()
    headers = {"X-Signature": f"{hash_name}={digest}"}
    events, _ = receive("flux", headers, FLUX_BODY, SECRET)
    assert events == [
        WebhookEvent(
            "deployment", "flux", "Kustomization/flux-system/shop-dev", commit=f"main@sha1:{SHA}"
        )
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Signature": "sha256=" + "0" * 64},
        {"X-Signature": "md5=abc"},
        {"Authorization": "Bearer wrong"},
        {},
    ],
)
def test_flux_bad_or_missing_authentication_is_401(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookRejected) as caught:
        receive("flux", headers, FLUX_BODY, SECRET)
    assert caught.value.status == 401


def test_flux_generic_provider_with_an_authorization_header() -> None:
    events, _ = receive("flux", {"Authorization": f"Bearer {SECRET}"}, FLUX_BODY, SECRET)
    assert events[0].kind == "deployment"


def test_a_report_without_its_object_is_400() -> None:
    with pytest.raises(WebhookRejected) as caught:
        receive("flux", {"Authorization": f"Bearer {SECRET}"}, b'{"reason": "x"}', SECRET)
    assert caught.value.status == 400


def test_the_sidecar_queues_agent_reports() -> None:
    queued: list[WebhookEvent] = []
    app = ReconcilerServer(
        ("127.0.0.1", 0),
        on_event=queued.append,
        secrets=WebhookSecrets(environ={"RECONCILER_WEBHOOK_SECRET_FLUX": SECRET}),
    )
    with app:
        digest = hmac.new(SECRET.encode(), FLUX_BODY, hashlib.sha256).hexdigest()
        answer = httpx.post(
            f"{app.url}/hooks/flux",
            content=FLUX_BODY,
            headers={"X-Signature": f"sha256={digest}", "Content-Type": "application/json"},
        )
        assert (answer.status_code, answer.json()) == (202, {"accepted": 1, "replayed": 0})
        # the argocd endpoint has no secret here: disabled
        assert httpx.post(f"{app.url}/hooks/argocd", content=ARGOCD_BODY).status_code == 404
    assert [e.source for e in queued] == ["flux"]
