"""``reconciler promote PROJECT VERSION --to ENV``: a manual approval, as a commit.

Checks the lifecycle first (phase open, not blocked, not pinned, not frozen) and
refuses with the reason, exit code 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import repo_options


@click.command("promote", help=__doc__)
@repo_options
@click.argument("project")
@click.argument("version")
@click.option("--to", "environment", required=True, help="Target environment.")
@click.option("--override-freeze", is_flag=True, help="Deploy during a freeze window (recorded).")
@click.option("--by", default=None, help="Who approves (default: $RECONCILER_ACTOR or login).")
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    project: str,
    version: str,
    environment: str,
    override_freeze: bool,
    by: str | None,
) -> None:
    from reconciler.commands.manual import run_operation
    from reconciler.operations import actor, promote

    operation = promote(
        project, version, environment, by=by or actor(), override_freeze=override_freeze
    )
    raise SystemExit(
        run_operation(
            repo, work_dir, branch, operation, f"promoted {project} {version} to {environment}"
        )
    )
