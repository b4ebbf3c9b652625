"""Review finding: an ``oci-layout`` feed's ``url`` is a path chosen by the untrusted
config repository. It resolves inside the work tree with no ``..`` and no symlink, or
under a directory the operator grants (RECONCILER_OCI_LAYOUT_DIRS); never elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.errors import ConfigError, FeedError
from reconciler.feeds.ocilayout import OciLayoutClient, build_image, write_image
from reconciler.grants import OCI_LAYOUT_DIRS_VAR
from reconciler.model import Feed
from tests.helpers.configrepo import AppSpec, config_files, write_files

FEED = "feeds/reg.yaml"


def _layout(folder: Path) -> Path:
    """An OCI layout holding ``acme/api:1.0.0``."""
    write_image(folder / "acme/api", "1.0.0", build_image(content=b"layout"))
    return folder


def _files(url: str) -> dict[str, str]:
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    files[FEED] = (
        files[FEED]
        .replace("type: oci\n", "type: oci-layout\n")
        .replace("url: https://r.example.com\n", f"url: {url}\n")
    )
    return files


def _problems(root: Path, url: str) -> list[str]:
    write_files(root, _files(url))
    with pytest.raises(ConfigError) as info:
        load_config(root)
    return [str(p) for p in info.value.problems]


def _feed(url: str) -> Feed:
    return Feed(name="reg", type="oci-layout", url=url)


def test_validate_refuses_a_layout_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OCI_LAYOUT_DIRS_VAR, raising=False)
    outside = _layout(tmp_path / "host")
    repo = tmp_path / "repo"
    problems = _problems(repo, str(outside))
    assert problems == [
        f"{FEED}:5: url: not granted: {outside} is outside the repository and the layout "
        f"directories the operator grants ({OCI_LAYOUT_DIRS_VAR}: none)"
    ]
    problems = _problems(repo, "../host")
    assert problems == [
        f"{FEED}:5: url: not granted: ../host: '..' is not allowed "
        "(the layout must lie inside the repository)"
    ]


def test_validate_refuses_a_symlinked_layout(tmp_path: Path) -> None:
    outside = _layout(tmp_path / "host")
    repo = tmp_path / "repo"
    (repo / "layouts").mkdir(parents=True)
    os.symlink(outside, repo / "layouts/feed")
    assert _problems(repo, "layouts/feed") == [
        f"{FEED}:5: url: 'layouts/feed': symlink not allowed"
    ]


def test_validate_accepts_a_granted_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = _layout(tmp_path / "host")
    monkeypatch.setenv(OCI_LAYOUT_DIRS_VAR, f"/nowhere,{tmp_path / 'host'}")
    repo = tmp_path / "repo"
    write_files(repo, _files(str(outside)))
    assert "reg" in load_config(repo).feeds


def test_client_reads_only_the_work_tree_or_granted_dirs(tmp_path: Path) -> None:
    outside = _layout(tmp_path / "host")
    tree = tmp_path / "repo"
    _layout(tree / "layouts/feed")
    (tree / "layouts/linked").mkdir()
    os.symlink(outside / "acme", tree / "layouts/linked/acme")
    env = {OCI_LAYOUT_DIRS_VAR: str(tmp_path / "granted")}
    for url in (str(outside), f"file://{outside}", "../host", "layouts/../../host"):
        with pytest.raises(FeedError, match="not granted"):
            OciLayoutClient(_feed(url), base_dir=tree, env=env)
    with pytest.raises(FeedError, match="symlink not allowed"):
        OciLayoutClient(_feed("layouts/linked"), base_dir=tree, env=env).list_tags("acme/api")
    inside = OciLayoutClient(_feed("layouts/feed"), base_dir=tree, env=env)
    assert inside.list_tags("acme/api") == ["1.0.0"]
    granted = OciLayoutClient(
        _feed(str(outside)), base_dir=tree, env={OCI_LAYOUT_DIRS_VAR: str(outside)}
    )
    assert granted.list_tags("acme/api") == ["1.0.0"]
