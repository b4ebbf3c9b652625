"""Selection end to end (issue 15 item 2): CI pushing ``<sha>`` and ``latest`` per build.

Real registry, real Git; each build is one image tagged twice (same content, same
creation time). newest-build must release the sha tag, never ``latest``, and two
work dirs with different caches must agree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.reconcile import PassOptions, PassSettings, Reconciler
from tests.helpers.configrepo import DEV_ONLY, AppSpec, checkout, config_files, kustomize_images

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _pass(remote: Any, work: Path) -> list[str]:
    reconciler = Reconciler(PassOptions(PassSettings(repo_url=remote.url, work_dir=work)))
    try:
        result = reconciler.run_pass()
    finally:
        reconciler.close()
    assert result.ok, result
    return [r.package("api").version for r in result.releases]  # type: ignore[union-attr]


def test_newest_build_releases_the_sha_tag_of_each_build_never_latest(
    registry: Any, bare_remote: Any, tmp_path: Path
) -> None:
    app = AppSpec("api", f"nb{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")

    def build(sha: str, hours: int) -> None:
        for tag in (sha, "latest"):
            registry.push(
                app.repository, tag, content=sha.encode(), created=T0 + timedelta(hours=hours)
            )

    build("3f2a1c0", 0)
    files = config_files(
        registry.url,
        [app],
        rules="      - strategy: newest-build\n",
        lifecycle=DEV_ONLY,
        envs=("dev",),
    )
    remote = bare_remote(seed=files)
    assert _pass(remote, tmp_path / "a") == ["3f2a1c0"]
    build("9b8c7d6", 1)
    assert _pass(remote, tmp_path / "b") == ["9b8c7d6"]  # a fresh work dir, no cache
    assert _pass(remote, tmp_path / "a") == []  # the old cache: the same answer
    tree = checkout(remote.path, tmp_path / "check")
    assert kustomize_images(tree / "deploy/shop/overlays/dev") == {
        "api": "example.com/shop/api:9b8c7d6"
    }
