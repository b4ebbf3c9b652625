"""``reconciler plan``: poll the feeds and print what a pass would do; changes nothing."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import (
    emit,
    exit_code,
    make_reconciler,
    output_option,
    pass_progress,
    repo_options,
)


@click.command("plan", help=__doc__)
@repo_options
@output_option
@click.option("--project", "projects", multiple=True, help="Only these projects.")
def command(
    repo: str, work_dir: Path | None, branch: str | None, output: str, projects: tuple[str, ...]
) -> None:
    from reconciler.commands.report import describe

    reconciler = make_reconciler(repo, work_dir, branch, progress=pass_progress())
    try:
        result = reconciler.run_pass(dry_run=True, only_projects=set(projects) or None)
    finally:
        reconciler.close()
    emit(result.to_json(candidates=True), output, lambda: describe(result, dry_run=True))
    raise SystemExit(exit_code(result))
