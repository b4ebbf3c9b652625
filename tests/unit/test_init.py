"""``reconciler init`` (issue 19 item 2) on three realistic GitOps layouts.

1. Kustomize base + ``overlays/<env>`` per app (the Kustomize docs' layout);
2. Flux's ``clusters/`` + ``apps/`` example layout (``apps/base/<app>``,
   ``apps/staging``, ``apps/production``; Flux Kustomizations under ``clusters/``),
   with a HelmRelease the scaffold lists as a comment;
3. Argo CD's app-of-apps (a root Application whose path holds one Application per
   environment, each pointing at ``<app>/overlays/<env>``).

Each scaffold must validate, order environments dev -> staging -> prod, promote
automatically until prod, and hold every container image as a package.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.config import load_config
from tests.helpers.configrepo import run_cli
from tests.helpers.gitserver import write_files


def _deployment(name: str, image: str) -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n"
        f"  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n"
        f"    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n"
        f"        - name: {name}\n          image: {image}\n"
    )


KUSTOMIZE_LAYOUT = {
    "shop/base/kustomization.yaml": "resources: [api.yaml, web.yaml]\n",
    "shop/base/api.yaml": _deployment("api", "ghcr.io/acme/shop-api:1.0.0"),
    "shop/base/web.yaml": _deployment("web", "ghcr.io/acme/shop-web:1.0.0"),
    "shop/overlays/prod/kustomization.yaml": "resources: [../../base]\n",
    "shop/overlays/dev/kustomization.yaml": "resources: [../../base]\n",
    "shop/overlays/staging/kustomization.yaml": "resources: [../../base]\n",
}

FLUX_LAYOUT = {
    "clusters/staging/apps.yaml": (
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
        "metadata: {name: apps, namespace: flux-system}\n"
        "spec: {interval: 10m, path: ./apps/staging, prune: true,\n"
        "       sourceRef: {kind: GitRepository, name: flux-system}}\n"
    ),
    "clusters/production/apps.yaml": (
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
        "metadata: {name: apps, namespace: flux-system}\n"
        "spec: {interval: 10m, path: ./apps/production, prune: true,\n"
        "       sourceRef: {kind: GitRepository, name: flux-system}}\n"
    ),
    "apps/base/podinfo/kustomization.yaml": "resources: [deployment.yaml, release.yaml]\n",
    "apps/base/podinfo/deployment.yaml": _deployment(
        "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0"
    ),
    "apps/base/podinfo/release.yaml": (
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
        "metadata: {name: redis, namespace: podinfo}\n"
        "spec:\n  chart:\n    spec: {chart: redis, sourceRef: {kind: HelmRepository, "
        "name: bitnami}}\n"
    ),
    "apps/staging/kustomization.yaml": "resources: [../base/podinfo]\n",
    "apps/production/kustomization.yaml": "resources: [../base/podinfo]\n",
}


def _application(name: str, path: str) -> str:
    return (
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\n"
        f"metadata: {{name: {name}, namespace: argocd}}\nspec:\n  project: default\n"
        "  source: {repoURL: 'https://github.com/example/gitops.git', "
        f"targetRevision: HEAD, path: {path}}}\n"
        "  destination: {server: 'https://kubernetes.default.svc', namespace: guestbook}\n"
    )


ARGO_LAYOUT = {
    "argocd/root.yaml": _application("root", "argocd/apps"),
    "argocd/apps/guestbook-dev.yaml": _application("guestbook-dev", "guestbook/overlays/dev"),
    "argocd/apps/guestbook-prod.yaml": _application("guestbook-prod", "guestbook/overlays/prod"),
    "guestbook/base/kustomization.yaml": "resources: [deployment.yaml]\n",
    "guestbook/base/deployment.yaml": _deployment(
        "guestbook", "gcr.io/heptio-images/ks-guestbook-demo:0.2"
    ),
    "guestbook/overlays/dev/kustomization.yaml": "resources: [../../base]\n",
    "guestbook/overlays/prod/kustomization.yaml": "resources: [../../base]\n",
}


def _init(root: Path, files: dict[str, str]) -> Path:
    write_files(root, files)
    proc = run_cli("init", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    validate = run_cli("validate", str(root))
    assert validate.returncode == 0, validate.stdout + validate.stderr
    return root


def _summary(root: Path, project: str) -> tuple[list[str], list[str], list[tuple[str, bool]]]:
    config = load_config(root)
    found = config.projects[project]
    lifecycle = config.lifecycles[found.lifecycle]
    phases = [(p.name, p.environments[0].automatic) for p in lifecycle.phases]
    return list(found.environments), [p.manifest_name or "" for p in found.packages], phases


def test_init_kustomize_overlays_layout(tmp_path: Path) -> None:
    root = _init(tmp_path, KUSTOMIZE_LAYOUT)
    environments, images, phases = _summary(root, "shop")
    assert environments == ["dev", "staging", "prod"]
    assert images == ["ghcr.io/acme/shop-api", "ghcr.io/acme/shop-web"]
    assert phases == [("dev", True), ("staging", True), ("prod", False)]
    config = load_config(root)
    assert config.projects["shop"].channels[0].rules[0].prerelease == "^$"
    assert [t.project for t in config.triggers.values()] == ["shop"]


def test_init_flux_clusters_and_apps_layout(tmp_path: Path) -> None:
    root = _init(tmp_path, FLUX_LAYOUT)
    environments, images, phases = _summary(root, "apps")
    assert environments == ["staging", "production"]
    assert images == ["ghcr.io/stefanprodan/podinfo"]
    assert phases == [("staging", True), ("production", False)]
    settings = (root / "reconciler.yaml").read_text()
    assert "# NOT TRANSLATED: HelmRelease 'redis': chart 'redis'" in settings


def test_init_argo_cd_app_of_apps_layout(tmp_path: Path) -> None:
    root = _init(tmp_path, ARGO_LAYOUT)
    environments, images, phases = _summary(root, "guestbook")
    assert environments == ["dev", "prod"]
    assert images == ["gcr.io/heptio-images/ks-guestbook-demo"]
    assert phases == [("dev", True), ("prod", False)]


def test_init_dry_run_prints_and_writes_nothing(tmp_path: Path) -> None:
    write_files(tmp_path, KUSTOMIZE_LAYOUT)
    proc = run_cli("init", str(tmp_path), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "--- projects/shop/project.yaml" in proc.stdout
    assert "automatic: false" in proc.stdout
    assert not (tmp_path / "reconciler.yaml").exists()
