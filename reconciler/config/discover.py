"""Packages discovered from the manifests (a project with ``deploy:`` and no
``packages``, or some of them).

Reads the files ``kustomize build`` would read, without running it: each
kustomization's local ``resources`` (and ``bases``, ``components``), recursively;
the container images of the workloads found there (``containers`` and
``initContainers`` at any depth of a pod template); the ``images:`` entries (a
``newName`` tells where the image really lives); ``helmCharts:``; Flux HelmReleases
with their HelmRepository or OCIRepository; Argo CD Applications' ``chart`` and
``repoURL``. Remote
resources (URLs) are not fetched. Every image becomes a package named after its
container, every chart after the chart; a registry host maps to the explicit feed
serving it (its URL's host, or its ``hosts`` list), else to an implicit feed named
after the host, with credentials from docker config.json for that host only.

Pure apart from reading files through ``safepaths`` (never following symlinks); the
result is deterministic (kustomize's own order) and cached with the whole config.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError

from reconciler import safepaths, yamlio
from reconciler.errors import UnsafePathError
from reconciler.feeds.auth import DEFAULT_DOCKER_CONFIG
from reconciler.grants import feed_host
from reconciler.model import Credentials, Feed, Location, Package

__all__ = ["KUSTOMIZATION_FILES", "Discovery", "discover", "kustomization_dirs"]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
DOCKER_HUB = "docker.io"
_NOT_A_NAME = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class _Found:
    """One image or chart as the manifests name it."""

    kind: str  # "image" or "chart"
    name: str  # container or chart name
    reference: str  # image as written (no tag or digest), or the chart's repository URL
    location: Location


@dataclass
class Discovery:
    """What one project's manifests hold: packages, the implicit feeds they need, the
    files read (for the config cache), and problems (file, line, message)."""

    packages: list[Package]
    feeds: dict[str, Feed]
    files: list[str]
    problems: list[tuple[str, int, str]]


def kustomization_dirs(root: Path, tree: str) -> list[str]:
    """Every folder under ``tree`` holding a kustomization, sorted."""
    found, pending = [], [tree.rstrip("/")]
    while pending:
        folder = pending.pop()
        names = sorted(safepaths.listdir(root, folder))
        if any(n in names for n in KUSTOMIZATION_FILES):
            found.append(folder)
        pending += [f"{folder}/{n}" for n in names if not n.startswith(".")]
    return sorted(f for f in found)


def _kustomization_file(root: Path, folder: str) -> str | None:
    return next(
        (f"{folder}/{n}" for n in KUSTOMIZATION_FILES if safepaths.is_file(root, f"{folder}/{n}")),
        None,
    )


class _Reader:
    """Walks kustomizations from some start folders, collecting what they deploy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.found: list[_Found] = []
        self.new_names: dict[str, str] = {}  # images[].name -> newName
        self.files: list[str] = []
        self.problems: list[tuple[str, int, str]] = []
        self._seen: set[str] = set()
        self.sources: dict[tuple[str, str], str] = {}  # (Flux source kind, name) -> URL
        self.releases: list[tuple[str, tuple[str, str], Location]] = []  # chart, source

    def _documents(self, path: str) -> list[Any]:
        if path in self._seen:
            return []
        self._seen.add(path)
        self.files.append(path)
        try:
            text = safepaths.read_text(self.root, path)
            limit = yamlio.limit_problem(text)
            if limit is not None:
                self.problems.append((path, limit[0], limit[1]))
                return []
            return [d for d in yamlio.load_all(text) if isinstance(d, dict)]
        except (OSError, UnsafePathError, UnicodeDecodeError, ValueError) as exc:
            self.problems.append((path, 0, f"cannot read: {exc}"))
        except YAMLError as exc:
            self.problems.append((path, 0, f"invalid YAML: {' '.join(str(exc).split())}"))
        return []

    def kustomization(self, folder: str) -> None:
        path = _kustomization_file(self.root, folder)
        if path is None or path in self._seen:
            return
        for doc in self._documents(path):
            self._images_entries(doc)
            self._helm_charts(path, doc)
            for key in ("resources", "bases", "components"):
                for entry in doc.get(key) or ():
                    self._resource(folder, path, str(entry))

    def _resource(self, folder: str, kustomization: str, entry: str) -> None:
        if "://" in entry or entry.startswith(("github.com/", "git@")):
            return  # remote: kustomize fetches it, discovery does not
        target = posixpath.normpath(posixpath.join(folder, entry))
        if target == ".." or target.startswith(("../", "/")):
            self.problems.append((kustomization, 0, f"resource {entry!r} leaves the repository"))
        elif _kustomization_file(self.root, target) is not None:
            self.kustomization(target)
        elif safepaths.is_file(self.root, target):
            for doc in self._documents(target):
                self._workload(target, doc)
                self._gitops(target, doc)

    def _images_entries(self, doc: Any) -> None:
        for entry in doc.get("images") or ():
            if isinstance(entry, dict) and entry.get("name") and entry.get("newName"):
                self.new_names.setdefault(str(entry["name"]), str(entry["newName"]))

    def _helm_charts(self, path: str, doc: Any) -> None:
        for chart in doc.get("helmCharts") or ():
            if isinstance(chart, dict) and chart.get("name") and chart.get("repo"):
                line = yamlio.position(chart)
                name, repo = str(chart["name"]), str(chart["repo"]).rstrip("/")
                self.found.append(_Found("chart", name, repo, Location(path, line)))

    def _gitops(self, path: str, doc: Any) -> None:
        """Flux HelmRelease (with its HelmRepository or OCIRepository) and Argo CD
        Application charts."""
        kind, spec = doc.get("kind"), doc.get("spec")
        name = (doc.get("metadata") or {}).get("name")
        if not isinstance(spec, dict):
            return
        if kind in ("HelmRepository", "OCIRepository") and name and spec.get("url"):
            self.sources[(kind, str(name))] = str(spec["url"]).rstrip("/")
        elif kind == "HelmRelease":
            self._helm_release(path, spec)
        elif kind == "Application":
            for source in [spec.get("source"), *(spec.get("sources") or ())]:
                if isinstance(source, dict) and source.get("chart") and source.get("repoURL"):
                    chart, repo = str(source["chart"]), str(source["repoURL"]).rstrip("/")
                    location = Location(path, yamlio.position(source, "chart"))
                    self.found.append(_Found("chart", chart, repo, location))

    def _helm_release(self, path: str, spec: Any) -> None:
        chart_spec = ((spec.get("chart") or {}).get("spec")) or {}
        ref = spec.get("chartRef") or {}
        if chart_spec.get("chart"):
            source = chart_spec.get("sourceRef") or {}
            key = (str(source.get("kind", "HelmRepository")), str(source.get("name", "")))
            location = Location(path, yamlio.position(chart_spec, "chart"))
            self.releases.append((str(chart_spec["chart"]), key, location))
        elif ref.get("kind") == "OCIRepository" and ref.get("name"):
            location = Location(path, yamlio.position(spec, "chartRef"))
            self.releases.append(("", ("OCIRepository", str(ref["name"])), location))

    def resolve_releases(self) -> None:
        """HelmReleases name their source by kind and name; sources may come later."""
        for chart, key, location in self.releases:
            url = self.sources.get(key)
            if url is None:
                self.problems.append(
                    (location.file, location.line, f"{key[0]} {key[1]!r} not found")
                )
            elif chart:
                self.found.append(_Found("chart", chart, url, location))
            else:  # an OCIRepository URL names the chart itself
                repo, _, name = url.rpartition("/")
                self.found.append(_Found("chart", name, repo, location))

    def _workload(self, path: str, node: Any) -> None:
        """Containers at any depth (Deployment, StatefulSet, CronJob, Pod, ...)."""
        if isinstance(node, dict):
            for key in ("initContainers", "containers"):
                for container in node.get(key) or ():
                    self._container(path, container)
            for key, value in node.items():
                if key not in ("initContainers", "containers"):
                    self._workload(path, value)
        elif isinstance(node, list):
            for item in node:
                self._workload(path, item)

    def _container(self, path: str, container: Any) -> None:
        if not isinstance(container, dict) or not container.get("image"):
            return
        line = yamlio.position(container, "image") or yamlio.position(container)
        name = str(container.get("name") or "")
        self.found.append(
            _Found("image", name, image_name(str(container["image"])), Location(path, line))
        )


def image_name(image: str) -> str:
    """``ghcr.io/acme/api:1.0@sha256:..`` -> ``ghcr.io/acme/api``."""
    image = image.split("@", 1)[0]
    head, slash, last = image.rpartition("/")
    return f"{head}{slash}{last.split(':', 1)[0]}"


def split_host(reference: str) -> tuple[str, str]:
    """(registry host, repository path); Docker Hub's short names included."""
    first, slash, rest = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower(), rest
    path = reference if slash else f"library/{reference}"
    return DOCKER_HUB, path


def package_name(text: str) -> str:
    """A valid package name from a container or chart name."""
    name = _NOT_A_NAME.sub("-", text.lower()).strip("._-")[:63].strip("._-")
    return name or "package"


def _feed_for_host(
    host: str, feeds: dict[str, Feed], hosts: dict[str, list[str]], implicit: dict[str, Feed]
) -> tuple[Feed, str]:
    """The feed serving ``host`` and the namespace prefix its URL adds."""
    for feed in feeds.values():
        if feed.type in ("oci", "oci-layout") and host in hosts.get(feed.name, ()):
            prefix = "" if feed.type == "oci-layout" else feed.url.split("://", 1)[-1]
            return feed, prefix.partition("/")[2].strip("/")
        if feed.type == "oci" and feed_host(feed.url) == host:
            return feed, feed.url.split("://", 1)[-1].partition("/")[2].strip("/")
    name = package_name(host.replace(":", "-"))
    if name in feeds:
        name = f"{name}-registry"
    url = "https://registry-1.docker.io" if host == DOCKER_HUB else f"https://{host}"
    feed = implicit.setdefault(
        name,
        Feed(
            name=name,
            type="oci",
            url=url,
            credentials=Credentials(docker_config=DEFAULT_DOCKER_CONFIG),
            location=Location("", 0),
        ),
    )
    return feed, ""


def _chart_feed(repo: str, feeds: dict[str, Feed], implicit: dict[str, Feed]) -> Feed:
    for feed in feeds.values():
        if feed.type == "helm" and feed.url.rstrip("/") == repo:
            return feed
    name = package_name(feed_host(repo).replace(":", "-")) + "-charts"
    return implicit.setdefault(name, Feed(name=name, type="helm", url=repo))


def discover(
    root: Path, starts: list[str], feeds: dict[str, Feed], hosts: dict[str, list[str]]
) -> Discovery:
    """The packages deployed from the kustomizations in ``starts`` (folders)."""
    reader = _Reader(root)
    for folder in starts:
        reader.kustomization(folder)
    reader.resolve_releases()
    implicit: dict[str, Feed] = {}
    packages: dict[str, Package] = {}
    by_reference: dict[str, str] = {}
    for found in reader.found:
        if found.reference in by_reference:
            continue  # the same image in several overlays or containers: one package
        name = package_name(found.name or found.reference.rsplit("/", 1)[-1])
        if name in packages:
            name = package_name(f"{name}-{found.reference.rsplit('/', 1)[-1]}")
        if found.kind == "chart":
            chart = _chart_feed(found.reference, feeds, implicit)
            package = Package(name, chart.name, chart=found.name, found_at=found.location)
        else:
            real = reader.new_names.get(found.reference, found.reference)
            host, path = split_host(real)
            feed, prefix = _feed_for_host(host, feeds, hosts, implicit)
            if prefix and path.startswith(prefix + "/"):
                path = path[len(prefix) + 1 :]
            package = Package(
                name,
                feed.name,
                image=path,
                manifest_name=found.reference,
                found_at=found.location,
            )
        by_reference[found.reference] = name
        packages[name] = package
    return Discovery(list(packages.values()), implicit, reader.files, reader.problems)
