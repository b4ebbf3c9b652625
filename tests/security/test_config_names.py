"""Issue 14 items 3, 8 and 9 (config side): names and values from the untrusted config
repository that would become paths, or crash ``run``, are ``validate`` errors that name
file, line and key. Every message is asserted verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.errors import ConfigError
from tests.helpers.configrepo import AppSpec, config_files, write_files

PROJECT = "projects/shop/project.yaml"
VERSION_TEXT = "letters, digits, '.', '_', '+', '-'; never '/' or '..'"


def _files() -> dict[str, str]:
    return config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])


def _problems(tmp_path: Path, files: dict[str, str]) -> list[str]:
    write_files(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    return [str(p) for p in info.value.problems]


def _with_release_version(block: str) -> dict[str, str]:
    files = _files()
    files[PROJECT] = files[PROJECT].replace("releaseVersion:\n  initial: 1.0.0\n", block)
    return files


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            'releaseVersion:\n  template: "../../../rel-{i}"\n',
            "projects/shop/project.yaml:17: releaseVersion.template: '../../../rel-{i}': "
            f"release version '../../../rel-1' is not a safe file name ({VERSION_TEXT})",
        ),
        (
            'releaseVersion:\n  initial: "../../../rel-{i}"\n',
            "projects/shop/project.yaml:17: releaseVersion.initial: '../../../rel-{i}' is not "
            f"a version string ({VERSION_TEXT})",
        ),
        (
            'releaseVersion:\n  template: "{yyyy}/{MM}/{i}"\n',
            "projects/shop/project.yaml:17: releaseVersion.template: '{yyyy}/{MM}/{i}': "
            f"release version '2026/01/1' is not a safe file name ({VERSION_TEXT})",
        ),
        (
            'releaseVersion:\n  template: "{major}.{minor}.{patch+1}"\n  initial: "first"\n',
            "projects/shop/project.yaml:18: releaseVersion.initial: 'first' cannot be "
            "followed: the last release version 'first' is not a version; template "
            "'{major}.{minor}.{patch+1}' cannot be applied",
        ),
    ],
    ids=["template-path", "initial-path", "template-date-path", "initial-not-a-version"],
)
def test_release_versions_are_validated_as_rendered(tmp_path, block, expected):
    assert _problems(tmp_path, _with_release_version(block)) == [expected]


@pytest.mark.parametrize(
    "block",
    [
        'releaseVersion:\n  template: "{yyyy}.{MM}.{dd}.{i}"\n',
        'releaseVersion:\n  template: "build-{i}"\n',
        'releaseVersion:\n  template: "c.c.i-beta"\n  initial: 1.0.0\n',
    ],
)
def test_documented_release_version_templates_still_validate(tmp_path, block):
    files = _with_release_version(block)
    write_files(tmp_path, files)
    assert load_config(tmp_path).projects["shop"].name == "shop"


@pytest.mark.parametrize(
    ("file", "change", "expected"),
    [
        (
            "reconciler.yaml",
            "interval: 0\n",
            "reconciler.yaml:4: interval: 0 must be more than 0",
        ),
        (
            "reconciler.yaml",
            "interval: 0s\n",
            "reconciler.yaml:4: interval: '0s' must be more than 0",
        ),
        (
            "reconciler.yaml",
            "interval: .nan\n",
            "reconciler.yaml:4: interval: nan must be more than 0",
        ),
        (
            "feeds/reg.yaml",
            "timeout: 0ms\n",
            "feeds/reg.yaml:7: timeout: '0ms' must be more than 0",
        ),
        (
            "lifecycles/standard.yaml",
            "freezes: []\n",
            None,
        ),
    ],
)
def test_durations_that_would_crash_run_are_validate_errors(tmp_path, file, change, expected):
    files = _files()
    files[file] += change
    if expected is None:
        load_config(write_files(tmp_path, files))
        return
    assert _problems(tmp_path, files) == [expected]


def test_a_soak_of_centuries_is_refused(tmp_path):
    files = _files()
    files["lifecycles/standard.yaml"] = files["lifecycles/standard.yaml"].replace(
        "environments: [staging]}", "environments: [staging], soak: 400000d}"
    )
    assert _problems(tmp_path, files) == [
        "lifecycles/standard.yaml:6: phases[1].soak: '400000d' is longer than the maximum of 366d"
    ]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (".git/HEAD", "'.git/HEAD' is inside .git; the reconciler never reads or writes there"),
        (
            "deploy/.GIT/config",
            "'deploy/.GIT/config' is inside .git; the reconciler never reads or writes there",
        ),
        (
            "/etc/passwd",
            "'/etc/passwd' is an absolute path; give a path relative to the repository root",
        ),
        (
            "deploy/../../outside.yaml",
            "'deploy/../../outside.yaml' leaves its folder through "
            "'..'; paths stay inside the repository",
        ),
    ],
)
def test_target_files_inside_git_absolute_or_escaping_are_refused(tmp_path, path, reason):
    files = _files()
    files[PROJECT] = files[PROJECT].replace(
        "  dev:\n    overlay: deploy/shop/overlays/dev\n",
        "  dev:\n    overlay: deploy/shop/overlays/dev\n    targets:\n"
        f"      - kind: markers\n        file: {path}\n",
    )
    assert _problems(tmp_path, files) == [
        f"projects/shop/project.yaml:23: environments.dev.targets[0].file: {reason}"
    ]


def test_an_overlay_inside_git_is_refused(tmp_path):
    files = _files()
    files[PROJECT] = files[PROJECT].replace(
        "overlay: deploy/shop/overlays/dev\n", "overlay: .git\n"
    )
    assert _problems(tmp_path, files) == [
        "projects/shop/project.yaml:20: environments.dev.overlay: '.git' is inside .git; "
        "the reconciler never reads or writes there"
    ]
