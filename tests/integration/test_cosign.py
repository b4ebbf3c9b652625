"""Cosign signatures, made by the tests in cosign's own format (sigstore/cosign
``specs/SIGNATURE_SPEC.md``: a simple-signing payload layer with the base64 ECDSA P-256
signature in its ``dev.cosignproject.cosign/signature`` annotation, under the tag
``sha256-<hex>.sig``), pushed to the real registry and verified by ``feeds.cosign``.
The OCI 1.1 referrers path uses httpx's MockTransport: distribution 2.8 has no
referrers API.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler import model
from reconciler.feeds.cosign import (
    SIGNATURE_ARTIFACT,
    SIMPLE_SIGNING,
    load_public_key,
    signature_tag,
    verify_image,
)
from reconciler.feeds.oci import OCI_MANIFEST, RegistryClient
from tests.helpers.oci import _put_manifest, _upload_blob
from tests.helpers.registry import RegistryServer, unique_repo


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def simple_signing(reference: str, digest: str) -> bytes:
    document = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def signature_manifest(payload: bytes, key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    """(config blob, manifest) of a cosign signature over ``payload``."""
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    config = json.dumps(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [_sha(payload)]},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": _sha(config),
        },
        "layers": [
            {
                "mediaType": SIMPLE_SIGNING,
                "size": len(payload),
                "digest": _sha(payload),
                "annotations": {"dev.cosignproject.cosign/signature": signature},
            }
        ],
    }
    return config, json.dumps(manifest).encode()


def sign(
    registry: RegistryServer,
    repo: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    claims: str,
) -> None:
    """Push a cosign signature of ``claims`` (a digest) under ``digest``'s .sig tag."""
    payload = simple_signing(f"{registry.host}/{repo}", claims)
    config, manifest = signature_manifest(payload, key)
    for blob in (payload, config):
        _upload_blob(registry.client, registry.url, repo, blob, _sha(blob))
    _put_manifest(
        registry.client, registry.url, repo, signature_tag(digest), manifest, OCI_MANIFEST
    )


def public(key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePublicKey:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return load_public_key(pem)


def test_signed_unsigned_wrong_key_and_wrong_digest(registry: RegistryServer) -> None:
    trusted, other = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    repo = unique_repo("cosign")
    signed = registry.push(repo, "1.0.0")
    unsigned = registry.push(repo, "1.1.0")
    by_other = registry.push(repo, "1.2.0")
    replayed = registry.push(repo, "1.3.0")
    sign(registry, repo, signed, trusted, claims=signed)
    sign(registry, repo, by_other, other, claims=by_other)
    sign(registry, repo, replayed, trusted, claims=signed)  # a valid signature of another image
    keys = [public(trusted)]
    with RegistryClient(registry.feed()) as client:
        assert verify_image(client, repo, signed, keys).verified
        verdict = verify_image(client, repo, unsigned, keys)
        assert not verdict.verified and verdict.reason.startswith("unsigned: no sha256-")
        verdict = verify_image(client, repo, by_other, keys)
        assert not verdict.verified and "does not verify with any configured key" in verdict.reason
        verdict = verify_image(client, repo, replayed, keys)
        assert not verdict.verified and f"is for {signed}" in verdict.reason
        # either of two keys will do
        assert verify_image(client, repo, by_other, [public(trusted), public(other)]).verified


def test_signature_found_through_oci_referrers() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    digest = "sha256:" + "a" * 64
    payload = simple_signing("registry.test/app", digest)
    config, manifest = signature_manifest(payload, key)
    blobs = {_sha(payload): payload, _sha(config): config, _sha(manifest): manifest}
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        seen.append(path)
        if path == f"/v2/app/referrers/{digest}":
            assert request.url.params["artifactType"] == SIGNATURE_ARTIFACT
            index: dict[str, Any] = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "artifactType": SIGNATURE_ARTIFACT,
                        "digest": _sha(manifest),
                        "size": len(manifest),
                    }
                ],
            }
            return httpx.Response(
                200, json=index, headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}
            )
        for blob_digest, data in blobs.items():
            if path.endswith(blob_digest):
                kind = OCI_MANIFEST if data is manifest else "application/octet-stream"
                return httpx.Response(200, content=data, headers={"Content-Type": kind})
        return httpx.Response(404)

    feed = model.Feed("reg", "oci", "https://registry.test")
    with RegistryClient(feed, transport=httpx.MockTransport(handler)) as client:
        verdict = verify_image(client, "app", digest, [public(key)])
    assert verdict.verified, verdict.reason
    assert seen[0] == f"/v2/app/referrers/{digest}"
