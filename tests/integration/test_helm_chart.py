"""The Helm chart (charts/reconciler): `helm lint`, and `helm template` with every values
file under charts/reconciler/ci/ validated against the Kubernetes schemas offline
(kubernetes-validate, strict); the settings that matter checked one by one; sharding
renders a StatefulSet whose pods split the projects exactly."""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.commands.common import ShardSpec, auto_shard

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "reconciler"
VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
K8S_VERSION = "1.30.0"
# Custom resources have no schema in the Kubernetes set: checked field by field below.
CUSTOM_KINDS = {"ServiceMonitor"}


def _render(helm_bin: Path, *values: str, **sets: str) -> list[dict[str, Any]]:
    args = [str(helm_bin), "template", "r", str(CHART), "--namespace", "gitops"]
    for path in values:
        args += ["-f", path]
    for key, value in sets.items():
        args += ["--set", f"{key.replace('__', '.')}={value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_lint_and_template_validate_offline(helm_bin: Path, values: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    lint = subprocess.run(
        [str(helm_bin), "lint", "--strict", str(CHART), "-f", str(values)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = _render(helm_bin, str(values))
    assert docs
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_missing_repository_url_is_refused(helm_bin: Path) -> None:
    proc = subprocess.run(
        [str(helm_bin), "template", "r", str(CHART)], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "repo.url is required" in proc.stderr


def test_the_full_values_mount_existing_secrets_as_files(helm_bin: Path) -> None:
    docs = _by_kind(_render(helm_bin, str(CHART / "ci" / "full-values.yaml")))
    deployment = docs["Deployment/r-reconciler"]
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    env = _env(container)
    assert container["image"] == "ghcr.io/acme/reconciler@sha256:" + "0123456789abcdef" * 4
    assert env["RECONCILER_REPO"] == "https://git.example.com/acme/config.git"
    assert env["RECONCILER_LISTEN"] == "0.0.0.0:9090"
    assert env["RECONCILER_GIT_USERNAME_FILE"] == "/var/run/secrets/reconciler/git/username"
    assert env["RECONCILER_GIT_PASSWORD_FILE"] == "/var/run/secrets/reconciler/git/password"
    assert env["DOCKER_CONFIG"] == "/var/run/secrets/reconciler/registry"
    assert env["RECONCILER_WEBHOOK_SECRET_FILE"] == "/var/run/secrets/reconciler/webhook/secret"
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {
        "registry-credentials": "reconciler-registry",
        "git-credentials": "reconciler-git",
        "webhook-secret": "reconciler-webhook",
    }
    # No secret value anywhere in the rendered chart: only Secret names.
    assert not [d for d in docs.values() if d["kind"] == "Secret"]
    # Restricted Pod Security Standard.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["ports"][0]["containerPort"] == 9090
    assert docs["Service/r-reconciler"]["spec"]["ports"][0]["port"] == 9090
    ingress = docs["Ingress/r-reconciler"]["spec"]["rules"][0]["http"]["paths"][0]
    assert ingress["backend"]["service"] == {"name": "r-reconciler", "port": {"name": "http"}}
    monitor = docs["ServiceMonitor/r-reconciler"]["spec"]
    assert monitor["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert docs["NetworkPolicy/r-reconciler"]["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_rbac_is_read_only_on_the_agents_resources(helm_bin: Path) -> None:
    docs = _by_kind(_render(helm_bin, str(CHART / "ci" / "minimal-values.yaml")))
    role = docs["ClusterRole/r-reconciler-verify"]
    granted = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert granted == {
        ("argoproj.io", "applications"),
        ("kustomize.toolkit.fluxcd.io", "kustomizations"),
        ("helm.toolkit.fluxcd.io", "helmreleases"),
    }
    assert {v for rule in role["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    binding = docs["ClusterRoleBinding/r-reconciler-verify"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "r-reconciler", "namespace": "gitops"}
    ]
    assert docs["Deployment/r-reconciler"]["spec"]["strategy"] == {"type": "Recreate"}


def _shards_of_pods(helm_bin: Path, count: int) -> list[Any]:
    """The Shard each pod of the rendered StatefulSet takes with `--shard auto`."""
    docs = _by_kind(
        _render(helm_bin, str(CHART / "ci" / "ssh-sharded-values.yaml"), shards=str(count))
    )
    statefulset = docs["StatefulSet/r-reconciler"]
    assert statefulset["spec"]["replicas"] == count
    container = _container(statefulset)
    assert "--shard=auto" in container["args"]
    env = _env(container)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    shards = []
    for ordinal in range(count):  # StatefulSet pods are <name>-0 … <name>-(N-1)
        pod_env = {"POD_NAME": f"r-reconciler-{ordinal}", **{
            k: v for k, v in env.items() if isinstance(v, str)
        }}  # fmt: skip
        shards.append(ShardSpec().convert(auto_shard(pod_env), None, None))
    return shards


@pytest.mark.parametrize("count", [2, 3, 4])
def test_n_shards_partition_the_projects_and_n_plus_one_loses_nothing(
    helm_bin: Path, count: int
) -> None:
    projects = [f"project-{i:04d}" for i in range(1000)]
    before = _shards_of_pods(helm_bin, count)
    after = _shards_of_pods(helm_bin, count + 1)
    for shards in (before, after):
        owners = {p: [s.index for s in shards if s.owns(p)] for p in projects}
        # Exactly one owner per project: nothing lost, nothing handled twice.
        assert all(len(o) == 1 for o in owners.values())
        assert {o[0] for o in owners.values()} == set(range(len(shards)))
        # The owner is the documented function of the name (stable across processes).
        assert all(o[0] == zlib.crc32(p.encode()) % len(shards) for p, o in owners.items())


def test_one_shard_renders_a_deployment_without_shard_flags(helm_bin: Path) -> None:
    docs = _by_kind(_render(helm_bin, str(CHART / "ci" / "minimal-values.yaml")))
    assert "StatefulSet/r-reconciler" not in docs
    container = _container(docs["Deployment/r-reconciler"])
    assert container["args"] == ["run"]
    assert "RECONCILER_SHARD_COUNT" not in _env(container)


def test_native_sidecar_example_is_valid_and_never_gates_the_agents_readiness() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    pod = yaml.safe_load((ROOT / "deploy" / "sidecar" / "native-sidecar.yaml").read_text())
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    [sidecar] = pod["spec"]["initContainers"]
    assert sidecar["restartPolicy"] == "Always"
    # A native sidecar's readiness probe decides the Pod's Ready condition, and its
    # startup probe holds back the main containers: the safe setting has neither.
    assert "readinessProbe" not in sidecar and "startupProbe" not in sidecar
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
