"""Release version templates, masks, date parts, collisions and donors."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.versions import is_safe_version_text, next_release_version, version_from_donor

NOW = datetime(2024, 5, 1, 9, 7, tzinfo=UTC)


def nxt(template: str, last: str | None, existing: tuple[str, ...] = ()) -> str:
    return next_release_version(template, last, existing, NOW, "0.0.1")


@pytest.mark.parametrize(
    ("template", "last", "expected"),
    [
        ("{major}.{minor}.{patch+1}", "1.4.2", "1.4.3"),
        ("{major}.{minor+1}.0", "1.4.2", "1.5.0"),  # no magic reset: the template says .0
        ("{major}.{minor+1}.{patch}", "1.4.2", "1.5.2"),
        ("{major+1}.0.0", "1.4.2", "2.0.0"),
        ("{major}.{minor}.{patch}.{build+1}", "1.4.2.9", "1.4.2.10"),
        ("{major}.{minor}.{patch+1}", "1.4", "1.4.1"),  # missing parts read as 0
        ("{major}.{minor}.{patch+1}", "v1.4.2", "1.4.3"),
        ("{major}.{minor}.{patch+1}-beta", "1.4.2-beta", "1.4.3-beta"),
        # Octopus masks: i = increment, c = current (as Octopus documents them)
        ("c.c.i", "1.4.2", "1.4.3"),
        ("c.i.c", "1.4.2", "1.5.2"),
        ("i.i.i", "1.4.2", "2.0.0"),  # after an increment, later i parts restart at 0
        ("c.i.i", "1.4.2", "1.5.0"),
        ("1.4.i", "1.4.2", "1.4.3"),
        ("2.0.i", "1.4.2", "2.0.0"),  # a literal that differs restarts later i parts
        ("2.1.c.i", "2.1.5.7", "2.1.5.8"),
        ("c.c.i-rc", "1.4.2", "1.4.3-rc"),
    ],
)
def test_templates_and_masks(template: str, last: str, expected: str) -> None:
    assert nxt(template, last) == expected


@pytest.mark.parametrize("template", ["{major}.{minor}.{patch+1}", "i.i.c"])
def test_first_release_uses_initial(template: str) -> None:
    assert nxt(template, None) == "0.0.1"
    assert nxt(template, None, ("0.0.1",)) == "0.0.2"


@pytest.mark.parametrize(
    ("template", "existing", "expected"),
    [
        ("{yyyy}.{MM}.{dd}", (), "2024.05.01"),
        ("{yyyy}.{MM}.{dd}.{HH}{mm}", (), "2024.05.01.0907"),
        ("{yyyy}.{MM}.{dd}.{i}", (), "2024.05.01.1"),  # the counter starts at 1
        ("{yyyy}.{MM}.{dd}.{i}", ("2024.05.01.1", "2024.05.01.2"), "2024.05.01.3"),
        ("{yyyy}.{MM}.{dd}.{i}", ("2024.04.30.7",), "2024.05.01.1"),  # restarts each day
        ("{yyyy}.{MM}.{dd}.{i}", ("2024.05.01.4",), "2024.05.01.5"),  # max + 1, gaps kept
        ("{yyyy}{MM}{dd}.{i}", ("20240501.1",), "20240501.2"),
        ("{yyyy}.{MM}.{dd}", ("2024.05.01",), "2024.05.02"),  # collision: last number bumped
    ],
)
def test_date_templates_need_no_last_release(
    template: str, existing: tuple[str, ...], expected: str
) -> None:
    assert nxt(template, None, existing) == expected


def test_date_and_version_fields_combine() -> None:
    assert nxt("{major}.{yyyy}{MM}.{i}", "3.1.0") == "3.202405.1"


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (("1.4.3",), "1.4.4"),
        (("1.4.3", "1.4.4", "1.4.5"), "1.4.6"),
        (("1.4.3.0",), "1.4.4"),  # equal as versions counts as taken
        (("1.4.4",), "1.4.3"),  # only exact collisions move the result
    ],
)
def test_collisions_bump_the_last_number(existing: tuple[str, ...], expected: str) -> None:
    assert nxt("{major}.{minor}.{patch+1}", "1.4.2", existing) == expected


def test_collision_bump_keeps_width_and_suffix() -> None:
    assert nxt("{major}.{minor}.09-beta", "1.4.2", ("1.4.09-beta",)) == "1.4.10-beta"


@pytest.mark.parametrize(
    ("template", "last", "message"),
    [
        ("{major}.{nope}", "1.0.0", "unknown field {nope}"),
        ("{yyyy+1}", None, "only version fields take +N"),
        ("{major}.{minor}.{patch+1}", "latest", "not a version"),
        ("{major}/{minor}", "1.0", "not a safe file name"),
        ("{i}.{i}", None, "only once"),
        ("..", None, "not a safe file name"),
    ],
)
def test_template_errors(template: str, last: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        nxt(template, last)


@pytest.mark.parametrize(
    ("donor", "existing", "expected"),
    [
        ("v1.4.0", (), "1.4.0"),
        ("1.4.0", (), "1.4.0"),
        ("1.4.0", ("1.4.0",), "1.4.0-1"),
        ("v1.4.0", ("1.4.0", "1.4.0-1"), "1.4.0-2"),
        ("1.2.3+build.5", (), "1.2.3+build.5"),
        ("main-3f2a1c-1700000000", (), "main-3f2a1c-1700000000"),
        ("vnext", (), "vnext"),  # v only stripped before a digit
    ],
)
def test_version_from_donor(donor: str, existing: tuple[str, ...], expected: str) -> None:
    assert version_from_donor(donor, existing) == expected


@pytest.mark.parametrize("donor", ["../etc", "a/b", "", "x\ny", "..."])
def test_donor_must_be_a_safe_path_component(donor: str) -> None:
    with pytest.raises(ValueError, match="cannot be used as a release version"):
        version_from_donor(donor, ())


@given(
    st.lists(st.integers(0, 30), min_size=3, max_size=3),
    st.lists(st.from_regex(r"1\.[0-9]\.[0-9]{1,2}", fullmatch=True), max_size=30),
)
def test_result_is_always_new_and_safe(last: list[int], existing: list[str]) -> None:
    result = nxt("{major}.{minor}.{patch+1}", ".".join(map(str, last)), tuple(existing))
    assert result not in existing
    assert is_safe_version_text(result)
