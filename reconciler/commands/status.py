"""``reconciler status [PROJECT]``: environments x releases, and what is waiting and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler.commands.common import (
    EXIT_INVALID,
    EXIT_OK,
    emit,
    make_reconciler,
    output_option,
    repo_options,
)


def project_status(config: Any, root: Path, project: Any, now: Any) -> list[dict[str, Any]]:
    from reconciler import records
    from reconciler.lifecycle import current_release, decide, phase_of
    from reconciler.model import project_lifecycle
    from reconciler.operations import read_pins, release_states
    from reconciler.verdicts import recorded_verifications

    state = records.read_state(root, project.name)
    pins = read_pins(root, project.name)
    releases = release_states(state)
    waiting: dict[str, list[str]] = {}
    moving: dict[str, str] = {}
    lifecycles: dict[str, list[str]] = {}
    for channel in project.channels:
        lifecycles.setdefault(channel.lifecycle or project.lifecycle, []).append(channel.name)
    for name, channels in lifecycles.items():
        lifecycle = project_lifecycle(config.lifecycles[name], project)
        decision = decide(
            lifecycle,
            releases,
            state.history,
            now,
            pins={e: p.get("release") for e, p in pins.items()},
            channels=channels,
            verification=recorded_verifications(project, state.history),
        )
        for wait in decision.waiting:
            text = wait.reason if wait.release is None else f"{wait.release}: {wait.reason}"
            waiting.setdefault(wait.environment, []).append(text)
        for promotion in decision.promotions:
            moving[promotion.environment] = f"{promotion.release}: next pass ({promotion.reason})"
    rows = []
    lifecycle = project_lifecycle(config.lifecycles[project.lifecycle], project)
    for env in project.environments:
        history = state.history.get(env, [])
        last = history[-1] if history else None
        phase = phase_of(lifecycle, env)
        pin = pins.get(env)
        rows.append(
            {
                "project": project.name,
                "environment": env,
                "phase": phase.name if phase else None,
                "release": current_release(state.history, env),
                "deployedAt": records.iso(last.at) if last else None,
                "deployedBy": last.by if last else None,
                "pinned": pin,
                "blocked": dict(state.blocks),
                "next": moving.get(env),
                "waiting": waiting.get(env, []),
            }
        )
    return rows


@click.command("status", help=__doc__)
@repo_options
@click.argument("project", required=False)
@output_option
def command(
    repo: str, work_dir: Path | None, branch: str | None, project: str | None, output: str
) -> None:
    from reconciler.config import load_config
    from reconciler.errors import ConfigError

    reconciler = make_reconciler(repo, work_dir, branch)
    try:
        reconciler.tree.sync()
        try:
            config = load_config(reconciler.tree.root)
        except ConfigError as exc:
            click.echo(f"config invalid:\n{exc}", err=True)
            raise SystemExit(EXIT_INVALID) from None
        names = [project] if project else sorted(config.projects)
        rows: list[dict[str, Any]] = []
        for name in names:
            if name not in config.projects:
                click.echo(f"unknown project {name!r}", err=True)
                raise SystemExit(EXIT_INVALID)
            rows += project_status(
                config,
                reconciler.tree.root,
                config.projects[name],
                reconciler.options.injected.clock(),
            )
    finally:
        reconciler.close()
    emit(rows, output, lambda: status_table(rows))
    raise SystemExit(EXIT_OK)


def status_table(rows: list[dict[str, Any]]) -> str:
    """The table ``status`` prints, with the blocked releases under it."""
    from reconciler.commands.report import table

    body = []
    for r in rows:
        notes = list(r["waiting"])
        if r["next"]:
            notes.insert(0, r["next"])
        if r["pinned"]:
            pin = r["pinned"]
            notes.insert(0, f"PINNED by {pin.get('by', '?')}: {pin.get('reason', '')}")
        body.append(
            [
                r["project"],
                r["environment"],
                r["phase"] or "-",
                r["release"] or "-",
                (r["deployedAt"] or "-") + (f" by {r['deployedBy']}" if r["deployedBy"] else ""),
                "; ".join(notes) or "up to date",
            ]
        )
    lines = [table(body, ["PROJECT", "ENV", "PHASE", "RELEASE", "DEPLOYED", "STATUS"])]
    blocked = {(r["project"], v, why) for r in rows for v, why in r["blocked"].items()}
    lines += [f"blocked: {proj} {version}: {why}" for proj, version, why in sorted(blocked)]
    return "\n".join(lines)
