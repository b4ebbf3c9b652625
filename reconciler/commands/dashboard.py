"""``reconciler dashboard --repo … --listen …``: the dashboard on a laptop.

Runs a dry-run pass (polls feeds, decides, writes and pushes nothing) every
``--interval`` seconds and serves the release matrix at ``/`` with live refresh, like
``run`` does, but with no webhooks and no commits. Ctrl-C stops it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import click

from reconciler.commands.common import EXIT_OK, ListenAddress, make_reconciler, repo_options


@click.command("dashboard", help=__doc__)
@repo_options
@click.option(
    "--listen",
    type=ListenAddress(),
    default="127.0.0.1:8080",
    show_default=True,
    help="Address to serve the dashboard on.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=5.0),
    default=60.0,
    show_default=True,
    help="Seconds between dry-run passes.",
)
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    listen: tuple[str, int],
    interval: float,
) -> None:
    from reconciler.dashboard import Dashboard, snapshot_after_pass
    from reconciler.server import ReconcilerServer, WebhookSecrets

    reconciler = make_reconciler(repo, work_dir, branch)
    dashboard = Dashboard()
    stop = threading.Event()
    server = ReconcilerServer(
        listen,
        on_event=lambda event: None,
        secrets=WebhookSecrets(environ={}),  # no secrets: every webhook endpoint is off
        dashboard=dashboard,
    )
    server.start()
    click.echo(f"reconciler: dashboard on {server.url}/ (Ctrl-C to stop)", err=True)
    try:
        while not stop.is_set():
            result = reconciler.run_pass(dry_run=True)
            if reconciler.last_config is not None:
                dashboard.update(snapshot_after_pass(reconciler, result, dashboard.current()))
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        reconciler.close()
    raise SystemExit(EXIT_OK)
