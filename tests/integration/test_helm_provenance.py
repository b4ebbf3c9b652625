"""Helm provenance files, made by the real ``helm package --sign`` with OpenPGP keys the
tests generate with GnuPG, served by a real HTTP chart repository, and judged by
``feeds.provenance`` (gpgv) in real passes. ``helm verify`` is the independent
verifier: for every chart the test makes, it must agree with the gate.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.errors import FeedAuthError
from reconciler.feeds.gate import Verdict
from reconciler.feeds.helm import ChartFiles, HelmRepoClient
from reconciler.feeds.provenance import dearmored, judge_chart
from reconciler.grants import CREDENTIALS_DIR_VAR
from reconciler.model import Credentials, Feed
from tests.helpers.configrepo import (
    DEV_ONLY,
    config_files,
    result_json,
    run_cli,
    write_files,
)
from tests.helpers.helmrepo import Helm, HelmHttpRepo


@dataclass(frozen=True)
class Signer:
    """An OpenPGP key made by gpg: its legacy secret keyring (what ``helm package
    --sign`` reads) and its public keyring, binary and ASCII-armored."""

    name: str
    secring: Path
    pubring: Path
    armored: Path


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--quiet", *args],
        input=stdin,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout


def make_signer(directory: Path, name: str) -> Signer:
    home = directory / f"{name}-gnupg"
    home.mkdir(mode=0o700, parents=True)
    params = (
        "%no-protection\nKey-Type: RSA\nKey-Length: 2048\n"
        f"Name-Real: {name}\nName-Email: {name.lower().replace(' ', '-')}@example.test\n"
        "Expire-Date: 0\n%commit\n"
    )
    _gpg(home, "--gen-key", stdin=params.encode())
    signer = Signer(
        name, directory / f"{name}.sec.gpg", directory / f"{name}.gpg", directory / f"{name}.asc"
    )
    signer.secring.write_bytes(_gpg(home, "--export-secret-keys"))
    signer.pubring.write_bytes(_gpg(home, "--export"))
    signer.armored.write_bytes(_gpg(home, "--armor", "--export"))
    return signer


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Signer, Signer]:
    """(trusted, stranger)."""
    directory = tmp_path_factory.mktemp("signers")
    return make_signer(directory, "Chart Signer"), make_signer(directory, "Stranger")


def signed_chart(helm: Helm, workdir: Path, name: str, version: str, signer: Signer) -> Path:
    """``helm package --sign`` of a ``helm create`` chart: the .tgz (the .prov beside it)."""
    source = workdir / "sources" / name
    if not source.exists():
        source.parent.mkdir(parents=True, exist_ok=True)
        helm.run("create", name, cwd=source.parent)
    out = workdir / "packaged"
    helm.run("package", str(source), "--version", version, "-d", str(out),
             "--sign", "--key", signer.name, "--keyring", str(signer.secring))  # fmt: skip
    return out / f"{name}-{version}.tgz"


def helm_verifies(helm: Helm, archive: Path, keyring: Path) -> bool:
    """The independent verdict: ``helm verify --keyring``."""
    ran = subprocess.run(
        [str(helm.binary), "verify", "--keyring", str(keyring), str(archive)],
        env=helm.env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return ran.returncode == 0


def publish_cases(
    helm: Helm, repo: HelmHttpRepo, workdir: Path, trusted: Signer, stranger: Signer
) -> dict[str, Path]:
    """Versions of chart ``demo``, each a case of the gate, copied into ``repo``:

    0.1.0 signed by ``trusted``; 0.2.0 its archive replaced after signing (the signed
    hash no longer matches); 0.3.0 without a .prov; 0.4.0 signed by ``stranger``;
    0.5.0 its signed text altered (the signature no longer verifies)."""
    cases = {
        "0.1.0": signed_chart(helm, workdir, "demo", "0.1.0", trusted),
        "0.2.0": signed_chart(helm, workdir, "demo", "0.2.0", trusted),
        "0.3.0": signed_chart(helm, workdir, "demo", "0.3.0", trusted),
        "0.4.0": signed_chart(helm, workdir, "demo", "0.4.0", stranger),
        "0.5.0": signed_chart(helm, workdir, "demo", "0.5.0", trusted),
    }
    for archive in cases.values():
        repo.add_chart(archive)
        repo.add_chart(archive.with_name(archive.name + ".prov"))
    # 0.2.0: another archive under the signed name (index.yaml will list its digest)
    other = workdir / "other"
    helm.run("package", str(workdir / "sources" / "demo"), "--version", "0.2.0",
             "--app-version", "6.6.6", "-d", str(other))  # fmt: skip
    (repo.root / "demo-0.2.0.tgz").write_bytes((other / "demo-0.2.0.tgz").read_bytes())
    (repo.root / "demo-0.3.0.tgz.prov").unlink()
    prov = repo.root / "demo-0.5.0.tgz.prov"
    prov.write_text(prov.read_text().replace("version: 0.5.0", "version: 0.5.1", 1))
    repo.index_charts(helm)
    return {version: repo.root / f"demo-{version}.tgz" for version in cases}


EXPECTED = {
    "0.2.0": ("digest-mismatch", "the archive's SHA-256 is sha256:"),
    "0.3.0": ("unsigned", "unsigned: no demo-0.3.0.tgz.prov"),
    "0.4.0": ("no-matching-key", "not in the keyring"),
    "0.5.0": ("invalid", "the signature does not verify"),
}


def test_each_case_is_judged_and_helm_verify_agrees(
    signers: tuple[Signer, Signer], helm: Helm, helm_http_repo: HelmHttpRepo, tmp_path: Path
) -> None:
    trusted, stranger = signers
    archives = publish_cases(helm, helm_http_repo, tmp_path, trusted, stranger)
    feed = Feed("charts", "helm", helm_http_repo.url, insecure=True)
    keyring = trusted.pubring.read_bytes()
    client = HelmRepoClient(feed)
    try:
        verdicts: dict[str, Verdict] = {
            version: judge_chart(client.chart_files("demo", version), keyring)
            for version in archives
        }
    finally:
        client.close()
    assert verdicts["0.1.0"].verified, verdicts["0.1.0"]
    assert "Chart Signer" in verdicts["0.1.0"].reason
    for version, (kind, reason) in EXPECTED.items():
        assert (verdicts[version].kind, verdicts[version].verified) == (kind, False), version
        assert reason in verdicts[version].reason, verdicts[version].reason
    # the independent verifier: helm's own verdict is the same for every case
    for version, archive in archives.items():
        assert helm_verifies(helm, archive, trusted.pubring) == verdicts[version].verified, version
    # an ASCII-armored export of the same key is the same keyring
    assert dearmored(trusted.armored.read_bytes()) == keyring


def test_an_index_digest_that_is_not_the_signed_archive_is_refused(
    signers: tuple[Signer, Signer], helm: Helm, tmp_path: Path
) -> None:
    """The release records the index's digest: it must be the archive verified."""
    trusted, _ = signers
    archive = signed_chart(helm, tmp_path, "demo", "1.0.0", trusted)
    prov = archive.with_name(archive.name + ".prov").read_bytes()
    sha = subprocess.run(["sha256sum", str(archive)], capture_output=True, text=True, check=True)
    hex_sha = sha.stdout.split()[0]
    keyring = trusted.pubring.read_bytes()
    good = ChartFiles(archive.name, hex_sha, prov, f"sha256:{hex_sha}")
    assert judge_chart(good, keyring).verified
    lying = ChartFiles(archive.name, hex_sha, prov, "sha256:" + "0" * 64)
    verdict = judge_chart(lying, keyring)
    assert (verdict.kind, verdict.verified) == ("digest-mismatch", False)
    assert "index.yaml claims sha256:000" in verdict.reason
    missing = judge_chart(ChartFiles(archive.name, None, prov, None), keyring)
    assert (missing.kind, missing.reason) == ("invalid", f"{archive.name} is not there (404)")
    # text around the signed block is never read: a second files: block appended after
    # the signature does not count (a file with two signed messages is refused outright)
    padded = prov + b"\n...\nfiles:\n  demo-1.0.0.tgz: sha256:" + b"1" * 64 + b"\n"
    assert judge_chart(ChartFiles(archive.name, hex_sha, padded, None), keyring).verified
    twice = judge_chart(ChartFiles(archive.name, hex_sha, prov + prov, None), keyring)
    assert (twice.kind, twice.verified) == ("invalid", False)


# ------------------------------------------------------------- the gate in a real pass


def _chart_project(repo_url: str, registry_url: str, keyring: str) -> dict[str, str]:
    """A dev-only project whose one package is chart ``demo``, gated by ``keyring``."""
    rules = '      - range: ">=0.1.0"\n'
    files = config_files(registry_url, [], lifecycle=DEV_ONLY, envs=("dev",), rules=rules)
    files["feeds/charts.yaml"] = (
        "apiVersion: reconciler.dev/v1\nkind: Feed\nname: charts\ntype: helm\n"
        f"url: {repo_url}\ninsecure: true\n"
    )
    project = files["projects/shop/project.yaml"].replace(
        "packages:\n",
        "packages:\n  - name: chart\n    feed: charts\n    chart: demo\n"
        f"    verify:\n      helm:\n        keyring: {keyring}\n",
    )
    files["projects/shop/project.yaml"] = project.replace(
        "    overlay: deploy/shop/overlays/dev\n",
        "    overlay: deploy/shop/overlays/dev\n    targets:\n"
        "      - {kind: kustomize-helm, file: deploy/shop/overlays/dev/kustomization.yaml}\n",
    )
    files["projects/shop/triggers.yaml"] = files["projects/shop/triggers.yaml"].replace(
        "sources: []", "sources: [chart]"
    )
    files["deploy/shop/overlays/dev/kustomization.yaml"] = (
        "resources: []\nhelmCharts:\n  - name: demo\n"
        f"    repo: {repo_url}\n    version: 0.0.1  # set by reconciler\n    releaseName: demo\n"
    )
    return files


def test_release_takes_the_signed_chart_and_explain_says_why_not_the_others(
    signers: tuple[Signer, Signer],
    helm: Helm,
    helm_http_repo: HelmHttpRepo,
    registry: Any,
    bare_remote: Any,
    tmp_path: Path,
) -> None:
    trusted, stranger = signers
    publish_cases(helm, helm_http_repo, tmp_path / "charts", trusted, stranger)
    granted = tmp_path / "granted"
    granted.mkdir()
    keyring = granted / "charts.asc"  # an armored export works as well as a binary one
    keyring.write_bytes(trusted.armored.read_bytes())
    remote = bare_remote(seed=_chart_project(helm_http_repo.url, registry.url, str(keyring)))
    env = {CREDENTIALS_DIR_VAR: str(granted)}
    work = ["--repo", remote.url, "--work-dir", str(tmp_path / "work")]

    first = run_cli("once", *work, "--json", env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert result_json(first)["releases"], first.stdout + first.stderr
    [release] = result_json(first)["releases"]
    assert release["packages"]["chart"]["version"] == "0.1.0"
    assert "version: 0.1.0  # set by reconciler" in remote.show(
        "deploy/shop/overlays/dev/kustomization.yaml"
    )
    explain = run_cli("explain", "shop", *work, "-o", "json", env=env)
    assert explain.returncode == 0, explain.stderr
    chart = json.loads(explain.stdout)["channels"][0]["packages"]["chart"]
    assert chart["chosen"] == "0.1.0"
    reasons = {c["tag"]: c["reason"] for c in chart["rejected"]}
    for version, (_, reason) in EXPECTED.items():
        assert reasons[version].startswith("provenance: "), reasons[version]
        assert reason in reasons[version], reasons[version]

    # an idle pass downloads no archive: the verified verdict is kept by digest
    helm_http_repo.clear_log()
    again = run_cli("once", *work, "--json", env=env)
    assert again.returncode == 0, again.stderr
    with helm_http_repo.lock:
        fetched = [r.path for r in helm_http_repo.requests]
    assert "/charts/demo-0.1.0.tgz" not in fetched
    assert "/charts/demo-0.5.0.tgz.prov" in fetched  # refusals are judged again


def test_a_keyring_outside_the_granted_directories_or_on_an_oci_feed_fails_validation(
    registry: Any, tmp_path: Path
) -> None:
    files = _chart_project("https://charts.example.com/stable", registry.url, "/etc/passwd")
    oci = files["projects/shop/project.yaml"].replace("feed: charts", "feed: reg")
    root = write_files(tmp_path / "cfg", files)
    env = {CREDENTIALS_DIR_VAR: str(tmp_path / "keys")}
    proc = run_cli("validate", str(root), env=env)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    project = "projects/shop/project.yaml"
    line = files[project].splitlines().index("        keyring: /etc/passwd") + 1
    assert f"{project}:{line}" in out and "verify.helm.keyring" in out, out
    assert "/etc/passwd is outside the directories granted to feeds" in out

    write_files(root, {project: oci.replace("chart: demo", f"image: {uuid.uuid4().hex}")})
    proc = run_cli("validate", str(root), env=env)
    assert proc.returncode == 1
    assert "Helm provenance is checked for HTTP(S) chart repositories" in proc.stdout + proc.stderr
    assert os.path.exists(root / project)


def test_credentials_go_to_the_index_host_only(
    signers: tuple[Signer, Signer], helm: Helm, helm_http_repo: HelmHttpRepo, tmp_path: Path
) -> None:
    """Behind basic auth, the archive and its .prov are fetched with the feed's
    credentials from the index's host; an index naming another host (``localhost``
    for the same server) gets none, as Helm without ``--pass-credentials``."""
    trusted, _ = signers
    archive = signed_chart(helm, tmp_path, "demo", "1.0.0", trusted)
    helm_http_repo.add_chart(archive)
    helm_http_repo.add_chart(archive.with_name(archive.name + ".prov"))
    helm_http_repo.index_charts(helm)
    helm_http_repo.auth = ("alice", "s3cret")
    netloc = httpx.URL(helm_http_repo.url).netloc.decode()
    env = {"RECONCILER_FEED_PW": "s3cret", "RECONCILER_ALLOW_HTTP_CREDENTIALS": netloc}
    credentials = Credentials(username="alice", password_env="RECONCILER_FEED_PW")
    feed = Feed("charts", "helm", helm_http_repo.url, insecure=True, credentials=credentials)
    keyring = trusted.pubring.read_bytes()
    client = HelmRepoClient(feed, env=env)
    try:
        assert judge_chart(client.chart_files("demo", "1.0.0"), keyring).verified
    finally:
        client.close()
    elsewhere = helm_http_repo.url.replace("127.0.0.1", "localhost")
    helm_http_repo.auth = None
    helm_http_repo.index_charts(helm, base_url=elsewhere)
    helm_http_repo.auth = ("alice", "s3cret")
    helm_http_repo.clear_log()
    client = HelmRepoClient(feed, env=env)
    try:
        with pytest.raises(FeedAuthError):
            client.chart_files("demo", "1.0.0")
    finally:
        client.close()
    with helm_http_repo.lock:
        sent = {r.path: r.headers for r in helm_http_repo.requests}
    assert "authorization" in sent["/charts/index.yaml"]
    assert "authorization" not in sent["/charts/demo-1.0.0.tgz"]
