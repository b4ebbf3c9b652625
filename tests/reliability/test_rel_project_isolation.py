"""A project with a bad file in the repository fails alone, and leaves nothing half-written.

Two projects on one feed: ``good`` and ``bad``. ``bad`` has one broken file that is
only discovered half-way through its part of the pass (after its release record was
written, for the overlay case). ``reconciler once`` must release ``good``, report
``bad`` in ``projectErrors`` naming the file, exit 5, and commit nothing for ``bad``;
once a person fixes the file, the next pass releases ``bad`` from the same work dir.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers.configrepo import AppSpec, config_files, pass_racing_a_writer
from tests.reliability.support import once

DEEP = "[" * 5000 + "]" * 5000

CASES = {
    # Refused when the release is rendered into dev, after its record was written.
    "overlay": (
        "deploy/bad/overlays/dev/kustomization.yaml",
        f"resources: [../../base]\nimages:\n  - name: example.com/bad/api\n    x: {DEEP}\n",
        "deploy/bad/overlays/dev/kustomization.yaml: line 4: nesting deeper than 100 levels",
    ),
    "pin": (
        "pins/bad/dev.yaml",
        "release: [1.0.0\n",
        "pins/bad/dev.yaml: unreadable pin:",
    ),
    "state": (
        "state/bad.yaml",
        "channels: {stable: 0.9.0\n",
        "state/bad.yaml: unreadable state:",
    ),
}


def _files(registry_url: str, good: AppSpec, bad: AppSpec) -> dict[str, str]:
    files = config_files(registry_url, [good], project="good")
    other = config_files(registry_url, [bad], project="bad")
    files.update({k: v for k, v in other.items() if k.startswith(("projects/", "deploy/"))})
    return files


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_project_with_a_bad_file_fails_alone(registry, bare_remote, tmp_path, case):
    ns = f"iso{uuid.uuid4().hex[:8]}"
    good = AppSpec("api", f"{ns}/good", "example.com/good/api")
    bad = AppSpec("api", f"{ns}/bad", "example.com/bad/api")
    registry.push(good.repository, "1.0.0")
    registry.push(bad.repository, "2.0.0")
    path, broken, message = CASES[case]
    files = _files(registry.url, good, bad)
    fixed = files.get(path)
    files[path] = broken
    remote = bare_remote(seed=files)
    bad_files_before = {f: remote.show(f) for f in remote.files() if "bad" in f}
    work = tmp_path / "work"

    run = once(remote.url, work, "--json")

    assert run.returncode == 5, run.output
    assert "Traceback" not in run.output
    out = json.loads(run.stdout)
    assert list(out["projectErrors"]) == ["bad"]
    assert out["projectErrors"]["bad"].startswith(message), out["projectErrors"]
    assert [(r["project"], r["version"]) for r in out["releases"]] == [("good", "1.0.0")]
    assert out["pushed"]
    files_now = remote.files()
    assert "releases/good/1.0.0.yaml" in files_now
    # Nothing of bad's half-done work landed: same files, same bytes.
    assert {f: remote.show(f) for f in files_now if "bad" in f} == bad_files_before
    assert not any(f.startswith(("releases/bad/", "state/bad")) for f in out["filesChanged"])

    remote.human_commit({path: fixed}, f"fix {path}")
    run = once(remote.url, work, "--json")
    assert run.returncode == 0, run.output
    out = json.loads(run.stdout)
    assert out["projectErrors"] == {}
    assert "releases/bad/" + out["releases"][0]["version"] + ".yaml" in remote.files()


def test_a_failing_project_gives_back_a_shared_file_as_the_other_project_left_it(
    registry, bare_remote, tmp_path
):
    """``beta`` renders into a kustomization it shares with ``alpha`` (applied first in
    the same pass), then fails on its second target: the shared file must keep
    alpha's change and lose only beta's."""
    ns = f"iso{uuid.uuid4().hex[:8]}"
    alpha = AppSpec("api", f"{ns}/alpha", "example.com/alpha/api")
    beta = AppSpec("api", f"{ns}/beta", "example.com/beta/api")
    registry.push(alpha.repository, "1.0.0")
    registry.push(beta.repository, "2.0.0")
    files = config_files(registry.url, [alpha], project="alpha")
    other = config_files(registry.url, [beta], project="beta")
    files.update({k: v for k, v in other.items() if k.startswith(("projects/", "deploy/"))})
    shared = "deploy/alpha/overlays/dev/kustomization.yaml"
    files[shared] += "  - name: example.com/beta/api\n    newTag: 0.0.0\n"
    files["deploy/beta/values.yaml"] = f'tag: x # {{"$reconciler": "beta:api:tag"}}\nx: {DEEP}\n'
    files["projects/beta/project.yaml"] = files["projects/beta/project.yaml"].replace(
        "  dev:\n    overlay: deploy/beta/overlays/dev\n",
        "  dev:\n    overlay: deploy/beta/overlays/dev\n    targets:\n"
        f"      - {{kind: kustomize-images, file: {shared}}}\n"
        "      - {kind: markers, file: deploy/beta/values.yaml}\n",
    )
    remote = bare_remote(seed=files)

    run = once(remote.url, tmp_path / "work", "--json")

    assert run.returncode == 5, run.output
    out = json.loads(run.stdout)
    assert list(out["projectErrors"]) == ["beta"]
    assert "deploy/beta/values.yaml: line 2: nesting deeper" in out["projectErrors"]["beta"]
    text = remote.show(shared)
    alpha_tag = text.split("example.com/alpha/api\n    newTag: ")[1].split()[0]
    beta_tag = text.split("example.com/beta/api\n    newTag: ")[1].split()[0]
    assert (alpha_tag, beta_tag) == ("1.0.0", "0.0.0")  # alpha's change kept, beta's undone
    assert "dev" in remote.show("state/alpha.yaml")
    assert not any(f.startswith(("releases/beta/", "state/beta")) for f in remote.files())
    assert shared in out["filesChanged"]


def test_a_replan_forgets_the_errors_of_the_lost_plan(registry, bare_remote, tmp_path):
    """The bad pin is fixed by a person while the pass is pushing: the push is
    rejected, the pass plans again on the new head, and that plan is the whole story."""
    from reconciler.reconcile import PassOptions, PassSettings, Reconciler

    ns = f"iso{uuid.uuid4().hex[:8]}"
    good = AppSpec("api", f"{ns}/good", "example.com/good/api")
    bad = AppSpec("api", f"{ns}/bad", "example.com/bad/api")
    registry.push(good.repository, "1.0.0")
    registry.push(bad.repository, "2.0.0")
    files = _files(registry.url, good, bad)
    files["pins/bad/dev.yaml"] = "release: [1.0.0\n"
    remote = bare_remote(seed=files)
    reconciler = Reconciler(PassOptions(PassSettings(repo_url=remote.url, work_dir=tmp_path / "w")))
    result = pass_racing_a_writer(
        reconciler, remote, {"pins/bad/dev.yaml": None}, "drop the bad pin"
    )
    assert result.pushed and result.push_attempts == 2
    assert result.ok and result.project_errors == {}
    assert sorted(r.project for r in result.releases) == ["bad", "good"]
    assert remote.files().count("releases/good/1.0.0.yaml") == 1
