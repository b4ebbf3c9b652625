"""The CI integrations run `reconciler validate` on a config repository: the pre-commit
hook through `pre-commit try-repo` (real pre-commit, real hook install), and the GitHub
composite action's validate step as its shell runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "reconciler" / "sample"


def _git_repo(path: Path, files_from: Path | None) -> Path:
    if files_from is not None:
        shutil.copytree(files_from, path)
    else:
        path.mkdir()
        (path / "values.yaml").write_text("replicas: 2\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    return path


def _try_repo(config_repo: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "reconciler-validate",
         "--all-files", "--verbose"],
        cwd=config_repo, capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip


def test_pre_commit_hook_validates_the_sample_and_rejects_a_non_config_repo(tmp_path):
    pytest.importorskip("pre_commit", reason="pre-commit is in the test extra")
    good = _try_repo(_git_repo(tmp_path / "sample", SAMPLE), tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "reconciler validate" in good.stdout and "Passed" in good.stdout
    assert "ok: 1 feed(s), 1 lifecycle(s), 2 project(s)" in good.stdout

    bad = _try_repo(_git_repo(tmp_path / "not-config", None), tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout and "not a config repository" in bad.stdout


def test_the_hook_definition_runs_validate_once_per_commit():
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "reconciler-validate"
    assert hook["entry"] == "reconciler validate"
    assert hook["language"] == "python" and hook["pass_filenames"] is False


def test_the_github_action_validate_step_runs_as_its_shell_would(tmp_path):
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    steps = {s.get("name"): s for s in action["runs"]["steps"]}
    install = steps["Install the reconciler"]["run"]
    assert '"$GITHUB_ACTION_PATH"' in install  # installs the pinned checkout of the action
    validate = steps["reconciler validate"]
    # Run the step's script with the runner's variables, against the reconciler under test.
    venv_bin = tmp_path / "runner" / "reconciler-venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "reconciler").write_text(
        f'#!/bin/sh\nexec {sys.executable} -m reconciler.cli "$@"\n'
    )
    (venv_bin / "reconciler").chmod(0o755)
    inputs = {k: v.get("default") for k, v in action["inputs"].items()}

    def run(path: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "RUNNER_TEMP": str(tmp_path / "runner"),
            "INPUT_PATH": path,
            "INPUT_OUTPUT": inputs["output"],
        }
        return subprocess.run(
            ["bash", "-c", validate["run"]], capture_output=True, text=True, env=env, timeout=120
        )

    assert validate["env"]["INPUT_PATH"] == "${{ inputs.path }}"
    ok = run(str(SAMPLE))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: ")
    (tmp_path / "empty").mkdir()
    assert run(str(tmp_path / "empty")).returncode == 1
