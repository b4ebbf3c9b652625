"""End to end: real registry -> `reconciler once` -> real Git remote -> kubectl kustomize."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from reconciler.reconcile import PassOptions, PassSettings, Reconciler, SidecarWiring
from tests.helpers.configrepo import (
    AppSpec,
    checkout,
    config_files,
    kustomize_images,
    pass_racing_a_writer,
    result_json,
    run_cli,
)
from tests.helpers.gitserver import run_git
from tests.helpers.sshserver import SshServer


def _apps(registry) -> list[AppSpec]:
    ns = f"e2e{uuid.uuid4().hex[:8]}"
    return [
        AppSpec("api", f"{ns}/api", "example.com/shop/api"),
        AppSpec("web", f"{ns}/web", "example.com/shop/web"),
    ]


def test_once_creates_release_renders_and_pushes_one_commit(registry, bare_remote, tmp_path):
    apps = _apps(registry)
    digests = {}
    for tag in ("1.0.0", "1.2.0", "1.3.0-rc.1", "latest", "v1.1.5"):
        digests[("api", tag)] = registry.push(apps[0].repository, tag)
    for tag in ("1.0.0", "1.0.1"):
        digests[("web", tag)] = registry.push(apps[1].repository, tag)
    remote = bare_remote(seed=config_files(registry.url, apps))
    before = remote.head()
    work = tmp_path / "work"

    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = result_json(proc)
    assert [r["version"] for r in out["releases"]] == ["1.0.0"]

    # exactly one commit was pushed, with trailers
    log = remote.log_format("%H %P")
    assert len(log) == 2 and log[0].split()[1] == before
    trailers = remote.log_format("%(trailers:only,unfold)")
    assert "Release: shop 1.0.0" in trailers
    assert "Environment: dev" in trailers
    assert remote.log_format("%an")[0] == "reconciler-bot"

    record = remote.show("releases/shop/1.0.0.yaml")
    assert "channel: stable" in record and "trigger: shop-images" in record
    assert "version: 1.2.0" in record  # latest allowed api; rc and `latest` never win
    assert f"digest: {digests[('api', '1.2.0')]}" in record
    assert "version: 1.0.1" in record

    overlay = remote.show("deploy/shop/overlays/dev/kustomization.yaml")
    assert "newTag: 1.2.0  # keep this comment" in overlay
    assert remote.show("deploy/shop/overlays/staging/kustomization.yaml").count("0.0.0") == 2

    built = kustomize_images(checkout(remote.path, tmp_path / "co1") / "deploy/shop/overlays/dev")
    assert built == {"api": "example.com/shop/api:1.2.0", "web": "example.com/shop/web:1.0.1"}

    # nothing new: nothing pushed
    head = remote.head()
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    assert proc.returncode == 0, proc.stderr
    out = result_json(proc)
    assert out["releases"] == []
    # staging gets 1.0.0 automatically now that dev has it (the lifecycle)
    assert [p["environment"] for p in out["promotions"]] == ["staging"]
    head = remote.head()
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    assert result_json(proc)["commit"] is None
    assert remote.head() == head

    # a newer tag of one image: the next release holds the latest of both
    registry.push(apps[1].repository, "1.1.0")
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    out = result_json(proc)
    assert [r["version"] for r in out["releases"]] == ["1.0.1"]
    assert out["releases"][0]["packages"]["api"]["version"] == "1.2.0"
    assert out["releases"][0]["packages"]["web"]["version"] == "1.1.0"
    built = kustomize_images(checkout(remote.path, tmp_path / "co2") / "deploy/shop/overlays/dev")
    assert built["web"] == "example.com/shop/web:1.1.0"


def test_once_over_smart_http_with_basic_auth(registry, git_http_server, tmp_path):
    apps = _apps(registry)[:1]
    registry.push(apps[0].repository, "1.4.0")
    remote = git_http_server.create_repo("cfg", seed=config_files(registry.url, apps))
    env = {
        "RECONCILER_GIT_USERNAME": git_http_server.username,
        "RECONCILER_GIT_PASSWORD": git_http_server.password,
    }
    work = tmp_path / "work"
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json", env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Release: shop 1.0.0" in remote.log_format("%(trailers:only,unfold)")
    assert git_http_server.password not in (work / "repo" / ".git" / "config").read_text()
    assert git_http_server.password not in proc.stdout + proc.stderr

    # without credentials: a clear git error, exit 4, nothing pushed
    head = remote.head()
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(tmp_path / "w2"), "--json")
    assert proc.returncode == 4
    assert remote.head() == head


def test_once_over_real_ssh(registry, bare_remote, ssh_server: SshServer, tmp_path):
    apps = _apps(registry)[:1]
    registry.push(apps[0].repository, "1.4.0")
    remote = bare_remote(seed=config_files(registry.url, apps))
    env = {
        "RECONCILER_GIT_SSH_KEY_FILE": str(ssh_server.client_key),
        "RECONCILER_GIT_KNOWN_HOSTS": str(ssh_server.known_hosts),
    }
    url = ssh_server.url(remote.path)
    proc = run_cli("once", "--repo", url, "--work-dir", str(tmp_path / "w"), "--json", env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Release: shop 1.0.0" in remote.log_format("%(trailers:only,unfold)")


@pytest.mark.parametrize(
    ("human_change", "attempts", "rebases"),
    [
        # Unrelated files (docs): the commit is moved onto the new head, no re-plan.
        ({"docs/notes.md": "human\n"}, 1, 1),
        # A file the pass depends on (an overlay): sync and plan again.
        ({"deploy/shop/overlays/prod/notes.txt": "human\n"}, 2, 0),
    ],
    ids=["unrelated-rebased", "overlay-replanned"],
)
def test_concurrent_push_between_fetch_and_push_is_survived(
    registry, bare_remote, tmp_path, human_change, attempts, rebases
):
    apps = _apps(registry)[:1]
    registry.push(apps[0].repository, "1.0.0")
    remote = bare_remote(seed=config_files(registry.url, apps))
    reconciler = Reconciler(PassOptions(PassSettings(repo_url=remote.url, work_dir=tmp_path / "w")))
    result = pass_racing_a_writer(reconciler, remote, human_change, "human edit")
    assert result.pushed
    assert (result.push_attempts, result.push_rebases) == (attempts, rebases)
    assert result.commit == remote.head()
    subjects = remote.subjects()
    assert subjects[1] == "human edit"  # ours on top of the human commit, nothing lost
    [(path, text)] = human_change.items()
    assert remote.show(path) == text.strip()  # run_git strips
    assert remote.files().count("releases/shop/1.0.0.yaml") == 1
    assert sum("release shop 1.0.0" in s for s in subjects) == 1


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        (
            "feeds/bad.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Feed\nname: bad\ntype: oci\n  url: x\n",
            "feeds/bad.yaml:5: invalid YAML:",
        ),
        (
            "triggers/t.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Trigger\nname: t2\nproject: shop\n"
            "sources: [apii]\n",
            "triggers/t.yaml:5: sources[0]: unknown package 'apii' in project 'shop' "
            "(did you mean 'api'?)",
        ),
        (
            "feeds/wrong.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Feed\nname: wrong\ntype: oci\nurl: x\n"
            "insecure: 'yes'\n",
            "feeds/wrong.yaml:6: insecure: 'yes' is not of type 'boolean'",
        ),
    ],
)
def test_bad_config_exits_1_with_location_and_commits_nothing(
    registry, bare_remote, tmp_path, path, text, expected
):
    apps = _apps(registry)[:1]
    registry.push(apps[0].repository, "1.0.0")
    files = config_files(registry.url, apps)
    files[path] = text
    remote = bare_remote(seed=files)
    head = remote.head()
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(tmp_path / "w"))
    assert proc.returncode == 1
    assert expected in proc.stdout + proc.stderr
    assert remote.head() == head


def test_validate_command_reports_every_problem(tmp_path):
    files = config_files("https://registry.example.com", [AppSpec("api", "a/api", "x/api")])
    files["projects/shop/project.yaml"] = (
        files["projects/shop/project.yaml"]
        .replace("lifecycle: standard", "lifecycle: standrd")
        .replace("feed: reg", "feed: nope")
    )
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    proc = run_cli("validate", str(tmp_path))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert (
        "projects/shop/project.yaml:4: lifecycle: unknown lifecycle 'standrd' "
        "(did you mean 'standard'?)" in lines
    )
    assert "projects/shop/project.yaml:7: packages[0].feed: unknown feed 'nope'" in lines
    assert lines[-1] == "2 problem(s) found"


def test_sample_repo_validates_and_builds():
    sample = Path(__file__).resolve().parents[2] / "reconciler" / "sample"
    proc = run_cli("validate", str(sample))
    assert proc.returncode == 0, proc.stderr
    for overlay in sorted(sample.glob("deploy/*/overlays/*")):
        images = kustomize_images(overlay)
        assert images, overlay


def test_progress_is_reported_per_repository(registry, bare_remote, tmp_path):
    apps = _apps(registry)
    for app in apps:
        registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=config_files(registry.url, apps))
    seen: list[tuple[int, int]] = []
    reconciler = Reconciler(
        PassOptions(
            PassSettings(repo_url=remote.url, work_dir=tmp_path / "w"),
            sidecar=SidecarWiring(progress=lambda done, total: seen.append((done, total))),
        )
    )
    try:
        reconciler.run_pass(dry_run=True)
    finally:
        reconciler.close()
    assert sorted(seen) == [(1, 2), (2, 2)]


def test_commit_messages_say_exactly_what_changed_from_the_template(
    registry, bare_remote, tmp_path
):
    apps = _apps(registry)
    registry.push(apps[0].repository, "1.0.0")
    registry.push(apps[1].repository, "2.0.0")
    files = config_files(registry.url, apps)
    files["reconciler.yaml"] += 'commitTemplate: "gitops: {subject}\\n\\n{body}\\n"\n'
    remote = bare_remote(seed=files)
    work = tmp_path / "w"

    def once() -> str:
        proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return run_git("--git-dir", str(remote.path), "log", "-1", "--format=%B", "main")

    first = once()
    assert first.startswith("gitops: reconciler: release shop 1.0.0; deploy shop 1.0.0 to dev")
    assert "shop/dev: (none) -> 1.0.0 (phase development, automatic)" in first
    assert "Release: shop 1.0.0" in first  # left out by the template: appended anyway
    once()  # staging catches up
    registry.push(apps[0].repository, "1.1.0")
    third = once()
    body = third.split("\n\n", 1)[1]
    assert body.startswith(
        "shop 1.0.1 (channel stable, trigger shop-images):\n"
        "  api: 1.0.0 -> 1.1.0\n"
        "shop/dev: 1.0.0 -> 1.0.1 (phase development, automatic)\n"
        "  api: 1.0.0 -> 1.1.0\n"
    ), third
    assert "web" not in body.split("Release:")[0]  # unchanged packages are not listed
    state = remote.show("state/shop.yaml")
    assert "phase: development" in state and "phase: staging" in state
