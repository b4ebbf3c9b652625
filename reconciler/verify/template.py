"""The ``expect`` template of an http check: plain text with a few named variables.

Config is untrusted, so this is deliberately not ``str.format``: no attribute access,
no format specs, no expressions. The only variables are ``{version}`` (the release),
``{packages.<name>.version}`` and ``{packages.<name>.digest}``; ``{{`` and ``}}`` are
literal braces. Output is bounded by the template's length times the longest value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

__all__ = ["MAX_TEMPLATE_LENGTH", "TemplateError", "render", "unknown_variables", "variables"]

MAX_TEMPLATE_LENGTH = 1024

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]{0,200})\}|[{}]")
_PACKAGE_FIELD = re.compile(r"packages\.([A-Za-z0-9][A-Za-z0-9._-]{0,100})\.(version|digest)")


class TemplateError(ValueError):
    """A template that cannot be rendered; the message says why."""


def variables(template: str) -> list[str]:
    """The variable names in ``template``, in order; raises TemplateError if malformed."""
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"template longer than {MAX_TEMPLATE_LENGTH} characters")
    names = []
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise TemplateError(f"single {token!r}: write {token * 2} for a literal brace")
        names.append(match.group(1).strip())
    return names


def unknown_variables(template: str, packages: Collection[str]) -> list[str]:
    """Variables that are neither ``version`` nor a field of one of ``packages``."""
    unknown = []
    for name in variables(template):
        field = _PACKAGE_FIELD.fullmatch(name)
        if name == "version" or (field is not None and field.group(1) in packages):
            continue
        unknown.append(name)
    return unknown


def render(template: str, version: str, packages: Mapping[str, tuple[str, str | None]]) -> str:
    """``template`` with its variables replaced; ``packages``: name -> (version, digest)."""
    names = iter(variables(template))

    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = next(names)
        if name == "version":
            return version
        field = _PACKAGE_FIELD.fullmatch(name)
        if field is None or field.group(1) not in packages:
            raise TemplateError(f"unknown variable {{{name}}}")
        package_version, digest = packages[field.group(1)]
        chosen = package_version if field.group(2) == "version" else digest
        if chosen is None:
            raise TemplateError(f"{{{name}}} has no value (no digest recorded)")
        return chosen

    return _TOKEN.sub(value, template)
