"""Build small config repositories for end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: {name}
          image: {image}:0.0.0
"""


DEV_ONLY = textwrap.dedent("""\
    apiVersion: reconciler.dev/v1
    kind: Lifecycle
    name: standard
    phases:
      - {name: development, environments: [dev]}
    """)
"""A one-phase lifecycle: promotions after a release do not add commits of their own."""


@dataclass
class AppSpec:
    """One image package of the test project."""

    package: str
    repository: str  # in the registry
    manifest_name: str  # as written in the manifests


def config_files(
    feed_url: str,
    apps: list[AppSpec],
    *,
    project: str = "shop",
    rules: str = '      - range: ">=1.0.0"\n        prerelease: "^$"\n',
    channels: str | None = None,
    triggers: str | None = None,
    lifecycle: str | None = None,
    feed_extra: str = "insecure: true\n",
    project_extra: str = "",
    envs: tuple[str, ...] = ("dev", "staging", "prod"),
) -> dict[str, str]:
    """The files of a config repo with one project whose packages are ``apps``."""
    files: dict[str, str] = {
        "reconciler.yaml": textwrap.dedent("""\
            apiVersion: reconciler.dev/v1
            kind: Settings
            author: {name: reconciler-bot, email: bot@example.com}
            """),
        "feeds/reg.yaml": "apiVersion: reconciler.dev/v1\nkind: Feed\nname: reg\ntype: oci\n"
        f"url: {feed_url}\n" + feed_extra,
        "lifecycles/standard.yaml": lifecycle
        or textwrap.dedent("""\
            apiVersion: reconciler.dev/v1
            kind: Lifecycle
            name: standard
            phases:
              - {name: development, environments: [dev]}
              - {name: staging, environments: [staging]}
              - {name: production, environments: [prod], automatic: false}
            """),
    }
    packages = "".join(
        f"  - name: {a.package}\n    feed: reg\n    image: {a.repository}\n"
        f"    manifestName: {a.manifest_name}\n"
        for a in apps
    )
    channel_text = channels or f"  - name: stable\n    default: true\n    rules:\n{rules}"
    env_text = "".join(f"  {env}:\n    overlay: deploy/{project}/overlays/{env}\n" for env in envs)
    files[f"projects/{project}/project.yaml"] = (
        f"apiVersion: reconciler.dev/v1\nkind: Project\nname: {project}\nlifecycle: standard\n"
        f"packages:\n{packages}channels:\n{channel_text}"
        f"releaseVersion:\n  initial: 1.0.0\nenvironments:\n{env_text}{project_extra}"
    )
    files[f"projects/{project}/triggers.yaml"] = triggers or (
        "apiVersion: reconciler.dev/v1\nkind: Trigger\n"
        f"name: {project}-images\nproject: {project}\nchannel: stable\n"
        f"sources: [{', '.join(a.package for a in apps)}]\n"
    )
    base = f"deploy/{project}/base"
    files[f"{base}/kustomization.yaml"] = "resources:\n" + "".join(
        f"  - {a.package}.yaml\n" for a in apps
    )
    for a in apps:
        files[f"{base}/{a.package}.yaml"] = BASE_DEPLOYMENT.format(
            name=a.package, image=a.manifest_name
        )
    for env in envs:
        files[f"deploy/{project}/overlays/{env}/kustomization.yaml"] = (
            f"# {env} overlay: newTag values are set by reconciler\n"
            "resources:\n  - ../../base\n"
            "images:\n"
            + "".join(
                f"  - name: {a.manifest_name}\n    newTag: 0.0.0  # keep this comment\n"
                for a in apps
            )
        )
    return files


def write_files(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> text) under ``root``; returns ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def kustomize_images(overlay: Path) -> dict[str, str]:
    """container name -> image, from a real `kubectl kustomize` build of ``overlay``."""
    from reconciler import yamlio

    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    images = {}
    for doc in yamlio.load_all(out):
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            images[str(container["name"])] = str(container["image"])
    return images


def checkout(remote_path: Path, dest: Path) -> Path:
    """A throwaway checkout of the remote's main branch (to build overlays)."""
    subprocess.run(["git", "clone", "-q", str(remote_path), str(dest)], check=True)
    return dest


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the reconciler CLI as a whole process (as users and CI do)."""
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def result_json(proc: subprocess.CompletedProcess[str]) -> Any:
    start = proc.stdout.index("{")
    return json.loads(proc.stdout[start:])


def pass_racing_a_writer(
    reconciler: Any, remote: Any, files: dict[str, str | None], message: str
) -> Any:
    """Run one pass of ``reconciler`` (closed afterwards) while another writer commits
    ``files`` to ``remote`` just before the pass's first push; its PassResult."""
    real_push = reconciler.tree.push
    raced: list[str] = []

    def racing_push() -> None:
        if not raced:  # the other writer lands first, once
            raced.append(remote.human_commit(files, message))
        real_push()

    reconciler.tree.push = racing_push
    try:
        return reconciler.run_pass()
    finally:
        reconciler.close()
