"""The work dir's selection cache: same tags, rule and current tag -> same choice,
without judging every tag again; reasons still available on demand."""

import json

import pytest

from reconciler.model import Package, VersionRule
from reconciler.reconcile import selectioncache
from reconciler.reconcile.selectioncache import SelectionCache
from reconciler.selection import select

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
