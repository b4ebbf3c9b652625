"""Verified promotion latency in ``run`` mode (issue 17): how long after a deployment is
verified (soak 0), or after its soak ends (soak 2 s), the next phase's commit is on the
remote. Ten runs each; median and max.

Floor, measured in the same run: a registry webhook's pass, from the POST to its
commit on the remote (the cost of any event-driven pass that pushes). Ratios are
latency / floor median.

The Kubernetes API is the fake of tests/helpers/verifyfakes.py; the bench plays Argo
CD (Application status + the notification webhook). Run: ``python3 bench/verification_latency.py``.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.configrepo import AppSpec, config_files  # noqa: E402
from tests.helpers.gitserver import BareRemote, create_bare_repo, run_git  # noqa: E402
from tests.helpers.registry import start_registry  # noqa: E402
from tests.helpers.verifyfakes import FakeKubernetesAPI  # noqa: E402
from tests.unit.test_verify_judge import application  # noqa: E402

SECRET = "bench-webhook-secret"
RUNS = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> float:
    """Poll every 5 ms; the time (time.time()) it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.time()
        time.sleep(0.005)
    raise TimeoutError("condition not met")


def _deployed(remote: BareRemote, version: str, env: str) -> bool:
    trailers = run_git("--git-dir", str(remote.path), "log", "-3", "--format=%(trailers)")
    return f"Deployed: shop {version} {env}" in trailers


def _verified(remote: BareRemote, version: str) -> bool:
    trailers = run_git("--git-dir", str(remote.path), "log", "-3", "--format=%(trailers)")
    return f"Verified: shop {version} dev" in trailers


def measure(workdir: Path, soak: int) -> tuple[list[float], list[float]]:
    """(latencies, floor samples) for one lifecycle with ``soak`` seconds in dev."""
    registry = start_registry(workdir / "registry")
    kubernetes = FakeKubernetesAPI()
    app = AppSpec("api", f"bench{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")
    lifecycle = textwrap.dedent(f"""\
        apiVersion: reconciler.dev/v1
        kind: Lifecycle
        name: standard
        phases:
          - {{name: development, environments: [dev], soak: {soak}s}}
          - {{name: staging, environments: [staging]}}
        """)
    files = config_files(registry.url, [app], lifecycle=lifecycle, envs=("dev", "staging"))
    files["projects/shop/project.yaml"] = files["projects/shop/project.yaml"].replace(
        "    overlay: deploy/shop/overlays/dev\n",
        "    overlay: deploy/shop/overlays/dev\n    verify:\n      interval: 5s\n"
        "      checks: [{kind: argocd, name: shop-dev}]\n",
    )
    registry.push(app.repository, "1.0.0")
    remote = create_bare_repo(workdir / "remote.git", f"file://{workdir / 'remote.git'}", files)
    port = _free_port()
    env = {
        **os.environ,
        **registry.operator_env(),
        "GIT_TERMINAL_PROMPT": "0",
        "RECONCILER_WEBHOOK_SECRET": SECRET,
        "KUBECONFIG": str(kubernetes.kubeconfig(workdir)),
        "PYTHONPATH": str(REPO_ROOT),
    }
    log_file = (workdir / "sidecar.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "run", "--repo", remote.url,
         "--work-dir", str(workdir / "work"), "--listen", f"127.0.0.1:{port}",
         "--interval", "3600", "--jitter", "0", "--log-format", "json"],
        stdout=log_file, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    latencies: list[float] = []
    floor: list[float] = []
    try:
        _wait(lambda: _deployed(remote, "1.0.0", "dev"))
        for run in range(RUNS + 1):
            version = f"1.0.{run}"
            if run:
                tag = f"1.{run}.0"
                digest = registry.push(app.repository, tag)
                event = {"id": str(uuid.uuid4()), "action": "push",
                         "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                    "digest": digest, "repository": app.repository, "tag": tag},
                         "request": {"host": registry.host}}  # fmt: skip
                posted = time.time()
                client.post("/hooks/distribution", content=json.dumps({"events": [event]}),
                            headers={"Authorization": f"Bearer {SECRET}"})  # fmt: skip
                floor.append(_wait(lambda v=version: _deployed(remote, v, "dev")) - posted)
            head = str(remote.head())
            kubernetes.put(application(head))
            reported = time.time()
            client.post("/hooks/argocd", content=json.dumps({"app": "shop-dev"}),
                        headers={"Authorization": f"Bearer {SECRET}"})  # fmt: skip
            _wait(lambda v=version: _verified(remote, v))
            # soak 0: the verifying pass promotes; soak > 0: a pass woken at its end.
            # The verdict's time is the verifying pass's clock, a little after the
            # report: measuring from report + soak over-states the latency slightly.
            start = reported + soak
            promoted = _wait(lambda v=version: _deployed(remote, v, "staging"))
            if run:  # run 0 warms the caches, like the floor's first pass
                latencies.append(max(0.0, promoted - start))
    finally:
        process.terminate()
        process.wait(timeout=15)
        client.close()
        log_file.close()
        kubernetes.close()
        registry.stop()
    return latencies, floor


def main() -> None:
    for soak in (0, 2):
        with tempfile.TemporaryDirectory() as directory:
            latencies, floor = measure(Path(directory), soak)
        base = statistics.median(floor)
        what = "verification" if soak == 0 else f"soak end ({soak} s soak)"
        print(
            f"{what} -> next phase's pushed commit, {len(latencies)} runs: "
            f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s; "
            f"floor (registry webhook -> pushed commit) median {base:.2f} s; "
            f"ratio median {statistics.median(latencies) / base:.2f}x, "
            f"max {max(latencies) / base:.2f}x"
        )


if __name__ == "__main__":
    main()
