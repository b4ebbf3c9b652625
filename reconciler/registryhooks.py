"""Image pushes announced by cloud and enterprise registries (pure): body -> pushes.

Each parser takes the delivery's JSON object, in the shape its provider documents,
and returns :class:`RegistryPush` values (``[]`` for events that are not a tag push);
a body missing the fields of its event raises ``ValueError``. How each is
authenticated is in :mod:`reconciler.webhooks`.

* Quay repository notification, "Push to Repository" webhook (Quay docs, "Repository
  notifications"): ``repository``, ``docker_url``, ``updated_tags``.
* Azure Container Registry webhook (Azure docs, "Azure Container Registry webhook
  reference"): ``action: push``, ``target.{repository,tag,digest}``, ``request.host``.
* Artifact Registry through a Pub/Sub push subscription (Google docs, "Configure
  notifications" + Pub/Sub "push subscriptions"): ``message.data`` is base64 of
  ``{"action": "INSERT", "digest": "<host>/<path>@sha256:…", "tag": "<host>/<path>:<tag>"}``.
* Amazon ECR through an EventBridge API destination (AWS docs, "Amazon ECR events and
  EventBridge"): ``source: aws.ecr``, ``detail-type: ECR Image Action``,
  ``detail.{action-type,result,repository-name,image-tag,image-digest}``.
* JFrog Artifactory Docker webhook, event "pushed" (JFrog docs, "Domain: Docker"):
  ``domain: docker``, ``event_type: pushed``, ``data.{repo_key,image_name,tag,sha256}``.
* The GitLab container registry is a CNCF distribution registry: a self-managed
  GitLab sends distribution notifications (``registry['notifications']`` in
  ``gitlab.rb``), parsed by the distribution endpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from reconciler.documents import text

__all__ = ["PARSERS", "RegistryPush"]


@dataclass(frozen=True)
class RegistryPush:
    repository: str
    tag: str | None
    digest: str | None = None
    host: str | None = None
    delivery_id: str | None = None


def _required(document: Any, *path: str) -> str:
    value = text(document, *path)
    if value is None:
        raise ValueError(f"missing field {'.'.join(path)}")
    return value


def parse_quay(document: Mapping[str, Any]) -> list[RegistryPush]:
    repository = _required(document, "repository")
    docker_url = text(document, "docker_url") or ""
    host = docker_url.split("/", 1)[0] if "/" in docker_url else None
    tags = document.get("updated_tags") or []
    if not isinstance(tags, list):
        raise ValueError("updated_tags must be a list")
    return [RegistryPush(repository, str(tag), host=host) for tag in tags if tag]


def parse_acr(document: Mapping[str, Any]) -> list[RegistryPush]:
    if document.get("action") != "push":
        return []  # ping, delete, chart_push, quarantine
    tag = text(document, "target", "tag")
    if tag is None:
        return []  # a push by digest only
    return [
        RegistryPush(
            _required(document, "target", "repository"),
            tag,
            text(document, "target", "digest"),
            text(document, "request", "host"),
            text(document, "id"),
        )
    ]


def _split_reference(reference: str, separator: str) -> tuple[str, str, str]:
    """``host/path<sep>rest`` -> (host, path, rest)."""
    name, _, rest = reference.rpartition(separator)
    host, _, path = name.partition("/")
    if not host or not path or not rest:
        raise ValueError(f"not an image reference: {reference!r}")
    return host, path, rest


def parse_artifact_registry(document: Mapping[str, Any]) -> list[RegistryPush]:
    data = _required(document, "message", "data")
    try:
        event = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"message.data is not base64 JSON: {error}") from None
    if not isinstance(event, Mapping) or event.get("action") != "INSERT":
        return []
    tag_reference = text(event, "tag")
    if tag_reference is None:
        return []  # an untagged digest
    host, path, tag = _split_reference(tag_reference, ":")
    digest_reference = text(event, "digest")
    digest = _split_reference(digest_reference, "@")[2] if digest_reference else None
    delivery = text(document, "message", "messageId") or text(document, "message", "message_id")
    return [RegistryPush(path, tag, digest, host, delivery)]


def parse_ecr(document: Mapping[str, Any]) -> list[RegistryPush]:
    if document.get("source") != "aws.ecr" or document.get("detail-type") != "ECR Image Action":
        return []
    if text(document, "detail", "action-type") != "PUSH":
        return []
    if text(document, "detail", "result") != "SUCCESS":
        return []
    tag = text(document, "detail", "image-tag")
    if tag is None:
        return []
    account, region = text(document, "account"), text(document, "region")
    host = f"{account}.dkr.ecr.{region}.amazonaws.com" if account and region else None
    return [
        RegistryPush(
            _required(document, "detail", "repository-name"),
            tag,
            text(document, "detail", "image-digest"),
            host,
            text(document, "id"),
        )
    ]


def parse_artifactory(document: Mapping[str, Any]) -> list[RegistryPush]:
    if document.get("domain") != "docker" or document.get("event_type") != "pushed":
        return []
    image = _required(document, "data", "image_name")
    repo_key = text(document, "data", "repo_key")
    sha256 = text(document, "data", "sha256")
    origin = text(document, "jpd_origin")
    return [
        RegistryPush(
            f"{repo_key}/{image}" if repo_key else image,
            _required(document, "data", "tag"),
            f"sha256:{sha256}" if sha256 else None,
            urlsplit(origin).netloc or None if origin else None,
        )
    ]


PARSERS: dict[str, Callable[[Mapping[str, Any]], list[RegistryPush]]] = {
    "quay": parse_quay,
    "acr": parse_acr,
    "artifactregistry": parse_artifact_registry,
    "ecr": parse_ecr,
    "artifactory": parse_artifactory,
}
