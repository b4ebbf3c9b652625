"""Spliced scalars are quoted by the YAML library's own emitter (yamlio.quoted_scalar),
so whatever the value, the one line a splice writes reads back as that string."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.rendering.yamlsplice import quote

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


def _read(line: str) -> object:
    return YAML(typ="safe", pure=True).load(line)


@given(value=_TEXT, style=st.sampled_from(["plain", "single", "double"]), flow=st.booleans())
def test_a_quoted_value_reads_back_as_itself_from_one_line(
    value: str, style: str, flow: bool
) -> None:
    scalar = quote(value, style, flow)  # type: ignore[arg-type]
    assert "\n" not in scalar and "\r" not in scalar
    if flow:
        assert _read("{k: " + scalar + "}") == {"k": value}
    else:
        assert _read("k: " + scalar + "\n") == {"k": value}


def test_control_characters_and_breaks_are_escaped_not_written_raw() -> None:
    assert quote("a\x07b", "double", False) == '"a\\ab"'
    assert quote("x\ny", "single", False) == '"x\\ny"'
    assert quote("it's", "single", False) == "'it''s'"
    assert quote('say "hi" \\ bye', "double", False) == '"say \\"hi\\" \\\\ bye"'
