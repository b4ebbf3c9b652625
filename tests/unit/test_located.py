"""Rendering a kustomization from libyaml's events (``rendering.located``) gives the
very bytes, errors and readings of the round-trip path (issue 22, item 2), and is
what a plain render takes: the round-trip loader is not called."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reconciler import yamlio
from reconciler.errors import RenderError
from reconciler.rendering import Artifact, kustomize, located, read_kustomization
from reconciler.rendering.kustomize import render_kustomization

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
NAMES = ["ghcr.io/acme/api", "quay.io/acme/web", "nginx", "docker.io/library/é-app"]
TAGS = ["1.0", "1.25.3", "v2.1.0", "10", "1.2.3-rc.1", "7.2.0"]
DIGESTS = ["sha256:" + c * 64 for c in "0ab"]


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except RenderError as error:
        return "error", str(error)


def _both_ways(call: Callable[[], Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """(the outcome as rendered, the outcome with the event reader switched off)."""
    fast = _outcome(call)
    with mock.patch.object(located, "read", return_value=None):
        slow = _outcome(call)
    return fast, slow


# --- generated kustomization-like documents ---------------------------------------------

_scalar_styles = st.sampled_from(["plain", "single", "double"])


def _written(value: str, style: str) -> str:
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    if style == "double":
        return '"' + value + '"'
    return value


@st.composite
def _entry(draw: st.DrawFn, flow: bool) -> str:
    """One ``images[]`` entry, block (as lines after ``- ``) or flow."""
    keys = [("name", draw(st.sampled_from(NAMES)))]
    if draw(st.booleans()):
        keys.append(("newName", draw(st.sampled_from(["mirror.example.com/x", "reg/é"]))))
    if draw(st.integers(0, 4)):
        keys.append(("newTag", draw(st.sampled_from([*TAGS, "~", "null"]))))
    if draw(st.integers(0, 2)) == 0:
        keys.append(("digest", draw(st.sampled_from(DIGESTS))))
    keys = draw(st.permutations(keys))
    parts = [(k, _written(v, draw(_scalar_styles))) for k, v in keys]
    if flow:
        return "{" + ", ".join(f"{k}: {v}" for k, v in parts) + "}"
    return "\n".join(f"{k}: {v}" for k, v in parts)


@st.composite
def kustomizations(draw: st.DrawFn) -> str:
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    indent = draw(st.sampled_from(["", "  ", "    "]))
    lines = []
    if draw(st.booleans()):
        lines.append("# overlay für prod\t(managed) 🚀")
    if draw(st.booleans()):
        lines.append("---")
    lines += ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization"]
    if draw(st.booleans()):
        lines += ["metadata:", "  name: x", "  annotations: {images: not-these}"]
    lines += ["resources:", f"{indent}- ../../base"]
    anchored = draw(st.integers(0, 9)) == 0
    if draw(st.booleans()):
        entries = draw(st.lists(_entry(flow=True), min_size=1, max_size=3))
        lines.append("images: [" + ", ".join(entries) + "]")
    else:
        lines.append("images:" + (" &imgs" if anchored else ""))
        for entry in draw(st.lists(_entry(flow=draw(st.booleans())), min_size=1, max_size=3)):
            first, *rest = entry.split("\n")
            comment = draw(st.sampled_from(["", "  # keep", " # ünï\tcode"]))
            lines.append(f"{indent}- {first}{comment}")
            lines += [f"{indent}  {line}" for line in rest]
    if anchored:
        lines.append("replacements: *imgs")
    if draw(st.booleans()):
        lines += ["patches:", f"{indent}- patch: |-", f"{indent}    images: [a]"]
    if draw(st.booleans()):
        lines += ["---", "kind: ConfigMap", "data:", "  images: nope", "  newTag: '1'"]
    text = nl.join(lines) + (nl if draw(st.booleans()) else "")
    return ("\ufeff" if draw(st.integers(0, 5)) == 0 else "") + text


@settings(max_examples=200, deadline=None)
@given(
    text=kustomizations(),
    picks=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(TAGS)), max_size=3),
    digest=st.booleans(),
    new_name=st.sampled_from([None, "mirror.example.com/x", "reg/other"]),
)
def test_the_event_located_splice_gives_the_round_trip_bytes(text, picks, digest, new_name):
    artifacts = [
        Artifact(f"p{i}", "image", name, tag, DIGESTS[i % 3], new_name if i == 0 else None)
        for i, (name, tag) in enumerate(dict(picks).items())
    ]
    fast, slow = _both_ways(lambda: render_kustomization(text, artifacts, digest=digest, file="k"))
    assert fast == slow
    event("located: " + ("decided" if located.read(text) is not None else "undecided"))
    reading_fast, reading_slow = _both_ways(lambda: read_kustomization(text, file="k"))
    assert reading_fast == reading_slow


# --- the event path is the one taken -----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "kustomization-crlf.yaml",
        "kustomization-helmcharts.yaml",
        "kustomization-indented.yaml",
        "kustomization-multidoc.yaml",
        "kustomization-no-final-newline.yaml",
    ],
)
def test_a_render_of_existing_entries_never_runs_the_round_trip_loader(name):
    text = (CORPUS / name).read_text(encoding="utf-8")
    held = read_kustomization(text, file=name)
    artifacts = [Artifact(n, "image", n, "9.9.9", DIGESTS[0]) for n in held.images]
    artifacts += [Artifact(n, "chart", n, "9.9.9") for n in held.charts]
    with mock.patch.object(yamlio, "load_all", side_effect=AssertionError("round-trip load")):
        new = render_kustomization(text, artifacts, digest=False, file=name)
        after = read_kustomization(new, file=name)
    assert {n: c.version for n, c in (after.images | after.charts).items()} == {
        a.name: "9.9.9" for a in artifacts
    }


@pytest.mark.parametrize(
    "text",
    [
        "images:\n  - name: a\n    newTag: &t 1.0.0\nx: *t\n",  # an alias
        "images:\n  - name: a\n    newTag: !!str 1.0.0\n",  # a tag
        "images:\n  - name: a\n    newTag: 1.0.0\n  - name: b\n    newTag: 1\n    newTag: 2\n",
        "%YAML 1.1\n---\nimages:\n  - name: a\n    newTag: 1.0.0\n",
        "images:\n  - {name: a, newTag: ghcr.io/a:1}\n",  # YAML 1.2 only: libyaml refuses
        "images:\n  - name: a\n    newTag: 1.0.0\n<<: {b: 1}\n",
    ],
)
def test_what_the_event_reader_cannot_decide_is_left_to_the_round_trip_path(text):
    assert located.read(text) is None
    fast, slow = _both_ways(
        lambda: render_kustomization(
            text, [Artifact("a", "image", "a", "2.0.0")], digest=False, file="k"
        )
    )
    assert fast == slow


def test_offsets_count_characters_after_a_byte_order_mark():
    text = "\ufeff# ünï 🚀\r\nimages:\r\n  - name: a  # é\r\n    newTag: 'x'\r\n"
    new = render_kustomization(text, [Artifact("a", "image", "a", "2.0")], digest=False, file="k")
    assert new == text.replace("'x'", "'2.0'")
    assert kustomize.read_kustomization(new, file="k").images["a"].version == "2.0"


def test_a_tab_before_a_comment_is_read_as_yaml_says():
    """YAML separates a comment by spaces or tabs (libyaml and go-yaml, hence Kustomize,
    agree); ruamel's round-trip scanner refuses the tab, so there the event path
    renders what the round-trip path would have refused, byte-exact."""
    text = "images:\n- name: a\t# tabbed\n  newTag: 1.0.0\n"
    new = render_kustomization(text, [Artifact("a", "image", "a", "2.0.0")], digest=False, file="k")
    assert new == text.replace("1.0.0", "2.0.0")
    with mock.patch.object(located, "read", return_value=None), pytest.raises(RenderError):
        render_kustomization(text, [Artifact("a", "image", "a", "2.0.0")], digest=False, file="k")


def test_the_event_verify_refuses_an_edit_that_would_not_read_as_the_string():
    """The verify on events has teeth where a YAML 1.2 load has none: a tag ``yes``
    spliced in plain reads as a string to YAML 1.2 (the C safe load) but as a boolean
    to YAML 1.1 readers such as Kustomize's, so it is not the string promised."""
    from reconciler.rendering.yamlsplice import Edit, Plan

    text = "images:\n  - name: a\n    newTag: v1\n"
    start = text.index("v1")

    def plan_writing(written: str) -> Plan:
        plan = Plan(text, "k")
        plan.edits.append(Edit(start, start + 2, written))
        plan.mutations.append(((0, "images", 0, "newTag"), "yes"))
        return plan

    assert plan_writing("yes").result() == text.replace("v1", "yes")  # the C load agrees
    with pytest.raises(RenderError, match="does not read back as intended"):
        plan_writing("yes").result(read=located.plain_documents)
    quoted = plan_writing('"yes"').result(read=located.plain_documents)
    assert quoted == text.replace("v1", '"yes"')
