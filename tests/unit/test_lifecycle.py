"""Lifecycle decisions: (phases, deployments, clock) -> promotions and waits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.lifecycle import (
    Decision,
    Promotion,
    ReleaseState,
    Waiting,
    check_manual,
    current_release,
    decide,
    phase_of,
)
from reconciler.model import (
    Deployment,
    FreezeWindow,
    Lifecycle,
    Phase,
    PhaseEnvironment,
    Release,
)

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stamp(minutes: float) -> str:
    """A time as it appears in reasons."""
    return at(minutes).strftime("%Y-%m-%dT%H:%M:%SZ")


def phase(
    name: str,
    *automatic: str,
    manual: Sequence[str] = (),
    minimum: int | None = None,
    optional: bool = False,
    soak_minutes: float = 0,
) -> Phase:
    environments = tuple(PhaseEnvironment(e) for e in automatic) + tuple(
        PhaseEnvironment(e, automatic=False) for e in manual
    )
    return Phase(name, environments, minimum, optional, soak_minutes * 60)


def release(
    version: str, minutes: float = 0, *, channel: str = "default", blocked: str | None = None
) -> ReleaseState:
    return ReleaseState(version, channel, at(minutes), blocked)


def history(*entries: tuple[str, str, float]) -> dict[str, list[Deployment]]:
    """(environment, release, minutes after T0) in any order."""
    result: dict[str, list[Deployment]] = {}
    for environment, version, minutes in entries:
        result.setdefault(environment, []).append(Deployment(environment, version, at(minutes)))
    return result


TWO_OF_THREE = Lifecycle(
    "m", (phase("test", "a", manual=["b", "c"], minimum=2), phase("live", "live"))
)

# dev -> (1 h soak in dev) -> staging -> prod (manual)
STANDARD = Lifecycle(
    "standard",
    (
        phase("dev", "dev", soak_minutes=60),
        phase("staging", "staging"),
        phase("production", manual=["prod"]),
    ),
)


@dataclass
class Case:
    lifecycle: Lifecycle
    releases: list[ReleaseState]
    history: dict[str, list[Deployment]]
    now: float  # minutes after T0
    promotions: list[tuple[str, str]]  # (environment, release)
    waiting: list[tuple[str, str | None, str, float | None]] = field(default_factory=list)
    pins: Mapping[str, str | None] = field(default_factory=dict)
    channels: set[str] | None = None


CASES: dict[str, Case] = {
    "new release goes to the first phase": Case(
        STANDARD, [release("1.0.0")], {}, now=1, promotions=[("dev", "1.0.0")]
    ),
    "several new releases: the newest goes": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 1), release("1.2.0", 2)],
        history(("dev", "1.0.0", 0)),
        now=3,
        promotions=[("dev", "1.2.0")],
        waiting=[("staging", "1.0.0", f"soaking in dev until {stamp(60)}", 60)],
    ),
    "soak remaining in dev, with the time it ends": Case(
        STANDARD,
        [release("1.0.0")],
        history(("dev", "1.0.0", 5)),
        now=30,
        promotions=[],
        waiting=[("staging", "1.0.0", f"soaking in dev until {stamp(65)}", 65)],
    ),
    "soak over: staging gets it automatically": Case(
        STANDARD,
        [release("1.0.0")],
        history(("dev", "1.0.0", 5)),
        now=65,
        promotions=[("staging", "1.0.0")],
    ),
    "manual prod waits for approval": Case(
        STANDARD,
        [release("1.0.0")],
        history(("dev", "1.0.0", 0), ("staging", "1.0.0", 60)),
        now=61,
        promotions=[],
        waiting=[("prod", "1.0.0", "manual approval pending", None)],
    ),
    "manual prod waits for the newest release open to it": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 10), release("1.2.0", 20)],
        history(
            ("dev", "1.0.0", 0),
            ("dev", "1.1.0", 10),
            ("dev", "1.2.0", 20),
            ("staging", "1.0.0", 60),
            ("staging", "1.1.0", 70),
            ("prod", "1.0.0", 65),
        ),
        now=75,
        promotions=[],
        waiting=[
            ("staging", "1.2.0", f"soaking in dev until {stamp(80)}", 80),
            ("prod", "1.1.0", "manual approval pending", None),
        ],
    ),
    "minimum environments: one of three is not enough": Case(
        TWO_OF_THREE,
        [release("1.0.0")],
        history(("a", "1.0.0", 0)),
        now=10,
        promotions=[],
        waiting=[
            ("b", "1.0.0", "manual approval pending", None),
            ("c", "1.0.0", "manual approval pending", None),
        ],
    ),
    "minimum environments: two of three open the next phase": Case(
        TWO_OF_THREE,
        [release("1.0.0")],
        history(("a", "1.0.0", 0), ("b", "1.0.0", 10)),
        now=11,
        promotions=[("live", "1.0.0")],
        waiting=[("c", "1.0.0", "manual approval pending", None)],
    ),
    "minimum environments: soak starts when the minimum is reached": Case(
        Lifecycle(
            "m",
            (
                phase("test", "a", manual=["b", "c"], minimum=2, soak_minutes=30),
                phase("live", "live"),
            ),
        ),
        [release("1.0.0")],
        history(("a", "1.0.0", 0), ("b", "1.0.0", 10)),
        now=35,
        promotions=[],
        waiting=[
            ("c", "1.0.0", "manual approval pending", None),
            ("live", "1.0.0", f"soaking in test until {stamp(40)}", 40),  # not 30
        ],
    ),
    "default minimum is every environment of the phase": Case(
        Lifecycle("m", (phase("test", "a", "b"), phase("live", "live"))),
        [release("1.0.0")],
        history(("a", "1.0.0", 0)),
        now=5,
        promotions=[("b", "1.0.0")],
    ),
    "optional manual phase does not hold the next one": Case(
        Lifecycle(
            "o",
            (phase("dev", "dev"), phase("qa", manual=["qa"], optional=True), phase("stg", "stg")),
        ),
        [release("1.0.0")],
        history(("dev", "1.0.0", 0)),
        now=1,
        promotions=[("stg", "1.0.0")],
        waiting=[("qa", "1.0.0", "manual approval pending", None)],
    ),
    "optional automatic phase is deployed alongside the next one": Case(
        Lifecycle(
            "o", (phase("dev", "dev"), phase("qa", "qa", optional=True), phase("stg", "stg"))
        ),
        [release("1.0.0")],
        history(("dev", "1.0.0", 0)),
        now=1,
        promotions=[("qa", "1.0.0"), ("stg", "1.0.0")],
    ),
    "optional phase needs the phases before it": Case(
        Lifecycle(
            "o", (phase("dev", "dev"), phase("qa", "qa", optional=True), phase("stg", "stg"))
        ),
        [release("1.0.0")],
        {},
        now=1,
        promotions=[("dev", "1.0.0")],
    ),
    "blocked newest release is skipped in favour of the next": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 10), release("1.2.0", 20, blocked="bad migration")],
        history(
            ("dev", "1.0.0", 0),
            ("dev", "1.1.0", 10),
            ("dev", "1.2.0", 20),
            ("staging", "1.0.0", 60),
        ),
        now=90,
        promotions=[("staging", "1.1.0")],
        waiting=[
            ("staging", "1.2.0", "blocked: bad migration", None),
            ("prod", "1.0.0", "manual approval pending", None),
        ],
    ),
    "blocked release is not deployed to the first phase either": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 10, blocked="CVE-2024-1234")],
        history(("dev", "1.0.0", 0)),
        now=11,
        promotions=[],
        waiting=[
            ("dev", "1.1.0", "blocked: CVE-2024-1234", None),
            ("staging", "1.0.0", f"soaking in dev until {stamp(60)}", 60),
        ],
    ),
    "never backwards: staging runs a newer release than the one that finished soaking": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 10)],
        history(("dev", "1.0.0", 0), ("dev", "1.1.0", 10), ("staging", "1.1.0", 15)),
        now=61,
        promotions=[],
        waiting=[("prod", "1.1.0", f"soaking in dev until {stamp(70)}", 70)],
    ),
    "a rollback sticks until a newer release arrives": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 10)],
        history(("dev", "1.0.0", 0), ("dev", "1.1.0", 10), ("dev", "1.0.0", 20)),
        now=21,
        promotions=[],
        waiting=[("staging", "1.0.0", f"soaking in dev until {stamp(60)}", 60)],
    ),
    "after a rollback the next new release is deployed": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 10), release("1.2.0", 30)],
        history(("dev", "1.0.0", 0), ("dev", "1.1.0", 10), ("dev", "1.0.0", 20)),
        now=31,
        promotions=[("dev", "1.2.0")],
        waiting=[("staging", "1.0.0", f"soaking in dev until {stamp(60)}", 60)],
    ),
    "pinned environment is left alone": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 10)],
        history(("dev", "1.0.0", 0)),
        now=11,
        pins={"dev": None},
        promotions=[],
        waiting=[
            ("dev", "1.0.0", "pinned", None),
            ("staging", "1.0.0", f"soaking in dev until {stamp(60)}", 60),
        ],
    ),
    "pinned to a release names it": Case(
        STANDARD,
        [release("1.0.0")],
        history(("dev", "1.0.0", 0)),
        now=61,
        pins={"staging": "0.9.0"},
        promotions=[],
        waiting=[("staging", "0.9.0", "pinned", None)],
    ),
    "unknown current release: only releases created after it arrived are newer": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 10)],
        history(("dev", "0.9.0-handmade", 5), ("staging", "0.9.0-handmade", 5)),
        now=11,
        promotions=[("dev", "1.1.0")],
    ),
    "unknown current release: older releases are not proposed": Case(
        STANDARD,
        [release("1.0.0")],
        history(("dev", "0.9.0-handmade", 5)),
        now=6,
        promotions=[],
    ),
    "release of a channel left out of the list counts as unknown": Case(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 30)],
        history(("dev", "1.0.5-hotfix", 20)),  # the caller passed only the default channel
        now=31,
        promotions=[("dev", "1.1.0")],
    ),
    "releases of other channels are compared but not proposed": Case(
        STANDARD,
        [release("1.0.0"), release("1.0.1-hotfix", 5, channel="hotfix"), release("1.1.0", 10)],
        history(("dev", "1.0.1-hotfix", 5)),
        now=11,
        channels={"default"},
        promotions=[("dev", "1.1.0")],
    ),
    "running a newer release of another channel holds older ones back": Case(
        STANDARD,
        [release("1.0.0"), release("1.0.1-hotfix", 5, channel="hotfix")],
        history(("dev", "1.0.1-hotfix", 5)),
        now=6,
        channels={"default"},
        promotions=[],
    ),
    "freeze turns a promotion into a wait": Case(
        Lifecycle(
            "f",
            STANDARD.phases,
            freezes=(
                FreezeWindow("monday-lunch", environments=("staging",), start="12:30", end="14:00"),
            ),
        ),
        [release("1.0.0")],
        history(("dev", "1.0.0", 0)),
        now=65,
        promotions=[],
        waiting=[("staging", "1.0.0", f"frozen by monday-lunch until {stamp(120)}", 120)],
    ),
    "freeze of another environment does not matter": Case(
        Lifecycle(
            "f",
            STANDARD.phases,
            freezes=(
                FreezeWindow("prod-lunch", environments=("prod",), start="12:30", end="14:00"),
            ),
        ),
        [release("1.0.0")],
        history(("dev", "1.0.0", 0)),
        now=65,
        promotions=[("staging", "1.0.0")],
    ),
    "freeze in another time zone has ended": Case(
        Lifecycle(
            "f",
            STANDARD.phases,
            # 12:30-14:00 New York is 16:30-18:00 UTC in May
            freezes=(
                FreezeWindow("ny-lunch", timezone="America/New_York", start="12:30", end="14:00"),
            ),
        ),
        [release("1.0.0")],
        history(("dev", "1.0.0", 0)),
        now=65,
        promotions=[("staging", "1.0.0")],
    ),
    "frozen manual environment still waits for approval": Case(
        Lifecycle(
            "f",
            STANDARD.phases,
            freezes=(FreezeWindow("all-day", start="00:00", end="00:00"),),
        ),
        [release("1.0.0")],
        history(("dev", "1.0.0", 0), ("staging", "1.0.0", 60)),
        now=61,
        promotions=[],
        waiting=[("prod", "1.0.0", "manual approval pending", None)],
    ),
    "output is ordered by phase, then environment name": Case(
        Lifecycle("s", (phase("first", "zulu", "alpha"), phase("second", "mike", "bravo"))),
        [release("1.0.0")],
        history(("zulu", "1.0.0", 0), ("alpha", "1.0.0", 0)),
        now=1,
        promotions=[("bravo", "1.0.0"), ("mike", "1.0.0")],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide(case: Case) -> None:
    decision = decide(
        case.lifecycle,
        case.releases,
        case.history,
        at(case.now),
        pins=case.pins,
        channels=case.channels,
    )
    assert [(p.environment, p.release) for p in decision.promotions] == case.promotions
    assert [(w.environment, w.release, w.reason, w.until) for w in decision.waiting] == [
        (e, r, reason, None if m is None else at(m)) for e, r, reason, m in case.waiting
    ]


def test_promotions_say_which_phases_opened_them() -> None:
    lifecycle = Lifecycle(
        "r",
        (
            phase("dev", "dev"),
            phase("qa", "qa", optional=True),
            phase("stg", "stg"),
            phase("live", "live"),
        ),
    )
    decision = decide(
        lifecycle,
        [release("1.0.0"), release("1.1.0", 1)],
        history(("dev", "1.0.0", 0), ("stg", "1.0.0", 0)),
        at(2),
    )
    assert decision.promotions == (
        Promotion("dev", "1.1.0", "dev", "new release"),
        Promotion("qa", "1.0.0", "qa", "dev complete"),
        Promotion("live", "1.0.0", "live", "dev, stg complete"),
    )


def test_history_order_does_not_matter() -> None:
    shuffled = {
        "dev": [
            Deployment("dev", "1.1.0", at(10)),
            Deployment("dev", "1.0.0", at(0)),
        ]
    }
    assert current_release(shuffled, "dev") == "1.1.0"
    assert current_release(shuffled, "staging") is None
    later_entry_wins = {
        "dev": [Deployment("dev", "1.0.0", at(0)), Deployment("dev", "1.1.0", at(0))]
    }
    assert current_release(later_entry_wins, "dev") == "1.1.0"


def test_phase_of() -> None:
    assert phase_of(STANDARD, "prod") == STANDARD.phases[2]
    assert phase_of(STANDARD, "qa") is None


def test_wake_at_is_the_earliest_soak_end() -> None:
    decision = decide(
        STANDARD,
        [release("1.0.0"), release("1.1.0", 10)],
        history(("dev", "1.0.0", 0), ("dev", "1.1.0", 10)),
        at(30),
    )
    # 1.0.0 opens staging first; 1.1.0 (at 70) is reported once 1.0.0 has gone.
    assert decision.waiting == (
        Waiting("staging", "1.0.0", f"soaking in dev until {stamp(60)}", at(60)),
    )
    assert decision.wake_at == at(60)
    assert Decision().wake_at is None


def test_release_state_from_a_release_record() -> None:
    record = Release("shop", "1.0.0", "stable", "api", T0, ())
    assert ReleaseState.of(record, blocked="broken") == ReleaseState(
        "1.0.0", "stable", T0, "broken"
    )


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(STANDARD, [], {}, datetime(2024, 5, 6))
    with pytest.raises(ValueError, match=r"release 1\.0\.0 is listed twice"):
        decide(STANDARD, [release("1.0.0"), release("1.0.0")], {}, T0)


# --- soak without starvation ---------------------------------------------------------------------


def test_builds_faster_than_soak_still_reach_staging() -> None:
    """A release every 10 minutes, 1 h soak in dev: staging keeps getting releases.

    Simulates the reconciler: every 5 minutes a pass creates the due release,
    asks for a decision and records the promotions as deployments.
    """
    releases: list[ReleaseState] = []
    deployments: dict[str, list[Deployment]] = {}
    staging_arrivals: list[tuple[str, datetime]] = []
    for minute in range(0, 6 * 60, 5):
        now = at(minute)
        if minute % 10 == 0:
            releases.append(release(f"1.0.{minute // 10}", minute))
        for promotion in decide(STANDARD, releases, deployments, now).promotions:
            deployments.setdefault(promotion.environment, []).append(
                Deployment(promotion.environment, promotion.release, now)
            )
            if promotion.environment == "staging":
                staging_arrivals.append((promotion.release, now))
    # The first release soaked for exactly an hour, then staging followed dev an hour behind.
    assert staging_arrivals[0] == ("1.0.0", at(60))
    assert len(staging_arrivals) == (6 * 60 - 60) // 10  # every release, none starved
    created = {r.version: r.created for r in releases}
    assert all(when - created[version] == timedelta(hours=1) for version, when in staging_arrivals)
    assert current_release(deployments, "dev") == "1.0.35"


# --- manual promotion checks -------------------------------------------------------------------

MANUAL_RELEASES = [
    release("1.0.0"),
    release("1.1.0", 10),
    release("1.2.0", 20, blocked="bad migration"),
    release("2.0.0-hotfix", 25, channel="hotfix"),
    release("1.3.0", 30),
]
MANUAL_HISTORY = history(
    ("dev", "1.0.0", 0),
    ("dev", "1.1.0", 10),
    ("dev", "1.3.0", 30),
    ("staging", "1.0.0", 60),
    ("staging", "1.1.0", 70),
    ("prod", "1.1.0", 80),
)
FROZEN_STANDARD = Lifecycle(
    "standard",
    STANDARD.phases,
    freezes=(
        FreezeWindow("change-freeze", environments=("prod",), from_time=at(0), to_time=at(24 * 60)),
    ),
)


@pytest.mark.parametrize(
    ("lifecycle", "version", "environment", "options", "expected"),
    [
        (STANDARD, "1.1.0", "qa", {}, "environment qa is not in lifecycle standard"),
        (STANDARD, "9.9.9", "prod", {}, "unknown release 9.9.9"),
        (
            STANDARD,
            "2.0.0-hotfix",
            "prod",
            {"channels": {"default"}},
            "release 2.0.0-hotfix is in channel hotfix, which does not follow lifecycle standard",
        ),
        (
            STANDARD,
            "1.3.0",
            "prod",
            {"pins": {"prod": "1.0.0"}},
            "environment prod is pinned to 1.0.0",
        ),
        (STANDARD, "1.3.0", "prod", {"pins": {"prod": None}}, "environment prod is pinned"),
        (STANDARD, "1.2.0", "prod", {}, "release 1.2.0 is blocked: bad migration"),
        (STANDARD, "1.1.0", "prod", {}, "release 1.1.0 is already deployed to prod"),
        (STANDARD, "1.0.0", "prod", {}, "release 1.0.0 is older than 1.1.0 in prod; use rollback"),
        (
            STANDARD,
            "1.3.0",
            "prod",
            {},
            "phase production is not open for release 1.3.0:"
            " phase staging is not complete (0 of 1 environments deployed)",
        ),
        (
            STANDARD,
            "1.3.0",
            "staging",
            {},
            f"phase staging is not open for release 1.3.0: soaking in dev until {stamp(90)}",
        ),
        (
            FROZEN_STANDARD,
            "1.1.0",
            "prod",
            {"release_history": "prod-empty"},
            f"prod is frozen by change-freeze until {stamp(24 * 60)};"
            " override the freeze to deploy anyway",
        ),
        (
            FROZEN_STANDARD,
            "1.1.0",
            "prod",
            {"release_history": "prod-empty", "override_freeze": True},
            None,
        ),
        (STANDARD, "1.1.0", "dev", {}, "release 1.1.0 is older than 1.3.0 in dev; use rollback"),
    ],
)
def test_check_manual(
    lifecycle: Lifecycle,
    version: str,
    environment: str,
    options: dict[str, object],
    expected: str | None,
) -> None:
    deployments = dict(MANUAL_HISTORY)
    options = dict(options)
    if options.pop("release_history", None) == "prod-empty":
        deployments.pop("prod")
    reason = check_manual(
        lifecycle,
        MANUAL_RELEASES,
        deployments,
        at(85),
        release=version,
        environment=environment,
        **options,  # type: ignore[arg-type]
    )
    assert reason == expected


def test_check_manual_allows_an_open_phase_after_a_rollback() -> None:
    # prod rolled back from 1.1.0 to 1.0.0; promoting 1.1.0 again is forwards.
    deployments = dict(MANUAL_HISTORY)
    deployments["prod"] = [Deployment("prod", "1.1.0", at(80)), Deployment("prod", "1.0.0", at(82))]
    assert (
        check_manual(
            STANDARD, MANUAL_RELEASES, deployments, at(85), release="1.1.0", environment="prod"
        )
        is None
    )


def test_check_manual_freeze_comes_after_other_reasons() -> None:
    reason = check_manual(
        FROZEN_STANDARD,
        MANUAL_RELEASES,
        MANUAL_HISTORY,
        at(85),
        release="1.2.0",
        environment="prod",
        override_freeze=True,
    )
    assert reason == "release 1.2.0 is blocked: bad migration"


# --- properties ----------------------------------------------------------------------------------

ENVIRONMENTS = ["e1", "e2", "e3", "e4", "e5"]
Scenario = tuple[
    Lifecycle,
    list[ReleaseState],
    dict[str, list[Deployment]],
    datetime,
    dict[str, str | None],
    set[str] | None,
]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    names = draw(st.permutations(ENVIRONMENTS))
    cuts = sorted(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2, unique=True)))
    groups = [names[a:b] for a, b in zip([0, *cuts], [*cuts, len(names)], strict=True)]
    phases = tuple(
        Phase(
            f"p{i}",
            tuple(PhaseEnvironment(n, automatic=draw(st.booleans())) for n in group),
            minimum_environments=draw(st.none() | st.integers(0, len(group))),
            optional=draw(st.booleans()),
            soak=draw(st.sampled_from([0.0, 600.0, 3600.0])),
        )
        for i, group in enumerate(groups)
    )
    freezes = tuple(
        draw(
            st.lists(
                st.builds(
                    FreezeWindow,
                    name=st.just("freeze"),
                    environments=st.lists(st.sampled_from(ENVIRONMENTS), max_size=2).map(tuple),
                    start=st.sampled_from(["12:00", "13:00", "23:00"]),
                    end=st.sampled_from(["12:30", "14:00", "01:00"]),
                ),
                max_size=1,
            )
        )
    )
    count = draw(st.integers(1, 6))
    releases = [
        ReleaseState(
            f"1.{i}.0",
            draw(st.sampled_from(["default", "hotfix"])),
            at(10 * i),
            draw(st.none() | st.just("broken")),
        )
        for i in range(count)
    ]
    deployments: dict[str, list[Deployment]] = {}
    for _ in range(draw(st.integers(0, 12))):
        environment = draw(st.sampled_from(ENVIRONMENTS))
        version = draw(st.sampled_from([r.version for r in releases] + ["0.0.1-unknown"]))
        deployments.setdefault(environment, []).append(
            Deployment(environment, version, at(draw(st.integers(0, 180))))
        )
    now = at(draw(st.integers(0, 240)))
    pins = draw(
        st.dictionaries(st.sampled_from(ENVIRONMENTS), st.none() | st.just("1.0.0"), max_size=2)
    )
    channels = draw(st.none() | st.just({"default"}))
    return Lifecycle("prop", phases, freezes), releases, deployments, now, pins, channels


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_decide_never_goes_backwards_and_never_proposes_blocked_releases(
    scenario: Scenario,
) -> None:
    lifecycle, releases, deployments, now, pins, channels = scenario
    decision = decide(lifecycle, releases, deployments, now, pins=pins, channels=channels)
    position = {r.version: i for i, r in enumerate(releases)}
    automatic = {e.name: e.automatic for p in lifecycle.phases for e in p.environments}
    for promotion in decision.promotions:
        proposed = releases[position[promotion.release]]
        assert proposed.blocked is None
        assert channels is None or proposed.channel in channels
        assert automatic[promotion.environment]
        assert promotion.environment not in pins
        current = current_release(deployments, promotion.environment)
        if current in position:
            assert position[promotion.release] > position[current]
        elif current is not None:  # unknown: created after it arrived
            arrived = max(d.at for d in deployments[promotion.environment])
            assert proposed.created > arrived
        # What decide promotes, a person would be allowed to promote too.
        assert (
            check_manual(
                lifecycle,
                releases,
                deployments,
                now,
                release=promotion.release,
                environment=promotion.environment,
                pins=pins,
                channels=channels,
            )
            is None
        )
    for wait in decision.waiting:
        assert wait.until is None or wait.until > now
    # Deterministic, and ordered by phase then environment.
    assert decide(lifecycle, releases, deployments, now, pins=pins, channels=channels) == decision
    order = {e.name: (i, e.name) for i, p in enumerate(lifecycle.phases) for e in p.environments}
    keys = [order[p.environment] for p in decision.promotions]
    assert keys == sorted(keys)


def test_project_lifecycle_expands_tenants_in_phases_and_freezes():
    from reconciler.model import (
        FreezeWindow,
        Lifecycle,
        Phase,
        PhaseEnvironment,
        Project,
        project_lifecycle,
    )

    lifecycle = Lifecycle(
        "standard",
        (
            Phase("dev", (PhaseEnvironment("dev"),)),
            Phase("prod", (PhaseEnvironment("prod", automatic=False),), minimum_environments=1),
        ),
        freezes=(
            FreezeWindow(
                "weekend", environments=("prod",), days=("sat",), start="00:00", end="24:00"
            ),
        ),
    )
    project = Project(
        "shop", "standard", (), (), {}, tenants={"prod": ("prod@acme", "prod@globex")}
    )
    expanded = project_lifecycle(lifecycle, project)
    assert [e.name for e in expanded.phases[1].environments] == ["prod@acme", "prod@globex"]
    assert not any(e.automatic for e in expanded.phases[1].environments)
    assert expanded.phases[1].minimum_environments == 1  # counts tenants
    assert expanded.freezes[0].environments == ("prod@acme", "prod@globex")
    assert [e.name for e in expanded.phases[0].environments] == ["dev"]
    plain = Project("web", "standard", (), (), {})
    assert project_lifecycle(lifecycle, plain) is lifecycle
