"""Git faults: unreachable remote, rejected credentials, a server hook refusing the push.

Each fault must end the pass with exit code 4 and a message naming the cause, push
nothing, leak no credential, and leave a work dir from which the next pass succeeds
once the fault is gone.
"""

from __future__ import annotations

import uuid

from tests.helpers.configrepo import AppSpec, config_files
from tests.helpers.gitserver import GitHttpServer
from tests.reliability.support import Run, once

HOOK_MESSAGE = "POLICY-7431: pushes to main need two approvals"


def _apps() -> list[AppSpec]:
    return [AppSpec("api", f"gitfault{uuid.uuid4().hex[:8]}/api", "example.com/gf/api")]


def _assert_git_failure(run: Run, *expected: str) -> None:
    assert run.returncode == 4, run.output
    assert "Traceback" not in run.output, run.output
    assert run.duration < 60
    for text in expected:
        assert text.lower() in run.output.lower(), (text, run.output)


def test_file_remote_unreachable_then_back(registry, bare_remote, tmp_path):
    apps = _apps()
    registry.push(apps[0].repository, "1.0.0")
    remote = bare_remote(seed=config_files(registry.url, apps))
    work = tmp_path / "work"
    assert once(remote.url, work).returncode == 0
    registry.push(apps[0].repository, "1.1.0")
    moved = remote.path.with_name("moved-away.git")
    remote.path.rename(moved)
    try:
        failed = once(remote.url, work, "--json")
    finally:
        moved.rename(remote.path)
    _assert_git_failure(failed, "gitError")
    assert '"gitError": null' not in failed.stdout

    recovered = once(remote.url, work, "--json")
    assert recovered.returncode == 0, recovered.output
    assert "releases/shop/1.0.1.yaml" in remote.files()
    print("git-fault unreachable-file-remote: exit=4 recovered=yes violations=0")


def test_http_server_down_then_back(registry, tmp_path):
    apps = _apps()
    registry.push(apps[0].repository, "1.0.0")
    server = GitHttpServer(tmp_path / "srv")
    remote = server.create_repo("cfg", seed=config_files(registry.url, apps))
    env = {"RECONCILER_GIT_USERNAME": server.username, "RECONCILER_GIT_PASSWORD": server.password}
    work = tmp_path / "work"
    assert once(remote.url, work, env=env).returncode == 0
    registry.push(apps[0].repository, "1.1.0")
    server.close()  # connection refused from now on
    failed = once(remote.url, work, "--json", env=env)
    _assert_git_failure(failed)
    assert server.password not in failed.output

    # back on another port (the old one may be taken): the same work dir re-clones
    again = GitHttpServer(tmp_path / "srv")
    try:
        url = remote.url.replace(f":{server.port}/", f":{again.port}/")
        recovered = once(url, work, "--json", env=env)
        assert recovered.returncode == 0, recovered.output
        assert "releases/shop/1.0.1.yaml" in remote.files()
    finally:
        again.close()
    print("git-fault http-server-down: exit=4 recovered=yes violations=0")


def test_auth_rejected_then_fixed(registry, git_http_server, tmp_path):
    apps = _apps()
    registry.push(apps[0].repository, "1.0.0")
    remote = git_http_server.create_repo("cfg", seed=config_files(registry.url, apps))
    head = remote.head()
    wrong = "wrong-Pa55-" + uuid.uuid4().hex
    work = tmp_path / "work"
    failed = once(
        remote.url,
        work,
        "--json",
        env={"RECONCILER_GIT_USERNAME": git_http_server.username, "RECONCILER_GIT_PASSWORD": wrong},
    )
    _assert_git_failure(failed, "auth")
    assert wrong not in failed.output
    assert remote.head() == head

    fixed = once(
        remote.url,
        work,
        "--json",
        env={
            "RECONCILER_GIT_USERNAME": git_http_server.username,
            "RECONCILER_GIT_PASSWORD": git_http_server.password,
        },
    )
    assert fixed.returncode == 0, fixed.output
    assert "releases/shop/1.0.0.yaml" in remote.files()
    print("git-fault auth-rejected: exit=4 recovered=yes violations=0")


def test_push_refused_by_server_hook(registry, bare_remote, tmp_path):
    apps = _apps()
    registry.push(apps[0].repository, "1.0.0")
    remote = bare_remote(seed=config_files(registry.url, apps))
    remote.install_hook("pre-receive", f"echo '{HOOK_MESSAGE}' >&2\nexit 1")
    head = remote.head()
    work = tmp_path / "work"
    failed = once(remote.url, work, "--json")
    _assert_git_failure(failed, HOOK_MESSAGE)
    assert remote.head() == head
    assert '"pushAttempts": 1' in failed.stdout, "a refusal is not a race: no re-planning"

    (remote.path / "hooks" / "pre-receive").unlink()
    fixed = once(remote.url, work, "--json")
    assert fixed.returncode == 0, fixed.output
    assert "releases/shop/1.0.0.yaml" in remote.files()
    print("git-fault pre-receive-refusal: exit=4 recovered=yes violations=0")
