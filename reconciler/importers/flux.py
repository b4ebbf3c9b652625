"""``reconciler import flux``: Flux image automation objects as a config repository.

Translated (each policy becomes a package of the project of its namespace's
ImageUpdateAutomation):

- ImageRepository ``image`` -> feed (per registry host) + package ``image``;
  ``exclusionList`` -> ``ignore`` (Flux's default ``^.*\\.sig$`` when absent);
- ImagePolicy ``semver.range`` -> ``range`` (stable only unless the range names a
  pre-release, as Flux does); ``alphabetical`` / ``numerical`` with ``order`` ->
  strategy ``regex`` with ``order`` (``desc`` -> ``pick: lowest``);
  ``filterTags.pattern`` -> ``allow``; ``filterTags.extract`` naming one group ->
  ``extract``;
- ImageUpdateAutomation ``git.push.branch`` (else ``git.checkout.ref.branch``) ->
  Settings ``branch``; ``git.commit.author`` -> ``author``; ``update.path`` -> where
  overlays are looked for (the Kustomize directories holding files that carry the
  policy's ``$imagepolicy`` marker or its image).

Not translated (written as comments): ``secretRef`` / ``provider`` (set the feed's
``credentials``), an ``extract`` template combining groups or used with semver,
``commit.messageTemplate`` (Go templates), ``interval``, patterns RE2 refuses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reconciler.importers import (
    Imported,
    ImportedPackage,
    ImportedProject,
    checked_regex,
    safe_name,
    split_image,
)
from reconciler.importers.scan import documents, environment_rank, overlays_mentioning
from reconciler.ranges import parse_range

FLUX_IMAGE_API = "image.toolkit.fluxcd.io/"
FLUX_DEFAULT_EXCLUSION = "^.*\\.sig$"
_ONE_GROUP = re.compile(r"\$(\w+|\{\w+\})")


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    meta = doc.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _order_rule(
    kind: str, choice: dict[str, Any], filters: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    rule: dict[str, Any] = {"strategy": "regex", "allow": filters.get("pattern") or "^"}
    rule["order"] = kind
    if str(choice.get("order", "asc")).lower() == "desc":
        rule["pick"] = "lowest"
    extract = filters.get("extract")
    if extract and _ONE_GROUP.fullmatch(str(extract)):
        rule["extract"] = str(extract)
    elif extract:
        notes.append(f"filterTags.extract {extract!r} combines groups; ordering by the whole tag")
    return rule


def policy_rule(
    policy: dict[str, Any], repository: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The rule fields for one ImagePolicy spec (+ its ImageRepository spec), and notes."""
    notes: list[str] = []
    choice = policy.get("policy") or {}
    filters = policy.get("filterTags") or {}
    rule: dict[str, Any]
    if "semver" in choice:
        rule = {"range": str((choice["semver"] or {}).get("range", "*"))}
        try:
            parse_range(rule["range"])
        except ValueError as error:
            notes.append(f"semver range: {error}")
            rule = {}
        if filters.get("pattern"):
            rule["allow"] = filters["pattern"]
        if filters.get("extract"):
            notes.append(f"filterTags.extract {filters['extract']!r} with a semver policy")
    elif "alphabetical" in choice or "numerical" in choice:
        kind = "alphabetical" if "alphabetical" in choice else "numerical"
        rule = _order_rule(kind, choice[kind] or {}, filters, notes)
    else:
        notes.append(f"policy {sorted(choice)!r}: no semver, alphabetical or numerical choice")
        rule = {}
    if "allow" in rule and checked_regex(rule["allow"], "filterTags.pattern", notes) is None:
        del rule["allow"]
        rule.pop("extract", None)
        if rule.get("strategy") == "regex":
            rule["allow"] = "^"
    ignore = repository.get("exclusionList", [FLUX_DEFAULT_EXCLUSION])
    kept = [p for p in map(str, ignore) if checked_regex(p, "exclusionList", notes)]
    if kept:
        rule["ignore"] = kept
    return rule, notes


def _package(
    policy: dict[str, Any], repositories: dict[tuple[str, str], dict[str, Any]]
) -> ImportedPackage | None:
    namespace, name = _key(policy)
    spec = policy.get("spec") or {}
    ref = spec.get("imageRepositoryRef") or {}
    repo_doc = repositories.get((str(ref.get("namespace") or namespace), str(ref.get("name"))))
    if repo_doc is None:
        return None
    repo_spec = repo_doc.get("spec") or {}
    image = str(repo_spec.get("image", ""))
    host, repository = split_image(image)
    rule, notes = policy_rule(spec, repo_spec)
    for key in ("secretRef", "provider", "certSecretRef", "serviceAccountName"):
        if repo_spec.get(key):
            notes.append(f"ImageRepository {key} {repo_spec[key]!r}: set the feed's credentials")
    return ImportedPackage(safe_name(name), host, repository, image, rule, notes)


def _automation_settings(imported: Imported, automation: dict[str, Any]) -> None:
    git = (automation.get("spec") or {}).get("git") or {}
    push = git.get("push") or {}
    checkout = ((git.get("checkout") or {}).get("ref")) or {}
    imported.branch = push.get("branch") or checkout.get("branch") or imported.branch
    author = (git.get("commit") or {}).get("author") or {}
    if author.get("email"):
        imported.author = (str(author.get("name") or "reconciler"), str(author["email"]))
    template = (git.get("commit") or {}).get("messageTemplate")
    if template:
        imported.notes.append(
            "commit.messageTemplate (a Go template); see commitTemplate in docs/config-reference.md"
        )


def import_flux(root: Path) -> Imported:
    """Read every Flux image object under ``root`` (the GitOps repository)."""
    repositories: dict[tuple[str, str], dict[str, Any]] = {}
    policies: list[dict[str, Any]] = []
    automations: list[dict[str, Any]] = []
    imported = Imported("Flux", [])
    for _, doc in documents(root, imported.notes):
        if not str(doc.get("apiVersion", "")).startswith(FLUX_IMAGE_API):
            continue
        kind = doc.get("kind")
        if kind == "ImageRepository":
            repositories[_key(doc)] = doc
        elif kind == "ImagePolicy":
            policies.append(doc)
        elif kind == "ImageUpdateAutomation":
            automations.append(doc)
    for automation in automations or [{"metadata": {"name": "flux-images"}, "spec": {}}]:
        _automation_settings(imported, automation)
        namespace, name = _key(automation)
        mine = [p for p in policies if not automations or _key(p)[0] == namespace]
        project = _project(root, name, automation, mine, repositories)
        if project is not None:
            imported.projects.append(project)
    return imported


def _project(
    root: Path,
    name: str,
    automation: dict[str, Any],
    policies: list[dict[str, Any]],
    repositories: dict[tuple[str, str], dict[str, Any]],
) -> ImportedProject | None:
    packages, notes = [], []
    for policy in policies:
        package = _package(policy, repositories)
        if package is None:
            notes.append(f"ImagePolicy {_key(policy)[1]!r}: its ImageRepository is not here")
        else:
            packages.append(package)
    if not packages:
        return None
    update = (automation.get("spec") or {}).get("update") or {}
    scope = (root / str(update.get("path", "./"))).resolve()
    needles = [f'"{_key(p)[0]}:{_key(p)[1]}' for p in policies]
    needles += [p.manifest_name for p in packages]
    overlays = overlays_mentioning(root.resolve(), scope, needles)
    if not overlays:
        notes.append(f"no Kustomize directory under {update.get('path', './')!r} uses the images")
    environments = sorted(
        ((safe_name(path.name), path.as_posix()) for path in overlays),
        key=lambda env: environment_rank(env[0]),
    )
    return ImportedProject(safe_name(name), packages, environments, notes)
