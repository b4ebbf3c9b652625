"""``load_config``: read, build and cross-check the whole config repository, in
that order, collecting every problem so one ``validate`` run shows all of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reconciler import schema, templates
from reconciler.config import build, checks, discover
from reconciler.config.read import Collector, Doc, check_schema, read_docs
from reconciler.errors import ConfigError, Problem
from reconciler.grants import policy_from_env, reserved_env_problem
from reconciler.model import COMMIT_VARIABLES, Config, Feed, Project, Trigger

__all__ = ["load_config", "manifest_problems"]


def load_config(root: Path) -> Config:
    """Read and validate the config repository at ``root``; raise ConfigError.

    Valid configs (every pass) are read with the fast libyaml loader; when anything is
    wrong, the repository is read again with the round-trip loader so every message
    can name its line.
    """
    try:
        return _load(root, fast=True)
    except ConfigError:
        return _load(root, fast=False)


def _load(root: Path, *, fast: bool) -> Config:
    out = Collector()
    by_kind: dict[str, list[Doc]] = {k: [] for k in schema.KINDS}
    for doc in read_docs(root, out, fast=fast):
        if check_schema(doc, out):
            checks.check_durations(doc, out)
            by_kind[doc.data["kind"]].append(doc)
    settings_docs = by_kind["Settings"]
    if len(settings_docs) > 1:
        out.at(settings_docs[1], ["kind"], "only one Settings document is allowed")
    settings = build.build_settings(settings_docs[0] if settings_docs else None)
    if settings_docs:
        _check_commit_template(settings.commit_template, settings_docs[0], out)
    for index, (_kind, url_env, _events) in enumerate(settings.notifications):
        problem = reserved_env_problem(url_env)
        if problem is not None:
            out.at(settings_docs[0], ["notifications", index, "urlEnv"], f"not allowed: {problem}")
    feeds = _feeds(by_kind["Feed"], root, out)
    lifecycles = {
        d.data["name"]: build.build_lifecycle(d, out)
        for d in checks.unique(by_kind["Lifecycle"], "lifecycle", out)
    }
    for lifecycle_doc in by_kind["Lifecycle"]:
        checks.check_phase_environments(lifecycle_doc, out)
    projects: dict[str, Project] = {}
    hosts = {d.data["name"]: list(d.data.get("hosts") or ()) for d in by_kind["Feed"]}
    for doc in checks.unique(by_kind["Project"], "project", out):
        found = _discover(root, doc, feeds, hosts, out)
        feeds.update(found.feeds)
        project = build.build_project(doc, feeds, tuple(found.packages), tuple(found.files))
        checks.check_discovered(project, doc, out)
        checks.check_project(project, doc, root, feeds, lifecycles, out)
        checks.check_verify(project, doc, out)
        _check_commit_template(project.commit_template, doc, out)
        projects[project.name] = project
    checks.check_symlinks(root, projects, out)
    checks.check_minimums(by_kind["Lifecycle"], lifecycles, projects, out)
    triggers: dict[str, Trigger] = {}
    for doc in checks.unique(by_kind["Trigger"], "trigger", out):
        trigger = checks.check_trigger(build.build_trigger(doc), doc, projects, out)
        triggers[trigger.name] = trigger
    if out.problems:
        raise ConfigError(out.problems)
    return Config(settings, feeds, lifecycles, projects, triggers)


def manifest_problems(root: Path, config: Config) -> list[Problem]:
    """What a valid ``config`` would still fail on when rendering, found by reading its
    manifests (``validate`` only: see ``checks.check_marker_targets``)."""
    out = Collector()
    for doc in read_docs(root, Collector(), fast=False):
        data = doc.data if isinstance(doc.data, dict) else {}
        project = config.projects.get(str(data.get("name")))
        if data.get("kind") == "Project" and project is not None:
            checks.check_marker_targets(project, doc, root, out)
    return out.problems


def _check_commit_template(template: str | None, doc: Doc, out: Collector) -> None:
    """A commitTemplate (Settings' or a Project's) names only the documented variables."""
    if template is not None:
        problem = templates.check(template, COMMIT_VARIABLES)
        if problem:
            out.at(doc, ["commitTemplate"], problem)


def _feeds(docs: list[Doc], root: Path, out: Collector) -> dict[str, Feed]:
    feeds = {d.data["name"]: build.build_feed(d) for d in checks.unique(docs, "feed", out)}
    policy = policy_from_env(os.environ)
    for doc in docs:
        checks.check_feed_url(doc, out)
        checks.check_oci_layout(doc, root, out)
        checks.check_feed_credentials(doc, build.build_feed(doc), policy, out)
    return feeds


def _discover(
    root: Path, doc: Doc, feeds: dict[str, Feed], hosts: dict[str, list[str]], out: Collector
) -> discover.Discovery:
    """Packages from the manifests: of the ``deploy`` tree, or of the overlays when the
    project lists no packages; nothing to discover otherwise."""
    data = doc.data
    if data.get("deploy"):
        starts = discover.kustomization_dirs(root, str(data["deploy"]))
    elif not data.get("packages"):
        starts = sorted({str(e["overlay"]) for e in _overlay_entries(data)})
    else:
        return discover.Discovery([], {}, [], [])
    found = discover.discover(root, starts, feeds, hosts)
    for file, line, message in found.problems:
        out.add(file, line, "", message)
    if not found.packages and not data.get("packages"):
        where = ["deploy"] if data.get("deploy") else ["environments"]
        out.at(doc, where, "no packages listed and none found in the manifests")
    return found


def _overlay_entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    entries: list[Any] = []
    for env in (data.get("environments") or {}).values():
        entries += [env, *(env.get("tenants") or {}).values()]
    return [e for e in entries if isinstance(e, dict) and e.get("overlay")]
