"""Several writers with different cached digests for a re-pushed tag (issue 15, item 1).

Two long-lived work dirs (a sidecar and a replica) keep the digest they saw for a tag;
a third writer starts from an empty work dir every round (a CI job's ``once``). The tag
is pushed again with new content. Whatever order the writers run in, each re-push
makes exactly one release, and every record, overlay and later pass ends on the newest
digest: a writer whose kept answer disagrees with the repository asks the registry
again, and no release takes a digest that an earlier release already replaced.

CI: 4 rounds and one re-push; RECONCILER_SOAK=1: 30 rounds, a re-push every 3.
"""

from __future__ import annotations

import shutil
import textwrap
import uuid

from reconciler import yamlio
from reconciler.reconcile import PassOptions, PassSettings, Reconciler
from tests.helpers.configrepo import AppSpec, config_files
from tests.reliability.support import SOAK, release_trailers, remote_violations, scaled

LIFECYCLE = textwrap.dedent("""\
    apiVersion: reconciler.dev/v1
    kind: Lifecycle
    name: standard
    phases:
      - {name: development, environments: [dev]}
      - {name: staging, environments: [staging]}
    """)


def _overlay_digest(text: str) -> str | None:
    doc = yamlio.load_one(text)
    return next((str(i["digest"]) for i in doc["images"] if "digest" in i), None)


def test_writers_with_stale_digests_release_a_repushed_tag_once(registry, bare_remote, tmp_path):
    ns = f"flip{uuid.uuid4().hex[:8]}"
    apps = [AppSpec("api", f"{ns}/api", "example.com/flip/api")]
    digest = registry.push(apps[0].repository, "1.0.0", content=b"build 0")
    files = config_files(
        registry.url,
        apps,
        lifecycle=LIFECYCLE,
        envs=("dev", "staging"),
        project_extra="renderDigest: true\n",
    )
    remote = bare_remote(seed=files)
    kept = [
        Reconciler(PassOptions(PassSettings(repo_url=remote.url, work_dir=tmp_path / f"kept{w}")))
        for w in range(2)
    ]

    def fresh_pass() -> None:  # a CI job: no work dir from before
        work = tmp_path / "fresh"
        shutil.rmtree(work, ignore_errors=True)
        reconciler = Reconciler(PassOptions(PassSettings(repo_url=remote.url, work_dir=work)))
        try:
            assert reconciler.run_pass().ok
        finally:
            reconciler.close()

    try:
        for reconciler in kept:  # both long-lived writers learn the first digest
            assert reconciler.run_pass().ok
        rounds = scaled(4, 30)
        repushes = 0
        writers = [fresh_pass, kept[0].run_pass, kept[1].run_pass]
        for r in range(rounds):
            if r % 3 == 0 and (r == 0 or SOAK):
                repushes += 1
                digest = registry.push(
                    apps[0].repository, "1.0.0", content=f"build {repushes}".encode()
                )
            order = writers[r % 3 :] + writers[: r % 3]  # each writer goes first in turn
            for writer in order:
                result = writer()
                assert result is None or result.ok, result
        for reconciler in kept:  # quiet passes: staging catches up, nothing else moves
            assert reconciler.run_pass().ok
    finally:
        for reconciler in kept:
            reconciler.close()

    trailers = release_trailers(remote)
    releases = sorted(k for k in trailers if k.startswith("shop "))
    assert len(releases) == 1 + repushes, releases  # the first tag, then one per re-push
    assert remote_violations(remote, "shop", apps) == []
    state = yamlio.load_one(remote.show("state/shop.yaml"))
    newest = yamlio.load_one(remote.show(f"releases/shop/{state['channels']['stable']}.yaml"))
    assert newest["packages"]["api"]["digest"] == digest
    for env in ("dev", "staging"):
        overlay = remote.show(f"deploy/shop/overlays/{env}/kustomization.yaml")
        assert _overlay_digest(overlay) == digest, (env, overlay)
    records = [
        yamlio.load_one(remote.show(f"releases/shop/{k.split(' ', 1)[1]}.yaml")) for k in releases
    ]
    held = [r["packages"]["api"]["digest"] for r in records]
    assert len(set(held)) == len(held), f"a digest was released twice: {held}"
