"""``reconciler import argocd-image-updater``: Image Updater annotations as config.

One project per Argo CD Application carrying ``argocd-image-updater.argoproj.io/
image-list``; its environment is the Application's Kustomize directory
(``spec.source.path``, or ``write-back-target: kustomization:<path>``, relative to
it, or from the repository root when it starts with ``/``).

Translated, per image of ``image-list`` (``[alias=]image[:constraint]``):

- ``update-strategy``: ``semver`` (default; the constraint becomes ``range``),
  ``newest-build`` and its old name ``latest``, ``alphabetical`` and its old name
  ``name`` (strategy ``regex``, ``order: alphabetical``), ``digest`` (the constraint
  is the tag to follow);
- ``allow-tags: regexp:<re>`` -> ``allow`` (``any`` allows everything);
  ``ignore-tags`` globs -> ``ignore`` regexes;
- ``platforms`` -> ``platform`` (the first one; others noted);
- ``kustomize.image-name`` -> ``manifestName``;
- ``write-back-method: git`` (any credentials form) and the branch from
  ``git-branch`` or ``spec.source.targetRevision``.

Not translated (comments): ``pull-secret`` (set the feed's credentials),
``write-back-method: argocd`` (reconciler always writes to Git),
``write-back-target: helmvalues:<file>`` and ``helm.*`` parameter names (rendered
by Helm values targets), a constraint on a strategy that ignores it.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from reconciler.importers import (
    Imported,
    ImportedPackage,
    ImportedProject,
    checked_regex,
    glob_to_regex,
    safe_name,
    split_image,
)
from reconciler.importers.scan import documents
from reconciler.ranges import parse_range

PREFIX = "argocd-image-updater.argoproj.io/"
_STRATEGIES = {
    "semver": "semver",
    "newest-build": "newest-build",
    "latest": "newest-build",
    "alphabetical": "alphabetical",
    "name": "alphabetical",
    "digest": "digest",
}


def parse_image_list(text: str) -> list[tuple[str, str, str | None]]:
    """``a=ghcr.io/x/y:~1.2, nginx`` -> [(alias, image, constraint)]; the alias defaults
    to the image's last path part, as Image Updater does."""
    entries = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        alias, _, spec = item.rpartition("=")
        image, constraint = spec, None
        colon = spec.rfind(":")
        if colon > spec.rfind("/"):
            image, constraint = spec[:colon], spec[colon + 1 :] or None
        entries.append((alias or image.rsplit("/", 1)[-1], image, constraint))
    return entries


def _strategy_rule(strategy: str, constraint: str | None, notes: list[str]) -> dict[str, Any]:
    if strategy == "semver":
        if constraint is None:
            return {}
        try:
            parse_range(constraint)
        except ValueError as error:
            notes.append(f"constraint {constraint!r}: {error}")
            return {}
        return {"range": constraint}
    if strategy == "digest":
        if constraint is None:
            notes.append("digest strategy without a tag to follow (image:tag)")
        return {"strategy": "digest", "tag": constraint or "latest"}
    if constraint is not None:
        notes.append(f"constraint {constraint!r} is not used by the {strategy} strategy")
    if strategy == "newest-build":
        return {"strategy": "newest-build"}
    return {"strategy": "regex", "allow": "^", "order": "alphabetical"}


def image_rule(
    annotations: dict[str, str], alias: str, constraint: str | None
) -> tuple[dict[str, Any], list[str]]:
    """Rule fields and notes for one image of ``image-list``."""

    def annotation(name: str) -> str | None:
        value = annotations.get(f"{PREFIX}{alias}.{name}")
        return str(value).strip() if value is not None else None

    notes: list[str] = []
    written = annotation("update-strategy") or "semver"
    strategy = _STRATEGIES.get(written)
    if strategy is None:
        notes.append(f"update-strategy {written!r} is unknown; semver used, as Image Updater does")
        strategy = "semver"
    rule = _strategy_rule(strategy, constraint, notes)
    allow = annotation("allow-tags")
    if allow and allow.startswith("regexp:"):
        pattern = checked_regex(allow.removeprefix("regexp:"), "allow-tags", notes)
        if pattern is not None:
            rule["allow"] = pattern
    elif allow and allow != "any":
        notes.append(f"allow-tags {allow!r}: only regexp: and any are known")
    ignore = [glob_to_regex(g.strip()) for g in (annotation("ignore-tags") or "").split(",")]
    if kept := [p for p in ignore if p != "^$"]:
        rule["ignore"] = kept
    platforms = [p.strip() for p in (annotation("platforms") or "").split(",") if p.strip()]
    if platforms:
        rule["platform"] = platforms[0]
        if len(platforms) > 1:
            notes.append(f"platforms {platforms!r}: only {platforms[0]} is checked")
    if annotation("pull-secret"):
        notes.append(f"pull-secret {annotation('pull-secret')!r}: set the feed's credentials")
    return rule, notes


def _overlay(app: dict[str, Any], annotations: dict[str, str], notes: list[str]) -> str:
    source = (app.get("spec") or {}).get("source") or {}
    path = str(source.get("path") or ".")
    target = annotations.get(f"{PREFIX}write-back-target", "kustomization")
    if target.startswith("helmvalues"):
        notes.append(f"write-back-target {target!r}: use a Helm values target for the file")
    elif target.startswith("kustomization:"):
        relative = target.removeprefix("kustomization:")
        path = relative.lstrip("/") if relative.startswith("/") else posixpath.join(path, relative)
    return posixpath.normpath(path)


def _application(app: dict[str, Any], imported: Imported) -> ImportedProject | None:
    meta = app.get("metadata") or {}
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    image_list = annotations.get(f"{PREFIX}image-list")
    if not image_list:
        return None
    notes: list[str] = []
    method = annotations.get(f"{PREFIX}write-back-method", "argocd")
    if not method.startswith("git"):
        notes.append(f"write-back-method {method!r}: reconciler always writes to Git")
    source = (app.get("spec") or {}).get("source") or {}
    imported.branch = (
        annotations.get(f"{PREFIX}git-branch") or source.get("targetRevision") or imported.branch
    )
    if imported.branch == "HEAD":
        imported.branch = None
    packages = []
    for alias, image, constraint in parse_image_list(image_list):
        rule, package_notes = image_rule(annotations, alias, constraint)
        manifest = annotations.get(f"{PREFIX}{alias}.kustomize.image-name", image)
        if any(k.startswith(f"{PREFIX}{alias}.helm.") for k in annotations):
            package_notes.append("helm.* parameter names: use a Helm values target")
        host, repository = split_image(image)
        packages.append(
            ImportedPackage(safe_name(alias), host, repository, manifest, rule, package_notes)
        )
    overlay = _overlay(app, annotations, notes)
    environment = safe_name(posixpath.basename(overlay) or str(meta.get("name")))
    name = safe_name(str(meta.get("name")))
    return ImportedProject(name, packages, [(environment, overlay)], notes)


def import_argocd_image_updater(root: Path) -> Imported:
    """Read every Argo CD Application under ``root`` that Image Updater manages."""
    imported = Imported("Argo CD Image Updater", [])
    for _, doc in documents(root, imported.notes):
        if doc.get("kind") == "Application" and str(doc.get("apiVersion", "")).startswith(
            "argoproj.io/"
        ):
            project = _application(doc, imported)
            if project is not None:
                imported.projects.append(project)
    return imported
