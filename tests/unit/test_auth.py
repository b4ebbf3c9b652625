"""Credential resolution (env, files, docker config.json) and the token cache."""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest

from reconciler.errors import FeedAuthError
from reconciler.feeds.auth import (
    CredentialResolver,
    Secret,
    TokenCache,
    normalise_registry_host,
    parse_docker_config,
)
from reconciler.model import Credentials


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


GRANTED = {"RECONCILER_CREDENTIALS_DIR": tempfile.gettempdir()}
"""The operator grants the temporary directory (where tests keep secret files) to feeds."""


def resolve(credentials: Credentials | None, host: str = "reg.test", **env: str) -> Secret | None:
    return CredentialResolver("feed", credentials, host, env={**GRANTED, **env}).resolve()


# -- env and files ---------------------------------------------------------------


def test_no_credentials_is_anonymous() -> None:
    assert resolve(None) is None
    assert resolve(Credentials(username="only-a-name")) is None


def test_username_and_password_from_env() -> None:
    secret = resolve(
        Credentials(username_env="RECONCILER_FEED_U", password_env="RECONCILER_FEED_P"),
        RECONCILER_FEED_U="bob",
        RECONCILER_FEED_P="pw",
    )
    assert secret == Secret(username="bob", password="pw")


def test_literal_username_with_password_env() -> None:
    assert resolve(
        Credentials(username="bob", password_env="RECONCILER_FEED_P"), RECONCILER_FEED_P="pw"
    ) == Secret("bob", "pw")


def test_missing_env_var_names_the_variable() -> None:
    with pytest.raises(FeedAuthError, match="environment variable RECONCILER_FEED_P is not set"):
        resolve(Credentials(username="bob", password_env="RECONCILER_FEED_P"))


def test_password_file_rotation_is_picked_up(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("first\n")
    resolver = CredentialResolver(
        "feed", Credentials(username="bob", password_file=str(secret_file)), "reg.test", env=GRANTED
    )
    assert resolver.resolve() == Secret("bob", "first")
    # Kubernetes swaps the file (new mtime); same size on purpose, so only mtime differs.
    secret_file.write_text("secnd\n")
    stat = secret_file.stat()
    os.utime(secret_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert resolver.resolve() == Secret("bob", "secnd")


def test_unchanged_password_file_is_not_reread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("pw")
    resolver = CredentialResolver(
        "feed", Credentials(username="bob", password_file=str(secret_file)), "reg.test", env=GRANTED
    )
    resolver.resolve()
    reads: list[Path] = []
    original = Path.read_text

    def counting_read_text(self: Path, *args: object, **kwargs: object) -> str:
        reads.append(self)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counting_read_text)
    for _ in range(3):
        assert resolver.resolve() == Secret("bob", "pw")
    assert reads == []


def test_missing_password_file_is_auth_error(tmp_path: Path) -> None:
    with pytest.raises(FeedAuthError, match=r"password file .*No such file"):
        resolve(Credentials(username="bob", password_file=str(tmp_path / "absent")))


def test_secret_repr_hides_secrets() -> None:
    text = repr(Secret(username="bob", password="hunter2", registry_token="tok"))
    assert "hunter2" not in text
    assert "tok'" not in text
    assert "bob" in text


# -- docker config.json ----------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("reg.test:5000", "reg.test:5000"),
        ("https://reg.test:5000", "reg.test:5000"),
        ("http://reg.test:5000/v1/", "reg.test:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("https://index.docker.io/v1/", "registry-1.docker.io"),
        ("https://index.docker.io/v1/", "index.docker.io"),
    ],
)
def test_auths_keys_match_host(key: str, host: str) -> None:
    document = {"auths": {key: {"auth": b64("bob:pw")}}}
    assert parse_docker_config(document, host, feed="f") == Secret("bob", "pw")


def test_exact_key_wins_over_legacy_key() -> None:
    document = {
        "auths": {
            "https://reg.test/v1/": {"auth": b64("old:pw")},
            "reg.test": {"auth": b64("new:pw")},
        }
    }
    assert parse_docker_config(document, "reg.test", feed="f") == Secret("new", "pw")


def test_auth_is_split_at_the_first_colon() -> None:
    document = {"auths": {"reg.test": {"auth": b64("bob:pa:ss:word")}}}
    assert parse_docker_config(document, "reg.test", feed="f") == Secret("bob", "pa:ss:word")


def test_username_password_fields_and_registrytoken() -> None:
    fields = {"auths": {"reg.test": {"username": "bob", "password": "pw"}}}
    assert parse_docker_config(fields, "reg.test", feed="f") == Secret("bob", "pw")
    token = {"auths": {"reg.test": {"registrytoken": "rt"}}}
    assert parse_docker_config(token, "reg.test", feed="f") == Secret(registry_token="rt")


def test_entries_without_usable_secret_are_anonymous() -> None:
    assert parse_docker_config({"auths": {"reg.test": {}}}, "reg.test", feed="f") is None
    assert (
        parse_docker_config({"auths": {"other": {"auth": b64("a:b")}}}, "reg.test", feed="f")
        is None
    )


def test_identity_token_entry_is_a_refresh_token() -> None:
    identity = {"auths": {"reg.test": {"identitytoken": "refresh-me"}}}
    secret = parse_docker_config(identity, "reg.test", feed="f")
    assert secret == Secret(identity_token="refresh-me")
    assert "refresh-me" not in repr(secret)


# -- credential helpers (real executables on PATH) ---------------------------------

HELPER = """#!/bin/sh
# docker-credential-{name}: answers like a real helper; logs each call.
read -r server
echo "$server" >> "{log}"
{body}
"""


@pytest.fixture
def helper_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """install(name, body) -> log file; helpers go into a directory put first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def install(name: str, body: str) -> Path:
        log = tmp_path / f"{name}.log"
        script = bin_dir / f"docker-credential-{name}"
        script.write_text(HELPER.format(name=name, log=log, body=body))
        script.chmod(0o755)
        return log

    return install


ANSWER = """echo '{{"ServerURL":"'"$server"'","Username":"{user}","Secret":"{secret}"}}'"""


def test_cred_helper_for_the_host_wins_over_store_and_auths(helper_path) -> None:
    ecr_log = helper_path("ecr", ANSWER.format(user="AWS", secret="ecr-pass"))
    store_log = helper_path("store", ANSWER.format(user="s", secret="store-pass"))
    document = {
        "credHelpers": {"reg.test:5000": "ecr"},
        "credsStore": "store",
        "auths": {"reg.test:5000": {"auth": b64("file:pass")}, "other.test": {}},
    }
    assert parse_docker_config(document, "reg.test:5000", feed="f") == Secret("AWS", "ecr-pass")
    assert ecr_log.read_text() == "reg.test:5000\n"  # the server URL on stdin
    # Any other host goes to the store, which docker prefers over auths too.
    assert parse_docker_config(document, "other.test", feed="f") == Secret("s", "store-pass")
    assert store_log.read_text() == "other.test\n"


def test_cred_helper_answers(helper_path) -> None:
    helper_path("tok", ANSWER.format(user="<token>", secret="refresh-1"))
    helper_path("none", 'echo "credentials not found in native keychain"; exit 1')
    helper_path("broken", 'echo "secret-ish output"; echo oops >&2; exit 2')
    helper_path("garbage", 'echo "not json"')

    def ask(name: str) -> Secret | None:
        return parse_docker_config({"credsStore": name}, "reg.test", feed="f")

    assert ask("tok") == Secret(identity_token="refresh-1")
    assert ask("none") is None  # nothing stored for this registry: anonymous
    with pytest.raises(FeedAuthError) as failed:
        ask("broken")
    assert str(failed.value).endswith("credential helper docker-credential-broken failed (exit 2)")
    assert "secret-ish" not in str(failed.value)
    with pytest.raises(FeedAuthError, match="docker-credential-garbage gave no credentials"):
        ask("garbage")
    with pytest.raises(FeedAuthError, match="docker-credential-missing is not on PATH"):
        ask("missing")
    with pytest.raises(FeedAuthError, match="invalid credential helper name"):
        ask("../../bin/sh")


def test_docker_hub_helper_is_asked_for_the_historical_key(helper_path) -> None:
    log = helper_path("desktop", ANSWER.format(user="hub", secret="pw"))
    secret = parse_docker_config({"credsStore": "desktop"}, "registry-1.docker.io", feed="f")
    assert secret == Secret("hub", "pw")
    assert log.read_text() == "https://index.docker.io/v1/\n"


def test_helper_answers_are_reused_for_a_while(helper_path, tmp_path: Path) -> None:
    log = helper_path("counted", ANSWER.format(user="u", secret="p"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credsStore": "counted"}))
    resolver = CredentialResolver(
        "f", Credentials(docker_config=str(config)), "reg.test", env=GRANTED
    )
    assert [resolver.resolve() for _ in range(5)] == [Secret("u", "p")] * 5
    assert log.read_text().count("reg.test") == 1  # one helper run, not one per request


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"auth": "!!!not base64"}, "not valid base64"),
        ({"auth": b64("no-colon")}, "not 'user:password'"),
        ({"auth": b64(":pw")}, "not 'user:password'"),
    ],
)
def test_broken_auth_entries_are_errors(entry: dict[str, str], message: str) -> None:
    with pytest.raises(FeedAuthError, match=message):
        parse_docker_config({"auths": {"reg.test": entry}}, "reg.test", feed="f")


def test_docker_config_file_path_directory_and_default(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"reg.test": {"auth": b64("bob:pw")}}})
    )
    by_file = Credentials(docker_config=str(tmp_path / "config.json"))
    by_dir = Credentials(docker_config=str(tmp_path))
    by_default = Credentials(docker_config="default")
    assert resolve(by_file) == Secret("bob", "pw")
    assert resolve(by_dir) == Secret("bob", "pw")
    assert resolve(by_default, DOCKER_CONFIG=str(tmp_path)) == Secret("bob", "pw")


def test_docker_config_is_reread_after_docker_login(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"reg.test": {"auth": b64("bob:one")}}}))
    resolver = CredentialResolver(
        "f", Credentials(docker_config=str(path)), "reg.test", env=GRANTED
    )
    assert resolver.resolve() == Secret("bob", "one")
    path.write_text(json.dumps({"auths": {"reg.test": {"auth": b64("bob:two2")}}}))
    assert resolver.resolve() == Secret("bob", "two2")


def test_malformed_docker_config_is_auth_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(FeedAuthError, match="not valid JSON"):
        resolve(Credentials(docker_config=str(path)))


def test_password_env_wins_over_docker_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"reg.test": {"auth": b64("bob:file")}}}))
    creds = Credentials(username="amy", password_env="RECONCILER_FEED_P", docker_config=str(path))
    assert resolve(creds, RECONCILER_FEED_P="env") == Secret("amy", "env")


def test_normalise_registry_host() -> None:
    assert normalise_registry_host("HTTPS://Reg.Test:443/v2/") == "reg.test:443"
    assert normalise_registry_host("docker.io") == "index.docker.io"


# -- token cache -----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


KEY = ("https://auth.test/token", "reg", ("repository:a:pull",), "bob")


def test_token_cache_expires_before_the_token_does() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock)
    cache.put(KEY, "t1", expires_in=300)
    clock.now = 269
    assert cache.get(KEY) == "t1"
    clock.now = 271  # 30 s margin for a 300 s token
    assert cache.get(KEY) is None


def test_token_cache_keys_are_distinct() -> None:
    cache = TokenCache(clock=Clock())
    cache.put(KEY, "t1", 60)
    assert cache.get((*KEY[:3], "amy")) is None
    assert cache.get((KEY[0], KEY[1], ("repository:b:pull",), KEY[3])) is None


def test_invalidate_only_drops_the_rejected_token() -> None:
    cache = TokenCache(clock=Clock())
    cache.put(KEY, "new", 60)
    cache.invalidate(KEY, "old")
    assert cache.get(KEY) == "new"
    cache.invalidate(KEY, "new")
    assert cache.get(KEY) is None


def test_get_or_fetch_fetches_once_for_concurrent_callers() -> None:
    cache = TokenCache()
    fetches = 0

    def fetch() -> tuple[str, float]:
        nonlocal fetches
        fetches += 1
        time.sleep(0.05)
        return "t", 60.0

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_fetch(KEY, fetch)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["t"] * 8
    assert fetches == 1
