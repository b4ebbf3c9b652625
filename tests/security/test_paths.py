"""Issue 14 item 1: symlinks committed into the config repository are never followed.

Every path the reconciler reads or writes goes through reconciler/safepaths.py, which
opens each component with O_NOFOLLOW relative to its parent; ``validate`` reports
every symlink in the config and deploy trees as ``<file>: symlink not allowed``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import environments, records, safepaths
from reconciler.config import load_config
from reconciler.errors import UnsafePathError
from reconciler.model import Release, ReleasedPackage
from tests.helpers.configrepo import AppSpec, config_files
from tests.helpers.gitserver import run_git, write_files
from tests.security.support import (
    commit_links,
    hostile_remote,
    one_pass,
    shop,
    tree_snapshot,
)

OVERLAY = "deploy/shop/overlays/dev"


def _outside(tmp_path: Path, files: dict[str, str]) -> Path:
    """A folder outside the work tree holding ``files`` (the attacker's targets)."""
    outside = tmp_path / "outside"
    for name, text in files.items():
        (outside / name).parent.mkdir(parents=True, exist_ok=True)
        (outside / name).write_text(text)
    return outside


def test_overlay_folder_symlinked_outside_is_not_written(registry, bare_remote, tmp_path):
    _, files = shop(registry)
    kustomization = files[f"{OVERLAY}/kustomization.yaml"]
    outside = _outside(tmp_path, {"kustomization.yaml": kustomization})
    remote = bare_remote(seed=files)
    commit_links(remote, {OVERLAY: str(outside)}, tmp_path)

    result = one_pass(remote, tmp_path / "work")

    assert (outside / "kustomization.yaml").read_text() == kustomization
    assert not result.ok and not result.pushed
    assert f"{OVERLAY}: symlink not allowed" in [str(p) for p in result.config_error.problems]


def test_release_folder_symlinked_outside_gets_no_record(registry, bare_remote, tmp_path):
    _, files = shop(registry)
    outside = _outside(tmp_path, {"keep.txt": "x"})
    remote = bare_remote(seed=files)
    commit_links(remote, {"releases/shop": str(outside)}, tmp_path)

    result = one_pass(remote, tmp_path / "work")

    assert sorted(os.listdir(outside)) == ["keep.txt"]
    assert not result.pushed
    assert "releases/shop: symlink not allowed" in [str(p) for p in result.config_error.problems]


def test_kustomization_linked_to_a_host_file_is_never_committed(registry, bare_remote, tmp_path):
    _, files = shop(registry)
    secret = "# HOST-SECRET-7f3a: only on the reconciler's machine\n"
    host_file = (
        _outside(tmp_path, {"host.yaml": secret + files[f"{OVERLAY}/kustomization.yaml"]})
        / "host.yaml"
    )
    before = host_file.read_bytes()
    remote = bare_remote(seed=files)
    commit_links(remote, {f"{OVERLAY}/kustomization.yaml": str(host_file)}, tmp_path)

    result = one_pass(remote, tmp_path / "work")

    assert host_file.read_bytes() == before
    assert not result.pushed
    history = run_git("--git-dir", str(remote.path), "log", "-p", "--all")
    assert "HOST-SECRET-7f3a" not in history


def test_validate_names_each_symlink(registry, bare_remote, tmp_path):
    _, files = shop(registry)
    remote = bare_remote(seed=files)
    commit_links(
        remote,
        {
            "releases/shop": "/etc",
            "pins/shop/dev.yaml": "/etc/hostname",
            f"{OVERLAY}/kustomization.yaml": "/etc/passwd",
            "projects/extra.yaml": "/etc/passwd",
            "docs/readme-link.md": "../README.md",  # outside the trees the reconciler uses
        },
        tmp_path,
    )
    checkout = tmp_path / "pr"
    run_git("clone", "--quiet", str(remote.path), str(checkout))

    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "validate", str(checkout)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    for link in (
        "releases/shop",
        "pins/shop/dev.yaml",
        f"{OVERLAY}/kustomization.yaml",
        "projects/extra.yaml",
    ):
        assert f"{link}: symlink not allowed" in lines
    assert not any("readme-link" in line for line in lines)


# -- the I/O edge itself, whatever validate said -------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "deploy").mkdir(parents=True)
    (root / "deploy/k.yaml").write_text("images: []\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/k.yaml").write_text("images: []\n")
    return root


@pytest.mark.parametrize(
    ("link", "target", "path"),
    [
        ("deploy/overlay", "../outside", "deploy/overlay/k.yaml"),
        ("deploy/k2.yaml", "../../outside/k.yaml", "deploy/k2.yaml"),
        ("deploy/inside", ".", "deploy/inside/k.yaml"),  # even a link that stays inside
    ],
    ids=["folder", "file", "inside"],
)
def test_reads_and_writes_through_a_symlink_are_refused(tree, link, target, path):
    os.symlink(target, tree / link)
    outside = tree.parent / "outside/k.yaml"
    with pytest.raises(UnsafePathError, match="symlink not allowed"):
        safepaths.read_bytes(tree, path)
    with pytest.raises(UnsafePathError, match="symlink not allowed"):
        records.write_file(tree, path, b"images: [evil]\n")
    assert not safepaths.is_file(tree, path)
    assert outside.read_text() == "images: []\n"
    assert (tree / "deploy/k.yaml").read_text() == "images: []\n"


@pytest.mark.parametrize(
    "path", ["../outside/k.yaml", "/etc/hostname", ".git/HEAD", "deploy/.GIT/config", ""]
)
def test_paths_leaving_the_tree_or_into_git_are_refused(tree, path):
    with pytest.raises(UnsafePathError):
        records.write_file(tree, path, b"x")
    with pytest.raises(UnsafePathError):
        safepaths.read_bytes(tree, path)


def _release(version: str = "1.0.0") -> Release:
    package = ReleasedPackage("api", "image", "sec/api", "1.2.0", None, None)
    return Release("shop", version, "stable", "shop-images", datetime.now(UTC), (package,))


def test_render_refuses_a_target_behind_a_symlink(tmp_path):
    app = AppSpec("api", "sec/api", "example.com/shop/api")
    tree = tmp_path / "tree"
    write_files(tree, config_files("http://registry.invalid", [app]))
    project = load_config(tree).projects["shop"]
    outside = tmp_path / "outside.yaml"
    outside.write_text((tree / OVERLAY / "kustomization.yaml").read_text())
    before = outside.read_bytes()
    (tree / OVERLAY / "kustomization.yaml").unlink()
    os.symlink(outside, tree / OVERLAY / "kustomization.yaml")

    with pytest.raises(UnsafePathError, match="symlink not allowed"):
        environments.render(tree, project, "dev", _release())
    assert outside.read_bytes() == before
    assert (tree / OVERLAY / "kustomization.yaml").is_symlink()


# -- property: whatever the repository holds, writes stay in the deploy paths ---------

LINK_SPOTS = (
    "deploy",
    "deploy/shop",
    OVERLAY,
    f"{OVERLAY}/kustomization.yaml",
    "releases",
    "releases/shop",
    "state",
    "state/shop.yaml",
    "pins",
    "pins/shop",
    "pins/shop/dev.yaml",
    "projects/shop/project.yaml",
)
LINK_TARGETS = (
    "@",
    "@/kustomization.yaml",
    "../../..",
    ".",
    "..",
    "/etc",
    "/etc/passwd",
    "nowhere",
)
ODD = "deploy/shop/overlays/dév ☃ -rf *"
OVERLAYS = (
    OVERLAY,
    f"{OVERLAY}/",
    f"./{OVERLAY}",
    "deploy/shop/../shop/overlays/dev",
    "deploy/shop/overlays/../../../../outside",
    "@",
    ODD,
    ".git",
    "deploy/.git/x",
)
TARGETS = (None, f"{OVERLAY}/kustomization.yaml", f"{ODD}/kustomization.yaml", ".git/HEAD",
           "@/kustomization.yaml", "../outside/kustomization.yaml", ".GIT/config")  # fmt: skip


def _nested(spots: set[str]) -> set[str]:
    """Drop spots under another chosen spot (git cannot hold a file below a link)."""
    return {s for s in spots if not any(s.startswith(f"{o}/") for o in spots if o != s)}


def _yaml_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def feed(registry) -> tuple[str, dict[str, str]]:
    app, files = shop(registry)
    files[f"{ODD}/kustomization.yaml"] = files[f"{OVERLAY}/kustomization.yaml"]
    return app.repository, files


@settings(
    max_examples=int(os.environ.get("RECONCILER_PROPERTY_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    links=st.dictionaries(st.sampled_from(LINK_SPOTS), st.sampled_from(LINK_TARGETS), max_size=3),
    overlay=st.sampled_from(OVERLAYS),
    target=st.sampled_from(TARGETS),
)
def test_every_write_of_a_pass_lands_in_the_deploy_paths(
    feed, tmp_path_factory, links, overlay, target
):
    scratch = tmp_path_factory.mktemp("prop")
    outside = scratch / "outside"
    outside.mkdir()
    _, files = feed
    (outside / "kustomization.yaml").write_text(files[f"{OVERLAY}/kustomization.yaml"])
    here = {k: v.replace("@", str(outside)) for k, v in links.items() if k in _nested(set(links))}
    overlay = overlay.replace("@", str(outside))
    files = dict(files)
    extra = f"    overlay: {_yaml_string(overlay)}\n"
    if target is not None:
        file = _yaml_string(target.replace("@", str(outside)))
        extra += f"    targets:\n      - {{kind: kustomize-images, file: {file}}}\n"
    project = files["projects/shop/project.yaml"]
    files["projects/shop/project.yaml"] = project.replace(f"    overlay: {OVERLAY}\n", extra)
    remote = hostile_remote(scratch, files, here)
    before = tree_snapshot(outside)
    seed = remote.head()

    written: list[tuple[Path, str]] = []
    real_write = records.write_file

    def recording_write(root: Path, path: str, data: bytes) -> None:
        real_write(root, path, data)
        written.append((root, path))
        # The bytes landed at the path itself, inside the work tree, through no link.
        inside = os.path.normpath(os.path.join(os.path.realpath(root), path))
        assert os.path.realpath(root / path) == inside

    with mock.patch.object(records, "write_file", recording_write):
        one_pass(remote, scratch / "work")

    assert tree_snapshot(outside) == before
    assert not (Path("/etc/passwd.tmp")).exists()
    allowed = ("releases/shop/", "state/shop.yaml", "pins/shop/", f"{OVERLAY}/", f"{ODD}/")
    for _, path in written:
        assert os.path.normpath(path).startswith(allowed), path
    changed = run_git("--git-dir", str(remote.path), "diff", "--name-only", "-z", seed, "main")
    for path in filter(None, changed.split("\0")):
        assert path.startswith(allowed), path
