"""``reconciler once``: one pass: poll, release, render, commit and push."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.commands.common import (
    emit,
    exit_code,
    log_options,
    make_reconciler,
    output_option,
    pass_progress,
    repo_options,
    shard_option,
    start_logging,
)

if TYPE_CHECKING:
    from reconciler.reconcile import Shard


@click.command("once", help=__doc__)
@repo_options
@shard_option
@output_option
@log_options
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    shard: Shard | None,
    output: str,
    log_level: str,
    log_format: str,
) -> None:
    from reconciler.commands.report import describe

    start_logging(log_level, log_format)
    reconciler = make_reconciler(repo, work_dir, branch, shard=shard, progress=pass_progress())
    try:
        result = reconciler.run_pass()
    finally:
        reconciler.close()
    emit(result.to_json(), output, lambda: describe(result))
    raise SystemExit(exit_code(result))
