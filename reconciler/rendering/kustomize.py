"""Kustomize targets: a kustomization's ``images[]`` (``newTag``, ``digest``,
``newName``; missing entries are appended) and ``helmCharts[]`` (``version``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from reconciler.errors import RenderError
from reconciler.rendering.artifacts import Artifact, Current, validate_artifacts
from reconciler.rendering.yamlsplice import (
    APPEND,
    Edit,
    Plan,
    Source,
    Style,
    get,
    is_flow,
    key_end,
    load,
    mappings,
    own_keys,
    quote,
    scalar_text,
    style_of,
)

__all__ = ["KustomizationVersions", "read_kustomization", "render_kustomization"]


@dataclass(frozen=True)
class KustomizationVersions:
    images: dict[str, Current]  # by images[].name
    charts: dict[str, Current]  # by helmCharts[].name


def render_kustomization(
    text: str, artifacts: Sequence[Artifact], *, digest: bool, file: str
) -> str:
    """Set ``images[]`` (image artifacts) and ``helmCharts[]`` (chart artifacts).

    Images are matched on ``name``; ``newTag`` is set, ``newName`` when the
    artifact has one, ``digest`` when ``digest`` is true (a digest must then be
    known). An image without an entry gets one appended to ``images:`` (which is
    created at the end of the document when missing). With ``digest`` false the
    ``digest`` key is not managed; an entry pinning a digest other than the
    artifact's would make Kustomize deploy ``name:newtag@olddigest``, the old
    image, so that is refused rather than silently written. Charts must already
    have a ``helmCharts`` entry (its ``repo`` is not ours to invent); only
    ``version`` is set.
    """
    validate_artifacts(artifacts, file)
    if not artifacts:
        return text
    plan = Plan(text, file)
    unmatched: list[Artifact] = []
    for artifact in artifacts:
        if artifact.kind == "image":
            if not _render_image_entries(plan, artifact, digest):
                unmatched.append(artifact)
        elif not _render_chart_entries(plan, artifact):
            raise RenderError(file, f"no helmCharts entry named {artifact.name}")
    if unmatched:
        _append_images(plan, unmatched, digest)
    return plan.result()


def _image_values(
    artifact: Artifact, entry: CommentedMap | None, digest: bool, file: str
) -> dict[str, str]:
    values: dict[str, str] = {}
    if artifact.new_name:
        values["newName"] = artifact.new_name
    values["newTag"] = artifact.version
    if digest:
        if artifact.digest is None:
            raise RenderError(
                file, f"{artifact.package}: digest rendering is on but no digest is known"
            )
        values["digest"] = artifact.digest
    elif entry is not None and entry.get("digest") and entry.get("digest") != artifact.digest:
        tag_changes = entry.get("newTag") != artifact.version
        if tag_changes:
            raise RenderError(
                file,
                f"images entry {artifact.name} pins digest {entry['digest']} which would "
                "override the new tag; remove it or enable digest rendering",
            )
    return values


def _render_image_entries(plan: Plan, artifact: Artifact, digest: bool) -> bool:
    found = False
    for doc_index, doc in enumerate(plan.docs):
        images = get(doc, "images")
        for item_index, entry in mappings(images):
            if entry.get("name") != artifact.name:
                continue
            found = True
            values = _image_values(artifact, entry, digest, plan.file)
            plan.set_keys(
                entry,
                (doc_index, "images", item_index),
                values,
                flow=is_flow(images),
                styles=_styles(plan, images, values),
            )
    return found


def _render_chart_entries(plan: Plan, artifact: Artifact) -> bool:
    found = False
    for doc_index, doc in enumerate(plan.docs):
        charts = get(doc, "helmCharts")
        for item_index, entry in mappings(charts):
            if entry.get("name") == artifact.name:
                found = True
                plan.set_keys(
                    entry,
                    (doc_index, "helmCharts", item_index),
                    {"version": artifact.version},
                    flow=is_flow(charts),
                )
    return found


def _styles(plan: Plan, seq: Any, values: Mapping[str, str]) -> dict[str, Style]:
    entries = [entry for _, entry in mappings(seq)]
    return {key: style_of(plan.src, entries, key, plan.file) for key in values}


def _append_images(plan: Plan, artifacts: Sequence[Artifact], digest: bool) -> None:
    """Append entries for images the file does not mention yet."""
    target = next(
        (i for i, d in enumerate(plan.docs) if isinstance(get(d, "images"), CommentedSeq)), None
    )
    if target is None:
        target = _kustomization_doc(plan)
    doc = plan.docs[target]
    images = doc.get("images")
    entries = [{"name": a.name, **_image_values(a, None, digest, plan.file)} for a in artifacts]
    src, nl = plan.src, plan.src.newline

    if isinstance(images, CommentedSeq) and (is_flow(images) or not images):
        # An empty sequence can only be written in flow style: `images: []`.
        styles = _styles(plan, images, entries[0])
        body = ", ".join(_flow_mapping(entry, styles) for entry in entries)
        plan.insert_in_flow(_collection_start(plan, doc, "images"), body)
    elif isinstance(images, CommentedSeq) and images:
        dash_offset = _dash_offset(plan, images)
        dash = src.column(dash_offset)
        first = images[0]
        styles = _styles(plan, images, entries[0])
        if isinstance(first, CommentedMap) and is_flow(first):
            gap = src.offset(first.lc.line, first.lc.col) - dash_offset
            lines = [" " * dash + "-" + " " * (gap - 1) + _flow_mapping(e, styles) for e in entries]
        else:
            gap = (images.lc.item(0)[1] - dash) if isinstance(first, CommentedMap) else 2
            lines = [_block_mapping(e, styles, dash, gap, nl) for e in entries]
        at = src.block_end(src.line_of(dash_offset), dash)
        plan.edits.append(Edit(at, at, "".join(nl + line for line in lines)))
    elif "images" in own_keys(doc) and images is None:
        _fill_empty_key(plan, doc, "images", entries)
    elif "images" in doc:
        raise RenderError(plan.file, "images: is not a list")
    else:
        if is_flow(doc):
            raise RenderError(plan.file, "cannot add images: to a flow-style document")
        block = "".join(
            nl + _block_mapping(e, {}, doc.lc.col + _sequence_indent(doc), 2, nl) for e in entries
        )
        plan.add_entries(doc, {"images": block}, flow=False)
    for entry in entries:
        if isinstance(images, CommentedSeq):
            plan.mutations.append(((target, "images", APPEND), entry))
    if not isinstance(images, CommentedSeq):
        plan.mutations.append(((target, "images"), entries))


def _fill_empty_key(
    plan: Plan, doc: CommentedMap, key: str, entries: Sequence[Mapping[str, str]]
) -> None:
    """Give an empty ``key:`` (null) a block list of ``entries`` on the following lines."""
    src = plan.src
    if is_flow(doc):
        raise RenderError(plan.file, f"{key}: is empty in a flow-style document")
    colon_end = key_end(src, doc, key, plan.file)
    line = src.line_of(colon_end)
    rest = src.text[colon_end : src.ends[line]].strip()
    if rest and not rest.startswith("#"):
        raise RenderError(plan.file, f"line {line + 1}: {key}: holds an explicit null")
    dash = doc.lc.key(key)[1] + _sequence_indent(doc)
    block = "".join(src.newline + _block_mapping(e, {}, dash, 2, src.newline) for e in entries)
    plan.edits.append(Edit(src.ends[line], src.ends[line], block))


def _kustomization_doc(plan: Plan) -> int:
    mappings = [i for i, d in enumerate(plan.docs) if isinstance(d, CommentedMap)]
    kinds = [i for i in mappings if plan.docs[i].get("kind") in ("Kustomization", "Component")]
    if kinds:
        return kinds[0]
    if len(mappings) == 1:
        return mappings[0]
    raise RenderError(plan.file, "cannot tell which document is the kustomization")


def _collection_start(plan: Plan, mapping: CommentedMap, key: str) -> int:
    """Offset of the ``[``/``{`` of ``mapping[key]``, past any anchor or tag."""
    pos = plan.src.offset(*mapping.lc.value(key))
    match = re.compile(r"(?:[&!][^\s,\[\]{}]*\s*)*").match(plan.src.text, pos)
    assert match is not None
    return match.end()


def _dash_offset(plan: Plan, seq: CommentedSeq) -> int:
    """Offset of the ``-`` introducing the first item of a block sequence."""
    text = plan.src.text
    pos = plan.src.offset(*seq.lc.item(0)) - 1
    while pos >= 0 and text[pos] in " \t":
        pos -= 1
    if pos < 0 or text[pos] != "-":
        raise RenderError(plan.file, "cannot find the first item of images:")
    return pos


def _sequence_indent(doc: CommentedMap) -> int:
    """How far this document indents block sequences under their key (0 or 2 usually)."""
    for key, value in doc.items():
        if (
            isinstance(value, CommentedSeq)
            and value
            and not is_flow(value)
            and key in own_keys(doc)
        ):
            key_col = int(doc.lc.key(key)[1])
            item_line, item_col = (int(n) for n in value.lc.item(0))
            if item_line > doc.lc.key(key)[0] and item_col >= key_col + 2:
                return item_col - 2 - key_col
    return 0


def _flow_mapping(entry: Mapping[str, str], styles: Mapping[str, Style]) -> str:
    body = ", ".join(f"{k}: {quote(v, styles.get(k, 'plain'), True)}" for k, v in entry.items())
    return "{" + body + "}"


def _block_mapping(
    entry: Mapping[str, str], styles: Mapping[str, Style], dash: int, gap: int, nl: str
) -> str:
    lines = []
    for index, (key, value) in enumerate(entry.items()):
        prefix = " " * dash + "-" + " " * (gap - 1) if index == 0 else " " * (dash + gap)
        lines.append(f"{prefix}{key}: {quote(value, styles.get(key, 'plain'), False)}")
    return nl.join(lines)


def read_kustomization(text: str, *, file: str) -> KustomizationVersions:
    """What ``images[]`` and ``helmCharts[]`` currently say, by name."""
    src = Source(text)
    images: dict[str, Current] = {}
    charts: dict[str, Current] = {}
    for doc in load(text, file):
        for _, entry in mappings(get(doc, "images")):
            if isinstance(entry.get("name"), str):
                images[entry["name"]] = Current(
                    version=scalar_text(src, entry, "newTag", file),
                    digest=scalar_text(src, entry, "digest", file),
                    name=scalar_text(src, entry, "newName", file),
                )
        for _, entry in mappings(get(doc, "helmCharts")):
            if isinstance(entry.get("name"), str):
                charts[entry["name"]] = Current(version=scalar_text(src, entry, "version", file))
    return KustomizationVersions(images=images, charts=charts)
