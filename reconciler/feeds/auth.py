"""Feed credentials and the bearer-token cache.

Credentials are *located* by ``model.Credentials`` (env vars, mounted files, a docker
``config.json`` with its credential helpers) and resolved at call time, so a rotated
Kubernetes secret or a re-run ``docker login`` is picked up without a restart. Files are
re-read only when their modification time or size changes.

Nothing in this module logs or formats a secret value: error messages name the
variable or file that was missing, never its contents.

Only what the operator granted is read (``reconciler.grants``): an environment
variable or file outside the feeds' namespace, or one of the reconciler's own secrets,
is a FeedAuthError before anything is read. Files are checked on their resolved path
too, so a symlink cannot lead out of a granted directory.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from reconciler.errors import FeedAuthError
from reconciler.feeds.cloud import CloudTokens
from reconciler.feeds.secretfiles import read_small_file
from reconciler.grants import DOCKER_HUB_ALIASES, CredentialPolicy, policy_from_env
from reconciler.model import Credentials

log = logging.getLogger(__name__)

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
"""Docker keeps Docker Hub credentials under this historical key, not ``docker.io``."""

DOCKER_HUB_HOSTS = DOCKER_HUB_ALIASES

DEFAULT_DOCKER_CONFIG = "default"
"""``docker_config: default`` means ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""


@dataclass(frozen=True)
class Secret:
    """Resolved credentials for one registry host.

    Either ``username``/``password`` (sent as Basic, or to a token server),
    ``registry_token`` (docker config ``registrytoken``: sent to the registry as a
    bearer token as-is), or ``identity_token`` (docker config ``identitytoken``, or a
    credential helper's ``<token>`` user: an OAuth2 refresh token exchanged at the
    token server). ``repr`` hides the secret parts so a stray log line or a
    traceback cannot leak them.
    """

    username: str | None = None
    password: str | None = None
    registry_token: str | None = None
    identity_token: str | None = None

    @property
    def has_basic(self) -> bool:
        return self.username is not None and self.password is not None

    def __repr__(self) -> str:
        shown = "***" if self.password is not None else None
        token = "***" if self.registry_token is not None else None
        identity = "***" if self.identity_token is not None else None
        return (
            f"Secret(username={self.username!r}, password={shown}, registry_token={token}, "
            f"identity_token={identity})"
        )


class _FileCache:
    """Re-reads a file only when its (mtime, size) changes; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[int, int], str]] = {}

    def read(self, path: str) -> str:
        """Return the file's text; raises OSError (callers turn it into FeedAuthError)."""
        stat = os.stat(path)
        signature = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._entries.get(path)
            if cached is not None and cached[0] == signature:
                return cached[1]
        text = read_small_file(path).decode("utf-8")
        with self._lock:
            self._entries[path] = (signature, text)
        return text


def normalise_registry_host(key: str) -> str:
    """Reduce a docker config ``auths`` key or a registry URL to ``host[:port]``.

    ``https://host/v1/``, ``http://host`` and ``host`` all become ``host``; the
    Docker Hub aliases become ``index.docker.io`` so they match its historical key.
    """
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host = text.split("/", 1)[0].lower()
    return "index.docker.io" if host in DOCKER_HUB_HOSTS else host


class CredentialResolver:
    """Resolves one feed's ``Credentials`` into a ``Secret`` each time it is asked.

    ``host`` is the registry's ``host[:port]`` (used to pick the docker config
    entry). ``env`` defaults to ``os.environ`` read at call time.
    """

    def __init__(
        self,
        feed_name: str,
        credentials: Credentials | None,
        host: str,
        *,
        env: Mapping[str, str] | None = None,
        scheme: str = "https",
        cloud: CloudTokens | None = None,
    ) -> None:
        self._feed = feed_name
        self._credentials = credentials
        self._host = host
        self._scheme = scheme
        self._cloud = cloud or CloudTokens()
        self._env = env
        self._files = _FileCache()
        self._helpers = CredentialHelperCache()

    @property
    def host(self) -> str:
        return self._host

    def policy(self) -> CredentialPolicy:
        """The operator's grants, read from the environment at call time."""
        return policy_from_env(self._environ())

    def resolve(self) -> Secret | None:
        """The current secret, or None for anonymous access.

        Raises FeedAuthError when a named source is missing (an unset env var, an
        unreadable file, a malformed docker config) or not granted to feeds:
        configured-but-absent credentials should fail loudly instead of silently going
        anonymous.
        """
        creds = self._credentials
        if creds is None:
            return None
        if creds.provider is not None:
            return self._from_cloud(creds.provider, creds.identity_file)
        username = creds.username
        if creds.username_env is not None:
            username = self._env_value(creds.username_env)
        password: str | None = None
        if creds.password_env is not None:
            password = self._env_value(creds.password_env)
        elif creds.password_file is not None:
            password = self._read_password_file(creds.password_file)
        if password is not None:
            return Secret(username=username or "", password=password)
        if creds.docker_config is not None:
            from_docker = self._from_docker_config(creds.docker_config)
            if from_docker is not None:
                return from_docker
        if username is not None:
            # A user name alone is not enough for Basic; anonymous is the honest answer.
            log.debug("feed %s: user name configured without a password", self._feed)
        return None

    def refuse_in_clear(self, host: str, *, in_clear: bool) -> None:
        """FeedAuthError if a secret would go to ``host`` over plain http or unverified
        TLS and the operator did not allow that host (``insecure: true`` is not enough)."""
        if in_clear and not self.policy().http_credentials_allowed(host):
            raise FeedAuthError(
                self._feed,
                f"refusing to send credentials to {host} over plain http or unverified TLS;"
                " the operator allows it with --allow-http-credentials",
                retry_after=3600.0,
            )

    def _from_cloud(self, provider: str, identity_file: str | None) -> Secret:
        """The pod's cloud identity, or the feed's granted ``identityFile``, as this
        registry's credentials (feeds/cloud.py)."""
        self.refuse_in_clear(self._host, in_clear=self._scheme != "https")
        if identity_file is not None:
            self._granted_path(identity_file)
        user, secret = self._cloud.get(
            self._feed,
            provider,
            self._host,
            self._environ(),
            scheme=self._scheme,
            identity_file=identity_file,
        )
        return Secret(identity_token=secret) if not user else Secret(user, secret)

    def _environ(self) -> Mapping[str, str]:
        return self._env if self._env is not None else os.environ

    def _env_value(self, name: str) -> str:
        problem = self.policy().env_problem(name, self._host)
        if problem is not None:
            raise FeedAuthError(self._feed, f"credentials refused: {problem}", retry_after=3600.0)
        value = self._environ().get(name)
        if value is None:
            raise FeedAuthError(self._feed, f"environment variable {name} is not set")
        return value

    def _granted_path(self, path: str) -> str:
        """``path`` if the operator granted it to this feed's host; FeedAuthError if not."""
        problem = granted_file_problem(self.policy(), path, self._host)
        if problem is not None:
            raise FeedAuthError(self._feed, f"credentials refused: {problem}", retry_after=3600.0)
        return path

    def _read_password_file(self, path: str) -> str:
        self._granted_path(path)
        policy = self.policy()
        problem = policy.password_file_problem(path, self._host)
        if problem is None and os.path.realpath(path) in {
            os.path.realpath(p) for p in policy.docker_configs
        }:
            problem = f"{path} leads to the operator's docker config"
        if problem is not None:
            raise FeedAuthError(self._feed, f"credentials refused: {problem}", retry_after=3600.0)
        try:
            text = self._files.read(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise FeedAuthError(self._feed, f"password file {path}: {_reason(exc)}") from None
        # Mounted secrets and `echo secret > file` both end with a newline.
        return text.rstrip("\r\n")

    def _docker_config_path(self, configured: str) -> str:
        if configured == DEFAULT_DOCKER_CONFIG:
            env = self._environ()
            directory = env.get("DOCKER_CONFIG") or os.path.join(
                env.get("HOME") or os.path.expanduser("~"), ".docker"
            )
            return os.path.join(directory, "config.json")
        self._granted_path(configured)
        path = configured
        return os.path.join(path, "config.json") if os.path.isdir(path) else path

    def _from_docker_config(self, configured: str) -> Secret | None:
        # ``default`` is the operator's own DOCKER_CONFIG; any other path is the config's
        # choice and must be granted (the directory, then the file in it).
        path = self._docker_config_path(configured)
        if configured != DEFAULT_DOCKER_CONFIG:
            self._granted_path(path)
        try:
            document = json.loads(self._files.read(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise FeedAuthError(self._feed, f"docker config {path}: {_reason(exc)}") from None
        except json.JSONDecodeError as exc:
            raise FeedAuthError(
                self._feed, f"docker config {path}: not valid JSON (line {exc.lineno})"
            ) from None
        return parse_docker_config(
            document, self._host, feed=self._feed, source=path, helpers=self._helpers
        )


def granted_file_problem(policy: CredentialPolicy, path: str, host: str) -> str | None:
    """Why a feed at ``host`` may not read ``path``: its text, then its resolved form
    (every symlink followed) against the resolved granted directories and reserved
    files. None when it may."""
    problem = policy.file_problem(path, host)
    if problem is not None:
        return problem
    real = os.path.realpath(path)
    if real in {os.path.realpath(p) for p in policy.reserved_files}:
        return f"{path} is one of the reconciler's own secrets"
    resolved = CredentialPolicy(
        directories=tuple(
            replace(grant, value=os.path.realpath(grant.value)) for grant in policy.directories
        ),
        reserved_files=policy.reserved_files,
    )
    if resolved.resolved_problem(real, host) is not None:
        return f"{path} leads outside the directories granted to feeds"
    return None


def _reason(exc: Exception) -> str:
    """A short cause for a failed read, without echoing file contents."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) if isinstance(exc, OSError) else type(exc).__name__


def parse_docker_config(
    document: Any,
    host: str,
    *,
    feed: str,
    source: str = "config.json",
    helpers: CredentialHelperCache | None = None,
) -> Secret | None:
    """Pick ``host``'s credentials out of a parsed docker ``config.json``, as the
    docker CLI does: ``credHelpers[host]`` first, then ``credsStore``, then ``auths``.

    ``auths``: the exact key first, then any key that reduces to the same
    ``host[:port]`` (legacy ``https://host/v1/`` keys, Docker Hub aliases); an entry
    may hold ``auth`` (base64 ``user:password``), ``username``/``password``,
    ``registrytoken`` or ``identitytoken``. Helpers (``docker-credential-<name>``, found
    on PATH) are run through ``helpers`` (a fresh cache when None).
    """
    if not isinstance(document, dict):
        raise FeedAuthError(feed, f"docker config {source}: top level is not an object")
    wanted = normalise_registry_host(host)
    helper = _helper_for(document, host, wanted, feed=feed, source=source)
    if helper is not None:
        server = DOCKER_HUB_AUTH_KEY if wanted == "index.docker.io" else host
        return (helpers or CredentialHelperCache()).get(helper, server, feed=feed)
    auths = document.get("auths") or {}
    if not isinstance(auths, dict):
        raise FeedAuthError(feed, f"docker config {source}: auths is not an object")
    entry = auths.get(host)
    if entry is None:
        entry = next(
            (value for key, value in auths.items() if normalise_registry_host(key) == wanted),
            None,
        )
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise FeedAuthError(feed, f"docker config {source}: entry for {host} is not an object")
    if isinstance(entry.get("registrytoken"), str) and entry["registrytoken"]:
        return Secret(registry_token=entry["registrytoken"])
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise FeedAuthError(
                feed, f"docker config {source}: auth for {host} is not valid base64"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise FeedAuthError(
                feed, f"docker config {source}: auth for {host} is not 'user:password'"
            )
        return Secret(username=username, password=password)
    plain_user = entry.get("username")
    plain_password = entry.get("password")
    if isinstance(plain_user, str) and plain_user and isinstance(plain_password, str):
        return Secret(username=plain_user, password=plain_password)
    identity = entry.get("identitytoken")
    if isinstance(identity, str) and identity:
        return Secret(identity_token=identity)
    return None


def _helper_for(
    document: dict[str, Any], host: str, wanted: str, *, feed: str, source: str
) -> str | None:
    """The credential helper name for ``host``, or None to read ``auths``."""
    helpers = document.get("credHelpers") or {}
    if not isinstance(helpers, dict):
        raise FeedAuthError(feed, f"docker config {source}: credHelpers is not an object")
    name = helpers.get(host)
    if name is None:
        name = next((v for k, v in helpers.items() if normalise_registry_host(k) == wanted), None)
    if name is None:
        name = document.get("credsStore") or None
    if name is None:
        return None
    if not isinstance(name, str) or not _HELPER_NAME.fullmatch(name):
        raise FeedAuthError(feed, f"docker config {source}: invalid credential helper name")
    return name


_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A helper runs as ``docker-credential-<name>``: no paths, no shell syntax."""

HELPER_TIMEOUT = 15.0
"""Seconds a credential helper may take (cloud helpers call their provider's API)."""

HELPER_CACHE_SECONDS = 300.0
"""How long a helper's answer is reused: cloud registry tokens last hours, and a
helper run per request would cost a process (and an API call) each time."""

HELPER_MISS_SECONDS = 30.0
"""How long a helper's "credentials not found" is reused."""

MAX_HELPER_OUTPUT = 100_000


class CredentialHelperCache:
    """Runs ``docker-credential-<name> get`` (the docker credential helper protocol:
    the server URL on stdin, ``{"ServerURL", "Username", "Secret"}`` on stdout) and
    keeps each answer for ``HELPER_CACHE_SECONDS``. Thread-safe.

    A ``Username`` of ``<token>`` means ``Secret`` is an identity (refresh) token.
    "credentials not found" is anonymous access; any other failure is a
    FeedAuthError that names the helper but never repeats its output.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], tuple[float, Secret | None]] = {}

    def get(self, helper: str, server: str, *, feed: str) -> Secret | None:
        key = (helper, server)
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and self._clock() < cached[0]:
                return cached[1]
        secret = _run_helper(helper, server, feed=feed)
        # "Nothing stored" is remembered briefly: a `docker login` made meanwhile
        # should count soon, without running the helper for every request.
        keep = HELPER_CACHE_SECONDS if secret is not None else HELPER_MISS_SECONDS
        with self._lock:
            self._answers[key] = (self._clock() + keep, secret)
        return secret


def _run_helper(helper: str, server: str, *, feed: str) -> Secret | None:
    program = f"docker-credential-{helper}"
    try:
        done = subprocess.run(  # a fixed argv; the name is validated
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise FeedAuthError(feed, f"credential helper {program} is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise FeedAuthError(
            feed, f"credential helper {program} did not answer within {HELPER_TIMEOUT:.0f}s"
        ) from None
    except OSError as exc:
        raise FeedAuthError(feed, f"credential helper {program}: {_reason(exc)}") from None
    output = done.stdout[:MAX_HELPER_OUTPUT]
    if done.returncode != 0:
        if b"credentials not found" in output.lower() + done.stderr[:1000].lower():
            return None
        raise FeedAuthError(feed, f"credential helper {program} failed (exit {done.returncode})")
    try:
        answer = json.loads(output)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, TypeError, KeyError):
        raise FeedAuthError(feed, f"credential helper {program} gave no credentials") from None
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        raise FeedAuthError(feed, f"credential helper {program} gave no credentials")
    if username == "<token>":
        return Secret(identity_token=secret)
    return Secret(username=username, password=secret)


TokenKey = tuple[str, str, tuple[str, ...], str]
"""(realm, service, scopes, identity): a token is valid only for what it was asked."""


@dataclass
class _Token:
    value: str
    refresh_at: float


class TokenCache:
    """Bearer tokens keyed by (realm, service, scopes, identity); thread-safe.

    A token is handed out until ``expires_in`` minus a safety margin has passed, so
    a request never leaves with a token that expires in flight. ``get_or_fetch``
    holds a per-key lock while fetching: concurrent workers asking for the same
    scope cause one token request, not one each. Share one cache between clients
    of the same registry to share tokens.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, _Token] = {}
        self._fetch_locks: dict[TokenKey, threading.Lock] = {}

    @staticmethod
    def safety_margin(expires_in: float) -> float:
        """Refresh this many seconds before expiry: 10 % of the lifetime, 1-30 s."""
        return min(30.0, max(1.0, expires_in * 0.1))

    def get(self, key: TokenKey) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is None:
                return None
            if self._clock() >= token.refresh_at:
                del self._tokens[key]
                return None
            return token.value

    def put(self, key: TokenKey, value: str, expires_in: float) -> None:
        refresh_at = self._clock() + max(0.0, expires_in - self.safety_margin(expires_in))
        with self._lock:
            self._tokens[key] = _Token(value, refresh_at)

    def invalidate(self, key: TokenKey, value: str) -> None:
        """Drop ``value`` (the registry rejected it) unless a newer token replaced it."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.value == value:
                del self._tokens[key]

    def get_or_fetch(self, key: TokenKey, fetch: Callable[[], tuple[str, float]]) -> str:
        """The cached token, or ``fetch()`` -> (token, expires_in) stored and returned."""
        cached = self.get(key)
        if cached is not None:
            return cached
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            cached = self.get(key)  # another thread may have fetched it meanwhile
            if cached is not None:
                return cached
            value, expires_in = fetch()
            self.put(key, value, expires_in)
            return value
