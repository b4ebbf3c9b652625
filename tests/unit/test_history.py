"""`reconciler history`: who did what, read from commit trailers."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.commands.history import entries
from reconciler.gitrepo import CommitInfo

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_each_deployment_of_a_mixed_commit_is_credited_to_its_own_hand() -> None:
    """One pass records a merged pull request (prod) and promotes dev automatically."""
    commit = CommitInfo(
        sha="a" * 40,
        author="reconciler-bot",
        email="bot@example.com",
        when=WHEN,
        subject="reconciler: deploy shop 1.0.1 to dev; record shop/prod at 1.0.0",
        message="",
        trailers={
            "Environment": ["dev", "prod"],
            # dev: alice's hand edit recorded, then the automatic 1.0.1 in the same pass
            "Deployed": ["shop 1.0.1 dev", "shop 1.0.0 prod", "shop 1.0.0 dev"],
            "Promoted-By": ["reconciler (automatic)", "pull request #1", "alice"],
            "Deployed-By": ["shop 1.0.0 prod pull request #1", "shop 1.0.0 dev alice"],
        },
    )
    rows = {(r["detail"], r["by"]) for r in entries([commit], "shop", None)}
    assert rows == {
        ("1.0.1 dev", "reconciler (automatic)"),
        ("1.0.0 prod", "pull request #1"),
        ("1.0.0 dev", "alice"),
    }
    assert [r["by"] for r in entries([commit], "shop", "prod")] == ["pull request #1"]


def test_verification_verdicts_and_rollbacks_are_history_events() -> None:
    """Issue 17: Verified:/Failed:/Rolled-Back: trailers, filtered by --env."""
    commit = CommitInfo(
        sha="b" * 40,
        author="reconciler-bot",
        email="bot@example.com",
        when=WHEN,
        subject="reconciler: shop 1.0.1 failed in dev; verified shop 1.0.1 in qa",
        message="",
        trailers={
            "Failed": ["shop 1.0.1 dev at 2026-11-30T12:00:00Z (Degraded: CrashLoopBackOff)"],
            "Verified": ["shop 1.0.1 qa at 2026-11-30T12:00:00Z"],
            "Rolled-Back": ["shop dev 1.0.1 -> 1.0.0"],
        },
    )
    rows = [(r["event"], r["detail"]) for r in entries([commit], "shop", "dev")]
    assert rows == [
        ("failed", "1.0.1 dev at 2026-11-30T12:00:00Z (Degraded: CrashLoopBackOff)"),
        ("rolled-back", "dev 1.0.1 -> 1.0.0"),
    ]
    assert [r["event"] for r in entries([commit], "shop", "qa")] == ["verified"]
