"""Sigstore keyless material made by the tests, so verification needs no network.

A test "Fulcio" root CA issues short-lived signing certificates carrying the OIDC
issuer extensions (OIDs 1.3.6.1.4.1.57264.1.1 and .8, fulcio ``docs/oid-info.md``), the
signer's identity as a SAN, and an embedded SCT (RFC 6962 §3.3: a precertificate
timestamp signed by a test CT log key over the TBS certificate without its SCT list). A
test "Rekor" key signs the log entry's inclusion promise (the SET over the RFC 8785
canonical ``{body, integratedTime, logID, logIndex}``) and a checkpoint (a signed note,
transparency-dev ``formats/log``) for a one-leaf tree, whose root hash is the RFC 6962
leaf hash of the entry body, so the inclusion proof has no hashes. ``trusted_root``
names the three keys in sigstore's ``trusted_root.json`` format
(protobuf-specs ``TrustedRoot``); ``dsse_bundle`` writes a Sigstore bundle v0.3 whose
DSSE envelope carries an in-toto statement about an image digest, with a Rekor v1
``dsse`` 0.0.1 entry (rekor ``pkg/types/dsse``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
IN_TOTO = "application/vnd.in-toto+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"

_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_octets(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_length(len(raw)) + raw


def _key_usage(*, certifies: bool) -> x509.KeyUsage:
    """A CA's key usage (certificates and CRLs) or a signer's (digital signatures)."""
    return x509.KeyUsage(
        digital_signature=not certifies,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certifies,
        crl_sign=certifies,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class Authority:
    """A test Fulcio CA, CT log and Rekor log (their private keys)."""

    name: str = "test"
    ca_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ct_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    rekor_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ca_cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reconciler tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} fulcio"),
            ]
        )
        public = self.ca_key.public_key()
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_EPOCH)
            .not_valid_after(_EPOCH + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_key_usage(certifies=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )

    def trusted_root(self) -> dict[str, Any]:
        """This authority as sigstore's ``trusted_root.json``."""

        def log(base_url: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
            spki = _spki(key)
            return {
                "baseUrl": base_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2025-01-01T00:00:00Z"},
                },
                "logId": {"keyId": _b64(hashlib.sha256(spki).digest())},
            }

        ca_der = self.ca_cert.public_bytes(serialization.Encoding.DER)
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(f"https://rekor.{self.name}.invalid", self.rekor_key)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "reconciler tests", "commonName": self.name},
                    "uri": f"https://fulcio.{self.name}.invalid",
                    "certChain": {"certificates": [{"rawBytes": _b64(ca_der)}]},
                    "validFor": {"start": "2025-01-01T00:00:00Z"},
                }
            ],
            "ctlogs": [log(f"https://ctfe.{self.name}.invalid", self.ct_key)],
            "timestampAuthorities": [],
        }

    def signing_certificate(
        self,
        key: ec.EllipticCurvePrivateKey,
        identity: str,
        issuer: str,
        at: dt.datetime,
    ) -> x509.Certificate:
        """A Fulcio-like certificate for ``key``: ``identity`` as an email or URI SAN,
        ``issuer`` in both issuer extensions, valid ten minutes, with an embedded SCT."""
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(identity)
            if "://" in identity
            else x509.RFC822Name(identity)
        )
        serial = x509.random_serial_number()

        def build(sct_list: bytes) -> x509.Certificate:
            public = key.public_key()
            return (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.ca_cert.subject)
                .public_key(public)
                .serial_number(serial)
                .not_valid_before(at - dt.timedelta(seconds=30))
                .not_valid_after(at + dt.timedelta(minutes=10))
                .add_extension(_key_usage(certifies=False), critical=True)
                .add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                    critical=False,
                )
                .add_extension(x509.SubjectAlternativeName([san]), critical=True)
                .add_extension(
                    x509.UnrecognizedExtension(ISSUER_OID, issuer.encode()), critical=False
                )
                .add_extension(
                    x509.UnrecognizedExtension(ISSUER_V2_OID, _der_utf8(issuer)),
                    critical=False,
                )
                .add_extension(
                    x509.UnrecognizedExtension(SCT_LIST_OID, _der_octets(sct_list)),
                    critical=False,
                )
                .sign(self.ca_key, hashes.SHA256())
            )

        # The SCT signs the TBS certificate without the SCT list, which the placeholder
        # shares with the final certificate (same serial, validity and extension order).
        placeholder = build(self._sct(b"", 0))
        tbs = placeholder.tbs_precertificate_bytes
        millis = int(at.timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(_spki(self.ca_key)).digest()
        signed = (
            struct.pack("!BBQH", 0, 0, millis, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + b"\x00\x00"  # no CT extensions
        )
        return build(self._sct(_sign(self.ct_key, signed), millis))

    def _sct(self, signature: bytes, millis: int) -> bytes:
        """A TLS-encoded SignedCertificateTimestampList holding one SCT."""
        log_id = hashlib.sha256(_spki(self.ct_key)).digest()
        sct = (
            b"\x00"
            + log_id
            + struct.pack("!Q", millis)
            + b"\x00\x00"
            + b"\x04\x03"  # sha256, ecdsa
            + struct.pack("!H", len(signature))
            + signature
        )
        item = struct.pack("!H", len(sct)) + sct
        return struct.pack("!H", len(item)) + item

    def log_entry(self, kind: str, body: dict[str, Any], integrated: int) -> dict[str, Any]:
        """A Rekor v1 entry for ``body`` as the only leaf of the log: inclusion promise
        (SET), inclusion proof and signed checkpoint."""
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        log_id = hashlib.sha256(_spki(self.rekor_key)).digest()
        promise = json.dumps(
            {
                "body": _b64(canonical),
                "integratedTime": integrated,
                "logID": log_id.hex(),
                "logIndex": 0,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        root = hashlib.sha256(b"\x00" + canonical).digest()
        note = f"rekor.{self.name}.invalid - 1\n1\n{_b64(root)}\n"
        note_signature = _b64(log_id[:4] + _sign(self.rekor_key, note.encode()))
        checkpoint = f"{note}\n\u2014 rekor.{self.name}.invalid {note_signature}\n"
        return {
            "logIndex": "0",
            "logId": {"keyId": _b64(log_id)},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.rekor_key, promise))},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": _b64(root),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(canonical),
        }


def statement(digest: str, name: str = "registry.invalid/app") -> bytes:
    """An in-toto statement about the image ``digest`` (cosign's sign predicate)."""
    algorithm, _, hex_part = digest.partition(":")
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {algorithm: hex_part}}],
            "predicateType": COSIGN_SIGN_PREDICATE,
            "predicate": {},
        },
        separators=(",", ":"),
    ).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding (secure-systems-lab/dsse ``protocol.md``)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def dsse_bundle(
    authority: Authority,
    payload: bytes,
    *,
    identity: str = "release@example.com",
    issuer: str = "https://issuer.example.com",
    at: dt.datetime | None = None,
    log_delay: dt.timedelta = dt.timedelta(0),
    tamper: bool = False,
) -> bytes:
    """A Sigstore bundle v0.3 whose DSSE envelope signs ``payload`` (an in-toto
    statement) by a fresh key certified for ``identity`` by ``issuer``, logged
    ``log_delay`` after the certificate was issued. ``tamper`` changes the payload after
    signing and logging it."""
    when = at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = authority.signing_certificate(key, identity, issuer, when)
    signature = _sign(key, pae(IN_TOTO, payload))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    body = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": "0" * 64},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [{"signature": _b64(signature), "verifier": _b64(cert_pem)}],
        },
    }
    entry = authority.log_entry("dsse", body, int((when + log_delay).timestamp()))
    if tamper:
        payload = payload.replace(b"}", b" }", 1)
    bundle = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [entry],
        },
        "dsseEnvelope": {
            "payload": _b64(payload),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": _b64(signature)}],
        },
    }
    return json.dumps(bundle).encode()
