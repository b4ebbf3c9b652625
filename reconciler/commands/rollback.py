"""``reconciler rollback PROJECT --env ENV [--to VERSION]``: redeploy an earlier release.

Without --to, the release the environment ran before its current one. A rollback is
the only way an environment moves backwards; automatic promotion will not re-deploy
the rolled-back-from release (only newer ones).
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import repo_options


@click.command("rollback", help=__doc__)
@repo_options
@click.argument("project")
@click.option("--env", "environment", required=True)
@click.option("--to", "version", default=None, help="Release to go back to.")
@click.option("--by", default=None, help="Who acts (default: $RECONCILER_ACTOR or login).")
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    project: str,
    environment: str,
    version: str | None,
    by: str | None,
) -> None:
    from reconciler.commands.manual import run_operation
    from reconciler.operations import actor, rollback

    operation = rollback(project, environment, version, by=by or actor())
    raise SystemExit(
        run_operation(repo, work_dir, branch, operation, f"rolled back {project} {environment}")
    )
