"""Byte-exact rendering of versions into manifests (reconciler/rendering/).

The corpus test applies 20 successive version bumps to each real-world-shaped
file in tests/corpus/ and checks, after every bump, that the only bytes that
changed lie inside the target values (located independently here, with ruamel
positions) and that the final file parses to the expected data.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import yamlio
from reconciler.errors import RenderError
from reconciler.rendering import (
    Artifact,
    Current,
    current_versions,
    read_application,
    read_helmrelease,
    read_kustomization,
    read_markers,
    render,
    render_application,
    render_helmrelease,
    render_kustomization,
    render_markers,
)

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
STEPS = 20


def version(step: int, major: int) -> str:
    """Tag shapes that exercise quoting: `1.4` must be quoted, `v1.4.1` need not."""
    shapes = [
        f"{major}.{step}",
        f"{major}.{step}.0",
        f"v{major}.{step}.1",
        f"{major}.{step}.0-rc.{step}",
        f"{major}.{step}0",
    ]
    return shapes[step % len(shapes)]


def chart_version(step: int, major: int) -> str:
    return f"{major}.{step}.0+build.{step}" if step % 3 == 0 else f"{major}.{step}.{step % 2}"


def digest_of(name: str, step: int) -> str:
    return "sha256:" + hashlib.sha256(f"{name}@{step}".encode()).hexdigest()


def image(
    package: str,
    name: str,
    step: int,
    major: int,
    *,
    with_digest: bool = False,
    new_name: str | None = None,
) -> Artifact:
    return Artifact(
        package,
        "image",
        name,
        version(step, major),
        digest_of(name, step) if with_digest else None,
        new_name,
    )


def chart(package: str, name: str, step: int, major: int) -> Artifact:
    return Artifact(package, "chart", name, chart_version(step, major))


# --- test-side oracle: where a value sits in the text --------------------------------------


def plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def line_offsets(text: str) -> list[int]:
    offsets = [0]
    for match in re.finditer("\n", text):
        offsets.append(match.end())
    return offsets


def value_span(text: str, path: tuple[Any, ...]) -> tuple[int, int]:
    """[start, end) of the scalar at ``path`` (doc index first), quotes included."""
    docs = yamlio.load_all(text)
    parent = docs[path[0]]
    for step in path[1:-1]:
        parent = parent[step]
    line, col = parent.lc.value(path[-1])
    start = line_offsets(text)[line] + col
    anchor = re.compile(r"&\S+\s+").match(text, start)
    if anchor:
        start = anchor.end()
    if text[start] in "'\"":
        end = text.index(text[start], start + 1) + 1
    else:
        match = re.compile(r"[^\s,}\]]+").match(text, start)
        end = match.end() if match else start
    return start, end


def changed_ranges(old: str, new: str) -> list[tuple[int, int, int, int]]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def set_path(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


# --- corpus cases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    file: str
    render: Callable[[str, int], str]
    targets: dict[tuple[Any, ...], Callable[[int], str]]  # path -> value written at a step


def kustomize(*groups: tuple[bool, Callable[[int], list[Artifact]]]) -> Callable[[str, int], str]:
    """Render several artifact groups, each with its own digest setting."""

    def run(text: str, step: int) -> str:
        for with_digest, artifacts in groups:
            text = render_kustomization(text, artifacts(step), digest=with_digest, file="k.yaml")
        return text

    return run


API = "ghcr.io/acme/api"
CASES = [
    Case(
        "kustomization-indented.yaml",
        kustomize(
            (
                False,
                lambda s: [
                    image("api", "ghcr.io/acme/shop-api", s, 1),
                    image(
                        "web",
                        "ghcr.io/acme/shop-web",
                        s,
                        2,
                        new_name="registry.example.com/acme/shop-web",
                    ),
                    image("worker", "ghcr.io/acme/shop-worker", s, 0),
                ],
            )
        ),
        {
            (0, "images", 0, "newTag"): lambda s: version(s, 1),
            (0, "images", 1, "newTag"): lambda s: version(s, 2),
            (0, "images", 2, "newTag"): lambda s: version(s, 0),
        },
    ),
    Case(
        "kustomization-zero-indent.yaml",
        kustomize(
            (
                True,
                lambda s: [
                    image("nginx", "docker.io/library/nginx", s, 1, with_digest=True),
                    image("api", API, s, 3, with_digest=True),
                ],
            )
        ),
        {
            (0, "images", 0, "newTag"): lambda s: version(s, 1),
            (0, "images", 0, "digest"): lambda s: digest_of("docker.io/library/nginx", s),
            (0, "images", 1, "newTag"): lambda s: version(s, 3),
            (0, "images", 1, "digest"): lambda s: digest_of(API, s),
        },
    ),
    Case(
        "kustomization-flow.yaml",
        kustomize(
            (
                False,
                lambda s: [
                    image("api", API, s, 1),
                    image("web", "ghcr.io/acme/web", s, 1, new_name="mirror.example.com/acme/web"),
                ],
            ),
            (True, lambda s: [image("batch", "ghcr.io/acme/batch", s, 7, with_digest=True)]),
        ),
        {
            (0, "images", 0, "newTag"): lambda s: version(s, 1),
            (0, "images", 1, "newTag"): lambda s: version(s, 1),
            (0, "images", 2, "newTag"): lambda s: version(s, 7),
            (0, "images", 2, "digest"): lambda s: digest_of("ghcr.io/acme/batch", s),
        },
    ),
    Case(
        "kustomization-crlf.yaml",
        kustomize(
            (False, lambda s: [image("api", API, s, 1), image("web", "ghcr.io/acme/web", s, 4)])
        ),
        {
            (0, "images", 0, "newTag"): lambda s: version(s, 1),
            (0, "images", 1, "newTag"): lambda s: version(s, 4),
        },
    ),
    Case(
        "kustomization-no-final-newline.yaml",
        kustomize((False, lambda s: [image("api", API, s, 2024)])),
        {(0, "images", 0, "newTag"): lambda s: version(s, 2024)},
    ),
    Case(
        "kustomization-anchors.yaml",
        kustomize(
            (
                False,
                lambda s: [image("api", API, s, 5), image("migrate", "ghcr.io/acme/migrate", s, 5)],
            )
        ),
        {
            (0, "images", 0, "newTag"): lambda s: version(s, 5),
            (0, "images", 1, "newTag"): lambda s: version(s, 5),
        },
    ),
    Case(
        "kustomization-double-quoted.yaml",
        kustomize(
            (True, lambda s: [image("gw", "quay.io/acme/gateway", s, 10, with_digest=True)]),
            (False, lambda s: [image("auth", "quay.io/acme/auth", s, 4)]),
        ),
        {
            (0, "images", 0, "newTag"): lambda s: version(s, 10),
            (0, "images", 0, "digest"): lambda s: digest_of("quay.io/acme/gateway", s),
            (0, "images", 1, "newTag"): lambda s: version(s, 4),
        },
    ),
    Case(
        "kustomization-helmcharts.yaml",
        kustomize(
            (
                False,
                lambda s: [
                    chart("podinfo", "podinfo", s, 6),
                    chart("redis", "redis", s, 18),
                    image("podinfo-image", "ghcr.io/stefanprodan/podinfo", s, 6),
                ],
            )
        ),
        {
            (0, "helmCharts", 0, "version"): lambda s: chart_version(s, 6),
            (0, "helmCharts", 1, "version"): lambda s: chart_version(s, 18),
            (0, "images", 0, "newTag"): lambda s: version(s, 6),
        },
    ),
    Case(
        "kustomization-multidoc.yaml",
        kustomize((False, lambda s: [image("api", API, s, 8)])),
        {(1, "images", 0, "newTag"): lambda s: version(s, 8)},
    ),
    Case(
        "helmrelease.yaml",
        lambda text, s: render_helmrelease(
            text,
            [
                chart("podinfo", "podinfo", s, 6),
                chart("redis", "redis", s, 18),
                image("ignored", API, s, 1),
            ],
            file="hr.yaml",
        ),
        {
            (1, "spec", "chart", "spec", "version"): lambda s: chart_version(s, 6),
            (2, "spec", "chart", "spec", "version"): lambda s: chart_version(s, 18),
        },
    ),
    Case(
        "application.yaml",
        lambda text, s: render_application(text, [chart("gb", "guestbook", s, 0)], file="app.yaml"),
        {(0, "spec", "source", "targetRevision"): lambda s: chart_version(s, 0)},
    ),
    Case(
        "application-multi-source.yaml",
        lambda text, s: render_application(
            text,
            [chart("kps", "kube-prometheus-stack", s, 55), chart("nginx", "nginx", s, 15)],
            file="app.yaml",
        ),
        {
            (0, "spec", "sources", 0, "targetRevision"): lambda s: chart_version(s, 55),
            (0, "spec", "sources", 2, "targetRevision"): lambda s: chart_version(s, 15),
        },
    ),
    Case(
        "values-markers.yaml",
        lambda text, s: render_markers(
            text,
            "shop",
            [
                image("api", "ghcr.io/acme/shop-api", s, 1, with_digest=True),
                image("worker", "ghcr.io/acme/shop-worker", s, 1),
                chart("chart", "shop", s, 0),
                image("envoy", "ghcr.io/acme/envoy", s, 9),
            ],  # marker of project "mesh": untouched
            file="values.yaml",
        ),
        {
            (0, "api", "image", "tag"): lambda s: version(s, 1),
            (0, "api", "image", "digest"): lambda s: digest_of("ghcr.io/acme/shop-api", s),
            (0, "worker", "image"): lambda s: f"ghcr.io/acme/shop-worker:{version(s, 1)}",
            (0, "chart", "version"): lambda s: chart_version(s, 0),
        },
    ),
    Case(
        "crd-marker.yaml",
        lambda text, s: render_markers(
            text,
            "shop",
            [
                image("api", "ghcr.io/acme/shop-api", s, 1, with_digest=True),
                image("migrate", "ghcr.io/acme/shop-migrate", s, 1),
            ],
            file="rollout.yaml",
        ),
        {
            (0, "spec", "template", "spec", "containers", 0, "image"): lambda s: (
                f"ghcr.io/acme/shop-api:{version(s, 1)}@{digest_of('ghcr.io/acme/shop-api', s)}"
            ),
            (0, "spec", "template", "spec", "initContainers", 0, "image"): lambda s: (
                f"ghcr.io/acme/shop-migrate:{version(s, 1)}"
            ),
        },
    ),
]


def test_corpus_is_big_enough_and_covers_all_files() -> None:
    assert len(CASES) >= 12
    assert {case.file for case in CASES} == {p.name for p in CORPUS.glob("*.yaml")}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_successive_updates_change_only_the_target_values(case: Case) -> None:
    original = (CORPUS / case.file).read_bytes().decode()
    expected = plain(yamlio.load_all(original))
    text = original
    bytes_per_update = []
    for step in range(1, STEPS + 1):
        spans = [value_span(text, path) for path in case.targets]
        new = case.render(text, step)
        assert new != text, f"step {step} changed nothing"
        changed = 0
        for i1, i2, j1, j2 in changed_ranges(text, new):
            inside = any(start <= i1 and i2 <= end for start, end in spans)
            assert inside, (
                f"step {step}: bytes {i1}:{i2} {text[i1:i2]!r} -> {new[j1:j2]!r} "
                "are outside every target value"
            )
            changed += max(len(text[i1:i2].encode()), len(new[j1:j2].encode()))
        bytes_per_update.append(changed)
        parsed = yamlio.load_all(new)
        for path, value_at in case.targets.items():
            node = parsed[path[0]]
            for key in path[1:]:
                node = node[key]
            assert node == value_at(step) and isinstance(node, str), (path, node)
        # Rendering the same versions again is a no-op that returns the text itself.
        assert case.render(new, step) is new
        text = new

    for path, value_at in case.targets.items():
        set_path(expected, path, value_at(STEPS))
    assert plain(yamlio.load_all(text)) == expected
    assert text.count("\r\n") == original.count("\r\n")
    assert text.endswith("\n") == original.endswith("\n")
    print(f"{case.file}: bytes changed per update {bytes_per_update}")


# --- kustomization specifics -------------------------------------------------------------


def test_float_looking_tag_is_quoted_and_quotes_are_kept() -> None:
    text = "images:\n- name: a\n  newTag: 1.9\n- name: b\n  newTag: '1.0'\n"
    out = render_kustomization(
        text,
        [Artifact("a", "image", "a", "1.10"), Artifact("b", "image", "b", "2.0.0")],
        digest=False,
        file="k",
    )
    assert out == "images:\n- name: a\n  newTag: \"1.10\"\n- name: b\n  newTag: '2.0.0'\n"


@pytest.mark.parametrize(
    ("tag", "written"),
    [
        ("1.10", '"1.10"'),
        ("10", '"10"'),
        ("1e3", '"1e3"'),
        ("0x1F", '"0x1F"'),
        ("yes", '"yes"'),
        ("ON", '"ON"'),
        ("null", '"null"'),
        ("1_000", '"1_000"'),
        ("v1.10", "v1.10"),
        ("1.2.3", "1.2.3"),
        ("latest", "latest"),
        ("2024.01.15-abc", "2024.01.15-abc"),
    ],
)
def test_plain_values_are_quoted_only_when_yaml_would_not_read_a_string(
    tag: str, written: str
) -> None:
    out = render_kustomization(
        "images:\n- name: a\n  newTag: old\n",
        [Artifact("a", "image", "a", tag)],
        digest=False,
        file="k",
    )
    assert out == f"images:\n- name: a\n  newTag: {written}\n"


def test_unchanged_text_is_returned_as_is() -> None:
    text = "images:\n- name: a\n  newTag: '1.0'\n"
    assert (
        render_kustomization(text, [Artifact("a", "image", "a", "1.0")], digest=False, file="k")
        is text
    )
    assert render_kustomization(text, [], digest=False, file="k") is text


def test_missing_image_is_appended_in_the_lists_block_style() -> None:
    text = (
        "images:\n  - name: a   # first\n    newTag: '1'\n# trailing comment\nresources:\n  - x\n"
    )
    out = render_kustomization(
        text, [Artifact("b", "image", "b", "2.0", new_name="mirror/b")], digest=False, file="k"
    )
    assert out == (
        "images:\n  - name: a   # first\n    newTag: '1'\n"
        "  - name: b\n    newName: mirror/b\n    newTag: '2.0'\n"
        "# trailing comment\nresources:\n  - x\n"
    )


def test_missing_image_is_appended_to_a_flow_list_and_as_a_flow_item() -> None:
    flow_list = "images: [{name: a, newTag: v1}]  # c\n"
    out = render_kustomization(
        flow_list, [Artifact("b", "image", "b", "v2")], digest=False, file="k"
    )
    assert out == "images: [{name: a, newTag: v1}, {name: b, newTag: v2}]  # c\n"
    flow_items = 'images:\n- {name: a, newTag: "v1"}\n'
    out = render_kustomization(
        flow_items, [Artifact("b", "image", "b", "v2")], digest=False, file="k"
    )
    assert out == 'images:\n- {name: a, newTag: "v1"}\n- {name: b, newTag: "v2"}\n'


def test_images_block_is_created_respecting_crlf_and_missing_final_newline() -> None:
    text = "resources:\r\n  - ../base\r\nnamespace: x"
    out = render_kustomization(
        text, [Artifact("a", "image", "ghcr.io/a", "1.2.3")], digest=False, file="k"
    )
    assert out == (
        "resources:\r\n  - ../base\r\nnamespace: x\r\n"
        "images:\r\n  - name: ghcr.io/a\r\n    newTag: 1.2.3"
    )


def test_empty_images_key_is_filled() -> None:
    out = render_kustomization(
        "images:   # none yet\nresources: [a]\n",
        [Artifact("a", "image", "a", "v1")],
        digest=False,
        file="k",
    )
    assert out == "images:   # none yet\n- name: a\n  newTag: v1\nresources: [a]\n"


def test_appending_after_an_anchored_first_item() -> None:
    text = (CORPUS / "kustomization-anchors.yaml").read_text()
    out = render_kustomization(
        text, [Artifact("n", "image", "ghcr.io/acme/new", "v1")], digest=False, file="k"
    )
    added = "  - name: ghcr.io/acme/new\n    newTag: v1\n"
    assert out == text.replace("replacements:\n", added + "replacements:\n")


def test_digest_is_added_when_digest_rendering_is_on() -> None:
    digest = "sha256:" + "c" * 64
    out = render_kustomization(
        "images:\n- name: a\n  newTag: v1\n",
        [Artifact("a", "image", "a", "v2", digest)],
        digest=True,
        file="k",
    )
    assert out == f"images:\n- name: a\n  newTag: v2\n  digest: {digest}\n"
    out = render_kustomization(
        "images: [{name: a, newTag: v1}]\n",
        [Artifact("a", "image", "a", "v2", digest)],
        digest=True,
        file="k",
    )
    assert out == f'images: [{{name: a, newTag: v2, digest: "{digest}"}}]\n'


def test_digest_rendering_without_a_digest_is_refused() -> None:
    with pytest.raises(RenderError, match="no digest is known"):
        render_kustomization(
            "images:\n- name: a\n  newTag: v1\n",
            [Artifact("a", "image", "a", "v2")],
            digest=True,
            file="k",
        )


def test_unmanaged_stale_digest_is_refused_not_kept_silently() -> None:
    text = f"images:\n- name: a\n  newTag: v1\n  digest: sha256:{'d' * 64}\n"
    with pytest.raises(RenderError, match="pins digest"):
        render_kustomization(text, [Artifact("a", "image", "a", "v2")], digest=False, file="k")
    # Same tag: nothing to do, the pin is the user's business.
    assert (
        render_kustomization(text, [Artifact("a", "image", "a", "v1")], digest=False, file="k")
        is text
    )


def test_shared_anchor_is_refused_and_alias_target_is_replaced_by_a_literal() -> None:
    text = "images:\n- name: a\n  newTag: &t v1\n- name: b\n  newTag: *t\n"
    with pytest.raises(RenderError, match="anchor &t"):
        render_kustomization(text, [Artifact("a", "image", "a", "v2")], digest=False, file="k")
    out = render_kustomization(text, [Artifact("b", "image", "b", "v2")], digest=False, file="k")
    assert out == "images:\n- name: a\n  newTag: &t v1\n- name: b\n  newTag: v2\n"


def test_aliased_entry_mapping_is_changed_once() -> None:
    text = "base: &e {name: a, newTag: v1}\nimages:\n- *e\n"
    out = render_kustomization(text, [Artifact("a", "image", "a", "v2")], digest=False, file="k")
    assert out == "base: &e {name: a, newTag: v2}\nimages:\n- *e\n"


def test_missing_helm_chart_entry_is_an_error() -> None:
    with pytest.raises(RenderError, match="no helmCharts entry named x"):
        render_kustomization(
            "helmCharts: []\n", [Artifact("x", "chart", "x", "1.0.0")], digest=False, file="k"
        )


def test_block_scalar_target_is_refused() -> None:
    with pytest.raises(RenderError, match="block scalars"):
        render_kustomization(
            "images:\n- name: a\n  newTag: |\n    v1\n",
            [Artifact("a", "image", "a", "v2")],
            digest=False,
            file="k",
        )


def test_conflicting_artifacts_for_one_name_are_refused() -> None:
    with pytest.raises(RenderError, match="different versions"):
        render_kustomization(
            "images: []\n",
            [Artifact("p", "image", "a", "v1"), Artifact("q", "image", "a", "v2")],
            digest=False,
            file="k",
        )


def test_invalid_yaml_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="not valid YAML"):
        render_kustomization(
            "images: [\n", [Artifact("a", "image", "a", "v1")], digest=False, file="k"
        )


MARKED = 'tag: v0 # {"$reconciler": "p:a:tag"}\n'
DEEP = MARKED + "images:\n- name: a\n  newTag: " + "[" * 5000 + "]" * 5000 + "\n"
BOMB = MARKED + "a: &a [x, x]\n" + "".join(f"b{i}: *a\n" for i in range(150))
TARGET_KINDS = {  # target kind -> the artifact kind it renders
    "kustomize-images": "image",
    "kustomize-helm": "chart",
    "helmrelease": "chart",
    "application": "chart",
    "markers": "image",
}


@pytest.mark.parametrize("kind", sorted(TARGET_KINDS))
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (DEEP, "k: line 4: nesting deeper than 100 levels"),
        (BOMB, "k: line 103: too many YAML aliases (>100): refusing a possible alias bomb"),
    ],
    ids=["deep", "alias-bomb"],
)
def test_hostile_target_files_are_render_errors_for_every_target_kind(
    kind: str, text: str, message: str
) -> None:
    artifacts = [Artifact("a", TARGET_KINDS[kind], "a", "v1")]
    with pytest.raises(RenderError) as read_error:
        current_versions(kind, text, artifacts, project="p", file="k")
    assert str(read_error.value) == message
    with pytest.raises(RenderError) as render_error:
        render(kind, text, artifacts, project="p", digest=False, file="k")
    assert str(render_error.value) == message


def test_read_kustomization_reports_values_as_written() -> None:
    state = read_kustomization((CORPUS / "kustomization-helmcharts.yaml").read_text(), file="k")
    assert state.charts == {"podinfo": Current("6.5.0"), "redis": Current("18.1.0")}
    state = read_kustomization("images:\n- name: a\n  newTag: 1.10\n  newName: m/a\n", file="k")
    assert state.images == {"a": Current(version="1.10", name="m/a")}


# --- HelmRelease, Application -------------------------------------------------------------


def test_helmrelease_without_version_gets_one_and_unknown_chart_is_an_error() -> None:
    text = (
        "kind: HelmRelease\nspec:\n  chart:\n    spec:\n      chart: podinfo\n"
        "      sourceRef: {kind: HelmRepository, name: p}\n  values: {}\n"
    )
    out = render_helmrelease(text, [Artifact("p", "chart", "podinfo", "6.5.4")], file="hr")
    assert out == text.replace("name: p}\n", "name: p}\n      version: 6.5.4\n")
    with pytest.raises(RenderError, match="no HelmRelease uses chart other"):
        render_helmrelease(text, [Artifact("o", "chart", "other", "1.0.0")], file="hr")


def test_read_helmrelease_and_application() -> None:
    assert read_helmrelease((CORPUS / "helmrelease.yaml").read_text(), file="hr") == {
        "podinfo": Current("6.5.*"),
        "redis": Current("18.1.0"),
    }
    assert read_application((CORPUS / "application-multi-source.yaml").read_text(), file="a") == {
        "kube-prometheus-stack": Current("55.5.0"),
        "nginx": Current("15.9.0"),
    }


def test_application_git_sources_are_not_charts() -> None:
    text = (CORPUS / "application-multi-source.yaml").read_text()
    with pytest.raises(RenderError, match="no Application source uses chart config"):
        render_application(text, [Artifact("c", "chart", "config", "1.0.0")], file="a")


# --- markers ------------------------------------------------------------------------------


def test_markers_of_other_projects_are_untouched_and_files_without_the_literal_unparsed() -> None:
    # No marker of this project: an error found by a text scan (the YAML is not parsed),
    # since rendering nothing would record a deployment the file never got.
    text = "image: a:1 # {'$reconciler': 'shop:api'}\n: not even yaml ["
    with pytest.raises(RenderError, match="x: markers target: no marker for api of project shop"):
        render_markers(text, "shop", [Artifact("api", "image", "a", "2")], file="x")
    text = 'image: a:1 # {"$reconciler": "other:api"}\nmine: a:1 # {"$reconciler": "shop:api"}\n'
    out = render_markers(text, "shop", [Artifact("api", "image", "a", "2")], file="x")
    assert out == text.replace("mine: a:1", "mine: a:2")


def test_marker_on_sequence_item_and_empty_value() -> None:
    text = (
        'args:\n  - a:1 # {"$reconciler": "shop:api"}\ntag:   # {"$reconciler": "shop:api:tag"}\n'
    )
    out = render_markers(text, "shop", [Artifact("api", "image", "a", "v2")], file="x")
    assert out == (
        'args:\n  - a:v2 # {"$reconciler": "shop:api"}\n'
        'tag: v2   # {"$reconciler": "shop:api:tag"}\n'
    )


def test_marker_errors() -> None:
    artifacts = [Artifact("api", "image", "a", "v2")]
    with pytest.raises(RenderError, match="wants a digest"):
        render_markers('d: x # {"$reconciler": "shop:api:digest"}\n', "shop", artifacts, file="x")
    with pytest.raises(RenderError, match="malformed marker"):
        render_markers('d: x # {"$reconciler": "shop:api:bogus"}\n', "shop", artifacts, file="x")
    with pytest.raises(RenderError, match="follows no value"):
        render_markers('# {"$reconciler": "shop:api"}\nd: x\n', "shop", artifacts, file="x")


def test_read_markers() -> None:
    text = (CORPUS / "values-markers.yaml").read_text()
    assert read_markers(text, "shop", file="v") == {
        "api": Current(version="1.2.3", digest="", name="ghcr.io/acme/shop-api"),
        "worker": Current(version="1.2.3", name="ghcr.io/acme/shop-worker"),
        "chart": Current(version="0.4.0"),
    }
    assert read_markers('x: localhost:5000/a # {"$reconciler": "p:a"}\n', "p", file="v") == {
        "a": Current(version=None, name="localhost:5000/a")
    }


# --- dispatch -----------------------------------------------------------------------------


def test_render_and_current_versions_dispatch_by_target_kind() -> None:
    text = (CORPUS / "kustomization-helmcharts.yaml").read_text()
    artifacts = [
        Artifact("img", "image", "ghcr.io/stefanprodan/podinfo", "6.6.0"),
        Artifact("chart", "chart", "podinfo", "6.6.0"),
    ]
    images_only = render("kustomize-images", text, artifacts, project="p", digest=False, file="k")
    assert current_versions("kustomize-images", images_only, artifacts, project="p", file="k") == {
        "img": Current("6.6.0")
    }
    assert current_versions("kustomize-helm", images_only, artifacts, project="p", file="k") == {
        "chart": Current("6.5.0")
    }
    both = render("kustomize-helm", images_only, artifacts, project="p", digest=False, file="k")
    assert current_versions("kustomize-helm", both, artifacts, project="p", file="k") == {
        "chart": Current("6.6.0")
    }
    values = (CORPUS / "values-markers.yaml").read_text()
    assert current_versions(
        "markers", values, [Artifact("chart", "chart", "shop", "1.0.0")], project="shop", file="v"
    ) == {"chart": Current("0.4.0")}


# --- property tests -----------------------------------------------------------------------

TAGS = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,40}\Z")
TEMPLATES = [
    "images:\n- name: a\n  newTag: old\n",
    "images:\n  - name: a\n    newTag: 'old'  # c\n",
    'images:\r\n  - name: a\r\n    newTag: "old"',
    "images: [{name: a, newTag: old}]\n",
    "resources: [x]\n",
]


@settings(max_examples=150, deadline=None)
@given(tag=TAGS, template=st.sampled_from(TEMPLATES))
def test_any_valid_tag_reads_back_as_the_same_string(tag: str, template: str) -> None:
    import yaml as yaml11  # PyYAML (test extra): a YAML 1.1 reader, like go-yaml v2

    out = render_kustomization(template, [Artifact("a", "image", "a", tag)], digest=False, file="k")
    assert read_kustomization(out, file="k").images["a"].version == tag
    assert yamlio.load_one(out)["images"][0]["newTag"] == tag
    assert yaml11.safe_load(out)["images"][0]["newTag"] == tag


HOSTILE = st.one_of(
    st.text(min_size=1, max_size=30).filter(
        lambda t: re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", t) is None
    ),
    st.sampled_from(
        [
            "1.0\nimages: []",
            "v1 # x",
            "a: b",
            "'1'",
            '"1"',
            "-1",
            ".1",
            "x" * 129,
            "1.0\r",
            "{a}",
            "*alias",
            "&anchor",
        ]
    ),
)


@settings(max_examples=150, deadline=None)
@given(tag=HOSTILE)
def test_hostile_tags_are_rejected(tag: str) -> None:
    with pytest.raises(RenderError, match="refusing invalid"):
        render_kustomization(
            TEMPLATES[0], [Artifact("a", "image", "a", tag)], digest=False, file="k"
        )
    with pytest.raises(RenderError, match="refusing invalid"):
        render_markers(
            't: x # {"$reconciler": "p:a"}\n', "p", [Artifact("a", "image", "a", tag)], file="m"
        )


@pytest.mark.parametrize(
    "digest",
    ["sha256:" + "A" * 64, "sha256:abc", "sha512:" + "a" * 64, "sha256:" + "a" * 64 + "\n#"],
)
def test_hostile_digests_are_rejected(digest: str) -> None:
    with pytest.raises(RenderError, match="invalid digest"):
        render_kustomization(
            TEMPLATES[0], [Artifact("a", "image", "a", "v1", digest)], digest=True, file="k"
        )


def test_result_is_reparsed_and_a_wrong_splice_is_refused() -> None:
    # A plain scalar continued on the next line: splicing the first line alone
    # would yield "v2 continued"; the re-parse check must catch it.
    text = "images:\n- name: a\n  newTag: v1\n    continued\n"
    with pytest.raises(RenderError, match="does not read back as intended"):
        render_kustomization(text, [Artifact("a", "image", "a", "v2")], digest=False, file="k")
