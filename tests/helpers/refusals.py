"""A sidecar whose signature-gate refusals the tests watch: the webhook notifications it
sends (caught by an httpx MockTransport: the receiving end is not under test) and the
``reconciler_signature_refusals_total`` metric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from reconciler.metrics import Metrics
from reconciler.reconcile import Injected, PassOptions, PassSettings, Reconciler, SidecarWiring

NOTIFY_SETTINGS = "notifications:\n  - {kind: webhook, urlEnv: HOOK_URL}\n"
"""reconciler.yaml lines sending every event to the webhook in $HOOK_URL."""
HOOK_URL = "https://hooks.example.test/refusals"


class Watched:
    """Sidecars (``start``) over one repository and work dir, with the notifications
    they sent in ``sent``. Set HOOK_URL to ``HOOK_URL`` in the environment."""

    def __init__(self, repo_url: str, work_dir: Path) -> None:
        self.repo_url, self.work_dir = repo_url, work_dir
        self.sent: list[dict[str, Any]] = []

    def _receive(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(json.loads(request.content))
        return httpx.Response(200)

    def start(self, metrics: Metrics) -> Reconciler:
        return Reconciler(
            PassOptions(
                PassSettings(repo_url=self.repo_url, work_dir=self.work_dir),
                Injected(notify_transport=httpx.MockTransport(self._receive)),
                SidecarWiring(metrics=metrics),
            )
        )

    def refusal_notes(self) -> list[tuple[str, str]]:
        """(subject, refusal kind) of each signature-refused notification, sorted."""
        return sorted(
            (n["subject"], n["details"]["refusal"])
            for n in self.sent
            if n["event"] == "signature-refused"
        )


def refusals(metrics: Metrics, project: str, package: str, reason: str) -> float | None:
    """The refusal counter for one package and kind (None: never counted)."""
    labels = {"project": project, "package": package, "reason": reason}
    return metrics.registry.get_sample_value("reconciler_signature_refusals_total", labels)
