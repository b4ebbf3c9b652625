"""``reconciler schema``: print the JSON Schema (a copy is in reconciler/schema/)."""

from __future__ import annotations

import click


@click.command("schema", help=__doc__)
def command() -> None:
    from reconciler.schema import schema_json

    click.echo(schema_json(), nl=False)
