"""OCI registries (the distribution API, read side): ``client`` speaks the API,
``challenge`` answers the registry's authentication challenges, ``transport`` sends
the requests within the feed's limits."""

from __future__ import annotations

from reconciler.feeds.oci import client
from reconciler.feeds.oci.challenge import Challenge, parse_challenge
from reconciler.feeds.oci.client import *  # noqa: F403 - the client's public names are the package's
from reconciler.feeds.oci.transport import next_link

__all__ = ["Challenge", "next_link", "parse_challenge"]
__all__ += client.__all__
