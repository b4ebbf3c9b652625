"""``reconciler validate [PATH]``: check a config repository, for the CI of pull requests
that edit it (pre-commit hook, GitHub Action and GitLab CI job in docs/ci.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.commands.common import EXIT_INVALID, EXIT_OK, emit, output_option

if TYPE_CHECKING:
    from reconciler.errors import Problem


def check(path: Path) -> tuple[list[Problem], dict[str, int] | None]:
    """Every problem of the config repository at ``path``, and what it holds."""
    from reconciler.config import load_config, manifest_problems
    from reconciler.errors import ConfigError, Problem

    try:
        config = load_config(path)
    except ConfigError as exc:
        return exc.problems, None
    problems = manifest_problems(path, config)
    counts = {
        "feeds": len(config.feeds),
        "lifecycles": len(config.lifecycles),
        "projects": len(config.projects),
        "triggers": len(config.triggers),
    }
    if counts["projects"]:
        return problems, counts
    # An empty or unrelated directory is no config repository: saying "ok" there
    # would let a CI job that checks out the wrong path pass.
    why = "not a config repository: no projects/<name>/project.yaml found"
    return [Problem(str(path), 0, "", why)], counts


def report(path: Path, problems: list[Problem], counts: dict[str, int] | None) -> dict[str, Any]:
    """The ``-o json`` shape (docs/cli.md)."""
    return {
        "ok": not problems,
        "path": str(path),
        "counts": counts,
        "problems": [
            {"file": p.file, "line": p.line, "key": p.key_path, "message": p.message}
            for p in problems
        ],
    }


@click.command("validate", help=__doc__)
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@output_option
def command(path: Path, output: str) -> None:
    problems, counts = check(path)
    if output != "table":
        emit(report(path, problems, counts), output, str)
    elif problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(problems)} problem(s) found", err=True)
    elif counts is not None:
        click.echo(
            f"ok: {counts['feeds']} feed(s), {counts['lifecycles']} lifecycle(s), "
            f"{counts['projects']} project(s), {counts['triggers']} trigger(s)"
        )
    raise SystemExit(EXIT_INVALID if problems else EXIT_OK)
