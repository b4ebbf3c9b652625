"""Options and helpers shared by the commands that work on a config repository."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from reconciler.errors import ExitCode

# Short names for the table in reconciler.errors (the one place exit codes are defined).
EXIT_OK = ExitCode.OK
EXIT_INVALID = ExitCode.INVALID
EXIT_FEED = ExitCode.FEED
EXIT_GIT = ExitCode.GIT
EXIT_PROJECT = ExitCode.PROJECT

F = TypeVar("F", bound=Callable[..., Any])


def repo_options(func: F) -> F:
    """--repo, --work-dir, --branch: where the config repository is and where to clone it."""
    func = click.option(
        "--branch",
        envvar="RECONCILER_BRANCH",
        show_envvar=True,
        default=None,
        help="Branch to read and push (default: reconciler.yaml's, else main).",
    )(func)
    func = click.option(
        "--work-dir",
        envvar="RECONCILER_WORKDIR",
        show_envvar=True,
        type=click.Path(path_type=Path),
        default=None,
        help="Where the clone and caches live (default: ~/.cache/reconciler/<repo hash>).",
    )(func)
    func = click.option(
        "--repo",
        envvar=["RECONCILER_REPO", "RECONCILER_REPO_URL"],
        show_envvar=True,
        required=True,
        help="Config repository URL (https://, ssh://, file://) or a local path to a clone.",
    )(func)
    return func


def repo_url(repo: str) -> str:
    """Turn a local path into a file:// URL; leave URLs alone."""
    if "://" in repo or repo.startswith("git@"):
        return repo
    return Path(repo).resolve().as_uri()


def default_work_dir(url: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reconciler"
    return base / hashlib.sha256(url.encode()).hexdigest()[:16]


def make_reconciler(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    *,
    shard: Any = None,
    metrics: Any = None,
    backoff: Any = None,
    progress: Any = None,
) -> Any:
    from reconciler.reconcile import PassOptions, PassSettings, Reconciler, SidecarWiring

    url = repo_url(repo)
    git_env = None
    if os.environ.get("RECONCILER_GITHUB_APP_ID"):
        from reconciler import githubapp  # PyJWT and cryptography: only when an App is used

        git_env = githubapp.environment(url)
    settings = PassSettings(
        repo_url=url,
        work_dir=(work_dir or default_work_dir(url)).resolve(),
        branch=branch,
        git_env=git_env,
        shard=shard,
    )
    sidecar = SidecarWiring(metrics=metrics, backoff=backoff, progress=progress)
    return Reconciler(PassOptions(settings, sidecar=sidecar))


def exit_code(result: Any) -> int:
    if result.config_error is not None:
        return EXIT_INVALID
    if result.git_error:
        return EXIT_GIT
    if result.project_errors:
        return EXIT_PROJECT
    if result.feed_errors:
        return EXIT_FEED
    return EXIT_OK


class PassProgress:
    """Progress of a pass's polling, called with (done, total) repositories.

    On a terminal: a bar on stderr, redrawn in place (scans of 20+ repositories).
    Elsewhere (a pod, CI): a one-line log record every ``every`` seconds and a last
    one at the end, so a long first scan is never silent; a short pass logs nothing.
    """

    BAR_WIDTH = 30

    def __init__(
        self,
        *,
        tty: bool,
        stream: TextIO | None = None,
        clock: Callable[[], float] | None = None,
        every: float = 10.0,
    ) -> None:
        import sys
        import time

        self.tty = tty
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock or time.monotonic
        self.every = every
        self.last = self.clock()
        self.logged = False

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            self._draw(done, total)
            return
        now = self.clock()
        if now - self.last >= self.every or (done == total and self.logged):
            self.last = now
            self.logged = True
            logging.getLogger("reconciler.progress").info(
                "polled %d of %d repositories", done, total
            )

    def _draw(self, done: int, total: int) -> None:
        if total < 20:  # only long scans are worth a display
            return
        filled = self.BAR_WIDTH * done // total
        bar = "#" * filled + "-" * (self.BAR_WIDTH - filled)
        end = "\n" if done == total else ""
        self.stream.write(f"\rpolling repositories [{bar}] {done}/{total}{end}")
        self.stream.flush()


def pass_progress() -> PassProgress:
    """The progress display for this process: a bar on a terminal, log records elsewhere."""
    import sys

    return PassProgress(tty=sys.stderr.isatty() and not os.environ.get("CI"))


OUTPUTS = ("table", "json", "yaml")
"""``-o/--output`` formats; the JSON (and YAML) shapes are documented in docs/cli.md."""


def output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``-o/--output table|json|yaml`` as kubectl, flux and kargo spell it; the older
    ``--json`` flag and ``--format`` option stay as aliases. The command receives
    ``output``."""

    @functools.wraps(func)
    def merged(
        *args: Any, output: str | None, json_flag: bool, format_alias: str | None, **kwargs: Any
    ) -> Any:
        chosen = output or format_alias or ("json" if json_flag else "table")
        return func(*args, output=chosen.lower(), **kwargs)

    choice = click.Choice(OUTPUTS, case_sensitive=False)
    merged = click.option(
        "--format", "format_alias", type=choice, default=None, help="Alias of -o/--output."
    )(merged)
    merged = click.option("--json", "json_flag", is_flag=True, help="Alias of -o json.")(merged)
    return click.option(
        "-o",
        "--output",
        type=choice,
        default=None,
        help="Print as a table (default), JSON or YAML; shapes in docs/cli.md.",
    )(merged)


def emit(data: Any, output: str, human: Callable[[], str]) -> None:
    """Print ``data`` as JSON or YAML, or ``human()`` for ``-o table``."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    elif output == "yaml":
        from reconciler.yamlio import dump_new

        click.echo(dump_new(json.loads(json.dumps(data, default=str))), nl=False)
    else:
        click.echo(human())


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
"""``--log-level`` choices (case-insensitive on the command line and in the env var)."""


def log_options(func: F) -> F:
    """--log-level and --log-format (RECONCILER_LOG_LEVEL, RECONCILER_LOG_FORMAT)."""
    func = click.option(
        "--log-format",
        envvar="RECONCILER_LOG_FORMAT",
        type=click.Choice(["auto", "json", "text"], case_sensitive=False),
        default="auto",
        show_default=True,
        show_envvar=True,
        help="JSON lines, plain text, or auto: JSON unless stderr is a terminal.",
    )(func)
    func = click.option(
        "--log-level",
        envvar="RECONCILER_LOG_LEVEL",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default="info",
        show_default=True,
        show_envvar=True,
    )(func)
    return func


def start_logging(log_level: str, log_format: str) -> None:
    from reconciler.logs import setup_logging

    setup_logging(log_level, json=None if log_format == "auto" else log_format == "json")


class ListenAddress(click.ParamType[tuple[str, int]]):
    """``HOST:PORT`` (``[::1]:8080`` for IPv6; an empty host means every address)."""

    name = "host:port"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        host, sep, port = str(value).rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.fail(f"{value!r} is not HOST:PORT with a port from 0 to 65535", param, ctx)
        if host.startswith("[") != host.endswith("]"):
            self.fail(f"{value!r}: an IPv6 host is written in brackets, [::1]:8080", param, ctx)
        # "[::1]:8080" spells an IPv6 address; the socket wants it without brackets.
        return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104  # serves its pod


class ShardSpec(click.ParamType[Any]):
    """``INDEX/COUNT``, or ``auto``: INDEX from the StatefulSet pod's ordinal (the
    number after the last ``-`` of ``$POD_NAME``, else of the host name) and COUNT
    from ``$RECONCILER_SHARD_COUNT`` (the chart sets both)."""

    name = "INDEX/COUNT|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from reconciler.reconcile import Shard

        if isinstance(value, Shard):
            return value
        text = str(value)
        try:
            if text == "auto":
                text = auto_shard(os.environ)
        except ValueError as exc:
            self.fail(f"auto: {exc}", param, ctx)
        index, _, count = text.partition("/")
        if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
            self.fail(f"{text!r} is not INDEX/COUNT with 0 <= INDEX < COUNT", param, ctx)
        return Shard.parse(text)


def shard_option(func: F) -> F:
    """--shard INDEX/COUNT or auto (RECONCILER_SHARD), for `run` and `once`."""
    return click.option(
        "--shard",
        envvar="RECONCILER_SHARD",
        show_envvar=True,
        type=ShardSpec(),
        default=None,
        help="INDEX/COUNT: only projects of this shard; `auto` in a StatefulSet.",
    )(func)


def auto_shard(env: Mapping[str, str]) -> str:
    """``INDEX/COUNT`` of a StatefulSet pod: INDEX is the pod's ordinal, COUNT the
    replica count that the chart passes as ``RECONCILER_SHARD_COUNT``."""
    import socket

    name = env.get("POD_NAME") or socket.gethostname()
    ordinal = name.rpartition("-")[2]
    count = env.get("RECONCILER_SHARD_COUNT", "")
    if not ordinal.isdigit():
        raise ValueError(f"pod name {name!r} does not end in a StatefulSet ordinal (-N)")
    if not count.isdigit():
        raise ValueError("RECONCILER_SHARD_COUNT must hold the number of shards")
    return f"{int(ordinal)}/{int(count)}"
