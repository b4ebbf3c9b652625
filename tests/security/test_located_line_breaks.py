"""The event reader (rendering/located.py) leaves files with NEL, LINE SEPARATOR or
PARAGRAPH SEPARATOR to the round-trip path: libyaml breaks lines at them, ruamel
reads them otherwise, so a hostile overlay could be rendered by one path and refused
(or read differently) by the other."""

from __future__ import annotations

from unittest import mock

import pytest

from reconciler.errors import RenderError
from reconciler.rendering import Artifact, located, read_kustomization
from reconciler.rendering.kustomize import render_kustomization

ARTIFACT = Artifact("p", "image", "nginx", "2.0")


def _outcomes(text: str) -> tuple[str, str]:
    outcome = []
    for call in (
        lambda: render_kustomization(text, [ARTIFACT], digest=False, file="k"),
        lambda: read_kustomization(text, file="k"),
    ):
        try:
            outcome.append(repr(call()))
        except RenderError as error:
            outcome.append(f"error: {error}")
    return outcome[0], outcome[1]


@pytest.mark.parametrize("brk", ["\x85", "\u2028", "\u2029"], ids=["NEL", "LS", "PS"])
@pytest.mark.parametrize(
    "template",
    [
        "images:{b}- name: nginx{b}  newTag: a{b}",
        "images:\n- name: nginx  # note{b}  newTag: v1\n",
    ],
)
def test_unicode_line_breaks_give_the_round_trip_outcome(brk: str, template: str) -> None:
    text = template.format(b=brk)
    assert located.read(text) is None
    fast = _outcomes(text)
    with mock.patch.object(located, "read", return_value=None):
        assert fast == _outcomes(text)
