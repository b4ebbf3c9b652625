"""Dashboard pages for 100 projects x 3 environments (issue 23): server time to render
the matrix and a release page (3 packages, 5 commits), and outbound requests made by
page views (must be 0: pages come from the in-memory snapshot). Floor, measured in the
same run: ``json.dumps`` of the matrix's part of the snapshot, the cheapest serialisation
of the data the page shows. Run: ``python3 bench/dashboard_render.py``.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

from reconciler.dashboard import Dashboard, render, render_path, rows_for_bench  # noqa: E402
from reconciler.server import ReconcilerServer, WebhookSecrets  # noqa: E402

RUNS = 30


def _timed(function: object, runs: int = RUNS) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    snapshot = rows_for_bench(100, ("dev", "staging", "prod"))
    render(snapshot)  # template compiled once, as in the sidecar
    page_ms = _timed(lambda: render(snapshot))
    release_path = "/releases/project-050/1.50.1"
    assert render_path(snapshot, release_path).status == 200  # type: ignore[union-attr]
    release_ms = _timed(lambda: render_path(snapshot, release_path))
    matrix_only = dataclasses.replace(snapshot, releases={}, histories={})  # the matrix page
    floor_ms = _timed(lambda: json.dumps(dataclasses.asdict(matrix_only), default=str))
    # A page view over HTTP, counting connections the process opens meanwhile.
    opened: list[object] = []
    real_connect = socket.socket.connect

    def counting_connect(self: socket.socket, address: object) -> None:
        opened.append(address)
        real_connect(self, address)  # type: ignore[arg-type]

    def outbound() -> int:
        """Connections other than the test client's own to the dashboard."""
        return len([a for a in opened if not (isinstance(a, tuple) and a[1] == app.port)])

    dashboard = Dashboard(snapshot)
    app = ReconcilerServer(("127.0.0.1", 0), on_event=lambda e: None,
                           secrets=WebhookSecrets(environ={}), dashboard=dashboard)  # fmt: skip
    with app, httpx.Client() as client:
        socket.socket.connect = counting_connect  # type: ignore[method-assign]
        try:
            size = len(client.get(f"{app.url}/").content)
            client.get(f"{app.url}{release_path}")
            client.get(f"{app.url}/feeds")
        finally:
            socket.socket.connect = real_connect  # type: ignore[method-assign]
    median, worst = statistics.median(page_ms), max(page_ms)
    print(
        f"dashboard 100x3: render median {median:.1f} ms, max {worst:.1f} ms "
        f"(limit 200 ms); floor json.dumps median {statistics.median(floor_ms):.1f} ms; "
        f"ratio {median / statistics.median(floor_ms):.1f}x; page {size} bytes; "
        f"outbound connections during page views: {outbound()}"
    )
    print(
        f"release page: render median {statistics.median(release_ms):.1f} ms, "
        f"max {max(release_ms):.1f} ms (limit 200 ms)"
    )


if __name__ == "__main__":
    main()
