"""The dashboard: the release matrix and its detail pages as server-rendered HTML (issue 23).

Read-only. After every pass the sidecar builds a :class:`Snapshot` from what the pass
already holds (its result, the poller's feed records, the state files, release records
and ``git log`` of the local work tree), and page views render that snapshot: a page
view sends no registry or Git request. Jinja2 renders with autoescaping on, so every
string from config, Git or a registry (names, tags, reasons, commit messages, feed
errors) is text, never markup. Live refresh is Server-Sent Events (``/events``): the
page reloads itself when a pass ends. The one other script counts down soak deadlines
that the server already wrote as text. No CDN.

Pages (``render_path``): ``/`` the matrix, ``/releases/<project>/<version>``,
``/environments/<project>/<environment>`` (history), ``/feeds`` (feed health).
The one action, "propose promotion", is ``reconciler.dashboard_actions``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from reconciler.model import TENANT_SEPARATOR

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "Cell",
    "Dashboard",
    "EnvironmentHistory",
    "Event",
    "FeedHealth",
    "Page",
    "ReleaseView",
    "Row",
    "Snapshot",
    "render",
    "snapshot_from",
    "snapshot_of",
]

LOG_LIMIT = 300
"""Commits of ``git log`` (over state/, releases/, pins/) a snapshot reads for history."""
RECENT_RELEASES = 10
"""Newest releases per project with a page, besides those an environment runs."""


@dataclass(frozen=True)
class Cell:
    """One project x environment: what runs there and in which state.

    ``proposable``: a release waiting for a manual promotion here, which the dashboard
    may propose as a pull request; ``proposal``: the open proposal, as text."""

    environment: str
    release: str | None
    state: str  # verified | pending | failed | deployed | waiting | not deployed
    reasons: tuple[str, ...] = ()
    proposable: str | None = None
    proposal: str | None = None

    @property
    def column(self) -> str:
        """The matrix column: a tenant's ``prod@acme`` is in column ``prod``."""
        return self.environment.partition(TENANT_SEPARATOR)[0]


@dataclass(frozen=True)
class Row:
    """A project's row, or a sub-row of one of its tenants (``tenant`` set)."""

    project: str
    cells: tuple[Cell, ...]
    tenant: str | None = None


@dataclass(frozen=True)
class Event:
    """One audit event from a commit's trailers (see ``reconciler.audit``)."""

    when: datetime
    commit: str
    url: str | None  # the commit's page on the Git host; None when unknown
    by: str
    event: str  # release | deployed | verified | failed | pinned | ...
    detail: str
    subject: str


@dataclass(frozen=True)
class ReleaseView:
    """A release page: the immutable record, where it runs, and its commits."""

    project: str
    version: str
    channel: str
    trigger: str | None
    created: datetime
    packages: tuple[
        tuple[str, str, str, str, str | None], ...
    ]  # name, kind, source, version, digest
    running_in: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Deployed:
    """One deployment from the state file: who, when and how."""

    release: str
    at: datetime
    by: str
    how: str  # automatic | manual
    verification: str | None = None
    verification_reason: str = ""


@dataclass(frozen=True)
class EnvironmentHistory:
    project: str
    environment: str
    deployments: tuple[Deployed, ...] = ()  # newest first
    events: tuple[Event, ...] = ()  # newest first


@dataclass(frozen=True)
class FeedHealth:
    """A feed as the last passes saw it (wall-clock times as aware datetimes)."""

    name: str
    type: str
    asked_at: datetime | None = None
    answered_at: datetime | None = None
    error: str | None = None
    retry_after_until: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything a page shows, frozen at the end of a pass."""

    rows: tuple[Row, ...] = ()
    environments: tuple[str, ...] = ()
    feed_errors: tuple[tuple[str, str], ...] = ()  # (feed, message)
    retry_after: tuple[tuple[str, float], ...] = ()  # (feed, seconds)
    finished: datetime | None = None
    commit: str | None = None
    commit_url: str | None = None
    releases: Mapping[tuple[str, str], ReleaseView] = field(default_factory=dict)
    histories: Mapping[tuple[str, str], EnvironmentHistory] = field(default_factory=dict)
    feeds: tuple[FeedHealth, ...] = ()
    can_propose: bool = False  # a Git host token and an authentication are configured


def _cell(env: str, history: list[Any], verifies: bool, reasons: list[str]) -> Cell:
    last = history[-1] if history else None
    if last is None:
        return Cell(env, None, "waiting" if reasons else "not deployed", tuple(reasons))
    state = (last.verification or "pending") if verifies else "deployed"
    return Cell(env, last.release, state, tuple(reasons))


def snapshot_from(config: Any, root: Path, result: Any, *, now: datetime | None = None) -> Snapshot:
    """The matrix of ``config``'s projects after the pass ``result`` (a PassResult);
    reads only the state files of the work tree at ``root``. (:func:`snapshot_of` adds
    the detail pages.)"""
    from reconciler import records

    waiting: dict[tuple[str, str], list[str]] = {}
    for project, env, reason in result.waiting:
        waiting.setdefault((project, env), []).append(reason)
    environments: list[str] = []
    rows = []
    for name, project in sorted(config.projects.items()):
        state = records.read_state(root, name)
        by_tenant: dict[str | None, list[Cell]] = {None: []}
        for env_name, env in project.environments.items():
            column, _, tenant = env_name.partition(TENANT_SEPARATOR)
            if column not in environments:
                environments.append(column)
            history = state.history.get(env_name, [])
            reasons = waiting.get((name, env_name), [])
            cell = _cell(env_name, history, env.verify is not None, reasons)
            by_tenant.setdefault(tenant or None, []).append(cell)
        rows.append(Row(name, tuple(by_tenant.pop(None))))
        rows.extend(Row(name, tuple(by_tenant[t]), t) for t in sorted(t for t in by_tenant if t))
    return Snapshot(
        rows=tuple(rows),
        environments=tuple(environments),
        feed_errors=tuple(sorted((f, m) for f, (_, m) in result.failed_feeds.items())),
        retry_after=tuple(sorted(result.retry_after.items())),
        finished=now or datetime.now(UTC),
        commit=result.commit,
    )


def _at(wall: float | None) -> datetime | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC)


def _events(rows: Iterable[Mapping[str, Any]], link: Callable[[str], str | None]) -> list[Event]:
    return [
        Event(
            datetime.fromisoformat(r["when"]),
            r["commit"],
            link(r["commit"]),
            r["by"],
            r["event"],
            r["detail"],
            r["subject"],
        )
        for r in rows
    ]


def _commits_by_project(commits: Sequence[Any]) -> dict[str, list[Any]]:
    """Each project's commits among ``commits`` (those with an event trailer naming it)."""
    from reconciler.audit import EVENT_TRAILERS

    out: dict[str, list[Any]] = {}
    for commit in commits:
        named = {
            value.split()[0]
            for key in EVENT_TRAILERS
            for value in commit.trailers.get(key, [])
            if value.split()
        }
        for project in named:
            out.setdefault(project, []).append(commit)
    return out


def _release_view(
    root: Path,
    project: str,
    version: str,
    running_in: tuple[str, ...],
    events: list[Event],
    known: Mapping[tuple[str, str], ReleaseView],
) -> ReleaseView | None:
    """The release page's data; the record is read once (records are immutable)."""
    from reconciler import records

    mine = tuple(e for e in events if version in e.detail.split())
    before = known.get((project, version))
    if before is not None:
        return replace(before, running_in=running_in, events=mine)
    release = records.read_release(root, project, version)
    if release is None:
        return None
    packages = tuple((p.name, p.kind, p.source, p.version, p.digest) for p in release.packages)
    return ReleaseView(
        project,
        version,
        release.channel,
        release.trigger,
        release.created,
        packages,
        running_in,
        mine,
    )


@dataclass(frozen=True)
class PassSources:
    """What :func:`snapshot_of` reads besides the config and the pass result: kept
    bookkeeping of the reconciler, all local (no network)."""

    root: Path
    commits: Sequence[Any] = ()  # gitoutput.CommitInfo, newest first
    repo_url: str = ""
    host_kind: str | None = None  # RECONCILER_GIT_HOST_KIND
    feed_polls: Mapping[str, Any] = field(default_factory=dict)  # polling.FeedPoll by feed
    retry_after: Mapping[str, float] = field(default_factory=dict)  # feed -> wall deadline
    pull_requests: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    can_propose: bool = False


def snapshot_of(
    config: Any,
    result: Any,
    sources: PassSources,
    *,
    previous: Snapshot | None = None,
    now: datetime | None = None,
) -> Snapshot:
    """The whole dashboard after a pass: the matrix, release pages, each environment's
    history and feed health. ``previous``: the last snapshot, whose release records are
    reused (they are immutable)."""
    from reconciler import records
    from reconciler.audit import entries
    from reconciler.pullrequests.urls import commit_web_url

    root = sources.root
    base = snapshot_from(config, root, result, now=now)
    manual = {(p, e): v for p, e, v in result.manual}
    links: dict[str, str | None] = {}

    def link(sha: str) -> str | None:
        if sha not in links:
            links[sha] = commit_web_url(sources.repo_url, sha, sources.host_kind)
        return links[sha]

    by_project = _commits_by_project(sources.commits)
    known = previous.releases if previous is not None else {}
    releases: dict[tuple[str, str], ReleaseView] = {}
    histories: dict[tuple[str, str], EnvironmentHistory] = {}
    rows = []
    for row in base.rows:
        project = row.project
        commits = by_project.get(project, [])
        state = records.read_state(root, project)
        cells = []
        for cell in row.cells:
            env = cell.environment
            proposal = sources.pull_requests.get(f"{project}/{env}")
            cells.append(
                replace(
                    cell,
                    proposable=manual.get((project, env)),
                    proposal=(
                        f"pull request #{proposal['number']} for {proposal['release']}"
                        if proposal and proposal.get("state") == "open"
                        else None
                    ),
                )
            )
            deployments = tuple(
                Deployed(
                    d.release,
                    d.at,
                    d.by,
                    "automatic" if d.automatic else "manual",
                    d.verification,
                    d.verification_reason,
                )
                for d in reversed(state.history.get(env, []))
            )
            histories[(project, env)] = EnvironmentHistory(
                project, env, deployments, tuple(_events(entries(commits, project, env), link))
            )
        rows.append(replace(row, cells=tuple(cells)))
        project_events = _events(entries(commits, project, None), link)
        running: dict[str, list[str]] = {}
        for cell in row.cells:
            if cell.release is not None:
                running.setdefault(cell.release, []).append(cell.environment)
        wanted = list(running) + [r.version for r in state.recent[-RECENT_RELEASES:]]
        for version in dict.fromkeys(wanted):
            view = _release_view(
                root, project, version, tuple(running.get(version, ())), project_events, known
            )
            if view is not None:
                releases[(project, version)] = view
    feeds = tuple(
        FeedHealth(
            name,
            feed.type,
            _at(getattr(sources.feed_polls.get(name), "asked_at", None)),
            _at(getattr(sources.feed_polls.get(name), "answered_at", None)),
            getattr(sources.feed_polls.get(name), "error", None)
            or dict(base.feed_errors).get(name),
            _at(sources.retry_after.get(name)),
        )
        for name, feed in sorted(config.feeds.items())
    )
    return replace(
        base,
        rows=tuple(rows),
        commit_url=link(base.commit) if base.commit else None,
        releases=releases,
        histories=histories,
        feeds=feeds,
        can_propose=sources.can_propose,
    )


def snapshot_after_pass(
    reconciler: Any, result: Any, previous: Snapshot | None = None, *, can_propose: bool = False
) -> Snapshot:
    """:func:`snapshot_of` from a ``reconcile.Reconciler`` after its pass ``result``:
    reads its work tree (files and a local ``git log``) and its kept bookkeeping."""
    import os

    from reconciler.errors import GitError
    from reconciler.pullrequests import ENV_HOST_KIND

    with reconciler.work_lock:  # not while a proposal commits and resets the tree
        settings = reconciler.options.settings
        try:
            commits = reconciler.tree.log(paths=["state", "releases", "pins"], max_count=LOG_LIMIT)
        except GitError:
            commits = []
        sources = PassSources(
            root=reconciler.tree.root,
            commits=commits,
            repo_url=settings.repo_url,
            host_kind=(settings.git_env or os.environ).get(ENV_HOST_KIND) or None,
            feed_polls=dict(reconciler.poller.feed_polls),
            retry_after=dict(reconciler.local.data.get("retryAfter", {})),
            pull_requests={
                k: dict(v) for k, v in reconciler.local.data.get("pullRequests", {}).items()
            },
            can_propose=can_propose,
        )
        return snapshot_of(reconciler.last_config, result, sources, previous=previous)


# --------------------------------------------------------------------------- rendering

_DEADLINE = re.compile(r"^(?P<head>.* until )(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)(?P<tail>.*)$")


def deadline_parts(reason: str) -> tuple[str, str, str] | None:
    """``("soaking in dev until ", "2026-01-01T00:30:00Z", "")`` for a reason with a
    deadline (soak, freeze), so the page can count down to it; None otherwise."""
    match = _DEADLINE.match(reason)
    return (match["head"], match["at"], match["tail"]) if match else None


@lru_cache(maxsize=4096)
def _segment(value: str) -> str:
    """One URL path segment (names from config may hold any character; the same names
    recur on every page, hence the cache)."""
    return quote(value, safe="")


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


@cache
def _environment() -> jinja2.Environment:
    """The template environment, made on the first page (Jinja2 loads only when serving)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("webpages")),
        autoescape=True,  # every value is text: names, tags and reasons come from outside
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["seg"] = _segment
    environment.filters["when"] = _when
    environment.globals["deadline_parts"] = deadline_parts
    environment.globals["log_limit"] = LOG_LIMIT
    return environment


@dataclass(frozen=True)
class Page:
    """A rendered page: its status and HTML."""

    status: int
    html: str


def render(snapshot: Snapshot, template: str = "matrix.html", **values: Any) -> str:
    """The page ``template`` for ``snapshot`` (the matrix by default). ``csrf``: the
    token the page's forms carry; ``login``: offer to sign in; ``refused`` and
    ``proposed``: what an action answered."""
    for name in ("csrf", "refused", "proposed", "login"):
        values.setdefault(name, "")
    return _environment().get_template(template).render(snap=snapshot, **values)


def render_path(snapshot: Snapshot, path: str, **values: Any) -> Page | None:
    """The page at URL ``path`` (without the query), or None when no page lives there."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if not parts:
        return Page(200, render(snapshot, **values))
    if parts == ["feeds"]:
        return Page(200, render(snapshot, "feeds.html", **values))
    # /releases/<project>/<version> and /environments/<project>/<environment>
    details: dict[str, tuple[Mapping[tuple[str, str], Any], str, str, str]] = {
        "releases": (snapshot.releases, "release.html", "release", "release {} {}"),
        "environments": (snapshot.histories, "environment.html", "history", "environment {}/{}"),
    }
    if len(parts) == 3 and parts[0] in details:
        found, template, name, what = details[parts[0]]
        view = found.get((parts[1], parts[2]))
        if view is None:
            missing = what.format(parts[1], parts[2])
            return Page(404, render(snapshot, "missing.html", what=missing, **values))
        return Page(200, render(snapshot, template, **{name: view}, **values))
    return None


@dataclass
class Dashboard:
    """The latest snapshot, shared between the pass thread and request threads.

    ``wait_for_change`` lets an SSE stream sleep until the next pass; ``version``
    counts snapshots.
    """

    snapshot: Snapshot = field(default_factory=Snapshot)
    version: int = 0
    actions_on: bool = False  # "propose promotion" is configured (snapshots say so)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def update(self, snapshot: Snapshot) -> None:
        with self._changed:
            self.snapshot = snapshot
            self.version += 1
            self._changed.notify_all()

    def current(self) -> Snapshot:
        with self._changed:
            return self.snapshot

    def page(self, path: str = "/", **values: Any) -> Page | None:
        """The page at ``path`` from the latest snapshot (None: no such page)."""
        return render_path(self.current(), path, **values)

    def note_proposal(self, project: str, environment: str, text: str) -> None:
        """Show a proposal just opened in its cell (until the next pass says it too).
        Open pages are not told (no event): a reload in the middle of the proposing
        form's own answer would hide that answer."""
        with self._changed:
            snapshot = self.snapshot
            rows = tuple(
                replace(
                    row,
                    cells=tuple(
                        replace(c, proposal=text) if c.environment == environment else c
                        for c in row.cells
                    ),
                )
                if row.project == project
                else row
                for row in snapshot.rows
            )
            self.snapshot = replace(snapshot, rows=rows)

    def proposable(self, project: str, environment: str) -> str | None:
        """The release the latest snapshot says may be proposed for the cell."""
        for row in self.current().rows:
            for cell in row.cells:
                if row.project == project and cell.environment == environment:
                    return cell.proposable if cell.proposal is None else None
        return None

    def wait_for_change(self, seen: int, timeout: float) -> int:
        """The version after ``seen`` once there is one, or ``seen`` after ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen, timeout=timeout)
            return self.version


def rows_for_bench(projects: int, environments: Iterable[str]) -> Snapshot:
    """A synthetic snapshot (benchmarks): ``projects`` rows over ``environments``, a
    release page per cell with three packages and a history per cell."""
    envs = tuple(environments)
    created = datetime(2026, 1, 1, tzinfo=UTC)
    rows = tuple(
        Row(
            f"project-{i:03d}",
            tuple(
                Cell(
                    env,
                    f"1.{i}.{j}",
                    ("verified", "pending", "failed")[j % 3],
                    (f"soaking in dev until 2026-01-01T00:0{j}:00Z",),
                )
                for j, env in enumerate(envs)
            ),
        )
        for i in range(projects)
    )
    releases = {
        (row.project, cell.release): ReleaseView(
            row.project,
            cell.release,
            "stable",
            f"{row.project}-images",
            created,
            tuple(
                (
                    f"pkg{k}",
                    "image",
                    f"registry.example/{row.project}/pkg{k}",
                    cell.release,
                    "sha256:" + f"{k}" * 64,
                )
                for k in range(3)
            ),
            (cell.environment,),
            tuple(
                Event(
                    created,
                    f"{k:040x}",
                    f"https://github.com/acme/config/commit/{k:040x}",
                    "reconciler",
                    "deployed",
                    f"{cell.release} {cell.environment}",
                    f"reconciler: deploy {row.project}",
                )
                for k in range(5)
            ),
        )
        for row in rows
        for cell in row.cells
        if cell.release is not None
    }
    histories = {
        (row.project, cell.environment): EnvironmentHistory(row.project, cell.environment)
        for row in rows
        for cell in row.cells
    }
    return Snapshot(
        rows=rows,
        environments=envs,
        finished=datetime.now(UTC),
        releases=releases,
        histories=histories,
    )
