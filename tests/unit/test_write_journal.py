"""Undoing one project's writes: the write journal, and unreadable target files."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import records
from reconciler.environments import read_target
from reconciler.errors import RenderError


def test_undo_restores_each_file_as_it_was_at_the_mark(tmp_path: Path) -> None:
    shared, mine, old = tmp_path / "shared.yaml", tmp_path / "new/mine.yaml", tmp_path / "old"
    shared.write_text("original\n")
    old.write_text("kept\n")
    with records.journal() as journal:
        records.write_if_changed(tmp_path, "shared.yaml", "first project\n")  # earlier project
        mark = journal.mark()
        records.write_if_changed(tmp_path, "shared.yaml", "second project\n")
        records.write_if_changed(tmp_path, "shared.yaml", "second project, again\n")
        records.write_if_changed(tmp_path, "new/mine.yaml", "created\n")
        records.write_if_changed(tmp_path, "old", "kept\n")  # unchanged: nothing to undo
        journal.undo(mark)
    assert shared.read_text() == "first project\n"  # not HEAD's "original"
    assert not mine.exists()
    assert old.read_text() == "kept\n"
    assert not list(tmp_path.rglob("*.tmp"))


def test_writes_outside_a_journal_are_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "f"
    records.write_if_changed(tmp_path, "f", "a\n")
    with records.journal() as journal:
        assert journal.mark() == 0
        records.write_file(tmp_path, "f", b"b\n")
        assert journal.mark() == 1
    records.write_file(tmp_path, "f", b"c\n")
    assert path.read_text() == "c\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"images: [caf\xe9]\n", "k.yaml: not UTF-8 (at byte offset 12)"),
        (None, "k.yaml: Is a directory"),
    ],
    ids=["latin-1", "directory"],
)
def test_unreadable_target_is_a_render_error(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    if content is None:
        (tmp_path / "k.yaml").mkdir()
    else:
        (tmp_path / "k.yaml").write_bytes(content)
    with pytest.raises(RenderError) as caught:
        read_target(tmp_path, "k.yaml")
    assert str(caught.value) == message
