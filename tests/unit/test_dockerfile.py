"""The container image's build promises (issue 18 item 8), read from the files: the
base pinned by digest, builds pinned by constraints.txt (covering every runtime
dependency), no installer in the final image, OCI labels, a .dockerignore."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _stages() -> list[str]:
    return re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]


def test_the_base_image_is_pinned_by_digest_with_an_update_note():
    assert re.search(r"ARG PYTHON_IMAGE=python:[\w.-]+@sha256:[0-9a-f]{64}\n", DOCKERFILE)
    assert "docker buildx imagetools inspect" in DOCKERFILE  # how to update it
    assert all(stage.startswith("${PYTHON_IMAGE}") for stage in _stages())


def test_builds_use_the_constraints_which_pin_every_runtime_dependency():
    assert "--constraint constraints.txt" in DOCKERFILE
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "'.[keyless]'" in DOCKERFILE, "the image carries the keyless extra"
    for text in project["dependencies"] + project["optional-dependencies"]["keyless"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run scripts/lock.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} does not satisfy {requirement.specifier}: run scripts/lock.sh"
        )


def test_no_pip_or_setuptools_in_the_final_image():
    build, final = _stages()
    assert "python -m venv --without-pip /opt/venv" in build
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert "pip uninstall --yes --quiet pip setuptools wheel" in final
    # The final stage installs nothing with pip.
    commands = [line for line in final.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in commands if re.search(r"\bpip\b.* install\b", line)]


def test_oci_labels():
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in DOCKERFILE, key


def test_dockerignore_keeps_the_context_small_and_secret_free():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "tests", "bench", "build", "dist"} <= ignored
    for needed in ("pyproject.toml", "README.md", "constraints.txt", "reconciler"):
        assert needed not in ignored
        assert f"COPY {needed}" in DOCKERFILE or needed in DOCKERFILE
