"""Shared runner for the commands that change the repository on a person's behalf."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import make_reconciler
from reconciler.errors import ExitCode, ReconcilerError, exit_for


def run_operation(
    repo: str, work_dir: Path | None, branch: str | None, operation: object, done: str
) -> int:
    from reconciler.publish import apply_change

    reconciler = make_reconciler(repo, work_dir, branch)
    try:
        sha = apply_change(
            reconciler.tree,
            operation,  # type: ignore[arg-type]
            clock=reconciler.options.injected.clock,
            configure=reconciler.configure_tree,
        )
    except ReconcilerError as exc:
        code, message = exit_for(exc)
        click.echo(message, err=True)
        return code
    finally:
        reconciler.close()
    click.echo(f"{done} (commit {sha[:12]})" if sha else "nothing to change")
    return ExitCode.OK
