"""Dataclasses for the config repository and the records the reconciler writes.

Pure data: no I/O. ``config.py`` builds these from YAML; every other module
takes them as input. Durations are seconds (float); times are aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from reconciler.verify.model import VerifySpec

FeedType = Literal["oci", "helm", "oci-layout"]
Strategy = Literal["semver", "suffix", "regex", "newest-build", "digest"]
PackageKind = Literal["image", "chart"]
PromotionMode = Literal["direct", "pull-request"]
DriftPolicy = Literal["pin", "revert", "report"]


@dataclass(frozen=True)
class Location:
    """Where a config object was defined: repo-relative file and 1-based line."""

    file: str
    line: int = 0


@dataclass(frozen=True)
class Credentials:
    """Where to find a feed's secret. Never the secret itself."""

    username: str | None = None  # literal user name (not secret)
    username_env: str | None = None  # env var holding the user name
    password_env: str | None = None  # env var holding the password/token
    password_file: str | None = None  # mounted file holding the password/token
    docker_config: str | None = None  # path to a docker config.json
    provider: str | None = None  # aws | gcp | azure: the pod's cloud identity (feeds/cloud.py)
    identity_file: str | None = None  # gcp: a mounted Google credential file for this feed


@dataclass(frozen=True)
class Tls:
    """A feed's own TLS material (mounted files, granted like credentials): a CA to trust
    on top of the OS store, and a client certificate and key to present."""

    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    def files(self) -> list[tuple[str, str]]:
        """(config key, path) of every file named."""
        named = (("caFile", self.ca_file), ("clientCert", self.client_cert))
        return [(key, path) for key, path in (*named, ("clientKey", self.client_key)) if path]


@dataclass(frozen=True)
class Limits:
    concurrency: int = 8  # parallel requests to this feed's host
    requests_per_second: float = 0.0  # 0 = unlimited


@dataclass(frozen=True)
class Feed:
    name: str
    type: FeedType
    url: str  # oci: https://host[:port]; helm: repo URL or oci://host/path; oci-layout: dir
    insecure: bool = False  # allow plain http (and skip TLS verification)
    credentials: Credentials | None = None
    limits: Limits = field(default_factory=Limits)
    timeout: float = 10.0
    location: Location = field(default_factory=lambda: Location(""))
    tls: Tls | None = None


@dataclass(frozen=True)
class KeylessPolicy:
    """``verify.cosign.keyless``: who must have signed (a Fulcio certificate's OIDC
    issuer, and its identity exactly or by an RE2 pattern) under which trusted root
    (sigstore's ``trusted_root.json``, an operator-mounted file)."""

    issuer: str
    trusted_root: str
    identity: str | None = None
    identity_regexp: str | None = None


@dataclass(frozen=True)
class Package:
    """One image or chart a project deploys."""

    name: str
    feed: str
    image: str | None = None  # repository path in the feed, e.g. "acme/shop-api"
    chart: str | None = None  # chart name in a helm feed
    manifest_name: str | None = None  # name as written in manifests (kustomize images[].name)
    new_name: str | None = None  # kustomize images[].newName to write, if any
    found_at: Location | None = None  # where the manifests name it, for discovered packages
    cosign_keys: tuple[str, ...] = ()  # verify.cosign: PEM public key files; () = no gate
    helm_keyring: str | None = None  # verify.helm.keyring: OpenPGP keyring; None = no gate
    keyless: KeylessPolicy | None = None  # verify.cosign.keyless; None = no keyless gate

    @property
    def signature_gate(self) -> bool:
        """Whether a version must be signed to be selected (cosign or Helm provenance)."""
        return bool(self.cosign_keys) or self.helm_keyring is not None or self.keyless is not None

    @property
    def kind(self) -> PackageKind:
        return "chart" if self.chart is not None else "image"

    @property
    def repository(self) -> str:
        """The name to query in the feed."""
        return self.chart if self.chart is not None else (self.image or "")


@dataclass(frozen=True)
class VersionRule:
    """How to choose a version for some packages of a channel.

    Vocabulary shared by the config, the JSON Schema and selection.py.
    """

    packages: tuple[str, ...] = ()  # empty = every package of the project
    strategy: Strategy = "semver"
    range: str | None = None  # npm-style or NuGet/Maven interval
    prerelease: str | None = None  # regex over the pre-release label; "^$" = stable only
    strict: bool = False  # strict SemVer 2 parsing instead of lenient
    allow: str | None = None  # regex a tag must match
    ignore: tuple[str, ...] = ()  # regexes of tags to skip
    extract: str | None = None  # "$name" of a named group in `allow`, or "$ts"
    order: Literal["numerical", "alphabetical"] = "numerical"  # regex strategy
    pick: Literal["highest", "lowest"] = "highest"  # regex strategy: which end wins
    same_precision: bool = False  # suffix strategy: only tags with as many parts
    suffix: str | None = None  # suffix strategy: fixed suffix ("alpine"); None = from current
    tag: str | None = None  # digest strategy: the mutable tag to follow
    platform: str | None = None  # "linux/amd64" or "linux/arm64/v8" for index manifests
    scan_limit: int = 20  # newest-build: max tags whose metadata is fetched per pass


@dataclass(frozen=True)
class Channel:
    name: str
    default: bool = False
    lifecycle: str | None = None  # overrides the project's lifecycle
    rules: tuple[VersionRule, ...] = ()
    location: Location = field(default_factory=lambda: Location(""))


@dataclass(frozen=True)
class ReleaseVersioning:
    template: str = "{major}.{minor}.{patch+1}"
    from_package: str | None = None  # donor package: release version = its version
    initial: str = "0.0.1"  # used for a project's first release with a template


@dataclass(frozen=True)
class HelmValuesImage:
    """Where a ``helm-values`` target holds one image package, as Argo CD Image
    Updater's helm parameter names (``image.name`` / ``image.tag`` by default;
    ``spec`` for one ``name:tag`` value). Dotted names are paths into the values."""

    package: str
    name: str | None = "image.name"
    tag: str | None = "image.tag"
    spec: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class RenderTarget:
    """A file in an overlay that holds versions: chosen per environment."""

    kind: Literal[
        "kustomize-images",
        "kustomize-helm",
        "helmrelease",
        "application",
        "markers",
        "flux-imagepolicy",
        "helm-values",
    ]
    file: str  # repo-relative path
    images: tuple[HelmValuesImage, ...] = ()  # helm-values only; () = every image, defaults


@dataclass(frozen=True)
class Environment:
    name: str
    overlay: str  # repo-relative directory holding kustomization.yaml
    promotion: PromotionMode = "direct"
    on_drift: DriftPolicy = "pin"
    # empty = the overlay's kustomization.yaml images/helmCharts
    targets: tuple[RenderTarget, ...] = ()
    verify: VerifySpec | None = None  # None: a deployment counts once committed


@dataclass(frozen=True)
class Project:
    name: str
    lifecycle: str
    packages: tuple[Package, ...]
    channels: tuple[Channel, ...]
    environments: dict[str, Environment]
    release_versioning: ReleaseVersioning = field(default_factory=ReleaseVersioning)
    render_digest: bool = False  # write images[].digest as well as newTag
    location: Location = field(default_factory=lambda: Location(""))
    # Lifecycle environment -> its tenants' environments ("prod" -> "prod@acme", ...):
    # each tenant has its own overlay and state and moves through the same phases.
    tenants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Files read to discover packages from the manifests (config/discover.py), so the
    # config cache notices when they change.
    discovered_from: tuple[str, ...] = ()
    deploy: str = ""  # the deploy tree packages are discovered from, if named
    # The commit message of a commit that changes this project alone (else Settings').
    commit_template: str | None = None

    def package(self, name: str) -> Package:
        return next(p for p in self.packages if p.name == name)

    def channel(self, name: str) -> Channel:
        return next(c for c in self.channels if c.name == name)

    @property
    def default_channel(self) -> Channel:
        return next((c for c in self.channels if c.default), self.channels[0])


@dataclass(frozen=True)
class PhaseEnvironment:
    name: str
    automatic: bool = True


@dataclass(frozen=True)
class FreezeWindow:
    """Nothing is promoted automatically while a window is open.

    Either recurring (``days`` of week + ``start``/``end`` "HH:MM" in ``timezone``)
    or one-off (``from_time``/``to_time`` aware datetimes).
    """

    name: str
    environments: tuple[str, ...] = ()  # empty = every environment of the lifecycle
    timezone: str = "UTC"
    days: tuple[str, ...] = ()  # "mon".."sun"; empty with start/end = every day
    start: str | None = None  # "HH:MM"
    end: str | None = None  # "HH:MM"; end < start spans midnight
    from_time: datetime | None = None
    to_time: datetime | None = None


@dataclass(frozen=True)
class Phase:
    name: str
    environments: tuple[PhaseEnvironment, ...]
    minimum_environments: int | None = None  # None = all
    optional: bool = False
    soak: float = 0.0  # seconds


@dataclass(frozen=True)
class Lifecycle:
    name: str
    phases: tuple[Phase, ...]
    freezes: tuple[FreezeWindow, ...] = ()
    location: Location = field(default_factory=lambda: Location(""))


@dataclass(frozen=True)
class Trigger:
    name: str
    project: str
    channel: str
    sources: tuple[str, ...]  # package names watched
    enabled: bool = True
    settle: float = 0.0  # seconds of quiet before releasing
    max_wait: float = 0.0  # cap on settling, 0 = 10 x settle
    location: Location = field(default_factory=lambda: Location(""))


COMMIT_VARIABLES = frozenset({"subject", "body", "trailers"})
"""What ``commitTemplate`` may name (see templates.py for the language)."""


@dataclass(frozen=True)
class Settings:
    """reconciler.yaml at the config repo root (all optional)."""

    branch: str = "main"
    interval: float = 180.0
    author_name: str = "reconciler"
    author_email: str = "reconciler@localhost"
    commit_template: str | None = None
    # Seconds a kept answer about a tag (digest, platforms, creation time) is trusted
    # before the registry is asked again: how soon polling notices a re-pushed tag.
    digest_recheck: float = 3600.0
    # (kind, urlEnv, events) per notification target; see notify.py
    notifications: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Config:
    settings: Settings
    feeds: dict[str, Feed]
    lifecycles: dict[str, Lifecycle]
    projects: dict[str, Project]
    triggers: dict[str, Trigger]


@dataclass(frozen=True)
class ReleasedPackage:
    name: str  # package name
    kind: Literal["image", "chart"]
    source: str  # image reference "host/repo" or chart name
    version: str  # the tag exactly as in the registry (chart: its version)
    digest: str | None = None
    built: datetime | None = None  # newest-build: the image's creation time (what "newer" means)


@dataclass(frozen=True)
class Release:
    """An immutable release record: releases/<project>/<version>.yaml."""

    project: str
    version: str
    channel: str
    trigger: str | None
    created: datetime
    packages: tuple[ReleasedPackage, ...]

    def package(self, name: str) -> ReleasedPackage | None:
        return next((p for p in self.packages if p.name == name), None)


@dataclass(frozen=True)
class Deployment:
    """One release arriving in one environment (from the state file)."""

    environment: str
    release: str
    at: datetime
    by: str = "reconciler"
    automatic: bool = True
    phase: str | None = None  # the lifecycle phase the environment belongs to, when known
    # verified deployments (environments with verify): "verified" or "failed" once
    # concluded, when, and the checks' words; None while pending or without verify
    verification: str | None = None
    verified_at: datetime | None = None
    verification_reason: str = ""


TENANT_SEPARATOR = "@"
"""``prod@acme``: environment ``prod`` of tenant ``acme`` ('@' is never in a plain name)."""


def project_lifecycle(lifecycle: Lifecycle, project: Project) -> Lifecycle:
    """``lifecycle`` as ``project`` follows it: an environment with tenants stands for
    each of its tenants' environments, in phases and in freeze windows alike."""
    tenants = project.tenants
    if not tenants:
        return lifecycle
    phases = tuple(
        replace(
            phase,
            environments=tuple(
                PhaseEnvironment(name, env.automatic)
                for env in phase.environments
                for name in tenants.get(env.name, (env.name,))
            ),
        )
        for phase in lifecycle.phases
    )
    freezes = tuple(
        replace(
            window,
            environments=tuple(n for e in window.environments for n in tenants.get(e, (e,))),
        )
        for window in lifecycle.freezes
    )
    return replace(lifecycle, phases=phases, freezes=freezes)
