"""``verify:`` in project config: parsed into VerifySpec, bad blocks reported at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.errors import ConfigError
from reconciler.verify.model import ArgoCDCheck, CommitStatusCheck, FluxCheck, HttpCheck, VerifySpec
from tests.helpers.configrepo import AppSpec, config_files

PROJECT = "projects/shop/project.yaml"


def _files(environments: str) -> dict[str, str]:
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    text = files[PROJECT]
    head = text[: text.index("environments:\n")]
    files[PROJECT] = head + "environments:\n" + environments
    return files


def _load(tmp_path: Path, files: dict[str, str]) -> object:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return load_config(tmp_path)


def _problems(tmp_path: Path, environments: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, _files(environments))
    return [str(p) for p in info.value.problems]


def _line(tmp_path: Path, text: str) -> int:
    """The line of ``text`` in the project file, counted from 1."""
    lines = (tmp_path / PROJECT).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


OTHER_ENVS = (
    "  staging:\n    overlay: deploy/shop/overlays/staging\n"
    "  prod:\n    overlay: deploy/shop/overlays/prod\n"
)


def test_verify_blocks_are_parsed_with_defaults(tmp_path: Path) -> None:
    envs = (
        "  dev:\n"
        "    overlay: deploy/shop/overlays/dev\n"
        "    verify:\n"
        "      onFailure: rollback\n"
        "      timeout: 5m\n"
        "      checks:\n"
        "        - {kind: argocd, name: shop-dev}\n"
        "        - {kind: flux, name: shop-dev, resource: HelmRelease, namespace: apps}\n"
        "        - {kind: commitStatus, context: 'argocd/*'}\n"
        "        - {kind: http, url: 'https://dev.example/version', expect: '{version}'}\n"
        + OTHER_ENVS
    )
    config = _load(tmp_path, _files(envs))
    project = config.projects["shop"]  # type: ignore[attr-defined]
    assert project.environments["dev"].verify == VerifySpec(
        (
            ArgoCDCheck("shop-dev", "argocd"),
            FluxCheck("shop-dev", "apps", "HelmRelease"),
            CommitStatusCheck("argocd/*"),
            HttpCheck("https://dev.example/version", "{version}"),
        ),
        timeout=300.0,
        interval=30.0,
        on_failure="rollback",
    )
    assert project.environments["staging"].verify is None


def test_tenants_inherit_or_override_verify(tmp_path: Path) -> None:
    envs = (
        "  dev:\n    overlay: deploy/shop/overlays/dev\n"
        "  staging:\n    overlay: deploy/shop/overlays/staging\n"
        "  prod:\n"
        "    verify: {checks: [{kind: argocd, name: shop-prod}]}\n"
        "    tenants:\n"
        "      acme: {overlay: deploy/shop/overlays/prod}\n"
        "      beta:\n"
        "        overlay: deploy/shop/overlays/prod\n"
        "        verify: {checks: [{kind: flux, name: beta}], onFailure: rollback}\n"
    )
    config = _load(tmp_path, _files(envs))
    environments = config.projects["shop"].environments  # type: ignore[attr-defined]
    assert environments["prod@acme"].verify.checks == (ArgoCDCheck("shop-prod"),)
    assert environments["prod@beta"].verify.checks == (FluxCheck("beta"),)
    assert environments["prod@beta"].verify.on_failure == "rollback"


def test_an_unknown_kind_is_reported_at_its_line(tmp_path: Path) -> None:
    envs = (
        "  dev:\n    overlay: deploy/shop/overlays/dev\n    verify:\n      checks:\n"
        "        - kind: argo\n          name: x\n" + OTHER_ENVS
    )
    problems = _problems(tmp_path, envs)
    assert any(
        p.startswith(f"{PROJECT}:")
        and "environments.dev.verify.checks[0].kind" in p
        and "argo" in p
        for p in problems
    ), problems


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("{kind: argocd}", "argocd check needs a name"),
        ("{kind: flux, namespace: x}", "flux check needs a name"),
        ("{kind: commitStatus}", "commitStatus check needs a context"),
        ("{kind: http}", "http check needs a url"),
    ],
)
def test_a_missing_name_is_reported_at_its_line(tmp_path: Path, check: str, message: str) -> None:
    envs = "  dev:\n    overlay: deploy/shop/overlays/dev\n    verify:\n      checks:\n"
    problems = _problems(tmp_path, f"{envs}        - {check}\n{OTHER_ENVS}")
    line = _line(tmp_path, check)
    assert f"{PROJECT}:{line}: environments.dev.verify.checks[0]: {message}" in problems, problems


def test_a_template_naming_an_unknown_package_is_reported(tmp_path: Path) -> None:
    envs = (
        "  dev:\n    overlay: deploy/shop/overlays/dev\n    verify:\n      checks:\n"
        "        - kind: http\n          url: https://dev.example/version\n"
        "          expect: '{packages.web.version}'\n" + OTHER_ENVS
    )
    problems = _problems(tmp_path, envs)
    line = _line(tmp_path, "expect: ")
    assert any(
        p.startswith(
            f"{PROJECT}:{line}: environments.dev.verify.checks[0].expect: unknown variable "
            "{packages.web.version}"
        )
        for p in problems
    ), problems


def test_attribute_access_and_format_specs_are_refused(tmp_path: Path) -> None:
    envs = (
        "  dev:\n    overlay: deploy/shop/overlays/dev\n    verify:\n      checks:\n"
        "        - {kind: http, url: 'https://x', expect: '{version.__class__}{version:>9}'}\n"
        + OTHER_ENVS
    )
    problems = _problems(tmp_path, envs)
    assert sum("unknown variable" in p for p in problems) == 2, problems


def test_a_zero_timeout_is_refused(tmp_path: Path) -> None:
    envs = (
        "  dev:\n    overlay: deploy/shop/overlays/dev\n    verify:\n      timeout: 0s\n"
        "      checks: [{kind: argocd, name: x}]\n" + OTHER_ENVS
    )
    problems = _problems(tmp_path, envs)
    assert any("verify.timeout: timeout must be above 0" in p for p in problems), problems


def test_only_http_urls_are_probed(tmp_path: Path) -> None:
    envs = (
        "  dev:\n    overlay: deploy/shop/overlays/dev\n    verify:\n"
        "      checks: [{kind: http, url: 'file:///etc/passwd'}]\n" + OTHER_ENVS
    )
    problems = _problems(tmp_path, envs)
    assert any("verify.checks[0].url" in p for p in problems), problems
