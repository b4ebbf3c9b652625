"""Issue 19 item 1: packages discovered from the manifests, checked against what a real
``kubectl kustomize`` build deploys."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from reconciler.commands.explain import package_sources
from reconciler.config import load_config, load_config_cached
from reconciler.config.discover import image_name
from reconciler.errors import ConfigError
from reconciler.feeds.auth import DEFAULT_DOCKER_CONFIG
from reconciler.model import Location
from tests.helpers.configrepo import AppSpec, config_files, write_files

PROJECT = "projects/shop/project.yaml"
APPS = [
    AppSpec("api", "acme/shop-api", "ghcr.io/acme/shop-api"),
    AppSpec("web", "acme/shop-web", "ghcr.io/acme/shop-web"),
]


def _files(**changes: str | None) -> dict[str, str]:
    files = config_files("https://ghcr.io", APPS)
    # no packages: they come from the overlays' kustomizations
    files[PROJECT] = re.sub(r"packages:\n(  .*\n|    .*\n)*", "", files[PROJECT])
    for name, text in changes.items():
        if text is None:
            files.pop(name, None)
        else:
            files[name] = text
    return files


def _rendered_images(overlay: Path) -> set[str]:
    """Image names (no tag) of every container in a real ``kubectl kustomize`` build."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    return {image_name(m) for m in re.findall(r"image: (\S+)", out)}


def test_packages_come_from_the_overlays_and_match_a_real_kustomize_build(tmp_path):
    root = write_files(tmp_path, _files())
    project = load_config(root).projects["shop"]
    packages = {p.name: p for p in project.packages}
    assert sorted(packages) == ["api", "web"]
    assert packages["api"].feed == "reg" and packages["api"].image == "acme/shop-api"
    assert packages["api"].found_at == Location("deploy/shop/base/api.yaml", 14)
    rendered = _rendered_images(root / "deploy/shop/overlays/dev")
    assert {p.manifest_name for p in project.packages} == rendered


def test_a_deploy_tree_with_images_newname_and_an_unknown_host(tmp_path):
    deployment = (root_text := _files())["deploy/shop/base/api.yaml"]
    extra = deployment.replace("name: api", "name: cache").replace(
        "ghcr.io/acme/shop-api:0.0.0", "redis:7.2"
    )
    files = _files(
        **{
            "deploy/shop/base/cache.yaml": extra,
            "deploy/shop/base/kustomization.yaml": root_text["deploy/shop/base/kustomization.yaml"]
            + "  - cache.yaml\n",
            "deploy/shop/overlays/dev/kustomization.yaml": root_text[
                "deploy/shop/overlays/dev/kustomization.yaml"
            ]
            + "  - name: ghcr.io/acme/shop-web\n    newName: quay.io/acme/web\n",
            PROJECT: root_text[PROJECT].replace(
                "environments:\n", "deploy: deploy/shop\nenvironments:\n"
            ),
        }
    )
    root = write_files(tmp_path, files)
    config = load_config(root)
    packages = {p.name: p for p in config.projects["shop"].packages}
    assert sorted(packages) == ["api", "cache", "web"]
    assert (packages["cache"].feed, packages["cache"].image) == ("docker.io", "library/redis")
    assert (packages["web"].feed, packages["web"].image) == ("quay.io", "acme/web")
    assert packages["web"].manifest_name == "ghcr.io/acme/shop-web"
    assert config.feeds["quay.io"].url == "https://quay.io"
    assert config.feeds["docker.io"].url == "https://registry-1.docker.io"
    # credentials for an implicit feed: docker config.json, for that host only
    assert config.feeds["quay.io"].credentials.docker_config == DEFAULT_DOCKER_CONFIG
    rendered = _rendered_images(root / "deploy/shop/overlays/dev")
    assert rendered == {"ghcr.io/acme/shop-api", "quay.io/acme/web", "redis"}


def test_explicit_packages_win_and_a_mix_works(tmp_path):
    files = _files()
    files["feeds/mirror.yaml"] = (
        "apiVersion: reconciler.dev/v1\nkind: Feed\nname: mirror\ntype: oci\n"
        "url: https://mirror.example.com\n"
    )
    files[PROJECT] = files[PROJECT].replace(
        "channels:\n",
        "packages:\n  - {name: api, feed: mirror, image: acme/api, "
        "manifestName: ghcr.io/acme/shop-api}\ndeploy: deploy/shop\nchannels:\n",
    )
    project = load_config(write_files(tmp_path, files)).projects["shop"]
    packages = {p.name: p for p in project.packages}
    assert packages["api"].feed == "mirror" and packages["api"].found_at is None
    assert packages["web"].feed == "reg" and packages["web"].found_at is not None


def test_helm_charts_of_a_kustomization_become_chart_packages(tmp_path):
    files = _files()
    files["deploy/shop/overlays/dev/kustomization.yaml"] += (
        "helmCharts:\n  - name: podinfo\n    repo: https://stefanprodan.github.io/podinfo\n"
        "    version: 6.5.0\n"
    )
    config = load_config(write_files(tmp_path, files))
    chart = config.projects["shop"].package("podinfo")
    assert (chart.chart, chart.feed) == ("podinfo", "stefanprodan.github.io-charts")
    assert config.feeds[chart.feed].type == "helm"
    assert chart.found_at == Location("deploy/shop/overlays/dev/kustomization.yaml", 10)


def test_an_image_matching_no_rule_is_reported_not_guessed(tmp_path):
    files = _files()
    files[PROJECT] = files[PROJECT].replace(
        '      - range: ">=1.0.0"', '      - packages: [api]\n        range: ">=1.0.0"'
    )
    with pytest.raises(ConfigError) as info:
        load_config(write_files(tmp_path, files))
    assert [str(p) for p in info.value.problems] == [
        "projects/shop/project.yaml:8: channels[0].rules: package 'web' (found at "
        "deploy/shop/base/web.yaml:14) matches no rule of channel 'stable': name it in a "
        "rule, or add a rule without packages"
    ]


def test_nothing_to_discover_is_an_error(tmp_path):
    files = _files()
    for env in ("dev", "staging", "prod"):
        files[f"deploy/shop/overlays/{env}/kustomization.yaml"] = "resources: []\n"
    with pytest.raises(ConfigError) as info:
        load_config(write_files(tmp_path, files))
    assert (
        "projects/shop/project.yaml:13: environments: no packages listed and none found in "
        "the manifests"
    ) in [str(p) for p in info.value.problems]


def test_discovery_is_deterministic_and_cached_by_content(tmp_path):
    root = write_files(tmp_path / "repo", _files())
    cache = tmp_path / "work" / "config.pickle"
    first = load_config_cached(root, cache)
    assert load_config_cached(root, cache) == first == load_config(root)
    base = root / "deploy/shop/base/web.yaml"
    base.write_text(base.read_text().replace("ghcr.io/acme/shop-web", "ghcr.io/acme/shop-www"))
    changed = load_config_cached(root, cache)
    assert changed.projects["shop"].package("web").image == "acme/shop-www"


def test_explain_says_where_each_package_was_found(tmp_path):
    files = _files()
    files[PROJECT] = files[PROJECT].replace(
        "channels:\n",
        "packages:\n  - {name: api, feed: reg, image: acme/shop-api, "
        "manifestName: ghcr.io/acme/shop-api}\ndeploy: deploy/shop\nchannels:\n",
    )
    config = load_config(write_files(tmp_path, files))
    assert package_sources(config, "shop") == [
        {
            "name": "api",
            "reference": "ghcr.io/acme/shop-api",
            "feed": "reg",
            "from": "listed in projects/shop/project.yaml",
        },
        {
            "name": "web",
            "reference": "ghcr.io/acme/shop-web",
            "feed": "reg",
            "from": "found at deploy/shop/base/web.yaml:14",
        },
    ]


FLUX = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: podinfo, namespace: flux-system}
spec:
  url: https://stefanprodan.github.io/podinfo
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: podinfo}
spec:
  chart:
    spec:
      chart: podinfo
      version: 6.5.0
      sourceRef: {kind: HelmRepository, name: podinfo}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: redis}
spec:
  chartRef: {kind: OCIRepository, name: redis}
---
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: OCIRepository
metadata: {name: redis}
spec:
  url: oci://registry-1.docker.io/bitnamicharts/redis
"""

ARGO = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: nginx}
spec:
  source:
    repoURL: https://charts.bitnami.com/bitnami
    chart: nginx
    targetRevision: 15.0.0
"""


def test_flux_helmreleases_and_argo_applications_become_chart_packages(tmp_path):
    files = _files()
    files["deploy/shop/gitops/kustomization.yaml"] = "resources:\n  - flux.yaml\n  - app.yaml\n"
    files["deploy/shop/gitops/flux.yaml"] = FLUX
    files["deploy/shop/gitops/app.yaml"] = ARGO
    files[PROJECT] = files[PROJECT].replace(
        "environments:\n", "deploy: deploy/shop\nenvironments:\n"
    )
    config = load_config(write_files(tmp_path, files))
    charts = {p.name: p for p in config.projects["shop"].packages if p.kind == "chart"}
    assert {n: (p.chart, config.feeds[p.feed].url, p.found_at) for n, p in charts.items()} == {
        "podinfo": (
            "podinfo",
            "https://stefanprodan.github.io/podinfo",
            Location("deploy/shop/gitops/flux.yaml", 13),
        ),
        "redis": (
            "redis",
            "oci://registry-1.docker.io/bitnamicharts",
            Location("deploy/shop/gitops/flux.yaml", 21),
        ),
        "nginx": (
            "nginx",
            "https://charts.bitnami.com/bitnami",
            Location("deploy/shop/gitops/app.yaml", 7),
        ),
    }
    assert all(config.feeds[p.feed].type == "helm" for p in charts.values())


def test_a_new_kustomization_in_the_deploy_tree_is_not_hidden_by_the_cache(tmp_path):
    files = _files()
    files[PROJECT] = files[PROJECT].replace(
        "environments:\n", "deploy: deploy/shop\nenvironments:\n"
    )
    root = write_files(tmp_path / "repo", files)
    cache = tmp_path / "work" / "config.pickle"
    assert len(load_config_cached(root, cache).projects["shop"].packages) == 2
    extra = (
        files["deploy/shop/base/api.yaml"]
        .replace("name: api", "name: jobs")
        .replace("shop-api", "shop-jobs")
    )
    write_files(
        root,
        {
            "deploy/shop/jobs/kustomization.yaml": "resources: [jobs.yaml]\n",
            "deploy/shop/jobs/jobs.yaml": extra,
        },
    )
    assert (
        load_config_cached(root, cache).projects["shop"].package("jobs").image == "acme/shop-jobs"
    )
