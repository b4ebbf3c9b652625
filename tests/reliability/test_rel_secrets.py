"""Secrets never leak: not in output, work dir, remote history, records or plans.

Distinctive secret values (a registry password read via ``passwordEnv`` and via
``passwordFile``, a Git HTTPS password, a webhook secret) go through full passes at
``--log-level debug``: ``once``, ``plan --format json`` and a ``run`` sidecar receiving
an authenticated webhook. Then every byte we can reach is searched for them (and
for their Basic-auth base64 forms).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tests.helpers.configrepo import AppSpec, config_files
from tests.helpers.gitserver import GitHttpServer, run_git
from tests.helpers.registry import start_registry
from tests.reliability.support import once, run_measured

TOKEN = uuid.uuid4().hex[:12]
REG_USER = "regbot"
REG_SECRET = f"RegPw-{TOKEN}-q9Z"
GIT_SECRET = f"GitPw-{TOKEN}-x7Y"
HOOK_SECRET = f"HookSecret-{TOKEN}-w3V"
SECRETS = {
    REG_SECRET,
    GIT_SECRET,
    HOOK_SECRET,
    base64.b64encode(f"{REG_USER}:{REG_SECRET}".encode()).decode(),
    base64.b64encode(f"bot:{GIT_SECRET}".encode()).decode(),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hits(text: str | bytes, where: str) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [f"{where}: {s[:10]}..." for s in SECRETS if s.encode() in data]


def _run_sidecar(url: str, work: Path, env: dict[str, str], repository: str, tag: str) -> str:
    """Start `reconciler run`, deliver one good and one forged webhook, stop it; output."""
    port = _free_port()
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **env}
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                "run",
                "--repo",
                url,
                "--work-dir",
                str(work),
                "--interval",
                "3600",
                "--listen",
                f"127.0.0.1:{port}",
                "--log-level",
                "debug",
                "--log-format",
                "text",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # ready = first pass done
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            body = json.dumps(
                {
                    "events": [
                        {
                            "id": uuid.uuid4().hex,
                            "action": "push",
                            "target": {
                                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "repository": repository,
                                "tag": tag,
                            },
                        }
                    ]
                }
            ).encode()
            headers = {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}
            forged = httpx.post(
                f"{base}/hooks/registry",
                content=body,
                timeout=5,
                headers={**headers, "Authorization": "Bearer not-it"},
            )
            good = httpx.post(
                f"{base}/hooks/registry",
                content=body,
                timeout=5,
                headers={**headers, "Authorization": f"Bearer {HOOK_SECRET}"},
            )
            assert forged.status_code in (401, 403), forged
            assert good.status_code in (200, 202, 204), good
            for response in (forged, good):
                assert not _hits(response.content, "webhook response")
            time.sleep(3)  # let the woken pass run
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.seek(0)
        return out.read().decode(errors="replace")


def test_secrets_never_leak(tmp_path):
    workdir = tmp_path / "registry"
    workdir.mkdir()
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(
        subprocess.run(
            ["htpasswd", "-Bbn", "-C", "4", REG_USER, REG_SECRET],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    registry = start_registry(
        workdir,
        {"htpasswd": {"realm": "test", "path": str(htpasswd)}},
        username=REG_USER,
        password=REG_SECRET,
    )
    git = GitHttpServer(tmp_path / "git", password=GIT_SECRET)
    try:
        ns = f"sec{TOKEN}"
        apps = [
            AppSpec("api", f"{ns}/api", "example.com/s/api"),
            AppSpec("web", f"{ns}/web", "example.com/s/web"),
        ]
        for app in apps:
            registry.push(app.repository, "1.0.0")
        files = config_files(
            registry.url,
            apps,
            feed_extra=(
                f"insecure: true\ncredentials: {{username: {REG_USER},\n"
                "              passwordEnv: RECONCILER_FEED_REG_PW}\n"
            ),
        )
        password_file = tmp_path / "reg-password"
        password_file.write_text(REG_SECRET + "\n")
        files["feeds/reg2.yaml"] = (
            "apiVersion: reconciler.dev/v1\nkind: Feed\nname: reg2\ntype: oci\n"
            f"url: {registry.url}\ninsecure: true\n"
            f"credentials: {{username: {REG_USER}, passwordFile: {password_file}}}\n"
        )
        project = files["projects/shop/project.yaml"]
        at = project.index("  - name: web")
        files["projects/shop/project.yaml"] = project[:at] + project[at:].replace(
            "feed: reg", "feed: reg2", 1
        )
        remote = git.create_repo("cfg", seed=files)
        env = {
            "RECONCILER_FEED_REG_PW": REG_SECRET,
            "RECONCILER_CREDENTIALS_DIR": str(tmp_path),
            "RECONCILER_ALLOW_HTTP_CREDENTIALS": registry.url.removeprefix("http://"),
            "RECONCILER_GIT_USERNAME": git.username,
            "RECONCILER_GIT_PASSWORD": GIT_SECRET,
            "RECONCILER_WEBHOOK_SECRET": HOOK_SECRET,
        }
        work = tmp_path / "work"
        outputs = {}
        first = once(remote.url, work, "--json", "--log-level", "debug", env=env)
        assert first.returncode == 0, first.output
        outputs["once"] = first.output
        registry.push(apps[0].repository, "1.1.0")
        plan = run_measured(
            "plan", "--repo", remote.url, "--work-dir", str(work), "--format", "json", env=env
        )
        assert plan.returncode == 0, plan.output
        assert "1.1.0" in plan.stdout
        outputs["plan"] = plan.output
        # a wrong Git password: the failure message must not echo either password
        wrong = once(
            remote.url,
            tmp_path / "w2",
            "--log-level",
            "debug",
            env={**env, "RECONCILER_GIT_PASSWORD": "x" + GIT_SECRET[::-1]},
        )
        assert wrong.returncode == 4
        outputs["once-wrong-git-password"] = wrong.output
        registry.push(apps[1].repository, "1.2.0")
        outputs["run"] = _run_sidecar(remote.url, work, env, apps[1].repository, "1.2.0")
        again = once(remote.url, work, "--json", "--log-level", "debug", env=env)
        assert again.returncode == 0, again.output
        outputs["once-again"] = again.output

        hits: list[str] = []
        scanned = 0
        for name, text in outputs.items():
            hits += _hits(text, name)
            scanned += 1
        for path in work.rglob("*"):  # clone config, caches, local state
            if path.is_file():
                hits += _hits(path.read_bytes(), str(path.relative_to(work)))
                scanned += 1
        history = run_git("--git-dir", str(remote.path), "log", "-p", "--all", "--format=fuller")
        hits += _hits(history, "remote log -p --all")
        blobs = subprocess.run(
            ["git", "--git-dir", str(remote.path), "cat-file", "--batch-all-objects", "--batch"],
            capture_output=True,
            check=True,
        ).stdout
        hits += _hits(blobs, "remote objects")
        records = [f for f in remote.files() if f.startswith(("releases/", "state/"))]
        for record in records:
            hits += _hits(remote.show(record), record)
        assert len([r for r in records if r.startswith("releases/")]) >= 2
    finally:
        git.close()
        registry.stop()

    print(
        f"secrets: secrets={len(SECRETS)} outputs={len(outputs)} files_scanned={scanned} "
        f"records={len(records)} remote_objects_bytes={len(blobs)} hits={len(hits)}"
    )
    assert hits == [], hits
