"""OCI registries (the distribution API, read side): ``client`` speaks the API,
``challenge`` answers the registry's authentication challenges, ``transport`` sends
the requests within the feed's limits."""

from __future__ import annotations

from reconciler.feeds.oci.challenge import Challenge, parse_challenge
from reconciler.feeds.oci.client import (
    DEFAULT_PLATFORM,
    DIGEST_PATTERN,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    parse_platform,
)
from reconciler.feeds.oci.transport import next_link

__all__ = [
    "DEFAULT_PLATFORM",
    "DIGEST_PATTERN",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "IMAGE_MANIFEST_TYPES",
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Challenge",
    "RegistryClient",
    "next_link",
    "parse_challenge",
    "parse_platform",
]
