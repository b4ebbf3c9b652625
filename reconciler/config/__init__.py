"""Load and validate the config repository.

Every YAML document is checked against the JSON Schema of its ``kind`` and then
cross-checked (unknown feed, lifecycle, package, channel, missing overlay,
duplicate names). Every problem is collected, with file, line and key path, so
one ``reconciler validate`` run in a pull request shows all of them at once.

Modules, in the order a load runs them:

- ``read``: files and YAML documents, schema checks, the problem collector;
- ``build``: model objects from the documents;
- ``checks``: cross-checks the schema cannot express;
- ``loading``: ``load_config``, running the three above;
- ``cache``: ``load_config_cached``, the work dir's copy of the last valid result.
"""

from __future__ import annotations

from reconciler.config.build import parse_duration
from reconciler.config.cache import grants_stamp, load_config_cached
from reconciler.config.loading import load_config, manifest_problems
from reconciler.config.read import (
    CONFIG_DIRS,
    SETTINGS_FILE,
    WRITTEN_DIRS,
    brief,
    path_problem,
)

__all__ = [
    "CONFIG_DIRS",
    "SETTINGS_FILE",
    "WRITTEN_DIRS",
    "brief",
    "grants_stamp",
    "load_config",
    "load_config_cached",
    "manifest_problems",
    "parse_duration",
    "path_problem",
]
