"""Registry faults: one broken feed fails alone, cleanly, and within bounded time and memory.

Two feeds, one project each: ``good`` reads the registry directly, ``faulty`` reads it
through ``FaultProxy``. For every fault a ``reconciler once --json`` must release
``good``, report ``faulty/api`` in ``feedErrors`` with exit code 3, commit nothing for
``faulty``, stay under a memory ceiling (the 50 MB tag list) and finish in bounded
time (the stall; feed timeout 2s). Once the fault is lifted the next pass releases
``faulty`` from the same work dir.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.helpers.configrepo import AppSpec, config_files
from tests.reliability.faultproxy import FAULTS, FaultProxy
from tests.reliability.support import once

MEMORY_CEILING_MB = 200
TIME_CEILING_S = 30

CASES = [("/tags/list", fault) for fault in FAULTS] + [
    ("/manifests/", "500"),
    ("/manifests/", "reset"),
    ("/manifests/", "stall"),
    ("/manifests/", "429"),
]


def two_feed_config(direct_url: str, proxy_url: str, good: AppSpec, bad: AppSpec) -> dict:
    files = config_files(direct_url, [good], project="good")
    faulty = config_files(proxy_url, [bad], project="faulty")
    faulty["projects/faulty/project.yaml"] = faulty["projects/faulty/project.yaml"].replace(
        "feed: reg", "feed: bad"
    )
    files.update({k: v for k, v in faulty.items() if k.startswith(("projects/", "deploy/"))})
    files["feeds/bad.yaml"] = (
        "apiVersion: reconciler.dev/v1\nkind: Feed\nname: bad\ntype: oci\n"
        f"url: {proxy_url}\ninsecure: true\ntimeout: 2s\n"
    )
    return files


def stdout_json(text: str) -> dict:
    return json.loads(text[text.index("{") :])


@pytest.mark.parametrize(("pattern", "fault"), CASES, ids=[f"{p}-{f}" for p, f in CASES])
def test_registry_fault_is_isolated(registry, bare_remote, tmp_path, pattern, fault):
    ns = f"fault{uuid.uuid4().hex[:8]}"
    good = AppSpec("api", f"{ns}/good", "example.com/good/api")
    bad = AppSpec("api", f"{ns}/bad", "example.com/faulty/api")
    registry.push(good.repository, "1.0.0")
    registry.push(bad.repository, "2.0.0")
    with FaultProxy(registry.url) as proxy:
        files = two_feed_config(registry.url, proxy.url, good, bad)
        remote = bare_remote(seed=files)
        proxy.set_fault(pattern, fault)
        work = tmp_path / "work"

        run = once(remote.url, work, "--json")

        violations = []
        assert proxy.hits[fault] >= 1, "the fault was never served"
        assert run.returncode == 3, run.output
        assert "Traceback" not in run.output
        out = stdout_json(run.stdout)
        if set(out["feedErrors"]) != {"faulty/api"}:
            violations.append(f"feedErrors {out['feedErrors']}")
        if not out["feedRetryAfterSeconds"].get("bad", 0) > 0:
            violations.append(f"no retry delay recorded: {out['feedRetryAfterSeconds']}")
        if [(r["project"], r["version"]) for r in out["releases"]] != [("good", "1.0.0")]:
            violations.append(f"releases {out['releases']}")
        pushed = remote.files()
        if "releases/good/1.0.0.yaml" not in pushed:
            violations.append("healthy project not released")
        partial = [f for f in pushed if "faulty" in f and files.get(f) != remote.show(f) + "\n"]
        partial += [f for f in pushed if f.startswith(("releases/faulty", "state/faulty"))]
        if partial:
            violations.append(f"faulty project files changed: {partial}")
        logged = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
        if not any(e.get("feed") == "bad" and e["level"] == "warning" for e in logged):
            violations.append("no warning log line with feed=bad")
        if run.peak_rss_mb > MEMORY_CEILING_MB:
            violations.append(f"peak RSS {run.peak_rss_mb:.0f} MB")
        if run.duration > TIME_CEILING_S:
            violations.append(f"took {run.duration:.1f}s")

        # fault lifted: the same work dir recovers on the next pass (after the
        # registry's Retry-After, which the work dir remembers across processes)
        proxy.clear()
        if fault == "429":
            time.sleep(float(proxy.retry_after) + 0.2)
        again = once(remote.url, work, "--json")
        if again.returncode != 0 or "releases/faulty/1.0.0.yaml" not in remote.files():
            violations.append(f"no recovery: exit {again.returncode}: {again.output[-500:]}")

    print(
        f"registry-fault {pattern} {fault}: exit={run.returncode} "
        f"error={out['feedErrors'].get('faulty/api', '')[:120]!r} "
        f"peak_rss_mb={run.peak_rss_mb:.0f} seconds={run.duration:.1f} "
        f"violations={len(violations)}"
    )
    assert violations == []
