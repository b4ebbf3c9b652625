"""``reconciler history PROJECT [--env ENV]``: the audit trail, read from ``git log`` trailers."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.audit import entries
from reconciler.commands.common import EXIT_OK, emit, make_reconciler, output_option, repo_options

__all__ = ["command", "entries"]


@click.command("history", help=__doc__)
@repo_options
@click.argument("project")
@click.option("--env", "environment", default=None)
@output_option
@click.option("--limit", default=200, show_default=True, help="Commits to read at most.")
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    project: str,
    environment: str | None,
    output: str,
    limit: int,
) -> None:
    from reconciler.commands.report import table

    reconciler = make_reconciler(repo, work_dir, branch)
    try:
        reconciler.tree.sync()
        commits = reconciler.tree.log(
            paths=[f"state/{project}.yaml", f"releases/{project}", f"pins/{project}"],
            max_count=limit,
        )
    finally:
        reconciler.close()
    rows = entries(commits, project, environment)
    emit(
        rows,
        output,
        lambda: table(
            [[r["when"][:19], r["commit"][:10], r["by"], r["event"], r["detail"]] for r in rows],
            ["WHEN", "COMMIT", "BY", "EVENT", "DETAIL"],
        ),
    )
    raise SystemExit(EXIT_OK)
