"""Authenticate and parse incoming registry and Git-host webhook bodies.

Pure: bytes and headers in, :class:`WebhookEvent` values out. A webhook only
*wakes* the poller (registries may batch, reorder or lose notifications), so an
event names what changed and the pass re-reads tags and digests from the feed
itself. That is also why a replayed delivery can at worst cause an extra poll;
the :class:`ReplayGuard` still drops repeats so a retry storm costs one pass.

Endpoints (``/hooks/<endpoint>``) and how each is authenticated:

    distribution  CNCF distribution notifications   Authorization: Bearer <secret>
                  (alias ``registry``)
    dockerhub     Docker Hub                        secret token in the URL path
    github        GitHub package/registry_package   X-Hub-Signature-256: sha256=<hmac>
                  and push events
    harbor        Harbor artifact pushes (Default   Authorization: <secret> verbatim
                  and CloudEvents payload formats)
    gitlab        GitLab push / tag push            X-Gitlab-Token: <secret>
    gitea         Gitea push                        X-Gitea-Signature: <hmac>
    quay          Quay "Push to Repository"         secret token in the URL path
    acr           Azure Container Registry          Authorization: Bearer <secret>
                                                    (a custom header of the webhook)
    artifactregistry  Artifact Registry via a       secret token in the URL path, and/or
                  Pub/Sub push subscription         Google's OIDC push token (checked by
                                                    the server: reconciler.pubsubpush)
    ecr           ECR via an EventBridge API        Authorization: Bearer <secret>
                  destination                       (the connection's API key)
    artifactory   JFrog Artifactory Docker          X-JFrog-Event-Auth: <secret>, or its
                  "pushed"                          HMAC-SHA256 (payload signing)
    gitlab-registry  GitLab container registry      as distribution (an alias)
    argocd        Argo CD notifications (webhook    Authorization: Bearer <secret>
                  service, our documented template)
    flux          Flux notification-controller      X-Signature: sha256=<hmac>
                  (generic-hmac; generic with an    (generic-hmac), else
                  Authorization header)             Authorization: Bearer <secret>

Registry and Git events name what was pushed; ``deployment`` events (argocd, flux)
only say that a GitOps agent reported something, so the pass verifies at once.

Every secret comparison is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from reconciler.errors import WebhookRejected
from reconciler.registryhooks import PARSERS

EventKind = Literal["registry", "git", "deployment"]
EventSource = Literal[
    "distribution",
    "dockerhub",
    "github-package",
    "harbor",
    "github-push",
    "gitlab-push",
    "gitea-push",
    "argocd",
    "flux",
    "quay",
    "acr",
    "artifactregistry",
    "ecr",
    "artifactory",
]

#: URL endpoint names accepted under ``/hooks/``; ``registry`` is an alias of distribution.
ENDPOINTS = (
    "distribution",
    "dockerhub",
    "github",
    "harbor",
    "gitlab",
    "gitea",
    "argocd",
    "flux",
    *PARSERS,
)
#: Endpoints whose secret is the last URL path segment (the sender sets no headers).
PATH_TOKEN_ENDPOINTS = ("dockerhub", "quay", "artifactregistry")
_BEARER_ENDPOINTS = ("argocd", "flux", "acr", "ecr")
_ENDPOINT_ALIASES = {"registry": "distribution", "gitlab-registry": "distribution"}

#: Manifest media types: a distribution ``push`` of anything else is a blob upload.
MANIFEST_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)

_ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class WebhookEvent:
    """Something was pushed: an image tag (``registry``) or a Git ref (``git``)."""

    kind: EventKind
    source: EventSource
    repository: str  # image repository path ("acme/api") or Git repo full name ("acme/config")
    tag: str | None = None  # image tag
    digest: str | None = None  # manifest digest, when the sender knows it
    ref: str | None = None  # "refs/heads/main" for git pushes
    commit: str | None = None  # the pushed commit sha (git), None when the ref was deleted
    host: str | None = None  # registry host[:port] when the sender names it
    delivery_id: str | None = None  # dedupe key (delivery GUID or event id)


def normalize_endpoint(name: str) -> str:
    """Map an endpoint name from the URL to its canonical name; 404 when unknown."""
    name = _ENDPOINT_ALIASES.get(name, name)
    if name not in ENDPOINTS:
        raise WebhookRejected(404, f"unknown webhook endpoint {name!r}")
    return name


# --------------------------------------------------------------------------- auth


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` keyed with ``secret`` (GitHub and Gitea signatures)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _check_hmac(given: str | None, secret: str, body: bytes, *, prefix: str) -> None:
    if not given:
        raise WebhookRejected(401, "missing signature")
    if prefix:
        if not given.startswith(prefix):
            raise WebhookRejected(401, f"signature must start with {prefix!r}")
        given = given[len(prefix) :]
    if not _same(given.strip().lower(), hmac_sha256_hex(secret, body)):
        raise WebhookRejected(401, "signature mismatch")


def _check_token(given: str | None, expected: str, what: str) -> None:
    # Compare even when the header is missing, so timing does not reveal which case it was.
    if not _same(given or "", expected) or not given:
        raise WebhookRejected(401, f"{what} missing or wrong")


def authenticate(
    endpoint: str,
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    path_token: str | None = None,
) -> None:
    """Raise ``WebhookRejected(401)`` unless the delivery carries ``secret`` correctly.

    ``headers`` must have lower-case names. ``body`` is the raw request body;
    signatures are computed over it (Gitea's form deliveries: over the JSON).
    """
    if endpoint == "distribution":
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        _check_token(token.strip() if scheme.lower() == "bearer" else None, secret, "bearer token")
    elif endpoint == "harbor":
        _check_token(headers.get("authorization"), secret, "authorization header")
    elif endpoint == "gitlab":
        _check_token(headers.get("x-gitlab-token"), secret, "X-Gitlab-Token")
    elif endpoint == "github":
        _check_hmac(headers.get("x-hub-signature-256"), secret, body, prefix="sha256=")
    elif endpoint == "gitea":
        signed = _form_payload(headers, body) or body
        if headers.get("x-gitea-signature"):
            _check_hmac(headers.get("x-gitea-signature"), secret, signed, prefix="")
        else:
            _check_hmac(headers.get("x-hub-signature-256"), secret, signed, prefix="sha256=")
    elif endpoint in PATH_TOKEN_ENDPOINTS:
        _check_token(path_token, secret, "URL token")
    elif endpoint == "flux" and headers.get("x-signature"):
        _check_flux_signature(headers["x-signature"], secret, body)
    elif endpoint == "artifactory":
        _check_artifactory(headers.get("x-jfrog-event-auth"), secret, body)
    elif endpoint in _BEARER_ENDPOINTS:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        _check_token(token.strip() if scheme.lower() == "bearer" else None, secret, "bearer token")
    else:  # pragma: no cover - normalize_endpoint() guards this
        raise WebhookRejected(404, f"unknown webhook endpoint {endpoint!r}")


_FLUX_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def _check_artifactory(given: str | None, secret: str, body: bytes) -> None:
    """The webhook's secret token verbatim, or (payload signing) its HMAC-SHA256 hex."""
    value = (given or "").strip()
    signed = _same(value.lower(), hmac_sha256_hex(secret, body))
    if not value or not (_same(value, secret) or signed):
        raise WebhookRejected(401, "X-JFrog-Event-Auth missing or wrong")


def _check_flux_signature(given: str, secret: str, body: bytes) -> None:
    """notification-controller's generic-hmac: ``X-Signature: <hash>=<hex hmac>``."""
    name, _, digest = given.strip().partition("=")
    hash_function = _FLUX_HASHES.get(name.lower())
    if hash_function is None:
        raise WebhookRejected(401, "X-Signature must be sha256=, sha384= or sha512=<hmac>")
    expected = hmac.new(secret.encode(), body, hash_function).hexdigest()
    if not _same(digest.strip().lower(), expected):
        raise WebhookRejected(401, "signature mismatch")


# ------------------------------------------------------------------------ parsing


def _form_payload(headers: Mapping[str, str], body: bytes) -> bytes | None:
    """The JSON of a ``application/x-www-form-urlencoded`` ``payload=`` delivery, else None."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    try:
        values = parse_qs(body.decode("utf-8"), strict_parsing=True).get("payload")
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookRejected(400, f"malformed form body: {exc}") from None
    if not values:
        raise WebhookRejected(400, "form body without a payload field")
    return values[0].encode("utf-8")


def _load_json(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    raw = _form_payload(headers, body) or body
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookRejected(400, f"malformed JSON: {exc}") from None
    except RecursionError:  # json's C decoder recurses per level: '[' * 100_000
        raise WebhookRejected(400, "malformed JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise WebhookRejected(400, "JSON body must be an object")
    return document


def _field(document: Any, *path: str) -> Any:
    """``document[path[0]][path[1]]...`` or None when any step is missing or not an object."""
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def _text(document: Any, *path: str) -> str | None:
    value = _field(document, *path)
    return value if isinstance(value, str) and value else None


def _required_text(document: Any, *path: str) -> str:
    value = _text(document, *path)
    if value is None:
        raise WebhookRejected(400, f"missing field {'.'.join(path)}")
    return value


def parse_distribution(document: Mapping[str, Any]) -> list[WebhookEvent]:
    """CNCF distribution notification envelope: tagged manifest pushes only."""
    events = document.get("events")
    if not isinstance(events, list):
        raise WebhookRejected(400, "missing field events")
    found = []
    for event in events:
        if not isinstance(event, dict) or event.get("action") != "push":
            continue
        target = event.get("target")
        tag = _text(target, "tag")
        if tag is None or _text(target, "mediaType") not in MANIFEST_MEDIA_TYPES:
            continue
        repository = _text(target, "repository")
        if repository is None:
            continue
        found.append(
            WebhookEvent(
                kind="registry",
                source="distribution",
                repository=repository,
                tag=tag,
                digest=_text(target, "digest"),
                host=_text(event, "request", "host"),
                delivery_id=_text(event, "id"),
            )
        )
    return found


def parse_dockerhub(document: Mapping[str, Any]) -> list[WebhookEvent]:
    """Docker Hub push: no digest, so the pass resolves the tag itself."""
    return [
        WebhookEvent(
            kind="registry",
            source="dockerhub",
            repository=_required_text(document, "repository", "repo_name"),
            tag=_required_text(document, "push_data", "tag"),
            host="docker.io",
        )
    ]


def parse_github_package(
    document: Mapping[str, Any], delivery_id: str | None
) -> list[WebhookEvent]:
    """GitHub ``package`` / ``registry_package`` events of container images."""
    if document.get("action") not in ("published", "updated"):
        return []
    package = document.get("package") or document.get("registry_package")
    if not isinstance(package, dict):
        raise WebhookRejected(400, "missing field package")
    version = package.get("package_version")
    tag = _text(version, "container_metadata", "tag", "name")
    if tag is None:  # untagged push, or not a container package
        return []
    namespace = _text(package, "namespace") or _text(package, "owner", "login")
    name = _required_text(package, "name")
    repository = f"{namespace}/{name}" if namespace else name
    digest = _text(version, "container_metadata", "tag", "digest") or _text(
        version, "container_metadata", "manifest", "digest"
    )
    return [
        WebhookEvent(
            kind="registry",
            source="github-package",
            # GHCR repository paths are lower case; GitHub owners are not.
            repository=repository.lower(),
            tag=tag,
            digest=digest,
            host="ghcr.io",
            delivery_id=delivery_id,
        )
    ]


HARBOR_CLOUDEVENT_PUSH = "harbor.artifact.pushed"


def parse_harbor(
    document: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> list[WebhookEvent]:
    """Harbor artifact pushes: one event per tagged resource.

    Both of Harbor's payload formats: ``Default`` (``type: PUSH_ARTIFACT``, the
    payload under ``event_data``) and ``CloudEvents`` (``type:
    harbor.artifact.pushed``, the payload under ``data``; in binary mode the type
    comes in a ``ce-type`` header and the body is the payload). A CloudEvent's ``id``
    is its delivery id, so a redelivery is recognised as a replay.
    """
    headers = headers or {}
    delivery_id: str | None = None
    if document.get("type") == "PUSH_ARTIFACT":
        payload = document.get("event_data")
        where = "event_data"
    elif "specversion" in document:
        if document.get("type") != HARBOR_CLOUDEVENT_PUSH:
            return []
        payload, where, delivery_id = document.get("data"), "data", _text(document, "id")
    elif headers.get("ce-type"):
        if headers["ce-type"] != HARBOR_CLOUDEVENT_PUSH:
            return []
        payload, where, delivery_id = document, "", headers.get("ce-id")
    else:
        return []
    prefix = f"{where}." if where else ""
    repository = _text(payload, "repository", "repo_full_name")
    if repository is None:
        raise WebhookRejected(400, f"missing field {prefix}repository.repo_full_name")
    resources = _field(payload, "resources")
    if not isinstance(resources, list):
        raise WebhookRejected(400, f"missing field {prefix}resources")
    found = []
    for resource in resources:
        tag = _text(resource, "tag")
        if tag is None or tag.startswith("sha256:"):
            continue  # untagged: Harbor puts the digest where the tag would be
        resource_url = _text(resource, "resource_url")
        host = resource_url.split("/", 1)[0] if resource_url and "/" in resource_url else None
        found.append(
            WebhookEvent(
                kind="registry",
                source="harbor",
                repository=repository,
                tag=tag,
                digest=_text(resource, "digest"),
                host=host,
                delivery_id=delivery_id,
            )
        )
    return found


def _git_push(
    source: EventSource, repository: str, document: Mapping[str, Any], delivery_id: str | None
) -> list[WebhookEvent]:
    after = _text(document, "after")
    return [
        WebhookEvent(
            kind="git",
            source=source,
            repository=repository,
            ref=_required_text(document, "ref"),
            commit=None if after in (None, _ZERO_SHA) else after,
            delivery_id=delivery_id,
        )
    ]


def parse_event(endpoint: str, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
    """Events in an (already authenticated) delivery; ``[]`` for ones we ignore.

    ``headers`` must have lower-case names. Raises ``WebhookRejected(400)`` for
    bodies that are not JSON objects or lack the fields of their event type.
    """
    document = _load_json(headers, body)
    if endpoint in ("argocd", "flux"):
        return parse_deployment_report(endpoint, document)
    if endpoint in PARSERS:
        return _registry_pushes(endpoint, document)
    if endpoint == "distribution":
        return parse_distribution(document)
    if endpoint == "dockerhub":
        return parse_dockerhub(document)
    if endpoint == "harbor":
        return parse_harbor(document, headers)
    if endpoint == "github":
        delivery = headers.get("x-github-delivery")
        event_type = headers.get("x-github-event", "")
        if event_type in ("package", "registry_package"):
            return parse_github_package(document, delivery)
        if event_type == "push":
            name = _required_text(document, "repository", "full_name")
            return _git_push("github-push", name, document, delivery)
        return []  # ping and everything else
    if endpoint == "gitlab":
        if document.get("object_kind") not in ("push", "tag_push"):
            return []
        name = _required_text(document, "project", "path_with_namespace")
        return _git_push("gitlab-push", name, document, headers.get("x-gitlab-event-uuid"))
    if endpoint == "gitea":
        event_type = headers.get("x-gitea-event") or headers.get("x-github-event", "")
        if event_type != "push":
            return []
        name = _required_text(document, "repository", "full_name")
        return _git_push("gitea-push", name, document, headers.get("x-gitea-delivery"))
    raise WebhookRejected(404, f"unknown webhook endpoint {endpoint!r}")


def _registry_pushes(endpoint: str, document: Mapping[str, Any]) -> list[WebhookEvent]:
    try:
        pushes = PARSERS[endpoint](document)
    except ValueError as error:
        raise WebhookRejected(400, str(error)) from None
    return [
        WebhookEvent(
            "registry",
            endpoint,  # type: ignore[arg-type]  # PARSERS' keys are EventSource values
            push.repository,
            tag=push.tag,
            digest=push.digest,
            host=push.host,
            delivery_id=push.delivery_id,
        )
        for push in pushes
    ]


def parse_deployment_report(endpoint: str, document: Mapping[str, Any]) -> list[WebhookEvent]:
    """A GitOps agent's report: one ``deployment`` event naming the object and revision.

    Argo CD notifications send what their template says; the documented template
    (docs/verified-promotion-argocd.md) sends ``{"app", "namespace", "revision",
    "health", "sync"}``. Flux's generic providers send an Event
    (``involvedObject.{kind,namespace,name}``, ``metadata.revision``, ``reason``; see
    fluxcd notification-controller "Provider" docs, generic webhook payload).
    """
    if endpoint == "argocd":
        name = _required_text(document, "app")
        namespace = _text(document, "namespace") or "argocd"
        revision = _text(document, "revision")
        return [WebhookEvent("deployment", "argocd", f"Application/{namespace}/{name}",
                             commit=revision)]  # fmt: skip
    kind = _required_text(document, "involvedObject", "kind")
    name = _required_text(document, "involvedObject", "name")
    namespace = _text(document, "involvedObject", "namespace") or "flux-system"
    revision = _text(document, "metadata", "revision")
    return [WebhookEvent("deployment", "flux", f"{kind}/{namespace}/{name}", commit=revision)]


# ------------------------------------------------------------------------ replays


class ReplayGuard:
    """Remembers the last ``capacity`` delivery ids and reports repeats. Thread-safe."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, source: str, delivery_id: str | None) -> bool:
        """True the first time ``(source, delivery_id)`` is seen; deliveries without an id pass."""
        if not delivery_id:
            return True
        key = (source, delivery_id)
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return True


def receive(
    endpoint: str,
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    path_token: str | None = None,
    replays: ReplayGuard | None = None,
    verified: bool = False,
) -> tuple[list[WebhookEvent], int]:
    """Authenticate, parse and de-duplicate one delivery.

    Returns the new events and how many were dropped as replays. Header names
    may have any case. ``verified`` means the caller authenticated the delivery
    another way (a Pub/Sub push token, reconciler.pubsubpush) and no secret is set.
    """
    endpoint = normalize_endpoint(endpoint)
    lower = {name.lower(): value for name, value in headers.items()}
    if not verified:
        authenticate(endpoint, lower, body, secret, path_token=path_token)
    events = parse_event(endpoint, lower, body)
    if replays is None:
        return events, 0
    # Several events may share one delivery id (a Harbor CloudEvent lists every
    # resource of a push): each id is asked about once, and all its events kept.
    first: dict[tuple[str, str | None], bool] = {}
    fresh = []
    for event in events:
        key = (event.source, event.delivery_id)
        if key not in first:
            first[key] = replays.first_time(*key)
        if first[key]:
            fresh.append(event)
    return fresh, len(events) - len(fresh)
