"""Holes found by the hostile-contributor review of issue 14's fixes (one test each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import model
from reconciler.errors import FeedAuthError
from reconciler.feeds import open_feed

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
