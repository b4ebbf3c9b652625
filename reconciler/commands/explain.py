"""``reconciler explain PROJECT [--env ENV]``: every candidate version, accepted or rejected
and why; why each environment is or is not moving; recent trigger decisions."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import exit_code, make_reconciler, repo_options


@click.command("explain", help=__doc__)
@repo_options
@click.argument("project")
@click.option("--env", "environment", default=None)
@click.option("--limit", default=20, show_default=True, help="Rejected tags shown per package.")
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    project: str,
    environment: str | None,
    limit: int,
) -> None:
    from reconciler.commands.status import project_status
    from reconciler.config import load_config

    reconciler = make_reconciler(repo, work_dir, branch)
    try:
        result = reconciler.run_pass(dry_run=True, only_projects={project})
        if result.config_error is None:
            config = load_config(reconciler.tree.root)
            statuses = project_status(
                config, reconciler.tree.root, config.projects[project], reconciler.options.clock()
            )
        else:
            statuses = []
        history = reconciler.local.data.get("history", {})
    finally:
        reconciler.close()
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
    raise SystemExit(exit_code(result))
