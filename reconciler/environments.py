"""Reading and writing an environment's overlay files for a release.

The edge between releases (data) and the files Kustomize/Flux/Argo read: which files
hold versions (``targets``), what they say now (``observe``), and writing a release
into them (``render``). Edits are byte-exact splices done by rendering/.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler import records, rendering, safepaths
from reconciler.errors import RenderError
from reconciler.model import Project, Release, RenderTarget

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def artifacts_for(project: Project, release: Release) -> list[rendering.Artifact]:
    """The release's packages as things to write, with their names in the manifests."""
    artifacts = []
    names = {p.name: p for p in project.packages}
    for rp in release.packages:
        pkg = names.get(rp.name)
        if pkg is None:  # package removed from the project since the release was made
            continue
        artifacts.append(
            rendering.Artifact(
                package=rp.name,
                kind=rp.kind,
                name=pkg.manifest_name or pkg.repository,
                version=rp.version,
                digest=rp.digest,
                new_name=pkg.new_name,
            )
        )
    return artifacts


def targets_for(
    root: Path, project: Project, environment: str, artifacts: list[rendering.Artifact]
) -> list[RenderTarget]:
    """The environment's configured targets, else its kustomization (images and charts)."""
    env = project.environments[environment]
    if env.targets:
        return list(env.targets)
    name = next(
        (n for n in KUSTOMIZATION_NAMES if safepaths.is_file(root, f"{env.overlay}/{n}")),
        KUSTOMIZATION_NAMES[0],
    )
    kinds = {a.kind for a in artifacts}
    targets = []
    if "image" in kinds:
        targets.append(RenderTarget("kustomize-images", f"{env.overlay}/{name}"))
    if "chart" in kinds:
        targets.append(RenderTarget("kustomize-helm", f"{env.overlay}/{name}"))
    return targets


def read_target(root: Path, file: str) -> str:
    """A target file's text; unreadable or not UTF-8 is a RenderError naming the file,
    a path through a symlink or into ``.git`` an UnsafePathError (see safepaths)."""
    try:
        return safepaths.read_text(root, file)
    except UnicodeDecodeError as exc:
        raise RenderError(file, f"not UTF-8 (at byte offset {exc.start})") from None
    except OSError as exc:
        raise RenderError(file, exc.strerror or type(exc).__name__) from None


def _rendered(
    root: Path, project: Project, environment: str, release: Release
) -> Iterator[tuple[str, str, str]]:
    """(file, text now, text with ``release``) for each of the environment's targets."""
    artifacts = artifacts_for(project, release)
    for target in targets_for(root, project, environment, artifacts):
        text = read_target(root, target.file)
        new = rendering.render(
            target.kind,
            text,
            artifacts,
            project=project.name,
            digest=project.render_digest,
            file=target.file,
            images=target.images,
        )
        yield target.file, text, new


def render(root: Path, project: Project, environment: str, release: Release) -> list[str]:
    """Write ``release`` into the environment's files; returns the paths that changed."""
    changed = []
    for file, text, new in _rendered(root, project, environment, release):
        if new != text:
            records.write_file(root, file, new.encode("utf-8"))
            changed.append(file)
    return changed


def render_problem(root: Path, project: Project, environment: str, release: Release) -> str | None:
    """Why ``release`` cannot be rendered into the environment's files (None: it can).

    Renders in memory only, for commands that explain a pass without writing it.
    """
    try:
        for _ in _rendered(root, project, environment, release):
            pass
    except RenderError as error:
        return str(error)
    return None


@dataclass(frozen=True)
class Observation:
    """How an environment's files compare with a release."""

    matches: bool
    differences: tuple[str, ...]  # "api: file says 1.2.0, release 1.0.1 has 1.3.0"
    files: tuple[str, ...]


def _held(
    root: Path, project: Project, environment: str, artifacts: list[rendering.Artifact]
) -> tuple[dict[str, rendering.Current], list[str]]:
    """What the environment's files say about ``artifacts`` now, and the files read."""
    found: dict[str, rendering.Current] = {}
    files = []
    for target in targets_for(root, project, environment, artifacts):
        if not safepaths.is_file(root, target.file):
            continue
        files.append(target.file)
        text = read_target(root, target.file)
        found.update(
            rendering.current_versions(
                target.kind,
                text,
                artifacts,
                project=project.name,
                file=target.file,
                images=target.images,
            )
        )
    return found, files


def held_versions(
    root: Path, project: Project, environment: str, release: Release
) -> dict[str, str]:
    """Package -> the version the environment's files name now (before a render)."""
    found, _ = _held(root, project, environment, artifacts_for(project, release))
    return {name: current.version for name, current in found.items() if current.version}


def observe(root: Path, project: Project, environment: str, release: Release) -> Observation:
    """Do the environment's files say exactly what ``release`` holds?"""
    artifacts = artifacts_for(project, release)
    found, files = _held(root, project, environment, artifacts)
    differences = []
    for artifact in artifacts:
        current = found.get(artifact.package)
        if current is None:
            differences.append(f"{artifact.package}: not in the files")
            continue
        # A file without a digest names the same release by its tag: it was written
        # before the digest was rendered (older versions, renderDigest turned on
        # later) and gets the digest on the next render; only a different digest
        # is somebody else's choice.
        digest_differs = (
            project.render_digest
            and artifact.kind == "image"
            and current.digest is not None
            and current.digest != artifact.digest
        )
        if current.version != artifact.version or digest_differs:
            said = (current.version or "(none)") + (f"@{current.digest}" if digest_differs else "")
            want = artifact.version + (f"@{artifact.digest}" if digest_differs else "")
            differences.append(
                f"{artifact.package}: files say {said}, release {release.version} has {want}"
            )
    return Observation(not differences, tuple(differences), tuple(files))


def fingerprint(root: Path, project: Project, environment: str, release: Release) -> str:
    """A hash of the environment's target files: unchanged bytes need no re-parsing."""
    digest = hashlib.sha256(b"digest\0" if project.render_digest else b"tag\0")
    for target in targets_for(root, project, environment, artifacts_for(project, release)):
        digest.update(target.file.encode() + b"\0")
        if safepaths.is_file(root, target.file):
            digest.update(safepaths.read_bytes(root, target.file))
        digest.update(b"\0")
    return digest.hexdigest()
