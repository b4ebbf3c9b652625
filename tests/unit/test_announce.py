"""What a pass tells people (reconciler.announce): one notification per fact and
failure class, keyed so the Notifier can deduplicate persistent failures."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.announce import REFUSALS_REMEMBERED, announce, remember_refusals
from reconciler.errors import ConfigError, Problem
from reconciler.model import Release, ReleasedPackage
from reconciler.planning import PackageChoice, Refusal, TriggerDecision
from reconciler.reconcile import PassResult

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RELEASE = Release(
    "shop", "1.4.0", "stable", "shop-images", NOW,
    (ReleasedPackage("api", "image", "example.com/shop/api", "2.0.0"),),
)  # fmt: skip


def events(result: PassResult, waiting: set[str] | None = None) -> list[tuple[str, str, str]]:
    return [(n.event, n.subject, n.message) for n in announce(result, waiting or set()).notes]


def test_progress_is_announced_only_for_what_was_pushed() -> None:
    result = PassResult(
        releases=[RELEASE],
        promotions=[("shop", "dev", "1.4.0")],
        drift=[("shop", "prod", "pin", "api: files say 1.9.0, release 1.3.0 has 1.8.0")],
    )
    assert events(result) == []  # nothing landed: nothing to tell
    result.pushed = True
    assert events(result) == [
        ("release-created", "shop 1.4.0", "Release shop 1.4.0 (channel stable): api 2.0.0"),
        ("promoted", "shop 1.4.0 -> dev", "shop 1.4.0 deployed to dev"),
        (
            "drift-detected",
            "shop/prod",
            "Drift in shop/prod (pin): api: files say 1.9.0, release 1.3.0 has 1.8.0",
        ),
    ]


def test_waiting_for_approval_is_announced_once() -> None:
    waiting = [("shop", "prod", "manual approval pending"), ("shop", "qa", "soak")]
    result = PassResult(waiting=waiting)
    first = announce(result, set())
    assert [(n.event, n.subject) for n in first.notes] == [("waiting-for-approval", "shop/prod")]
    assert announce(result, first.waiting_seen).notes == []


def test_every_failure_class_is_a_keyed_failure() -> None:
    result = PassResult(
        failed_feeds={
            "ghcr": ("auth", "feed ghcr: credentials rejected"),
            "hub": ("rate-limited", "feed hub: HTTP 429, retry after 60 s"),
            "flaky": ("unavailable", "feed flaky: HTTP 500"),  # transient: no notification
        },
        decisions=[
            TriggerDecision(
                "shop-images",
                "shop",
                "stable",
                None,
                "no version of api passes the rules: 3.0.0: outside >=1 <2",
            ),
            TriggerDecision("shop-images", "shop", "beta", None, "nothing newer"),
        ],
        config_error=ConfigError([Problem("feeds/a.yaml", 3, "url", "required")]),
        git_error="push still rejected after 5 plans and 2 rebases",
    )
    found = announce(result, set())
    assert [(n.event, n.subject) for n in found.notes] == [
        ("auth-failed", "ghcr"),
        ("rate-limited", "hub"),
        ("no-tag-matched", "shop/shop-images"),
        ("config-invalid", "config"),
        ("push-rejected", "push"),
    ]
    assert found.failing == {
        ("auth-failed", "ghcr"),
        ("rate-limited", "hub"),
        ("no-tag-matched", "shop/shop-images"),
        ("config-invalid", "config"),
        ("push-rejected", "push"),
    }
    assert all(n.is_failure for n in found.notes)
    config_note = next(n for n in found.notes if n.event == "config-invalid")
    assert config_note.message == "feeds/a.yaml:3: url: required"


def test_a_refused_version_is_announced_once_per_digest_and_kind_and_forgotten_later() -> None:
    unsigned = Refusal("1.1.0", "sha256:" + "1" * 64, "unsigned", "cosign: unsigned: ...")
    choice = PackageChoice("api", "1.0.0", refused=(unsigned,))
    # two channels judged the same version: one note
    result = PassResult(
        choices={("shop", "stable"): {"api": choice}, ("shop", "beta"): {"api": choice}}
    )
    first = announce(result, set())
    assert [(n.event, n.subject, n.details["refusal"]) for n in first.notes] == [
        ("signature-refused", "shop/api 1.1.0", "unsigned")
    ]
    memory: dict[str, float] = {}
    remember_refusals(memory, first.refused_seen, 1000.0)
    assert announce(result, set(), memory).notes == []
    # the same digest refused for another reason (signed since, by an unknown key) is news
    stranger = Refusal("1.1.0", unsigned.digest, "no-matching-key", "cosign: ...")
    result.choices = {("shop", "stable"): {"api": PackageChoice("api", refused=(stranger,))}}
    assert len(announce(result, set(), memory).notes) == 1
    # kept while judged; forgotten a month after it was last judged
    remember_refusals(memory, first.refused_seen, 1000.0 + REFUSALS_REMEMBERED)
    remember_refusals(memory, set(), 1000.0 + 2 * REFUSALS_REMEMBERED)
    assert list(memory) == [next(iter(first.refused_seen))]
    remember_refusals(memory, set(), 1001.0 + 2 * REFUSALS_REMEMBERED)
    assert memory == {}
