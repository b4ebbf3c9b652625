"""``reconciler pin PROJECT --env ENV [VERSION] --reason TEXT``: the reconciler never changes a
pinned environment. A pin is a file under pins/, so a pull request can pin too. With VERSION,
that release is deployed first."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import repo_options


@click.command("pin", help=__doc__)
@repo_options
@click.argument("project")
@click.argument("version", required=False)
@click.option("--env", "environment", required=True)
@click.option("--reason", required=True)
@click.option("--by", default=None, help="Who acts (default: $RECONCILER_ACTOR or login).")
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    project: str,
    version: str | None,
    environment: str,
    reason: str,
    by: str | None,
) -> None:
    from reconciler.commands.manual import run_operation
    from reconciler.operations import actor, pin

    operation = pin(project, environment, version, reason, by=by or actor())
    raise SystemExit(
        run_operation(repo, work_dir, branch, operation, f"pinned {project} {environment}")
    )
