"""User templates from the config repository (``commitTemplate``), rendered safely.

The config repository is untrusted, so a template is not a Python format string
(``{subject:>1500000000}`` allocates gigabytes, ``{subject.__class__.__mro__}`` walks
objects). The language here has exactly two constructs:

- ``{name}``: a documented variable, substituted as text; each may appear once;
- ``{{`` and ``}}``: a literal brace.

Nothing else: no attribute or index access, no format specs or conversions. A name may
be dotted (``{packages.api.version}``): it is looked up whole in a flat mapping of allowed
keys, never walked as attributes. So a rendered text is at most the template plus one copy
of each value (or, with ``repeat``, its length times the longest value), and templates are
bounded in length too (``MAX_TEMPLATE``). ``check`` says what is wrong, for ``validate``.
The one renderer for every user template: ``commitTemplate`` and the http check's
``expect`` (reconciler.verify.template names its variables).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_TEMPLATE", "Template", "TemplateError", "check", "names", "parse"]

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


def _parts(text: str, max_length: int) -> list[tuple[bool, str]]:
    """``text`` split into (is a variable, literal text or the name), unchecked names."""
    if len(text) > max_length:
        raise TemplateError(f"template is {len(text)} characters long; at most {max_length}")
    parts: list[tuple[bool, str]] = []
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            parts.append((False, text[position : match.start()]))
        position = match.end()
        token = match[0]
        if token in ("{{", "}}"):
            parts.append((False, token[0]))
        elif match[1] is None:
            raise TemplateError(
                f"single {token!r} at character {match.start() + 1}; write {token * 2} "
                "for a literal brace"
            )
        else:
            parts.append((True, match[1]))
    if position < len(text):
        parts.append((False, text[position:]))
    return parts


def names(text: str, max_length: int = MAX_TEMPLATE) -> list[str]:
    """The variable names ``text`` uses, in order, known or not; TemplateError if the
    template itself is broken (too long, a lone brace)."""
    return [text for is_name, text in _parts(text, max_length) if is_name]


def parse(
    text: str,
    variables: frozenset[str],
    *,
    max_length: int = MAX_TEMPLATE,
    repeat: bool = False,
) -> Template:
    """``text`` as a template over ``variables`` (``repeat``: a variable may appear more
    than once), or TemplateError saying what is wrong."""
    parts = _parts(text, max_length)
    used: set[str] = set()
    for is_name, name in parts:
        if not is_name:
            continue
        if name not in variables:
            known = ", ".join(f"{{{v}}}" for v in sorted(variables))
            why = (
                "only plain variable names are allowed (no attributes, indexes or format specs)"
                if not _NAME.fullmatch(name)
                else "unknown variable"
            )
            raise TemplateError(f"{{{name[:40]}}}: {why}; the variables are {known}")
        if name in used and not repeat:
            raise TemplateError(f"{{{name}}} appears more than once; each variable may appear once")
        used.add(name)
    return Template(tuple(parts))


def check(text: str, variables: frozenset[str]) -> str | None:
    """What is wrong with the template, or None."""
    try:
        parse(text, variables)
    except TemplateError as error:
        return str(error)
    return None
