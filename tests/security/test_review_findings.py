"""Holes found by the hostile-contributor review of issue 14's fixes (one test each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import model
from reconciler.errors import FeedAuthError
from reconciler.feeds import open_feed
from reconciler.grants import policy_from_env

APP_KEY = "-----BEGIN RSA PRIVATE KEY-----app-key-5e11-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize("kind", ["oci", "helm"])
def test_github_app_private_key_is_never_a_feed_credential(tmp_path: Path, kind: str) -> None:
    """The GitHub App's private key is one of the reconciler's own secrets, mounted like
    the Git password in the secrets directory the operator granted to feeds."""
    mounted = tmp_path / "run-secrets"
    mounted.mkdir()
    (mounted / "github-app.pem").write_text(APP_KEY)
    env = {
        "RECONCILER_CREDENTIALS_DIR": str(mounted),
        "RECONCILER_GITHUB_APP_ID": "1",
        "RECONCILER_GITHUB_APP_PRIVATE_KEY_FILE": str(mounted / "github-app.pem"),
    }
    credentials = model.Credentials(username="x", password_file=str(mounted / "github-app.pem"))
    feed = model.Feed("evil", kind, "https://registry.invalid", credentials=credentials)  # type: ignore[arg-type]
    with pytest.raises(FeedAuthError, match="reconciler's own secrets"):
        client = open_feed(feed, base_dir=tmp_path, env=env)
        client.list_tags("app")


def _mounted_docker_config(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """DOCKER_CONFIG inside the granted secrets directory, as deploy/sidecar ships it."""
    mounted = tmp_path / "run-secrets"
    (mounted / "registry").mkdir(parents=True)
    config = mounted / "registry" / "config.json"
    config.write_text('{"auths": {"ghcr.io": {"auth": "Z2hjcjpkb2NrZXItc2VjcmV0"}}}')
    (mounted / "innocent").symlink_to(config)
    env = {"RECONCILER_CREDENTIALS_DIR": str(mounted), "DOCKER_CONFIG": str(mounted / "registry")}
    return mounted, env


@pytest.mark.parametrize("name", ["registry/config.json", "registry//config.json", "innocent"])
def test_the_operator_docker_config_is_never_read_whole_as_a_password(
    tmp_path: Path, name: str
) -> None:
    """Its entries go only to their own host (dockerConfig: default); read whole as a
    ``passwordFile`` it would carry every registry's credentials to the feed's host."""
    mounted, env = _mounted_docker_config(tmp_path)
    credentials = model.Credentials(username="x", password_file=f"{mounted}/{name}")
    feed = model.Feed("evil", "oci", "https://registry.invalid", credentials=credentials)
    with pytest.raises(FeedAuthError, match="docker config"):
        open_feed(feed, base_dir=tmp_path, env=env).list_tags("app")


def test_validate_refuses_the_operator_docker_config_as_a_password_file(tmp_path: Path) -> None:
    mounted, env = _mounted_docker_config(tmp_path)
    policy = policy_from_env(env)
    problem = policy.password_file_problem(f"{mounted}/registry/config.json", "attacker")
    assert problem is not None and "docker config" in problem
    assert policy.password_file_problem(f"{mounted}/registry/other", "attacker") is None
