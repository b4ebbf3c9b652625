"""Cross-checks of the built model against its documents: what the schema cannot
say (unknown names, duplicate names, missing overlays, durations a pass cannot use,
release versions that would not be version strings, credentials not granted,
symlinks). Each check reports through the ``Collector`` with file, line and key.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import safepaths, versions, yamlio
from reconciler.config.build import parse_duration
from reconciler.config.read import (
    CONFIG_DIRS,
    SETTINGS_FILE,
    WRITTEN_DIRS,
    Collector,
    Doc,
    brief,
)
from reconciler.errors import UnsafePathError
from reconciler.feeds.keyless import KEYLESS_NOT_INSTALLED
from reconciler.grants import (
    CredentialPolicy,
    feed_host,
    oci_layout_problem,
    policy_from_env,
    provider_host_problem,
)
from reconciler.model import (
    TENANT_SEPARATOR,
    Feed,
    KeylessPolicy,
    Lifecycle,
    Location,
    Project,
    ReleaseVersioning,
    Tls,
    Trigger,
    project_lifecycle,
)
from reconciler.selection import unused_rule_fields, validate_rule
from reconciler.userregex import UnsupportedRegex, compile_user_regex
from reconciler.verify.template import TemplateError, unknown_variables

__all__ = [
    "MAX_DURATION",
    "check_discovered",
    "check_durations",
    "check_feed_credentials",
    "check_feed_url",
    "check_minimums",
    "check_oci_layout",
    "check_phase_environments",
    "check_project",
    "check_symlinks",
    "check_trigger",
    "check_verify",
    "unique",
]


MAX_DURATION = 366 * 86400.0
"""Longer durations are refused: past it, date arithmetic overflows (a soak of 10**12 s)
and no setting means to wait a year."""

_DURATIONS: dict[str, tuple[tuple[tuple[str, ...], bool], ...]] = {
    # kind: (key path with "*" for every list item, whether 0 is refused)
    "Settings": ((("interval",), True),),
    "Feed": ((("timeout",), True),),
    "Trigger": ((("settle",), False), (("maxWait",), False)),
    "Lifecycle": ((("phases", "*", "soak"), False),),
}

VERSION_TEXT = "letters, digits, '.', '_', '+', '-'; never '/' or '..'"
"""What a release version may be made of: it names releases/<project>/<version>.yaml."""

SAMPLE_TIME = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
"""``now`` for rendering release version templates in validation."""


def _duration_values(
    data: Any, keys: tuple[str, ...], path: list[Any]
) -> Iterator[tuple[list[Any], Any]]:
    if not keys:
        yield path, data
    elif keys[0] == "*":
        for index, item in enumerate(data if isinstance(data, list) else ()):
            yield from _duration_values(item, keys[1:], [*path, index])
    elif isinstance(data, dict) and keys[0] in data:
        yield from _duration_values(data[keys[0]], keys[1:], [*path, keys[0]])


def check_durations(doc: Doc, out: Collector) -> None:
    """Durations the schema lets through but a pass cannot use: ``interval: 0`` makes
    ``run`` refuse to start, a timeout of 0 fails every request, a year overflows."""
    for keys, positive in _DURATIONS.get(doc.data["kind"], ()):
        for path, value in _duration_values(doc.data, keys, []):
            seconds = parse_duration(value)
            if positive and not seconds > 0:
                out.at(doc, path, f"{brief(value)} must be more than 0")
            elif not 0 <= seconds <= MAX_DURATION:
                out.at(doc, path, f"{brief(value)} is longer than the maximum of 366d")


def _release_version_problems(versioning: ReleaseVersioning) -> list[tuple[str, str]]:
    """(key, message) when the template or ``initial`` cannot give a release version.

    The template is rendered for a first and a second release with sample values, as a
    pass would, so what it renders is checked, not how it looks."""
    if versioning.from_package:
        return []  # the donor's tags are filtered at pass time
    initial = versioning.initial
    if not versions.is_safe_version_text(initial):
        return [("initial", f"{brief(initial)} is not a version string ({VERSION_TEXT})")]
    try:
        first = versions.next_release_version(versioning.template, None, [], SAMPLE_TIME, initial)
    except ValueError as exc:
        return [("template", f"{brief(versioning.template)}: {exc} ({VERSION_TEXT})")]
    try:
        versions.next_release_version(versioning.template, first, [first], SAMPLE_TIME, initial)
    except ValueError as exc:
        key = "initial" if first == initial else "template"
        return [(key, f"{brief(first)} cannot be followed: {exc}")]
    return []


_FEED_SCHEMES = {"oci": ("https", "http", "oci"), "helm": ("https", "http", "oci")}


def check_feed_url(doc: Doc, out: Collector) -> None:
    """What every pass would refuse (or fail on with a bare TLS error): a URL with no
    scheme, an unsupported one, no host, or plain http without ``insecure: true``."""
    schemes = _FEED_SCHEMES.get(doc.data["type"])
    url = str(doc.data["url"]).strip()
    if schemes is None:
        return  # oci-layout: a directory
    scheme, sep, rest = url.partition("://")
    written = " or ".join(f"{s}://" for s in schemes if s != "http")
    if not sep:
        out.at(
            doc,
            ["url"],
            f"{brief(url)} has no scheme; write https://... (or http://... with insecure: true)",
        )
    elif scheme not in schemes:
        out.at(
            doc, ["url"], f"{brief(url)}: scheme {brief(scheme)} is not supported (use {written})"
        )
    elif not rest.split("/", 1)[0]:
        out.at(doc, ["url"], f"{brief(url)} names no host")
    elif scheme == "http" and not doc.data.get("insecure", False):
        out.at(doc, ["url"], f"{brief(url)} uses plain http; set insecure: true to allow it")


def check_oci_layout(doc: Doc, root: Path, out: Collector) -> None:
    """An ``oci-layout`` path stays inside the work tree with no symlink on the way,
    unless it lies under a directory the operator grants (reconciler.grants)."""
    if doc.data["type"] != "oci-layout":
        return
    url = str(doc.data["url"]).strip()
    problem = oci_layout_problem(url, os.environ)
    if problem is not None:
        out.at(doc, ["url"], f"not granted: {problem}")
        return
    path = url.removeprefix("file://")
    if not path.startswith(("/", "~")):
        links = safepaths.symlinks_under(root, path)
        if links:
            out.at(doc, ["url"], f"{brief(links[0])}: {safepaths.SYMLINK_NOT_ALLOWED}")


def _check_feed_tls(
    doc: Doc, tls: Tls, policy: CredentialPolicy, host: str, out: Collector
) -> None:
    for key, file in tls.files():
        problem = policy.file_problem(file, host)
        if problem is not None:
            out.at(doc, ["tls", key], f"not granted: {problem}")
    if tls.client_key and not tls.client_cert:
        out.at(doc, ["tls", "clientKey"], "needs clientCert")


def check_feed_credentials(doc: Doc, feed: Feed, policy: CredentialPolicy, out: Collector) -> None:
    """Credentials and TLS files may only name what the operator granted to feeds
    (reconciler.grants), and credentials travel in clear only to hosts the operator
    allows."""
    host = feed_host(feed.url)
    if feed.tls is not None:
        _check_feed_tls(doc, feed.tls, policy, host, out)
    creds = feed.credentials
    if creds is None:
        return
    if creds.provider is not None:
        problem = provider_host_problem(creds.provider, host, os.environ)
        if problem is not None:
            out.at(doc, ["credentials", "provider"], f"not granted: {problem}")
    if creds.identity_file is not None:
        problem = policy.file_problem(creds.identity_file, host)
        if creds.provider != "gcp":
            out.at(doc, ["credentials", "identityFile"], "needs provider: gcp")
        elif problem is not None:
            out.at(doc, ["credentials", "identityFile"], f"not granted: {problem}")
    named_env = (("usernameEnv", creds.username_env), ("passwordEnv", creds.password_env))
    for key, name in named_env:
        problem = policy.env_problem(name, host) if name is not None else None
        if problem is not None:
            out.at(doc, ["credentials", key], f"not granted: {problem}")
    docker_config = creds.docker_config if creds.docker_config != "default" else None
    if creds.password_file is not None:
        problem = policy.password_file_problem(creds.password_file, host)
        if problem is not None:
            out.at(doc, ["credentials", "passwordFile"], f"not granted: {problem}")
    if docker_config is not None:
        problem = policy.file_problem(docker_config, host)
        if problem is not None:
            out.at(doc, ["credentials", "dockerConfig"], f"not granted: {problem}")
    in_clear = feed.insecure or feed.url.startswith("http://")
    if in_clear and feed.type != "oci-layout" and not policy.http_credentials_allowed(host):
        out.at(
            doc,
            ["credentials"],
            f"credentials would travel to {host} over plain http or unverified TLS;"
            " only the operator can allow that (--allow-http-credentials)",
        )


def unique(docs: list[Doc], kind: str, out: Collector) -> list[Doc]:
    seen: dict[str, Doc] = {}
    for doc in docs:
        name = doc.data["name"]
        if name in seen:
            first = seen[name]
            out.at(
                doc,
                ["name"],
                f"duplicate {kind} name {name!r} (first defined at "
                f"{first.file}:{yamlio.position(first.data, 'name')})",
            )
        else:
            seen[name] = doc
    return list(seen.values())


def _hint(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_project(
    project: Project,
    doc: Doc,
    config_root: Path,
    feeds: dict[str, Feed],
    lifecycles: dict[str, Lifecycle],
    out: Collector,
) -> None:
    """Everything about one project the schema cannot check."""
    if project.lifecycle not in lifecycles:
        out.unknown(doc, ["lifecycle"], "Lifecycle", project.lifecycle, lifecycles)
    _check_packages(project, doc, feeds, out)
    _check_channels(project, doc, lifecycles, out)
    _check_release_versioning(project, doc, out)
    _check_environment_shapes(doc, out)
    _check_overlays(project, doc, config_root, out)
    _check_phases_mapped(project, doc, lifecycles, out)


def _check_packages(project: Project, doc: Doc, feeds: dict[str, Feed], out: Collector) -> None:
    seen: set[str] = set()
    for i, pkg in enumerate(project.packages):
        if pkg.name in seen:
            out.at(doc, ["packages", i, "name"], f"duplicate package name {pkg.name!r}")
        seen.add(pkg.name)
        feed = feeds.get(pkg.feed)
        if feed is None:
            out.unknown(doc, ["packages", i, "feed"], "Feed", pkg.feed, feeds)
        elif pkg.kind == "chart" and feed.type != "helm":
            out.at(
                doc,
                ["packages", i, "chart"],
                f"feed {feed.name!r} is of type {feed.type!r}; charts need a helm feed",
            )
        elif pkg.kind == "image" and feed.type == "helm":
            out.at(
                doc,
                ["packages", i, "image"],
                f"feed {feed.name!r} is a helm feed; use 'chart' for charts",
            )
        if feed is not None and pkg.cosign_keys:
            _check_cosign_keys(doc, i, feed, out)
        if feed is not None and pkg.keyless is not None:
            _check_keyless(doc, i, feed, pkg.keyless, out)
        if feed is not None and pkg.helm_keyring is not None:
            _check_helm_keyring(doc, i, feed, pkg.helm_keyring, out)


def _check_cosign_keys(doc: Doc, index: int, feed: Feed, out: Collector) -> None:
    """``verify.cosign`` needs an OCI registry feed, and its key files are credentials:
    absolute paths under a directory the operator grants to the feed's host."""
    path: list[Any] = ["packages", index, "verify", "cosign"]
    if feed.type != "oci":
        out.at(doc, path, f"cosign signatures need an oci feed; {feed.name!r} is {feed.type!r}")
        return
    cosign = doc.data["packages"][index]["verify"]["cosign"]
    named = [(["keys", j], k) for j, k in enumerate(cosign.get("keys") or ())]
    if "key" in cosign:
        named.append((["key"], cosign["key"]))
    policy = policy_from_env(os.environ)
    for key_path, file in named:
        problem = policy.file_problem(str(file), feed_host(feed.url))
        if problem is not None:
            out.at(doc, [*path, *key_path], f"not granted: {problem}")


def _check_keyless(
    doc: Doc, index: int, feed: Feed, keyless: KeylessPolicy, out: Collector
) -> None:
    """``verify.cosign.keyless`` needs an OCI registry feed, sigstore-python (the
    ``keyless`` extra), an identity pattern RE2 takes, and a trusted root granted like
    a credential file."""
    path: list[Any] = ["packages", index, "verify", "cosign", "keyless"]
    if feed.type != "oci":
        out.at(doc, path, f"cosign signatures need an oci feed; {feed.name!r} is {feed.type!r}")
        return
    if importlib.util.find_spec("sigstore") is None:
        out.at(doc, path, KEYLESS_NOT_INSTALLED)
    if keyless.identity_regexp is not None:
        try:
            compile_user_regex(keyless.identity_regexp)
        except UnsupportedRegex as exc:
            out.at(doc, [*path, "identityRegexp"], str(exc))
    problem = policy_from_env(os.environ).file_problem(keyless.trusted_root, feed_host(feed.url))
    if problem is not None:
        out.at(doc, [*path, "trustedRoot"], f"not granted: {problem}")


def _check_helm_keyring(doc: Doc, index: int, feed: Feed, keyring: str, out: Collector) -> None:
    """``verify.helm`` needs an HTTP(S) chart repository (provenance files are read next
    to the archives), and its keyring is granted like a credential file."""
    path: list[Any] = ["packages", index, "verify", "helm"]
    if feed.type != "helm" or not feed.url.startswith(("http://", "https://")):
        out.at(
            doc,
            path,
            "Helm provenance is checked for HTTP(S) chart repositories (a helm feed with an "
            f"http(s) URL); {feed.name!r} is {feed.type!r} at {feed.url}",
        )
        return
    problem = policy_from_env(os.environ).file_problem(keyring, feed_host(feed.url))
    if problem is not None:
        out.at(doc, [*path, "keyring"], f"not granted: {problem}")


def _check_channels(
    project: Project, doc: Doc, lifecycles: dict[str, Lifecycle], out: Collector
) -> None:
    if len([c for c in project.channels if c.default]) > 1:
        out.at(doc, ["channels"], "more than one channel has default: true")
    seen: set[str] = set()
    for ci, channel in enumerate(project.channels):
        if channel.name in seen:
            out.at(doc, ["channels", ci, "name"], f"duplicate channel name {channel.name!r}")
        seen.add(channel.name)
        if channel.lifecycle and channel.lifecycle not in lifecycles:
            out.unknown(
                doc, ["channels", ci, "lifecycle"], "Lifecycle", channel.lifecycle, lifecycles
            )
        for ri in range(len(channel.rules)):
            _check_rule(project, doc, ["channels", ci, "rules", ri], out)


def _check_rule(project: Project, doc: Doc, path: list[Any], out: Collector) -> None:
    """A rule's package names, and ``validate_rule``'s findings at the key they are about."""
    _, ci, _, ri = path
    rule = project.channels[ci].rules[ri]
    package_names = [p.name for p in project.packages]
    for pi, name in enumerate(rule.packages):
        if name not in package_names:
            out.at(
                doc,
                [*path, "packages", pi],
                f"unknown package {name!r}" + _hint(name, package_names),
            )
    written = doc.data["channels"][ci]["rules"][ri]
    for message in validate_rule(rule):
        rule_key, text = _rule_key(written, message)
        out.at(doc, [*path, *rule_key], text)
    for key, message in unused_rule_fields(rule.strategy, written):
        out.at(doc, [*path, key], message)


def _check_release_versioning(project: Project, doc: Doc, out: Collector) -> None:
    for key, message in _release_version_problems(project.release_versioning):
        out.at(doc, ["releaseVersion", key], message)
    donor = project.release_versioning.from_package
    package_names = [p.name for p in project.packages]
    if donor and donor not in package_names:
        out.at(
            doc,
            ["releaseVersion", "fromPackage"],
            f"unknown package {donor!r}" + _hint(donor, package_names),
        )


def _check_environment_shapes(doc: Doc, out: Collector) -> None:
    for name, data in doc.data["environments"].items():
        has_tenants = bool(data.get("tenants"))
        if has_tenants == ("overlay" in data):
            message = (
                "give either an overlay or tenants, not both"
                if has_tenants
                else "needs an overlay (or tenants, each with its overlay)"
            )
            out.at(doc, ["environments", name], message)
        if has_tenants and data.get("targets"):
            # Shared targets would have every tenant write the same files.
            out.at(doc, ["environments", name, "targets"], "targets go on each tenant")


def _env_path(name: str) -> list[Any]:
    base, _, tenant = name.partition(TENANT_SEPARATOR)
    return ["environments", base, "tenants", tenant] if tenant else ["environments", base]


def _check_overlays(project: Project, doc: Doc, config_root: Path, out: Collector) -> None:
    for env in project.environments.values():
        if not env.overlay:
            continue  # reported by _check_environment_shapes
        if not any(
            safepaths.is_file(config_root, f"{env.overlay}/{n}")
            for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
        ):
            out.at(
                doc,
                [*_env_path(env.name), "overlay"],
                f"overlay {env.overlay!r} has no kustomization.yaml",
            )
        for ti, target in enumerate(env.targets):
            if not safepaths.is_file(config_root, target.file):
                out.at(
                    doc,
                    [*_env_path(env.name), "targets", ti, "file"],
                    f"file {target.file!r} does not exist",
                )


def check_marker_targets(project: Project, doc: Doc, config_root: Path, out: Collector) -> None:
    """A ``markers`` or ``flux-imagepolicy`` target names at least one of the project's
    packages: otherwise every pass would fail to render it. Only ``validate`` runs this
    (it reads manifests, which passes do not validate: there the project's render
    reports the same, and only that project stops)."""
    from reconciler.rendering import marker_packages
    from reconciler.rendering.markers import FLUX, RECONCILER

    for env in project.environments.values():
        for ti, target in enumerate(env.targets):
            if target.kind not in ("markers", "flux-imagepolicy"):
                continue
            dialect = FLUX if target.kind == "flux-imagepolicy" else RECONCILER
            try:
                data = safepaths.read_bytes(config_root, target.file, limit=yamlio.MAX_FILE_BYTES)
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError, UnsafePathError):
                continue  # a missing or unsafe file is reported by the checks above
            if marker_packages(text, project.name, dialect):
                continue
            example = dialect.example(project.name, min(p.name for p in project.packages))
            out.at(
                doc,
                [*_env_path(env.name), "targets", ti, "file"],
                f"{target.file} has no marker for a package of project "
                f"{project.name} (such as {example}), so nothing would be rendered",
            )


def _check_phases_mapped(
    project: Project, doc: Doc, lifecycles: dict[str, Lifecycle], out: Collector
) -> None:
    """Every environment of the lifecycles the project follows maps to an overlay."""
    for lc_name in {project.lifecycle, *(c.lifecycle for c in project.channels if c.lifecycle)}:
        lifecycle = lifecycles.get(lc_name)
        for phase in lifecycle.phases if lifecycle is not None else ():
            for phase_env in phase.environments:
                if (
                    phase_env.name not in project.environments
                    and phase_env.name not in project.tenants
                ):
                    out.at(
                        doc,
                        ["environments"],
                        f"lifecycle {lc_name!r} phase {phase.name!r} uses environment "
                        f"{phase_env.name!r}, which this project does not map to an overlay",
                    )


def check_phase_environments(doc: Doc, out: Collector) -> None:
    """An environment belongs to one phase of a lifecycle."""
    seen: set[str] = set()
    for pi, phase in enumerate(doc.data["phases"]):
        for ei, env in enumerate(phase["environments"]):
            name = env if isinstance(env, str) else env["name"]
            if name in seen:
                out.at(
                    doc,
                    ["phases", pi, "environments", ei],
                    f"environment {name!r} appears in more than one phase",
                )
            seen.add(name)


def check_trigger(
    trigger: Trigger, doc: Doc, projects: dict[str, Project], out: Collector
) -> Trigger:
    """``trigger`` with its default channel filled in; its project, channel and sources
    must exist."""
    found = projects.get(trigger.project)
    if found is None:
        out.unknown(doc, ["project"], "Project", trigger.project, projects)
        return trigger
    if not trigger.channel:
        trigger = replace(trigger, channel=found.default_channel.name)
    elif trigger.channel not in [c.name for c in found.channels]:
        out.at(doc, ["channel"], f"unknown channel {trigger.channel!r} in project {found.name!r}")
    names = [p.name for p in found.packages]
    for si, source in enumerate(trigger.sources):
        if source not in names:
            out.at(
                doc,
                ["sources", si],
                f"unknown package {source!r} in project {found.name!r}" + _hint(source, names),
            )
    return trigger


def _rule_key(rule: Any, message: str) -> tuple[list[str], str]:
    """The key of ``rule`` a ``validate_rule`` message is about, so the problem points at
    that key's own line: messages start with the key (``range: ...``), or name the
    strategy whose needs are unmet; the key moves from the message to the key path."""
    key, sep, rest = message.partition(": ")
    if sep and key in rule:
        return [key], rest
    if "strategy" in message and "strategy" in rule:
        return ["strategy"], message
    return [], message


def _verify_blocks(doc: Doc) -> Iterator[tuple[list[Any], Any]]:
    """(key path, block) of every ``verify:`` in a project, environments and tenants."""
    for name, data in doc.data["environments"].items():
        if data.get("verify"):
            yield ["environments", name, "verify"], data["verify"]
        for tenant, tenant_data in (data.get("tenants") or {}).items():
            if tenant_data.get("verify"):
                yield ["environments", name, "tenants", tenant, "verify"], tenant_data["verify"]


_VERIFY_REQUIRED = {"argocd": "name", "flux": "name", "commitStatus": "context", "http": "url"}


def check_verify(project: Project, doc: Doc, out: Collector) -> None:
    """What the schema cannot say about ``verify:``: each kind's required field, the
    ``expect`` template's variables, and durations above zero."""
    packages = [p.name for p in project.packages]
    for path, block in _verify_blocks(doc):
        for key in ("timeout", "interval"):
            if key in block and parse_duration(block[key]) <= 0:
                out.at(doc, [*path, key], f"{key} must be above 0")
        for ci, check in enumerate(block.get("checks") or ()):
            required = _VERIFY_REQUIRED.get(check.get("kind"))
            if required is not None and not check.get(required):
                out.at(doc, [*path, "checks", ci], f"{check['kind']} check needs a {required}")
            expect = check.get("expect")
            if check.get("kind") != "http" or expect is None:
                continue
            try:
                unknown = unknown_variables(str(expect), packages)
            except TemplateError as error:
                out.at(doc, [*path, "checks", ci, "expect"], str(error))
                continue
            for variable in unknown:
                out.at(
                    doc,
                    [*path, "checks", ci, "expect"],
                    f"unknown variable {{{variable}}} (use {{version}}, "
                    "{packages.<name>.version} or {packages.<name>.digest} of a package of "
                    f"this project: {', '.join(packages)})",
                )


def check_minimums(
    docs: list[Doc],
    lifecycles: dict[str, Lifecycle],
    projects: dict[str, Project],
    out: Collector,
) -> None:
    """``minimumEnvironments`` counts environments as each project deploys them (an
    environment with tenants counts once per tenant), so it is checked per project."""
    users: dict[str, list[Project]] = {}
    for project in projects.values():
        for name in {project.lifecycle, *(c.lifecycle for c in project.channels if c.lifecycle)}:
            users.setdefault(name, []).append(project)
    for doc in docs:
        lifecycle = lifecycles.get(doc.data["name"])
        if lifecycle is None or lifecycle.location != Location(doc.file, yamlio.position(doc.data)):
            continue  # a second lifecycle of that name: reported as a duplicate
        reported: set[str] = set()
        followers: list[Project | None] = list(users.get(lifecycle.name, ())) or [None]
        for follower in followers:
            followed = lifecycle if follower is None else project_lifecycle(lifecycle, follower)
            for pi, phase in enumerate(followed.phases):
                minimum, count = phase.minimum_environments, len(phase.environments)
                if minimum is None or minimum <= count:
                    continue
                message = f"{minimum} is more than the phase's {count} environments"
                if follower is not None and count != len(lifecycle.phases[pi].environments):
                    message += f" (tenants of project {follower.name!r} included)"
                if message not in reported:
                    reported.add(message)
                    out.at(doc, ["phases", pi, "minimumEnvironments"], message)


def check_symlinks(root: Path, projects: dict[str, Project], out: Collector) -> None:
    """``file: symlink not allowed`` for every symlink in the config folders, the
    folders the reconciler writes, and along each overlay and target path."""
    tops = [SETTINGS_FILE, *CONFIG_DIRS, *WRITTEN_DIRS]
    for project in projects.values():
        for env in project.environments.values():
            tops += [env.overlay, *(t.file for t in env.targets)] if env.overlay else []
    links = {link for top in tops for link in safepaths.symlinks_under(root, top)}
    for link in sorted(links):
        out.add(link, 0, "", safepaths.SYMLINK_NOT_ALLOWED)


def check_discovered(project: Project, doc: Doc, out: Collector) -> None:
    """A package found in the manifests that no rule of a channel names, while the
    channel's rules all name their packages, is reported rather than released on a
    guessed default rule."""
    for package in project.packages:
        if package.found_at is None:
            continue
        for ci, channel in enumerate(doc.data.get("channels") or ()):
            rules = project.channels[ci].rules
            if rules and all(r.packages and package.name not in r.packages for r in rules):
                where = f"{package.found_at.file}:{package.found_at.line}"
                out.at(
                    doc,
                    ["channels", ci, "rules"],
                    f"package {package.name!r} (found at {where}) matches no rule of channel "
                    f"{channel['name']!r}: name it in a rule, or add a rule without packages",
                )
