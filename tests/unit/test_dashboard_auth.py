"""Who may use the dashboard's action, and its CSRF checks (reconciler/dashboard_actions.py)."""

from __future__ import annotations

import pytest

from reconciler.dashboard_actions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    ActionAuth,
    ActionRefused,
    cookie_header,
    form_fields,
    proposal_outcome,
    read_cookies,
)
from reconciler.reconcile import PassResult


def auth(secret: str | None = "s3cret", now: list[float] | None = None) -> ActionAuth:
    clock = now if now is not None else [1000.0]
    return ActionAuth(lambda: secret, clock=lambda: clock[0])


def refused(call: object, *args: object) -> int:
    with pytest.raises(ActionRefused) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.status


def test_a_session_lasts_12_hours_and_ends_when_the_secret_rotates() -> None:
    now = [1000.0]
    session = auth(now=now).session_cookie()
    assert session is not None
    assert auth(now=now).who({}, {SESSION_COOKIE: session}) == ("dashboard session", True)
    now[0] += 12 * 3600 + 1
    assert refused(auth(now=now).who, {}, {SESSION_COOKIE: session}) == 401
    assert refused(auth("rotated").who, {}, {SESSION_COOKIE: session}) == 401
    assert refused(auth().who, {}, {SESSION_COOKIE: "1000.forged"}) == 401


def test_bearer_tokens_are_not_ambient_and_wrong_ones_are_401() -> None:
    assert auth().who({"authorization": "Bearer s3cret"}, {}) == ("dashboard token", False)
    assert refused(auth().who, {"authorization": "Bearer s3cre"}, {}) == 401
    assert refused(auth(None).who, {"authorization": "Bearer "}, {}) == 401
    assert not auth(None).check_secret("")


def test_a_proxy_header_is_the_user_only_when_configured() -> None:
    proxied = ActionAuth(lambda: None, "x-forwarded-email")
    assert proxied.who({"x-forwarded-email": "a@example.com"}, {}) == ("a@example.com", True)
    assert refused(auth().who, {"x-forwarded-email": "a@example.com"}, {}) == 401


def test_the_csrf_token_is_bound_to_the_browser_cookie_and_the_process() -> None:
    one = auth()
    token = one.csrf_token("cookie-a")
    one.check_csrf({CSRF_COOKIE: "cookie-a"}, token)
    assert refused(one.check_csrf, {CSRF_COOKIE: "cookie-b"}, token) == 403
    assert refused(one.check_csrf, {}, one.csrf_token("")) == 403
    assert refused(auth().check_csrf, {CSRF_COOKIE: "cookie-a"}, token) == 403  # restarted


def test_only_the_dashboards_own_origin_may_post() -> None:
    one = auth()
    one.check_origin({"host": "dash:8080", "origin": "http://dash:8080"})
    behind_tls = {"host": "dash", "referer": "https://dash/feeds", "x-forwarded-proto": "https"}
    one.check_origin(behind_tls)
    one.check_origin({"host": "dash"})  # no browser's cross-site request
    assert refused(one.check_origin, {"host": "dash", "origin": "https://evil"}) == 403
    assert refused(one.check_origin, {"host": "dash", "origin": "null"}) == 403
    pinned = ActionAuth(lambda: None, origin="https://reconciler.example.com")
    pinned.check_origin({"host": "10.0.0.7:8080", "origin": "https://reconciler.example.com"})


def test_cookies_forms_and_outcomes() -> None:
    assert cookie_header("c", "v", secure=True, max_age=60) == (
        "c=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure")  # fmt: skip
    assert read_cookies('a=1; b="2"') == {"a": "1", "b": "2"}
    assert read_cookies("\x00bad;;=") == {}
    assert form_fields(b"a=1&b=%3Cx%3E", ("a",), ("b", "c")) == {"a": "1", "b": "<x>"}
    assert refused(form_fields, b"a=1&a=2", ("a",)) == 400
    assert refused(form_fields, b"b=1", ("a",)) == 400
    opened = PassResult(pull_requests=[{"action": "opened", "number": 3,
                                        "url": "javascript:alert(1)"}])  # fmt: skip
    assert proposal_outcome(opened).url is None  # only a web page is linked
    kept = PassResult(waiting=[("p", "prod", "1.0: waiting for pull request #2")])
    assert proposal_outcome(kept).opened and "#2" in proposal_outcome(kept).message
    failed = PassResult(ok=False, git_error="pull-request mode: 403 Forbidden")
    assert not proposal_outcome(failed).opened


def test_wrong_secrets_are_throttled_per_client_for_a_window() -> None:
    from reconciler.dashboard_actions import FAILURE_WINDOW, MAX_FAILED_SECRETS

    now = [1000.0]
    guarded = auth(now=now)
    for _ in range(MAX_FAILED_SECRETS):
        guarded.throttle("10.0.0.1")
        guarded.note_failure("10.0.0.1")
    assert refused(guarded.throttle, "10.0.0.1") == 429
    guarded.throttle("10.0.0.2")  # another client is not held back
    now[0] += FAILURE_WINDOW
    guarded.throttle("10.0.0.1")  # the window passed
