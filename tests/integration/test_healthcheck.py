"""The container HEALTHCHECK follows the listen address (RECONCILER_LISTEN)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reconciler.healthcheck import healthz_url
from reconciler.server import ReconcilerServer


def _check(listen: str) -> int:
    env = {**os.environ, "RECONCILER_LISTEN": listen}
    return subprocess.run(
        [sys.executable, "-m", "reconciler.healthcheck"], env=env, capture_output=True, timeout=30
    ).returncode


def test_the_healthcheck_asks_the_configured_port():
    with ReconcilerServer(("127.0.0.1", 0), on_event=lambda event: None) as server:
        assert _check(f"0.0.0.0:{server.port}") == 0
        assert _check(f"127.0.0.1:{server.port}") == 0
        with ReconcilerServer(("127.0.0.1", 0), on_event=lambda event: None) as other:
            free = other.port
        assert _check(f"0.0.0.0:{free}") == 1  # nothing listens there any more


def test_ipv6_and_wildcards_are_asked_on_loopback():
    assert healthz_url("0.0.0.0:9090") == "http://127.0.0.1:9090/healthz"
    assert healthz_url(":9090") == "http://127.0.0.1:9090/healthz"
    assert healthz_url("[::]:8080") == "http://[::1]:8080/healthz"
    assert healthz_url("[::1]:8080") == "http://[::1]:8080/healthz"
    assert healthz_url("10.0.0.5:8080") == "http://10.0.0.5:8080/healthz"


def test_the_dockerfile_uses_it():
    from pathlib import Path

    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].splitlines()[:2]
    assert "reconciler.healthcheck" in " ".join(healthcheck)
    assert "8080/healthz" not in dockerfile  # no second, hard-coded address


def test_an_ipv6_listener_is_checked_on_its_address():
    try:
        server = ReconcilerServer(("::1", 0), on_event=lambda event: None)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with server:
        assert _check(f"[::1]:{server.port}") == 0
