"""The work dir's selection cache: same tags, rule and current tag -> same choice,
without judging every tag again; reasons still available on demand."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model import Package, VersionRule
from reconciler.reconcile import selectioncache
from reconciler.reconcile.selectioncache import SelectionCache
from reconciler.selection import current_context, select

PKG = Package(name="api", feed="hub", image="acme/api")
TAGS = ["1.0.0", "1.1.0", "2.0.0-rc.1", "latest", "1.2.0"]


@pytest.fixture
def counted(monkeypatch):
    calls = []

    def counting_select(rule, tags, **kwargs):
        calls.append(list(tags))
        return select(rule, tags, **kwargs)

    monkeypatch.setattr(selectioncache, "select", counting_select)
    return calls


def test_same_inputs_reuse_the_choice_and_compute_reasons_only_on_demand(counted):
    store: dict = {}
    rule = VersionRule(range="^1")
    first = SelectionCache(store).select(PKG, rule, list(TAGS), None)
    assert first.chosen == "1.2.0" and len(counted) == 1

    store = json.loads(json.dumps(store))  # as saved in the work dir between processes
    again = SelectionCache(store).select(PKG, rule, list(TAGS), None)
    assert again.chosen == "1.2.0"
    assert len(counted) == 1  # no per-tag work for the choice
    assert again.rejected == first.rejected and again.accepted == first.accepted
    assert len(counted) == 2  # ... but reasons are there when asked for


@pytest.mark.parametrize(
    ("tags", "rule", "current"),
    [
        ([*TAGS, "1.3.0"], VersionRule(range="^1"), None),  # a new tag
        (TAGS, VersionRule(range="~1.1"), None),  # the rule changed
        (TAGS, VersionRule(strategy="suffix"), "1.0.0"),  # another current tag
    ],
)
def test_any_changed_input_selects_again(counted, tags, rule, current):
    store: dict = {}
    SelectionCache(store).select(PKG, VersionRule(range="^1"), list(TAGS), None)
    result = SelectionCache(store).select(PKG, rule, list(tags), current)
    assert len(counted) == 2
    assert result.chosen == select(rule, tags, current=current).chosen


def test_newest_build_is_never_cached(counted):
    store: dict = {}
    rule = VersionRule(strategy="newest-build")
    for _ in range(2):
        SelectionCache(store).select(PKG, rule, list(TAGS), None)
    assert len(counted) == 2 and store == {}


def test_entries_of_polled_repositories_no_package_used_are_dropped():
    store: dict = {}
    cache = SelectionCache(store)
    cache.select(PKG, VersionRule(range="^1"), list(TAGS), None)
    other = Package(name="web", feed="hub", image="acme/web")
    cache.select(other, VersionRule(), list(TAGS), None)
    later = SelectionCache(store)
    later.select(PKG, VersionRule(range="^1"), list(TAGS), None)
    later.forget_unused({"hub|acme/api|"})  # acme/web was not polled: kept
    assert len(store) == 2
    later.forget_unused({"hub|acme/api|", "hub|acme/web|"})
    assert [k.split("|")[1] for k in store] == ["acme/api"]


@pytest.mark.parametrize(
    ("rule", "tags", "before"),
    [
        (VersionRule(range="^1"), TAGS, "1.0.0"),
        (
            VersionRule(strategy="suffix"),
            ["1.0-alpine", "1.2-alpine", "1.3", "1.4-slim"],
            "1.0-alpine",
        ),
        (VersionRule(strategy="suffix", same_precision=True), ["1.0.1", "1.2", "1.1.9"], "1.0.0"),
    ],
)
def test_the_pass_after_a_release_finds_the_choice_it_made(counted, rule, tags, before):
    """After a release, ``current`` is the tag just chosen: the same entry answers."""
    store: dict = {}
    chosen = SelectionCache(store).select(PKG, rule, list(tags), before).chosen
    assert chosen is not None and chosen != before and len(counted) == 1
    again = SelectionCache(store).select(PKG, rule, list(tags), chosen)
    assert again.chosen == chosen and len(counted) == 1


_SUFFIX_TAGS = st.lists(
    st.builds(
        "{}{}".format,
        st.lists(st.integers(0, 12).map(str), min_size=1, max_size=4).map(".".join),
        st.sampled_from(["", "-alpine", "-slim"]),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(
    tags=_SUFFIX_TAGS,
    current=st.one_of(st.none(), _SUFFIX_TAGS.filter(bool).map(lambda t: t[0])),
    other=st.one_of(st.none(), _SUFFIX_TAGS.filter(bool).map(lambda t: t[0])),
    same_precision=st.booleans(),
    suffix=st.sampled_from([None, "alpine"]),
)
def test_current_tags_with_the_same_context_select_the_same(
    tags, current, other, same_precision, suffix
):
    """The cache key's claim: selection takes nothing else from ``current``."""
    rule = VersionRule(strategy="suffix", same_precision=same_precision, suffix=suffix)
    if current_context(rule, current) == current_context(rule, other):
        first = select(rule, tags, current=current)
        second = select(rule, tags, current=other)
        assert (first.chosen, first.accepted, first.rejected) == (
            second.chosen,
            second.accepted,
            second.rejected,
        )


def test_the_tag_list_fingerprint_tells_lists_apart() -> None:
    """Joined by NUL when that is unambiguous, else JSON: lists that a plain join would
    confuse (a NUL or newline inside a tag, the empty list and [""]) differ."""
    from hypothesis import given
    from hypothesis import strategies as st

    from reconciler.reconcile.selectioncache import fingerprint

    confusable = [[], [""], ["", ""], ["a", "b"], ["a\0b"], ["a\0", "b"], ["a", "\0b"],
                  ["a\nb"], ["a", "b\n"], ["\ud800"], ["b", "a"]]  # fmt: skip
    prints = [fingerprint(tags) for tags in confusable]
    assert len(set(prints)) == len(confusable)

    @given(st.lists(st.text(), max_size=5), st.lists(st.text(), max_size=5))
    def distinct(first: list[str], second: list[str]) -> None:
        assert (fingerprint(first) == fingerprint(second)) == (first == second)

    distinct()
