"""``python -m reconciler.healthcheck``: the container's HEALTHCHECK.

It asks ``/healthz`` on the address the sidecar listens on (``RECONCILER_LISTEN``, as
``reconciler run`` reads it), so a changed port or an IPv6 listen address needs no
second setting. A wildcard host (``0.0.0.0``, ``::``) is asked on loopback. Exit 0
when the answer is 200, else 1. Standard library only: it runs every 30 s.
"""

from __future__ import annotations

import os
import sys
import urllib.request

DEFAULT_LISTEN = "127.0.0.1:8080"  # reconciler run's default


def healthz_url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104  # a wildcard: ask loopback
        host = "::1" if host == "::" else "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/healthz"


def main() -> int:
    url = healthz_url(os.environ.get("RECONCILER_LISTEN") or DEFAULT_LISTEN)
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310  # http to ourselves
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
