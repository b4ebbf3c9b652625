"""``reconciler plan``: poll the feeds and print what a pass would do; changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.commands.common import exit_code, make_reconciler, repo_options, tty_progress


@click.command("plan", help=__doc__)
@repo_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--project", "projects", multiple=True, help="Only these projects.")
def command(
    repo: str, work_dir: Path | None, branch: str | None, fmt: str, projects: tuple[str, ...]
) -> None:
    from reconciler.commands.report import describe

    reconciler = make_reconciler(repo, work_dir, branch, progress=tty_progress())
    try:
        result = reconciler.run_pass(dry_run=True, only_projects=set(projects) or None)
    finally:
        reconciler.close()
    if fmt == "json":
        click.echo(json.dumps(result.to_json(candidates=True), indent=2))
    else:
        click.echo(describe(result, dry_run=True))
    raise SystemExit(exit_code(result))
