"""Kustomize targets: a kustomization's ``images[]`` (``newTag``, ``digest``,
``newName``; missing entries are appended) and ``helmCharts[]`` (``version``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from reconciler.errors import RenderError
from reconciler.rendering import located
from reconciler.rendering.artifacts import Artifact, Current, validate_artifacts
from reconciler.rendering.yamlsplice import (
    APPEND,
    Edit,
    Plan,
    Source,
    Style,
    check_limits,
    could_be_other_than_string,
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
    if _plan_located(plan, artifacts, digest):
        return plan.result(read=located.plain_documents)
    plan.forget_edits()  # what the event reader planned is redone by the round-trip path
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


def _plan_located(plan: Plan, artifacts: Sequence[Artifact], digest: bool) -> bool:
    """Plan the edits from libyaml's events alone (``located``), without the round-trip
    parse; False where only that parse can decide: an entry to append, a key to add,
    a value written in a way the event reader leaves to it, an error to explain."""
    docs = located.read(plan.src.text)
    if docs is None:
        return False
    try:
        for artifact in artifacts:
            if not _set_located(plan, docs, artifact, digest):
                return False  # no entry yet: appending needs the round-trip positions
    except located.Undecided:
        return False
    return True


def _set_located(plan: Plan, docs: list[located.Node], artifact: Artifact, digest: bool) -> bool:
    """Edits for ``artifact`` in every entry naming it; False when no entry does."""
    section = "images" if artifact.kind == "image" else "helmCharts"
    found = False
    for doc_index, doc in enumerate(docs):
        entries = doc.items.get(section) if isinstance(doc, located.Map) else None
        if not isinstance(entries, located.Seq):
            continue
        for item_index, entry in enumerate(entries.items):
            if not isinstance(entry, located.Map):
                continue
            name = entry.items.get("name")
            if not isinstance(name, located.Scalar) or name.is_null():
                continue
            if name.string() != artifact.name:
                continue
            found = True
            values = (
                _located_image_values(artifact, entry, digest)
                if artifact.kind == "image"
                else {"version": artifact.version}
            )
            flow = entries.flow or entry.flow
            for key, value in values.items():
                node = entry.items.get(key)
                if not isinstance(node, located.Scalar) or node.is_null():
                    raise located.Undecided  # a key to add, or not a value
                span = node.span()
                if node.style == "plain" and could_be_other_than_string(node.value):
                    if node.value == value:
                        raise located.Undecided  # equal text, but maybe not a string
                elif node.value == value:
                    continue
                plan.set_scalar(span, value, (doc_index, section, item_index, key), flow)
    return found


def _located_image_values(artifact: Artifact, entry: located.Map, digest: bool) -> dict[str, str]:
    """``_image_values`` for an entry read by the event reader."""
    pinned = entry.items.get("digest")
    if isinstance(pinned, located.Scalar) and pinned.is_null():
        pinned = None
    differs = pinned is not None and (
        not isinstance(pinned, located.Scalar) or pinned.string() != artifact.digest
    )
    if differs and not digest:
        raise located.Undecided  # a pinned digest: the round-trip path judges it
    try:
        return _image_values(artifact, None, digest, "")
    except RenderError:
        raise located.Undecided from None  # the round-trip path raises it, naming the file


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
    """What ``images[]`` and ``helmCharts[]`` currently say, by name: from libyaml's
    events where they decide it, else from the round-trip parse."""
    check_limits(text, file)
    docs = located.read(text)
    if docs is not None:
        try:
            return _read_located(docs)
        except located.Undecided:
            pass
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


def _read_located(docs: list[located.Node]) -> KustomizationVersions:
    """``read_kustomization`` from the event reader's documents."""
    found = KustomizationVersions(images={}, charts={})
    for doc in docs:
        if not isinstance(doc, located.Map):
            continue
        for section, by_name in (("images", found.images), ("helmCharts", found.charts)):
            entries = doc.items.get(section)
            for entry in entries.items if isinstance(entries, located.Seq) else ():
                name = entry.items.get("name") if isinstance(entry, located.Map) else None
                if not isinstance(name, located.Scalar) or name.is_null():
                    continue
                assert isinstance(entry, located.Map)
                if section == "images":
                    by_name[name.string()] = Current(
                        version=_written(entry, "newTag"),
                        digest=_written(entry, "digest"),
                        name=_written(entry, "newName"),
                    )
                else:
                    by_name[name.string()] = Current(version=_written(entry, "version"))
    return found


def _written(entry: located.Map, key: str) -> str | None:
    """``scalar_text`` for the event reader: the value as written, None for null or
    a collection."""
    node = entry.items.get(key)
    return node.as_written() if isinstance(node, located.Scalar) else None
