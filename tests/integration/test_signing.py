"""Signed commits (issue 20 items 1 and 4): real SSH and OpenPGP keys, a remote whose
pre-receive hook refuses unsigned commits, ``git verify-commit`` on every commit the
reconciler made, and author, committer and Signed-off-by set separately."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from reconciler.errors import GitError
from reconciler.gitrepo import WorkTree
from tests.helpers.gitserver import BareRemote, run_git
from tests.security.support import one_pass, shop

AUTHOR = ("Release Bot", "release-bot@example.com")
SEED = {"deploy/a.yaml": "a: 1\n"}


def _ssh_key(folder: Path) -> tuple[Path, Path]:
    """A fresh ed25519 key and an allowed-signers file trusting it."""
    key = folder / "signing_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bot", "-f", str(key)], check=True
    )
    public = (folder / "signing_key.pub").read_text().strip()
    allowed = folder / "allowed_signers"
    allowed.write_text(f'* namespaces="git" {public}\n')
    return key, allowed


def _require_signed(remote: BareRemote, allowed: Path) -> None:
    """A pre-receive hook that refuses any pushed commit without a valid SSH signature."""
    remote.install_hook(
        "pre-receive",
        f"""zero=0000000000000000000000000000000000000000
while read old new ref; do
  if [ "$old" = "$zero" ]; then range="$new"; else range="$old..$new"; fi
  for c in $(git rev-list "$range"); do
    git -c gpg.ssh.allowedSignersFile={allowed} verify-commit "$c" >/dev/null 2>&1 \\
      || {{ echo "refusing unsigned commit $c"; exit 1; }}
  done
done""",
    )


def _verify(remote: BareRemote, sha: str, *config: str, env: dict[str, str] | None = None) -> None:
    settings = [item for c in config for item in ("-c", c)]
    run_git("--git-dir", str(remote.path), *settings, "verify-commit", sha, env=env)


def _commit_one(url: str, work: Path, env: dict[str, str]) -> WorkTree:
    tree = WorkTree(url, work, "main", author=AUTHOR, env=env)
    tree.sync()
    (work / "deploy/a.yaml").write_text(f"a: {os.urandom(4).hex()}\n")
    assert tree.commit("Release shop 1.0.0\n\nRelease: shop 1.0.0\n")
    return tree


def test_ssh_signed_commits_pass_a_remote_that_refuses_unsigned_ones(bare_remote, tmp_path):
    key, allowed = _ssh_key(tmp_path)
    remote = bare_remote(seed=SEED)
    _require_signed(remote, allowed)

    unsigned = _commit_one(remote.url, tmp_path / "unsigned", {})
    with pytest.raises(GitError, match="refusing unsigned commit"):
        unsigned.push()
    unsigned.close()

    tree = _commit_one(remote.url, tmp_path / "w", {"RECONCILER_GIT_SIGNING_KEY_FILE": str(key)})
    tree.push()
    tree.close()
    _verify(remote, "main", f"gpg.ssh.allowedSignersFile={allowed}")
    assert "PRIVATE KEY" not in run_git("--git-dir", str(remote.path), "log", "-p", "main")


def test_a_pass_against_a_signed_only_remote_pushes_and_every_commit_verifies(
    registry, bare_remote, tmp_path
):
    key, allowed = _ssh_key(tmp_path)
    _, files = shop(registry)
    remote = bare_remote(seed=files)
    seed = remote.head()
    _require_signed(remote, allowed)
    env = {"RECONCILER_GIT_SIGNING_KEY_FILE": str(key)}

    first = one_pass(remote, tmp_path / "work", git_env=env)
    second = one_pass(remote, tmp_path / "work", git_env=env)  # promotes dev -> staging

    assert first.pushed and second.pushed, (first.git_error, second.git_error)
    made = run_git("--git-dir", str(remote.path), "rev-list", f"{seed}..main").split()
    assert len(made) == 2
    for sha in made:
        _verify(remote, sha, f"gpg.ssh.allowedSignersFile={allowed}")


def _short_dir(tmp_path: Path) -> Path:
    """A folder with a short path: gpg-agent's socket path must fit in 108 bytes,
    which a GNUPGHOME deep in pytest's temp tree does not (under xdist)."""
    folder = Path(tempfile.mkdtemp(prefix="sig-", dir="/tmp"))
    (tmp_path / "short").symlink_to(folder)  # found from the test's tmp_path when debugging
    return folder


def _gpg_key(folder: Path, passphrase: str) -> tuple[Path, Path, Path]:
    """A fresh OpenPGP key made with gpg --batch; its armored secret key file, a
    passphrase file, and a keyring holding only the public key (the verifier's)."""
    maker = folder / "maker"
    maker.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(maker), "--batch", "--pinentry-mode", "loopback"]
    subprocess.run(
        [*gpg, "--passphrase", passphrase, "--quick-gen-key",
         "Release Bot <release-bot@example.com>", "ed25519", "sign", "never"],
        check=True, capture_output=True,
    )  # fmt: skip
    secret = folder / "signing.asc"
    exported = subprocess.run(
        [*gpg, "--passphrase", passphrase, "--armor", "--export-secret-keys"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    secret.write_bytes(exported)
    passphrase_file = folder / "passphrase"
    passphrase_file.write_text(passphrase + "\n")
    verifier = folder / "verifier"
    verifier.mkdir(mode=0o700)
    public = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True)
    subprocess.run(
        ["gpg", "--homedir", str(verifier), "--batch", "--import"],
        input=public.stdout, check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(["gpgconf", "--homedir", str(maker), "--kill", "gpg-agent"], check=False)
    return secret, passphrase_file, verifier


def test_openpgp_key_with_passphrase_signs_from_a_private_gnupg_home(bare_remote, tmp_path):
    short = _short_dir(tmp_path)
    secret, passphrase, verifier = _gpg_key(short, "correct horse battery")
    remote = bare_remote(seed=SEED)
    env = {
        "RECONCILER_GIT_SIGNING_KEY_FILE": str(secret),
        "RECONCILER_GIT_SIGNING_PASSPHRASE_FILE": str(passphrase),
    }
    try:
        tree = _commit_one(remote.url, short / "w" / "repo", env)
        tree.push()
        tree.close()
        _verify(remote, "main", env={"GNUPGHOME": str(verifier)})
        home = short / "w" / "repo.gnupg"
        assert home.is_dir() and (home.stat().st_mode & 0o077) == 0
    finally:
        subprocess.run(["gpgconf", "--homedir", str(verifier), "--kill", "gpg-agent"], check=False)
        shutil.rmtree(short, ignore_errors=True)
    history = run_git("--git-dir", str(remote.path), "log", "-p", "main")
    assert "PGP PRIVATE KEY" not in history and "correct horse" not in history


def test_author_committer_and_signoff_are_set_separately(bare_remote, tmp_path):
    remote = bare_remote(seed=SEED)
    env = {
        "RECONCILER_GIT_COMMITTER_NAME": "Deploy Account",
        "RECONCILER_GIT_COMMITTER_EMAIL": "deploy@example.com",
        "RECONCILER_GIT_SIGNOFF": "true",
    }
    tree = _commit_one(remote.url, tmp_path / "w", env)
    tree.push()
    tree.close()

    fields = run_git("--git-dir", str(remote.path), "log", "-1", "--format=%an|%ae|%cn|%ce", "main")
    assert fields == "Release Bot|release-bot@example.com|Deploy Account|deploy@example.com"
    trailers = run_git("--git-dir", str(remote.path), "log", "-1", "--format=%(trailers)", "main")
    assert trailers.splitlines() == [
        "Release: shop 1.0.0",
        "Signed-off-by: Deploy Account <deploy@example.com>",
    ]
