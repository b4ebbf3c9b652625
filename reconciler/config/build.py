"""Building the model (``reconciler.model``) from schema-checked documents.

Each function reads one kind of document; defaults live here, next to the field
they fill. Only problems the schema cannot see while building (a freeze window's
times) are reported here; cross-checks are in ``checks``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from reconciler import yamlio
from reconciler.config.read import Collector, Doc
from reconciler.freeze import window_problems
from reconciler.model import (
    TENANT_SEPARATOR,
    Channel,
    Credentials,
    Environment,
    Feed,
    FreezeWindow,
    HelmValuesImage,
    KeylessPolicy,
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

__all__ = [
    "build_feed",
    "build_lifecycle",
    "build_project",
    "build_settings",
    "build_trigger",
    "parse_duration",
]


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


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
        identity_file=data.get("identityFile"),
    )


def _tls(data: Any) -> Tls | None:
    if data is None:
        return None
    return Tls(
        ca_file=data.get("caFile"),
        client_cert=data.get("clientCert"),
        client_key=data.get("clientKey"),
    )


def build_feed(doc: Doc) -> Feed:
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


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} needs a time zone offset (e.g. Z or +01:00)")
    return parsed


def build_lifecycle(doc: Doc, out: Collector) -> Lifecycle:
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


def _helm_keyring(verify: Any) -> str | None:
    """A package's ``verify.helm.keyring`` file; None without a gate."""
    keyring = ((verify or {}).get("helm") or {}).get("keyring")
    return str(keyring) if keyring else None


def _cosign_keys(verify: Any) -> tuple[str, ...]:
    """A package's ``verify.cosign`` key files (``key`` or ``keys``); () without a gate."""
    cosign = (verify or {}).get("cosign") or {}
    keys = cosign.get("keys") or ([cosign["key"]] if cosign.get("key") else [])
    return tuple(str(k) for k in keys)


def _keyless(verify: Any) -> KeylessPolicy | None:
    """A package's ``verify.cosign.keyless`` policy; None without one."""
    keyless = ((verify or {}).get("cosign") or {}).get("keyless")
    if not keyless:
        return None
    identity, pattern = keyless.get("identity"), keyless.get("identityRegexp")
    return KeylessPolicy(
        issuer=str(keyless["issuer"]),
        trusted_root=str(keyless["trustedRoot"]),
        identity=None if identity is None else str(identity),
        identity_regexp=None if pattern is None else str(pattern),
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


def build_project(
    doc: Doc,
    feeds: dict[str, Feed],
    discovered: tuple[Package, ...] = (),
    discovered_from: tuple[str, ...] = (),
) -> Project:
    """The project of ``doc``; ``discovered`` packages (from the manifests) come after
    the listed ones, except those a listed package already names (explicit wins)."""
    d = doc.data
    packages = []
    for p in d.get("packages") or ():
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
                cosign_keys=_cosign_keys(p.get("verify")),
                helm_keyring=_helm_keyring(p.get("verify")),
                keyless=_keyless(p.get("verify")),
            )
        )
    listed = {p.name for p in packages} | {p.manifest_name for p in packages}
    packages += [p for p in discovered if not {p.name, p.manifest_name} & listed]
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
        discovered_from=discovered_from,
        deploy=str(d.get("deploy", "")),
        commit_template=d.get("commitTemplate"),
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


def build_trigger(doc: Doc) -> Trigger:
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


def build_settings(doc: Doc | None) -> Settings:
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
