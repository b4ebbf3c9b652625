"""Feed clients: OCI registries, OCI image-layout directories, Helm repositories.

Every client implements ``FeedClient``; ``open_feed`` picks one for a ``Feed``.
Clients raise only ``FeedError`` subclasses (errors.py), never raw httpx errors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

import httpx

from reconciler.model import Feed

log = logging.getLogger(__name__)
_warned_insecure: set[str] = set()
_warned_lock = threading.Lock()


def http_error_text(exc: httpx.HTTPError) -> str:
    """An HTTP failure for an error message: its class and its text (a TLS failure says
    why), scrubbed of URL user info and known secrets before it is shortened, and the
    text left out if it still has an @ in it."""
    from reconciler.logs import scrub

    detail = scrub(str(exc))
    if not detail or "@" in detail.replace("***@", ""):
        return type(exc).__name__
    return f"{type(exc).__name__}: {detail[:200]}"


def warn_if_insecure(feed: Feed) -> None:
    """Log once per feed (per process) that it allows plain http and unverified TLS."""
    if not feed.insecure:
        return
    with _warned_lock:
        if feed.name in _warned_insecure:
            return
        _warned_insecure.add(feed.name)
    log.warning(
        "feed %s is insecure: plain http and unverified TLS are allowed",
        feed.name,
        extra={"feed": feed.name},
    )


class FeedClient(Protocol):
    def list_tags(self, repository: str) -> list[str]: ...

    def digest(self, repository: str, tag: str) -> str | None: ...

    def created(
        self, repository: str, tag: str, platform: str | None = None
    ) -> datetime | None: ...

    def close(self) -> None: ...


def open_feed(
    feed: Feed,
    *,
    base_dir: Path,
    state_dir: Path | None = None,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
) -> FeedClient:
    """A client for ``feed``. ``base_dir`` resolves relative oci-layout paths."""
    # Imported lazily: `reconciler validate` and `--help` should not pay for httpx/h2.
    if feed.type == "oci-layout":
        from reconciler.feeds.ocilayout import OciLayoutClient

        return OciLayoutClient(feed, base_dir=base_dir)
    if feed.type == "helm":
        from reconciler.feeds.helm import open_helm_feed

        return open_helm_feed(feed, transport=transport, env=env, state_dir=state_dir)
    from reconciler.feeds.registry import RegistryClient

    return RegistryClient(feed, transport=transport, env=env)
