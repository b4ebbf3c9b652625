"""What the data commands print: plan's wording, the -o/--output formats and their
stable JSON shapes (docs/cli.md), NO_COLOR."""

from __future__ import annotations

import json
import textwrap
import uuid

from tests.helpers.configrepo import AppSpec, config_files, run_cli

DEV_ONLY = textwrap.dedent("""\
    apiVersion: reconciler.dev/v1
    kind: Lifecycle
    name: standard
    phases:
      - {name: development, environments: [dev]}
    """)


def _repo(registry, bare_remote):
    app = AppSpec("api", f"out{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")
    registry.push(app.repository, "1.4.0", content=b"1.4.0")
    return bare_remote(seed=config_files(registry.url, [app], lifecycle=DEV_ONLY, envs=("dev",)))


def test_plan_never_claims_a_commit_or_a_push(registry, bare_remote, tmp_path):
    remote = _repo(registry, bare_remote)
    args = ("--repo", remote.url, "--work-dir", str(tmp_path / "w"))
    proc = run_cli("plan", *args)
    assert proc.returncode == 0, proc.stderr
    assert "new release shop 1.0.0" in proc.stdout
    assert "nothing to commit" not in proc.stdout
    assert proc.stdout.rstrip().endswith("plan only: nothing was written, committed or pushed")
    plan = json.loads(run_cli("plan", *args, "--format", "json").stdout)
    assert plan["commit"] is None and plan["pushed"] is False
    assert plan["pushAttempts"] == 0
