"""Issue 14 item 9 (the reconciler's part): cheap lies. A pin that is not a pin does
not pin, a branch that does not exist is not "ok"."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.operations import read_pins
from tests.helpers.configrepo import result_json, run_cli

PIN = "apiVersion: reconciler.dev/v1\nkind: Pin\nproject: shop\nenvironment: dev\nreason: x\n"


def _pin(root: Path, text: str) -> None:
    (root / "pins/shop").mkdir(parents=True)
    (root / "pins/shop/dev.yaml").write_text(text)


def test_a_pin_pins(tmp_path):
    _pin(tmp_path, PIN)
    assert read_pins(tmp_path, "shop")["dev"]["reason"] == "x"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (PIN.replace("kind: Pin\n", ""), "None"),
        (PIN.replace("kind: Pin", "kind: Release"), "'Release'"),
        ("- release: 1.0.0\n", "None"),
    ],
    ids=["no-kind", "wrong-kind", "not-a-mapping"],
)
def test_a_file_that_is_not_a_pin_is_an_error_naming_it(tmp_path, text, found):
    _pin(tmp_path, text)
    with pytest.raises(ReconcilerError) as caught:
        read_pins(tmp_path, "shop")
    assert str(caught.value) == (
        f"pins/shop/dev.yaml: not a pin: kind must be 'Pin', found {found}"
    )


@pytest.mark.parametrize("case", ["missing-branch", "empty-remote"])
def test_a_branch_that_does_not_exist_is_a_git_error(bare_remote, tmp_path, case):
    seed = None if case == "empty-remote" else {"README.md": "config\n"}
    remote = bare_remote(seed=seed)
    branch = ["--branch", "nope"] if case == "missing-branch" else []

    proc = run_cli(
        "once", "--repo", remote.url, "--work-dir", str(tmp_path / "w"), "--json", *branch
    )

    out = result_json(proc)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert out["ok"] is False
    wanted = "nope" if branch else "main"
    assert f"has no branch '{wanted}': nothing to reconcile" in out["gitError"]
