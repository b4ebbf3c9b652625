"""Logging setup: JSON lines for machines, plain text for people, secrets redacted.

A long-running sidecar is read through a log collector, so off a TTY every
record is one JSON object per line. Any value registered with
:func:`register_secret` (tokens, passwords, webhook URLs) is replaced by
``***`` in messages, extra fields and tracebacks before a handler writes it:
the redaction sits on the handler, so records propagated from every logger
pass through it.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

REDACTED = "***"

#: Libraries whose info records describe single requests; shown at debug level only.
CHATTY_LIBRARIES = ("httpx", "httpcore")

#: Extra fields (``logger.info(..., extra={"project": "shop"})``) copied into output.
CONTEXT_FIELDS = ("project", "feed", "release", "environment", "channel", "trigger", "event")

# Secrets shorter than this are not redacted: replacing "a" or "1" everywhere
# would make logs unreadable and protect nothing.
_MIN_SECRET_LENGTH = 4

# User info in URLs and Authorization header values, redacted even when nobody
# registered the secret they hold.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"]+)@")
_AUTH_HEADER = re.compile(r"(?i)(authorization:\s*(?:basic|bearer|token)\s+)[^\s'\"]+")

_STANDARD_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class _SecretRegistry:
    """A thread-safe set of secret values, longest first so overlaps redact fully."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def add(self, value: str) -> None:
        value = value.strip()
        if len(value) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value not in self._values:
                self._values = tuple(sorted((*self._values, value), key=len, reverse=True))

    def clear(self) -> None:
        with self._lock:
            self._values = ()

    def values(self) -> tuple[str, ...]:
        return self._values


_secrets = _SecretRegistry()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so it is redacted from logs and notifications."""
    if value:
        _secrets.add(value)


def clear_secrets() -> None:
    """Forget every registered secret (tests)."""
    _secrets.clear()


def scrub(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with credentials removed: the one scrubber for logs, exception
    messages, notifications and git's output.

    Removes the user info of http(s)/ftp URLs (tokens are often passed as the user
    name), the password part of any other URL's user info (``ssh://git@host`` keeps
    its non-secret ``git``), values of Authorization headers, every registered
    secret (:func:`register_secret`) and every non-empty string in
    ``extra_secrets``, each also in URL-encoded form.
    """
    text = _URL_USERINFO.sub(_without_userinfo, text)
    text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
    # Longest first, so a secret containing another secret is removed whole.
    secrets = {s for s in (*_secrets.values(), *extra_secrets) if s}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
        encoded = quote(secret, safe="")
        if encoded != secret:
            text = text.replace(encoded, REDACTED)
    return text


def _without_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group("scheme"), match.group("userinfo")
    if scheme.lower().startswith(("http", "ftp")):
        return f"{scheme}{REDACTED}@"
    if ":" in userinfo:
        return f"{scheme}{userinfo.split(':', 1)[0]}:{REDACTED}@"
    return match.group(0)


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so no formatter can print a registered secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD_RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, scrub(value))
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Context fields set through ``extra=``, in a stable order."""
    return {
        name: getattr(record, name)
        for name in CONTEXT_FIELDS
        if getattr(record, name, None) is not None
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, context fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extra_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return jsonlib.dumps(entry, default=str, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """``12:00:01 INFO  reconciler.loop: message [project=shop feed=ghcr]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(f"{key}={value}" for key, value in _extra_fields(record).items())
        if context:
            first, newline, rest = text.partition("\n")
            text = f"{first} [{context}]{newline}{rest}"
        return text


class _ReconcilerHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker class so :func:`setup_logging` can replace its own handler only."""


def setup_logging(
    level: str | int = "INFO", json: bool | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Configure the root logger once; calling again replaces the previous setup.

    ``json=None`` picks JSON lines unless ``stream`` is a TTY.
    """
    stream = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    handler = _ReconcilerHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json else HumanFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ReconcilerHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # httpx logs every request at info ("HTTP Request: GET ..."): hundreds per pass.
    # They are kept for --log-level debug only.
    quiet = logging.NOTSET if root.getEffectiveLevel() <= logging.DEBUG else logging.WARNING
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
    return handler
