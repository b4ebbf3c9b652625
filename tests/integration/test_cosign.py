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
import subprocess
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler import model, yamlio
from reconciler.feeds.cosign import (
    SIGNATURE_ARTIFACT,
    SIMPLE_SIGNING,
    load_public_key,
    signature_tag,
    verify_image,
)
from reconciler.feeds.oci import OCI_MANIFEST, RegistryClient
from reconciler.grants import CREDENTIALS_DIR_VAR
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

PROJECT = "shop"


def _record(remote: Any, version: str) -> dict[str, Any]:
    return dict(yamlio.load_one(remote.show(f"releases/{PROJECT}/{version}.yaml")))


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


def signature_manifest(payload: bytes, signature: str) -> tuple[bytes, bytes]:
    """(config blob, manifest) of a cosign signature (base64) over ``payload``."""
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


def push_signature(
    registry: RegistryServer, repo: str, digest: str, payload: bytes, signature: bytes
) -> None:
    """Push ``signature`` (DER) of ``payload`` under ``digest``'s .sig tag."""
    config, manifest = signature_manifest(payload, base64.b64encode(signature).decode())
    for blob in (payload, config):
        _upload_blob(registry.client, registry.url, repo, blob, _sha(blob))
    _put_manifest(
        registry.client, registry.url, repo, signature_tag(digest), manifest, OCI_MANIFEST
    )


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
    push_signature(registry, repo, digest, payload, key.sign(payload, ec.ECDSA(hashes.SHA256())))


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
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    config, manifest = signature_manifest(payload, signature)
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


# ------------------------------------------------------------- the gate in a real pass


def _gated_repo(
    registry: RegistryServer, bare_remote: Any, repo: str, keys: str, settings: str = ""
) -> Any:
    """A dev-only config repo whose ``api`` package is gated by ``verify: {cosign: …}``;
    ``settings`` is added to reconciler.yaml."""
    app = AppSpec("api", repo, "example.com/shop/api")
    files = config_files(registry.url, [app], lifecycle=DEV_ONLY, envs=("dev",))
    files["reconciler.yaml"] += settings
    project = f"projects/{PROJECT}/project.yaml"
    files[project] = files[project].replace(
        f"    manifestName: {app.manifest_name}\n",
        f"    manifestName: {app.manifest_name}\n    verify:\n      cosign: {keys}\n",
    )
    return bare_remote(seed=files)


def _pem_file(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_release_takes_the_best_signed_version_and_explain_says_why(
    registry: RegistryServer, bare_remote: Any, tmp_path: Path
) -> None:
    """Signed 1.0.0, unsigned 1.1.0: the release takes 1.0.0 and ``explain`` names why
    1.1.0 was refused; once 1.1.0 is signed, the next pass releases it."""
    trusted = ec.generate_private_key(ec.SECP256R1())
    keys_dir = tmp_path / "granted"
    other = _pem_file(keys_dir / "old.pub", ec.generate_private_key(ec.SECP256R1()))
    key = _pem_file(keys_dir / "cosign.pub", trusted)
    repo = unique_repo("gate")
    v100 = registry.push(repo, "1.0.0")
    v110 = registry.push(repo, "1.1.0")
    sign(registry, repo, v100, trusted, claims=v100)
    remote = _gated_repo(registry, bare_remote, repo, f"{{keys: [{other}, {key}]}}")
    env = {CREDENTIALS_DIR_VAR: str(keys_dir)}
    work = ["--repo", remote.url, "--work-dir", str(tmp_path / "work")]

    first = run_cli("once", *work, "--json", env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert [r["packages"]["api"]["version"] for r in result_json(first)["releases"]] == ["1.0.0"]
    state = json.loads((tmp_path / "work" / "cache" / "state.json").read_text())
    assert [k.split("|")[2] for k in state["signatures"]] == [v100]  # only verdicts that hold

    explain = run_cli("explain", PROJECT, *work, "-o", "json", env=env)
    assert explain.returncode == 0, explain.stderr
    api = json.loads(explain.stdout)["channels"][0]["packages"]["api"]
    assert api["chosen"] == "1.0.0"
    reasons = {c["tag"]: c["reason"] for c in api["rejected"]}
    assert reasons["1.1.0"].startswith("cosign: unsigned: no sha256-")

    sign(registry, repo, v110, trusted, claims=v110)
    second = run_cli("once", *work, "--json", env=env)
    assert second.returncode == 0, second.stderr + second.stdout
    assert [r["packages"]["api"]["version"] for r in result_json(second)["releases"]] == ["1.1.0"]
    assert _record(remote, "1.0.1")["packages"]["api"]["digest"] == v110


def _verified_files(registry: RegistryServer, verify: str) -> dict[str, str]:
    """Config files whose ``api`` package has ``verify:`` with the lines ``verify``."""
    app = AppSpec("api", "acme/api", "example.com/shop/api")
    files = config_files(registry.url, [app])
    project = f"projects/{PROJECT}/project.yaml"
    files[project] = files[project].replace(
        f"    manifestName: {app.manifest_name}\n",
        f"    manifestName: {app.manifest_name}\n    verify:\n{verify}",
    )
    return files


def test_a_key_file_outside_the_granted_directories_fails_validation(
    registry: RegistryServer, tmp_path: Path
) -> None:
    files = _verified_files(registry, "      cosign:\n        key: /etc/passwd\n")
    project = f"projects/{PROJECT}/project.yaml"
    root = write_files(tmp_path / "cfg", files)
    proc = run_cli("validate", str(root), env={CREDENTIALS_DIR_VAR: str(tmp_path / "keys")})
    assert proc.returncode == 1
    line = files[project].splitlines().index("        key: /etc/passwd") + 1
    assert f"{project}:{line}" in proc.stdout + proc.stderr
    assert "verify.cosign.key" in proc.stdout + proc.stderr
    assert "/etc/passwd is outside the directories granted to feeds" in proc.stdout + proc.stderr


# ------------------------------------------------- refusals: the metric, a notification once


def test_refusals_are_counted_each_pass_and_notified_once_even_across_restarts(
    registry: RegistryServer, bare_remote: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """1.2.0 signed by an unknown key, 1.1.0 unsigned, 1.0.0 signed: the release takes
    1.0.0; each pass counts both refusals in the metric, but each (package, digest,
    reason) is notified once, in the sidecar's passes and in a restarted process."""
    from reconciler.metrics import Metrics

    trusted, stranger = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    keys_dir = tmp_path / "granted"
    key = _pem_file(keys_dir / "cosign.pub", trusted)
    repo = unique_repo("refused")
    v100, v120 = registry.push(repo, "1.0.0"), registry.push(repo, "1.2.0")
    registry.push(repo, "1.1.0")
    sign(registry, repo, v100, trusted, claims=v100)
    sign(registry, repo, v120, stranger, claims=v120)
    remote = _gated_repo(registry, bare_remote, repo, f"{{key: {key}}}", NOTIFY_SETTINGS)
    monkeypatch.setenv(CREDENTIALS_DIR_VAR, str(keys_dir))
    monkeypatch.setenv("HOOK_URL", HOOK_URL)
    watched = Watched(remote.url, tmp_path / "work")

    def counted(metrics: Metrics) -> tuple[float | None, float | None]:
        return (
            refusals(metrics, PROJECT, "api", "no-matching-key"),
            refusals(metrics, PROJECT, "api", "unsigned"),
        )

    metrics = Metrics()
    first = watched.start(metrics)
    try:
        result = first.run_pass()
        assert [r.packages[0].version for r in result.releases] == ["1.0.0"]
        assert counted(metrics) == (1, 1)
        first.run_pass()
        assert counted(metrics) == (2, 2)
    finally:
        first.close()
    expected = [(f"{PROJECT}/api 1.1.0", "unsigned"), (f"{PROJECT}/api 1.2.0", "no-matching-key")]
    assert watched.refusal_notes() == expected
    sent = watched.sent
    assert {n["severity"] for n in sent if n["event"] == "signature-refused"} == {"warning"}
    assert any(v120 in json.dumps(n) for n in sent)  # the digest is in the details

    restarted = watched.start(Metrics())  # a new process with the same work dir
    try:
        restarted.run_pass()
        assert watched.refusal_notes() == expected  # remembered: not notified again
        registry.push(repo, "1.3.0")  # a new unsigned version is news
        restarted.run_pass()
    finally:
        restarted.close()
    assert watched.refusal_notes() == sorted([*expected, (f"{PROJECT}/api 1.3.0", "unsigned")])


def test_a_signature_made_by_openssl_verifies(registry: RegistryServer, tmp_path: Path) -> None:
    """No cosign or sigstore verifier of key-based image signatures installs here; the
    cross-check is the other way round: a signature made by another implementation
    (the OpenSSL command line: ``openssl dgst -sha256 -sign``, an ECDSA P-256 DER
    signature, which is what ``cosign sign --key`` writes) verifies with our gate."""
    key_file, pub_file = tmp_path / "cosign.key", tmp_path / "cosign.pub"
    openssl = ["openssl"]
    subprocess.run([*openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                    "-out", str(key_file)], check=True, capture_output=True)  # fmt: skip
    subprocess.run([*openssl, "ec", "-in", str(key_file), "-pubout", "-out", str(pub_file)],
                   check=True, capture_output=True)  # fmt: skip
    repo = unique_repo("openssl")
    digest = registry.push(repo, "1.0.0")
    payload_file = tmp_path / "payload.json"
    payload_file.write_bytes(simple_signing(f"{registry.host}/{repo}", digest))
    signature = subprocess.run(
        [*openssl, "dgst", "-sha256", "-sign", str(key_file), str(payload_file)],
        check=True,
        capture_output=True,
    ).stdout
    push_signature(registry, repo, digest, payload_file.read_bytes(), signature)
    keys = [load_public_key(pub_file.read_bytes())]
    with RegistryClient(registry.feed()) as client:
        assert verify_image(client, repo, digest, keys).verified
        other = registry.push(repo, "1.1.0")  # the same signature under another digest
        push_signature(registry, repo, other, payload_file.read_bytes(), signature)
        verdict = verify_image(client, repo, other, keys)
    assert (verdict.kind, verdict.verified) == ("digest-mismatch", False)
