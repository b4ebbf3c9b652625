"""Pull-request promotion mode: a real bare repo for branches, the GitHub API mocked."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from reconciler.pullrequests import host_for
from reconciler.reconcile import Injected, PassOptions, PassSettings, Reconciler
from tests.helpers.configrepo import AppSpec, config_files
from tests.helpers.gitserver import run_git


class FakeGitHub:
    """Just enough of the GitHub pulls API, with the documented shapes."""

    def __init__(self) -> None:
        self.pulls: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        assert request.headers["Authorization"] == "Bearer t0ken"
        path = request.url.path
        if request.method == "GET" and path.endswith("/pulls"):
            head = request.url.params.get("head", "").split(":", 1)[-1]
            found = [p for p in self.pulls if p["head"]["ref"] == head]
            return httpx.Response(200, json=found)
        if request.method == "POST" and path.endswith("/pulls"):
            body = json.loads(request.content)
            number = len(self.pulls) + 1
            pull = {
                "number": number,
                "state": "open",
                "title": body["title"],
                "merged_at": None,
                "html_url": f"https://github.com/acme/config/pull/{number}",
                "head": {"ref": body["head"]},
                "base": {"ref": body["base"]},
            }
            self.pulls.append(pull)
            return httpx.Response(201, json=pull)
        if request.method == "PATCH":
            number = int(path.rsplit("/", 1)[1])
            pull = self.pulls[number - 1]
            pull.update(json.loads(request.content))
            return httpx.Response(200, json=pull)
        if request.method == "POST" and path.endswith("/comments"):
            return httpx.Response(201, json={"id": 1})
        return httpx.Response(404, json={"message": "Not Found"})


def _merge(remote, branch: str, tmp_path) -> None:
    """What the Git host does when a reviewer merges: a merge commit on main."""
    clone = tmp_path / f"merge-{uuid.uuid4().hex[:6]}"
    run_git("clone", "-q", str(remote.path), str(clone))
    env = {
        "GIT_AUTHOR_NAME": "Rev Iewer",
        "GIT_AUTHOR_EMAIL": "rev@example.com",
        "GIT_COMMITTER_NAME": "Rev Iewer",
        "GIT_COMMITTER_EMAIL": "rev@example.com",
    }
    run_git(
        "merge", "-q", "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}", cwd=clone, env=env
    )
    run_git("push", "-q", "origin", "HEAD:main", cwd=clone)


def _pr_remote(registry, bare_remote):
    """A config repository whose project's prod promotes by pull request."""
    apps = [AppSpec("api", f"pr{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")]
    registry.push(apps[0].repository, "1.0.0")
    files = config_files(registry.url, apps)
    files["projects/shop/project.yaml"] = files["projects/shop/project.yaml"].replace(
        "    overlay: deploy/shop/overlays/prod\n",
        "    overlay: deploy/shop/overlays/prod\n    promotion: pull-request\n",
    )
    return apps, bare_remote(seed=files)


def _pr_setup(registry, bare_remote, tmp_path):
    """A project whose prod promotes by pull request, a fake GitHub, a Reconciler."""
    apps, remote = _pr_remote(registry, bare_remote)
    github = FakeGitHub()
    host = host_for(
        "https://github.com/acme/config",
        env={"RECONCILER_GIT_TOKEN": "t0ken"},
        transport=httpx.MockTransport(github.handle),
    )
    reconciler = Reconciler(
        PassOptions(
            PassSettings(repo_url=remote.url, work_dir=tmp_path / "w"), Injected(pr_host=host)
        )
    )
    return apps, remote, github, reconciler


def test_a_pull_request_closed_without_merging_is_not_reopened(registry, bare_remote, tmp_path):
    _apps, remote, github, reconciler = _pr_setup(registry, bare_remote, tmp_path)
    try:
        for _ in range(3):  # dev, staging, then the prod pull request
            reconciler.run_pass()
        assert len(github.pulls) == 1
        github.pulls[0].update(state="closed", merged_at=None)  # a reviewer said no
        for _ in range(2):
            result = reconciler.run_pass()
            assert result.pull_requests == [] and len(github.pulls) == 1  # not reopened
            assert (
                "shop",
                "prod",
                "1.0.0: pull request #1 was closed without merging",
            ) in result.waiting
        assert "newTag: 0.0.0" in remote.show("deploy/shop/overlays/prod/kustomization.yaml")
    finally:
        reconciler.close()


def test_prod_promotion_is_a_pull_request_and_the_merge_is_the_approval(
    registry, bare_remote, tmp_path
):
    apps, remote, github, reconciler = _pr_setup(registry, bare_remote, tmp_path)
    try:
        reconciler.run_pass()  # 1.0.0 -> dev
        reconciler.run_pass()  # 1.0.0 -> staging
        result = reconciler.run_pass()  # prod is manual + pull-request: a PR is opened
        assert [p["action"] for p in result.pull_requests] == ["opened"]
        branch = "promote/shop/prod/1.0.0"
        assert github.pulls[0]["head"]["ref"] == branch
        assert "newTag: 1.0.0" in remote.show(
            "deploy/shop/overlays/prod/kustomization.yaml", ref=branch
        )
        assert "newTag: 0.0.0" in remote.show("deploy/shop/overlays/prod/kustomization.yaml")

        # the next pass keeps the open PR: no duplicate branch or pull request
        result = reconciler.run_pass()
        assert result.pull_requests == [] and len(github.pulls) == 1
        assert ("shop", "prod", "1.0.0: waiting for pull request #1") in result.waiting

        # a reviewer merges: the next pass records the deployment, by the pull request
        _merge(remote, branch, tmp_path)
        github.pulls[0].update(state="closed", merged_at="2026-11-23T12:00:00Z")
        result = reconciler.run_pass()
        assert ("shop", "prod", "1.0.0", "pull request #1") in result.adopted
        assert "Deployed: shop 1.0.0 prod" in remote.log_format("%(trailers:only,unfold)")
        assert reconciler.run_pass().commit is None  # settled

        # a newer release: a new PR; then a newer one supersedes (closes) it
        registry.push(apps[0].repository, "1.1.0")
        for _ in range(3):
            reconciler.run_pass()
        assert github.pulls[-1]["head"]["ref"] == "promote/shop/prod/1.0.1"
        registry.push(apps[0].repository, "1.2.0")
        for _ in range(3):
            reconciler.run_pass()
        assert github.pulls[1]["state"] == "closed"
        assert github.pulls[-1]["head"]["ref"] == "promote/shop/prod/1.0.2"
    finally:
        reconciler.close()
