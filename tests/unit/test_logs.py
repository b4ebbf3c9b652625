"""Logging setup (reconciler.logs): JSON lines, human text, secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from reconciler.logs import clear_secrets, register_secret, scrub, setup_logging


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    clear_secrets()
    yield
    clear_secrets()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_shape() -> None:
    stream = io.StringIO()
    setup_logging("DEBUG", json=True, stream=stream)
    logging.getLogger("reconciler.test").info(
        "created %s", "1.4.0", extra={"project": "shop", "release": "1.4.0", "unrelated": "x"}
    )
    logging.getLogger("reconciler.test").warning("feed down", extra={"feed": "ghcr"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(first) == {"ts", "level", "logger", "msg", "project", "release"}
    assert first["level"] == "info"
    assert first["logger"] == "reconciler.test"
    assert first["msg"] == "created 1.4.0"
    assert first["ts"].endswith("+00:00")
    assert second["feed"] == "ghcr" and second["level"] == "warning"


def test_exceptions_are_kept_inside_one_json_line() -> None:
    stream = io.StringIO()
    setup_logging("INFO", json=True, stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("pass crashed")
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert "ValueError: boom" in record["exc"]


def test_human_format_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    setup_logging("INFO", json=None, stream=stream)
    logging.getLogger("reconciler.loop").info("pass ok", extra={"project": "shop"})
    line = stream.getvalue().strip()
    assert "INFO" in line and "reconciler.loop: pass ok [project=shop]" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_not_a_tty_defaults_to_json() -> None:
    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    logging.getLogger("x").info("hello")
    assert json.loads(stream.getvalue())["msg"] == "hello"


def test_setup_twice_replaces_its_own_handler() -> None:
    stream = io.StringIO()
    setup_logging("INFO", json=True, stream=io.StringIO())
    setup_logging("INFO", json=True, stream=stream)
    logging.getLogger("x").info("once")
    assert len(stream.getvalue().splitlines()) == 1


def test_registered_secrets_are_redacted_everywhere() -> None:
    stream = io.StringIO()
    setup_logging("INFO", json=True, stream=stream)
    register_secret("tok-12345")
    log = logging.getLogger("reconciler.feeds")
    log.info("using token %s", "tok-12345", extra={"feed": "feed-tok-12345"})
    try:
        raise RuntimeError("401 for tok-12345")
    except RuntimeError:
        log.exception("request failed")
    output = stream.getvalue()
    assert "tok-12345" not in output
    first, second = (json.loads(line) for line in output.splitlines())
    assert first["msg"] == "using token ***"
    assert first["feed"] == "feed-***"
    assert "401 for ***" in second["exc"]


def test_scrub_redacts_url_passwords_and_ignores_tiny_secrets() -> None:
    register_secret("ab")  # too short to redact without wrecking every message
    assert scrub("https://user:pa55@host/x and ab") == "https://***@host/x and ab"
    assert scrub("s3 then long-secret", ["long-secret"]) == "s3 then ***"


def test_one_scrubber_has_the_stricter_rules_of_both_old_ones() -> None:
    # Formerly only gitrepo's: token-only user info, Authorization headers, URL-encoding.
    assert scrub("https://ghp_tok3n@github.com/o/r") == "https://***@github.com/o/r"
    assert scrub("authorization: Bearer abc.def") == "authorization: Bearer ***"
    assert scrub("p%40ss%2Fw0rd", ["p@ss/w0rd"]) == "***"
    # Formerly only logs': registered secrets, anywhere.
    register_secret("registered-secret")
    assert scrub("git said registered-secret") == "git said ***"
    assert scrub("ssh://git:pw@host/r.git") == "ssh://git:***@host/r.git"
