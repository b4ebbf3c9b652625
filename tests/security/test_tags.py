"""Issue 14 item 9: a tag no image reference can carry is filtered, never chosen.

OCI tags are ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``; a registry that does not check
the grammar may still list ``1.2.3+meta``. Before the fix it was chosen (it is the
highest version) and then refused at render, so the project was skipped on every
pass. The Debian docker-registry checks the grammar itself, so the lax registry is
the real one behind a transport that adds the hostile tag to its tags/list answers
(everything else, manifests and digests included, is the real server's).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from reconciler import yamlio
from reconciler.model import VersionRule
from reconciler.reconcile import Injected, PassOptions, PassSettings, Reconciler
from reconciler.selection import select
from tests.helpers.configrepo import DEV_ONLY, AppSpec, checkout, config_files, kustomize_images

LAX_TAG = "1.2.3+meta"


class LaxTagsList(httpx.BaseTransport):
    """The real registry, with ``extra`` added to every tags/list answer."""

    def __init__(self, extra: list[str]) -> None:
        self.extra = extra
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        if not request.url.path.endswith("/tags/list") or response.status_code != 200:
            return response
        response.read()
        body = json.loads(response.content)
        body["tags"] = [*(body.get("tags") or []), *self.extra]
        return httpx.Response(200, json=body, headers={"Content-Type": "application/json"})

    def close(self) -> None:
        self.real.close()


def test_an_image_tag_with_build_metadata_is_filtered_with_a_reason_never_chosen() -> None:
    selection = select(VersionRule(), [LAX_TAG, "1.2.2"])
    assert selection.chosen == "1.2.2"
    reasons = {c.tag: c.reason for c in selection.rejected}
    assert reasons[LAX_TAG] == "not a valid image tag ('+' cannot appear in an OCI tag)"
    # A chart version (Helm HTTP index, or an OCI tag read back from `_`) may carry it.
    assert select(VersionRule(), [LAX_TAG, "1.2.2"], kind="chart").chosen == LAX_TAG


def test_a_lax_registry_listing_a_plus_tag_still_releases_the_best_valid_tag(
    registry: Any, bare_remote: Any, tmp_path: Path
) -> None:
    app = AppSpec("api", f"lax{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")
    for tag in ("1.2.1", "1.2.2"):
        registry.push(app.repository, tag)
    remote = bare_remote(seed=config_files(registry.url, [app], lifecycle=DEV_ONLY, envs=("dev",)))
    transport = LaxTagsList([LAX_TAG])
    reconciler = Reconciler(
        PassOptions(
            PassSettings(repo_url=remote.url, work_dir=tmp_path / "w"),
            Injected(transport=transport),
        )
    )
    try:
        result = reconciler.run_pass()
    finally:
        reconciler.close()
        transport.close()
    assert result.ok, result
    assert [r.package("api").version for r in result.releases] == ["1.2.2"]  # type: ignore[union-attr]
    record = yamlio.load_one(remote.show("releases/shop/1.0.0.yaml"))
    assert record["packages"]["api"]["version"] == "1.2.2"
    tree = checkout(remote.path, tmp_path / "check")
    assert kustomize_images(tree / "deploy/shop/overlays/dev") == {
        "api": "example.com/shop/api:1.2.2"
    }
