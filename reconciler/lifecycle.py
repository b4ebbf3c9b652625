"""Lifecycle decisions: which release each environment should get now, and why not.

Pure: :func:`decide` takes a lifecycle, the project's releases, the deployment
history and a clock value, and returns promotions to make and reasons for
waiting. Nothing here reads files, Git or the wall clock, so the same inputs
always give the same :class:`Decision` (sorted by phase order, then
environment name).

Semantics (Octopus Deploy lifecycles, level-triggered)
------------------------------------------------------
Releases
    ``releases`` lists every release of the project, **oldest first**; that
    position is the only notion of "newer" used here. Include releases of every
    channel, so versions can be compared whatever an environment runs, and pass
    ``channels`` to say which of them follow this lifecycle (a channel with its
    own lifecycle is decided by a separate call with that lifecycle and its
    channel names). Releases outside ``channels`` are never proposed.

History
    ``history[environment]`` holds every :class:`~reconciler.model.Deployment`
    to that environment, rollbacks included. The current release is the one
    deployed last (latest ``at``; on equal times the later entry). ``at`` comes
    from Git commit times, so soak survives restarts.

Phase completion
    A phase is *complete* for release R when at least ``minimum_environments``
    (default: all; capped at the number of environments) of its environments
    have had R deployed at some point, even if since superseded, **and**
    ``soak`` seconds have passed since the moment that minimum was reached (the
    minimum-th earliest first deployment of R there). A phase needing zero
    environments counts as reached when R was created.

Phase opening
    The first phase is open for every release from its creation. Phase N is
    open for R when every earlier **non-optional** phase is complete for R.
    Optional phases never hold anything back: the phase after an optional
    phase opens together with it, and deployments to the optional phase still
    count for its own completion.

Automatic environments
    An automatic environment in an open phase gets the *newest* release for
    which its phase is open and which is newer than every release it has ever
    run. So phase-one environments get each new release (the newest, when
    several arrived since the last pass), and an automatic promotion never
    goes backwards. Measuring against everything the environment has run,
    not just the current release, makes a rollback stick: after rolling back
    from 1.5 to 1.3, 1.4 is not deployed again automatically, but 1.6 will be.

Soak without starvation
    Completion counts history, so a release that soaked in dev opens staging
    even when newer releases have replaced it in dev and are soaking in turn:
    staging gets the newest release that has finished soaking, instead of
    waiting for builds to stop arriving.

Manual environments
    Never promoted here. They get ``Waiting("manual approval pending")`` for
    the newest release that is open for them and newer than their current one;
    a person approves through the promote command (see :func:`check_manual`).

Blocked releases
    Never proposed (automatic or manual). They are skipped so the next newest
    release is considered, and a ``Waiting("blocked: <reason>")`` is reported
    for each blocked release that would otherwise have been chosen.

Freeze windows (:mod:`reconciler.freeze`)
    While a window covers an automatic environment, its promotion becomes
    ``Waiting("frozen by <window> until <time>")``. Manual environments keep
    reporting "manual approval pending"; :func:`check_manual` refuses during a
    freeze unless the freeze is explicitly overridden.

Pins
    A pinned environment (``pins[env]`` = the pinned release, or None to hold
    whatever it runs) is never changed: ``Waiting("pinned")``.

Soak still running
    Each environment also gets at most one ``Waiting("soaking in <phase> until
    <time>")`` for the release, newer than what it gets or waits for now, that
    will open soonest; ``until`` is when. :attr:`Decision.wake_at` is the
    earliest ``until`` of all waits (soak or freeze ends), so a loop knows when
    the clock alone changes the answer.

Unknown releases
    An environment may run a version missing from ``releases`` (a record
    pruned from a bounded list, a release of a channel left out, a hand edit).
    Its position is unknown, so only releases *created after* it arrived in
    the environment count as newer: such a release was certainly created after
    the one running. :func:`check_manual` skips the backwards check then, since
    a person can tell.

Verified deployments (``verification``, issue 17)
    An environment with ``verify`` counts a deployment only once it is
    *verified*: ``first_deployed`` uses the verification time, so phase
    completion, ``minimumEnvironments`` and soak all start there. A pending or
    failed deployment counts for nothing, so a failed release never opens the
    next phase from that environment. The environment's current deployment
    reports ``Waiting("verifying …")`` while pending (``until`` = its next poll,
    so :attr:`Decision.wake_at` covers polls) and ``Waiting("verification
    failed: …")`` once failed. With ``onFailure: rollback`` and nothing newer to
    deploy, the previous verified release comes back as a ``Promotion`` with
    ``rollback=True``; the automatic floor already includes the failed release,
    so it is never deployed again automatically. Environments without
    ``verify`` are decided exactly as before.

An environment listed in two phases is taken from the first (config
validation rejects that).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from reconciler.freeze import active_freeze
from reconciler.model import Deployment, Lifecycle, Phase, PhaseEnvironment, Release
from reconciler.verdicts import NO_VERIFICATION, Verifications

History = Mapping[str, Sequence[Deployment]]

MANUAL_APPROVAL_PENDING = "manual approval pending"
PINNED = "pinned"


@dataclass(frozen=True)
class ReleaseState:
    """What a decision needs to know about one release."""

    version: str
    channel: str
    created: datetime
    blocked: str | None = None  # why progression is prevented; None = not blocked

    @classmethod
    def of(cls, release: Release, *, blocked: str | None = None) -> ReleaseState:
        return cls(release.version, release.channel, release.created, blocked)


@dataclass(frozen=True)
class Promotion:
    """Deploy ``release`` to ``environment`` now (``rollback``: a failed one's undo)."""

    environment: str
    release: str
    phase: str
    reason: str
    automatic: bool = True
    rollback: bool = False


@dataclass(frozen=True)
class Waiting:
    """Why ``environment`` does not get ``release`` now; ``until`` when known."""

    environment: str
    release: str | None
    reason: str
    until: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """What :func:`decide` concluded, ordered by phase, then environment name."""

    promotions: tuple[Promotion, ...] = ()
    waiting: tuple[Waiting, ...] = ()

    @property
    def wake_at(self) -> datetime | None:
        """The earliest moment at which time alone may change this decision."""
        times = [w.until for w in self.waiting if w.until is not None]
        return min(times) if times else None


def current_release(history: History, environment: str) -> str | None:
    """The release ``environment`` runs: its last deployment, None if never deployed."""
    latest = _last_deployment(history, environment)
    return latest.release if latest is not None else None


def _last_deployment(history: History, environment: str) -> Deployment | None:
    latest: Deployment | None = None
    for deployment in history.get(environment, ()):
        if latest is None or deployment.at >= latest.at:
            latest = deployment
    return latest


def phase_of(lifecycle: Lifecycle, environment: str) -> Phase | None:
    """The (first) phase of ``lifecycle`` holding ``environment``, or None."""
    for phase in lifecycle.phases:
        if any(e.name == environment for e in phase.environments):
            return phase
    return None


def decide(
    lifecycle: Lifecycle,
    releases: Sequence[ReleaseState],
    history: History,
    now: datetime,
    *,
    pins: Mapping[str, str | None] | None = None,
    channels: Collection[str] | None = None,
    verification: Verifications = NO_VERIFICATION,
) -> Decision:
    """Promotions to make now and reasons for everything else (module docstring).

    ``releases`` oldest first; ``channels`` = the channels following this
    lifecycle (None = all); ``now`` must be timezone-aware; ``verification`` says
    which environments verify their deployments and what was concluded.
    """
    timeline = _Timeline(lifecycle, releases, history, now, channels, verification)
    pins = pins or {}
    promotions: list[Promotion] = []
    waiting: list[Waiting] = []
    for phase_index, environment in timeline.environments():
        name = environment.name
        if name in pins:
            waiting.append(Waiting(name, pins[name] or current_release(history, name), PINNED))
            continue
        floor = timeline.floor(name, automatic=environment.automatic)
        pick = _newest_open(timeline, phase_index, name, floor, waiting)
        if verification.verifies(name):
            rollback = _verification_step(timeline, phase_index, name, pick, waiting)
            if rollback is not None and environment.automatic:
                promotions.append(rollback)
        if pick is not None and not environment.automatic:
            waiting.append(Waiting(name, releases[pick].version, MANUAL_APPROVAL_PENDING))
        elif pick is not None:
            version = releases[pick].version
            freeze = active_freeze(lifecycle.freezes, name, now)
            if freeze is not None:
                reason = f"frozen by {freeze.window} until {_format(freeze.until)}"
                waiting.append(Waiting(name, version, reason, freeze.until))
            else:
                phase = lifecycle.phases[phase_index]
                reason = timeline.open_reason(phase_index)
                promotions.append(Promotion(name, version, phase.name, reason))
        # Only releases newer than the one chosen (or than the floor) matter next.
        after = floor if pick is None else replace(floor, position=pick)
        soaking = _next_to_open(timeline, phase_index, after)
        if soaking is not None:
            waiting.append(soaking.waiting(name, releases))
    return Decision(tuple(promotions), tuple(waiting))


def check_manual(
    lifecycle: Lifecycle,
    releases: Sequence[ReleaseState],
    history: History,
    now: datetime,
    *,
    release: str,
    environment: str,
    override_freeze: bool = False,
    pins: Mapping[str, str | None] | None = None,
    channels: Collection[str] | None = None,
    verification: Verifications = NO_VERIFICATION,
) -> str | None:
    """Whether a person may promote ``release`` to ``environment`` now.

    Returns None when allowed, else the reason for refusing. Checks, in order:
    the environment is in the lifecycle, the release is known and follows this
    lifecycle, the environment is not pinned, the release is not blocked, it
    is not already there, it does not move the environment backwards (that is
    a rollback, a separate command), its phase is open, and no freeze is in
    force (unless ``override_freeze``). The freeze comes last so that
    overriding it never hides another reason.
    """
    timeline = _Timeline(lifecycle, releases, history, now, verification=verification)
    phase_index = timeline.phase_index.get(environment)
    if phase_index is None:
        return f"environment {environment} is not in lifecycle {lifecycle.name}"
    position = timeline.index.get(release)
    if position is None:
        return f"unknown release {release}"
    state = releases[position]
    if channels is not None and state.channel not in channels:
        return (
            f"release {release} is in channel {state.channel},"
            f" which does not follow lifecycle {lifecycle.name}"
        )
    pins = pins or {}
    if environment in pins:
        pinned = pins[environment]
        return f"environment {environment} is pinned" + (f" to {pinned}" if pinned else "")
    if state.blocked is not None:
        return f"release {release} is blocked: {state.blocked}"
    current = current_release(history, environment)
    if current == release:
        return f"release {release} is already deployed to {environment}"
    current_position = timeline.index.get(current) if current is not None else None
    if current_position is not None and current_position > position:
        return f"release {release} is older than {current} in {environment}; use rollback"
    gate = timeline.gate(position, phase_index)
    if not gate.open:
        phase = lifecycle.phases[phase_index]
        return f"phase {phase.name} is not open for release {release}: {gate.why_closed}"
    freeze = active_freeze(lifecycle.freezes, environment, now)
    if freeze is not None and not override_freeze:
        return (
            f"{environment} is frozen by {freeze.window} until {_format(freeze.until)};"
            " override the freeze to deploy anyway"
        )
    return None


@dataclass(frozen=True)
class _Gate:
    """Whether a phase is open for a release, and if not, why and until when."""

    open: bool
    opens_at: datetime | None = None  # set when only soak time is missing
    why_closed: str | None = None
    soaking_in: str | None = None  # the phase whose soak ends last


@dataclass(frozen=True)
class _Floor:
    """What a release must be newer than to be proposed for one environment."""

    position: int  # only releases after this position (-1: any)
    created_after: datetime | None = None  # running an unknown release: when it arrived

    def admits(self, position: int, state: ReleaseState) -> bool:
        if position <= self.position:
            return False
        return self.created_after is None or state.created > self.created_after


@dataclass(frozen=True)
class _Soaking:
    """A release that will open for an environment's phase once soak time has passed."""

    position: int
    gate: _Gate
    opens_at: datetime

    def waiting(self, environment: str, releases: Sequence[ReleaseState]) -> Waiting:
        reason = f"soaking in {self.gate.soaking_in} until {_format(self.opens_at)}"
        return Waiting(environment, releases[self.position].version, reason, self.opens_at)


class _Timeline:
    """Indexes over one call's inputs, with memoised phase gates."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        releases: Sequence[ReleaseState],
        history: History,
        now: datetime,
        channels: Collection[str] | None = None,
        verification: Verifications = NO_VERIFICATION,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.verification = verification
        self.lifecycle = lifecycle
        self.releases = releases
        self.history = history
        self.channels = channels
        self.now = now.astimezone(UTC)
        self.index: dict[str, int] = {}
        for position, state in enumerate(releases):
            if state.version in self.index:
                raise ValueError(f"release {state.version} is listed twice")
            self.index[state.version] = position
        self.phase_index: dict[str, int] = {}
        for phase_position, phase in enumerate(lifecycle.phases):
            for environment in phase.environments:
                self.phase_index.setdefault(environment.name, phase_position)
        # first_deployed[(environment, release)] = when it first counted there: its
        # arrival, or with verify its verification (pending and failed never count)
        self.first_deployed: dict[tuple[str, str], datetime] = {}
        for environment_name, deployments in history.items():
            for deployment in deployments:
                key = (environment_name, deployment.release)
                counted = verification.counted_at(*key, deployment.at)
                known = self.first_deployed.get(key)
                if counted is not None and (known is None or counted < known):
                    self.first_deployed[key] = counted
        self._gates: dict[tuple[int, int], _Gate] = {}

    def environments(self) -> list[tuple[int, PhaseEnvironment]]:
        """Every environment once, by phase order, then name."""
        seen: set[str] = set()
        ordered: list[tuple[int, PhaseEnvironment]] = []
        for phase_position, phase in enumerate(self.lifecycle.phases):
            for environment in sorted(phase.environments, key=lambda e: e.name):
                if environment.name not in seen:
                    seen.add(environment.name)
                    ordered.append((phase_position, environment))
        return ordered

    def eligible(self, state: ReleaseState) -> bool:
        """Whether the release follows this lifecycle (its channel was passed in)."""
        return self.channels is None or state.channel in self.channels

    def floor(self, environment: str, *, automatic: bool) -> _Floor:
        """What a release must be newer than to be proposed for ``environment``.

        Automatic environments: every release they have run (a rollback
        sticks); manual ones: the current release.
        """
        last = _last_deployment(self.history, environment)
        if automatic:
            position = max(
                (
                    self.index[d.release]
                    for d in self.history.get(environment, ())
                    if d.release in self.index
                ),
                default=-1,
            )
        else:
            position = self.index.get(last.release, -1) if last is not None else -1
        if last is not None and last.release not in self.index:
            return _Floor(position, created_after=last.at)
        return _Floor(position)

    def completion(self, position: int, phase: Phase) -> tuple[datetime | None, int, int]:
        """(when ``phase`` is complete for the release or None, deployed, required)."""
        version = self.releases[position].version
        arrivals = sorted(
            self.first_deployed[(e.name, version)]
            for e in phase.environments
            if (e.name, version) in self.first_deployed
        )
        required = len(phase.environments)
        if phase.minimum_environments is not None:
            required = max(0, min(phase.minimum_environments, required))
        if len(arrivals) < required:
            return None, len(arrivals), required
        reached = arrivals[required - 1] if required else self.releases[position].created
        return reached + timedelta(seconds=phase.soak), len(arrivals), required

    def gate(self, position: int, phase_position: int) -> _Gate:
        key = (position, phase_position)
        if key not in self._gates:
            self._gates[key] = self._compute_gate(position, phase_position)
        return self._gates[key]

    def _compute_gate(self, position: int, phase_position: int) -> _Gate:
        latest: datetime | None = None
        latest_phase = ""
        for phase in self.lifecycle.phases[:phase_position]:
            if phase.optional:
                continue
            complete_at, deployed, required = self.completion(position, phase)
            if complete_at is None:
                return _Gate(
                    open=False,
                    why_closed=(
                        f"phase {phase.name} is not complete"
                        f" ({deployed} of {required} environments deployed)"
                    ),
                )
            if latest is None or complete_at > latest:
                latest, latest_phase = complete_at, phase.name
        if latest is not None and latest > self.now:
            return _Gate(
                open=False,
                opens_at=latest,
                why_closed=f"soaking in {latest_phase} until {_format(latest)}",
                soaking_in=latest_phase,
            )
        return _Gate(open=True)

    def open_reason(self, phase_position: int) -> str:
        """Why a phase is open, for a promotion's reason."""
        required = [p.name for p in self.lifecycle.phases[:phase_position] if not p.optional]
        if phase_position == 0:
            return "new release"
        if not required:
            return "earlier phases are optional"
        return f"{', '.join(required)} complete"


def _verification_step(
    timeline: _Timeline,
    phase_position: int,
    environment: str,
    pick: int | None,
    waiting: list[Waiting],
) -> Promotion | None:
    """Report the current deployment's verification; a rollback when it failed, the
    environment rolls back on failure, and nothing newer is about to replace it."""
    current = _last_deployment(timeline.history, environment)
    if current is None:
        return None
    state = timeline.verification.state(environment, current.release)
    if state.status == "pending":
        reason = f"verifying {current.release}" + (f": {state.reason}" if state.reason else "")
        waiting.append(Waiting(environment, current.release, reason, state.retry_at))
        return None
    if state.status == "verified":
        return None
    reason = f"verification failed: {state.reason}" if state.reason else "verification failed"
    rolls_back = timeline.verification.on_failure.get(environment) == "rollback"
    target = _previous_verified(timeline, environment, current) if rolls_back else None
    if pick is not None or target is None:
        suffix = (
            "; no earlier verified release to roll back to" if rolls_back and not target else ""
        )
        waiting.append(Waiting(environment, current.release, reason + suffix))
        return None
    phase = timeline.lifecycle.phases[phase_position].name
    return Promotion(
        environment, target, phase, f"rollback: {current.release} {reason}", rollback=True
    )


def _previous_verified(timeline: _Timeline, environment: str, failed: Deployment) -> str | None:
    """The release ``environment`` ran last before ``failed`` that was verified there."""
    earlier = sorted(
        (d for d in timeline.history.get(environment, ()) if d.release != failed.release),
        key=lambda d: d.at,
        reverse=True,
    )
    for deployment in earlier:
        if timeline.verification.state(environment, deployment.release).status == "verified":
            return deployment.release
    return None


def _newest_open(
    timeline: _Timeline,
    phase_position: int,
    environment: str,
    floor: _Floor,
    waiting: list[Waiting],
) -> int | None:
    """Position of the newest unblocked release open for the phase and above ``floor``.

    Appends a blocked ``Waiting`` for each blocked release passed over.
    """
    for position in range(len(timeline.releases) - 1, floor.position, -1):
        state = timeline.releases[position]
        if not (timeline.eligible(state) and floor.admits(position, state)):
            continue
        if not timeline.gate(position, phase_position).open:
            continue
        if state.blocked is not None:
            waiting.append(Waiting(environment, state.version, f"blocked: {state.blocked}"))
            continue
        return position
    return None


def _next_to_open(
    timeline: _Timeline,
    phase_position: int,
    after: _Floor,
) -> _Soaking | None:
    """The unblocked release above ``after`` whose phase opens soonest by soak alone.

    On equal opening times the newer release wins: it is the one that will be chosen.
    """
    best: _Soaking | None = None
    for position in range(after.position + 1, len(timeline.releases)):
        state = timeline.releases[position]
        if not (timeline.eligible(state) and after.admits(position, state)):
            continue
        if state.blocked is not None:
            continue
        gate = timeline.gate(position, phase_position)
        if gate.opens_at is None:
            continue
        if best is None or gate.opens_at <= best.opens_at:
            best = _Soaking(position, gate, gate.opens_at)
    return best


def _format(moment: datetime) -> str:
    """UTC, to the second, ISO 8601 with Z: how times appear in reasons."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
