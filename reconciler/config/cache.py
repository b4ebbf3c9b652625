"""The validated-config cache of the work dir: an idle pass skips parsing and
schema validation when nothing validation read has changed."""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

from reconciler import safepaths, source_stamp
from reconciler.config import loading
from reconciler.config.discover import kustomization_dirs
from reconciler.config.read import config_files
from reconciler.errors import UnsafePathError
from reconciler.grants import OCI_LAYOUT_DIRS_VAR, CredentialPolicy, policy_from_env
from reconciler.model import Config

__all__ = ["CONFIG_MODULES", "grants_stamp", "load_config_cached"]

CONFIG_MODULES = (
    "config.__init__",
    "config.read",
    "config.build",
    "config.checks",
    "config.loading",
    "config.cache",
    "config.discover",
)
"""This package's modules, for the cache key."""


def _grants() -> tuple[CredentialPolicy, str]:
    """The operator grants validation depends on: a change revalidates."""
    return policy_from_env(os.environ), os.environ.get(OCI_LAYOUT_DIRS_VAR, "")


def grants_stamp() -> tuple[CredentialPolicy, str]:
    """What besides the files a valid config depends on (the operator's grants):
    equal stamps and equal files give an equal config."""
    return _grants()


def _checked_paths(config: Config) -> list[str]:
    """Files outside the config folders whose existence validation depends on."""
    paths = []
    for project in config.projects.values():
        for env in project.environments.values():
            paths += [f"{env.overlay}/{n}" for n in ("kustomization.yaml", "kustomization.yml")]
            paths += [f"{env.overlay}/Kustomization"] + [t.file for t in env.targets]
    return paths


@functools.cache
def _code_stamp() -> str:
    """Every module whose code decides what a loaded Config holds or which problems a
    config has: a change to any of them must not reuse a cached Config."""
    modules = (
        *CONFIG_MODULES,
        "grants",
        "model",
        "schema",
        "errors",
        "freeze",
        "selection",
        "versions",
        "yamlio",
    )
    return source_stamp(*modules)


def load_config_cached(root: Path, cache_file: Path) -> Config:
    """``load_config``, reusing the last valid result while nothing it read has changed.

    The key is every config file's path and content hash, the existence of each
    overlay and target file that validation looked at, and the content hash of every
    manifest packages were discovered from; a Git checkout rewrites what
    changed, so an idle pass skips parsing and schema validation of every file.
    Only valid configs are cached; a damaged cache file is ignored.
    """

    def stamp(path: str) -> list[Any]:
        # Content, not mtime: a checkout can rewrite a file within one mtime tick.
        digest = hashlib.sha256(safepaths.read_bytes(root, path)).hexdigest()
        return [path, digest]

    try:
        files = [stamp(p) for p in config_files(root)]
    except (OSError, UnsafePathError):
        return loading.load_config(root)
    try:
        cached = pickle.loads(cache_file.read_bytes())  # noqa: S301  # our own work dir
        if (
            cached["version"] == _code_stamp()
            and cached.get("grants") == _grants()
            and cached["files"] == files
            and all(safepaths.is_file(root, p) == exists for p, exists in cached["paths"])
            and cached["discovered"] == _discovery_stamp(root, cached["config"])
        ):
            config: Config = cached["config"]
            return config
    except (
        OSError,
        pickle.PickleError,
        EOFError,
        KeyError,
        TypeError,
        AttributeError,
        ValueError,
        ImportError,
        IndexError,
        UnsafePathError,
    ):
        pass
    config = loading.load_config(root)
    paths = [(p, safepaths.is_file(root, p)) for p in _checked_paths(config)]
    try:
        discovered = _discovery_stamp(root, config)
    except (OSError, UnsafePathError):
        return config  # a manifest changed under us: the next load caches
    entry = {
        "version": _code_stamp(),
        "grants": _grants(),
        "files": files,
        "paths": paths,
        "discovered": discovered,
        "config": config,
    }
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, cache_file)
    except (OSError, pickle.PickleError, TypeError, AttributeError):
        pass  # a cache that cannot be written only costs time
    return config


def _discovery_stamp(root: Path, config: Config) -> list[list[str]]:
    """[path, sha256] of every manifest read to discover packages (OSError when one
    is gone: the cached config is then not reused), and the kustomization folders of
    each deploy tree."""
    paths = sorted({p for project in config.projects.values() for p in project.discovered_from})
    stamp = [[p, hashlib.sha256(safepaths.read_bytes(root, p)).hexdigest()] for p in paths]
    trees = sorted({project.deploy for project in config.projects.values() if project.deploy})
    # a new kustomization folder in a deploy tree is a new place to discover from
    return stamp + [[f"{tree}/", " ".join(kustomization_dirs(root, tree))] for tree in trees]
