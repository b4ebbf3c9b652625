"""A forged session cookie is "not signed in" (401, or a page without the action),
never an unhandled error: the issue time must be a short run of ASCII digits before
``int()`` sees it (``'²'.isdigit()`` is true, and ``int()`` refuses 4,301 digits)."""

from __future__ import annotations

import httpx
import pytest

from reconciler.dashboard import Dashboard
from reconciler.dashboard_actions import (
    SESSION_COOKIE,
    ActionAuth,
    ActionRefused,
    Actions,
    Proposal,
)
from reconciler.server import ReconcilerServer, WebhookSecrets

FORGED = ["\u00b2.x", "\u0661\u0662.x", "9" * 5000 + ".x"]


@pytest.mark.parametrize("cookie", FORGED, ids=["superscript", "arabic-indic", "5000-digits"])
def test_a_forged_session_cookie_is_not_signed_in(cookie: str) -> None:
    auth = ActionAuth(lambda: "s3cret", clock=lambda: 1000.0)
    with pytest.raises(ActionRefused) as refused:
        auth.who({}, {SESSION_COOKIE: cookie})
    assert refused.value.status == 401


def test_the_server_answers_a_page_and_a_proposal_with_a_forged_session() -> None:
    actions = Actions(ActionAuth(lambda: "s3cret"), lambda *args: Proposal(False, "no"))
    server = ReconcilerServer(("127.0.0.1", 0), on_event=lambda e: None,
                              secrets=WebhookSecrets(environ={}),
                              dashboard=Dashboard(actions_on=True), actions=actions)  # fmt: skip
    with server as app, httpx.Client(timeout=30) as client:
        for value in ("\u00b2.x".encode("latin-1"), b"9" * 5000 + b".x"):
            cookie = b"reconciler_session=" + value
            page = client.get(f"{app.url}/", headers={b"Cookie": cookie})
            assert page.status_code == 200
            form = {"project": "p", "environment": "e", "release": "1"}
            proposed = client.post(f"{app.url}/propose", data=form, headers={b"Cookie": cookie})
            assert proposed.status_code == 401
