"""reconciler: a GitOps release reconciler.

Polls container registries and Helm repositories named by the external feed
triggers in a config Git repository, creates releases from channel rules,
renders them into Kustomize overlays and promotes them through lifecycles;
every change is a Git commit.
"""

import contextlib
import hashlib
from pathlib import Path

__version__ = "0.1.0"
API_VERSION = "reconciler.dev/v1"


def source_stamp(*modules: str) -> str:
    """A hash of this version and the source of ``modules`` (names of this package's
    modules, ``"selection"``): keys caches of results those modules computed, so a
    changed module (even without a version bump, as in development) never reuses a
    stale result. Modules are read as files, not imported; an install without
    sources (only ``.pyc``) hashes what it has, and at worst the version alone."""
    import importlib.util

    here = Path(__file__).parent
    digest = hashlib.sha256(__version__.encode())
    for module in ("__init__", *modules):
        digest.update(module.encode() + b"\0")
        try:
            digest.update((here / f"{module.replace('.', '/')}.py").read_bytes())
            continue
        except OSError:
            pass
        name = __name__ if module == "__init__" else f"{__name__}.{module}"
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            with contextlib.suppress(OSError):
                digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()
