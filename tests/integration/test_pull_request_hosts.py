"""``promotion: pull-request`` end to end on Bitbucket Cloud, Bitbucket Data Center and
Azure DevOps: a real bare repository for the branches, each host's API faked from its
documented shapes (tests/helpers/githosts.py).

The same rules as on GitHub: the merge is the approval; a request closed without
merging is not reopened; a newer release closes (supersedes) the stale request, with
a comment, and opens a new one.
"""

from __future__ import annotations

import httpx
import pytest

from reconciler.pullrequests import host_for
from reconciler.reconcile import Injected, PassOptions, PassSettings, Reconciler
from tests.helpers.githosts import HOSTS
from tests.integration.test_pull_request_mode import _merge, _pr_remote


@pytest.mark.parametrize("kind", ["bitbucket", "bitbucket-server", "azure-devops"])
def test_pull_request_promotion_on_each_host(kind, registry, bare_remote, tmp_path):
    apps, remote = _pr_remote(registry, bare_remote)
    url, env, fake_class = HOSTS[kind]
    fake = fake_class()
    host = host_for(url, env=env, transport=httpx.MockTransport(fake.handle))
    reconciler = Reconciler(
        PassOptions(
            PassSettings(repo_url=remote.url, work_dir=tmp_path / "w"), Injected(pr_host=host)
        )
    )
    overlay = "deploy/shop/overlays/prod/kustomization.yaml"
    try:
        for _ in range(3):  # dev, staging, then the prod pull request
            result = reconciler.run_pass()
        assert [p["action"] for p in result.pull_requests] == ["opened"]
        assert fake.head(0) == "promote/shop/prod/1.0.0"
        assert "newTag: 1.0.0" in remote.show(overlay, ref="promote/shop/prod/1.0.0")

        result = reconciler.run_pass()  # no duplicate
        assert result.pull_requests == [] and len(fake.prs) == 1
        assert ("shop", "prod", "1.0.0: waiting for pull request #1") in result.waiting

        fake.decline(0)  # a reviewer said no: never reopened
        result = reconciler.run_pass()
        assert result.pull_requests == [] and len(fake.prs) == 1
        assert ("shop", "prod", "1.0.0: pull request #1 was closed without merging") in (
            result.waiting
        )

        registry.push(apps[0].repository, "1.1.0")  # a newer release gets its own request
        for _ in range(3):
            reconciler.run_pass()
        assert [fake.head(i) for i in range(len(fake.prs))][-1] == "promote/shop/prod/1.0.1"
        registry.push(apps[0].repository, "1.2.0")  # ... and supersedes the stale one
        for _ in range(3):
            reconciler.run_pass()
        assert fake.state(1) == "closed"
        assert (2, "Superseded by release 1.0.2.") in fake.comments
        assert fake.head(2) == "promote/shop/prod/1.0.2" and fake.state(2) == "open"

        _merge(remote, "promote/shop/prod/1.0.2", tmp_path)  # the merge is the approval
        fake.merge(2)
        result = reconciler.run_pass()
        assert ("shop", "prod", "1.0.2", "pull request #3") in result.adopted
        assert "newTag: 1.2.0" in remote.show(overlay)  # release 1.0.2 holds image 1.2.0
    finally:
        reconciler.close()
