"""Helm provenance checks: is this chart archive signed by a key in this keyring?

A provenance file (Helm ``pkg/provenance``; ``helm package --sign`` writes it next to
the archive as ``<chart>-<version>.tgz.prov``) is an OpenPGP clear-signed message whose
text is the chart's ``Chart.yaml``, a ``...`` line, and a YAML ``files:`` block mapping
the archive's file name to ``sha256:<hex>``. A version passes when the signature
verifies with a key of the keyring *and* the signed hash is the SHA-256 of the archive
downloaded (and of the digest the index claims, which the release records).

The OpenPGP part is GnuPG's ``gpgv``, run as a subprocess with the keyring and a
throwaway home directory: it is the verifier Debian's own archive checks rely on, its
machine-readable ``--status-fd`` lines say why a signature failed, and ``--output``
gives exactly the text the signature covers (what lies around the signed block is
never read). The keyring is binary, as ``helm verify --keyring`` takes it (``gpg
--export``), or ASCII-armored (``gpg --armor --export``), which is unwrapped here.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from reconciler import yamlio
from reconciler.feeds.gate import Verdict
from reconciler.feeds.helm import ChartFiles

__all__ = ["GPGV_TIMEOUT", "GpgvMissing", "dearmored", "judge_chart", "signed_text"]

GPGV_TIMEOUT = 30.0
"""Seconds ``gpgv`` may take for one file (it takes milliseconds)."""

_SIGNED_MESSAGE = b"-----BEGIN PGP SIGNED MESSAGE-----"
_BEGIN_KEY, _END_KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----END PGP PUBLIC KEY BLOCK-----"


class GpgvMissing(RuntimeError):
    """``gpgv`` is not installed (Debian: package ``gpgv``, which ``gnupg`` pulls in)."""


def dearmored(keyring: bytes) -> bytes:
    """The binary keyring: ``keyring`` as it is, or the packets of each ASCII-armored
    public key block in it (RFC 4880 section 6.2: armor headers up to a blank line,
    base64 lines, an optional ``=CRC`` line). ValueError when the armor is unreadable."""
    if _BEGIN_KEY.encode() not in keyring:
        return keyring
    packets: list[bytes] = []
    body: list[str] | None = None  # base64 lines of the open block; None: outside one
    in_headers = False
    for raw in keyring.decode("ascii", errors="replace").splitlines():
        line = raw.strip()
        if line == _BEGIN_KEY:
            body, in_headers = [], True
        elif body is None:
            continue
        elif line == _END_KEY:
            try:
                packets.append(base64.b64decode("".join(body), validate=True))
            except binascii.Error as exc:
                raise ValueError("an ASCII-armored key block is not base64") from exc
            body = None
        elif in_headers:
            in_headers = line != ""
        elif not line.startswith("="):  # the CRC line; the packets carry their own checks
            body.append(line)
    if not packets:
        raise ValueError("an ASCII-armored keyring without a complete key block")
    return b"".join(packets)


def signed_text(provenance: bytes, keyring: bytes) -> tuple[str | None, Verdict]:
    """The text the provenance file's signature covers, when it verifies with a key of
    ``keyring`` (binary); else None and the refusal. Raises GpgvMissing."""
    if provenance.count(_SIGNED_MESSAGE) != 1 or not provenance.lstrip().startswith(
        _SIGNED_MESSAGE
    ):
        return None, Verdict.refused("invalid", "the .prov file is not one clear-signed message")
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise GpgvMissing("gpgv is not installed")
    with tempfile.TemporaryDirectory(prefix="reconciler-gpgv-") as scratch:
        work = Path(scratch)
        (work / "home").mkdir(mode=0o700)
        (work / "keyring.gpg").write_bytes(keyring)
        (work / "chart.prov").write_bytes(provenance)
        try:
            ran = subprocess.run(
                [gpgv, "--homedir", str(work / "home"), "--keyring", str(work / "keyring.gpg"),
                 "--status-fd", "1", "--output", str(work / "signed"), str(work / "chart.prov")],
                capture_output=True,
                timeout=GPGV_TIMEOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None, Verdict.refused("invalid", f"gpgv took over {GPGV_TIMEOUT:.0f} s")
        status = _status(ran.stdout)
        refusal = _refusal(status)
        if refusal is not None:
            return None, refusal
        if ran.returncode != 0 or "GOODSIG" not in status or "VALIDSIG" not in status:
            return None, Verdict.refused("invalid", "gpgv did not report a good signature")
        text = (work / "signed").read_bytes().decode("utf-8", errors="replace")
    signer = status["GOODSIG"].partition(" ")[2] or "an unnamed key"
    fingerprint = status["VALIDSIG"].split(" ", 1)[0]
    return text, Verdict(True, f"signed by {signer} ({fingerprint})")


def _status(output: bytes) -> dict[str, str]:
    """gpgv's status lines (``[GNUPG:] KEYWORD args``): keyword -> the last args."""
    found: dict[str, str] = {}
    for line in output.decode("utf-8", errors="replace").splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, _, rest = line.removeprefix("[GNUPG:] ").partition(" ")
            found[keyword] = rest
    return found


def _refusal(status: dict[str, str]) -> Verdict | None:
    """Why gpgv's status lines refuse the signature (GnuPG doc/DETAILS), if they do."""
    if "NO_PUBKEY" in status:
        key = status["NO_PUBKEY"]
        return Verdict.refused("no-matching-key", f"signed by key {key}, not in the keyring")
    if "BADSIG" in status:
        return Verdict.refused("invalid", "the signature does not verify: the file was altered")
    for keyword, why in (
        ("EXPKEYSIG", "signed by an expired key"),
        ("REVKEYSIG", "signed by a revoked key"),
        ("EXPSIG", "the signature has expired"),
        ("ERRSIG", "the signature cannot be checked"),
        ("NODATA", "no OpenPGP signature in the .prov file"),
    ):
        if keyword in status:
            return Verdict.refused("invalid", why)
    return None


def signed_sum(text: str, archive_name: str) -> str | None:
    """The ``sha256:<hex>`` the signed text gives for ``archive_name``: the ``files:``
    block after the ``...`` line (Helm's ``parseMessageBlock``); None if absent."""
    parts = text.replace("\r\n", "\n").split("\n...\n")
    if len(parts) < 2:
        return None
    try:
        block = yamlio.load_one_fast(parts[1])
    except ValueError:
        return None
    files = block.get("files") if isinstance(block, dict) else None
    found = files.get(archive_name) if isinstance(files, dict) else None
    return found.lower() if isinstance(found, str) else None


def judge_chart(files: ChartFiles, keyring: bytes) -> Verdict:
    """The verdict on one chart version: its provenance file verifies with ``keyring``
    (binary) and signs the SHA-256 of the archive, which is also the index's digest."""
    if files.sha256 is None:
        return Verdict.refused("invalid", f"{files.name} is not there (404)")
    if files.provenance is None:
        return Verdict.refused("unsigned", f"unsigned: no {files.name}.prov")
    text, verdict = signed_text(files.provenance, keyring)
    if text is None:
        return verdict
    archive = f"sha256:{files.sha256}"
    signed = signed_sum(text, files.name)
    if signed is None:
        return Verdict.refused("invalid", f"the signed files: block does not name {files.name}")
    if signed != archive:
        return Verdict.refused(
            "digest-mismatch", f"the archive's SHA-256 is {archive}, the signed one {signed}"
        )
    if files.index_digest is not None and files.index_digest != archive:
        return Verdict.refused(
            "digest-mismatch",
            f"index.yaml claims {files.index_digest} for the signed archive {archive}",
        )
    return verdict
