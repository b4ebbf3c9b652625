"""``reconciler run``: the sidecar. A pass every --interval (with jitter), woken early by
registry and Git webhooks and by changes to watched files; /healthz, /readyz and /metrics.
SIGTERM/SIGINT finish the current pass (never a half-made commit) and exit."""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.commands.common import (
    EXIT_OK,
    ListenAddress,
    log_options,
    make_reconciler,
    pass_progress,
    repo_options,
    shard_option,
    start_logging,
)

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 180.0


def positive_seconds(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    """--interval's check: the loop cannot keep 0, -5, nan or inf seconds."""
    if value is not None and not usable_interval(value):
        raise click.BadParameter(f"{value} must be a finite number of seconds above 0")
    return value


def usable_interval(seconds: float) -> bool:
    return math.isfinite(seconds) and seconds > 0


if TYPE_CHECKING:  # imported lazily at run time: `reconciler --help` stays fast
    from reconciler.dashboard import Dashboard
    from reconciler.dashboard_actions import Actions
    from reconciler.loop import Backoff, PassOutcome, PassRequest
    from reconciler.reconcile import Reconciler, Shard
    from reconciler.server import Health, ReconcilerServer


def _watched_files(env: dict[str, str]) -> list[str]:
    """Mounted credentials that are reloaded without a restart when they change."""
    paths = []
    docker = env.get("DOCKER_CONFIG")
    if docker:
        paths.append(os.path.join(docker, "config.json"))
    for name in (
        "RECONCILER_GIT_PASSWORD_FILE",
        "RECONCILER_GIT_USERNAME_FILE",
        "RECONCILER_GIT_SSH_KEY_FILE",
        "RECONCILER_WATCH_FILES",
    ):
        for path in env.get(name, "").split(os.pathsep):
            if path:
                paths.append(path)
    return [p for p in paths if Path(p).exists()]


def touched_projects(config: Any, repositories: frozenset[str]) -> set[str]:
    """Projects with a package whose repository a webhook named."""
    touched = set()
    for project in config.projects.values():
        for pkg in project.packages:
            repo = pkg.repository
            if any(
                r == repo or r.endswith("/" + repo) or repo.endswith("/" + r) for r in repositories
            ):
                touched.add(project.name)
    return touched


def sidecar_pass(
    reconciler: Reconciler,
    backoff: Backoff,
    credential_files: set[str],
    request: PassRequest,
    dashboard: Dashboard | None = None,
) -> PassOutcome:
    """One pass of the sidecar loop, as ``request`` asks; then the dashboard's snapshot."""
    from reconciler.loop import PassOutcome

    if credential_files & request.changed_paths:
        # A rotated credential: feeds refused with the old one are retried at once.
        # Other events (commits, webhooks, the timer) keep each feed's backoff, so a
        # failing registry is not hammered and a Retry-After is never cut short.
        backoff.reset()
    only = None
    config = reconciler.last_config
    if not request.full and request.repositories and config is not None:
        only = touched_projects(config, request.repositories) or None
    result = reconciler.run_pass(only_projects=only, recheck=request.repositories)
    errors = [f"{k}: {v}" for k, v in result.feed_errors.items()]
    errors += [f"project {k} skipped: {v}" for k, v in result.project_errors.items()]
    if result.config_error:
        errors.append(f"config invalid: {len(result.config_error.problems)} problem(s)")
    if result.git_error:
        errors.append(f"git: {result.git_error}")
    if dashboard is not None and reconciler.last_config is not None:
        _update_dashboard(dashboard, reconciler, result)
    return PassOutcome(
        ok=result.config_error is None and result.git_error is None,
        releases_created=len(result.releases) if result.pushed else 0,
        promotions=len(result.promotions) if result.pushed else 0,
        errors=tuple(errors),
        duration=result.duration,
        repo_reachable=result.git_error is None,
        wake_at=_wake_at(result),
    )


def _wake_at(result: Any) -> float | None:
    """When the loop should run the next pass without an event (None: the interval)."""
    if result.follow_up and result.pushed:
        return 0.0  # a later automatic phase just opened: due now (the loop's minimum pause)
    return result.wake_at.timestamp() if result.wake_at else None


def _update_dashboard(dashboard: Dashboard, reconciler: Reconciler, result: Any) -> None:
    from reconciler.dashboard import snapshot_after_pass
    from reconciler.errors import ReconcilerError

    try:
        dashboard.update(
            snapshot_after_pass(
                reconciler, result, dashboard.current(), can_propose=dashboard.actions_on
            )
        )
    except (ReconcilerError, OSError) as error:  # a damaged state file: keep the last page
        log.warning("dashboard not updated: %s", error)


def _serve(
    listen: tuple[str, int],
    events: queue.Queue[Any],
    health: Health,
    metrics: Any,
    dashboard: Dashboard | None = None,
    actions: Actions | None = None,
) -> ReconcilerServer:
    """Start the HTTP server; an address that cannot be bound is a usage error (exit 2)."""
    import errno

    from reconciler.server import ReconcilerServer

    try:
        server = ReconcilerServer(
            listen,
            on_event=events.put,
            health=health,
            metrics=metrics,
            dashboard=dashboard,
            actions=actions,
        )
    except OSError as exc:
        why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        host, port = listen
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise click.BadParameter(
            f"cannot listen on {shown}: {why}", param_hint="'--listen' / RECONCILER_LISTEN"
        ) from None
    server.start()
    return server


@click.command("run", help=__doc__)
@repo_options
@click.option(
    "--interval",
    envvar="RECONCILER_INTERVAL",
    type=float,
    callback=positive_seconds,
    default=None,
    help="Seconds between passes (default: reconciler.yaml's interval, else 180).",
)
@click.option(
    "--jitter",
    type=float,
    default=0.1,
    show_default=True,
    help="Fraction of the interval to randomise by.",
)
@click.option(
    "--listen",
    envvar="RECONCILER_LISTEN",
    show_envvar=True,
    type=ListenAddress(),
    default="127.0.0.1:8080",
    show_default=True,
    help="Address for webhooks, /healthz, /readyz, /metrics.",
)
@shard_option
@log_options
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    interval: float | None,
    jitter: float,
    listen: tuple[str, int],
    shard: Shard | None,
    log_level: str,
    log_format: str,
) -> None:
    from reconciler.config import load_config
    from reconciler.dashboard import Dashboard
    from reconciler.dashboard_actions import actions_for
    from reconciler.errors import ReconcilerError
    from reconciler.gitrepo import local_branch_files, local_branch_head
    from reconciler.loop import (
        Backoff,
        ConfigChanged,
        install_signal_handlers,
        run_loop,
        watch_paths,
    )
    from reconciler.metrics import Metrics
    from reconciler.server import Health, WebhookSecrets

    start_logging(log_level, log_format)
    stop = threading.Event()
    install_signal_handlers(stop)
    metrics = Metrics()
    events: queue.Queue[Any] = queue.Queue()
    backoff = Backoff()
    reconciler = make_reconciler(
        repo,
        work_dir,
        branch,
        metrics=metrics,
        backoff=backoff,
        shard=shard,
        progress=pass_progress(),
    )
    # Serve /healthz before the first clone, which can take a while on a big repo;
    # /readyz stays "not ready" until a pass succeeds.
    health = Health(max_age=3 * (interval or DEFAULT_INTERVAL) + 60)
    # `/`: from the last pass's snapshot; read-only but for "propose promotion" when
    # a Git host token and an authentication are configured
    actions = actions_for(
        reconciler, lambda: WebhookSecrets().secret_for("dashboard"), dict(os.environ)
    )
    dashboard = Dashboard(actions_on=actions is not None)
    server = _serve(listen, events, health, metrics, dashboard, actions)
    every = interval
    feed_files: list[str] = []  # feeds' passwordFile mounts, watched like the env-named ones
    try:
        reconciler.tree.sync()
        config = load_config(reconciler.tree.root)
        every = every if every is not None else config.settings.interval
        feed_files = [
            f.credentials.password_file
            for f in config.feeds.values()
            if f.credentials is not None and f.credentials.password_file
        ]
    except (ReconcilerError, OSError):  # the first pass reports it; start anyway
        pass
    if every is None or not usable_interval(every):
        every = DEFAULT_INTERVAL  # validate reports a bad configured interval; keep serving
    health.max_age = 3 * every + 60
    ref_files = set(local_branch_files(repo, reconciler.tree.branch))
    credential_files = set(_watched_files(dict(os.environ)) + feed_files)

    def changed(path: str) -> None:
        # A config repository on this machine: a commit or push to its branch starts a
        # pass at once, but the reconciler's own pushes do not.
        if path in ref_files and local_branch_head(repo, reconciler.tree.branch) in (
            "",
            reconciler.tree.head(),
        ):
            return
        events.put(ConfigChanged(path))

    watcher = watch_paths(
        sorted(p for p in credential_files if Path(p).exists()) + sorted(ref_files),
        changed,
    )

    def run_pass(request: PassRequest) -> PassOutcome:
        return sidecar_pass(reconciler, backoff, credential_files, request, dashboard)

    try:
        log.info("serving on %s, a pass every %.0fs", server.url, every)
        run_loop(
            run_pass,
            interval=every,
            jitter=jitter,
            stop=stop,
            events=events,
            health=health,
            metrics=metrics,
        )
    finally:
        watcher.close()
        server.close()
        reconciler.close()
    raise SystemExit(EXIT_OK)
