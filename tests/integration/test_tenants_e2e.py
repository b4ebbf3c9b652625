"""Tenants: one overlay per tenant, each moving through the same phases on its own."""

from __future__ import annotations

import json
import uuid

from tests.helpers.configrepo import AppSpec, checkout, config_files, kustomize_images, run_cli

TENANTS = ("acme", "globex")


def _tenant_files(registry_url: str, apps: list[AppSpec]) -> dict[str, str]:
    files = config_files(registry_url, apps)
    prod_overlay = files.pop("deploy/shop/overlays/prod/kustomization.yaml")
    project = files["projects/shop/project.yaml"]
    tenants = "".join(
        f"      {t}:\n        overlay: deploy/shop/overlays/prod-{t}\n" for t in TENANTS
    )
    project = project.replace(
        "  prod:\n    overlay: deploy/shop/overlays/prod\n", f"  prod:\n    tenants:\n{tenants}"
    )
    assert "tenants:" in project
    files["projects/shop/project.yaml"] = project
    for t in TENANTS:
        files[f"deploy/shop/overlays/prod-{t}/kustomization.yaml"] = prod_overlay
    return files


def _once(remote, work):
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def _cli(remote, work, *args):
    return run_cli(
        *args, "--repo", remote.url, "--work-dir", str(work), env={"RECONCILER_ACTOR": "alice"}
    )


def test_each_tenant_is_promoted_on_its_own_through_the_same_phases(
    registry, bare_remote, tmp_path
):
    ns = f"tn{uuid.uuid4().hex[:8]}"
    apps = [AppSpec("api", f"{ns}/api", "example.com/shop/api")]
    registry.push(apps[0].repository, "1.0.0")
    remote = bare_remote(seed=_tenant_files(registry.url, apps))
    work = tmp_path / "w"

    validate = run_cli("validate", str(checkout(remote.path, tmp_path / "co0")))
    assert validate.returncode == 0, validate.stderr

    _once(remote, work)  # release 1.0.0 -> dev
    _once(remote, work)  # -> staging
    out = _once(remote, work)
    assert out["commit"] is None  # production is manual, for every tenant
    waiting = {(w["environment"], w["reason"]) for w in out["waiting"]}
    assert waiting >= {(f"prod@{t}", "manual approval pending") for t in TENANTS}

    proc = _cli(remote, work, "promote", "shop", "1.0.0", "--to", "prod@acme")
    assert proc.returncode == 0, proc.stderr
    assert "Environment: prod@acme" in remote.log_format("%(trailers:only,unfold)")
    co = checkout(remote.path, tmp_path / "co1")
    assert kustomize_images(co / "deploy/shop/overlays/prod-acme") == {
        "api": "example.com/shop/api:1.0.0"
    }
    assert kustomize_images(co / "deploy/shop/overlays/prod-globex") == {
        "api": "example.com/shop/api:0.0.0"
    }  # the other tenant has not moved

    status = _cli(remote, work, "status", "shop", "--json")
    assert status.returncode == 0, status.stderr
    rows = {r["environment"]: r for r in json.loads(status.stdout)}
    assert (rows["prod@acme"]["phase"], rows["prod@acme"]["release"]) == ("production", "1.0.0")
    assert rows["prod@globex"]["release"] is None
    assert any("manual approval pending" in w for w in rows["prod@globex"]["waiting"])

    proc = _cli(remote, work, "promote", "shop", "1.0.0", "--to", "prod")
    assert proc.returncode != 0  # the environment itself is no target: name a tenant
    assert "prod@acme" in proc.stderr + proc.stdout


def test_tenant_config_errors_name_the_tenant(tmp_path):
    from reconciler.config import load_config
    from reconciler.errors import ConfigError

    files = _tenant_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    del files["deploy/shop/overlays/prod-globex/kustomization.yaml"]
    files["projects/shop/project.yaml"] = files["projects/shop/project.yaml"].replace(
        "  dev:\n    overlay: deploy/shop/overlays/dev\n",
        "  dev:\n    overlay: deploy/shop/overlays/dev\n    tenants:\n"
        "      x:\n        overlay: deploy/shop/overlays/dev\n"
        "    targets: [{kind: markers, file: deploy/shop/values.yaml}]\n",
    )
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    try:
        load_config(tmp_path)
    except ConfigError as error:
        problems = [str(p) for p in error.problems]
    else:
        raise AssertionError("config accepted")
    assert any(
        p.startswith("projects/shop/project.yaml:")
        and p.endswith(
            "environments.prod.tenants.globex.overlay: overlay "
            "'deploy/shop/overlays/prod-globex' has no kustomization.yaml"
        )
        for p in problems
    ), problems
    assert any(
        p.endswith("environments.dev: give either an overlay or tenants, not both")
        for p in problems
    ), problems
    assert any(
        p.endswith("environments.dev.targets: targets go on each tenant") for p in problems
    ), problems


def test_minimum_environments_counts_tenants_per_project(tmp_path):
    from reconciler.config import load_config
    from reconciler.errors import ConfigError

    def load(files: dict[str, str], folder: str) -> list[str]:
        for name, text in files.items():
            path = tmp_path / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        try:
            load_config(tmp_path / folder)
        except ConfigError as error:
            return [str(p) for p in error.problems]
        return []

    apps = [AppSpec("api", "acme/api", "r/api")]
    files = _tenant_files("https://r.example.com", apps)
    minimum = "environments: [prod], minimumEnvironments: 2,"
    files["lifecycles/standard.yaml"] = files["lifecycles/standard.yaml"].replace(
        "environments: [prod],", minimum
    )
    assert minimum in files["lifecycles/standard.yaml"]
    # prod stands for two tenants in this project: two of them is a valid minimum ...
    assert load(files, "tenanted") == []

    # ... but not for a project that deploys prod once.
    plain = config_files("https://r.example.com", apps)
    plain["lifecycles/standard.yaml"] = files["lifecycles/standard.yaml"]
    assert load(plain, "plain") == [
        "lifecycles/standard.yaml:7: phases[2].minimumEnvironments: "
        "2 is more than the phase's 1 environments"
    ]

    files["lifecycles/standard.yaml"] = files["lifecycles/standard.yaml"].replace(
        "minimumEnvironments: 2", "minimumEnvironments: 3"
    )
    assert load(files, "too-many") == [
        "lifecycles/standard.yaml:7: phases[2].minimumEnvironments: "
        "3 is more than the phase's 2 environments (tenants of project 'shop' included)"
    ]
