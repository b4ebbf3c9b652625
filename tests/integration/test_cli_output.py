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


def test_every_data_command_prints_table_json_and_yaml(registry, bare_remote, tmp_path):
    import yaml  # PyYAML (test extra): an independent reader of the YAML output

    remote = _repo(registry, bare_remote)
    repo = ("--repo", remote.url, "--work-dir", str(tmp_path / "w"))
    once = run_cli("once", *repo, "-o", "json", env={"RECONCILER_LOG_FORMAT": "json"})
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout)["releases"][0]["version"] == "1.0.0"
    # RECONCILER_LOG_FORMAT=json: stderr holds JSON lines only, and no per-request line.
    for line in once.stderr.splitlines():
        assert json.loads(line)["logger"] != "httpx", line
    commands = {
        "plan": ["plan"],
        "status": ["status"],
        "history": ["history", "shop"],
        "explain": ["explain", "shop"],
    }
    for name, args in commands.items():
        as_json = run_cli(*args, *repo, "-o", "json")
        assert as_json.returncode == 0, (name, as_json.stderr)
        data = json.loads(as_json.stdout)
        as_yaml = yaml.safe_load(run_cli(*args, *repo, "--output", "yaml").stdout)
        for timed in (data, as_yaml):
            if isinstance(timed, dict):
                timed.pop("durationSeconds", None)
        assert as_yaml == data, name
        table = run_cli(*args, *repo)
        assert not table.stdout.lstrip().startswith(("{", "[")), name
    # The shapes documented in docs/cli.md.
    status = json.loads(run_cli("status", *repo, "-o", "json").stdout)
    assert {k: status[0][k] for k in ("project", "environment", "release")} == {
        "project": "shop",
        "environment": "dev",
        "release": "1.0.0",
    }
    history = json.loads(run_cli("history", "shop", *repo, "-o", "json").stdout)
    assert {"event": "release", "detail": "1.0.0"} in [
        {k: h[k] for k in ("event", "detail")} for h in history
    ]
    explain = json.loads(run_cli("explain", "shop", *repo, "-o", "json").stdout)
    assert explain["project"] == "shop"
    assert explain["channels"][0]["packages"]["api"]["chosen"] == "1.4.0"
    assert explain["environments"][0]["release"] == "1.0.0"
    # The older spellings stay as aliases.
    assert json.loads(run_cli("status", *repo, "--json").stdout) == status
    plan = json.loads(run_cli("plan", *repo, "--format", "json").stdout)
    assert plan["releases"] == []


def test_validate_output_and_a_directory_that_is_no_config_repository(tmp_path):
    import yaml

    files = config_files("https://registry.example.com", [AppSpec("api", "a/api", "x/api")])
    for name, text in files.items():
        (tmp_path / "cfg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cfg" / name).write_text(text)
    ok = run_cli("validate", str(tmp_path / "cfg"), "-o", "json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["counts"]["projects"] == 1
    assert yaml.safe_load(run_cli("validate", str(tmp_path / "cfg"), "-o", "yaml").stdout) == report

    (tmp_path / "empty").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('hello')\n")
    (tmp_path / "src" / "values.yaml").write_text("replicas: 2\n")
    for folder in ("empty", "src"):
        proc = run_cli("validate", str(tmp_path / folder))
        assert proc.returncode == 1, proc.stdout
        assert "not a config repository" in proc.stderr
        data = json.loads(run_cli("validate", str(tmp_path / folder), "-o", "json").stdout)
        assert data["ok"] is False and "not a config repository" in data["problems"][0]["message"]


def test_no_color_turns_off_styling(registry, bare_remote, tmp_path):
    from click.testing import CliRunner

    from reconciler.cli import main

    remote = _repo(registry, bare_remote)
    args = ["explain", "shop", "--repo", remote.url, "--work-dir", str(tmp_path / "w")]
    runner = CliRunner()
    styled = runner.invoke(main, args, color=True, env={"NO_COLOR": ""})
    assert "\x1b[1m" in styled.output  # a terminal that wants colour gets it
    plain = runner.invoke(main, args, color=True, env={"NO_COLOR": "1"})
    assert plain.exit_code == 0 and "channel stable" in plain.output
    assert "\x1b[" not in plain.output
