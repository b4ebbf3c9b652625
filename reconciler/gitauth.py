"""The credentials of the git processes that talk to the remote; runs no git itself.

``GitCredentials`` is built once per ``WorkTree`` from its URL and its settings, and
yields, for one remote git command, the environment and ``-c`` options that carry
the credentials (``RemoteAuth``). Secrets reach git through that environment only,
answered by a private askpass script that holds none of them: never ``.git/config``,
argv or logs. ``secrets`` lists every password used so far, for scrubbing messages.

Settings, read from ``settings`` (default ``os.environ``) at every remote command so
that rotated secrets are picked up without a restart:

``RECONCILER_GIT_USERNAME`` / ``RECONCILER_GIT_USERNAME_FILE``, ``RECONCILER_GIT_PASSWORD`` /
``RECONCILER_GIT_PASSWORD_FILE``
    HTTPS basic auth (a token is a password). The user name defaults to the one in
    the URL, else ``x-access-token`` (GitHub's convention; GitLab and Gitea accept
    any non-empty name with a token).
``RECONCILER_GIT_CA_FILE``
    a PEM CA the Git host's certificate may chain to, trusted on top of the system's.
``RECONCILER_GIT_SSH_KEY_FILE``, ``RECONCILER_GIT_KNOWN_HOSTS``
    SSH private key and known_hosts file; host keys are always checked strictly.
"""

from __future__ import annotations

import shlex
import shutil
import ssl
import tempfile
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from reconciler.errors import GitError

__all__ = ["GitCredentials", "RemoteAuth"]

_ENV_USERNAME = "RECONCILER_GIT_USERNAME"
_ENV_USERNAME_FILE = "RECONCILER_GIT_USERNAME_FILE"
_ENV_PASSWORD = "RECONCILER_GIT_PASSWORD"  # noqa: S105 - a variable name, not a secret
_ENV_PASSWORD_FILE = "RECONCILER_GIT_PASSWORD_FILE"  # noqa: S105
_ENV_CA_FILE = "RECONCILER_GIT_CA_FILE"
"""A PEM CA the Git host's certificate may chain to, trusted on top of the system's."""
_ENV_SSH_KEY_FILE = "RECONCILER_GIT_SSH_KEY_FILE"
_ENV_KNOWN_HOSTS = "RECONCILER_GIT_KNOWN_HOSTS"
_DEFAULT_TOKEN_USERNAME = "x-access-token"  # noqa: S105

# The askpass script's inputs: set in the environment of one git process only.
_ASKPASS_USERNAME_VAR = "RECONCILER_ASKPASS_USERNAME"
_ASKPASS_PASSWORD_VAR = "RECONCILER_ASKPASS_PASSWORD"  # noqa: S105
_ASKPASS_SCRIPT = f"""#!/bin/sh
# Answers git's credential prompts from variables that the reconciler sets in the
# environment of the one git process that needs them. Holds no secret itself.
case "$1" in
  [Uu]sername*) printf '%s\\n' "${_ASKPASS_USERNAME_VAR}" ;;
  *) printf '%s\\n' "${_ASKPASS_PASSWORD_VAR}" ;;
esac
"""


@dataclass(frozen=True)
class _HttpCredentials:
    username: str
    password: str


@dataclass(frozen=True)
class RemoteAuth:
    """What one remote git command needs: extra ``env``, extra ``-c`` ``config``
    settings, and the ``secrets`` it carries (to scrub from its output)."""

    env: dict[str, str] = field(default_factory=dict)
    config: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


def _split_url_credentials(url: str) -> tuple[str, _HttpCredentials | None]:
    """Remove user info from an http(s) URL; return the clean URL and what was in it.

    git would store a URL with user info in ``.git/config`` and echo it in errors,
    so the clean URL is the one given to git and the credentials travel separately.
    Other schemes keep their URL (an ssh user name is not a secret).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    username, has_password, password = userinfo.partition(":")
    if not has_password:  # a token given as the user name
        return clean, _HttpCredentials(_DEFAULT_TOKEN_USERNAME, unquote(username))
    return clean, _HttpCredentials(unquote(username), unquote(password))


class GitCredentials:
    """The credentials for the remote ``url`` from ``settings``.

    ``url`` (the attribute) is the URL without http(s) user info: the one to give git.
    ``close`` deletes the private temp directory (askpass script, CA bundle); it is
    also deleted when the object is garbage collected.
    """

    def __init__(self, url: str, settings: Mapping[str, str]) -> None:
        self.url, self._url_credentials = _split_url_credentials(url)
        self._settings = settings
        self._askpass_dir: Path | None = None
        # Every password used so far (they rotate): scrubbed from all messages.
        self._seen_secrets: set[str] = set()
        if self._url_credentials is not None:
            self._seen_secrets.add(self._url_credentials.password)
        self._cleanup = weakref.finalize(self, GitCredentials._remove_dir, [None])

    @property
    def secrets(self) -> frozenset[str]:
        """Every password handed to git so far (and the URL's), for scrubbing."""
        return frozenset(self._seen_secrets)

    @property
    def askpass_dir(self) -> Path | None:
        """The private 0700 temp directory, once a credential needed it."""
        return self._askpass_dir

    def close(self) -> None:
        """Delete the private temp directory."""
        self._cleanup()

    def for_remote(self) -> RemoteAuth:
        """The environment and settings of one git process that talks to the remote."""
        auth = RemoteAuth()
        credentials = self._http_credentials()
        if credentials is not None:
            auth.env["GIT_ASKPASS"] = str(self._askpass_script())
            auth.env[_ASKPASS_USERNAME_VAR] = credentials.username
            auth.env[_ASKPASS_PASSWORD_VAR] = credentials.password
            auth.secrets.append(credentials.password)
            self._seen_secrets.add(credentials.password)
            # Our password must not end up in a credential store the operator
            # configured (``credential.helper=store`` writes it to disk in clear).
            auth.config.append("credential.helper=")
        ca_file = self._settings.get(_ENV_CA_FILE)
        if ca_file:
            auth.env["GIT_SSL_CAINFO"] = str(self._ca_bundle(ca_file))
        key_file = self._settings.get(_ENV_SSH_KEY_FILE)
        if key_file:
            ssh = ["ssh", "-i", key_file, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
            known_hosts = self._settings.get(_ENV_KNOWN_HOSTS)
            if known_hosts:
                ssh += ["-o", f"UserKnownHostsFile={known_hosts}"]
            ssh += ["-o", "StrictHostKeyChecking=yes"]
            auth.env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        return auth

    def _http_credentials(self) -> _HttpCredentials | None:
        """Credentials from the settings (read now, for rotation), else from the URL."""
        password = self._settings.get(_ENV_PASSWORD)
        password_file = self._settings.get(_ENV_PASSWORD_FILE)
        if not password and password_file:
            try:
                password = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as err:
                raise GitError(
                    f"cannot read {_ENV_PASSWORD_FILE} {password_file}: {err.strerror}"
                ) from None
        if password:
            username = (
                self._settings.get(_ENV_USERNAME)
                or self._username_from_file()
                or (self._url_credentials.username if self._url_credentials else None)
                or _DEFAULT_TOKEN_USERNAME
            )
            return _HttpCredentials(username, password)
        return self._url_credentials

    def _username_from_file(self) -> str | None:
        """``RECONCILER_GIT_USERNAME_FILE``: the user name from a mounted Secret key."""
        path = self._settings.get(_ENV_USERNAME_FILE)
        if not path:
            return None
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as err:
            raise GitError(f"cannot read {_ENV_USERNAME_FILE} {path}: {err.strerror}") from None

    def _ca_bundle(self, ca_file: str) -> Path:
        """The system's CA bundle followed by ``ca_file``, in the private temp directory:
        git (curl) takes one bundle, and a private CA must not replace the public roots.
        Re-written from the sources each time (both may rotate)."""
        system = ssl.get_default_verify_paths()
        parts = []
        for source in (system.cafile or system.openssl_cafile, ca_file):
            try:
                parts.append(Path(source).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as err:
                if source == ca_file:
                    reason = err.strerror if isinstance(err, OSError) else "not PEM text"
                    raise GitError(f"cannot read {_ENV_CA_FILE} {ca_file}: {reason}") from None
        bundle = self._askpass_script().parent / "ca-bundle.pem"
        bundle.write_text("\n".join(parts), encoding="utf-8")
        return bundle

    def _askpass_script(self) -> Path:
        """A private script answering git's prompts from its own environment.

        Created once in a 0700 temp directory outside the work tree (``git clean``
        must not delete it); re-created if something removed it meanwhile.
        """
        if self._askpass_dir is None or not self._askpass_dir.is_dir():
            self._askpass_dir = Path(tempfile.mkdtemp(prefix="reconciler-askpass-"))
            self._cleanup.detach()
            self._cleanup = weakref.finalize(self, GitCredentials._remove_dir, [self._askpass_dir])
        script = self._askpass_dir / "askpass.sh"
        if not script.exists():
            script.write_text(_ASKPASS_SCRIPT, encoding="utf-8")
            script.chmod(0o700)
        return script

    @staticmethod
    def _remove_dir(holder: list[Path | None]) -> None:
        for directory in holder:
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
