"""Issue 14, item 9: a ``markers`` target whose file holds no marker is not "deployed".

Rendering nothing into a target used to count as success: the release was recorded
as running in the environment while the file never changed. Now the render is an
error naming the file and the target, the project is skipped like any broken
overlay (nothing of it is committed), and ``explain`` says why.
"""

from __future__ import annotations

import json
import uuid

import pytest

from reconciler.errors import RenderError
from reconciler.rendering import Artifact, render, render_markers
from tests.helpers.configrepo import AppSpec, config_files
from tests.integration.test_e2e_pass import run_cli
from tests.reliability.support import once

NO_MARKER = "image:\n  repository: example.com/bad/api\n  tag: 0.0.0  # set by hand\n"


@pytest.mark.parametrize(
    "text",
    [
        NO_MARKER,
        NO_MARKER + '# {"$reconciler": "other:api:tag"}\n',  # another project's marker
        NO_MARKER.replace("hand", '{"$reconciler": "bad:gone:tag"}'),  # no such package
    ],
    ids=["none", "other-project", "other-package"],
)
def test_a_markers_file_without_a_marker_for_the_release_is_a_render_error(text: str) -> None:
    artifacts = [Artifact("api", "image", "example.com/bad/api", "2.0.0")]
    with pytest.raises(RenderError) as error:
        render("markers", text, artifacts, project="bad", digest=False, file="deploy/v.yaml")
    assert str(error.value).startswith("deploy/v.yaml: markers target: no marker for api")


def test_one_marked_package_is_enough_for_the_file() -> None:
    text = 'tag: 0.0.0 # {"$reconciler": "bad:api:tag"}\n'
    artifacts = [Artifact("api", "image", "a", "2.0.0"), Artifact("ui", "image", "u", "1.0.0")]
    assert render_markers(text, "bad", artifacts, file="v") == text.replace("0.0.0", "2.0.0")


def test_a_project_whose_markers_file_has_no_marker_is_skipped_and_explained(
    registry, bare_remote, tmp_path
):
    ns = f"mk{uuid.uuid4().hex[:8]}"
    good = AppSpec("api", f"{ns}/good", "example.com/good/api")
    bad = AppSpec("api", f"{ns}/bad", "example.com/bad/api")
    registry.push(good.repository, "1.0.0")
    registry.push(bad.repository, "2.0.0")
    files = config_files(registry.url, [good], project="good")
    other = config_files(registry.url, [bad], project="bad")
    files.update({k: v for k, v in other.items() if k.startswith(("projects/", "deploy/"))})
    files["deploy/bad/values.yaml"] = NO_MARKER
    files["projects/bad/project.yaml"] = files["projects/bad/project.yaml"].replace(
        "  dev:\n    overlay: deploy/bad/overlays/dev\n",
        "  dev:\n    overlay: deploy/bad/overlays/dev\n"
        "    targets: [{kind: markers, file: deploy/bad/values.yaml}]\n",
    )
    remote = bare_remote(seed=files)
    work = tmp_path / "work"

    run = once(remote.url, work, "--json")

    assert run.returncode == 5, run.output
    out = json.loads(run.stdout)
    assert list(out["projectErrors"]) == ["bad"]
    assert out["projectErrors"]["bad"].startswith(
        "deploy/bad/values.yaml: markers target: no marker for api of project bad"
    )
    assert ("bad", "dev", "1.0.0") not in [tuple(p) for p in out.get("promotions", [])]
    assert remote.show("deploy/bad/values.yaml") == NO_MARKER.rstrip("\n")  # show strips it
    assert not any(f.startswith(("releases/bad/", "state/bad")) for f in remote.files())
    assert "dev" in remote.show("state/good.yaml")  # the other project went on

    explained = run_cli("explain", "bad", "--repo", remote.url, "--work-dir", str(work))
    assert "dev: cannot deploy 1.0.0: deploy/bad/values.yaml: markers target: no marker" in (
        explained.stdout
    ), explained.stdout + explained.stderr
