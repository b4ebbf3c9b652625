"""Shared runner for the commands that change the repository on a person's behalf."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import EXIT_GIT, EXIT_INVALID, EXIT_OK, make_reconciler


def run_operation(
    repo: str, work_dir: Path | None, branch: str | None, operation: object, done: str
) -> int:
    from reconciler.errors import ConfigError, GitError, PromotionRefused
    from reconciler.operations import apply_change

    reconciler = make_reconciler(repo, work_dir, branch)
    try:
        sha = apply_change(reconciler, operation)  # type: ignore[arg-type]
    except PromotionRefused as exc:
        click.echo(f"refused: {exc.reason}", err=True)
        return EXIT_INVALID
    except ConfigError as exc:
        click.echo(f"config invalid:\n{exc}", err=True)
        return EXIT_INVALID
    except GitError as exc:
        click.echo(f"git error: {exc}", err=True)
        return EXIT_GIT
    finally:
        reconciler.close()
    click.echo(f"{done} (commit {sha[:12]})" if sha else "nothing to change")
    return EXIT_OK
