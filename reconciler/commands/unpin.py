"""``reconciler unpin PROJECT --env ENV``: let the reconciler manage the environment again."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import repo_options


@click.command("unpin", help=__doc__)
@repo_options
@click.argument("project")
@click.option("--env", "environment", required=True)
@click.option("--by", default=None, help="Who acts (default: $RECONCILER_ACTOR or login).")
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    project: str,
    environment: str,
    by: str | None,
) -> None:
    from reconciler.commands.manual import run_operation
    from reconciler.operations import actor, pin

    operation = pin(project, environment, None, None, by=by or actor())
    raise SystemExit(
        run_operation(repo, work_dir, branch, operation, f"unpinned {project} {environment}")
    )
