"""Load and validate the config repository.

Every YAML document is checked against the JSON Schema of its ``kind`` and then
cross-checked (unknown feed, lifecycle, package, channel, missing overlay,
duplicate names). Every problem is collected, with file, line and key path, so
one ``reconciler validate`` run in a pull request shows all of them at once.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import pickle
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler import API_VERSION, safepaths, schema, templates, versions, yamlio
from reconciler.errors import ConfigError, Problem, UnsafePathError
from reconciler.freeze import window_problems
from reconciler.grants import (
    CredentialPolicy,
    feed_host,
    policy_from_env,
    provider_host_problem,
)
from reconciler.model import (
    COMMIT_VARIABLES,
    TENANT_SEPARATOR,
    Channel,
    Config,
    Credentials,
    Environment,
    Feed,
    FreezeWindow,
    HelmValuesImage,
    Lifecycle,
    Limits,
    Location,
    Package,
    Phase,
    PhaseEnvironment,
    Project,
    ReleaseVersioning,
    RenderTarget,
    Settings,
    Tls,
    Trigger,
    VersionRule,
    project_lifecycle,
)
from reconciler.verify import model as verify_model
from reconciler.verify.model import (
    ArgoCDCheck,
    Check,
    CommitStatusCheck,
    FluxCheck,
    HttpCheck,
    VerifySpec,
)
from reconciler.verify.template import TemplateError, unknown_variables

CONFIG_DIRS = ("feeds", "lifecycles", "projects", "triggers")
SETTINGS_FILE = "reconciler.yaml"
WRITTEN_DIRS = ("deploy", "releases", "state", "pins")
"""Folders the reconciler writes (besides each project's overlays and targets)."""
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError


@functools.cache
def _validator(kind: str) -> Any:
    # jsonschema costs ~0.1 s to import; a pass whose config is cached never needs it.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema.KINDS[kind])


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number or text like ``90s``, ``2m``, ``1h30m``."""
    if isinstance(value, int | float):
        return float(value)
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 2m, 1h30m)")
    return total


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


def path_problem(text: str) -> str:
    """Why ``text`` is not a repository-relative path the reconciler may use."""
    parts = text.split("/")
    if text.startswith("/"):
        return f"{brief(text)} is an absolute path; give a path relative to the repository root"
    if ".." in parts:
        return f"{brief(text)} leaves its folder through '..'; paths stay inside the repository"
    if any(part.lower() == ".git" for part in parts):
        return f"{brief(text)} is inside .git; the reconciler never reads or writes there"
    return f"{brief(text)} is not a one-line path"


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


def _check_durations(doc: _Doc, out: _Collector) -> None:
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


@dataclass
class _Doc:
    """One YAML document with where it came from (positions only on the slow path)."""

    file: str
    data: Any  # CommentedMap (with line numbers) or a plain dict


def _key_path(path: Iterator[Any] | list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: Any, path: list[Any]) -> int:
    """1-based line of the value at ``path`` inside ``node`` (best effort)."""
    line = yamlio.position(node)
    for part in path:
        in_map = isinstance(node, CommentedMap) and part in node
        in_seq = isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node)
        if in_map or in_seq:
            line = yamlio.position(node, part) or line
            node = node[part]
        else:
            break
    return line


class _Collector:
    """Accumulates problems while the config is read."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.broken: dict[str, set[str]] = {}
        """Names of documents, by (intended) kind, that failed their own checks."""

    def add(self, file: str, line: int, key: str, message: str) -> None:
        self.problems.append(Problem(file, line, key, message))

    def at(self, doc: _Doc, path: list[Any], message: str) -> None:
        self.add(doc.file, _line_of(doc.data, path), _key_path(path), message)

    def unknown(
        self, doc: _Doc, path: list[Any], kind: str, name: str, known: Iterable[str]
    ) -> None:
        """``unknown <kind> 'name'``, unless a ``kind`` document of that name exists but
        failed its own checks: that was reported once, at its root cause."""
        if name in self.broken.get(kind, set()):
            return
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        self.at(doc, path, f"unknown {kind.lower()} {name!r}{hint}")


BRIEF_CHARS = 40
"""Values quoted in messages are cut to about this many characters: a value can be a
whole alias-built structure, and a message must stay one readable line."""


def brief(value: Any, limit: int = BRIEF_CHARS) -> str:
    """A ``repr`` of ``value`` cut to about ``limit`` characters, built without ever
    rendering more than that (the value may share sub-structures many times over)."""
    writer = _BriefWriter(limit)
    return "".join(writer.parts) if writer.walk(value) else "".join(writer.parts) + "..."


class _BriefWriter:
    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.room = limit

    def emit(self, text: str) -> bool:
        """Write what fits; False once the room is used up."""
        self.parts.append(text[: max(self.room, 0)])
        self.room -= len(text)
        return self.room > 0

    def walk(self, item: Any) -> bool:
        if isinstance(item, dict):
            return self._items(iter(item.items()), "{}", mapping=True)
        if isinstance(item, list | tuple):
            return self._items(enumerate(item), "[]", mapping=False)
        return self.emit(repr(item))

    def _items(self, pairs: Iterator[tuple[Any, Any]], brackets: str, *, mapping: bool) -> bool:
        if not self.emit(brackets[0]):
            return False
        for index, (key, item) in enumerate(pairs):
            if index and not self.emit(", "):
                return False
            if mapping and not (self.walk(key) and self.emit(": ")):
                return False
            if not self.walk(item):
                return False
        return self.emit(brackets[1])


def _jsonschema_text(err: ValidationError) -> str:
    """jsonschema's message with the offending value shown by ``brief``: its own
    message quotes the whole value."""
    message = str(err.message)
    whole = repr(err.instance)
    if message.startswith(whole):
        return brief(err.instance) + message[len(whole) :]
    return message if len(message) <= 4 * BRIEF_CHARS else message[: 4 * BRIEF_CHARS] + "..."


def _schema_message(err: ValidationError) -> tuple[list[Any], str]:
    """Turn a jsonschema error into (key path, readable message)."""
    path = list(err.absolute_path)
    sub: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = list(sub.get("properties", {}))
        extras = [k for k in err.instance if k not in allowed]
        if extras:
            key = extras[0]
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
            return [*path, key], f"unknown field '{key}'{suffix}"
    if err.validator == "required":
        return path, str(err.message).replace("is a required property", "is required")
    if err.validator == "pattern" and sub.get("pattern") == schema.NAME_PATTERN:
        return path, (
            f"{brief(err.instance)} is not a valid name (lower-case letters, digits, '.', '_', '-';"
            " used in file paths)"
        )
    if err.validator == "pattern" and sub.get("pattern") == schema.RELPATH_PATTERN:
        return path, path_problem(str(err.instance))
    if err.validator == "pattern" and sub.get("pattern") == schema.DURATION_PATTERN:
        return path, f"{brief(err.instance)} is not a duration (use e.g. 90s, 2m, 1h30m)"
    if err.validator == "oneOf" and err.context:
        # Prefer the branch whose error is deepest: it is the one the user meant.
        # A "wrong type" error is from a branch the user did not mean (a string given
        # where a branch wants a number); any other error is from the intended branch.
        meant = [e for e in err.context if e.validator != "type"] or list(err.context)
        best = max(meant, key=lambda e: len(list(e.absolute_path)))
        if list(best.absolute_path) != path or best.validator != "required":
            return _schema_message(best)
        if path and path[-2:-1] == ["packages"]:
            return path, "needs exactly one of 'image' or 'chart'"
    if err.validator == "type":
        return path, f"{brief(err.instance)} is not of type {err.validator_value!r}"
    return path, _jsonschema_text(err)


def _read_docs(root: Path, out: _Collector, *, fast: bool) -> list[_Doc]:
    docs: list[_Doc] = []
    for rel in _config_files(root):
        try:
            data = safepaths.read_bytes(root, rel, limit=yamlio.MAX_FILE_BYTES)
            if len(data) > yamlio.MAX_FILE_BYTES:
                out.add(rel, 0, "", f"file larger than {yamlio.MAX_FILE_BYTES} bytes")
                continue
            text = data.decode("utf-8")
        except UnsafePathError as exc:
            out.add(rel, 0, "", exc.reason)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            out.add(rel, 0, "", f"cannot read: {exc}")
            continue
        found = len(out.problems)
        docs.extend(_parse_file(rel, text, out, fast=fast))
        if len(out.problems) > found:
            _remember_unparsed(text, out)
    return docs


_TOP_KIND = re.compile(r"^kind:[ \t]*['\"]?([A-Za-z]+)", re.MULTILINE)
_TOP_NAME = re.compile(r"^name:[ \t]*['\"]?([a-z0-9][a-z0-9._-]*)", re.MULTILINE)


def _remember_unparsed(text: str, out: _Collector) -> None:
    """A file that does not parse still says, in its top-level lines, what it defines:
    remember those names as broken so references to them are not reported again."""
    for chunk in re.split(r"^---", text, flags=re.MULTILINE):
        kind, name = _TOP_KIND.search(chunk), _TOP_NAME.search(chunk)
        if kind is not None and name is not None:
            meant = next(iter(_close_kinds(kind[1])), kind[1])
            out.broken.setdefault(meant, set()).add(name[1])


def _parse_file(rel: str, text: str, out: _Collector, *, fast: bool) -> list[_Doc]:
    if "\x00" in text:
        out.add(rel, 0, "", "file contains a NUL byte")
        return []
    try:
        limit = yamlio.limit_problem(text)
        if limit is not None:
            out.add(rel, limit[0], "", limit[1])
            return []
        loaded = yamlio.load_all_fast(text) if fast else yamlio.load_all(text)
    except MarkedYAMLError as exc:
        line, problem = yamlio.explain_error(exc)
        out.add(rel, line, "", f"invalid YAML: {problem}")
        return []
    except YAMLError as exc:
        out.add(rel, 0, "", f"invalid YAML: {' '.join(str(exc).split())}")
        return []
    docs = []
    for data in loaded:
        if not isinstance(data, dict):
            out.add(rel, 1, "", "expected a mapping with apiVersion and kind")
            continue
        docs.append(_Doc(rel, data))
    return docs


def _check_schema(doc: _Doc, out: _Collector) -> bool:
    """Whether ``doc`` matches the schema of its kind. When it does not, its name is
    remembered as broken, so references to it do not repeat the error."""
    ok = _schema_problems(doc, out)
    kind, name = doc.data.get("kind"), doc.data.get("name")
    if not ok and isinstance(kind, str) and isinstance(name, str):
        meant = kind if kind in schema.KINDS else next(iter(_close_kinds(kind)), kind)
        out.broken.setdefault(meant, set()).add(name)
    return ok


def _close_kinds(kind: Any) -> list[str]:
    if not isinstance(kind, str):
        return []
    return difflib.get_close_matches(kind, list(schema.KINDS), n=1)


def _schema_problems(doc: _Doc, out: _Collector) -> bool:
    kind = doc.data.get("kind")
    if not isinstance(kind, str) or kind not in schema.KINDS:
        hint = _close_kinds(kind)
        suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
        out.at(
            doc,
            ["kind"],
            f"unknown kind {brief(kind)}{suffix}; expected one of "
            + ", ".join(sorted(schema.KINDS)),
        )
        return False
    if doc.data.get("apiVersion") != API_VERSION:
        out.at(doc, ["apiVersion"], f"must be {API_VERSION!r}")
        return False
    ok = True
    for err in _validator(kind).iter_errors(doc.data):
        path, message = _schema_message(err)
        out.at(doc, path, message)
        ok = False
    return ok


def _credentials(data: Any) -> Credentials | None:
    if data is None:
        return None
    return Credentials(
        username=data.get("username"),
        username_env=data.get("usernameEnv"),
        password_env=data.get("passwordEnv"),
        password_file=data.get("passwordFile"),
        docker_config=data.get("dockerConfig"),
        provider=data.get("provider"),
    )


def _tls(data: Any) -> Tls | None:
    if data is None:
        return None
    return Tls(
        ca_file=data.get("caFile"),
        client_cert=data.get("clientCert"),
        client_key=data.get("clientKey"),
    )


def _feed(doc: _Doc) -> Feed:
    d = doc.data
    limits = d.get("limits") or {}
    return Feed(
        name=d["name"],
        type=d["type"],
        url=str(d["url"]).rstrip("/"),
        insecure=bool(d.get("insecure", False)),
        credentials=_credentials(d.get("credentials")),
        limits=Limits(
            concurrency=int(limits.get("concurrency", 8)),
            requests_per_second=float(limits.get("requestsPerSecond", 0)),
        ),
        timeout=parse_duration(d.get("timeout", 10)),
        location=Location(doc.file, yamlio.position(d)),
        tls=_tls(d.get("tls")),
    )


_FEED_SCHEMES = {"oci": ("https", "http", "oci"), "helm": ("https", "http", "oci")}


def _check_feed_url(doc: _Doc, out: _Collector) -> None:
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


def _check_feed_tls(
    doc: _Doc, tls: Tls, policy: CredentialPolicy, host: str, out: _Collector
) -> None:
    for key, file in tls.files():
        problem = policy.file_problem(file, host)
        if problem is not None:
            out.at(doc, ["tls", key], f"not granted: {problem}")
    if tls.client_key and not tls.client_cert:
        out.at(doc, ["tls", "clientKey"], "needs clientCert")


def _check_feed_credentials(
    doc: _Doc, feed: Feed, policy: CredentialPolicy, out: _Collector
) -> None:
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
    named_env = (("usernameEnv", creds.username_env), ("passwordEnv", creds.password_env))
    for key, name in named_env:
        problem = policy.env_problem(name, host) if name is not None else None
        if problem is not None:
            out.at(doc, ["credentials", key], f"not granted: {problem}")
    docker_config = creds.docker_config if creds.docker_config != "default" else None
    for key, path in (("passwordFile", creds.password_file), ("dockerConfig", docker_config)):
        problem = policy.file_problem(path, host) if path is not None else None
        if problem is not None:
            out.at(doc, ["credentials", key], f"not granted: {problem}")
    in_clear = feed.insecure or feed.url.startswith("http://")
    if in_clear and feed.type != "oci-layout" and not policy.http_credentials_allowed(host):
        out.at(
            doc,
            ["credentials"],
            f"credentials would travel to {host} over plain http or unverified TLS;"
            " only the operator can allow that (--allow-http-credentials)",
        )


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} needs a time zone offset (e.g. Z or +01:00)")
    return parsed


def _lifecycle(doc: _Doc, out: _Collector) -> Lifecycle:
    d = doc.data
    phases = []
    for phase in d["phases"]:
        default_auto = bool(phase.get("automatic", True))
        envs = tuple(
            PhaseEnvironment(e, default_auto)
            if isinstance(e, str)
            else PhaseEnvironment(e["name"], bool(e.get("automatic", default_auto)))
            for e in phase["environments"]
        )
        phases.append(
            Phase(
                name=phase["name"],
                environments=envs,
                minimum_environments=phase.get("minimumEnvironments"),
                optional=bool(phase.get("optional", False)),
                soak=parse_duration(phase.get("soak", 0)),
            )
        )
    freezes = []
    for i, f in enumerate(d.get("freezes") or []):
        try:
            freezes.append(
                FreezeWindow(
                    name=f["name"],
                    environments=tuple(f.get("environments") or ()),
                    timezone=f.get("timezone", "UTC"),
                    days=tuple(f.get("days") or ()),
                    start=f.get("start"),
                    end=f.get("end"),
                    from_time=_aware(f.get("from")),
                    to_time=_aware(f.get("to")),
                )
            )
        except ValueError as exc:
            out.at(doc, ["freezes", i], str(exc))
            continue
        for message in window_problems(freezes[-1]):
            out.at(doc, ["freezes", i], message)
    return Lifecycle(
        d["name"], tuple(phases), tuple(freezes), Location(doc.file, yamlio.position(d))
    )


def _rule(d: Any) -> VersionRule:
    return VersionRule(
        packages=tuple(d.get("packages") or ()),
        strategy=d.get("strategy", "semver"),
        range=d.get("range"),
        prerelease=d.get("prerelease"),
        strict=bool(d.get("strict", False)),
        allow=d.get("allow"),
        ignore=tuple(d.get("ignore") or ()),
        extract=d.get("extract"),
        order=d.get("order", "numerical"),
        pick=d.get("pick", "highest"),
        same_precision=bool(d.get("samePrecision", False)),
        suffix=d.get("suffix"),
        tag=d.get("tag"),
        platform=d.get("platform"),
        scan_limit=int(d.get("scanLimit", 20)),
    )


def _verify_check(data: Any) -> Check | None:
    kind = data.get("kind")
    if kind == "argocd":
        return ArgoCDCheck(
            str(data.get("name", "")),
            data.get("namespace", "argocd"),
            data.get("via", "kubernetes"),
        )
    if kind == "flux":
        return FluxCheck(
            str(data.get("name", "")),
            data.get("namespace", "flux-system"),
            data.get("resource", "Kustomization"),
        )
    if kind == "commitStatus":
        return CommitStatusCheck(str(data.get("context", "")))
    if kind == "http":
        return HttpCheck(str(data.get("url", "")), data.get("expect"))
    return None  # reported by the schema


def _verify_spec(data: Any) -> VerifySpec | None:
    """An environment's ``verify:`` block; None when it has none."""
    if not data:
        return None
    checks = tuple(c for c in map(_verify_check, data.get("checks") or ()) if c is not None)
    return VerifySpec(
        checks,
        timeout=parse_duration(data.get("timeout", verify_model.DEFAULT_TIMEOUT)),
        interval=parse_duration(data.get("interval", verify_model.DEFAULT_INTERVAL)),
        on_failure=data.get("onFailure", "hold"),
    )


def _environments(name: str, data: Any) -> list[Environment]:
    """One environment, or with ``tenants`` one per tenant (``prod@acme``), each with its
    own overlay and targets (targets are per tenant: shared ones are refused by
    validation); promotion and onDrift default to the environment's."""

    def make(env_name: str, e: Any, defaults: Any) -> Environment:
        return Environment(
            name=env_name,
            overlay=str(e.get("overlay", "")).rstrip("/"),
            promotion=e.get("promotion", defaults.get("promotion", "direct")),
            on_drift=e.get("onDrift", defaults.get("onDrift", "pin")),
            targets=tuple(_render_target(t) for t in e.get("targets") or ()),
            verify=_verify_spec(e.get("verify", defaults.get("verify"))),
        )

    tenants = data.get("tenants")
    if not tenants:
        return [make(name, data, {})]
    return [make(f"{name}{TENANT_SEPARATOR}{t}", te, data) for t, te in tenants.items()]


def _project(doc: _Doc, feeds: dict[str, Feed]) -> Project:
    d = doc.data
    packages = []
    for p in d["packages"]:
        feed = feeds.get(p["feed"])
        manifest_name = p.get("manifestName")
        if manifest_name is None and p.get("image") and feed is not None and feed.type == "oci":
            host = feed.url.split("://", 1)[-1]
            manifest_name = f"{host}/{p['image']}"
        packages.append(
            Package(
                name=p["name"],
                feed=p["feed"],
                image=p.get("image"),
                chart=p.get("chart"),
                manifest_name=manifest_name or p.get("image") or p.get("chart"),
                new_name=p.get("newName"),
            )
        )
    channels = tuple(
        Channel(
            name=c["name"],
            default=bool(c.get("default", False)),
            lifecycle=c.get("lifecycle"),
            rules=tuple(_rule(r) for r in c.get("rules") or ()),
            location=Location(doc.file, yamlio.position(c)),
        )
        for c in d.get("channels") or ()
    ) or (Channel(name="default", default=True),)
    rv = d.get("releaseVersion") or {}
    envs = {
        env.name: env for name, e in d["environments"].items() for env in _environments(name, e)
    }
    tenants = {
        name: tuple(f"{name}{TENANT_SEPARATOR}{t}" for t in e["tenants"])
        for name, e in d["environments"].items()
        if e.get("tenants")
    }
    return Project(
        name=d["name"],
        lifecycle=d["lifecycle"],
        packages=tuple(packages),
        channels=channels,
        environments=envs,
        tenants=tenants,
        release_versioning=ReleaseVersioning(
            template=rv.get("template", "{major}.{minor}.{patch+1}"),
            from_package=rv.get("fromPackage"),
            initial=rv.get("initial", "0.0.1"),
        ),
        # The digest strategy follows a mutable tag: only the digest says which content
        # a release holds, so it must be rendered or the overlay never changes.
        render_digest=bool(d.get("renderDigest", False))
        or any(r.strategy == "digest" for c in channels for r in c.rules),
        location=Location(doc.file, yamlio.position(d)),
    )


def _trigger(doc: _Doc) -> Trigger:
    d = doc.data
    return Trigger(
        name=d["name"],
        project=d["project"],
        channel=d.get("channel", ""),
        sources=tuple(d["sources"]),
        enabled=bool(d.get("enabled", True)),
        settle=parse_duration(d.get("settle", 0)),
        max_wait=parse_duration(d.get("maxWait", 0)),
        location=Location(doc.file, yamlio.position(d)),
    )


def _settings(doc: _Doc | None) -> Settings:
    if doc is None:
        return Settings()
    d = doc.data
    author = d.get("author") or {}
    return Settings(
        branch=d.get("branch", "main"),
        interval=parse_duration(d.get("interval", 180)),
        author_name=author.get("name", "reconciler"),
        author_email=author.get("email", "reconciler@localhost"),
        commit_template=d.get("commitTemplate"),
        digest_recheck=parse_duration(d.get("digestRecheck", 3600)),
        notifications=tuple(
            (str(n["kind"]), str(n["urlEnv"]), tuple(n.get("events") or ()))
            for n in d.get("notifications") or ()
        ),
    )


def _unique(docs: list[_Doc], kind: str, out: _Collector) -> list[_Doc]:
    seen: dict[str, _Doc] = {}
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


def _check_project(
    project: Project,
    doc: _Doc,
    config_root: Path,
    feeds: dict[str, Feed],
    lifecycles: dict[str, Lifecycle],
    out: _Collector,
) -> None:
    def hint(name: str, choices: list[str]) -> str:
        close = difflib.get_close_matches(name, choices, n=1)
        return f" (did you mean '{close[0]}'?)" if close else ""

    if project.lifecycle not in lifecycles:
        out.unknown(doc, ["lifecycle"], "Lifecycle", project.lifecycle, lifecycles)
    package_names = [p.name for p in project.packages]
    seen_packages: set[str] = set()
    for i, pkg in enumerate(project.packages):
        if pkg.name in seen_packages:
            out.at(doc, ["packages", i, "name"], f"duplicate package name {pkg.name!r}")
        seen_packages.add(pkg.name)
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
    defaults = [c for c in project.channels if c.default]
    if len(defaults) > 1:
        out.at(doc, ["channels"], "more than one channel has default: true")
    channel_names: set[str] = set()
    for ci, channel in enumerate(project.channels):
        if channel.name in channel_names:
            out.at(doc, ["channels", ci, "name"], f"duplicate channel name {channel.name!r}")
        channel_names.add(channel.name)
        if channel.lifecycle and channel.lifecycle not in lifecycles:
            out.unknown(
                doc, ["channels", ci, "lifecycle"], "Lifecycle", channel.lifecycle, lifecycles
            )
        for ri, rule in enumerate(channel.rules):
            for pi, name in enumerate(rule.packages):
                if name not in package_names:
                    out.at(
                        doc,
                        ["channels", ci, "rules", ri, "packages", pi],
                        f"unknown package {name!r}" + hint(name, package_names),
                    )
            _check_rule(rule, doc, ["channels", ci, "rules", ri], out)
    for key, message in _release_version_problems(project.release_versioning):
        out.at(doc, ["releaseVersion", key], message)
    donor = project.release_versioning.from_package
    if donor and donor not in package_names:
        out.at(
            doc,
            ["releaseVersion", "fromPackage"],
            f"unknown package {donor!r}" + hint(donor, package_names),
        )

    def env_path(name: str) -> list[Any]:
        base, _, tenant = name.partition(TENANT_SEPARATOR)
        return ["environments", base, "tenants", tenant] if tenant else ["environments", base]

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
    for env in project.environments.values():
        if not env.overlay:
            continue  # reported above
        if not any(
            safepaths.is_file(config_root, f"{env.overlay}/{n}")
            for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
        ):
            out.at(
                doc,
                [*env_path(env.name), "overlay"],
                f"overlay {env.overlay!r} has no kustomization.yaml",
            )
        for ti, target in enumerate(env.targets):
            if not safepaths.is_file(config_root, target.file):
                out.at(
                    doc,
                    [*env_path(env.name), "targets", ti, "file"],
                    f"file {target.file!r} does not exist",
                )
    for lc_name in {project.lifecycle, *(c.lifecycle for c in project.channels if c.lifecycle)}:
        lifecycle = lifecycles.get(lc_name)
        if lifecycle is None:
            continue
        for phase in lifecycle.phases:
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


def _verify_blocks(doc: _Doc) -> Iterator[tuple[list[Any], Any]]:
    """(key path, block) of every ``verify:`` in a project, environments and tenants."""
    for name, data in doc.data["environments"].items():
        if data.get("verify"):
            yield ["environments", name, "verify"], data["verify"]
        for tenant, tenant_data in (data.get("tenants") or {}).items():
            if tenant_data.get("verify"):
                yield ["environments", name, "tenants", tenant, "verify"], tenant_data["verify"]


_VERIFY_REQUIRED = {"argocd": "name", "flux": "name", "commitStatus": "context", "http": "url"}


def _check_verify(project: Project, doc: _Doc, out: _Collector) -> None:
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


def _check_rule(rule: VersionRule, doc: _Doc, path: list[Any], out: _Collector) -> None:
    """A rule's own problems, and fields its strategy would ignore, each at its key."""
    from reconciler.selection import unused_rule_fields, validate_rule  # imports model only

    written = doc.data["channels"][path[1]]["rules"][path[3]]
    for message in validate_rule(rule):
        rule_key, text = _rule_key(written, message)
        out.at(doc, [*path, *rule_key], text)
    for key, message in unused_rule_fields(rule.strategy, written):
        out.at(doc, [*path, key], message)


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


def _check_minimums(
    docs: list[_Doc],
    lifecycles: dict[str, Lifecycle],
    projects: dict[str, Project],
    out: _Collector,
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


def _config_files(root: Path) -> list[str]:
    """Work-tree paths of the config files; symlinks are listed (and refused when
    read), never followed."""
    files: list[str] = []
    if os.path.lexists(root / SETTINGS_FILE):
        files.append(SETTINGS_FILE)
    for folder in CONFIG_DIRS:
        found = []
        for here, dirs, names in os.walk(root / folder):
            dirs[:] = [d for d in dirs if d.casefold() != ".git"]
            base = Path(here).relative_to(root).as_posix()
            found += [f"{base}/{n}" for n in names if n.endswith((".yaml", ".yml"))]
        files.extend(sorted(found))
    return files


def _check_symlinks(root: Path, projects: dict[str, Project], out: _Collector) -> None:
    """``file: symlink not allowed`` for every symlink in the config folders, the
    folders the reconciler writes, and along each overlay and target path."""
    tops = [SETTINGS_FILE, *CONFIG_DIRS, *WRITTEN_DIRS]
    for project in projects.values():
        for env in project.environments.values():
            tops += [env.overlay, *(t.file for t in env.targets)] if env.overlay else []
    links = {link for top in tops for link in safepaths.symlinks_under(root, top)}
    for link in sorted(links):
        out.add(link, 0, "", safepaths.SYMLINK_NOT_ALLOWED)


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
    from reconciler import source_stamp

    modules = (
        "config",
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

    The key is every config file's path and content hash plus the existence of each
    overlay and target file that validation looked at; a Git checkout rewrites what
    changed, so an idle pass skips parsing and schema validation of every file.
    Only valid configs are cached; a damaged cache file is ignored.
    """

    def stamp(path: str) -> list[Any]:
        # Content, not mtime: a checkout can rewrite a file within one mtime tick.
        digest = hashlib.sha256(safepaths.read_bytes(root, path)).hexdigest()
        return [path, digest]

    try:
        files = [stamp(p) for p in _config_files(root)]
    except (OSError, UnsafePathError):
        return load_config(root)
    try:
        cached = pickle.loads(cache_file.read_bytes())  # noqa: S301  # our own work dir
        if (
            cached["version"] == _code_stamp()
            and cached.get("grants") == policy_from_env(os.environ)
            and cached["files"] == files
            and all(safepaths.is_file(root, p) == exists for p, exists in cached["paths"])
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
    ):
        pass
    config = load_config(root)
    paths = [(p, safepaths.is_file(root, p)) for p in _checked_paths(config)]
    entry = {
        "version": _code_stamp(),
        "grants": policy_from_env(os.environ),
        "files": files,
        "paths": paths,
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
    out = _Collector()
    docs = _read_docs(root, out, fast=fast)
    by_kind: dict[str, list[_Doc]] = {k: [] for k in schema.KINDS}
    for doc in docs:
        if _check_schema(doc, out):
            _check_durations(doc, out)
            by_kind[doc.data["kind"]].append(doc)
    settings_docs = by_kind["Settings"]
    if len(settings_docs) > 1:
        out.at(settings_docs[1], ["kind"], "only one Settings document is allowed")
    settings = _settings(settings_docs[0] if settings_docs else None)
    if settings.commit_template is not None:
        problem = templates.check(settings.commit_template, COMMIT_VARIABLES)
        if problem:
            out.at(settings_docs[0], ["commitTemplate"], problem)
    feeds = {d.data["name"]: _feed(d) for d in _unique(by_kind["Feed"], "feed", out)}
    policy = policy_from_env(os.environ)
    for feed_doc in by_kind["Feed"]:
        _check_feed_url(feed_doc, out)
        _check_feed_credentials(feed_doc, _feed(feed_doc), policy, out)
    lifecycles = {
        d.data["name"]: _lifecycle(d, out) for d in _unique(by_kind["Lifecycle"], "lifecycle", out)
    }
    for lc_doc in by_kind["Lifecycle"]:
        seen_envs: set[str] = set()
        for pi, phase in enumerate(lc_doc.data["phases"]):
            for ei, env in enumerate(phase["environments"]):
                env_name = env if isinstance(env, str) else env["name"]
                if env_name in seen_envs:
                    out.at(
                        lc_doc,
                        ["phases", pi, "environments", ei],
                        f"environment {env_name!r} appears in more than one phase",
                    )
                seen_envs.add(env_name)
    projects: dict[str, Project] = {}
    for doc in _unique(by_kind["Project"], "project", out):
        project = _project(doc, feeds)
        _check_project(project, doc, root, feeds, lifecycles, out)
        _check_verify(project, doc, out)
        projects[project.name] = project
    _check_symlinks(root, projects, out)
    _check_minimums(by_kind["Lifecycle"], lifecycles, projects, out)
    triggers: dict[str, Trigger] = {}
    for doc in _unique(by_kind["Trigger"], "trigger", out):
        trigger = _trigger(doc)
        found = projects.get(trigger.project)
        if found is None:
            out.unknown(doc, ["project"], "Project", trigger.project, projects)
        else:
            if not trigger.channel:
                trigger = Trigger(**{**trigger.__dict__, "channel": found.default_channel.name})
            elif trigger.channel not in [c.name for c in found.channels]:
                out.at(
                    doc,
                    ["channel"],
                    f"unknown channel {trigger.channel!r} in project {found.name!r}",
                )
            names = [p.name for p in found.packages]
            for si, source in enumerate(trigger.sources):
                if source not in names:
                    close = difflib.get_close_matches(source, names, n=1)
                    out.at(
                        doc,
                        ["sources", si],
                        f"unknown package {source!r} in project "
                        f"{found.name!r}" + (f" (did you mean '{close[0]}'?)" if close else ""),
                    )
        triggers[trigger.name] = trigger
    if out.problems:
        raise ConfigError(out.problems)
    return Config(settings, feeds, lifecycles, projects, triggers)


def _render_target(data: dict[str, Any]) -> RenderTarget:
    """A ``targets[]`` entry (schema-checked)."""
    images = []
    for image in data.get("images") or ():
        spec = image.get("spec")
        defaults = (None, None) if spec else ("image.name", "image.tag")
        images.append(
            HelmValuesImage(
                package=image["package"],
                name=image.get("name", defaults[0]),
                tag=image.get("tag", defaults[1]),
                spec=spec,
                digest=image.get("digest"),
            )
        )
    return RenderTarget(data["kind"], data["file"], tuple(images))
