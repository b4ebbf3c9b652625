"""reconciler: a GitOps release reconciler.

Polls container registries and Helm repositories named by the external feed
triggers in a config Git repository, creates releases from channel rules,
renders them into Kustomize overlays and promotes them through lifecycles;
every change is a Git commit.
"""

import hashlib
from pathlib import Path

__version__ = "0.1.0"
API_VERSION = "reconciler.dev/v1"


def source_stamp(*modules: str) -> str:
    """A hash of this version and the source of ``modules`` (names of this package's
    modules, ``"selection"``): keys caches of results those modules computed, so a
    changed module (even without a version bump, as in development) never reuses a
    stale result. Modules are read as files, not imported."""
    here = Path(__file__).parent
    digest = hashlib.sha256(__version__.encode())
    for module in modules:
        digest.update((here / f"{module.replace('.', '/')}.py").read_bytes())
    return digest.hexdigest()
