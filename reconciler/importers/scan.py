"""Reading a GitOps repository for the importers: YAML documents and overlays (I/O edge)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler import yamlio

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_SKIPPED_DIRS = {".git", "node_modules", "releases", "state"}
_ENV_ORDER = ("dev", "develop", "development", "int", "test", "qa", "uat", "stage", "staging")
_LAST = ("prod", "production", "live")


def yaml_files(root: Path) -> Iterator[Path]:
    """Every YAML file under ``root`` (sorted; no symlinks followed, no .git)."""
    for path in sorted(root.rglob("*")):
        if any(part in _SKIPPED_DIRS for part in path.relative_to(root).parts):
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file() and not path.is_symlink():
            yield path


def _bounded_text(path: Path) -> str | None:
    """``path``'s text, or None when it is larger than ``yamlio.MAX_FILE_BYTES``."""
    with path.open("rb") as file:
        data = file.read(yamlio.MAX_FILE_BYTES + 1)
    if len(data) > yamlio.MAX_FILE_BYTES:
        return None
    return data.decode("utf-8", errors="replace")


def documents(
    root: Path, refused: list[str] | None = None
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, document) for every mapping document under ``root``. Files that are not
    YAML are skipped quietly (a GitOps repository holds Helm templates and the like);
    files past the size, alias, expansion or depth bounds are skipped too, and named
    in ``refused`` (as a note for the import's ``# NOT TRANSLATED`` comments): what
    they held is missing from the import, and the person running it must know."""
    for path in yaml_files(root):
        # The scanned repository is as untrusted as a config repository: the same
        # size, alias, expansion and depth bounds as the config loader.
        text = _bounded_text(path)
        try:
            limit = None if text is None else yamlio.limit_problem(text)
            docs = [] if text is None or limit is not None else yamlio.load_all(text)
        except Exception:  # noqa: S112 - Helm templates and the like are not YAML
            continue
        if text is None or limit is not None:
            if refused is not None:
                size = f"larger than {yamlio.MAX_FILE_BYTES} bytes"
                why = f"line {limit[0]}: {limit[1]}" if limit else size
                refused.append(f"{str(path.relative_to(root))!r} was not read: {why}")
            continue
        for doc in docs:
            if isinstance(doc, dict):
                yield path, doc


def is_overlay(directory: Path) -> bool:
    return any((directory / name).is_file() for name in KUSTOMIZATION_FILES)


def overlays_mentioning(root: Path, scope: Path, needles: list[str]) -> list[Path]:
    """Kustomize directories under ``scope`` whose files mention any of ``needles``: for
    each such file, the nearest directory at or above it (inside ``scope``) holding a
    kustomization. Relative to ``root``, sorted."""
    found: set[Path] = set()
    for path in yaml_files(scope):
        text = _bounded_text(path)
        if text is None or not any(needle in text for needle in needles):
            continue
        directory = path.parent
        while not is_overlay(directory) and directory != scope and scope in directory.parents:
            directory = directory.parent
        if is_overlay(directory):
            found.add(directory.relative_to(root))
    return sorted(found)


def is_environment_name(name: str) -> bool:
    """Whether a directory name reads as an environment (``dev``, ``staging``, ``prod``)."""
    return environment_rank(name)[0] != len(_ENV_ORDER)


def environment_rank(name: str) -> tuple[int, str]:
    """Promotion order by name: dev-like first, then test/staging, prod last (documented
    in docs/migration-*.md); unknown names in between, alphabetically."""
    lowered = name.lower()
    for index, word in enumerate(_ENV_ORDER):
        if word in lowered:
            return (index, lowered)
    if any(word in lowered for word in _LAST):
        return (len(_ENV_ORDER) + 1, lowered)
    return (len(_ENV_ORDER), lowered)
