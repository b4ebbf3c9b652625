"""``reconciler unblock PROJECT VERSION``: let a blocked release be promoted again."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import repo_options


@click.command("unblock", help=__doc__)
@repo_options
@click.argument("project")
@click.argument("version")
@click.option("--by", default=None, help="Who acts (default: $RECONCILER_ACTOR or login).")
def command(
    repo: str, work_dir: Path | None, branch: str | None, project: str, version: str, by: str | None
) -> None:
    from reconciler.commands.manual import run_operation
    from reconciler.operations import actor, block

    operation = block(project, version, None, by=by or actor())
    raise SystemExit(
        run_operation(repo, work_dir, branch, operation, f"unblocked {project} {version}")
    )
