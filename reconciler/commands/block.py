"""``reconciler block PROJECT VERSION --reason TEXT``: prevent a release from being promoted
further; the next release is considered instead."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import repo_options


@click.command("block", help=__doc__)
@repo_options
@click.argument("project")
@click.argument("version")
@click.option("--reason", required=True)
@click.option("--by", default=None, help="Who acts (default: $RECONCILER_ACTOR or login).")
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    project: str,
    version: str,
    reason: str,
    by: str | None,
) -> None:
    from reconciler.commands.manual import run_operation
    from reconciler.operations import actor, block

    operation = block(project, version, reason, by=by or actor())
    raise SystemExit(
        run_operation(repo, work_dir, branch, operation, f"blocked {project} {version}")
    )
