"""yamlio.load_one_fast (records, state, pins) reads what ruamel's safe loader reads."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler import yamlio

# Printable text: C0/C1 controls and odd line breaks are a separate concern of the dumper.
text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    text,
    st.sampled_from(["1.10", "1.0", "0x1F", "1e3", "true", "~", "null", "2024-01-01", "v1.2.3"]),
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(text.filter(bool), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(text.filter(bool), documents, max_size=6))
def test_reads_whatever_dump_new_writes_like_ruamel(data):
    text = yamlio.dump_new(data)
    assert yamlio.load_one_fast(text) == YAML(typ="safe").load(text) == data


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: 1.5\nc: -2\nd: .5\ne: 1e3\nf: 1.2.3\ng: ''\nh:\ni: ~\nj: True\nk: 'x'\n",
        "list:\n  - {a: 1, b: [x, 'y', \"z\"]}\n  - - nested\n",
        "block: |\n  line one\n  line two\nfolded: >\n  a\n  b\n",
        "# only a comment\n",
    ],
)
def test_matches_ruamel_on_hand_written_text(text):
    assert yamlio.load_one_fast(text) == YAML(typ="safe").load(text)


def test_timestamps_stay_text():
    assert yamlio.load_one_fast("at: 2026-11-24T01:39:06Z\n") == {"at": "2026-11-24T01:39:06Z"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: &x 1\nb: *x\n", "anchors are not allowed"),
        ("a: !!python/object:os.system x\n", "unexpected tag"),
        ("? [a]\n: 1\n", "mapping keys must be scalars"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
    ],
)
def test_refuses_what_the_reconciler_never_writes(text, message):
    with pytest.raises(ValueError, match=message):
        yamlio.load_one_fast(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [" * 101 + "]" * 101 + "\n", (1, "nesting deeper than 100 levels")),
        (
            "a: &a [x]\n" + "".join(f"b{i}: *a\n" for i in range(101)),
            (102, "too many YAML aliases (>100): refusing a possible alias bomb"),
        ),
        # YAML 1.2 that libyaml (1.1) refuses: decided by the pure-Python parser.
        ("- {name: migrate, image: ghcr.io/acme/migrate:1.2.3}\n", None),
        ("a: " + "[" * 99 + "]" * 99 + "\n", None),  # the root mapping is level 1
    ],
    ids=["too-deep", "alias-bomb", "colon-in-flow-scalar", "at-the-depth-limit"],
)
def test_limit_problem(text, problem):
    assert yamlio.limit_problem(text) == problem
    if problem is None:
        yamlio.load_all(text)  # what passes the limits loads


def test_limit_problem_lets_syntax_errors_through():
    with pytest.raises(YAMLError):
        yamlio.limit_problem("a: [\n")


@pytest.mark.parametrize(
    "text", ["-_", "+_", "._", "0x_", "0b_", "0o_", "2026-02-30", "2026-13-01"]
)
@pytest.mark.parametrize("load", [yamlio.load_all, yamlio.load_all_fast])
def test_a_plain_scalar_that_only_looks_like_a_number_or_date_is_a_yaml_error(
    load: Any, text: str
) -> None:
    """ruamel's resolver takes these for ints, floats or timestamps, and its constructors
    then raise bare ValueError or IndexError, which no caller expects from YAML (the
    config fuzzer found ``-_``). They are MarkedYAMLErrors naming the line now."""
    with pytest.raises(MarkedYAMLError) as info:
        load(f"ok: 1\nbad: {text}\n")
    assert info.value.problem_mark.line == 1
    assert f"{text!r} reads as a" in str(info.value.problem)
