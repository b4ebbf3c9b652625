"""``reconciler init [PATH]``: scaffold a config repository from an existing GitOps repo.

How the repository is read (documented in docs/migration-init.md):

- an **overlay** is a Kustomize directory named like an environment (``dev``,
  ``test``, ``qa``, ``uat``, ``staging``, ``prod``, ``production``, ...); its
  **project** is the directory above it, skipping an ``overlays``/``envs``/
  ``environments`` level: ``shop/overlays/dev`` is project ``shop``, environment
  ``dev``; Flux's ``apps/staging`` (next to ``apps/base``) is project ``apps``;
- the **packages** of a project are the container images its files use
  (``containers``/``initContainers`` of workloads, ``images:`` of kustomizations),
  one package per image repository, named after its last path part;
- environments are ordered by name: dev-like first, then test/qa/uat/staging,
  prod-like last; the lifecycle promotes automatically until the prod-like ones,
  which wait for a person (``reconciler promote``);
- one stable semver channel per project (``prerelease: "^$"``) and one trigger
  watching all its packages.

Helm charts (Flux HelmReleases, Argo CD Applications with ``chart``) are listed as
comments to add by hand (a helm feed and a ``chart`` package; see docs/helm.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.importers import Imported, ImportedPackage, ImportedProject, safe_name, split_image
from reconciler.importers.scan import (
    KUSTOMIZATION_FILES,
    documents,
    environment_rank,
    is_environment_name,
    yaml_files,
)

_GROUPING_DIRS = {"overlays", "envs", "environments", "env", "clusters"}


def is_manual(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("prod", "live")) and "preprod" not in lowered


def _overlays(root: Path) -> dict[Path, list[Path]]:
    """project directory -> its overlay directories."""
    found: dict[Path, list[Path]] = {}
    for path in yaml_files(root):
        if path.name not in KUSTOMIZATION_FILES or not is_environment_name(path.parent.name):
            continue
        project = path.parent.parent
        if project.name in _GROUPING_DIRS and project != root:
            project = project.parent
        found.setdefault(project, []).append(path.parent)
    return found


def _image_name(reference: str) -> str:
    """``ghcr.io/a/b:1.0@sha256:...`` -> ``ghcr.io/a/b``."""
    name = reference.split("@", 1)[0]
    colon = name.rfind(":")
    return name[:colon] if colon > name.rfind("/") else name


def _images_in(doc: dict[str, Any]) -> list[str]:
    if doc.get("kind") == "Kustomization" or ("images" in doc and "resources" in doc):
        return [
            str(i["name"]) for i in doc.get("images") or [] if isinstance(i, dict) and i.get("name")
        ]
    spec = doc.get("spec") or {}
    pod = ((spec.get("template") or {}).get("spec")) or spec.get("jobTemplate", {}).get(
        "spec", {}
    ).get("template", {}).get("spec", {})
    if not isinstance(pod, dict):
        return []
    containers = (pod.get("containers") or []) + (pod.get("initContainers") or [])
    return [
        _image_name(str(c["image"])) for c in containers if isinstance(c, dict) and c.get("image")
    ]


def _charts_in(doc: dict[str, Any]) -> list[str]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "HelmRelease":
        chart = ((spec.get("chart") or {}).get("spec") or {}).get("chart")
        return [f"HelmRelease {(doc.get('metadata') or {}).get('name')!r}: chart {chart!r}"]
    source = spec.get("source") or {}
    if doc.get("kind") == "Application" and source.get("chart"):
        return [f"Application chart {source['chart']!r} from {source.get('repoURL')!r}"]
    return []


def _packages(project_dir: Path) -> list[ImportedPackage]:
    images: list[str] = []
    for _, doc in documents(project_dir):
        images += [i for i in _images_in(doc) if i not in images]
    packages: list[ImportedPackage] = []
    for image in images:
        host, repository = split_image(image)
        name = safe_name(repository.rsplit("/", 1)[-1])
        while any(p.name == name for p in packages):
            name = safe_name(f"{name}-{len(packages)}")
        rule = {"prerelease": "^$"}
        packages.append(ImportedPackage(name, host, repository, image, rule))
    return packages


def scaffold(root: Path) -> Imported:
    """What ``init`` proposes for the GitOps repository at ``root``."""
    root = root.resolve()
    imported = Imported("an existing GitOps repository (reconciler init)", [], channel="stable")
    for project_dir, overlays in sorted(_overlays(root).items()):
        packages = _packages(project_dir)
        if not packages:
            imported.notes.append(f"{project_dir.relative_to(root)}: no container images found")
            continue
        environments = sorted(
            ((safe_name(o.name), o.relative_to(root).as_posix()) for o in overlays),
            key=lambda env: environment_rank(env[0]),
        )
        name = safe_name(project_dir.name if project_dir != root else root.name)
        imported.projects.append(ImportedProject(name, packages, environments))
    charts = [chart for _, doc in documents(root, imported.notes) for chart in _charts_in(doc)]
    imported.notes += [f"{c}: add a helm feed and a chart package" for c in dict.fromkeys(charts)]
    imported.manual = {
        env for project in imported.projects for env, _ in project.environments if is_manual(env)
    }
    return imported
