"""Lifecycle decisions with verified deployments (issue 17): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.lifecycle import Promotion, Waiting, check_manual, decide
from reconciler.model import Deployment, Lifecycle, Phase, PhaseEnvironment
from reconciler.verdicts import Verifications, VerificationState
from tests.unit.test_lifecycle import release

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stamp(minutes: float) -> str:
    return at(minutes).strftime("%Y-%m-%dT%H:%M:%SZ")


def lifecycle(soak_minutes: float = 60, minimum: int | None = None) -> Lifecycle:
    return Lifecycle(
        "standard",
        (
            Phase(
                "dev",
                (PhaseEnvironment("dev"), PhaseEnvironment("dev2")),
                minimum,
                soak=soak_minutes * 60,
            ),
            Phase("staging", (PhaseEnvironment("staging"),)),
        ),
    )


def deployed(*entries: tuple[str, str, float]) -> dict[str, list[Deployment]]:
    result: dict[str, list[Deployment]] = {}
    for environment, version, minutes in entries:
        result.setdefault(environment, []).append(Deployment(environment, version, at(minutes)))
    return result


def verified(minutes: float) -> VerificationState:
    return VerificationState("verified", at(minutes))


def failed(minutes: float, reason: str = "Degraded: CrashLoopBackOff") -> VerificationState:
    return VerificationState("failed", at(minutes), reason)


RELEASES = [release("1.0.0", 0), release("1.0.1", 1)]
BOTH = {"dev": "hold", "dev2": "hold"}


def test_without_verify_nothing_changes() -> None:
    history = deployed(("dev", "1.0.0", 0), ("dev2", "1.0.0", 0))
    plain = decide(lifecycle(), RELEASES[:1], history, at(61))
    empty = decide(lifecycle(), RELEASES[:1], history, at(61), verification=Verifications())
    assert plain == empty
    assert plain.promotions == (Promotion("staging", "1.0.0", "staging", "dev complete"),)


def test_a_pending_deployment_does_not_complete_its_phase() -> None:
    history = deployed(("dev", "1.0.0", 0), ("dev2", "1.0.0", 0))
    retry = at(200.5)
    verification = Verifications(
        BOTH,
        {
            ("dev", "1.0.0"): verified(5),
            ("dev2", "1.0.0"): VerificationState(
                "pending", reason="health Progressing", retry_at=retry
            ),
        },
    )
    decision = decide(lifecycle(), RELEASES[:1], history, at(200), verification=verification)
    assert decision.promotions == ()
    assert Waiting("dev2", "1.0.0", "verifying 1.0.0: health Progressing", retry) in (
        decision.waiting
    )
    assert decision.wake_at == retry  # the sidecar wakes for the next poll
    assert check_manual(
        lifecycle(),
        RELEASES[:1],
        history,
        at(200),
        release="1.0.0",
        environment="staging",
        verification=verification,
    ) == (
        "phase staging is not open for release 1.0.0: phase dev is not complete "
        "(1 of 2 environments deployed)"
    )


def test_soak_starts_at_verification_time() -> None:
    history = deployed(("dev", "1.0.0", 0), ("dev2", "1.0.0", 0))
    verification = Verifications(
        BOTH, {("dev", "1.0.0"): verified(10), ("dev2", "1.0.0"): verified(30)}
    )
    before = decide(lifecycle(), RELEASES[:1], history, at(89), verification=verification)
    assert before.promotions == ()
    assert Waiting("staging", "1.0.0", f"soaking in dev until {stamp(90)}", at(90)) in (
        before.waiting
    )
    after = decide(lifecycle(), RELEASES[:1], history, at(90), verification=verification)
    assert after.promotions == (Promotion("staging", "1.0.0", "staging", "dev complete"),)


def test_only_verified_deployments_count_toward_minimum_environments() -> None:
    history = deployed(("dev", "1.0.0", 0), ("dev2", "1.0.0", 0))
    one_failed = Verifications(BOTH, {("dev", "1.0.0"): failed(3)})
    decision = decide(
        lifecycle(0, minimum=1), RELEASES[:1], history, at(5), verification=one_failed
    )
    assert decision.promotions == ()  # dev failed, dev2 still pending: 0 of 1
    one_verified = Verifications(
        BOTH, {("dev", "1.0.0"): failed(3), ("dev2", "1.0.0"): verified(4)}
    )
    decision = decide(
        lifecycle(0, minimum=1), RELEASES[:1], history, at(5), verification=one_verified
    )
    assert decision.promotions == (Promotion("staging", "1.0.0", "staging", "dev complete"),)


def test_a_failed_deployment_holds_and_says_why() -> None:
    history = deployed(("dev", "1.0.0", 0), ("dev2", "1.0.0", 0))
    verification = Verifications({"dev": "hold"}, {("dev", "1.0.0"): failed(3)})
    decision = decide(lifecycle(0), RELEASES[:1], history, at(500), verification=verification)
    assert decision.promotions == ()  # never opens staging
    assert Waiting("dev", "1.0.0", "verification failed: Degraded: CrashLoopBackOff") in (
        decision.waiting
    )


def test_a_newer_release_still_reaches_a_held_environment() -> None:
    history = deployed(("dev", "1.0.0", 0))
    verification = Verifications({"dev": "hold"}, {("dev", "1.0.0"): failed(3)})
    decision = decide(lifecycle(0), RELEASES, history, at(5), verification=verification)
    assert Promotion("dev", "1.0.1", "dev", "new release") in decision.promotions


def test_rollback_renders_the_previous_verified_release_once() -> None:
    history = deployed(("dev", "1.0.0", 0), ("dev", "1.0.1", 10))
    verification = Verifications(
        {"dev": "rollback"}, {("dev", "1.0.0"): verified(2), ("dev", "1.0.1"): failed(12)}
    )
    decision = decide(lifecycle(0), RELEASES, history, at(15), verification=verification)
    assert tuple(p for p in decision.promotions if p.environment == "dev") == (
        Promotion(
            "dev",
            "1.0.0",
            "dev",
            "rollback: 1.0.1 verification failed: Degraded: CrashLoopBackOff",
            rollback=True,
        ),
    )
    # after the rollback 1.0.0 runs again (verified), and 1.0.1 is never redeployed
    history["dev"].append(Deployment("dev", "1.0.0", at(16)))
    again = decide(lifecycle(0), RELEASES, history, at(20), verification=verification)
    assert not [p for p in again.promotions if p.environment == "dev"]


def test_rollback_without_an_earlier_verified_release_holds() -> None:
    history = deployed(("dev", "1.0.0", 0))
    verification = Verifications({"dev": "rollback"}, {("dev", "1.0.0"): failed(3)})
    decision = decide(lifecycle(0), RELEASES[:1], history, at(5), verification=verification)
    assert not [p for p in decision.promotions if p.environment == "dev"]
    assert (
        Waiting(
            "dev",
            "1.0.0",
            "verification failed: Degraded: CrashLoopBackOff; "
            "no earlier verified release to roll back to",
        )
        in decision.waiting
    )


def test_rollback_gives_way_to_a_newer_release() -> None:
    releases = [*RELEASES, release("1.0.2", 20)]
    history = deployed(("dev", "1.0.0", 0), ("dev", "1.0.1", 10))
    verification = Verifications(
        {"dev": "rollback"}, {("dev", "1.0.0"): verified(2), ("dev", "1.0.1"): failed(12)}
    )
    decision = decide(lifecycle(0), releases, history, at(21), verification=verification)
    dev = [p for p in decision.promotions if p.environment == "dev"]
    assert dev == [Promotion("dev", "1.0.2", "dev", "new release")]


def test_recorded_verifications_come_from_the_state_files_deployments() -> None:
    from reconciler.model import Environment, Project
    from reconciler.verdicts import recorded_verifications
    from reconciler.verify.model import ArgoCDCheck, VerifySpec

    spec = VerifySpec((ArgoCDCheck("shop-dev"),), on_failure="rollback")
    project = Project(
        "shop", "standard", (), (),
        {"dev": Environment("dev", "o/dev", verify=spec), "staging": Environment("staging", "o")},
    )  # fmt: skip
    history = {
        "dev": [
            Deployment("dev", "1.0.0", at(0), verification="verified", verified_at=at(2)),
            Deployment(
                "dev",
                "1.0.1",
                at(5),
                verification="failed",
                verified_at=at(7),
                verification_reason="Degraded: x",
            ),
            Deployment("dev", "1.0.0", at(8), by="reconciler (rollback)"),
            Deployment("dev", "1.0.2", at(9)),
        ],
        "staging": [Deployment("staging", "1.0.0", at(3))],
    }
    recorded = recorded_verifications(project, history)
    assert recorded.on_failure == {"dev": "rollback"}
    assert recorded.state("dev", "1.0.0") == VerificationState("verified", at(2))
    assert recorded.state("dev", "1.0.1") == VerificationState("failed", at(7), "Degraded: x")
    assert recorded.state("dev", "1.0.2").status == "pending"
    assert not recorded.verifies("staging")
