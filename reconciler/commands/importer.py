"""``reconciler import PEER [PATH]``: write a config repository from a peer's objects.

PATH is the GitOps repository (default ``.``); the config files are written into it
(``--output`` to write elsewhere), never over an existing file. ``--dry-run`` prints
them instead. Anything that could not be translated is a ``# NOT TRANSLATED:``
comment in the written files and is listed on stderr. See docs/migration-*.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from reconciler.commands.common import EXIT_INVALID, EXIT_OK
from reconciler.importers import Imported, render_files, write_files


def run_import(
    reader: Callable[[Path], Imported], path: Path, output: Path | None, dry_run: bool
) -> int:
    imported = reader(path)
    if not imported.projects:
        click.echo(f"nothing to import: no {imported.source} automation under {path}", err=True)
        return EXIT_INVALID
    return _write(render_files(imported), output or path, dry_run)


def _write(files: dict[str, str], root: Path, dry_run: bool) -> int:
    try:
        lines = write_files(root, files, dry_run=dry_run)
    except FileExistsError as error:
        click.echo(str(error), err=True)
        return EXIT_INVALID
    for line in lines:
        click.echo(line)
    untranslated = sum(text.count("# NOT TRANSLATED:") for text in files.values())
    if untranslated:
        click.echo(f"{untranslated} item(s) not translated (see the comments)", err=True)
    return EXIT_OK


_PATH = click.argument(
    "path", type=click.Path(exists=True, file_okay=False, path_type=Path), default="."
)
_OUTPUT = click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the config files here instead of into PATH.",
)
_DRY_RUN = click.option("--dry-run", is_flag=True, help="Print the files instead of writing them.")


@click.group("import", help=__doc__)
def command() -> None:
    pass


@command.command("flux")
@_PATH
@_OUTPUT
@_DRY_RUN
def flux(path: Path, output: Path | None, dry_run: bool) -> None:
    """ImageRepository, ImagePolicy and ImageUpdateAutomation objects under PATH."""
    from reconciler.importers.flux import import_flux

    raise SystemExit(run_import(import_flux, path, output, dry_run))


@command.command("octopus")
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_PATH
@_OUTPUT
@_DRY_RUN
def octopus(export: Path, path: Path, output: Path | None, dry_run: bool) -> None:
    """An Octopus project export (REST API JSON shapes) as a config repository in PATH."""
    from reconciler.importers.octopus import import_octopus

    try:
        files = import_octopus(export, path)
    except (ValueError, KeyError) as error:
        click.echo(f"cannot read the Octopus export {export}: {error}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    raise SystemExit(_write(files, output or path, dry_run))


@command.command("argocd-image-updater")
@_PATH
@_OUTPUT
@_DRY_RUN
def argocd_image_updater(path: Path, output: Path | None, dry_run: bool) -> None:
    """Argo CD Applications under PATH annotated for Argo CD Image Updater."""
    from reconciler.importers.argocd import import_argocd_image_updater

    raise SystemExit(run_import(import_argocd_image_updater, path, output, dry_run))
