"""Feed clients: OCI registries, OCI image-layout directories, Helm repositories.

Every client implements ``FeedClient``; ``open_feed`` picks one for a ``Feed``.
Clients raise only ``FeedError`` subclasses (errors.py), never raw httpx errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

import httpx

from reconciler.feeds.helm import open_helm_feed
from reconciler.feeds.oci import RegistryClient
from reconciler.feeds.ocilayout import OciLayoutClient
from reconciler.model import Feed

__all__ = ["FeedClient", "open_feed"]


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
    """A client for ``feed``. ``base_dir`` resolves relative oci-layout paths.

    `reconciler validate` and `--help` never import this package, so they do not pay
    for httpx."""
    if feed.type == "oci-layout":
        return OciLayoutClient(feed, base_dir=base_dir, env=env)
    if feed.type == "helm":
        return open_helm_feed(feed, transport=transport, env=env, state_dir=state_dir)
    return RegistryClient(feed, transport=transport, env=env)
