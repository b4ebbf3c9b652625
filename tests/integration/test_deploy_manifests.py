"""The container and Kubernetes example build and hold the promises they document."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.yamlio import load_all

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], Any]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "kubernetes")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in load_all(result.stdout) if doc}


def reconciler_container(rendered: dict[tuple[str, str], Any]) -> Any:
    pod = rendered[("Deployment", "gitops-agent")]["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "reconciler")


def test_kustomization_builds_the_expected_objects(rendered: dict[tuple[str, str], Any]) -> None:
    kinds = sorted(kind for kind, _ in rendered)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Secret",
        "Secret",
        "Secret",
        "Service",
        "ServiceAccount",
    ]


def test_pod_runs_an_agent_and_the_reconciler_sidecar(rendered: dict[tuple[str, str], Any]) -> None:
    deployment = rendered[("Deployment", "gitops-agent")]
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["gitops-agent", "reconciler"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert reconciler_container(rendered)["image"] == "ghcr.io/example/reconciler:0.1.0"


def test_security_context_is_restricted(rendered: dict[tuple[str, str], Any]) -> None:
    pod = rendered[("Deployment", "gitops-agent")]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]


def test_probes_and_webhook_service(rendered: dict[tuple[str, str], Any]) -> None:
    container = reconciler_container(rendered)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Sharing the agent's pod, the reconciler's readiness must never take the agent out
    # of its Service: no readiness probe (docs/install.md, "Readiness in a shared pod").
    assert "readinessProbe" not in container
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    service = rendered[("Service", "reconciler-webhooks")]
    assert service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pod_labels = rendered[("Deployment", "gitops-agent")]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_writable_paths_are_empty_dirs_and_secrets_are_files(
    rendered: dict[tuple[str, str], Any],
) -> None:
    pod = rendered[("Deployment", "gitops-agent")]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in reconciler_container(rendered)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/var/lib/reconciler"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = {e["name"]: e.get("value") for e in reconciler_container(rendered)["env"]}
    assert env["RECONCILER_WORKDIR"] == "/var/lib/reconciler"
    assert env["HOME"] == "/var/lib/reconciler"
    for variable in (
        "DOCKER_CONFIG",
        "RECONCILER_GIT_PASSWORD_FILE",
        "RECONCILER_WEBHOOK_SECRET_FILE",
    ):
        mount_dir = next(
            p for p in mounts if env[variable].startswith(p + "/") or env[variable] == p
        )
        assert "secret" in volumes[mounts[mount_dir]], variable
    registry = volumes["registry-credentials"]["secret"]
    assert registry["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]
    secret_names = {name for kind, name in rendered if kind == "Secret"}
    for volume in volumes.values():
        if "secret" in volume:
            assert volume["secret"]["secretName"] in secret_names


def test_settings_configmap_is_referenced_by_its_generated_name(
    rendered: dict[tuple[str, str], Any],
) -> None:
    [configmap] = [name for kind, name in rendered if kind == "ConfigMap"]
    assert configmap.startswith("reconciler-settings-")
    refs = [e["configMapRef"]["name"] for e in reconciler_container(rendered)["envFrom"]]
    assert refs == [configmap]


def test_dockerfile_is_hadolint_clean() -> None:
    if shutil.which("hadolint") is None:
        pytest.skip("hadolint not installed")
    result = subprocess.run(
        ["hadolint", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001:10001" in text
    assert "/healthz" in text and "HEALTHCHECK" in text
    assert 'CMD ["run"]' in text
    assert "RECONCILER_WORKDIR=/var/lib/reconciler" in text
    assert text.count("FROM ") == 2  # multi-stage: build wheels, then a clean runtime


def test_verify_component_grants_read_only_access_to_the_agents_objects(tmp_path: Path) -> None:
    """deploy/kubernetes/verify: get/list/watch on Applications, Kustomizations and
    HelmReleases, and the token verification needs (off in the base)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../deploy/kubernetes]\ncomponents: [../deploy/kubernetes/verify]\n"
    )
    result = subprocess.run(
        ["kubectl", "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in load_all(result.stdout) if d}
    rules = docs[("ClusterRole", "reconciler-verify")]["rules"]
    granted = {(r["apiGroups"][0], r["resources"][0]): sorted(r["verbs"]) for r in rules}
    assert granted == {
        ("argoproj.io", "applications"): ["get", "list", "watch"],
        ("kustomize.toolkit.fluxcd.io", "kustomizations"): ["get", "list", "watch"],
        ("helm.toolkit.fluxcd.io", "helmreleases"): ["get", "list", "watch"],
    }
    binding = docs[("ClusterRoleBinding", "reconciler-verify")]
    assert binding["subjects"][0]["name"] == "reconciler"
    assert docs[("ServiceAccount", "reconciler")]["automountServiceAccountToken"] is True
    pod = docs[("Deployment", "gitops-agent")]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
