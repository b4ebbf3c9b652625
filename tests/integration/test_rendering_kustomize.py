"""Rendered overlays built by the real Kustomize (`kubectl kustomize`, v5.5).

Proves that what rendering/ writes is what Kustomize reads: quoted
float-looking tags stay strings, ``newTag`` + ``digest`` yield
``name:tag@digest``, appended entries and ``newName`` take effect.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler import yamlio
from reconciler.rendering import Artifact, render_kustomization

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      initContainers:
        - name: migrate
          image: ghcr.io/acme/migrate:0.0.1
      containers:
        - name: api
          image: ghcr.io/acme/api:0.0.1
        - name: web
          image: ghcr.io/acme/web
"""


def build(tmp_path: Path, overlay: str) -> dict[str, str]:
    """Write base + overlay, run kustomize, return container name -> image."""
    base = tmp_path / "base"
    base.mkdir(exist_ok=True)
    (base / "deployment.yaml").write_text(DEPLOYMENT)
    (base / "kustomization.yaml").write_text("resources:\n  - deployment.yaml\n")
    prod = tmp_path / "overlays" / "prod"
    prod.mkdir(parents=True, exist_ok=True)
    (prod / "kustomization.yaml").write_bytes(overlay.encode())
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(prod)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    spec = yamlio.load_one(result.stdout)["spec"]["template"]["spec"]
    return {c["name"]: c["image"] for c in [*spec["initContainers"], *spec["containers"]]}


OVERLAY = """\
# prod overlay
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: ghcr.io/acme/api   # api
    newTag: 0.0.1
  - {name: ghcr.io/acme/migrate, newTag: '0.0.1'}
"""


def test_successive_renders_are_what_kustomize_deploys(tmp_path: Path) -> None:
    text = OVERLAY
    for tag in ["1.10", "1.2.3", "v2.0", "10", "2024.01.15-abc1234"]:
        text = render_kustomization(
            text,
            [
                Artifact("api", "image", "ghcr.io/acme/api", tag),
                Artifact("migrate", "image", "ghcr.io/acme/migrate", tag),
            ],
            digest=False,
            file="overlays/prod/kustomization.yaml",
        )
        images = build(tmp_path, text)
        assert images["api"] == f"ghcr.io/acme/api:{tag}"
        assert images["migrate"] == f"ghcr.io/acme/migrate:{tag}"
        assert images["web"] == "ghcr.io/acme/web"


def test_digest_rendering_pins_tag_and_digest(tmp_path: Path) -> None:
    digest = "sha256:" + "3f" * 32
    text = render_kustomization(
        OVERLAY,
        [
            Artifact("api", "image", "ghcr.io/acme/api", "1.10", digest),
            Artifact("migrate", "image", "ghcr.io/acme/migrate", "1.10", digest),
        ],
        digest=True,
        file="k",
    )
    images = build(tmp_path, text)
    assert images["api"] == f"ghcr.io/acme/api:1.10@{digest}"
    assert images["migrate"] == f"ghcr.io/acme/migrate:1.10@{digest}"


def test_appended_entries_and_new_name_take_effect_with_crlf(tmp_path: Path) -> None:
    overlay = "resources:\r\n- ../../base\r\nnamePrefix: prod-"
    text = render_kustomization(
        overlay,
        [
            Artifact("web", "image", "ghcr.io/acme/web", "3.0", new_name="mirror.example.com/web"),
            Artifact("api", "image", "ghcr.io/acme/api", "3.1.0"),
        ],
        digest=False,
        file="k",
    )
    assert text.startswith(overlay + "\r\nimages:\r\n")
    images = build(tmp_path, text)
    assert images["web"] == "mirror.example.com/web:3.0"
    assert images["api"] == "ghcr.io/acme/api:3.1.0"
    assert images["migrate"] == "ghcr.io/acme/migrate:0.0.1"
