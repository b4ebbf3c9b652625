"""Tag parsing, ordering and ranges (reconciler.versions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.ranges import parse_range
from reconciler.versions import Version, parse_version


def v(text: str) -> Version:
    version = parse_version(text)
    assert version is not None, text
    return version


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("tag", "numbers", "prerelease", "build"),
    [
        ("1.2.3", (1, 2, 3), (), ""),
        ("v1.2", (1, 2), (), ""),
        ("V7", (7,), (), ""),
        ("18.04", (18, 4), (), ""),
        ("1.2.3.4", (1, 2, 3, 4), (), ""),
        ("1.0.0-rc.10", (1, 0, 0), ("rc", "10"), ""),
        ("1.0.0-alpha-1.beta", (1, 0, 0), ("alpha-1", "beta"), ""),
        ("1.2.3+build.7", (1, 2, 3), (), "build.7"),
        ("1.0.0-rc_10", (1, 0, 0), ("rc_10",), ""),  # `_` is never `+` for images
        ("20240501", (20240501,), (), ""),
        ("1.2-alpine", (1, 2), ("alpine",), ""),
    ],
)
def test_lenient_parse(
    tag: str, numbers: tuple[int, ...], prerelease: tuple[str, ...], build: str
) -> None:
    version = v(tag)
    assert (version.numbers, version.prerelease, version.build) == (numbers, prerelease, build)
    assert version.tag == tag
    assert str(version) == tag


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "main",
        "",
        "v",
        "3f2a1c0",  # short SHA
        "3f2a1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49",  # full SHA
        "123456789",  # 9 digits: a build number, not a major version
        "1.2.3.4.5",
        "1..2",
        "1.2.",
        "1.2.3-",
        "1.2.3-rc..1",
        "1.2.3+",
        "01-02-2024 release",
        "1.2.3\n",
        "1" * 300,
        "main-3f2a1c-1700000000",
    ],
)
def test_non_versions_parse_to_none(tag: str) -> None:
    assert parse_version(tag) is None


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("1.2.3", True),
        ("1.2.3-rc.1+build.5", True),
        ("v1.2.3", False),
        ("1.2", False),
        ("1.2.3.4", False),
        ("01.2.3", False),
        ("1.2.3-01", False),
        ("1.2.3_build", False),
    ],
)
def test_strict_is_semver_2(tag: str, ok: bool) -> None:
    assert (parse_version(tag, strict=True) is not None) is ok


@given(st.text(max_size=400))
def test_parse_never_raises(text: str) -> None:
    result = parse_version(text)
    assert result is None or isinstance(result, Version)
    strict = parse_version(text, strict=True)
    assert strict is None or isinstance(strict, Version)


# ----------------------------------------------------------------- ordering


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0-rc.9", "1.0.0-rc.10"),
        ("1.0.0-rc.1", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-alpha.beta", "1.0.0-beta"),
        ("1.0.0-beta.11", "1.0.0-rc.1"),
        ("1.2.3", "1.2.3.1"),
        ("1.2.3.9", "1.2.3.10"),
        ("18.04", "18.10"),
        ("1.9", "1.10"),
        ("v1.2", "1.3.0"),
        ("1.2.3-rc.1", "1.2.3-rc.1.0"),
    ],
)
def test_ordering(lower: str, higher: str) -> None:
    assert v(lower) < v(higher)
    assert v(higher) > v(lower)


@pytest.mark.parametrize(
    "same", [("1", "1.0", "1.0.0", "1.0.0.0", "v1"), ("18.04", "18.4"), ("1.2.3+a", "1.2.3+b")]
)
def test_equal_versions_keep_their_text(same: tuple[str, ...]) -> None:
    versions = [v(t) for t in same]
    assert len(set(versions)) == 1
    assert [x.tag for x in versions] == list(same)
    assert len({x.tiebreak for x in versions}) == len(same)


def test_tiebreak_prefers_precision() -> None:
    assert v("1.2.0").tiebreak > v("v1.2").tiebreak


_VERSION_TEXT = st.builds(
    lambda nums, pre: ".".join(map(str, nums)) + ("-" + ".".join(pre) if pre else ""),
    st.lists(st.integers(0, 12), min_size=1, max_size=4),
    st.lists(
        st.one_of(st.integers(0, 12).map(str), st.sampled_from(["a", "rc", "beta", "x-1"])),
        max_size=3,
    ),
)


@given(st.lists(_VERSION_TEXT, min_size=3, max_size=3))
def test_ordering_is_a_total_order(texts: list[str]) -> None:
    a, b, c = (v(t) for t in texts)
    assert (a < b) + (a == b) + (a > b) == 1  # exactly one holds
    if a <= b and b <= a:
        assert a == b  # antisymmetric
    if a <= b and b <= c:
        assert a <= c  # transitive
    assert (a == b) == (hash(a) == hash(b)) or a != b


# ------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("range_text", "inside", "outside"),
    [
        ("^1.2", ["1.2.0", "1.9.9", "v1.2"], ["1.1.9", "2.0.0", "1.2.0-rc.1"]),
        ("^1.2.3", ["1.2.3", "1.99"], ["1.2.2", "2.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("^0.x", ["0.9.9"], ["1.0.0"]),
        ("~1.2.3", ["1.2.3", "1.2.99"], ["1.3.0", "1.2.2"]),
        ("~1", ["1.0", "1.99"], ["2.0"]),
        (">=1.0.0 <2.0.0", ["1.0.0", "1.99.0", "1.5.0.7"], ["0.9", "2.0.0", "1.5.0-rc.1"]),
        (">= 1.0, < 2.0", ["1.0", "1.9"], ["2.0"]),  # Flux/Masterminds style
        ("1.x", ["1.0", "1.9.9"], ["2.0", "0.9"]),
        ("1.2.*", ["1.2.0", "1.2.7"], ["1.3.0"]),
        ("1.2.3.x", ["1.2.3.0", "1.2.3.7"], ["1.2.4", "1.2.2.9"]),
        ("*", ["0.0.1", "99"], ["1.0.0-rc.1"]),
        ("1.0 - 2.0", ["1.0.0", "2.0.9"], ["2.1.0", "0.9"]),
        ("1.2.3 - 2.3.4", ["1.2.3", "2.3.4"], ["2.3.5"]),
        ("1.x || >=3.0.0 <3.1", ["1.5", "3.0.9"], ["2.0", "3.1.0"]),
        ("1.0", ["1.0.0", "1.0.9"], ["1.1.0"]),  # bare version: npm's 1.0.x
        ("1.2.3", ["1.2.3", "1.2.3.0"], ["1.2.3.1", "1.2.4"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        (">1.2.3", ["1.2.3.1"], ["1.2.3"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        ("<1.2", ["1.1.9"], ["1.2.0"]),
        (">=1.2.0-rc.1", ["1.2.0-rc.2", "1.2.0", "1.3.0"], ["1.3.0-rc.1", "1.2.0-rc.0"]),
        ("[1.0,2.0)", ["1.0", "1.9.9.9"], ["2.0", "0.9"]),
        ("(1.0,2.0]", ["1.0.1", "2.0"], ["1.0", "2.0.1"]),
        ("(,1.0]", ["0.1", "1.0"], ["1.0.1"]),
        ("[1.0,)", ["1.0", "99"], ["0.9"]),
        ("[1.0]", ["1.0.0"], ["1.0.1"]),
        ("[1.0,2.0),[3.0,)", ["1.5", "3.5"], ["2.5"]),
        ("[1.0.0-beta,2.0)", ["1.0.0-beta.2", "1.0.0"], ["1.5.0-beta"]),
    ],
)
def test_range_contains(range_text: str, inside: list[str], outside: list[str]) -> None:
    version_range = parse_range(range_text)
    for text in inside:
        assert version_range.contains(v(text)), f"{text} should be in {range_text}"
    for text in outside:
        assert not version_range.contains(v(text)), f"{text} should not be in {range_text}"


def test_include_prerelease_lifts_the_npm_rule() -> None:
    version_range = parse_range(">=1.0.0 <2.0.0")
    assert not version_range.contains(v("1.5.0-rc.1"))
    assert version_range.contains(v("1.5.0-rc.1"), include_prerelease=True)
    # the upper bound still excludes 2.0.0's pre-releases: they are not below "2.0.0-0"
    assert not parse_range("<2.0").contains(v("2.0.0-rc.1"), include_prerelease=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  ", "empty"),
        (">=1.0 <<2", "'<2' is not a version"),
        ("banana", "'banana' is not a version"),
        ("1.x-rc.1", "wildcard and a pre-release"),
        ("1.0 ||", "empty alternative"),
        ("[2.0,1.0]", "empty"),
        ("(1.0,1.0]", "empty"),
        ("(1.0)", "exact version needs [version]"),
        ("(,)", "at least one bound"),
        ("[1.0,2.0", "expected an interval"),
        ("[a,2.0)", "'a' is not a version"),
    ],
)
def test_invalid_ranges(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="invalid range") as caught:
        parse_range(text)
    assert message in str(caught.value)


_STABLE = st.lists(st.integers(0, 5), min_size=1, max_size=4)


def _padded(numbers: list[int]) -> tuple[int, ...]:
    return tuple(numbers) + (0,) * (4 - len(numbers))


def _text(numbers: list[int]) -> str:
    return ".".join(map(str, numbers))


@given(
    st.sampled_from(["<", "<=", ">", ">="]),
    st.lists(st.integers(0, 5), min_size=3, max_size=4),
    _STABLE,
)
def test_comparators_match_brute_force(op: str, bound: list[int], candidate: list[int]) -> None:
    expected = {
        "<": _padded(candidate) < _padded(bound),
        "<=": _padded(candidate) <= _padded(bound),
        ">": _padded(candidate) > _padded(bound),
        ">=": _padded(candidate) >= _padded(bound),
    }[op]
    assert parse_range(f"{op}{_text(bound)}").contains(v(_text(candidate))) is expected


@given(st.lists(st.integers(0, 5), min_size=1, max_size=3), _STABLE)
def test_caret_and_tilde_match_brute_force(base: list[int], candidate: list[int]) -> None:
    cand, low = _padded(candidate), _padded(base)
    # caret: the left-most non-zero part given (or the last given part) must not change
    nonzero = [i for i, n in enumerate(base) if n != 0]
    fixed = nonzero[0] if nonzero else (2 if len(base) == 3 else len(base) - 1)
    caret = cand >= low and cand[: fixed + 1] == low[: fixed + 1]
    assert parse_range(f"^{_text(base)}").contains(v(_text(candidate))) is caret
    tilde_fixed = 1 if len(base) >= 2 else 0
    tilde = cand >= low and cand[: tilde_fixed + 1] == low[: tilde_fixed + 1]
    assert parse_range(f"~{_text(base)}").contains(v(_text(candidate))) is tilde


@given(_STABLE, _STABLE, _STABLE, st.booleans(), st.booleans())
def test_intervals_match_brute_force(
    low: list[int], high: list[int], candidate: list[int], low_closed: bool, high_closed: bool
) -> None:
    if _padded(low) >= _padded(high):
        return
    text = f"{'[' if low_closed else '('}{_text(low)},{_text(high)}{']' if high_closed else ')'}"
    cand = _padded(candidate)
    above = cand >= _padded(low) if low_closed else cand > _padded(low)
    below = cand <= _padded(high) if high_closed else cand < _padded(high)
    assert parse_range(text).contains(v(_text(candidate))) is (above and below)


@given(st.text(max_size=60))
def test_parse_range_raises_only_value_error(text: str) -> None:
    try:
        parse_range(text)
    except ValueError:
        pass


@pytest.mark.parametrize("tag", ["v1.2.3-rc.1+build.5", "1.2", "2024.01.02.3"])
def test_versions_survive_pickle_and_copy(tag: str) -> None:
    import copy
    import pickle

    version = parse_version(tag)
    assert version is not None
    for clone in (pickle.loads(pickle.dumps(version)), copy.deepcopy(version), copy.copy(version)):
        assert clone == version
        assert (clone.tag, clone.numbers, clone.prerelease, clone.build) == (
            version.tag,
            version.numbers,
            version.prerelease,
            version.build,
        )
