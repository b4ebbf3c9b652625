"""Importers: config repositories written from what peers already hold (pure core).

Each importer (``flux``, ``argocd``) reads its peer's objects and returns an
``Imported`` description; ``render_files`` turns it into the files of a config
repository (commented YAML, every scalar quoted by the JSON encoder, which YAML
reads as a double-quoted scalar), and ``write_files`` writes them or prints them
(``--dry-run``). Anything an importer cannot translate becomes a ``# NOT
TRANSLATED:`` comment next to where it would have gone: never a silent drop.

What the files look like (one project per imported application or automation):

- ``reconciler.yaml``: Settings (branch and author when the peer names them);
- ``feeds/<host>.yaml``: one OCI feed per registry host;
- ``lifecycles/imported.yaml``: one automatic phase per environment, in order;
- ``projects/<name>/project.yaml`` and ``triggers.yaml``: packages, one default
  channel ``imported`` holding each package's translated rule, environments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import safepaths
from reconciler.userregex import UnsupportedRegex, compile_user_regex

__all__ = [
    "Imported",
    "ImportedPackage",
    "ImportedProject",
    "checked_regex",
    "feed_name",
    "feed_yaml",
    "glob_to_regex",
    "quote",
    "render_files",
    "safe_name",
    "split_image",
    "write_files",
]

DOCKER_HUB = "docker.io"
_NAME_CHARS = re.compile(r"[^a-z0-9._-]+")


@dataclass
class ImportedPackage:
    name: str
    host: str  # registry host, e.g. "ghcr.io"
    repository: str  # repository in the registry, e.g. "stefanprodan/podinfo"
    manifest_name: str  # the image as the manifests write it
    rule: dict[str, Any]  # rule fields as in the config (strategy, range, allow, ...)
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportedProject:
    name: str
    packages: list[ImportedPackage]
    environments: list[tuple[str, str]]  # (name, overlay directory), in promotion order
    notes: list[str] = field(default_factory=list)


@dataclass
class Imported:
    source: str  # "Flux", "Argo CD Image Updater"
    projects: list[ImportedProject]
    branch: str | None = None
    author: tuple[str, str] | None = None  # (name, email)
    notes: list[str] = field(default_factory=list)
    channel: str = "imported"
    manual: set[str] = field(default_factory=set)  # environments promoted by hand


def safe_name(text: str) -> str:
    """A config name (``[a-z0-9._-]``, at most 63 characters) made from any text."""
    name = _NAME_CHARS.sub("-", text.lower()).strip("-._")[:63].strip("-._")
    return name or "imported"


def split_image(image: str) -> tuple[str, str]:
    """``ghcr.io/org/app`` -> ("ghcr.io", "org/app"); ``nginx`` -> Docker Hub's
    ("docker.io", "library/nginx")."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, image if rest else f"library/{image}"


def feed_name(host: str) -> str:
    return safe_name(host.replace(":", "-"))


def glob_to_regex(glob: str) -> str:
    """A tag glob (``*``, ``?``, ``[...]``) as an anchored RE2 pattern."""
    out = ["^"]
    for char in glob:
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "".join(out) + "$"


def checked_regex(pattern: str, what: str, notes: list[str]) -> str | None:
    """``pattern`` when the reconciler can run it, else None and a note naming ``what``."""
    try:
        compile_user_regex(pattern)
    except UnsupportedRegex as error:
        notes.append(f"{what}: {error}")
        return None
    return pattern


def quote(value: Any) -> str:
    """A YAML scalar: JSON's quoting is YAML's double-quoted style."""
    return json.dumps(value)


_q = quote


def feed_yaml(host: str) -> str:
    """The feed file of one registry host (credentials left to the operator)."""
    return (
        "# Credentials: set `credentials:` (a docker config.json, an environment\n"
        "# variable or a mounted file); secrets never go into this repository.\n"
        "apiVersion: reconciler.dev/v1\nkind: Feed\n"
        f"name: {quote(feed_name(host))}\ntype: oci\n"
        f"url: {quote(_feed_url(host))}\n"
    )


def _comments(notes: list[str], indent: str = "") -> str:
    return "".join(f"{indent}# NOT TRANSLATED: {note}\n" for note in notes)


def _feed_url(host: str) -> str:
    return "https://registry-1.docker.io" if host == DOCKER_HUB else f"https://{host}"


def _rule_yaml(package: ImportedPackage) -> str:
    lines = [f"      - packages: [{_q(package.name)}]\n"]
    for key, value in package.rule.items():
        if isinstance(value, list):
            text = "[" + ", ".join(_q(v) for v in value) + "]"
        else:
            text = str(value) if isinstance(value, int) else _q(value)
        lines.append(f"        {key}: {text}\n")
    return "".join(lines)


def _project_yaml(imported: Imported, project: ImportedProject) -> str:
    out = [f"# Imported from {imported.source}.\n", _comments(project.notes)]
    out.append(
        "apiVersion: reconciler.dev/v1\nkind: Project\n"
        f"name: {_q(project.name)}\nlifecycle: imported\npackages:\n"
    )
    for package in project.packages:
        out.append(_comments(package.notes, "  "))
        out.append(
            f"  - name: {_q(package.name)}\n    feed: {_q(feed_name(package.host))}\n"
            f"    image: {_q(package.repository)}\n"
            f"    manifestName: {_q(package.manifest_name)}\n"
        )
    out.append(f"channels:\n  - name: {imported.channel}\n    default: true\n    rules:\n")
    out.extend(_rule_yaml(package) for package in project.packages)
    out.append("environments:\n")
    for name, overlay in project.environments:
        out.append(f"  {_q(name)}:\n    overlay: {_q(overlay)}\n")
    return "".join(out)


def _lifecycle_yaml(environments: list[str], manual: set[str]) -> str:
    phases = "".join(
        f"  - name: {_q(env)}\n    environments: [{_q(env)}]\n"
        f"    automatic: {'false' if env in manual else 'true'}\n"
        for env in environments
    )
    return (
        "# One phase per environment, in promotion order. `automatic: true` deploys each\n"
        "# release as soon as the earlier phases have it; `false` waits for a person\n"
        "# (`reconciler promote` or a merged pull request).\n"
        "apiVersion: reconciler.dev/v1\nkind: Lifecycle\nname: imported\nphases:\n" + phases
    )


def render_files(imported: Imported) -> dict[str, str]:
    """The config repository's files for ``imported`` (path -> text)."""
    settings = [
        f"# Written by `reconciler import` from {imported.source}.\n",
        _comments(imported.notes),
        "apiVersion: reconciler.dev/v1\nkind: Settings\n",
    ]
    if imported.branch:
        settings.append(f"branch: {_q(imported.branch)}\n")
    if imported.author:
        settings.append(
            f"author:\n  name: {_q(imported.author[0])}\n  email: {_q(imported.author[1])}\n"
        )
    files = {"reconciler.yaml": "".join(settings)}
    environments: list[str] = []
    for project in imported.projects:
        environments += [name for name, _ in project.environments if name not in environments]
        files[f"projects/{project.name}/project.yaml"] = _project_yaml(imported, project)
        sources = ", ".join(_q(p.name) for p in project.packages)
        files[f"projects/{project.name}/triggers.yaml"] = (
            "apiVersion: reconciler.dev/v1\nkind: Trigger\n"
            f"name: {_q(project.name + '-images')}\nproject: {_q(project.name)}\n"
            f"channel: {imported.channel}\nsources: [{sources}]\n"
        )
        for package in project.packages:
            files[f"feeds/{feed_name(package.host)}.yaml"] = feed_yaml(package.host)
    files["lifecycles/imported.yaml"] = _lifecycle_yaml(
        environments or ["default"], imported.manual
    )
    return files


def write_files(root: Path, files: dict[str, str], *, dry_run: bool) -> list[str]:
    """Write ``files`` under ``root`` (never over an existing file) or, with ``dry_run``,
    return them as text blocks to print. Returns what to print."""
    if dry_run:
        return [f"--- {path}\n{text}" for path, text in sorted(files.items())]
    existing = sorted(path for path in files if (root / path).exists())
    if existing:
        raise FileExistsError(f"refusing to overwrite: {', '.join(existing)}")
    for path, text in files.items():  # never through a symlink in the scanned repository
        safepaths.write_bytes(root, path, text.encode("utf-8"))
    return [f"wrote {path}" for path in sorted(files)]
