"""Review finding: the importers' repository scan (reconciler.importers.scan) loaded
every YAML file without the bounds the config loader applies, so an alias bomb or an
oversized file in the scanned GitOps repository reached the importers, which walk every
document. The scan now skips what ``yamlio.limit_problem`` or ``MAX_FILE_BYTES`` refuses."""

from __future__ import annotations

from pathlib import Path

from reconciler import yamlio
from reconciler.importers.scan import documents, overlays_mentioning

PLAIN = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n"


def _bomb(levels: int = 9, width: int = 9) -> str:
    """81 aliases (under the alias cap) standing for about 4 * 10**9 nodes."""
    lines = ["x0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    lines.append("items: [" + ", ".join([f"*a{levels - 1}"] * width) + "]")
    return "apiVersion: v1\nkind: List\n" + "\n".join(lines) + "\n"


def test_the_scan_skips_alias_bombs_and_oversized_files(tmp_path: Path) -> None:
    (tmp_path / "plain.yaml").write_text(PLAIN)
    (tmp_path / "bomb.yaml").write_text(_bomb())
    padding = "x" * (yamlio.MAX_FILE_BYTES + 10)
    (tmp_path / "huge.yaml").write_text(f"kind: ConfigMap\ndata: {{big: {padding}}}\n")
    assert yamlio.limit_problem(_bomb()) is not None
    assert [path.name for path, _doc in documents(tmp_path)] == ["plain.yaml"]


def test_the_overlay_search_skips_oversized_files(tmp_path: Path) -> None:
    overlay = tmp_path / "deploy/dev"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text("resources: [app.yaml]\n")
    padding = "x" * (yamlio.MAX_FILE_BYTES + 10)
    (overlay / "app.yaml").write_text(f"image: ghcr.io/acme/api\npad: {padding}\n")
    assert overlays_mentioning(tmp_path, tmp_path, ["ghcr.io/acme/api"]) == []
    (overlay / "app.yaml").write_text("image: ghcr.io/acme/api\n")
    assert overlays_mentioning(tmp_path, tmp_path, ["ghcr.io/acme/api"]) == [Path("deploy/dev")]


def test_refused_files_are_named_and_the_import_says_so(tmp_path: Path) -> None:
    """What a refused file held is missing from the import: the person running it sees
    which file and why (a ``# NOT TRANSLATED`` comment and the count on stderr), while
    templates that are simply not YAML stay quiet."""
    from click.testing import CliRunner

    from reconciler.cli import main

    repo = tmp_path / "gitops"
    (repo / "apps").mkdir(parents=True)
    (repo / "apps/policy.yaml").write_text(
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\n"
        "metadata: {name: api, namespace: flux-system}\n"
        "spec: {imageRepositoryRef: {name: api}, policy: {semver: {range: '>=1.0.0'}}}\n"
        "---\n"
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\n"
        "metadata: {name: api, namespace: flux-system}\nspec: {image: ghcr.io/acme/api}\n"
    )
    (repo / "apps/bomb.yaml").write_text(_bomb())
    (repo / "apps/template.yaml").write_text("{{ .Values.image }}: [\n")  # not YAML
    refused: list[str] = []
    assert [p.name for p, _ in documents(repo, refused)] == ["policy.yaml", "policy.yaml"]
    assert len(refused) == 1 and refused[0].startswith("'apps/bomb.yaml' was not read: line ")

    result = CliRunner().invoke(main, ["import", "flux", str(repo), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "# NOT TRANSLATED: 'apps/bomb.yaml' was not read: line " in result.stdout
    assert "item(s) not translated" in result.stderr
