"""The lines every reconciler commit message is made of, automatic or manual: the
subject prefix, the "deploy" subject part, and the body lines for an environment that
moves (one per package, old -> new). ``reconcile.report`` builds a pass's message from
them and ``operations`` a manual promote's or rollback's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler import records
from reconciler.model import Release

__all__ = [
    "SUBJECT_PREFIX",
    "deploy_subject",
    "deployment_lines",
    "package_changes",
    "package_lines",
]


def package_changes(
    root: Path,
    project: str,
    before: str | None,
    release: Release,
    held: Mapping[str, str] | None = None,
) -> list[tuple[str, str | None, str]]:
    """(package, old version, new version) for every package an environment moving
    from release ``before`` to ``release`` changes (a re-pushed tag: "tag (new digest)").
    ``held``: what the files said before the render, where it differs from ``before``
    (a hand edit) it is the old value the commit really changes."""
    old = records.read_release(root, project, before) if before else None
    was = {p.name: p for p in old.packages} if old is not None else {}
    held = held or {}
    changes: list[tuple[str, str | None, str]] = []
    for p in release.packages:
        prior = was.get(p.name)
        edited = held.get(p.name)
        if prior is not None and edited is not None and edited != prior.version:
            if edited != p.version:
                changes.append((p.name, edited, p.version))
            continue
        if prior is None or prior.version != p.version:
            changes.append((p.name, prior.version if prior else None, p.version))
        elif prior.digest != p.digest:
            changes.append((p.name, prior.version, f"{p.version} (new digest)"))
    return changes


SUBJECT_PREFIX = "reconciler: "
"""Every reconciler commit's subject starts so, automatic or manual."""


def deploy_subject(project: str, version: str, environments: list[str]) -> str:
    """A subject part for a release deployed to environments (``reconciler: `` not included)."""
    return f"deploy {project} {version} to {', '.join(environments)}"


def package_lines(changes: Sequence[tuple[str, str | None, str]]) -> list[str]:
    """One indented body line per package change: ``  api: 1.0.0 -> 1.1.0``."""
    return [f"  {package}: {old or '(new)'} -> {new}" for package, old, new in changes]


def deployment_lines(
    project: str,
    environment: str,
    before: str | None,
    release: str,
    how: str,
    changes: Sequence[tuple[str, str | None, str]],
) -> list[str]:
    """Body lines for one environment moving from ``before`` to ``release``, and its packages."""
    moved = f"{before or '(none)'} -> {release}"
    return [f"{project}/{environment}: {moved} ({how})", *package_lines(changes)]
