"""Keyless cosign signatures (``verify.cosign.keyless``), verified offline by
sigstore-python against a trusted root the tests make (tests/helpers/sigstore_material.py:
a test Fulcio CA, CT log and Rekor log), pushed to the real registry as cosign 3 pushes
them: a Sigstore bundle layer in a manifest whose ``subject`` is the image and whose
``artifactType`` is the bundle's media type, listed (distribution 2.8 has no referrers
API) in an OCI index under the referrers tag ``sha256-<hex>``, as the OCI distribution
spec's referrers tag schema says.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler.feeds.cosign import SIMPLE_SIGNING
from reconciler.feeds.keyless import (
    BUNDLE_ARTIFACT,
    CERTIFICATE_ANNOTATION,
    COSIGN2_UNREAD,
    Signer,
    load_verifier,
    verify_image_keyless,
)
from reconciler.feeds.oci import OCI_MANIFEST, RegistryClient
from reconciler.grants import CREDENTIALS_DIR_VAR
from reconciler.userregex import compile_user_regex
from tests.helpers.configrepo import (
    DEV_ONLY,
    AppSpec,
    config_files,
    result_json,
    run_cli,
    write_files,
)
from tests.helpers.oci import _put_manifest, _upload_blob
from tests.helpers.refusals import HOOK_URL, NOTIFY_SETTINGS, Watched, refusals
from tests.helpers.registry import RegistryServer, unique_repo
from tests.helpers.sigstore_material import COSIGN_SIGN_PREDICATE, Authority, dsse_bundle, statement

pytest.importorskip("sigstore")

PROJECT = "shop"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
ISSUER = "https://issuer.example.com"
IDENTITY = "release@example.com"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_bundle(registry: RegistryServer, repo: str, digest: str, bundle: bytes) -> None:
    """Attach ``bundle`` to ``repo@digest`` as cosign 3 does, with the referrers tag
    schema's index (kept up to date: earlier referrers stay listed)."""
    config = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_ARTIFACT,
            "config": {"mediaType": EMPTY, "size": len(config), "digest": _sha(config)},
            "layers": [{"mediaType": BUNDLE_ARTIFACT, "size": len(bundle), "digest": _sha(bundle)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": 0},
            "annotations": {
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE,
            },
        }
    ).encode()
    for blob in (config, bundle):
        _upload_blob(registry.client, registry.url, repo, blob, _sha(blob))
    _put_manifest(registry.client, registry.url, repo, _sha(manifest), manifest, OCI_MANIFEST)
    tag = digest.replace(":", "-")
    found = registry.client.get(
        f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_INDEX}
    )
    listed = found.json()["manifests"] if found.status_code == 200 else []
    listed.append(
        {
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_ARTIFACT,
            "digest": _sha(manifest),
            "size": len(manifest),
        }
    )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed})
    _put_manifest(registry.client, registry.url, repo, tag, index.encode(), OCI_INDEX)


def sign(
    registry: RegistryServer,
    repo: str,
    digest: str,
    authority: Authority,
    *,
    about: str | None = None,
    **options: Any,
) -> None:
    """A keyless signature of ``repo@digest`` (a statement about ``about``: another
    digest for a replayed signature)."""
    bundle = dsse_bundle(
        authority, statement(about or digest, f"{registry.host}/{repo}"), **options
    )
    push_bundle(registry, repo, digest, bundle)


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


def _verifier(authority: Authority) -> Any:
    return load_verifier(json.dumps(authority.trusted_root()).encode())


def test_keyless_verdicts_through_the_real_registry(
    registry: RegistryServer, authority: Authority
) -> None:
    repo = unique_repo("keyless")
    digests = {v: registry.push(repo, v) for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0")}
    digests["1.5.0"] = registry.push(repo, "1.5.0")
    digests["1.6.0"] = registry.push(repo, "1.6.0")
    sign(registry, repo, digests["1.0.0"], authority)
    sign(registry, repo, digests["1.2.0"], authority, identity="intruder@example.com")
    sign(registry, repo, digests["1.3.0"], authority, issuer="https://other-issuer.example.com")
    sign(registry, repo, digests["1.4.0"], Authority("stranger"))  # a CA not in the root
    sign(registry, repo, digests["1.5.0"], authority, tamper=True)
    sign(registry, repo, digests["1.6.0"], authority, about=digests["1.0.0"])  # replayed
    signer = Signer(ISSUER, IDENTITY)
    verifier = _verifier(authority)
    with RegistryClient(registry.feed()) as client:

        def verdict(version: str, who: Signer = signer) -> tuple[str | None, str]:
            found = verify_image_keyless(client, repo, digests[version], verifier, who)
            assert found.verified == (found.kind is None)
            return found.kind, found.reason

        assert verdict("1.0.0") == (None, f"signed by {IDENTITY} from {ISSUER}")
        kind, reason = verdict("1.1.0")
        assert (kind, reason.startswith("unsigned: no Sigstore bundle refers to")) == (
            "unsigned",
            True,
        )
        assert verdict("1.2.0") == (
            "no-matching-key",
            f"signed by intruder@example.com, not {IDENTITY} from {ISSUER}",
        )
        kind, reason = verdict("1.3.0")
        assert kind == "no-matching-key"
        assert "from issuer https://other-issuer.example.com, not https://issuer" in reason
        kind, reason = verdict("1.4.0")
        assert kind == "invalid" and "certificate chain" in reason, reason
        kind, reason = verdict("1.5.0")
        assert kind == "invalid" and "DSSE: invalid signature" in reason, reason
        kind, reason = verdict("1.6.0")
        assert (kind, reason) == (
            "digest-mismatch",
            f"a valid keyless signature is for {digests['1.0.0']}",
        )
        # an identity pattern (RE2, unanchored like cosign's) instead of the exact identity
        pattern = Signer(ISSUER, identity_regexp=compile_user_regex(r"^[a-z]+@example\.com$"))
        assert verdict("1.2.0", pattern)[0] is None
        narrow = Signer(ISSUER, identity_regexp=compile_user_regex(r"^release@"))
        assert verdict("1.2.0", narrow)[0] == "no-matching-key"


def test_a_signature_logged_outside_the_certificate_lifetime_is_refused(
    registry: RegistryServer, authority: Authority
) -> None:
    """A certificate is valid ten minutes; the log's integrated time is when the
    signature was made, so a bundle must have been logged in that window."""
    repo = unique_repo("keyless-late")
    digest = registry.push(repo, "1.0.0")
    late = dsse_bundle(authority, statement(digest), log_delay=dt.timedelta(hours=1))
    push_bundle(registry, repo, digest, late)
    with RegistryClient(registry.feed()) as client:
        found = verify_image_keyless(
            client, repo, digest, _verifier(authority), Signer(ISSUER, IDENTITY)
        )
    assert found.kind == "invalid", found.reason


def test_a_cosign_2_keyless_signature_is_named_as_unread(
    registry: RegistryServer, authority: Authority
) -> None:
    """cosign 2 kept a keyless signature in the ``.sig`` layer's annotations (certificate,
    chain, Rekor SET bundle); it is not verified, and the refusal says why."""
    repo = unique_repo("keyless-cosign2")
    digest = registry.push(repo, "1.0.0")
    plain = registry.push(repo, "1.1.0")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = authority.signing_certificate(key, IDENTITY, ISSUER, dt.datetime.now(dt.UTC))
    payload = json.dumps(
        {
            "critical": {
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            }
        }
    ).encode()
    config = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": EMPTY, "size": len(config), "digest": _sha(config)},
            "layers": [
                {
                    "mediaType": SIMPLE_SIGNING,
                    "size": len(payload),
                    "digest": _sha(payload),
                    "annotations": {
                        "dev.cosignproject.cosign/signature": base64.b64encode(
                            key.sign(payload, ec.ECDSA(hashes.SHA256()))
                        ).decode(),
                        CERTIFICATE_ANNOTATION: cert.public_bytes(
                            serialization.Encoding.PEM
                        ).decode(),
                        "dev.sigstore.cosign/bundle": '{"SignedEntryTimestamp": "", "Payload": {}}',
                    },
                }
            ],
        }
    ).encode()
    for blob in (config, payload):
        _upload_blob(registry.client, registry.url, repo, blob, _sha(blob))
    tag = digest.replace(":", "-") + ".sig"
    _put_manifest(registry.client, registry.url, repo, tag, manifest, OCI_MANIFEST)
    signer, verifier = Signer(ISSUER, IDENTITY), _verifier(authority)
    with RegistryClient(registry.feed()) as client:
        found = verify_image_keyless(client, repo, digest, verifier, signer)
        unsigned = verify_image_keyless(client, repo, plain, verifier, signer)
    assert found.kind == "unsigned"
    assert found.reason.endswith(COSIGN2_UNREAD)
    assert "cosign 2" in found.reason and "cosign 2" not in unsigned.reason


def test_an_unusable_trusted_root_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"not a usable trusted_root\.json"):
        load_verifier(b'{"mediaType": "application/json"}')


# ------------------------------------------------------------- the gate in a real pass


def _keyless_files(
    registry: RegistryServer, repo: str, keyless: str, settings: str = ""
) -> dict[str, str]:
    app = AppSpec("api", repo, "example.com/shop/api")
    files = config_files(registry.url, [app], lifecycle=DEV_ONLY, envs=("dev",))
    files["reconciler.yaml"] += settings
    project = f"projects/{PROJECT}/project.yaml"
    files[project] = files[project].replace(
        f"    manifestName: {app.manifest_name}\n",
        f"    manifestName: {app.manifest_name}\n    verify:\n      cosign:\n"
        f"        keyless:\n{keyless}",
    )
    return files


def _root_file(directory: Path, authority: Authority) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "trusted_root.json"
    path.write_text(json.dumps(authority.trusted_root()))
    return path


def _policy(root: Path, identity: str = f"identity: {IDENTITY}") -> str:
    return f"          issuer: {ISSUER}\n          {identity}\n          trustedRoot: {root}\n"


def test_release_takes_the_best_keyless_signed_version_and_explain_says_why(
    registry: RegistryServer, bare_remote: Any, tmp_path: Path, authority: Authority
) -> None:
    granted = tmp_path / "granted"
    root = _root_file(granted, authority)
    repo = unique_repo("keyless-gate")
    v100, v110 = registry.push(repo, "1.0.0"), registry.push(repo, "1.1.0")
    sign(registry, repo, v100, authority)
    sign(registry, repo, v110, authority, identity="intruder@example.com")
    remote = bare_remote(seed=_keyless_files(registry, repo, _policy(root)))
    env = {CREDENTIALS_DIR_VAR: str(granted)}
    work = ["--repo", remote.url, "--work-dir", str(tmp_path / "work")]

    first = run_cli("once", *work, "--json", env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert [r["packages"]["api"]["version"] for r in result_json(first)["releases"]] == ["1.0.0"]
    explain = run_cli("explain", PROJECT, *work, "-o", "json", env=env)
    assert explain.returncode == 0, explain.stderr
    api = json.loads(explain.stdout)["channels"][0]["packages"]["api"]
    reasons = {c["tag"]: c["reason"] for c in api["rejected"]}
    assert reasons["1.1.0"] == (
        f"cosign keyless: signed by intruder@example.com, not {IDENTITY} from {ISSUER}"
    )

    sign(registry, repo, v110, authority)  # now also signed by the release identity
    second = run_cli("once", *work, "--json", env=env)
    assert second.returncode == 0, second.stderr + second.stdout
    assert [r["packages"]["api"]["version"] for r in result_json(second)["releases"]] == ["1.1.0"]


def test_keyless_refusals_are_counted_and_notified(
    registry: RegistryServer,
    bare_remote: Any,
    tmp_path: Path,
    monkeypatch: Any,
    authority: Authority,
) -> None:
    from reconciler.metrics import Metrics

    granted = tmp_path / "granted"
    root = _root_file(granted, authority)
    repo = unique_repo("keyless-refused")
    v100, v120 = registry.push(repo, "1.0.0"), registry.push(repo, "1.2.0")
    registry.push(repo, "1.1.0")
    sign(registry, repo, v100, authority)
    sign(registry, repo, v120, Authority("stranger"))
    remote = bare_remote(seed=_keyless_files(registry, repo, _policy(root), NOTIFY_SETTINGS))
    monkeypatch.setenv(CREDENTIALS_DIR_VAR, str(granted))
    monkeypatch.setenv("HOOK_URL", HOOK_URL)
    watched = Watched(remote.url, tmp_path / "work")
    metrics = Metrics()
    sidecar = watched.start(metrics)
    try:
        result = sidecar.run_pass()
        sidecar.run_pass()
    finally:
        sidecar.close()
    assert [r.packages[0].version for r in result.releases] == ["1.0.0"]
    counted = [refusals(metrics, PROJECT, "api", kind) for kind in ("invalid", "unsigned")]
    assert counted == [2, 2]
    assert watched.refusal_notes() == [
        (f"{PROJECT}/api 1.1.0", "unsigned"),
        (f"{PROJECT}/api 1.2.0", "invalid"),
    ]


# ------------------------------------------------------------------------ validation


def test_validate_accepts_a_keyless_policy_and_checks_its_fields(
    registry: RegistryServer, tmp_path: Path, authority: Authority
) -> None:
    granted = tmp_path / "granted"
    root = _root_file(granted, authority)
    env = {CREDENTIALS_DIR_VAR: str(granted)}
    project = f"projects/{PROJECT}/project.yaml"

    def validate(keyless: str) -> tuple[int, str, dict[str, str]]:
        files = _keyless_files(registry, "acme/api", keyless)
        proc = run_cli(
            "validate", str(write_files(tmp_path / f"cfg{len(keyless)}", files)), env=env
        )
        return proc.returncode, proc.stdout + proc.stderr, files

    code, out, _ = validate(_policy(root))
    assert code == 0, out
    code, out, _ = validate(_policy(root, r"identityRegexp: '^ci@example\.com$'"))
    assert code == 0, out

    code, out, files = validate(_policy(Path("/etc/passwd")))
    line = files[project].splitlines().index("          trustedRoot: /etc/passwd") + 1
    assert code == 1 and f"{project}:{line}" in out, out
    assert "verify.cosign.keyless.trustedRoot: not granted" in out, out

    code, out, _ = validate(_policy(root, "identityRegexp: '(a)\\1'"))
    assert code == 1 and "verify.cosign.keyless.identityRegexp" in out, out

    code, out, _ = validate(f"          issuer: {ISSUER}\n          trustedRoot: {root}\n")
    assert code == 1 and "verify.cosign.keyless" in out, out  # no identity at all

    misplaced = _policy(root).replace("issuer:", "certificateOidcIssuer:")
    code, out, _ = validate(misplaced)
    assert code == 1, out
    assert "keyless.certificateOidcIssuer: keyless verification is written" in out, out


@pytest.mark.parametrize(
    ("verify", "field"),
    [
        (
            "      cosign:\n        certificateIdentity: https://github.com/acme/api/x.yml@main\n"
            "        certificateOidcIssuer: https://token.actions.githubusercontent.com\n",
            "verify.cosign.certificateIdentity",
        ),
        ("      keyless: {issuer: https://accounts.google.com}\n", "verify.keyless"),
    ],
)
def test_keyless_fields_spelled_as_elsewhere_point_to_verify_cosign_keyless(
    registry: RegistryServer, tmp_path: Path, verify: str, field: str
) -> None:
    app = AppSpec("api", "acme/api", "example.com/shop/api")
    files = config_files(registry.url, [app])
    project = f"projects/{PROJECT}/project.yaml"
    files[project] = files[project].replace(
        f"    manifestName: {app.manifest_name}\n",
        f"    manifestName: {app.manifest_name}\n    verify:\n{verify}",
    )
    proc = run_cli("validate", str(write_files(tmp_path / "cfg", files)))
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert f"packages[0].{field}: keyless verification is written verify.cosign.keyless" in out
    assert "1 problem(s) found" in out, out


def test_validate_says_when_the_keyless_extra_is_missing(
    registry: RegistryServer, tmp_path: Path, authority: Authority
) -> None:
    """Without sigstore-python (hidden from the validating process: a sitecustomize
    marks it as not importable), validate names the extra to install."""
    granted = tmp_path / "granted"
    root = _root_file(granted, authority)
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['sigstore'] = None\n")
    files = _keyless_files(registry, "acme/api", _policy(root))
    cfg = write_files(tmp_path / "cfg", files)
    pythonpath = os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH", "")]))
    env = {CREDENTIALS_DIR_VAR: str(granted), "PYTHONPATH": pythonpath}
    proc = run_cli("validate", str(cfg), env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "verify.cosign.keyless: keyless signatures are verified by sigstore-python" in out
    assert "gitops-release-reconciler[keyless]" in out
