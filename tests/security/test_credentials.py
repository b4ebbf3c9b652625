"""Feed credentials come only from the operator's grants and go only to their own host.

The config repository is untrusted (issue 14, item 2). Real local HTTP servers play the
registry a secret belongs to (``legit``), an attacker's server, and a token server on
another host; every server records every request it is sent (Authorization header,
decoded Basic credentials, query, body). The matrix below runs every credential form the
schema allows (``usernameEnv``/``passwordEnv``, ``passwordFile``, ``dockerConfig`` with
``auth``, ``identitytoken``, ``registrytoken``, ``credHelpers``, ``credsStore``) against
every way a config author or a hostile registry could divert it (feed URL pointed at the
attacker, a bearer realm on another host, redirects of registry and token requests,
plain http without the operator's consent), for OCI and Helm feeds. The attacker's
server must never receive a secret meant for another host or for the reconciler itself.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler import model
from reconciler.cli import main
from reconciler.config import load_config
from reconciler.errors import ConfigError, FeedAuthError, FeedError
from reconciler.feeds import open_feed
from reconciler.grants import feed_host, policy_from_env
from tests.helpers.configrepo import AppSpec, config_files, write_files

FEED_SECRET = "feed-secret-7f3a1c"
DOCKER_SECRET = "docker-auth-secret-91c2e0"
IDENTITY_SECRET = "identity-refresh-5d0e44"
REGISTRY_TOKEN = "registry-token-b44f19"
HELPER_SECRET = "helper-secret-22aa07"
ISSUED_TOKEN = "issued-bearer-token-c0ffee"  # what the legit token server hands out
ATTACKER_TOKEN = "attacker-own-token"  # what the attacker's token server hands out
GIT_SECRET = "git-password-0badc0de"
WEBHOOK_SECRET = "webhook-secret-feedface"
API_TOKEN = "api-token-deadbeef"
ALL_SECRETS = (
    FEED_SECRET,
    DOCKER_SECRET,
    IDENTITY_SECRET,
    REGISTRY_TOKEN,
    HELPER_SECRET,
    ISSUED_TOKEN,
    GIT_SECRET,
    WEBHOOK_SECRET,
    API_TOKEN,
)
INDEX = (
    "apiVersion: v1\nentries:\n  app:\n    - {name: app, version: 1.0.0, "
    'digest: "' + "a" * 64 + '", urls: [app-1.0.0.tgz]}\n'
)

Respond = Callable[["Seen"], tuple[int, dict[str, str], bytes]]


@dataclass
class Seen:
    method: str
    path: str
    authorization: str
    body: str

    def text(self) -> str:
        """Everything a secret could travel in, Basic credentials decoded."""
        decoded = ""
        scheme, _, value = self.authorization.partition(" ")
        if scheme.lower() == "basic":
            decoded = base64.b64decode(value + "==").decode("utf-8", "replace")
        return " ".join((self.path, self.authorization, decoded, self.body))


@dataclass
class RecordingServer:
    """A real HTTP server on loopback that records every request and answers with
    ``respond`` (swappable per test)."""

    respond: Respond
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                request = Seen(self.command, self.path, self.headers.get("Authorization", ""), body)
                recorder.seen.append(request)
                status, headers, payload = recorder.respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def received(self) -> str:
        return "\n".join(seen.text() for seen in self.seen)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _json(document: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(document).encode()


def _accepted(authorization: str) -> bool:
    """The registries accept any credential (they only record what they get)."""
    text = Seen("", "", authorization, "").text()
    return any(secret in text for secret in (*ALL_SECRETS, ATTACKER_TOKEN))


def basic_registry(request: Seen) -> tuple[int, dict[str, str], bytes]:
    if request.path.startswith("/v2/") and not _accepted(request.authorization):
        return 401, {"WWW-Authenticate": 'Basic realm="legit"'}, b""
    if request.path.endswith("index.yaml"):
        return 200, {"Content-Type": "application/x-yaml"}, INDEX.encode()
    return _json({"name": "app", "tags": ["1.0.0"]})


def bearer_registry(realm: str, token: str = ISSUED_TOKEN) -> Respond:
    def respond(request: Seen) -> tuple[int, dict[str, str], bytes]:
        if request.path.startswith("/token"):
            return _json({"token": token, "expires_in": 300})
        if not _accepted(request.authorization):
            challenge = f'Bearer realm="{realm}",service="legit",scope="repository:app:pull"'
            return 401, {"WWW-Authenticate": challenge}, b""
        return _json({"name": "app", "tags": ["1.0.0"]})

    return respond


def redirecting(target: str, *, prefix: str, otherwise: Respond) -> Respond:
    """Send requests under ``prefix`` (registry ones only once they carry credentials)
    to ``target`` with a 307; answer the rest with ``otherwise``."""

    def respond(request: Seen) -> tuple[int, dict[str, str], bytes]:
        if request.path.startswith(prefix) and (prefix == "/token" or request.authorization):
            return 307, {"Location": target + request.path}, b""
        return otherwise(request)

    return respond


@pytest.fixture
def servers() -> Iterator[dict[str, RecordingServer]]:
    started = {
        "legit": RecordingServer(basic_registry),
        "attacker": RecordingServer(basic_registry),
    }
    yield started
    for server in started.values():
        server.stop()


HELPER = """#!/bin/sh
read -r server
if [ "$server" = "{host}" ]; then
  echo '{{"ServerURL":"{host}","Username":"u","Secret":"{secret}"}}'
else
  echo "credentials not found in native keychain"; exit 1
fi
"""


@dataclass
class Setup:
    """A credential form for the legit host: what the feed says and what the operator
    provides, with grants bound to the legit host."""

    credentials: model.Credentials
    env: dict[str, str]
    secret: str


def credential_form(
    form: str, legit: RecordingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Setup:
    secrets = tmp_path / "secrets" / "legit"
    secrets.mkdir(parents=True, exist_ok=True)
    env = {
        # Operator grants bound to the legit host, http allowed everywhere: only the
        # binding of credentials to their host protects them here.
        "RECONCILER_FEED_ENV_PREFIX": f"{legit.host}=RECONCILER_FEED_LEGIT_",
        "RECONCILER_CREDENTIALS_DIR": f"{legit.host}={secrets}",
        "RECONCILER_ALLOW_HTTP_CREDENTIALS": "",  # filled by the caller
        "RECONCILER_GIT_PASSWORD": GIT_SECRET,
    }
    if form == "env":
        env["RECONCILER_FEED_LEGIT_PW"] = FEED_SECRET
        creds = model.Credentials(username="u", password_env="RECONCILER_FEED_LEGIT_PW")
        return Setup(creds, env, FEED_SECRET)
    if form == "file":
        (secrets / "password").write_text(FEED_SECRET + "\n")
        return Setup(
            model.Credentials(username="u", password_file=str(secrets / "password")),
            env,
            FEED_SECRET,
        )
    entry: dict[str, Any] = {}
    secret = {
        "docker-auth": DOCKER_SECRET,
        "identitytoken": IDENTITY_SECRET,
        "registrytoken": REGISTRY_TOKEN,
        "credHelpers": HELPER_SECRET,
        "credsStore": HELPER_SECRET,
    }[form]
    if form == "docker-auth":
        entry = {
            "auths": {legit.host: {"auth": base64.b64encode(b"u:" + secret.encode()).decode()}}
        }
    elif form in ("identitytoken", "registrytoken"):
        entry = {"auths": {legit.host: {form: secret}}}
    else:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        helper = bin_dir / "docker-credential-legit"
        helper.write_text(HELPER.format(host=legit.host, secret=secret))
        helper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        entry = (
            {"credHelpers": {legit.host: "legit"}}
            if form == "credHelpers"
            else {"credsStore": "legit"}
        )
    (secrets / "config.json").write_text(json.dumps(entry))
    return Setup(model.Credentials(docker_config=str(secrets / "config.json")), env, secret)


def poll(feed: model.Feed, env: dict[str, str], tmp_path: Path) -> FeedError | None:
    """One tag listing; the feed error it ends with, if any."""
    client = open_feed(feed, base_dir=tmp_path, env=env)
    try:
        client.list_tags("app")
    except FeedError as exc:
        return exc
    finally:
        client.close()
    return None


FORMS = [
    "env",
    "file",
    "docker-auth",
    "identitytoken",
    "registrytoken",
    "credHelpers",
    "credsStore",
]
ATTACKS = ["none", "feed-at-attacker", "realm-on-attacker", "redirect", "token-redirect", "http"]


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("form", FORMS)
def test_no_secret_reaches_another_host(
    servers: dict[str, RecordingServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
    attack: str,
) -> None:
    legit, attacker = servers["legit"], servers["attacker"]
    setup = credential_form(form, legit, tmp_path, monkeypatch)
    env = {**setup.env, "RECONCILER_ALLOW_HTTP_CREDENTIALS": f"{legit.host},{attacker.host}"}
    legit.respond = bearer_registry(f"{legit.url}/token")
    url = legit.url
    if attack == "feed-at-attacker":
        url = attacker.url
        attacker.respond = bearer_registry(f"{attacker.url}/token", ATTACKER_TOKEN)
    elif attack == "realm-on-attacker":
        legit.respond = bearer_registry(f"{attacker.url}/token")
        attacker.respond = bearer_registry(f"{attacker.url}/token", ATTACKER_TOKEN)
    elif attack in ("redirect", "token-redirect"):
        prefix = "/v2/" if attack == "redirect" else "/token"
        legit.respond = redirecting(attacker.url, prefix=prefix, otherwise=legit.respond)
    elif attack == "http":
        env["RECONCILER_ALLOW_HTTP_CREDENTIALS"] = attacker.host
    feed = model.Feed("f", "oci", url, insecure=True, credentials=setup.credentials)
    error = poll(feed, env, tmp_path)

    assert not any(secret in attacker.received() for secret in ALL_SECRETS), attacker.seen
    if attack == "none":
        assert error is None
        assert setup.secret in legit.received()  # the recorder sees what it is sent
    if attack == "http":
        assert isinstance(error, FeedAuthError)
        assert "plain http" in str(error)
        assert not any(secret in legit.received() for secret in ALL_SECRETS)
    if attack in ("feed-at-attacker", "realm-on-attacker") and form != "registrytoken":
        assert isinstance(error, FeedAuthError) or error is None or "401" in str(error)


@pytest.mark.parametrize(
    "form", ["docker-auth", "identitytoken", "registrytoken", "credHelpers", "credsStore"]
)
def test_docker_config_entries_go_only_to_their_host(
    servers: dict[str, RecordingServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
) -> None:
    """Even with the config.json granted to every host, the entry (or helper answer) for
    the legit registry is never sent to a feed at another host."""
    legit, attacker = servers["legit"], servers["attacker"]
    setup = credential_form(form, legit, tmp_path, monkeypatch)
    assert setup.credentials.docker_config is not None
    env = {
        **setup.env,
        "RECONCILER_CREDENTIALS_DIR": str(Path(setup.credentials.docker_config).parent),
        "RECONCILER_ALLOW_HTTP_CREDENTIALS": f"{legit.host},{attacker.host}",
    }
    attacker.respond = bearer_registry(f"{attacker.url}/token", ATTACKER_TOKEN)
    feed = model.Feed("f", "oci", attacker.url, insecure=True, credentials=setup.credentials)
    assert poll(feed, env, tmp_path) is None  # anonymous: nothing stored for that host
    assert attacker.seen
    assert not any(secret in attacker.received() for secret in ALL_SECRETS), attacker.seen


@pytest.mark.parametrize("form", ["env", "file", "docker-auth"])
@pytest.mark.parametrize("attack", ["none", "feed-at-attacker", "redirect", "http"])
def test_helm_repository_secrets_stay_on_their_host(
    servers: dict[str, RecordingServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
    attack: str,
) -> None:
    legit, attacker = servers["legit"], servers["attacker"]
    setup = credential_form(form, legit, tmp_path, monkeypatch)
    env = {**setup.env, "RECONCILER_ALLOW_HTTP_CREDENTIALS": f"{legit.host},{attacker.host}"}
    url = f"{legit.url}/charts"
    if attack == "feed-at-attacker":
        url = f"{attacker.url}/charts"
    elif attack == "redirect":
        legit.respond = lambda request: (307, {"Location": attacker.url + request.path}, b"")
    elif attack == "http":
        env["RECONCILER_ALLOW_HTTP_CREDENTIALS"] = attacker.host
    feed = model.Feed("charts", "helm", url, insecure=True, credentials=setup.credentials)
    error = poll(feed, env, tmp_path)

    assert not any(secret in attacker.received() for secret in ALL_SECRETS), attacker.seen
    if attack == "none":
        assert error is None and setup.secret in legit.received()
    if attack in ("feed-at-attacker", "http"):
        assert isinstance(error, FeedAuthError)


# -- the reconciler's own secrets -------------------------------------------------


@pytest.fixture
def own_secrets(tmp_path: Path) -> dict[str, str]:
    """The reconciler's own secrets as the pod has them: env vars and mounted files in
    the mounted secrets directory, which the operator granted to feeds as a whole."""
    mounted = tmp_path / "run-secrets"
    (mounted / "git").mkdir(parents=True)
    (mounted / "webhook").mkdir()
    (mounted / "git" / "password").write_text(GIT_SECRET)
    (mounted / "webhook" / "secret").write_text(WEBHOOK_SECRET)
    return {
        "RECONCILER_GIT_PASSWORD": GIT_SECRET,
        "RECONCILER_GIT_USERNAME": "bot",
        "RECONCILER_GIT_TOKEN": API_TOKEN,
        "RECONCILER_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RECONCILER_GIT_PASSWORD_FILE": str(mounted / "git" / "password"),
        "RECONCILER_WEBHOOK_SECRET_FILE": str(mounted / "webhook" / "secret"),
        # The most permissive operator: every RECONCILER_ variable and the whole
        # mounted directory are granted, and http is allowed. Still refused by name.
        "RECONCILER_FEED_ENV_PREFIX": "RECONCILER_",
        "RECONCILER_CREDENTIALS_DIR": str(mounted),
    }


def _own_secret_forms(env: dict[str, str]) -> list[model.Credentials]:
    git_file = env["RECONCILER_GIT_PASSWORD_FILE"]
    mounted = Path(git_file).parents[1]
    link = mounted / "innocent"
    if not link.exists():
        link.symlink_to(git_file)
    return [
        model.Credentials(username="x", password_env="RECONCILER_GIT_PASSWORD"),
        model.Credentials(
            username_env="RECONCILER_GIT_USERNAME", password_env="RECONCILER_GIT_TOKEN"
        ),
        model.Credentials(username="x", password_env="RECONCILER_WEBHOOK_SECRET"),
        model.Credentials(username="x", password_file=git_file),
        model.Credentials(username="x", password_file=env["RECONCILER_WEBHOOK_SECRET_FILE"]),
        model.Credentials(username="x", password_file=str(link)),  # a symlink to it
        model.Credentials(username="x", password_file=f"{mounted}/webhook/../git/password"),
        model.Credentials(docker_config=git_file),
    ]


@pytest.mark.parametrize("kind", ["oci", "helm"])
def test_reconciler_own_secrets_never_reach_a_feed(
    servers: dict[str, RecordingServer], own_secrets: dict[str, str], tmp_path: Path, kind: str
) -> None:
    attacker = servers["attacker"]
    env = {**own_secrets, "RECONCILER_ALLOW_HTTP_CREDENTIALS": attacker.host}
    for credentials in _own_secret_forms(env):
        feed = model.Feed("evil", kind, attacker.url, insecure=True, credentials=credentials)  # type: ignore[arg-type]
        error = poll(feed, env, tmp_path)
        assert isinstance(error, FeedAuthError), credentials
        assert "reconciler's own" in str(error) or "outside" in str(error), str(error)
    assert not any(secret in attacker.received() for secret in ALL_SECRETS)
    assert all(not seen.authorization for seen in attacker.seen)


def test_env_and_files_outside_the_grants_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.write_text("x")
    env = {"RECONCILER_CREDENTIALS_DIR": str(tmp_path / "granted"), "OTHER_PW": "x"}
    for credentials, reason in [
        (model.Credentials(username="x", password_env="OTHER_PW"), "outside the environment"),
        (model.Credentials(username="x", password_file=str(outside)), "outside the directories"),
        (model.Credentials(docker_config=str(outside)), "outside the directories"),
        (model.Credentials(username="x", password_file="relative/pw"), "not an absolute path"),
    ]:
        feed = model.Feed("f", "oci", "https://registry.invalid", credentials=credentials)
        with pytest.raises(FeedAuthError, match=reason):
            open_feed(feed, base_dir=tmp_path, env=env).list_tags("app")


def test_a_token_realm_on_another_host_is_used_when_the_operator_pairs_it(
    servers: dict[str, RecordingServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legit, auth = servers["legit"], servers["attacker"]  # here: the registry's own auth host
    setup = credential_form("env", legit, tmp_path, monkeypatch)
    legit.respond = bearer_registry(f"{auth.url}/token")
    auth.respond = bearer_registry(f"{auth.url}/token")
    env = {
        **setup.env,
        "RECONCILER_ALLOW_HTTP_CREDENTIALS": f"{legit.host},{auth.host}",
        "RECONCILER_TOKEN_REALMS": f"{legit.host}={auth.host}",
    }
    feed = model.Feed("f", "oci", legit.url, insecure=True, credentials=setup.credentials)
    assert poll(feed, env, tmp_path) is None
    assert FEED_SECRET in auth.received()


# -- validate: file, line and key --------------------------------------------------


def _feed_problems(tmp_path: Path, feed_extra: str) -> list[str]:
    files = config_files(
        "http://attacker.test", [AppSpec("api", "acme/api", "r/api")], feed_extra=feed_extra
    )
    with pytest.raises(ConfigError) as info:
        load_config(write_files(tmp_path, files))
    return [str(p) for p in info.value.problems]


def test_validate_reports_ungranted_credentials_with_file_line_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RECONCILER_FEED_ENV_PREFIX", "RECONCILER_CREDENTIALS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECONCILER_ALLOW_HTTP_CREDENTIALS", "attacker.test")
    problems = _feed_problems(
        tmp_path,
        "insecure: true\ncredentials:\n"
        "  usernameEnv: HOME\n"
        "  passwordEnv: RECONCILER_GIT_PASSWORD\n"
        "  passwordFile: /etc/reconciler/git/password\n"
        "  dockerConfig: ../../.docker\n",
    )
    assert problems == [
        "feeds/reg.yaml:8: credentials.usernameEnv: not granted: HOME is outside the "
        "environment variables granted to feeds (RECONCILER_FEED_*)",
        "feeds/reg.yaml:9: credentials.passwordEnv: not granted: RECONCILER_GIT_PASSWORD "
        "is one of the reconciler's own settings or secrets",
        "feeds/reg.yaml:10: credentials.passwordFile: not granted: /etc/reconciler/git/password"
        " is outside the directories granted to feeds (/var/run/secrets/reconciler)",
        "feeds/reg.yaml:11: credentials.dockerConfig: not granted: ../../.docker is not an "
        "absolute path",
    ]


def test_validate_refuses_credentials_over_http_without_the_operator_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECONCILER_ALLOW_HTTP_CREDENTIALS", raising=False)
    problems = _feed_problems(
        tmp_path, "insecure: true\ncredentials: {username: x, passwordEnv: RECONCILER_FEED_PW}\n"
    )
    assert problems == [
        "feeds/reg.yaml:7: credentials: credentials would travel to attacker.test over plain "
        "http or unverified TLS; only the operator can allow that (--allow-http-credentials)"
    ]


def test_operator_flags_grant_what_validate_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "RECONCILER_FEED_ENV_PREFIX",
        "RECONCILER_CREDENTIALS_DIR",
        "RECONCILER_ALLOW_HTTP_CREDENTIALS",
        "RECONCILER_TOKEN_REALMS",
    ):
        monkeypatch.setenv(name, "")  # restored after the test: the flags set them
    files = config_files(
        "http://attacker.test",
        [AppSpec("api", "acme/api", "r/api")],
        feed_extra="insecure: true\ncredentials:\n"
        "  usernameEnv: TEAM_USER\n  passwordFile: /srv/feed-secrets/pw\n",
    )
    root = write_files(tmp_path / "repo", files)
    runner = CliRunner()
    refused = runner.invoke(main, ["validate", str(root)])
    assert refused.exit_code == 1
    granted = runner.invoke(
        main,
        [
            "--feed-env-prefix",
            "TEAM_",
            "--credentials-dir",
            "attacker.test=/srv/feed-secrets",
            "--allow-http-credentials",
            "attacker.test",
            "validate",
            str(root),
        ],
    )
    assert granted.exit_code == 0, granted.output
    # A grant bound to another host does not cover this feed.
    elsewhere = runner.invoke(
        main,
        [
            "--feed-env-prefix",
            "TEAM_",
            "--credentials-dir",
            "ghcr.io=/srv/feed-secrets",
            "--allow-http-credentials",
            "attacker.test",
            "validate",
            str(root),
        ],
    )
    assert elsewhere.exit_code == 1
    assert "passwordFile" in elsewhere.output


def test_user_info_in_a_feed_url_does_not_borrow_another_hosts_grant() -> None:
    """``https://ghcr.io@attacker.test`` is attacker.test: ghcr.io's grant does not apply."""
    policy = policy_from_env({"RECONCILER_FEED_ENV_PREFIX": "ghcr.io=RECONCILER_FEED_GHCR_"})
    host = feed_host("https://ghcr.io@attacker.test/x")
    assert host == "attacker.test"
    assert policy.env_problem("RECONCILER_FEED_GHCR_TOKEN", host) is not None
    assert policy.env_problem("RECONCILER_FEED_GHCR_TOKEN", "ghcr.io") is None


def test_kubeconfig_is_never_a_feed_credential(tmp_path: Path) -> None:
    """The kubeconfig verified deployments read the cluster with holds the cluster's
    credentials: config can name neither the variable nor the files it lists (nor
    ``~/.kube/config`` when it is unset), even where a grant would cover them."""
    granted = tmp_path / "granted"
    (granted / "kube").mkdir(parents=True)
    for name in ("a", "kube/config"):
        (granted / name).write_text("apiVersion: v1\nusers: [{user: {token: cluster}}]\n")
    (granted / "innocent").symlink_to(granted / "a")
    env = {
        "RECONCILER_CREDENTIALS_DIR": str(granted),
        "RECONCILER_FEED_ENV_PREFIX": "K",  # a careless grant that covers the variable
        "KUBECONFIG": f"{granted}/a:{granted}/kube/config",
    }
    forms = [
        (model.Credentials(username="x", password_env="KUBECONFIG"), env),
        (model.Credentials(username="x", password_file=f"{granted}/a"), env),
        (model.Credentials(username="x", password_file=f"{granted}/kube/config"), env),
        (model.Credentials(username="x", password_file=f"{granted}/innocent"), env),
        (model.Credentials(docker_config=f"{granted}/kube/config"), env),
        (  # KUBECONFIG unset: lightkube reads ~/.kube/config
            model.Credentials(username="x", password_file=str(tmp_path / "home/.kube/config")),
            {"RECONCILER_CREDENTIALS_DIR": str(tmp_path), "HOME": str(tmp_path / "home")},
        ),
    ]
    (tmp_path / "home/.kube").mkdir(parents=True)
    (tmp_path / "home/.kube/config").write_text("users: [{user: {token: cluster}}]\n")
    for credentials, environ in forms:
        feed = model.Feed("f", "oci", "https://registry.invalid", credentials=credentials)
        with pytest.raises(FeedAuthError, match="reconciler's own") as info:
            open_feed(feed, base_dir=tmp_path, env=environ).list_tags("app")
        assert "cluster" not in str(info.value)
    policy = policy_from_env(env)
    assert policy.password_file_problem(f"{granted}/a", "registry.invalid") is not None
    assert policy.password_file_problem(f"{granted}/kube/other", "registry.invalid") is None
