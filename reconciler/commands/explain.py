"""``reconciler explain PROJECT [--env ENV]``: every candidate version, accepted or rejected
and why; why each environment is or is not moving; recent trigger decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler.commands.common import (
    emit,
    exit_code,
    make_reconciler,
    output_option,
    repo_options,
)


@click.command("explain", help=__doc__)
@repo_options
@click.argument("project")
@click.option("--env", "environment", default=None)
@click.option("--limit", default=20, show_default=True, help="Rejected tags shown per package.")
@output_option
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    project: str,
    environment: str | None,
    limit: int,
    output: str,
) -> None:
    from reconciler.commands.status import project_status
    from reconciler.config import load_config

    reconciler = make_reconciler(repo, work_dir, branch)
    try:
        result = reconciler.run_pass(dry_run=True, only_projects={project})
        if result.config_error is None:
            config = load_config(reconciler.tree.root)
            statuses = project_status(
                config,
                reconciler.tree.root,
                config.projects[project],
                reconciler.options.injected.clock(),
            )
        else:
            statuses = []
            config = None
        history = reconciler.local.data.get("history", {})
        blocked = _render_problems(reconciler.tree.root, result, config, project)
    finally:
        reconciler.close()
    if output != "table":
        data = explanation(project, environment, result, statuses, history)
        data["cannotDeploy"] = [
            {"environment": env_name, "release": version, "problem": problem}
            for env_name, version, problem in blocked
            if not environment or env_name == environment
        ]
        data["packages"] = package_sources(config, project)
        emit(data, output, str)
        raise SystemExit(exit_code(result))
    _echo_packages(package_sources(config, project))
    _print_candidates(result, project, limit)
    for decision in result.decisions:
        if decision.project == project:
            click.echo(f"trigger {decision.trigger}: {decision.reason}")
            for entry in history.get(decision.trigger, [])[-5:]:
                click.echo(f"  {entry['at'][:19]}: {entry['reason']}")
    for row in statuses:
        if environment and row["environment"] != environment:
            continue
        why = "; ".join(([row["next"]] if row["next"] else []) + row["waiting"]) or "up to date"
        click.echo(f"{row['environment']}: runs {row['release'] or '(nothing)'}; {why}")
    for env_name, version, problem in blocked:
        if not environment or env_name == environment:
            click.echo(f"{env_name}: cannot deploy {version}: {problem}")
    if project in result.project_errors:
        click.echo(f"project skipped: {result.project_errors[project]}")
    raise SystemExit(exit_code(result))


def _print_candidates(result: Any, project: str, limit: int) -> None:
    """Per channel and package: the chosen tag, the accepted ones, the rejected ones."""
    for (proj, channel), packages in sorted(result.choices.items()):
        if proj != project:
            continue
        click.secho(f"channel {channel}", bold=True)
        for name, choice in sorted(packages.items()):
            if choice.error:
                click.echo(f"  {name}: feed failed: {choice.error}")
                continue
            selection = choice.selection
            click.echo(
                f"  {name}: chosen {choice.tag or '(none)'}"
                + (f" ({choice.digest})" if choice.digest else "")
            )
            if selection is None:
                continue
            if selection.accepted:
                click.echo("    accepted (best first): " + ", ".join(selection.accepted[:limit]))
            for candidate in selection.rejected[:limit]:
                click.echo(f"    rejected {candidate}")
            more = len(selection.rejected) - limit
            if more > 0:
                click.echo(f"    ... and {more} more rejected")


def _render_problems(
    root: Path, result: Any, config: Any, project: str
) -> list[tuple[str, str, str]]:
    """(environment, release, why) for each promotion the pass planned but could not
    render: a dry run writes no file, so rendering is tried in memory here."""
    from reconciler import environments, records

    if config is None or project not in config.projects:
        return []
    planned = {r.version: r for r in result.releases if r.project == project}
    problems = []
    for proj, env_name, version in result.promotions:
        if proj != project:
            continue
        release = planned.get(version) or records.read_release(root, project, version)
        if release is None:
            continue
        problem = environments.render_problem(root, config.projects[project], env_name, release)
        if problem:
            problems.append((env_name, version, problem))
    return problems


def explanation(
    project: str,
    environment: str | None,
    result: Any,
    statuses: list[dict[str, Any]],
    history: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The ``-o json`` shape of explain (docs/cli.md): per channel the candidates
    accepted and rejected with reasons, the trigger decisions with recent history,
    and each environment's status row."""
    plan = result.to_json(candidates=True)
    channels = [
        {"channel": t["channel"], "trigger": t["trigger"], "packages": t["packages"]}
        for t in plan["triggers"]
        if t["project"] == project
    ]
    triggers = [
        {
            "trigger": d.trigger,
            "reason": d.reason,
            "history": history.get(d.trigger, [])[-5:],
        }
        for d in result.decisions
        if d.project == project
    ]
    return {
        "project": project,
        "channels": channels,
        "triggers": triggers,
        "environments": [
            row for row in statuses if not environment or row["environment"] == environment
        ],
        "projectError": result.project_errors.get(project),
    }


def package_sources(config: Any, project: str) -> list[dict[str, str]]:
    """Each package of ``project`` with where it comes from: listed in the project
    file, or found in the manifests (file:line)."""
    if config is None or project not in config.projects:
        return []
    found = config.projects[project]
    return [
        {
            "name": p.name,
            "reference": p.manifest_name or p.repository,
            "feed": p.feed,
            "from": f"found at {p.found_at.file}:{p.found_at.line}"
            if p.found_at is not None
            else f"listed in {found.location.file}",
        }
        for p in found.packages
    ]


def _echo_packages(sources: list[dict[str, str]]) -> None:
    if sources:
        click.secho("packages", bold=True)
    for source in sources:
        where = f"from feed {source['feed']} ({source['from']})"
        click.echo(f"  {source['name']}: {source['reference']} {where}")
