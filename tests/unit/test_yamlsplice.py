"""Property tests of the generic splice engine (reconciler/rendering/yamlsplice.py).

Documents are generated in every scalar style, block and flow, LF and CRLF, with
comments; the engine must change exactly the scalars it was asked to change, and
not one byte elsewhere.
"""

from __future__ import annotations

import re

import yaml as yaml11  # PyYAML (test extra): a YAML 1.1 reader, like go-yaml v2
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconciler import yamlio
from reconciler.rendering.yamlsplice import (
    Plan,
    Source,
    get,
    located_scalars,
    quote,
    scalar_span,
    value_span,
)

KEYS = st.from_regex(r"\A[a-z][a-zA-Z0-9]{0,8}\Z").filter(
    lambda k: yaml11.safe_load(k) == k and k != "root"  # not y/no/null/... in YAML 1.1
)
SAFE_VALUES = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,20}\Z")
"""Values as registries supply them (the OCI tag grammar)."""
ANY_LINE = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\ufeff"
    ),
    max_size=20,
)
STYLES = st.sampled_from(["plain", "single", "double"])


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A mapping document as text, and its keys in order."""
    keys = draw(st.lists(KEYS, min_size=1, max_size=6, unique=True))
    flow = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    indent = draw(st.sampled_from(["", "  "]))
    entries = []
    for key in keys:
        value = quote(draw(SAFE_VALUES), draw(STYLES), flow)
        comment = draw(st.sampled_from(["", "  # keep me", " #c"])) if not flow else ""
        entries.append((key, value, comment))
    if flow:
        body = "{" + ", ".join(f"{k}: {v}" for k, v, _ in entries) + "}"
        text = f"# head{newline}root: {body}{newline}"
    else:
        lines = [f"{indent}{k}: {v}{c}" for k, v, c in entries]
        text = f"# head{newline}root:{newline}" + newline.join(lines) + newline
        if not indent:
            text = text.replace(f"root:{newline}", "")  # top-level mapping
    return text, keys


def _mapping(plan: Plan):  # type: ignore[no-untyped-def]
    doc = plan.docs[0]
    return (doc["root"], (0, "root")) if "root" in doc else (doc, (0,))


@settings(max_examples=200, deadline=None)
@given(doc=documents(), data=st.data())
def test_setting_one_key_changes_that_scalar_and_not_one_other_byte(
    doc: tuple[str, list[str]], data: st.DataObject
) -> None:
    text, keys = doc
    key = data.draw(st.sampled_from(keys))
    value = data.draw(SAFE_VALUES)
    plan = Plan(text, "f")
    mapping, path = _mapping(plan)
    flow = bool(mapping.fa.flow_style())
    span = value_span(plan.src, mapping, key, flow, "f")
    before = yaml11.safe_load(text)
    plan.set_keys(mapping, path, {key: value}, flow=False)
    out = plan.result()

    # Only the scalar's own bytes changed ...
    assert out[: span.start] == text[: span.start]
    assert out.endswith(text[span.end :])
    # ... and it now reads as the value, for YAML 1.2 and 1.1 readers alike.
    after = yamlio.load_one(out)
    target = after["root"] if "root" in after else after
    assert target[key] == value
    assert yaml11.safe_load(out) == _expected(before, key, value)


def _expected(before, key, value):  # type: ignore[no-untyped-def]
    """``before`` as plain strings, with ``key`` set to ``value``."""
    plain = _plain(before)
    target = plain["root"] if "root" in plain else plain
    target[key] = value
    return plain


def _plain(node):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    return str(node)


@settings(max_examples=300, deadline=None)
@given(value=ANY_LINE, style=STYLES, flow=st.booleans())
def test_quote_reads_back_as_the_same_string(value: str, style: str, flow: bool) -> None:
    written = quote(value, style, flow)  # type: ignore[arg-type]
    text = f"k: {written}\n" if not flow else f"k: [{written}]\n"
    parsed = yamlio.load_one(text)["k"]
    assert (parsed[0] if flow else parsed) == value
    parsed11 = yaml11.safe_load(text)["k"]
    assert (parsed11[0] if flow else parsed11) == value


@settings(max_examples=300, deadline=None)
@given(value=ANY_LINE, style=STYLES, tail=st.sampled_from(["", "  # c", "   "]))
def test_scalar_span_finds_exactly_the_written_scalar(value: str, style: str, tail: str) -> None:
    written = quote(value, style, False)  # type: ignore[arg-type]
    assume(written)  # an empty plain scalar is no scalar
    text = f"key: {written}{tail}\nnext: 1\n"
    span = scalar_span(Source(text), len("key: "), False, "f")
    assert text[span.start : span.end] == written


@settings(max_examples=100, deadline=None)
@given(doc=documents())
def test_located_scalars_finds_every_value_where_it_is_written(
    doc: tuple[str, list[str]],
) -> None:
    text, keys = doc
    plan = Plan(text, "f")
    found = {
        path[-1]: text[span.start : span.end]
        for path, span, _, _ in located_scalars(plan.src, plan.docs, "f")
    }
    assert set(found) == set(keys)
    for key, written in found.items():
        assert re.search(rf"{re.escape(key)}: {re.escape(written)}", text)
    assert get(plan.docs[0], "nothing", "here") is None
