"""The sidecar's project memo (reconcile/memo.py, issue 22): in ``run`` one Reconciler
is kept between passes, and a project whose last pass changed nothing is replayed
instead of decided again, while nothing it depends on moved. Real registry, real Git
(a bare remote over file://), the CLI as a whole process for manual operations; the
clock is injected. Each test changes one input of a remembered project and checks
that the very next pass reacts to it (a memo that ignored that input would replay the
old answer), and that the report of a replayed pass is that of a fresh pass."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ReconcilerError
from reconciler.reconcile import Injected, PassOptions, PassResult, PassSettings, Reconciler
from reconciler.reconcile import apply as apply_module
from reconciler.verify.model import Outcome
from tests.helpers.configrepo import AppSpec, config_files, run_cli

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _apps(project: str) -> list[AppSpec]:
    ns = f"memo{uuid.uuid4().hex[:8]}"
    return [AppSpec("api", f"{ns}/{project}-api", f"example.com/{ns}/{project}-api")]


def _fleet(registry: Any, lifecycle: str | None = None, **extra: str) -> dict[str, Any]:
    """Two projects, alpha and beta, one image each at 1.0.0 (dev -> staging -> manual prod)."""
    files: dict[str, str] = {}
    apps = {}
    for project in ("alpha", "beta"):
        apps[project] = _apps(project)
        registry.push(apps[project][0].repository, "1.0.0")
        files.update(
            config_files(
                registry.url,
                apps[project],
                project=project,
                lifecycle=lifecycle,
                project_extra=extra.get(project, ""),
            )
        )
    return {"files": files, "apps": apps}


def _sidecar(remote: Any, work: Path, clock: Clock, verifier: Any = None) -> Reconciler:
    injected = Injected(clock=clock, verifier=verifier)
    return Reconciler(PassOptions(PassSettings(repo_url=remote.url, work_dir=work), injected))


def _pass(reconciler: Reconciler) -> PassResult:
    result = reconciler.run_pass()
    assert result.ok, result.to_json()
    return result


def _settle(reconciler: Reconciler) -> PassResult:
    """Passes until one changes nothing, then one more (the memo is full after it)."""
    for _ in range(6):
        result = _pass(reconciler)
        if not result.releases and not result.promotions:
            result = _pass(reconciler)
            assert reconciler.memo.replayed == 2, "a steady pass should replay both projects"
            return result
    raise AssertionError("never settled")


def _report(result: PassResult) -> dict[str, Any]:
    data = result.to_json()
    data.pop("durationSeconds")
    return data


def _waiting(result: PassResult, project: str) -> set[tuple[str, str]]:
    return {(env, reason) for p, env, reason in result.waiting if p == project}


def _cli(remote: Any, work: Path, *args: str) -> None:
    proc = run_cli(
        *args, "--repo", remote.url, "--work-dir", str(work), env={"RECONCILER_ACTOR": "alice"}
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_a_replayed_pass_reports_what_a_fresh_pass_decides(registry, bare_remote, tmp_path):
    fleet = _fleet(registry)
    remote = bare_remote(seed=fleet["files"])
    clock = Clock()
    sidecar = _sidecar(remote, tmp_path / "w", clock)
    try:
        _settle(sidecar)
        clock.now += timedelta(minutes=5)
        replayed = _pass(sidecar)
        assert sidecar.memo.replayed == 2
    finally:
        sidecar.close()
    # A process that starts remembers nothing: it decides both projects afresh.
    fresh = _sidecar(remote, tmp_path / "w", clock)
    try:
        decided = _pass(fresh)
        assert fresh.memo.replayed == 0
    finally:
        fresh.close()
    assert _waiting(replayed, "alpha") == {("prod", "manual approval pending")}
    assert replayed.manual == decided.manual != []
    assert replayed.decisions == decided.decisions != []
    assert _report(replayed) == _report(decided)


def test_a_new_tag_is_released_by_the_next_pass(registry, bare_remote, tmp_path):
    fleet = _fleet(registry)
    remote = bare_remote(seed=fleet["files"])
    sidecar = _sidecar(remote, tmp_path / "w", Clock())
    try:
        _settle(sidecar)
        registry.push(fleet["apps"]["alpha"][0].repository, "1.1.0")
        result = _pass(sidecar)
        assert [(r.project, r.version) for r in result.releases] == [("alpha", "1.0.1")]
        assert sidecar.memo.replayed == 1  # beta: nothing of it moved
        # The release is alpha's previous one now (its state file moved): not 1.0.0 again
        result = _pass(sidecar)
        assert result.releases == [] and ("alpha", "dev", "1.0.1") not in result.promotions
    finally:
        sidecar.close()


def test_a_hand_edit_of_an_overlay_is_seen_and_other_projects_stay_remembered(
    registry, bare_remote, tmp_path
):
    report = "  dev: {overlay: deploy/alpha/overlays/dev, onDrift: report}\n"
    fleet = _fleet(registry)
    # alpha's dev reports drift instead of pinning (an edit that changes no file of ours)
    project = fleet["files"]["projects/alpha/project.yaml"]
    fleet["files"]["projects/alpha/project.yaml"] = project.replace(
        "  dev:\n    overlay: deploy/alpha/overlays/dev\n", report
    )
    remote = bare_remote(seed=fleet["files"])
    sidecar = _sidecar(remote, tmp_path / "w", Clock())
    try:
        _settle(sidecar)
        overlay = "deploy/alpha/overlays/dev/kustomization.yaml"
        text = remote.show(overlay)
        assert "newTag: 1.0.0" in text
        remote.human_commit({overlay: text.replace("newTag: 1.0.0", "newTag: 1.0.0-hotfix")})
        result = _pass(sidecar)
        assert [(p, env, policy) for p, env, policy, _ in result.drift] == [
            ("alpha", "dev", "report")
        ]
        assert sidecar.memo.replayed == 1  # beta's files are not alpha's overlay
        # A file no project owns (a kustomize base, a README) may be read by any project.
        remote.human_commit({"deploy/beta/base/extra.yaml": "# nothing\n"})
        _pass(sidecar)
        assert sidecar.memo.replayed == 0
    finally:
        sidecar.close()


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (("promote", "alpha", "1.0.0", "--to", "prod"), set()),
        (("pin", "alpha", "--env", "prod", "--reason", "audit"), {("prod", "pinned")}),
        (
            ("block", "alpha", "1.0.0", "--reason", "bad migration"),
            {("prod", "blocked: bad migration")},
        ),
    ],
    ids=["promote", "pin", "block"],
)
def test_a_manual_operation_is_seen_by_the_next_pass(
    registry, bare_remote, tmp_path, operation, expected
):
    fleet = _fleet(registry)
    remote = bare_remote(seed=fleet["files"])
    sidecar = _sidecar(remote, tmp_path / "w", Clock())
    try:
        steady = _settle(sidecar)
        assert _waiting(steady, "alpha") == {("prod", "manual approval pending")}
        _cli(remote, tmp_path / "cli", *operation)
        result = _pass(sidecar)
        assert _waiting(result, "alpha") == expected
        assert _waiting(result, "beta") == {("prod", "manual approval pending")}
        assert sidecar.memo.replayed == 1  # the operation touched alpha's files only
    finally:
        sidecar.close()


def test_a_config_edit_is_seen_by_the_next_pass(registry, bare_remote, tmp_path):
    fleet = _fleet(registry)
    remote = bare_remote(seed=fleet["files"])
    sidecar = _sidecar(remote, tmp_path / "w", Clock())
    try:
        _settle(sidecar)
        lifecycle = fleet["files"]["lifecycles/standard.yaml"]
        automatic = lifecycle.replace(", automatic: false", "")
        assert automatic != lifecycle
        remote.human_commit({"lifecycles/standard.yaml": automatic})
        result = _pass(sidecar)
        assert sorted(result.promotions) == [("alpha", "prod", "1.0.0"), ("beta", "prod", "1.0.0")]
    finally:
        sidecar.close()


SOAKING = textwrap.dedent("""\
    apiVersion: reconciler.dev/v1
    kind: Lifecycle
    name: standard
    phases:
      - {name: development, environments: [dev], soak: 1h}
      - {name: staging, environments: [staging]}
      - {name: production, environments: [prod], automatic: false}
    """)


def test_the_end_of_a_soak_is_seen_by_the_first_pass_after_it(registry, bare_remote, tmp_path):
    fleet = _fleet(registry, lifecycle=SOAKING)
    remote = bare_remote(seed=fleet["files"])
    clock = Clock()
    sidecar = _sidecar(remote, tmp_path / "w", clock)
    try:
        first = _pass(sidecar)
        assert sorted(first.promotions) == [("alpha", "dev", "1.0.0"), ("beta", "dev", "1.0.0")]
        clock.now += timedelta(minutes=1)
        waiting = _pass(sidecar)
        soaking = ("staging", "soaking in development until 2026-03-02T10:00:00Z")
        assert soaking in _waiting(waiting, "alpha")
        assert waiting.wake_at == T0 + timedelta(hours=1)
        clock.now += timedelta(minutes=30)
        replayed = _pass(sidecar)
        assert sidecar.memo.replayed == 2
        assert replayed.wake_at == waiting.wake_at and _report(replayed) == _report(waiting)
        clock.now = T0 + timedelta(hours=1)
        result = _pass(sidecar)
        assert sorted(result.promotions) == [
            ("alpha", "staging", "1.0.0"),
            ("beta", "staging", "1.0.0"),
        ]
    finally:
        sidecar.close()


VERIFY = textwrap.dedent("""\
      dev:
        overlay: deploy/alpha/overlays/dev
        verify:
          interval: 1m
          timeout: 1h
          checks:
            - {kind: argocd, name: alpha-dev, namespace: argocd}
    """)


class CountingVerifier:
    """Stands in for verify.runner.Verifier (the same ``verify`` signature); the
    checks' answers are the test's to give."""

    def __init__(self) -> None:
        self.calls = 0
        self.answer = Outcome.pending("Argo CD: progressing")

    def verify(self, spec: Any, facts: Any, now: datetime) -> Outcome:
        self.calls += 1
        return self.answer


def test_a_project_that_verifies_is_asked_every_pass(registry, bare_remote, tmp_path):
    """A pending verification asks the cluster on every pass (a fresh pass does), not
    only once its next poll (the decision's ``wake_at``) is due."""
    fleet = _fleet(registry)
    project = fleet["files"]["projects/alpha/project.yaml"]
    fleet["files"]["projects/alpha/project.yaml"] = project.replace(
        "  dev:\n    overlay: deploy/alpha/overlays/dev\n", textwrap.indent(VERIFY, "  ")
    )
    assert "argocd" in fleet["files"]["projects/alpha/project.yaml"]
    remote = bare_remote(seed=fleet["files"])
    verifier = CountingVerifier()
    clock = Clock()
    sidecar = _sidecar(remote, tmp_path / "w", clock, verifier)
    try:
        _pass(sidecar)  # releases and deploys to dev: verification pending
        clock.now += timedelta(seconds=10)  # before the next poll is due
        _pass(sidecar)
        asked = verifier.calls
        assert asked >= 1
        clock.now += timedelta(seconds=10)  # before the next poll is due
        _pass(sidecar)
        assert verifier.calls == asked + 1
        clock.now += timedelta(seconds=10)  # before the next poll is due
        _pass(sidecar)
        assert verifier.calls == asked + 2
        assert sidecar.memo.replayed == 1  # beta (in staging by now) only
        verifier.answer = Outcome.verified("Argo CD: healthy")
        clock.now += timedelta(seconds=10)  # before the next poll is due
        result = sidecar.run_pass()
        assert [(v.project, v.environment, v.result) for v in result.verifications] == [
            ("alpha", "dev", "verified")
        ]
    finally:
        sidecar.close()


def test_a_project_that_failed_is_decided_again(registry, bare_remote, tmp_path, monkeypatch):
    fleet = _fleet(registry)
    remote = bare_remote(seed=fleet["files"])
    clock = Clock()
    sidecar = _sidecar(remote, tmp_path / "w", clock)
    try:
        steady = _settle(sidecar)
    finally:
        sidecar.close()
    real_promote = apply_module.promote

    def failing(ws, config, project, *args, **kwargs):  # type: ignore[no-untyped-def]
        if project.name == "alpha":
            raise ReconcilerError("pins/alpha/prod.yaml: unreadable (a test's failure)")
        return real_promote(ws, config, project, *args, **kwargs)

    sidecar = _sidecar(remote, tmp_path / "w", clock)  # a new process: nothing remembered
    try:
        monkeypatch.setattr(apply_module, "promote", failing)
        failed = sidecar.run_pass()
        assert not failed.ok and list(failed.project_errors) == ["alpha"]
        assert _waiting(failed, "alpha") == set()
        monkeypatch.setattr(apply_module, "promote", real_promote)
        again = _pass(sidecar)
        assert sidecar.memo.replayed == 1  # beta; alpha failed last time: decided again
        assert _waiting(again, "alpha") == _waiting(steady, "alpha") != set()
        assert _report(again) == _report(steady)
    finally:
        sidecar.close()


def test_a_steady_pass_syncs_with_one_fetch(registry, bare_remote, tmp_path):
    """After a pass that wrote, committed and proposed nothing, the tree is the commit
    it was synced to: while the remote does not move, a sync is only the fetch."""
    fleet = _fleet(registry)
    remote = bare_remote(seed=fleet["files"])
    sidecar = _sidecar(remote, tmp_path / "w", Clock())
    ran: list[str] = []
    real = sidecar.tree._execute

    def execute(command, env, stdin):  # type: ignore[no-untyped-def]
        ran.append(next(a for a in command[1:] if not a.startswith("-") and "=" not in a))
        return real(command, env, stdin)

    sidecar.tree._execute = execute  # type: ignore[method-assign]
    try:
        _settle(sidecar)
        ran.clear()
        _pass(sidecar)
        assert ran == ["fetch"]
        overlay = "deploy/beta/overlays/prod/kustomization.yaml"
        remote.human_commit({overlay: remote.show(overlay) + "# a comment\n"})
        ran.clear()
        _pass(sidecar)
        assert ran[:2] == ["fetch", "checkout"]
        assert (tmp_path / "w/repo" / overlay).read_text().endswith("# a comment\n")
    finally:
        sidecar.close()
