"""Flux's own ``$imagepolicy`` setters and Argo CD Image Updater's helm-values targets
(reconciler/rendering/markers.py, argocd.py): the peers' documented file shapes,
rendered byte-exact and read back."""

from __future__ import annotations

import pytest

from reconciler.errors import RenderError
from reconciler.model import HelmValuesImage
from reconciler.rendering import Artifact, Current, current_versions, render

PODINFO = Artifact("podinfo", "image", "ghcr.io/stefanprodan/podinfo", "5.0.3")

# Flux's image automation guide: a Deployment with a setter, and the :name/:tag form.
FLUX_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:5.0.0 # {"$imagepolicy": "flux-system:podinfo"}
"""
FLUX_VALUES = """\
image:
  repository: ghcr.io/stefanprodan/podinfo # {"$imagepolicy": "flux-system:podinfo:name"}
  tag: 5.0.0 # {"$imagepolicy": "flux-system:podinfo:tag"}
"""


def _render(kind: str, text: str, artifacts=(PODINFO,), **extra) -> str:  # type: ignore[no-untyped-def]
    return render(kind, text, list(artifacts), project="shop", digest=False, file="f", **extra)  # type: ignore[arg-type]


def test_flux_setters_are_rendered_natively() -> None:
    out = _render("flux-imagepolicy", FLUX_DEPLOYMENT)
    assert out == FLUX_DEPLOYMENT.replace("podinfo:5.0.0", "podinfo:5.0.3")
    assert current_versions("flux-imagepolicy", out, [PODINFO], project="shop", file="f") == {
        "podinfo": Current(version="5.0.3", name="ghcr.io/stefanprodan/podinfo")
    }
    out = _render("flux-imagepolicy", FLUX_VALUES)
    assert out == FLUX_VALUES.replace("tag: 5.0.0", "tag: 5.0.3")
    with_digest = Artifact(**{**PODINFO.__dict__, "digest": "sha256:" + "a" * 64})
    assert "podinfo:5.0.3@sha256:" in _render("flux-imagepolicy", FLUX_DEPLOYMENT, [with_digest])


def test_the_two_setter_dialects_do_not_mix() -> None:
    ours = 'image: a:1 # {"$reconciler": "shop:podinfo"}\n'
    with pytest.raises(RenderError, match="f: flux-imagepolicy target: no marker for podinfo"):
        _render("flux-imagepolicy", ours)
    with pytest.raises(RenderError, match="f: markers target: no marker for podinfo"):
        _render("markers", FLUX_DEPLOYMENT)
    other_policy = FLUX_DEPLOYMENT.replace("flux-system:podinfo", "flux-system:other")
    with pytest.raises(RenderError, match="flux-imagepolicy target: no marker"):
        _render("flux-imagepolicy", other_policy)
    with pytest.raises(RenderError, match="malformed marker"):
        _render("flux-imagepolicy", FLUX_DEPLOYMENT.replace('podinfo"}', 'podinfo:bogus"}'))


# Argo CD Image Updater's helmvalues write-back: image.name / image.tag by default.
VALUES = """\
# values for the shop chart
image:
  name: ghcr.io/acme/api
  tag: "1.0.0"   # written by the updater
replicaCount: 2
"""
API = Artifact("api", "image", "ghcr.io/acme/api", "1.1.0")


def test_helm_values_default_parameter_names() -> None:
    out = _render("helm-values", VALUES, [API])
    assert out == VALUES.replace('"1.0.0"', '"1.1.0"')
    assert current_versions("helm-values", out, [API], project="shop", file="f") == {
        "api": Current(version="1.1.0", name="ghcr.io/acme/api")
    }


def test_helm_values_custom_names_spec_and_missing_leaf() -> None:
    text = "frontend:\n  image:\n    repository: old/web\nworker:\n  image: old/worker:0.1\n"
    web = Artifact("web", "image", "ghcr.io/acme/web", "2.0.0")
    worker = Artifact("worker", "image", "ghcr.io/acme/worker", "3.0.0")
    images = (
        HelmValuesImage("web", name="frontend.image.repository", tag="frontend.image.tag"),
        HelmValuesImage("worker", name=None, tag=None, spec="worker.image"),
    )
    out = _render("helm-values", text, [web, worker], images=images)
    assert out == (
        "frontend:\n  image:\n    repository: ghcr.io/acme/web\n    tag: 2.0.0\n"
        "worker:\n  image: ghcr.io/acme/worker:3.0.0\n"
    )
    found = current_versions(
        "helm-values", out, [web, worker], project="shop", file="f", images=images
    )
    assert found == {
        "web": Current(version="2.0.0", name="ghcr.io/acme/web"),
        "worker": Current(version="3.0.0", name="ghcr.io/acme/worker"),
    }


def test_helm_values_errors_name_the_problem() -> None:
    two = [API, Artifact("web", "image", "ghcr.io/acme/web", "2.0.0")]
    with pytest.raises(RenderError, match=r"packages api and web both write image\.name"):
        _render("helm-values", VALUES, two)
    with pytest.raises(RenderError, match="f: helm-values target: image is not a mapping"):
        _render("helm-values", "image: x\n", [API])
    with pytest.raises(RenderError, match="none of its images is in the release"):
        _render("helm-values", VALUES, [API], images=(HelmValuesImage("gone"),))
    with pytest.raises(RenderError, match="refusing invalid image version"):
        _render("helm-values", VALUES, [Artifact("api", "image", "a", "1.0\nx: y")])


def test_config_names_the_new_target_kinds_and_helm_parameter_names(tmp_path) -> None:
    from reconciler.config import load_config
    from tests.helpers.configrepo import AppSpec, config_files
    from tests.helpers.gitserver import write_files

    files = config_files(
        "http://registry.invalid", [AppSpec("api", "acme/api", "ghcr.io/acme/api")]
    )
    files["deploy/shop/values.yaml"] = VALUES
    files["deploy/shop/flux.yaml"] = FLUX_DEPLOYMENT
    files["projects/shop/project.yaml"] = files["projects/shop/project.yaml"].replace(
        "    overlay: deploy/shop/overlays/dev\n",
        "    overlay: deploy/shop/overlays/dev\n    targets:\n"
        "      - {kind: flux-imagepolicy, file: deploy/shop/flux.yaml}\n"
        "      - kind: helm-values\n        file: deploy/shop/values.yaml\n"
        "        images: [{package: api, tag: image.tag}, {package: api, spec: app.image}]\n",
    )
    write_files(tmp_path, files)
    targets = load_config(tmp_path).projects["shop"].environments["dev"].targets
    assert [t.kind for t in targets] == ["flux-imagepolicy", "helm-values"]
    assert targets[1].images == (
        HelmValuesImage("api", name="image.name", tag="image.tag"),
        HelmValuesImage("api", name=None, tag=None, spec="app.image"),
    )
