"""``reconciler import octopus EXPORT.json``: an Octopus Deploy project as config.

EXPORT.json holds the project as Octopus's REST API returns it, one key per
resource (each a list, or a ``{"Items": [...]}`` collection as the API pages them):
``Project`` (``GET /api/projects/{id}``), ``Channels``, ``Lifecycles``,
``Environments``, ``DeploymentProcess`` (its ``Steps[].Actions[].Packages[]``),
``Feeds``, ``Triggers`` (``/api/projects/{id}/triggers``) and ``Tenants``.

Translated:

- each action package (``PackageId`` on a Docker feed) -> a package named after the
  action (and package reference), its feed per registry host;
- channels and their rules: ``VersionRange`` (NuGet/Maven intervals; a bare NuGet
  version ``1.0`` means ``[1.0,)``) -> ``range``, ``Tag`` -> ``prerelease``,
  ``ActionPackages`` -> ``packages``; ``IsDefault``; a channel ``LifecycleId``;
- lifecycles: phases with ``AutomaticDeploymentTargets`` (``automatic: true``) or
  ``OptionalDeploymentTargets`` (``automatic: false``),
  ``MinimumEnvironmentsBeforePromotion`` -> ``minimumEnvironments``,
  ``IsOptionalPhase`` -> ``optional``;
- external feed triggers (``Filter.FilterType: FeedFilter``) -> triggers on their
  channel, watching their packages (``IsDisabled`` -> ``enabled: false``);
- ``VersioningStrategy``: a template of ``#{Octopus.Version.*}`` and
  ``#{Octopus.Date.*}`` variables -> ``releaseVersion.template``, a donor package ->
  ``fromPackage``;
- tenants connected to the project -> ``tenants`` of each environment.

Octopus has no overlays: each environment (and tenant) gets
``deploy/<project>/overlays/<environment>[-<tenant>]``; a missing overlay is created
with a commented ``kustomization.yaml`` to point at the project's base.
Not translated (comments): non-Docker feeds, variables and scripts, a phase mixing
automatic and optional targets (the whole phase is automatic), unknown template
variables, retention policies.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from reconciler.importers import feed_name, feed_yaml, quote, safe_name, split_image
from reconciler.importers.scan import is_overlay
from reconciler.ranges import parse_range
from reconciler.versions import parse_version

_DOCKER_FEEDS = ("Docker", "AwsElasticContainerRegistry", "AzureContainerRegistry", "GitHub")
_TEMPLATE_VARIABLES = {
    "Octopus.Version.LastMajor": "{major}",
    "Octopus.Version.LastMinor": "{minor}",
    "Octopus.Version.LastPatch": "{patch}",
    "Octopus.Version.LastBuild": "{build}",
    "Octopus.Version.NextMajor": "{major+1}",
    "Octopus.Version.NextMinor": "{minor+1}",
    "Octopus.Version.NextPatch": "{patch+1}",
    "Octopus.Version.NextBuild": "{build+1}",
    "Octopus.Date.Year": "{yyyy}",
    "Octopus.Date.Month": "{MM}",
    "Octopus.Date.Day": "{dd}",
}
_VARIABLE = re.compile(r"#\{([^}]*)\}")


def _items(export: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = export.get(key) or []
    if isinstance(value, dict):
        value = value.get("Items", [value])
    return [item for item in value if isinstance(item, dict)]


def nuget_range(text: str) -> str:
    """An Octopus ``VersionRange`` in our grammar: a bare NuGet version is a minimum."""
    stripped = text.strip()
    if stripped and stripped[0] not in "[(" and parse_version(stripped) is not None:
        return f"[{stripped},)"
    return stripped


def release_template(template: str, notes: list[str]) -> str | None:
    """``#{Octopus.Version.LastMajor}.#{Octopus.Version.NextPatch}`` -> ``{major}.{patch+1}``."""
    unknown = [m for m in _VARIABLE.findall(template) if m not in _TEMPLATE_VARIABLES]
    if unknown:
        notes.append(f"VersioningStrategy.Template {template!r}: unknown {unknown!r}")
        return None
    return _VARIABLE.sub(lambda m: _TEMPLATE_VARIABLES[m[1]], template)


class _Export:
    """The export, indexed by Id; names are config names (``safe_name``)."""

    def __init__(self, export: dict[str, Any]) -> None:
        projects = _items(export, "Project")
        if not projects:
            raise ValueError("the export has no Project")
        self.project = projects[0]
        self.name = safe_name(str(self.project.get("Name", "project")))
        self.environments = {e["Id"]: safe_name(e["Name"]) for e in _items(export, "Environments")}
        self.feeds = {f["Id"]: f for f in _items(export, "Feeds")}
        self.lifecycles = _items(export, "Lifecycles")
        self.lifecycle_names = {lc["Id"]: safe_name(lc["Name"]) for lc in self.lifecycles}
        self.channels = _items(export, "Channels")
        self.channel_names = {c["Id"]: safe_name(c["Name"]) for c in self.channels}
        self.triggers = _items(export, "Triggers")
        self.tenants = _items(export, "Tenants")
        self.notes: list[str] = []
        self.packages = self._packages(_items(export, "DeploymentProcess"))

    def _packages(self, processes: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, str]]:
        """(action name, package reference) -> {name, host, image, manifest}."""
        found: dict[tuple[str, str], dict[str, str]] = {}
        for process in processes:
            for step in process.get("Steps") or []:
                for action in step.get("Actions") or []:
                    for package in action.get("Packages") or []:
                        self._package(str(action.get("Name")), package, found)
        return found

    def _package(
        self, action: str, package: dict[str, Any], found: dict[tuple[str, str], dict[str, str]]
    ) -> None:
        reference = str(package.get("Name") or "")
        feed = self.feeds.get(str(package.get("FeedId")), {})
        if feed.get("FeedType") not in _DOCKER_FEEDS:
            self.notes.append(
                f"package {package.get('PackageId')!r} of {action!r}: feed type "
                f"{feed.get('FeedType')!r} is not a container registry"
            )
            return
        host = str(feed.get("FeedUri", "")).split("://")[-1].strip("/") or "docker.io"
        host = "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host
        image = str(package.get("PackageId"))
        registry, repository = split_image(f"{host}/{image}" if host != "docker.io" else image)
        manifest = image if registry == "docker.io" else f"{registry}/{repository}"
        name = safe_name(f"{action}-{reference}" if reference else action)
        found[(action, reference)] = {
            "name": name,
            "host": registry,
            "image": repository,
            "manifest": manifest,
        }


def _rule_yaml(export: _Export, rule: dict[str, Any], notes: list[str]) -> str:
    names = [
        export.packages[key]["name"]
        for ref in rule.get("ActionPackages") or []
        if (key := (str(ref.get("DeploymentAction")), str(ref.get("PackageReference") or "")))
        in export.packages
    ]
    lines = [f"      - packages: [{', '.join(quote(n) for n in names)}]\n"]
    if rule.get("VersionRange"):
        written = nuget_range(str(rule["VersionRange"]))
        try:
            parse_range(written)
            lines.append(f"        range: {quote(written)}\n")
        except ValueError as error:
            notes.append(f"VersionRange {rule['VersionRange']!r}: {error}")
    if rule.get("Tag"):
        lines.append(f"        prerelease: {quote(str(rule['Tag']))}\n")
    return "".join(lines) if names else ""


def _channels_yaml(export: _Export, notes: list[str]) -> str:
    out = ["channels:\n"]
    for channel in export.channels:
        out.append(f"  - name: {quote(export.channel_names[channel['Id']])}\n")
        if channel.get("IsDefault"):
            out.append("    default: true\n")
        if channel.get("LifecycleId") in export.lifecycle_names:
            out.append(f"    lifecycle: {quote(export.lifecycle_names[channel['LifecycleId']])}\n")
        rules = "".join(_rule_yaml(export, r, notes) for r in channel.get("Rules") or [])
        out.append("    rules:\n" + rules if rules else "    rules: []\n")
    return "".join(out)


def _release_version_yaml(export: _Export, notes: list[str]) -> str:
    strategy = export.project.get("VersioningStrategy") or {}
    donor = strategy.get("DonorPackage") or {}
    key = (str(donor.get("DeploymentAction")), str(donor.get("PackageReference") or ""))
    if donor and key in export.packages:
        return f"releaseVersion:\n  fromPackage: {quote(export.packages[key]['name'])}\n"
    template = release_template(str(strategy.get("Template") or ""), notes)
    return f"releaseVersion:\n  template: {quote(template)}\n" if template else ""


def _tenants_of(export: _Export, environment_id: str) -> list[str]:
    project_id = export.project.get("Id")
    return [
        safe_name(t["Name"])
        for t in export.tenants
        if environment_id in ((t.get("ProjectEnvironments") or {}).get(project_id) or [])
    ]


def _environments(export: _Export) -> list[tuple[str, list[str]]]:
    """(environment, tenants) in lifecycle order."""
    ordered: list[str] = []
    for lifecycle in export.lifecycles:
        for phase in lifecycle.get("Phases") or []:
            for env_id in (phase.get("AutomaticDeploymentTargets") or []) + (
                phase.get("OptionalDeploymentTargets") or []
            ):
                if env_id in export.environments and env_id not in ordered:
                    ordered.append(env_id)
    return [(export.environments[e], _tenants_of(export, e)) for e in ordered]


def _overlay(export: _Export, environment: str, tenant: str) -> str:
    leaf = f"{environment}-{tenant}" if tenant else environment
    return f"deploy/{export.name}/overlays/{leaf}"


def _environments_yaml(export: _Export) -> str:
    out = ["environments:\n"]
    for environment, tenants in _environments(export):
        out.append(f"  {quote(environment)}:\n")
        if not tenants:
            out.append(f"    overlay: {quote(_overlay(export, environment, ''))}\n")
            continue
        out.append("    tenants:\n")
        for tenant in tenants:
            overlay = quote(_overlay(export, environment, tenant))
            out.append(f"      {quote(tenant)}: {{overlay: {overlay}}}\n")
    return "".join(out)


def _phase_yaml(export: _Export, phase: dict[str, Any], notes: list[str]) -> str:
    automatic = phase.get("AutomaticDeploymentTargets") or []
    optional = phase.get("OptionalDeploymentTargets") or []
    if automatic and optional:
        notes.append(f"phase {phase.get('Name')!r} mixes automatic and optional targets")
    names = [export.environments[e] for e in automatic + optional if e in export.environments]
    out = [
        f"  - name: {quote(safe_name(str(phase.get('Name'))))}\n",
        f"    environments: [{', '.join(quote(n) for n in names)}]\n",
        f"    automatic: {'true' if automatic else 'false'}\n",
    ]
    if phase.get("MinimumEnvironmentsBeforePromotion"):
        out.append(f"    minimumEnvironments: {int(phase['MinimumEnvironmentsBeforePromotion'])}\n")
    if phase.get("IsOptionalPhase"):
        out.append("    optional: true\n")
    return "".join(out)


def _lifecycle_file(export: _Export, lifecycle: dict[str, Any]) -> str:
    notes: list[str] = []
    phases = "".join(_phase_yaml(export, p, notes) for p in lifecycle.get("Phases") or [])
    return (
        "# Imported from Octopus Deploy.\n"
        + "".join(f"# NOT TRANSLATED: {n}\n" for n in notes)
        + "apiVersion: reconciler.dev/v1\nkind: Lifecycle\n"
        f"name: {quote(export.lifecycle_names[lifecycle['Id']])}\nphases:\n{phases}"
    )


def _triggers_file(export: _Export) -> str:
    docs = []
    for trigger in export.triggers:
        feed_filter = trigger.get("Filter") or {}
        if feed_filter.get("FilterType") != "FeedFilter":
            continue
        sources = [
            export.packages[key]["name"]
            for ref in feed_filter.get("Packages") or []
            if (key := (str(ref.get("DeploymentAction")), str(ref.get("PackageReference") or "")))
            in export.packages
        ]
        channel = export.channel_names.get(str((trigger.get("Action") or {}).get("ChannelId")))
        docs.append(
            "apiVersion: reconciler.dev/v1\nkind: Trigger\n"
            f"name: {quote(safe_name(str(trigger.get('Name'))))}\nproject: {quote(export.name)}\n"
            + (f"channel: {quote(channel)}\n" if channel else "")
            + f"enabled: {'false' if trigger.get('IsDisabled') else 'true'}\n"
            f"sources: [{', '.join(quote(s) for s in sources)}]\n"
        )
    return "---\n".join(docs)


def import_octopus(export_file: Path, root: Path) -> dict[str, str]:
    """The config files (path -> text) for the project in ``export_file``; overlays
    missing under ``root`` are created as commented skeletons."""
    export = _Export(json.loads(export_file.read_text(encoding="utf-8")))
    notes = list(export.notes)
    lifecycle = export.lifecycle_names.get(str(export.project.get("LifecycleId")), "default")
    body = (
        "apiVersion: reconciler.dev/v1\nkind: Project\n"
        f"name: {quote(export.name)}\nlifecycle: {quote(lifecycle)}\npackages:\n"
        + "".join(
            f"  - name: {quote(p['name'])}\n    feed: {quote(feed_name(p['host']))}\n"
            f"    image: {quote(p['image'])}\n    manifestName: {quote(p['manifest'])}\n"
            for p in export.packages.values()
        )
        + _channels_yaml(export, notes)
        + _release_version_yaml(export, notes)
        + _environments_yaml(export)
    )
    files = {
        "reconciler.yaml": "# Written by `reconciler import octopus`.\n"
        "apiVersion: reconciler.dev/v1\nkind: Settings\n",
        f"projects/{export.name}/project.yaml": "# Imported from Octopus Deploy.\n"
        + "".join(f"# NOT TRANSLATED: {n}\n" for n in notes)
        + body,
    }
    if triggers := _triggers_file(export):
        files[f"projects/{export.name}/triggers.yaml"] = triggers
    for lc in export.lifecycles:
        files[f"lifecycles/{export.lifecycle_names[lc['Id']]}.yaml"] = _lifecycle_file(export, lc)
    for package in export.packages.values():
        files[f"feeds/{feed_name(package['host'])}.yaml"] = feed_yaml(package["host"])
    for environment, tenants in _environments(export):
        for tenant in tenants or [""]:
            overlay = _overlay(export, environment, tenant)
            if not is_overlay(root / overlay):
                files[f"{overlay}/kustomization.yaml"] = (
                    "# Created by `reconciler import octopus`: point resources at the\n"
                    "# project's base; the reconciler writes the images below.\n"
                    "resources: []\n"
                )
    return files
