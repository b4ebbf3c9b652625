"""``reconciler demo``: the bundled sample, end to end, with no network and no registry.

It copies the sample config repository bundled in the package (reconciler/sample/)
into a temporary Git remote, points its feed at a local OCI image-layout directory,
publishes a few image versions there, and runs four passes: the first creates releases
and deploys them to dev; the second, after a new tag is published, creates the next
release; the third lets staging catch up; the fourth, with nothing new, commits and
pushes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from reconciler.grants import OCI_LAYOUT_DIRS_VAR

SAMPLE_IMAGES = {
    "acme/shop-api": ["1.0.0", "1.1.0", "1.2.0-rc.1", "latest", "2.0.0"],
    "acme/shop-web": ["1.0.0", "v1.0.1", "main-3f2a1c"],
    "acme/billing-worker": ["2.0.0", "2.1.0", "3.0.0-beta.1"],
}


def sample_dir() -> Path:
    """The sample config repository, shipped inside the package (reconciler/sample/):
    the same files in a checkout, a wheel, pipx and the container image."""
    sample = Path(__file__).resolve().parent.parent / "sample"
    if not (sample / "reconciler.yaml").is_file():
        raise click.ClickException(f"the bundled sample is missing from {sample}")
    return sample


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _publish(layout: Path, repository: str, tag: str, when: datetime) -> str:
    from reconciler.feeds.ocilayout import build_image, write_image

    image = build_image(created=when, content=f"{repository}:{tag}".encode())
    return write_image(layout / repository, tag, image)


def _seed_remote(base: Path) -> tuple[str, Path]:
    seed = base / "seed"
    shutil.copytree(sample_dir(), seed)
    feed = seed / "feeds" / "acme-registry.yaml"
    text = feed.read_text()
    # The demo swaps the registry for an OCI image layout on disk; the manifests keep
    # their ghcr.io names, as they would in production.
    text = text.replace("type: oci\n", "type: oci-layout\n").replace(
        "url: https://ghcr.io\n", f"url: {base / 'feed'}\n"
    )
    credentials = "credentials:\n  dockerConfig: /var/run/secrets/reconciler/registry/config.json\n"
    text = text.replace(credentials, "")
    feed.write_text(text)
    remote = base / "remote.git"
    _git("init", "-q", "--bare", "-b", "main", str(remote), cwd=base)
    _git("init", "-q", "-b", "main", cwd=seed)
    _git("add", "-A", cwd=seed)
    _git(
        "-c",
        "user.name=demo",
        "-c",
        "user.email=demo@example.com",
        "commit",
        "-q",
        "-m",
        "Sample config repository",
        cwd=seed,
    )
    _git("push", "-q", remote.as_uri(), "main", cwd=seed)
    return remote.as_uri(), remote


def _show_pass(title: str, result: Any) -> None:
    from reconciler.commands.report import describe

    click.secho(f"\n=== {title} ===", bold=True)
    click.echo(describe(result))


def _status(reconciler: Any) -> list[dict[str, Any]]:
    from reconciler.commands.report import table
    from reconciler.commands.status import project_status
    from reconciler.config import load_config

    config = load_config(reconciler.tree.root)
    rows = [
        row
        for name in sorted(config.projects)
        for row in project_status(
            config, reconciler.tree.root, config.projects[name], reconciler.options.injected.clock()
        )
    ]
    lines = [
        [
            row["project"],
            row["environment"],
            row["release"] or "-",
            "; ".join(row["waiting"]) or "up to date",
        ]
        for row in rows
    ]
    click.echo(table(lines, ["PROJECT", "ENV", "RELEASE", "STATUS"]))
    return rows


def next_steps(rows: list[dict[str, Any]]) -> list[str]:
    """The promotions that status shows waiting for a person, as commands to type."""
    commands = []
    for row in rows:
        for text in row["waiting"]:
            release, _, reason = text.partition(": ")
            if reason == "manual approval pending":
                commands.append(
                    f"reconciler promote {row['project']} {release} "
                    f"--to {row['environment']} --repo <url>"
                )
    return commands


def run_demo(base: Path) -> int:

    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    for i, (repository, tags) in enumerate(SAMPLE_IMAGES.items()):
        for j, tag in enumerate(tags):
            _publish(base / "feed", repository, tag, start + timedelta(hours=i, minutes=j))
    url, remote = _seed_remote(base)
    # The layout lies outside the config repository: the demo grants its own directory.
    granted = os.environ.get(OCI_LAYOUT_DIRS_VAR, "")
    os.environ[OCI_LAYOUT_DIRS_VAR] = ",".join(filter(None, [granted, str(base / "feed")]))
    try:
        return _run_passes(base, url, remote, start)
    finally:
        os.environ[OCI_LAYOUT_DIRS_VAR] = granted


def _run_passes(base: Path, url: str, remote: Path, start: datetime) -> int:
    from reconciler.reconcile import Injected, PassOptions, PassSettings, Reconciler

    clock = iter(start + timedelta(days=1, hours=h) for h in range(100))
    reconciler = Reconciler(
        PassOptions(
            PassSettings(repo_url=url, work_dir=base / "work"),
            Injected(clock=lambda: next(clock)),
        )
    )
    try:
        click.echo(f"sample config repository pushed to {url}")
        click.echo(
            "feed (OCI image layout): "
            + "; ".join(f"{r}: {', '.join(t)}" for r, t in SAMPLE_IMAGES.items())
        )
        first = reconciler.run_pass()
        _show_pass("pass 1: first releases, deployed to dev", first)
        click.secho("\n--- releases/shop/1.0.0.yaml ---", bold=True)
        click.echo(_git("show", "main:releases/shop/1.0.0.yaml", cwd=remote))
        click.secho("--- overlay diff (deploy/shop/overlays/dev) ---", bold=True)
        click.echo(_git("diff", "main~1", "main", "--", "deploy/shop/overlays/dev", cwd=remote))

        _publish(base / "feed", "acme/shop-api", "1.3.0", start + timedelta(hours=5))
        second = reconciler.run_pass()
        _show_pass("pass 2: shop-api 1.3.0 published -> next release", second)
        click.secho("--- overlay diff ---", bold=True)
        click.echo(_git("diff", "main~1", "main", "--", "deploy/shop/overlays", cwd=remote))

        third = reconciler.run_pass()
        _show_pass("pass 3: staging catches up with the release dev ran in pass 2", third)
        fourth = reconciler.run_pass()
        _show_pass("pass 4: nothing new -> no commit, no push", fourth)
        click.secho("\n--- reconciler status ---", bold=True)
        rows = _status(reconciler)
        click.secho("\n--- git log (the audit trail) ---", bold=True)
        click.echo(_git("log", "--format=%h %an: %s%n%(trailers:only,unfold)", cwd=remote))
        for step in next_steps(rows):
            click.echo(f"next: `{step}` is the manual approval that status shows waiting")
    finally:
        reconciler.close()
    ok = all(r.ok for r in (first, second, third, fourth)) and first.pushed and second.pushed
    ok = ok and fourth.commit is None
    return 0 if ok else 1


@click.command("demo", help=__doc__)
@click.option("--keep", is_flag=True, help="Keep the temporary directory and print its path.")
def command(keep: bool) -> None:
    base = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
    try:
        code = run_demo(base)
    finally:
        if keep:
            click.echo(f"\ndemo files kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    raise SystemExit(code)
