"""The keyless identity policy (feeds/keyless.py ``Signer``) on certificates the tests
make, and the name kept keyless verdicts are filed under."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from reconciler.feeds.keyless import Signer, certificate_signer
from reconciler.model import KeylessPolicy
from reconciler.reconcile.signatures import keyless_key_set
from reconciler.userregex import compile_user_regex
from tests.helpers.sigstore_material import ISSUER_OID, Authority

AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
WORKFLOW = "https://github.com/acme/api/.github/workflows/release.yml@refs/heads/main"
GITHUB = "https://token.actions.githubusercontent.com"


def _certificate(identity: str, issuer: str) -> x509.Certificate:
    return Authority().signing_certificate(
        ec.generate_private_key(ec.SECP256R1()), identity, issuer, AT
    )


def test_issuer_and_identity_are_read_from_the_certificate() -> None:
    assert certificate_signer(_certificate(WORKFLOW, GITHUB)) == (GITHUB, [WORKFLOW])
    assert certificate_signer(_certificate("me@example.com", GITHUB))[1] == ["me@example.com"]


def test_the_legacy_issuer_extension_alone_is_read() -> None:
    """Fulcio certificates before the DER-encoded issuer (.8) carry only .1, raw."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(AT)
        .not_valid_after(AT + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("a@b.c")]), critical=True)
        .add_extension(x509.UnrecognizedExtension(ISSUER_OID, GITHUB.encode()), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier("1.2.3.4"), b"\x0c\x01x"), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    assert certificate_signer(cert) == (GITHUB, ["a@b.c"])


def test_exact_identity_pattern_and_issuer() -> None:
    cert = _certificate(WORKFLOW, GITHUB)
    assert Signer(GITHUB, WORKFLOW).problem(cert) is None
    assert Signer(GITHUB, WORKFLOW + "x").problem(cert) == (
        f"signed by {WORKFLOW}, not {WORKFLOW}x from {GITHUB}"
    )
    assert Signer("https://accounts.google.com", WORKFLOW).problem(cert) == (
        f"signed by {WORKFLOW} from issuer {GITHUB}, not https://accounts.google.com"
    )
    tags = compile_user_regex(r"^https://github\.com/acme/api/.+@refs/tags/v")
    assert Signer(GITHUB, identity_regexp=tags).problem(cert) is not None
    branch = compile_user_regex(r"^https://github\.com/acme/api/.+@refs/heads/main$")
    assert Signer(GITHUB, identity_regexp=branch).problem(cert) is None
    unanchored = compile_user_regex("acme/api")  # found anywhere, as cosign's regexp
    assert Signer(GITHUB, identity_regexp=unanchored).problem(cert) is None


def test_kept_verdicts_are_filed_per_identity_policy_and_trusted_root() -> None:
    """A digest verified for one signer is judged again when the policy names another
    (or the trusted root changes): a kept verdict says nothing about them."""
    base = KeylessPolicy(issuer=GITHUB, trusted_root="/r.json", identity=WORKFLOW)
    names = {
        keyless_key_set(base, "root1"),
        keyless_key_set(base, "root2"),
        keyless_key_set(KeylessPolicy(GITHUB, "/r.json", identity="other"), "root1"),
        keyless_key_set(KeylessPolicy("https://x", "/r.json", identity=WORKFLOW), "root1"),
        keyless_key_set(KeylessPolicy(GITHUB, "/r.json", identity_regexp=WORKFLOW), "root1"),
    }
    assert len(names) == 5
    assert keyless_key_set(base, "root1") == keyless_key_set(base, "root1")


def test_a_registry_listing_thousands_of_referrers_costs_a_bounded_number_of_reads() -> None:
    """A hostile registry's referrers list can be as long as it likes; only the first
    MAX_BUNDLES entries are fetched (a real registry would need thousands of pushes)."""
    from reconciler.feeds import keyless

    manifests_read: list[str] = []

    class ListsThousands:
        def referrers(
            self, repository: str, digest: str, artifact_type: str
        ) -> list[dict[str, str]]:
            return [
                {"digest": f"sha256:{n:064x}", "artifactType": artifact_type} for n in range(5000)
            ]

        def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, object]]:
            manifests_read.append(reference)
            return reference, {"layers": []}

    found = keyless._bundle_documents(ListsThousands(), "app", "sha256:" + "a" * 64)  # type: ignore[arg-type]
    assert found == []
    assert len(manifests_read) == keyless.MAX_BUNDLES


def test_a_granted_key_file_larger_than_a_secret_is_refused_unread(tmp_path: Path) -> None:
    """Key files, keyrings and trusted roots are read through feeds.secretfiles.read_small_file:
    a huge file in a granted directory is a feed error, not a whole read into memory."""
    import pytest

    from reconciler.errors import FeedError
    from reconciler.feeds.secretfiles import MAX_SECRET_FILE_BYTES
    from reconciler.grants import CREDENTIALS_DIR_VAR
    from reconciler.model import Package
    from reconciler.reconcile.signatures import granted_bytes

    small, huge = tmp_path / "cosign.pub", tmp_path / "huge.pub"
    small.write_bytes(b"key")
    huge.write_bytes(b"k" * (MAX_SECRET_FILE_BYTES + 1))
    pkg = Package("app", "registry", image="app")
    env = {CREDENTIALS_DIR_VAR: str(tmp_path)}
    assert granted_bytes(pkg, (str(small),), "r.test", env, "cosign key")[0] == [b"key"]
    with pytest.raises(FeedError, match="larger than"):
        granted_bytes(pkg, (str(huge),), "r.test", env, "cosign key")
