"""Helm charts end to end: a project mixing an image and a chart, every rendering target,
`kubectl kustomize --enable-helm` with the real helm binary, and ETag frugality."""

from __future__ import annotations

import json
import subprocess
import uuid

from tests.helpers.configrepo import AppSpec, checkout, config_files, run_cli

HELM_RELEASE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: demo
spec:
  interval: 10m
  chart:
    spec:
      chart: demo
      version: "0.1.0"   # set by reconciler
      sourceRef: {kind: HelmRepository, name: charts}
"""

APPLICATION = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: demo
spec:
  source:
    repoURL: https://charts.example.com
    chart: demo
    targetRevision: 0.1.0
"""

VALUES = """\
# values for the demo chart
image:
  repository: example.com/shop/api  # {"$reconciler": "shop:api:name"}
  tag: 0.0.0  # {"$reconciler": "shop:api:tag"}
"""


def _project(registry, helm_http_repo, helm_chart_factory, helm):
    ns = f"helm{uuid.uuid4().hex[:8]}"
    apps = [AppSpec("api", f"{ns}/api", "example.com/shop/api")]
    registry.push(apps[0].repository, "1.0.0")
    for version in ("0.1.0", "0.2.0", "0.3.0-rc.1"):
        helm_http_repo.add_chart(helm_chart_factory("demo", version))
    helm_http_repo.index_charts(helm)
    rules = (
        '      - {packages: [api], range: ">=1.0.0", prerelease: "^$"}\n'
        '      - {packages: [chart], prerelease: "^$"}\n'
    )
    files = config_files(
        registry.url,
        apps,
        envs=("dev",),
        rules=rules,
        lifecycle="apiVersion: reconciler.dev/v1\nkind: Lifecycle\n"
        "name: standard\nphases:\n  - {name: dev, environments: [dev]}\n",
    )
    files["feeds/charts.yaml"] = (
        "apiVersion: reconciler.dev/v1\nkind: Feed\nname: charts\ntype: helm\n"
        f"url: {helm_http_repo.url}\ninsecure: true\n"
    )
    project = files["projects/shop/project.yaml"]
    project = project.replace(
        "channels:\n",
        "  - name: chart\n    feed: charts\n    chart: demo\nchannels:\n",
    )
    project = project.replace(
        "    overlay: deploy/shop/overlays/dev\n",
        "    overlay: deploy/shop/overlays/dev\n    targets:\n"
        "      - {kind: kustomize-images, file: deploy/shop/overlays/dev/kustomization.yaml}\n"
        "      - {kind: kustomize-helm, file: deploy/shop/overlays/dev/kustomization.yaml}\n"
        "      - {kind: helmrelease, file: deploy/shop/overlays/dev/helmrelease.yaml}\n"
        "      - {kind: application, file: deploy/shop/overlays/dev/application.yaml}\n"
        "      - {kind: markers, file: deploy/shop/overlays/dev/values.yaml}\n",
    )
    files["projects/shop/project.yaml"] = project
    files["projects/shop/triggers.yaml"] = files["projects/shop/triggers.yaml"].replace(
        "sources: [api]", "sources: [api, chart]"
    )
    kustomization = "deploy/shop/overlays/dev/kustomization.yaml"
    files[kustomization] += (
        "helmCharts:\n"
        "  - name: demo\n"
        f"    repo: {helm_http_repo.url}\n"
        "    version: 0.1.0  # set by reconciler\n"
        "    releaseName: demo\n"
    )
    files["deploy/shop/overlays/dev/helmrelease.yaml"] = HELM_RELEASE
    files["deploy/shop/overlays/dev/application.yaml"] = APPLICATION
    files["deploy/shop/overlays/dev/values.yaml"] = VALUES
    return apps, files


def test_mixed_project_releases_image_and_chart_together_and_kustomize_builds(
    registry, bare_remote, helm_http_repo, helm_chart_factory, helm, tmp_path
):
    _apps, files = _project(registry, helm_http_repo, helm_chart_factory, helm)
    remote = bare_remote(seed=files)
    work = tmp_path / "w"
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    release = json.loads(proc.stdout)["releases"][0]
    assert release["packages"]["api"]["version"] == "1.0.0"
    assert release["packages"]["chart"]["version"] == "0.2.0"  # rc excluded by ^$
    assert release["packages"]["chart"]["digest"].startswith("sha256:")
    record = remote.show("releases/shop/1.0.0.yaml")
    assert "chart: demo" in record and "version: 0.2.0" in record

    overlay = "deploy/shop/overlays/dev"
    assert "    version: 0.2.0  # set by reconciler" in remote.show(f"{overlay}/kustomization.yaml")
    assert 'version: "0.2.0"   # set by reconciler' in remote.show(f"{overlay}/helmrelease.yaml")
    assert "targetRevision: 0.2.0" in remote.show(f"{overlay}/application.yaml")
    values = remote.show(f"{overlay}/values.yaml")
    assert 'tag: 1.0.0  # {"$reconciler": "shop:api:tag"}' in values

    # the real kustomize + helm build of the rendered overlay
    co = checkout(remote.path, tmp_path / "co")
    (co / overlay / "helmrelease.yaml").unlink()  # not kustomize resources in this overlay
    (co / overlay / "application.yaml").unlink()
    out = subprocess.run(
        [
            "kubectl",
            "kustomize",
            "--enable-helm",
            "--helm-command",
            str(helm.binary),
            str(co / overlay),
        ],
        capture_output=True,
        text=True,
        env=helm.env(),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "helm.sh/chart: demo-0.2.0" in out.stdout
    assert "image: example.com/shop/api:1.0.0" in out.stdout

    # a new chart version alone triggers the next release, which keeps the image
    helm_http_repo.add_chart(helm_chart_factory("demo", "0.4.0"))
    helm_http_repo.index_charts(helm)
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    release = json.loads(proc.stdout)["releases"][0]
    assert release["packages"]["chart"]["version"] == "0.4.0"
    assert release["packages"]["api"]["version"] == "1.0.0"


def test_unchanged_index_is_not_downloaded_again(
    registry, bare_remote, helm_http_repo, helm_chart_factory, helm, tmp_path
):
    _, files = _project(registry, helm_http_repo, helm_chart_factory, helm)
    remote = bare_remote(seed=files)
    work = tmp_path / "w"
    assert run_cli("once", "--repo", remote.url, "--work-dir", str(work)).returncode == 0
    first = helm_http_repo.index_requests()
    assert [r.status for r in first] == [200] and first[0].body_bytes > 0
    helm_http_repo.clear_log()
    # a new process (a restart): validators come from the work dir, the server says 304
    assert run_cli("once", "--repo", remote.url, "--work-dir", str(work)).returncode == 0
    again = helm_http_repo.index_requests()
    assert again and all(r.status == 304 and r.body_bytes == 0 for r in again)


def test_oci_chart_feed_in_a_whole_pass(registry, bare_remote, helm, helm_chart_factory, tmp_path):
    """Charts pushed with `helm push` to the registry, read through an oci:// Helm feed:
    the tag's `_` is a `+` again in the record and in the rendered helmCharts entry."""
    ns = f"ocichart{uuid.uuid4().hex[:8]}"
    apps = [AppSpec("api", f"{ns}/api", "example.com/shop/api")]
    registry.push(apps[0].repository, "1.0.0")
    url = f"oci://{registry.host}/{ns}/charts"
    digests = {
        version: helm.push(helm_chart_factory("web", version), url)
        for version in ("1.0.0", "1.1.0+build.7", "2.0.0-rc.1")
    }
    files = config_files(
        registry.url,
        apps,
        envs=("dev",),
        rules='      - {range: ">=1.0.0", prerelease: "^$"}\n',
        lifecycle="apiVersion: reconciler.dev/v1\nkind: Lifecycle\n"
        "name: standard\nphases:\n  - {name: dev, environments: [dev]}\n",
    )
    files["feeds/charts.yaml"] = (
        "apiVersion: reconciler.dev/v1\nkind: Feed\nname: charts\ntype: helm\n"
        f"url: {url}\ninsecure: true\n"
    )
    files["projects/shop/project.yaml"] = files["projects/shop/project.yaml"].replace(
        "channels:\n", "  - name: chart\n    feed: charts\n    chart: web\nchannels:\n"
    )
    files["projects/shop/triggers.yaml"] = files["projects/shop/triggers.yaml"].replace(
        "sources: [api]", "sources: [api, chart]"
    )
    kustomization = "deploy/shop/overlays/dev/kustomization.yaml"
    files[kustomization] += f"helmCharts:\n  - name: web\n    repo: {url}\n    version: 0.0.1\n"
    remote = bare_remote(seed=files)

    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(tmp_path / "w"), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    [release] = json.loads(proc.stdout)["releases"]
    chart = release["packages"]["chart"]
    assert (chart["version"], chart["digest"]) == ("1.1.0+build.7", digests["1.1.0+build.7"])
    assert release["packages"]["api"]["version"] == "1.0.0"
    assert remote.show(kustomization).endswith("    version: 1.1.0+build.7")  # show strips
