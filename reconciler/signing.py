"""Signing the reconciler's commits with a key mounted as a file.

Branch protection that requires signed commits rejects unsigned pushes, so every
commit the reconciler makes (passes, manual operations, pull-request branches,
rebases after a lost push race) can be signed with one of two kinds of key, both read
from mounted files that never enter the repository, argv or the logs:

``RECONCILER_GIT_SIGNING_KEY_FILE``
    the private key: an OpenSSH private key (``gpg.format=ssh``; git runs
    ``ssh-keygen -Y sign`` with it) or an ASCII-armored OpenPGP secret key
    (imported into a private ``GNUPGHOME`` next to the work tree, mode 0700).
``RECONCILER_GIT_SIGNING_FORMAT``
    ``ssh`` or ``openpgp``; by default read from the key file's armor line.
``RECONCILER_GIT_SIGNING_PASSPHRASE_FILE``
    the OpenPGP key's passphrase, if it has one (given to gpg as a file, loopback
    pinentry: a daemon has no terminal).

Verification is the Git host's job (or ``git verify-commit`` with an
``gpg.ssh.allowedSignersFile``); this module only signs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import GitError

__all__ = [
    "FORMAT_VAR",
    "KEY_FILE_VAR",
    "PASSPHRASE_FILE_VAR",
    "Signer",
    "signer_from_settings",
    "stop_gpg_agent",
]

KEY_FILE_VAR = "RECONCILER_GIT_SIGNING_KEY_FILE"
FORMAT_VAR = "RECONCILER_GIT_SIGNING_FORMAT"
PASSPHRASE_FILE_VAR = "RECONCILER_GIT_SIGNING_PASSPHRASE_FILE"  # noqa: S105  # a name

_ARMOR = {
    "-----BEGIN OPENSSH PRIVATE KEY-----": "ssh",
    "-----BEGIN PGP PRIVATE KEY BLOCK-----": "openpgp",
}
_GPG_TIMEOUT = 60


@dataclass(frozen=True)
class Signer:
    """What git needs to sign: ``-c`` settings and extra environment variables.
    ``stamp`` identifies the key material it was made from (rotation re-imports)."""

    settings: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    stamp: str = ""


def _key_stamp(*paths: str | None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path:
            try:
                digest.update(Path(path).read_bytes())
            except OSError as exc:
                raise GitError(f"cannot read signing file {path}: {exc.strerror}") from None
        digest.update(b"\0")
    return digest.hexdigest()


def _format_of(key_file: str, named: str | None) -> str:
    if named:
        if named not in ("ssh", "openpgp"):
            raise GitError(f"{FORMAT_VAR}={named!r}: use 'ssh' or 'openpgp'")
        return named
    try:
        with open(key_file, encoding="ascii", errors="replace") as file:
            head = file.read(200)
    except OSError as exc:
        raise GitError(f"cannot read {KEY_FILE_VAR} {key_file}: {exc.strerror}") from None
    for armor, kind in _ARMOR.items():
        if armor in head:
            return kind
    raise GitError(
        f"{KEY_FILE_VAR} {key_file}: not an OpenSSH or armored OpenPGP private key"
        f" (set {FORMAT_VAR})"
    )


def signer_from_settings(
    settings: Mapping[str, str], gnupg_home: Path, previous: Signer | None = None
) -> Signer | None:
    """The signer the settings describe, or None when commits are not signed.
    ``previous`` is reused while the key files are unchanged (no re-import)."""
    key_file = settings.get(KEY_FILE_VAR)
    if not key_file:
        return None
    passphrase_file = settings.get(PASSPHRASE_FILE_VAR)
    kind = _format_of(key_file, settings.get(FORMAT_VAR))
    stamp = kind + _key_stamp(key_file, passphrase_file)
    if previous is not None and previous.stamp == stamp:
        return previous
    common = ("commit.gpgSign=true", "tag.gpgSign=true")
    if kind == "ssh":
        return Signer(("gpg.format=ssh", f"user.signingKey={key_file}", *common), stamp=stamp)
    fingerprint = _import_gpg_key(gnupg_home, key_file, passphrase_file)
    return Signer(
        ("gpg.format=openpgp", f"user.signingKey={fingerprint}", *common),
        {"GNUPGHOME": str(gnupg_home)},
        stamp,
    )


def _gpg(home: Path, *args: str) -> str:
    result = subprocess.run(  # fixed program, our arguments
        ["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
        capture_output=True,
        text=True,
        timeout=_GPG_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        # gpg's stderr names keys and files, never key material.
        raise GitError(f"gpg {args[0]} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def _import_gpg_key(home: Path, key_file: str, passphrase_file: str | None) -> str:
    """Import the key into the private home; return its fingerprint."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.chmod(0o700)
    # git runs plain `gpg -bsau KEY`: the options it needs come from gpg.conf.
    conf = "batch\nno-tty\npinentry-mode loopback\n"
    if passphrase_file:
        conf += f"passphrase-file {passphrase_file}\n"
    (home / "gpg.conf").write_text(conf, encoding="utf-8")
    _gpg(home, "--import", key_file)
    listing = _gpg(home, "--with-colons", "--list-secret-keys")
    for line in listing.splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    raise GitError(f"{KEY_FILE_VAR} {key_file}: gpg imported no secret key")


def stop_gpg_agent(home: Path) -> None:
    """Stop the gpg-agent gpg started for ``home`` (no-op if none)."""
    if (home / "gpg.conf").exists():
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            capture_output=True,
            timeout=_GPG_TIMEOUT,
            check=False,
            env={**os.environ, "GNUPGHOME": str(home)},
        )
