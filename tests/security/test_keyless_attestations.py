"""A keyless gate accepts cosign *signatures* only: an attestation (SBOM, provenance)
by the same identity about the same digest is not one, however its bundle spells the
envelope's keys (sigstore's reader accepts ``payload_type`` as well as ``payloadType``;
the pre-verification look that skips attestations reads only the latter)."""

from __future__ import annotations

import json

import pytest

from reconciler.feeds.keyless import Signer, load_verifier, verify_image_keyless
from reconciler.feeds.oci import RegistryClient
from tests.helpers.registry import RegistryServer, unique_repo
from tests.helpers.sigstore_material import Authority, dsse_bundle
from tests.integration.test_keyless import IDENTITY, ISSUER, push_bundle

pytest.importorskip("sigstore")


def _sbom_statement(digest: str) -> bytes:
    algorithm, _, hex_part = digest.partition(":")
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "registry.invalid/app", "digest": {algorithm: hex_part}}],
            "predicateType": "https://spdx.dev/Document",
            "predicate": {},
        }
    ).encode()


@pytest.mark.parametrize("spelling", ["payloadType", "payload_type"])
def test_a_verified_attestation_is_not_taken_for_a_signature(
    registry: RegistryServer, spelling: str
) -> None:
    authority = Authority()
    repo = unique_repo("keyless-attest")
    digest = registry.push(repo, "1.0.0")
    bundle = json.loads(dsse_bundle(authority, _sbom_statement(digest)))
    envelope = bundle["dsseEnvelope"]
    envelope[spelling] = envelope.pop("payloadType")
    push_bundle(registry, repo, digest, json.dumps(bundle).encode())
    verifier = load_verifier(json.dumps(authority.trusted_root()).encode())
    with RegistryClient(registry.feed()) as client:
        found = verify_image_keyless(client, repo, digest, verifier, Signer(ISSUER, IDENTITY))
    assert not found.verified, found.reason
