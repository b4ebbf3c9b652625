"""Importers (issue 19 items 3, 4, 6) on the peers' own documented examples.

Each test lays out a GitOps repository holding the example objects from the peer's
documentation, imports it with the CLI, checks the written config validates and
that the reconciler picks the tag the peer's documentation says it picks, from the
example's tags. Sources:

- Flux: the image automation guide (ImagePolicy ``semver: {range: 5.0.x}`` updates
  podinfo to 5.0.3), the ImagePolicy reference (``range: 5.1.x`` reports
  ``podinfo:5.1.4``; alphabetical ``asc`` "would select Z", ``desc`` "would select
  A"; ``flux create image policy --select-numeric=asc --filter-regex
  '^main-[a-f0-9]+-(?P<ts>[0-9]+)' --filter-extract '$ts'``).
- Argo CD Image Updater: "Configuring images for update" (``nginx:~1.26`` "would
  allow the nginx image to be updated to any patch version within the 1.26 minor
  release"), update strategies (``latest``/``newest-build``, ``name``/
  ``alphabetical``, ``digest``), ``allow-tags: regexp:``, ``ignore-tags`` globs.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import load_config
from reconciler.importers.argocd import parse_image_list
from reconciler.model import VersionRule
from reconciler.selection import select
from tests.helpers.configrepo import run_cli
from tests.helpers.gitserver import write_files

PODINFO_TAGS = ["5.0.0", "5.0.1", "5.0.2", "5.0.3", "5.1.0", "5.1.1", "5.1.4", "5.2.0", "6.0.0"]
KUSTOMIZATION = "resources:\n  - deployment.yaml\n"
FLUX_OBJECTS = """\
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: podinfo, namespace: flux-system}}
spec:
  image: ghcr.io/stefanprodan/podinfo
  interval: 5m
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: podinfo, namespace: flux-system}}
spec:
  imageRepositoryRef: {{name: podinfo}}
{policy}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: flux-system, namespace: flux-system}}
spec:
  interval: 30m
  sourceRef: {{kind: GitRepository, name: flux-system}}
  git:
    checkout: {{ref: {{branch: main}}}}
    commit:
      author: {{email: fluxcdbot@users.noreply.github.com, name: fluxcdbot}}
      messageTemplate: '{{{{range .Changed.Changes}}}}{{{{print .OldValue}}}}{{{{end}}}}'
    push: {{branch: main}}
  update: {{path: ./clusters/my-cluster, strategy: Setters}}
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: default}
spec:
  template:
    spec:
      containers:
        - name: podinfod
          image: ghcr.io/stefanprodan/podinfo:5.0.0 # {"$imagepolicy": "flux-system:podinfo"}
"""


def _import(peer: str, *args: Path | str) -> Any:
    proc = run_cli("import", peer, *map(str, args))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _rules(root: Path) -> dict[str, VersionRule]:
    config = load_config(root)  # the written config validates
    return {
        package: rule
        for project in config.projects.values()
        for channel in project.channels
        for rule in channel.rules
        for package in rule.packages
    }


def _flux_repo(root: Path, policy: str) -> Path:
    write_files(
        root,
        {
            "clusters/my-cluster/flux-system/image-automation.yaml": FLUX_OBJECTS.format(
                policy=textwrap.indent(policy, "  ")
            ),
            "clusters/my-cluster/podinfo/kustomization.yaml": KUSTOMIZATION,
            "clusters/my-cluster/podinfo/deployment.yaml": DEPLOYMENT,
        },
    )
    return root


@pytest.mark.parametrize(
    ("policy", "tags", "documented"),
    [
        ("policy:\n  semver: {range: 5.0.x}\n", PODINFO_TAGS, "5.0.3"),
        ("policy:\n  semver: {range: 5.1.x}\n", PODINFO_TAGS, "5.1.4"),
        ("policy:\n  alphabetical: {order: asc}\n", list("ABCXYZ"), "Z"),
        ("policy:\n  alphabetical: {order: desc}\n", list("ABCXYZ"), "A"),
        (
            "filterTags: {pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)', extract: '$ts'}\n"
            "policy:\n  numerical: {order: asc}\n",
            ["main-3f2a1c0-1611840548", "main-9b8c7d6-999999999", "dev-1a2b3c4-1711840548"],
            "main-3f2a1c0-1611840548",
        ),
    ],
)
def test_flux_policies_pick_what_flux_documents(
    tmp_path: Path, policy: str, tags: list[str], documented: str
) -> None:
    root = _flux_repo(tmp_path, policy)
    _import("flux", root)
    rule = _rules(root)["podinfo"]
    # Flux's default exclusionList drops signatures; a version policy skips `latest`.
    extra = ["latest", "5.0.9.sig"] if "semver" in policy else ["Z.sig"]
    assert select(rule, [*tags, *extra]).chosen == documented
    config = load_config(root)
    assert config.settings.branch == "main"
    project = config.projects["flux-system"]
    assert [e.overlay for e in project.environments.values()] == ["clusters/my-cluster/podinfo"]
    text = (root / "reconciler.yaml").read_text()
    assert "# NOT TRANSLATED: commit.messageTemplate" in text


def test_flux_import_dry_run_prints_and_writes_nothing(tmp_path: Path) -> None:
    root = _flux_repo(tmp_path, "policy:\n  semver: {range: 5.0.x}\n")
    proc = _import("flux", root, "--dry-run")
    assert "--- projects/flux-system/project.yaml" in proc.stdout
    assert 'range: "5.0.x"' in proc.stdout
    assert not (root / "reconciler.yaml").exists()


def test_flux_import_never_overwrites(tmp_path: Path) -> None:
    root = _flux_repo(tmp_path, "policy:\n  semver: {range: 5.0.x}\n")
    write_files(root, {"reconciler.yaml": "# mine\n"})
    proc = run_cli("import", "flux", str(root))
    assert proc.returncode == 1 and "refusing to overwrite: reconciler.yaml" in proc.stderr
    assert (root / "reconciler.yaml").read_text() == "# mine\n"


IU = "argocd-image-updater.argoproj.io"


def _application(annotations: dict[str, str], path: str = "overlays/dev") -> str:
    lines = "".join(f"    {key}: '{value}'\n" for key, value in annotations.items())
    return (
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\n"
        f"metadata:\n  name: myapp\n  namespace: argocd\n  annotations:\n{lines}"
        "spec:\n  project: default\n  source:\n"
        "    repoURL: https://github.com/example/app.git\n"
        f"    targetRevision: main\n    path: {path}\n"
        "  destination: {server: 'https://kubernetes.default.svc', namespace: myapp}\n"
    )


def _argocd_repo(root: Path, annotations: dict[str, str]) -> Path:
    write_files(
        root,
        {
            "argocd/myapp.yaml": _application(annotations),
            "overlays/dev/kustomization.yaml": "resources: [../../base]\n",
            "base/kustomization.yaml": "resources: []\n",
        },
    )
    return root


T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("annotations", "tags", "documented"),
    [
        (
            {f"{IU}/image-list": "nginx=nginx:~1.26", f"{IU}/write-back-method": "git"},
            ["1.25.5", "1.26.0", "1.26.3", "1.27.1", "latest"],
            "1.26.3",
        ),
        (
            {
                f"{IU}/image-list": "app=ghcr.io/example/app",
                f"{IU}/app.update-strategy": "name",  # the old name of alphabetical
                f"{IU}/app.allow-tags": "regexp:^[0-9]{4}\\.[0-9]{2}\\.[0-9]{2}$",
                f"{IU}/write-back-method": "git:secret:argocd/git-creds",
            },
            ["2021.01.01", "2021.01.02", "2020.12.31", "zzz"],
            "2021.01.02",
        ),
        (
            {
                f"{IU}/image-list": "app=ghcr.io/example/app",
                f"{IU}/app.update-strategy": "latest",  # the old name of newest-build
                f"{IU}/app.ignore-tags": "latest, master, *-debug",
                f"{IU}/write-back-method": "git",
            },
            ["a1b2c3d", "e4f5a6b", "e4f5a6b-debug"],
            "e4f5a6b",
        ),
    ],
)
def test_image_updater_annotations_pick_what_image_updater_documents(
    tmp_path: Path, annotations: dict[str, str], tags: list[str], documented: str
) -> None:
    root = _argocd_repo(tmp_path, annotations)
    _import("argocd-image-updater", root)
    rule = next(iter(_rules(root).values()))
    created = {tag: T0 + timedelta(hours=i) for i, tag in enumerate(tags)}
    assert select(rule, tags, created=created).chosen == documented
    config = load_config(root)
    assert [e.overlay for e in config.projects["myapp"].environments.values()] == ["overlays/dev"]


def test_image_updater_digest_platforms_pull_secret_and_helm_targets(tmp_path: Path) -> None:
    root = _argocd_repo(
        tmp_path,
        {
            f"{IU}/image-list": "web=registry.example.com:5000/team/web:stable",
            f"{IU}/web.update-strategy": "digest",
            f"{IU}/web.platforms": "linux/arm64,linux/amd64",
            f"{IU}/web.pull-secret": "pullsecret:argocd/regcred",
            f"{IU}/write-back-method": "argocd",
        },
    )
    _import("argocd-image-updater", root)
    rule = _rules(root)["web"]
    assert (rule.strategy, rule.tag, rule.platform) == ("digest", "stable", "linux/arm64")
    project = (root / "projects/myapp/project.yaml").read_text()
    assert "# NOT TRANSLATED: write-back-method 'argocd'" in project
    assert "# NOT TRANSLATED: pull-secret 'pullsecret:argocd/regcred'" in project
    assert "NOT TRANSLATED: platforms ['linux/arm64', 'linux/amd64']" in project
    feed = (root / "feeds/registry.example.com-5000.yaml").read_text()
    assert 'url: "https://registry.example.com:5000"' in feed


def test_image_list_parsing() -> None:
    assert parse_image_list("a=ghcr.io/x/y:~1.2, nginx, r=host:5000/p/q") == [
        ("a", "ghcr.io/x/y", "~1.2"),
        ("nginx", "nginx", None),
        ("r", "host:5000/p/q", None),
    ]


# ----------------------------------------------------------------------------- Octopus

OCTOPUS_EXPORT = {
    "Project": {
        "Id": "Projects-1",
        "Name": "Shop",
        "LifecycleId": "Lifecycles-1",
        "VersioningStrategy": {
            "Template": "#{Octopus.Version.LastMajor}.#{Octopus.Version.LastMinor}"
            ".#{Octopus.Version.NextPatch}",
            "DonorPackage": None,
        },
    },
    "Environments": {
        "Items": [
            {"Id": "Environments-1", "Name": "Development"},
            {"Id": "Environments-2", "Name": "Test"},
            {"Id": "Environments-3", "Name": "Production"},
        ]
    },
    "Feeds": [
        {"Id": "Feeds-2", "Name": "GHCR", "FeedType": "Docker", "FeedUri": "https://ghcr.io"}
    ],
    "DeploymentProcess": {
        "Steps": [
            {
                "Name": "Deploy web",
                "Actions": [
                    {
                        "Name": "Deploy web",
                        "ActionType": "Octopus.KubernetesDeployContainers",
                        "Packages": [{"Name": "", "PackageId": "acme/web", "FeedId": "Feeds-2"}],
                    }
                ],
            }
        ]
    },
    "Lifecycles": [
        {
            "Id": "Lifecycles-1",
            "Name": "Default Lifecycle",
            "Phases": [
                {
                    "Name": "Development",
                    "AutomaticDeploymentTargets": ["Environments-1"],
                    "OptionalDeploymentTargets": [],
                    "MinimumEnvironmentsBeforePromotion": 0,
                    "IsOptionalPhase": False,
                },
                {
                    "Name": "Test",
                    "AutomaticDeploymentTargets": ["Environments-2"],
                    "OptionalDeploymentTargets": [],
                    "MinimumEnvironmentsBeforePromotion": 1,
                    "IsOptionalPhase": True,
                },
                {
                    "Name": "Production",
                    "AutomaticDeploymentTargets": [],
                    "OptionalDeploymentTargets": ["Environments-3"],
                    "MinimumEnvironmentsBeforePromotion": 0,
                    "IsOptionalPhase": False,
                },
            ],
        }
    ],
    "Channels": {
        "Items": [
            {
                "Id": "Channels-1",
                "Name": "Stable",
                "IsDefault": True,
                "LifecycleId": None,
                "Rules": [
                    {
                        "VersionRange": "[1.0,2.0)",
                        "Tag": "^$",
                        "ActionPackages": [
                            {"DeploymentAction": "Deploy web", "PackageReference": ""}
                        ],
                    }
                ],
            },
            {
                "Id": "Channels-2",
                "Name": "Beta",
                "IsDefault": False,
                "LifecycleId": None,
                "Rules": [
                    {
                        "VersionRange": "[2.0,3.0)",
                        "Tag": "^beta",
                        "ActionPackages": [
                            {"DeploymentAction": "Deploy web", "PackageReference": ""}
                        ],
                    }
                ],
            },
            {
                "Id": "Channels-3",
                "Name": "Latest",
                "IsDefault": False,
                "LifecycleId": None,
                "Rules": [
                    {
                        "VersionRange": "1.0",
                        "Tag": "^$",
                        "ActionPackages": [
                            {"DeploymentAction": "Deploy web", "PackageReference": ""}
                        ],
                    }
                ],
            },
        ]
    },
    "Triggers": {
        "Items": [
            {
                "Name": "Web image pushed",
                "IsDisabled": False,
                "Filter": {
                    "FilterType": "FeedFilter",
                    "Packages": [{"DeploymentAction": "Deploy web", "PackageReference": ""}],
                },
                "Action": {"ActionType": "CreateRelease", "ChannelId": "Channels-1"},
            },
        ]
    },
    "Tenants": [
        {"Name": "Acme", "ProjectEnvironments": {"Projects-1": ["Environments-3"]}},
        {"Name": "Globex", "ProjectEnvironments": {"Projects-9": ["Environments-3"]}},
    ],
}


def test_octopus_project_export_becomes_a_config_that_picks_what_octopus_picks(
    tmp_path: Path,
) -> None:
    export = tmp_path / "export.json"
    export.write_text(json.dumps(OCTOPUS_EXPORT))
    root = tmp_path / "repo"
    root.mkdir()
    _import("octopus", export, root)
    config = load_config(root)
    project = config.projects["shop"]
    rules = {c.name: c.rules[0] for c in project.channels}
    tags = ["1.0.0", "1.4.2", "1.5.0-beta.1", "2.0.0-beta.2", "2.1.0-beta.3", "2.1.0"]
    # Octopus (NuGet ranges): [1.0,2.0) with Tag ^$ -> 1.4.2; [2.0,3.0) with ^beta ->
    # 2.1.0-beta.3 (2.0.0-beta.2 sorts below 2.0); a bare 1.0 is a minimum -> 2.1.0.
    assert select(rules["stable"], tags).chosen == "1.4.2"
    assert select(rules["beta"], tags).chosen == "2.1.0-beta.3"
    assert select(rules["latest"], tags).chosen == "2.1.0"
    assert project.release_versioning.template == "{major}.{minor}.{patch+1}"
    assert list(project.environments) == ["development", "test", "production@acme"]
    lifecycle = config.lifecycles["default-lifecycle"]
    phases = [
        (p.name, p.environments[0].automatic, p.optional, p.minimum_environments)
        for p in lifecycle.phases
    ]
    assert phases == [
        ("development", True, False, None),
        ("test", True, True, 1),
        ("production", False, False, None),
    ]
    [trigger] = config.triggers.values()
    assert (trigger.channel, trigger.sources) == ("stable", ("deploy-web",))
    assert (root / "deploy/shop/overlays/production-acme/kustomization.yaml").is_file()
