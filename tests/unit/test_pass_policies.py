"""The decisions of a pass as pure functions (issue 16): the drift/adopt policy, the
pull-request supersede rule and the commit message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.model import Config, Project, Release, ReleasedPackage, Settings
from reconciler.reconcile.drift import classify
from reconciler.reconcile.proposals import supersedes
from reconciler.reconcile.report import AutomaticDeployment, PassResult, commit_message


@pytest.mark.parametrize(
    ("matches", "current", "adopted", "pinned", "finding"),
    [
        (True, "1.0.0", None, False, "in-sync"),
        (True, None, None, False, "seed"),  # files say the first release; never deployed
        (False, None, None, False, "seed"),  # the seed overlay (0.0.0): not drift
        (False, "1.0.0", "1.1.0", False, "adopted"),  # a merged PR or a git revert
        (False, "1.0.0", "1.1.0", True, "adopted"),  # adopted even when pinned
        (True, None, "1.0.0", False, "adopted"),
        (False, "1.0.0", None, True, "pinned"),  # a person is in charge
        (False, "1.0.0", None, False, "drift"),
    ],
)
def test_drift_and_adopt_policy(
    matches: bool, current: str | None, adopted: str | None, pinned: bool, finding: str
) -> None:
    assert classify(matches=matches, current=current, adopted=adopted, pinned=pinned) == finding


@pytest.mark.parametrize(
    ("known", "version", "closes"),
    [
        ({"release": "1.0.0", "state": "open"}, "1.1.0", True),
        ({"release": "1.1.0", "state": "open"}, "1.1.0", False),  # the same proposal
        ({"release": "1.0.0", "state": "closed"}, "1.1.0", False),
        ({"release": "1.0.0", "state": "merged"}, "1.1.0", False),
    ],
)
def test_a_newer_release_supersedes_only_an_open_proposal(
    known: dict[str, str], version: str, closes: bool
) -> None:
    assert supersedes(known, version) is closes


def test_the_commit_message_names_every_change_and_carries_the_trailers() -> None:
    when = datetime(2026, 12, 4, tzinfo=UTC)
    release = Release(
        "shop",
        "1.0.1",
        "stable",
        "shop-images",
        when,
        (ReleasedPackage("api", "image", "r/api", "1.2.0", None),),
    )
    result = PassResult(releases=[release], promotions=[("shop", "dev", "1.0.1")])
    result.deployments.append(
        AutomaticDeployment(
            "shop", "dev", "1.0.0", "1.0.1", "development", [("api", "1.1.0", "1.2.0")]
        )
    )
    config = Config(Settings(), {}, {}, {}, {})
    message = commit_message(config, result)
    assert message.startswith("reconciler: release shop 1.0.1; deploy shop 1.0.1 to dev\n")
    assert "shop/dev: 1.0.0 -> 1.0.1 (phase development, automatic)\n  api: 1.1.0 -> 1.2.0" in (
        message
    )
    assert message.endswith(
        "Release: shop 1.0.1\nEnvironment: dev\nDeployed: shop 1.0.1 dev\n"
        "Promoted-By: reconciler (automatic)\n"
    )


def test_a_commit_changing_one_project_alone_takes_that_projects_template() -> None:
    when = datetime(2026, 12, 4, tzinfo=UTC)

    def release(project: str) -> Release:
        return Release(project, "1.0.1", "stable", "t", when, ())

    shop = Project("shop", "std", (), (), {}, commit_template="shop: {subject}\n\n{trailers}")
    billing = Project("billing", "std", (), (), {})
    config = Config(
        Settings(commit_template="all: {subject}"), {}, {}, {"shop": shop, "billing": billing}, {}
    )
    alone = commit_message(config, PassResult(releases=[release("shop")]))
    assert alone.startswith("shop: reconciler: release shop 1.0.1\n\nRelease: shop 1.0.1")
    other = commit_message(config, PassResult(releases=[release("billing")]))
    assert other.startswith("all: reconciler: release billing 1.0.1")  # Settings' template
    both = commit_message(config, PassResult(releases=[release("shop"), release("billing")]))
    assert both.startswith("all: reconciler: release ")  # several projects: Settings'
