"""The ``expect`` template of an http check: its variables, rendered by reconciler.templates.

Config is untrusted, so this is deliberately not ``str.format``: the variables are flat
keys, ``{version}`` (the release), ``{packages.<name>.version}`` and
``{packages.<name>.digest}``, looked up whole in a mapping, never as attributes; ``{{``
and ``}}`` are literal braces. Output is bounded by the template's length times the
longest value.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from reconciler.templates import TemplateError, names, parse

__all__ = ["MAX_TEMPLATE_LENGTH", "TemplateError", "render", "unknown_variables", "variables"]

MAX_TEMPLATE_LENGTH = 1024


def variables(
    version: str, packages: Mapping[str, tuple[str, str | None]]
) -> dict[str, str | None]:
    """The flat mapping of allowed keys; a digest is None when none was recorded."""
    values: dict[str, str | None] = {"version": version}
    for name, (package_version, digest) in packages.items():
        values[f"packages.{name}.version"] = package_version
        values[f"packages.{name}.digest"] = digest
    return values


def unknown_variables(template: str, packages: Collection[str]) -> list[str]:
    """Variables that are neither ``version`` nor a field of one of ``packages``."""
    known = variables("", {name: ("", "") for name in packages})
    return [name for name in names(template, MAX_TEMPLATE_LENGTH) if name not in known]


def render(template: str, version: str, packages: Mapping[str, tuple[str, str | None]]) -> str:
    """``template`` with its variables replaced; ``packages``: name -> (version, digest)."""
    values = variables(version, packages)
    for name in names(template, MAX_TEMPLATE_LENGTH):
        if name not in values:
            raise TemplateError(f"unknown variable {{{name}}}")
        if values[name] is None:
            raise TemplateError(f"{{{name}}} has no value (no digest recorded)")
    present = {name: value for name, value in values.items() if value is not None}
    parsed = parse(template, frozenset(present), max_length=MAX_TEMPLATE_LENGTH, repeat=True)
    return parsed.render(present)
