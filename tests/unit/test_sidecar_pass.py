"""Which sidecar events end a feed's backoff: only a rotated credential file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from reconciler.commands.run import sidecar_pass
from reconciler.loop import Backoff, PassRequest

CREDENTIAL = "/var/run/secrets/registry/password"
REF_FILE = "/srv/config.git/refs/heads/main"


@dataclass
class FakeReconciler:
    """Stands in for Reconciler: records the passes it was asked for."""

    last_config: Any = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def run_pass(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return _Result()


@dataclass
class _Result:
    feed_errors: dict[str, str] = field(default_factory=dict)
    project_errors: dict[str, str] = field(default_factory=dict)
    config_error: Any = None
    git_error: str | None = None
    releases: list[Any] = field(default_factory=list)
    promotions: list[Any] = field(default_factory=list)
    pushed: bool = False
    duration: float = 0.0
    wake_at: Any = None
    follow_up: bool = False


@pytest.mark.parametrize(
    ("changed", "backoff_kept"),
    [
        (frozenset({CREDENTIAL}), False),
        (frozenset({REF_FILE}), True),  # a commit to a config repo on this machine
        (frozenset(), True),  # a webhook or the timer
    ],
    ids=["credential-rotated", "config-commit", "webhook-or-timer"],
)
def test_only_a_rotated_credential_ends_the_backoff(
    changed: frozenset[str], backoff_kept: bool
) -> None:
    backoff = Backoff()
    backoff.failure("reg", now=100.0, retry_after=120)
    reconciler = FakeReconciler()
    request = PassRequest(reason="event", full=True, changed_paths=changed)

    outcome = sidecar_pass(reconciler, backoff, {CREDENTIAL}, request)  # type: ignore[arg-type]

    assert outcome.ok and len(reconciler.calls) == 1
    assert backoff.ready("reg", now=101.0) is not backoff_kept


def _config_with(**packages: list[str]) -> Any:
    """project -> image repositories, as a stand-in for model.Config."""
    from types import SimpleNamespace

    from reconciler.model import Package

    return SimpleNamespace(
        projects={
            name: SimpleNamespace(
                name=name,
                packages=[Package(f"p{i}", "reg", image=r) for i, r in enumerate(repos)],
            )
            for name, repos in packages.items()
        }
    )


@pytest.mark.parametrize(
    ("named", "polled"),
    [
        ({"acme/api"}, {"shop"}),
        ({"registry.example/acme/api"}, {"shop"}),  # webhooks may name the host too
        ({"acme/api", "acme/batch"}, {"shop", "billing"}),
        ({"acme/unknown"}, None),  # nobody uses it: a full pass, not nothing
    ],
)
def test_a_registry_webhook_polls_only_the_projects_using_the_repository(
    named: set[str], polled: set[str] | None
) -> None:
    reconciler = FakeReconciler(
        last_config=_config_with(shop=["acme/api", "acme/web"], billing=["acme/batch"])
    )
    request = PassRequest(reason="event", full=False, repositories=frozenset(named))
    sidecar_pass(reconciler, Backoff(), set(), request)  # type: ignore[arg-type]
    [call] = reconciler.calls
    assert call["only_projects"] == polled
    assert call["recheck"] == frozenset(named)  # their digests are checked again
