"""``reconciler dashboard --repo … --listen …``: the dashboard on a laptop.

Runs a dry-run pass (polls feeds, decides, writes and pushes nothing) every
``--interval`` seconds and serves the release matrix at ``/`` with live refresh, like
``run`` does, but with no webhooks and no commits (with a Git host token and a
dashboard secret, "propose promotion" opens pull requests). Ctrl-C stops it.
"""

from __future__ import annotations

import os
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
    from reconciler.dashboard_actions import actions_for
    from reconciler.server import ReconcilerServer, WebhookSecrets

    reconciler = make_reconciler(repo, work_dir, branch)
    # "propose promotion" when a Git host token and an authentication are configured
    actions = actions_for(
        reconciler, lambda: WebhookSecrets().secret_for("dashboard"), dict(os.environ)
    )
    dashboard = Dashboard(actions_on=actions is not None)
    stop = threading.Event()
    server = ReconcilerServer(
        listen,
        on_event=lambda event: None,
        secrets=WebhookSecrets(environ={}),  # no secrets: every webhook endpoint is off
        dashboard=dashboard,
        actions=actions,
    )
    server.start()
    click.echo(f"reconciler: dashboard on {server.url}/ (Ctrl-C to stop)", err=True)
    try:
        while not stop.is_set():
            result = reconciler.run_pass(dry_run=True)
            if reconciler.last_config is not None:
                snapshot = snapshot_after_pass(
                    reconciler, result, dashboard.current(), can_propose=actions is not None
                )
                dashboard.update(snapshot)
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        reconciler.close()
    raise SystemExit(EXIT_OK)
