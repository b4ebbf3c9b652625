"""``reconciler once``: one pass: poll, release, render, commit and push."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.commands.common import exit_code, make_reconciler, repo_options, tty_progress


@click.command("once", help=__doc__)
@repo_options
@click.option("--shard", default=None, help="INDEX/COUNT: only projects of this shard.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--log-level", default="info", show_default=True)
def command(
    repo: str,
    work_dir: Path | None,
    branch: str | None,
    shard: str | None,
    as_json: bool,
    log_level: str,
) -> None:
    from reconciler.commands.report import describe
    from reconciler.logs import setup_logging
    from reconciler.reconcile import Shard

    setup_logging(log_level)
    reconciler = make_reconciler(
        repo,
        work_dir,
        branch,
        shard=Shard.parse(shard) if shard else None,
        progress=tty_progress(),
    )
    try:
        result = reconciler.run_pass()
    finally:
        reconciler.close()
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else describe(result))
    raise SystemExit(exit_code(result))
