"""``reconciler init [PATH]``: scaffold a config repository from an existing GitOps repo.

Finds the Kustomize apps with an overlay per environment, their container images,
and proposes projects, environments (dev -> test/staging -> prod by name), a
lifecycle (automatic until prod, prod manual), a stable semver channel and one
trigger per project, as commented YAML that validates. Written into PATH (or
``--output``), never over an existing file; ``--dry-run`` prints it. Then:
``reconciler validate`` and ``reconciler plan``. See docs/migration-init.md.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.importer import run_import


@click.command("init", help=__doc__)
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the config files here instead of into PATH.",
)
@click.option("--dry-run", is_flag=True, help="Print the files instead of writing them.")
def command(path: Path, output: Path | None, dry_run: bool) -> None:
    from reconciler.importers.init import scaffold

    raise SystemExit(run_import(scaffold, path, output, dry_run))
