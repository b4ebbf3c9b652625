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
