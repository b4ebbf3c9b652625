"""User templates from the config repository (``commitTemplate``), rendered safely.

The config repository is untrusted, so a template is not a Python format string
(``{subject:>1500000000}`` allocates gigabytes, ``{subject.__class__.__mro__}`` walks
objects). The language here has exactly two constructs:

- ``{name}``: a documented variable, substituted as text; each may appear once;
- ``{{`` and ``}}``: a literal brace.

Nothing else: no attribute or index access, no format specs or conversions. So a
rendered text is at most the template plus one copy of each value, and templates are
bounded in length too (``MAX_TEMPLATE``). ``check`` says what is wrong, for ``validate``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_TEMPLATE", "Template", "TemplateError", "check", "parse"]

MAX_TEMPLATE = 4096
"""Characters a template may have (its literal text ends up in every commit)."""

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[a-z][a-zA-Z0-9]*")


class TemplateError(ValueError):
    """A template that cannot be used, and why (in words, for ``validate``)."""


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and variable names, in order."""

    parts: tuple[tuple[bool, str], ...]  # (is a variable, literal text or the name)

    def render(self, values: Mapping[str, str]) -> str:
        return "".join(values[text] if is_name else text for is_name, text in self.parts)


def parse(text: str, variables: frozenset[str]) -> Template:
    """``text`` as a template over ``variables``, or TemplateError saying what is wrong."""
    if len(text) > MAX_TEMPLATE:
        raise TemplateError(f"template is {len(text)} characters long; at most {MAX_TEMPLATE}")
    parts: list[tuple[bool, str]] = []
    used: set[str] = set()
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            parts.append((False, text[position : match.start()]))
        position = match.end()
        token = match[0]
        if token in ("{{", "}}"):
            parts.append((False, token[0]))
            continue
        name = match[1]
        if name is None:
            raise TemplateError(
                f"single {token!r} at character {match.start() + 1}; write {token * 2} "
                "for a literal brace"
            )
        if name not in variables:
            known = ", ".join(f"{{{v}}}" for v in sorted(variables))
            why = (
                "only plain variable names are allowed (no attributes, indexes or format specs)"
                if not _NAME.fullmatch(name)
                else "unknown variable"
            )
            raise TemplateError(f"{{{name[:40]}}}: {why}; the variables are {known}")
        if name in used:
            raise TemplateError(f"{{{name}}} appears more than once; each variable may appear once")
        used.add(name)
        parts.append((True, name))
    if position < len(text):
        parts.append((False, text[position:]))
    return Template(tuple(parts))


def check(text: str, variables: frozenset[str]) -> str | None:
    """What is wrong with the template, or None."""
    try:
        parse(text, variables)
    except TemplateError as error:
        return str(error)
    return None
