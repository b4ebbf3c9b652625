"""Cosign signature checks: is ``repository@digest`` signed by one of these keys?

Cosign (sigstore/cosign ``specs/SIGNATURE_SPEC.md``) stores a signature as an OCI
manifest whose layers are *simple signing* payloads
(``application/vnd.dev.cosign.simplesigning.v1+json``): JSON naming the signed digest in
``critical.image.docker-manifest-digest``, with the base64 ECDSA signature of the payload
bytes in the layer annotation ``dev.cosignproject.cosign/signature``. The manifest is
found under the tag ``sha256-<hex>.sig`` or, on registries with the OCI 1.1 referrers
API, as a referrer of artifact type ``application/vnd.dev.cosign.artifact.sig.v1+json``.

Key-based verification (PEM public keys, ECDSA P-256 / SHA-256); keyless signatures
(Fulcio certificates, Rekor entries) are read by ``feeds/keyless.py``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler.errors import FeedNotFound
from reconciler.feeds.gate import Verdict
from reconciler.feeds.oci.client import RegistryClient

__all__ = ["SIGNATURE_ARTIFACT", "SIMPLE_SIGNING", "Verdict", "load_public_key", "verify_image"]

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGNATURE_TYPE = "cosign container image signature"


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """A cosign public key (``cosign.pub``); ValueError if it is not ECDSA."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an ECDSA public key")
    return key


def signature_tag(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}-{hex_part}.sig"


def _signature_manifests(
    client: RegistryClient, repository: str, digest: str
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for entry in client.referrers(repository, digest, SIGNATURE_ARTIFACT) or ():
        found.append(client.manifest(repository, str(entry.get("digest")))[1])
    with contextlib.suppress(FeedNotFound):  # no .sig tag: maybe only referrers
        found.append(client.manifest(repository, signature_tag(digest))[1])
    return found


def _layer_verdict(
    client: RegistryClient,
    repository: str,
    digest: str,
    layer: dict[str, Any],
    keys: Iterable[ec.EllipticCurvePublicKey],
) -> Verdict:
    try:
        signature = base64.b64decode(layer.get("annotations", {})[SIGNATURE_ANNOTATION])
    except (KeyError, TypeError, binascii.Error):
        return Verdict.refused(
            "invalid", "a signature layer without a readable signature annotation"
        )
    payload = client.blob(repository, str(layer.get("digest")))
    if not any(_verifies(key, signature, payload) for key in keys):
        return Verdict.refused(
            "no-matching-key", "a signature does not verify with any configured key"
        )
    try:
        critical = json.loads(payload)["critical"]
        signed, kind = critical["image"]["docker-manifest-digest"], critical["type"]
    except (ValueError, KeyError, TypeError):
        return Verdict.refused("invalid", "a signed payload is not simple signing JSON")
    if kind != SIGNATURE_TYPE or signed != digest:
        return Verdict.refused(
            "digest-mismatch", f"a valid signature is for {signed}, not this digest"
        )
    return Verdict(True, "signed by a configured key")


def _verifies(key: ec.EllipticCurvePublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def verify_image(
    client: RegistryClient,
    repository: str,
    digest: str,
    keys: list[ec.EllipticCurvePublicKey],
) -> Verdict:
    """The verdict for ``repository@digest``: verified by the first signature layer that
    verifies with one of ``keys`` and names this digest; else the last reason found.
    Registry failures other than a missing signature raise FeedError."""
    verdict = Verdict.refused(
        "unsigned", f"unsigned: no {signature_tag(digest)} tag and no referrers"
    )
    try:
        manifests = _signature_manifests(client, repository, digest)
    except FeedNotFound:
        return verdict
    for manifest in manifests:
        for layer in manifest.get("layers") or ():
            if isinstance(layer, dict) and layer.get("mediaType") == SIMPLE_SIGNING:
                verdict = _layer_verdict(client, repository, digest, layer, keys)
                if verdict.verified:
                    return verdict
    return verdict
