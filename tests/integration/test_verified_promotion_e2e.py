"""Issue 17 end to end in ``run`` mode: verified promotion with Argo CD.

``reconciler run`` runs as a whole process against a real registry and a real bare Git
remote; the Kubernetes API is the fake of tests/helpers/verifyfakes.py (Argo CD
Application objects in their documented shape), reached through KUBECONFIG as in a
cluster. The test plays Argo CD: it sets the Application's status for the commit the
reconciler pushed, then posts the Argo CD notification webhook. Assertions are on the
order of events in Git (trailers) and in the sidecar's log, never on wall time.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler import yamlio
from tests.helpers.gitserver import BareRemote, run_git
from tests.helpers.registry import RegistryServer
from tests.helpers.verifyfakes import FakeKubernetesAPI
from tests.integration.test_sidecar import (
    SECRET,
    Sidecar,
    distribution_body,
    shop,
    start_sidecar,  # noqa: F401 - the fixture
    wait_until,
)
from tests.unit.test_verify_judge import application

SOAK = 3  # seconds of soak in dev

LIFECYCLE = textwrap.dedent(f"""\
    apiVersion: reconciler.dev/v1
    kind: Lifecycle
    name: standard
    phases:
      - {{name: development, environments: [dev], soak: {SOAK}s}}
      - {{name: staging, environments: [staging]}}
      - {{name: production, environments: [prod], automatic: false}}
    """)

VERIFY = textwrap.dedent("""\
    verify:
      interval: 1s
      timeout: 10m
      onFailure: rollback
      checks:
        - {kind: argocd, name: shop-dev, namespace: argocd}
""")


class Receiver:
    """A notification webhook target: records every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[str]:
        return [str(b.get("event")) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def kubernetes() -> Iterator[FakeKubernetesAPI]:
    fake = FakeKubernetesAPI()
    yield fake
    fake.close()


def trailers(remote: BareRemote) -> list[str]:
    """Every trailer line on the branch, oldest commit first."""
    lines: list[str] = []
    for block in reversed(remote.log_format("%(trailers:only,unfold)%x00")):
        lines += [line for line in block.split("\0")[0].splitlines() if line]
    return lines


def commit_times(remote: BareRemote, trailer: str) -> list[datetime]:
    """Committer times of the commits carrying a trailer line starting with ``trailer``."""
    found = []
    out = run_git(
        "--git-dir", str(remote.path), "log", "--format=%cI%x01%(trailers:only,unfold)%x00"
    )
    for entry in out.split("\0"):
        when, _, rest = entry.strip().partition("\x01")
        if any(line.startswith(trailer) for line in rest.splitlines()):
            found.append(datetime.fromisoformat(when))
    return found


def dev_state(remote: BareRemote) -> dict[str, Any]:
    state = yamlio.load_one(remote.show("state/shop.yaml"))
    return dict(state["environments"]["dev"][-1])


def has(remote: BareRemote, line: str) -> bool:
    return any(t.startswith(line) for t in trailers(remote))


def argocd_reports(
    sidecar: Sidecar, kubernetes: FakeKubernetesAPI, commit: str, health: str
) -> None:
    """Argo CD synced ``commit`` with ``health`` and told the sidecar so."""
    kubernetes.put(application(commit, health=health, message=f"{health} (test)"))
    body = json.dumps({"app": "shop-dev", "namespace": "argocd", "revision": commit,
                       "health": health, "sync": "Synced"}).encode()  # fmt: skip
    answer = sidecar.post(
        "/hooks/argocd",
        body,
        {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 202, answer.text


def test_verified_promotion_with_argocd_in_run_mode(
    start_sidecar: Callable[..., Sidecar],  # noqa: F811
    bare_remote: Callable[..., BareRemote],
    registry: RegistryServer,
    kubernetes: FakeKubernetesAPI,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    app, files = shop(registry.url, lifecycle=LIFECYCLE)
    project = files["projects/shop/project.yaml"]
    files["projects/shop/project.yaml"] = project.replace(
        "    overlay: deploy/shop/overlays/dev\n",
        "    overlay: deploy/shop/overlays/dev\n" + textwrap.indent(VERIFY, "    "),
    )
    files["reconciler.yaml"] += (
        "notifications:\n  - {kind: webhook, urlEnv: HOOK_URL, "
        "events: [verified, verification-failed, promoted]}\n"
    )
    registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=files)
    sidecar = start_sidecar(
        remote,
        env={
            **registry.operator_env(),
            "KUBECONFIG": str(kubernetes.kubeconfig(tmp_path)),
            "HOOK_URL": receiver.url,
        },
    )
    sidecar.wait_ready()

    def push(tag: str, version: str) -> str:
        digest = registry.push(app.repository, tag)
        body = distribution_body(registry.host, app.repository, tag, digest)
        assert sidecar.post_distribution(body).status_code == 202
        wait_until(lambda: has(remote, f"Deployed: shop {version} dev"), 30, f"{version} in dev")
        return str(remote.head())

    # 0. A first release, verified in dev, reaches staging after the soak.
    wait_until(lambda: has(remote, "Deployed: shop 1.0.0 dev"), 30, "1.0.0 in dev")
    first = str(remote.head())
    assert "verification" not in dev_state(remote)  # pending: no verdict, no staging
    assert not has(remote, "Deployed: shop 1.0.0 staging")
    argocd_reports(sidecar, kubernetes, first, "Healthy")
    wait_until(lambda: has(remote, "Deployed: shop 1.0.0 staging"), 30, "1.0.0 in staging")

    # 1. 1.0.1 is deployed to dev and is pending.
    second = push("1.1.0", "1.0.1")
    state = dev_state(remote)
    assert (state["release"], state.get("verification")) == ("1.0.1", None)
    time.sleep(2)  # a few verification polls (interval 1s) make no commit
    assert remote.head() == second

    # 2. The Application turns Degraded at that commit: failed, notified, rolled back.
    argocd_reports(sidecar, kubernetes, second, "Degraded")
    wait_until(lambda: has(remote, "Failed: shop 1.0.1 dev"), 30, "the failed verdict")
    assert has(remote, "Rolled-Back: shop dev 1.0.1 -> 1.0.0")
    overlay = yamlio.load_one(remote.show("deploy/shop/overlays/dev/kustomization.yaml"))
    assert overlay["images"][0]["newTag"] == "1.0.0"
    wait_until(lambda: "verification-failed" in receiver.events(), 10, "the notification")
    rollback = str(remote.head())
    argocd_reports(sidecar, kubernetes, rollback, "Healthy")

    # 3. 1.0.2 is verified, soaks from its verification, then reaches staging.
    third = push("1.2.0", "1.0.2")
    argocd_reports(sidecar, kubernetes, third, "Healthy")
    wait_until(lambda: has(remote, "Deployed: shop 1.0.2 staging"), 60, "1.0.2 in staging")

    lines = trailers(remote)

    def position(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    assert position("Deployed: shop 1.0.1 dev") < position("Failed: shop 1.0.1 dev")
    assert position("Failed: shop 1.0.1 dev") < position("Deployed: shop 1.0.2 dev")
    assert position("Deployed: shop 1.0.2 dev") < position("Verified: shop 1.0.2 dev")
    assert position("Verified: shop 1.0.2 dev") < position("Deployed: shop 1.0.2 staging")
    assert not any(line.startswith("Deployed: shop 1.0.1 staging") for line in lines)
    [verified] = commit_times(remote, "Verified: shop 1.0.2 dev")
    [promoted] = commit_times(remote, "Deployed: shop 1.0.2 staging")
    assert (promoted - verified).total_seconds() >= SOAK - 1  # commit times are whole seconds
    # the staging promotion came from a pass the soak's end woke, not from a timer
    assert sidecar.messages("pass starting: wake")
    events = receiver.events()
    assert events.index("verification-failed") < len(events) - 1  # verified came after too
    assert "verified" in events
