"""``reconciler validate [PATH]``: meant for the CI of pull requests that edit config."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import EXIT_INVALID, EXIT_OK


def validate(path: Path) -> int:
    from reconciler.config import load_config
    from reconciler.errors import ConfigError

    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) found", err=True)
        return EXIT_INVALID
    click.echo(
        f"ok: {len(config.feeds)} feed(s), {len(config.lifecycles)} lifecycle(s), "
        f"{len(config.projects)} project(s), {len(config.triggers)} trigger(s)"
    )
    return EXIT_OK


@click.command("validate", help=__doc__)
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
def command(path: Path) -> None:
    raise SystemExit(validate(path))
