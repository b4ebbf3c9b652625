"""The dashboard: the release matrix as server-rendered HTML (issue 23).

Read-only. After every pass the sidecar builds a :class:`Snapshot` from what the pass
already holds (its result and the state files in the work tree), and page views
render that snapshot: a page view sends no registry or Git request. Jinja2 renders
with autoescaping on, so every string from config, Git or a registry (names, tags,
reasons) is text, never markup. Live refresh is Server-Sent Events (``/events``): the
page reloads itself when a pass ends; no JavaScript beyond that, no CDN.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

__all__ = ["Cell", "Dashboard", "Row", "Snapshot", "render", "snapshot_from"]


@dataclass(frozen=True)
class Cell:
    """One project x environment: what runs there and in which state."""

    environment: str
    release: str | None
    state: str  # verified | pending | failed | deployed | waiting | not deployed
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    project: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Snapshot:
    """Everything a page shows, frozen at the end of a pass."""

    rows: tuple[Row, ...] = ()
    environments: tuple[str, ...] = ()
    feed_errors: tuple[tuple[str, str], ...] = ()  # (feed, message)
    retry_after: tuple[tuple[str, float], ...] = ()  # (feed, seconds)
    finished: datetime | None = None
    commit: str | None = None


def _cell(env: str, history: list[Any], verifies: bool, reasons: list[str]) -> Cell:
    last = history[-1] if history else None
    if last is None:
        return Cell(env, None, "waiting" if reasons else "not deployed", tuple(reasons))
    state = (last.verification or "pending") if verifies else "deployed"
    return Cell(env, last.release, state, tuple(reasons))


def snapshot_from(config: Any, root: Path, result: Any, *, now: datetime | None = None) -> Snapshot:
    """A snapshot of ``config``'s projects after the pass ``result`` (a PassResult);
    reads only the state files of the work tree at ``root``."""
    from reconciler import records

    waiting: dict[tuple[str, str], list[str]] = {}
    for project, env, reason in result.waiting:
        waiting.setdefault((project, env), []).append(reason)
    environments: list[str] = []
    rows = []
    for name, project in sorted(config.projects.items()):
        state = records.read_state(root, name)
        cells = []
        for env_name, env in project.environments.items():
            if env_name not in environments:
                environments.append(env_name)
            history = state.history.get(env_name, [])
            reasons = waiting.get((name, env_name), [])
            cells.append(_cell(env_name, history, env.verify is not None, reasons))
        rows.append(Row(name, tuple(cells)))
    return Snapshot(
        rows=tuple(rows),
        environments=tuple(environments),
        feed_errors=tuple(sorted((f, m) for f, (_, m) in result.failed_feeds.items())),
        retry_after=tuple(sorted(result.retry_after.items())),
        finished=now or datetime.now(UTC),
        commit=result.commit,
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>reconciler</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.4rem .6rem;vertical-align:top}
.verified,.deployed{background:#e6f4ea}.pending,.waiting{background:#fff8e1}
.failed{background:#fde7e9}.reason{font-size:.85em;color:#555;display:block}
</style></head><body>
<h1>Releases</h1>
<p id="updated">{% if snap.finished %}Last pass
{{ snap.finished.strftime("%Y-%m-%d %H:%M:%S") }} UTC
{% if snap.commit %}(commit {{ snap.commit[:10] }}){% endif %}{% else %}No pass yet{% endif %}</p>
<table id="matrix"><thead><tr><th>project</th>
{% for env in snap.environments %}<th>{{ env }}</th>{% endfor %}</tr></thead><tbody>
{% for row in snap.rows %}<tr><th>{{ row.project }}</th>
{% set cells = row.cells | map(attribute="environment") | list %}
{% for env in snap.environments %}{% if env in cells %}{% set cell = row.cells[cells.index(env)] %}
<td class="{{ cell.state | replace(' ', '-') }}" data-state="{{ cell.state }}">
<b>{{ cell.release or "—" }}</b> <span class="state">{{ cell.state }}</span>
{% for reason in cell.reasons %}<span class="reason">{{ reason }}</span>{% endfor %}</td>
{% else %}<td></td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody></table>
<h2>Feeds</h2>
{% if snap.feed_errors %}<ul id="feeds">{% for feed, message in snap.feed_errors %}
<li><b>{{ feed }}</b>: {{ message }}</li>{% endfor %}</ul>
{% else %}<p id="feeds">All feeds answered in the last pass.</p>{% endif %}
<script>new EventSource("/events").onmessage = function () { location.reload(); };</script>
</body></html>
"""

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.DictLoader({"page.html": _PAGE}),
    autoescape=True,  # every value is text: names, tags and reasons come from outside
    undefined=jinja2.StrictUndefined,
)


def render(snapshot: Snapshot) -> str:
    """The dashboard page for ``snapshot``."""
    return _ENVIRONMENT.get_template("page.html").render(snap=snapshot)


@dataclass
class Dashboard:
    """The latest snapshot, shared between the pass thread and request threads.

    ``wait_for_change`` lets an SSE stream sleep until the next pass; ``version``
    counts snapshots.
    """

    snapshot: Snapshot = field(default_factory=Snapshot)
    version: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def update(self, snapshot: Snapshot) -> None:
        with self._changed:
            self.snapshot = snapshot
            self.version += 1
            self._changed.notify_all()

    def page(self) -> str:
        with self._changed:
            snapshot = self.snapshot
        return render(snapshot)

    def wait_for_change(self, seen: int, timeout: float) -> int:
        """The version after ``seen`` once there is one, or ``seen`` after ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen, timeout=timeout)
            return self.version


def rows_for_bench(projects: int, environments: Iterable[str]) -> Snapshot:
    """A synthetic snapshot (benchmarks): ``projects`` rows over ``environments``."""
    envs = tuple(environments)
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
    return Snapshot(rows=rows, environments=envs, finished=datetime.now(UTC))
