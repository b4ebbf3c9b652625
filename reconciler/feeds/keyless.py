"""Keyless cosign signatures: is ``repository@digest`` signed by this OIDC identity?

cosign 3 signs an image keylessly as a Sigstore bundle
(``application/vnd.dev.sigstore.bundle.v0.3+json``) pushed as an OCI 1.1 referrer of
the image: a DSSE envelope holding an in-toto statement whose subject is the image
digest and whose predicate type is ``https://sigstore.dev/cosign/sign/v1``, the
short-lived Fulcio certificate of the signer, and the Rekor entry that logged it. On a
registry without the referrers API the referrers are listed in an OCI index under the
tag ``sha256-<hex>`` (the distribution spec's referrers tag schema), which is read
instead.

sigstore-python (the ``keyless`` extra, imported only here and only when a keyless
package is judged) verifies a bundle offline against the operator's trusted root
(``trusted_root.json``): the certificate chains to its Fulcio CA at the log's
integrated time, the certificate's SCT is signed by its CT log, the Rekor entry's
inclusion proof, checkpoint and inclusion promise are signed by its Rekor key, and the
envelope's signature is the certificate's. The identity policy (issuer, identity) is
checked here, so a refusal says who signed instead.

Not read: cosign 2's keyless layer annotations (``dev.sigstore.cosign/certificate``,
``…/chain``, ``…/bundle``). Their Rekor bundle holds only the inclusion promise (SET),
and sigstore-python requires an inclusion proof with a signed checkpoint for every
entry (``TransparencyLogEntry._validate``), which those annotations cannot supply.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.errors import FeedNotFound
from reconciler.feeds.gate import Verdict
from reconciler.userregex import UserRegex

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from reconciler.feeds.oci.client import RegistryClient

__all__ = [
    "BUNDLE_ARTIFACT",
    "KEYLESS_NOT_INSTALLED",
    "SIGN_PREDICATE",
    "Signer",
    "load_verifier",
    "verify_image_keyless",
]

BUNDLE_ARTIFACT = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
KEYLESS_NOT_INSTALLED = (
    "keyless signatures are verified by sigstore-python, which is not installed: "
    "install the 'keyless' extra (pip install 'gitops-release-reconciler[keyless]')"
)

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
COSIGN2_UNREAD = (
    "a cosign 2 keyless signature (.sig tag) is there but not read: its Rekor bundle has "
    "no inclusion proof; sign with cosign 3 (a Sigstore bundle)"
)

_ISSUER_OID = "1.3.6.1.4.1.57264.1.1"  # raw string (fulcio docs/oid-info.md)
_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"  # DER UTF8String
_OTHERNAME_OID = "1.3.6.1.4.1.57264.1.7"  # a username SAN


@dataclass(frozen=True)
class Signer:
    """Who must have signed: the certificate's OIDC issuer, exactly, and its identity
    (a SAN: email, URI or Sigstore username), exactly or found by an RE2 pattern (as
    cosign's ``--certificate-identity-regexp``, unanchored)."""

    issuer: str
    identity: str | None = None
    identity_regexp: UserRegex | None = None

    def describe(self) -> str:
        wanted = self.identity or f"an identity matching {self.identity_regexp!r}"
        return f"{wanted} from {self.issuer}"

    def problem(self, cert: Certificate) -> str | None:
        """Why ``cert`` is not this signer's; None when it is."""
        issuer, identities = certificate_signer(cert)
        if issuer != self.issuer:
            return (
                f"signed by {', '.join(identities) or '?'} from issuer {issuer}, not {self.issuer}"
            )
        if self.identity is not None and self.identity in identities:
            return None
        if self.identity_regexp is not None and any(map(self.identity_regexp.search, identities)):
            return None
        return f"signed by {', '.join(identities) or 'no identity'}, not {self.describe()}"


def certificate_signer(cert: Certificate) -> tuple[str | None, list[str]]:
    """A Fulcio certificate's OIDC issuer and identities (its SANs)."""
    from cryptography import x509

    values = {ext.oid.dotted_string: ext.value for ext in cert.extensions}
    issuer: str | None = None
    if isinstance(v2 := values.get(_ISSUER_V2_OID), x509.UnrecognizedExtension):
        issuer = _der_utf8(v2.value)
    elif isinstance(v1 := values.get(_ISSUER_OID), x509.UnrecognizedExtension):
        issuer = v1.value.decode(errors="replace")
    identities: list[str] = []
    san = values.get("2.5.29.17")
    if isinstance(san, x509.SubjectAlternativeName):
        identities += san.get_values_for_type(x509.RFC822Name)
        identities += san.get_values_for_type(x509.UniformResourceIdentifier)
        identities += [
            name.value.decode(errors="replace")
            for name in san.get_values_for_type(x509.OtherName)
            if name.type_id.dotted_string == _OTHERNAME_OID
        ]
    return issuer, identities


def _der_utf8(der: bytes) -> str | None:
    """The text of a DER UTF8String (tag 12); None if ``der`` is not one."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    length, start = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    body = der[start : start + length]
    return body.decode(errors="replace") if len(body) == length else None


def load_verifier(trusted_root: bytes) -> Any:
    """A sigstore-python ``Verifier`` for this ``trusted_root.json``. ImportError
    without the extra; ValueError (sigstore's errors) for a root it cannot use."""
    from sigstore.errors import Error
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootMessage

    try:
        root = TrustedRoot(TrustedRootMessage.from_json(trusted_root))
        return Verifier(trusted_root=root)
    except (Error, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"not a usable trusted_root.json: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


MAX_BUNDLES = 32
"""Bundles read per digest at most: a registry (or whoever can push referrers) that
lists thousands would otherwise cost two requests each, for every candidate tag."""


def _bundle_documents(client: RegistryClient, repository: str, digest: str) -> list[bytes]:
    """The Sigstore bundles that refer to ``digest`` (referrers API, else the
    referrers tag ``sha256-<hex>``), the first ``MAX_BUNDLES`` of them."""
    entries = client.referrers(repository, digest, BUNDLE_ARTIFACT)
    if entries is None:
        algorithm, _, hex_part = digest.partition(":")
        with contextlib.suppress(FeedNotFound):
            index = client.manifest(repository, f"{algorithm}-{hex_part}")[1]
            entries = [
                e
                for e in index.get("manifests") or ()
                if isinstance(e, dict) and e.get("artifactType") == BUNDLE_ARTIFACT
            ]
    found: list[bytes] = []
    for entry in list(entries or ())[:MAX_BUNDLES]:
        manifest = client.manifest(repository, str(entry.get("digest")))[1]
        for layer in manifest.get("layers") or ():
            if isinstance(layer, dict) and layer.get("mediaType") == BUNDLE_ARTIFACT:
                found.append(client.blob(repository, str(layer.get("digest"))))
    return found


def _has_cosign2_keyless(client: RegistryClient, repository: str, digest: str) -> bool:
    """Whether ``digest`` has a cosign 2 keyless signature: a ``.sig`` tag whose layer
    carries a certificate annotation (read only to say why it is not used)."""
    algorithm, _, hex_part = digest.partition(":")
    try:
        manifest = client.manifest(repository, f"{algorithm}-{hex_part}.sig")[1]
    except FeedNotFound:
        return False
    return any(
        isinstance(layer, dict) and CERTIFICATE_ANNOTATION in (layer.get("annotations") or {})
        for layer in manifest.get("layers") or ()
    )


def _statement(document: bytes) -> dict[str, Any] | None:
    """The in-toto statement a bundle's DSSE envelope carries (unverified); None for a
    bundle without one (a ``cosign sign-blob`` message signature)."""
    try:
        envelope = json.loads(document)["dsseEnvelope"]
        if envelope.get("payloadType") != IN_TOTO:
            return None
        statement = json.loads(base64.b64decode(envelope["payload"]))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        return None
    return statement if isinstance(statement, dict) else None


def _subjects(statement: dict[str, Any]) -> set[str]:
    return {
        f"{algorithm}:{value}"
        for subject in statement.get("subject") or ()
        if isinstance(subject, dict)
        for algorithm, value in (subject.get("digest") or {}).items()
    }


def _bundle_verdict(verifier: Any, document: bytes, digest: str, signer: Signer) -> Verdict:
    from sigstore.errors import Error
    from sigstore.models import Bundle

    try:
        bundle = Bundle.from_json(document)
    except (Error, ValueError) as exc:
        return Verdict.refused(
            "invalid", f"a Sigstore bundle that cannot be read: {_first_line(exc)}"
        )
    mismatch: list[str] = []

    class Policy:  # sigstore's VerificationPolicy: checked after the chain and the SCT
        def verify(self, cert: Certificate) -> None:
            problem = signer.problem(cert)
            if problem is not None:
                mismatch.append(problem)
                raise Error(problem)

    try:
        payload_type, payload = verifier.verify_dsse(bundle, Policy())
    except Error as exc:
        if mismatch:
            return Verdict.refused("no-matching-key", mismatch[0])
        return Verdict.refused(
            "invalid", f"a keyless signature does not verify: {_first_line(exc)}"
        )
    try:
        statement = json.loads(payload) if payload_type == IN_TOTO else None
    except ValueError:
        statement = None
    if not isinstance(statement, dict):
        return Verdict.refused("invalid", "a verified bundle without an in-toto statement")
    if statement.get("predicateType") != SIGN_PREDICATE:
        # Judged on the verified payload: the unverified look in verify_image_keyless
        # reads the JSON differently from sigstore (e.g. ``payload_type`` spelled so).
        return Verdict.refused(
            "invalid",
            f"a verified attestation ({statement.get('predicateType')!r}), not a signature",
        )
    if digest not in _subjects(statement):
        subjects = ", ".join(sorted(_subjects(statement))) or "nothing"
        return Verdict.refused("digest-mismatch", f"a valid keyless signature is for {subjects}")
    return Verdict(True, f"signed by {signer.describe()}")


def verify_image_keyless(
    client: RegistryClient, repository: str, digest: str, verifier: Any, signer: Signer
) -> Verdict:
    """The verdict for ``repository@digest``: verified by the first cosign signature
    bundle that sigstore-python verifies, made by ``signer``, about this digest; else
    the last reason found. Registry failures other than none found raise FeedError."""
    verdict = Verdict.refused(
        "unsigned", f"unsigned: no Sigstore bundle refers to {digest} (keyless)"
    )
    try:
        documents = _bundle_documents(client, repository, digest)
    except FeedNotFound:
        documents = []
    if not documents:
        if _has_cosign2_keyless(client, repository, digest):
            return Verdict.refused("unsigned", f"{verdict.reason}; {COSIGN2_UNREAD}")
        return verdict
    for document in documents:
        statement = _statement(document)
        if statement is not None and statement.get("predicateType") != SIGN_PREDICATE:
            continue  # an attestation (SBOM, provenance), not a signature
        verdict = _bundle_verdict(verifier, document, digest, signer)
        if verdict.verified:
            return verdict
    return verdict
