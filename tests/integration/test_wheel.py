"""The built wheel is complete: installed into a fresh venv, `reconciler demo` runs
from any directory (the sample ships inside the package), and the distribution name
is the one on the package index."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from reconciler import __version__

ROOT = Path(__file__).resolve().parents[2]


def _clean_env() -> dict[str, str]:
    # No PYTHONPATH: the venv must run what the wheel installed, not the checkout.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_the_wheel_runs_the_demo_from_a_temporary_directory(tmp_path: Path) -> None:
    env = _clean_env()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
         str(ROOT)],
        check=True, env=env, timeout=600,
    )  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith("gitops_release_reconciler-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "reconciler/sample/reconciler.yaml" in names
    assert "reconciler/sample/deploy/shop/overlays/dev/kustomization.yaml" in names
    # One source of truth: the repository holds the sample only inside the package.
    assert not (ROOT / "sample-repo").exists()

    venv = tmp_path / "venv"
    # The venv reuses the machine's dependencies (no download); the reconciler itself
    # comes from the wheel, checked below.
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, env=env
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True, env=env, timeout=600,
    )  # fmt: skip
    where = subprocess.run(
        [str(python), "-c", "import reconciler; print(reconciler.__file__)"],
        check=True, capture_output=True, text=True, env=env, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(venv)), where

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    demo = subprocess.run(
        [str(venv / "bin" / "reconciler"), "demo"],
        capture_output=True, text=True, env=env, cwd=elsewhere, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr + demo.stdout
    assert "new release shop 1.0.1: api 1.3.0, web v1.0.1" in demo.stdout
    version = subprocess.run(
        [str(venv / "bin" / "reconciler"), "--version"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout  # fmt: skip
    assert version == f"reconciler, version {__version__}\n"
