"""Issue 22 item 3: the selection prefilter never changes an answer.

``select`` (semver) skips tags that cannot beat the best version found so far and
tags outside ``allow``'s literal prefix, before any regex or full parse.
``_select_all`` judges every tag. For random tag lists and rules both must choose
the same tag, and a literal prefix must hold for every match of its pattern.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model import VersionRule
from reconciler.selection import _select_all, literal_prefix, select
from reconciler.userregex import compile_user_regex

NUMBER = st.sampled_from(["0", "1", "2", "3", "9", "10", "11", "01", "2024"])
PRE = st.sampled_from(["", "-rc.1", "-rc.10", "-rc.2", "-alpha", "-beta.1", "-0", "-rc_9"])
BUILD = st.sampled_from(["", "", "+meta", "_build.1"])
PREFIX = st.sampled_from(["", "", "", "v", "V", "build-", "release-"])
ODD = st.sampled_from(
    ["latest", "main", "3f2a1c0", "123456789", "", "v", "1..2", "bad tag", "x" * 130, "1.2-alpine"]
)


@st.composite
def tags(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(ODD)
    parts = draw(st.lists(NUMBER, min_size=1, max_size=4))
    return draw(PREFIX) + ".".join(parts) + draw(PRE) + draw(BUILD)


RULES = st.builds(
    VersionRule,
    strategy=st.just("semver"),
    range=st.sampled_from([None, None, "^1.0", ">=2 <10", "<2", "1.x || >=10", "[1.0,3.0)", "*"]),
    prerelease=st.sampled_from([None, None, "^$", "^rc", ".*"]),
    strict=st.booleans(),
    allow=st.sampled_from(
        [None, None, "^v", "^1\\.", "^v?1", "^build-", "^(1|2)\\.", "^1\\.2|^3", "rc", "^v1\\."]
    ),
    ignore=st.sampled_from([(), (), ("rc",), ("^10",), ("-alpha$", "^v")]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(tags(), max_size=40), RULES, st.sampled_from(["image", "chart"]))
def test_the_prefilter_chooses_what_judging_every_tag_chooses(
    tag_list: list[str], rule: VersionRule, kind: str
) -> None:
    fast = select(rule, tag_list, kind=kind)  # type: ignore[arg-type]
    full = _select_all(rule, tag_list, None, {}, kind)  # type: ignore[arg-type]
    assert fast.chosen == full.chosen
    assert fast == full  # the detail, computed on demand, is the full judgement


PIECES = st.sampled_from(
    ["a", "b", "1", "-", "\\.", "v?", "[0-9]+", ".", "(x|y)", "b*", "c{2}", "$", "(?i)", "\\d"]
)


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.lists(PIECES, max_size=6), st.lists(st.text("ab1-.xyvc", max_size=8)))
def test_every_match_starts_with_the_literal_prefix(
    anchored: bool, pieces: list[str], texts: list[str]
) -> None:
    pattern = ("^" if anchored else "") + "".join(pieces)
    prefix = literal_prefix(pattern)
    compiled = compile_user_regex(pattern)
    for text in texts:
        if compiled.search(text):
            assert text.startswith(prefix), (pattern, prefix, text)


def test_literal_prefixes() -> None:
    assert literal_prefix("^build-[0-9]+$") == "build-"
    assert literal_prefix("^v1\\.") == "v1."
    assert literal_prefix("^v?1") == ""
    assert literal_prefix("^ab+") == "a"
    assert literal_prefix("^a|^b") == ""
    assert literal_prefix("(?i)^abc") == ""
    assert literal_prefix("abc") == ""
    assert literal_prefix(None) == ""
