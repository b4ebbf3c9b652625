"""Records and state files this process wrote are read back without parsing (issue 22,
item 1): what ``records`` remembers for a written text must be exactly what parsing
that text gives, for any value the files can hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import records, yamlio
from reconciler.model import Deployment, Release, ReleasedPackage

TRICKY = st.sampled_from(
    ["1.10", "1.0", "yes", "no", "null", "~", "0o17", "0x1F", "1e3", "1_000", "2001-01-01",
     "", " x", "a: b", "#x", "'q'", '"d"', "é🚀", "-", "[x]", "true", "&a", "*a", "!t"]
)  # fmt: skip
TEXT = st.one_of(TRICKY, st.text(max_size=12))
TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

packages = st.builds(
    ReleasedPackage,
    name=TEXT,
    kind=st.sampled_from(["image", "chart"]),
    source=TEXT,
    version=TEXT,
    digest=st.one_of(st.none(), TEXT.filter(bool)),
    built=st.one_of(st.none(), TIMES),
)
releases = st.builds(
    Release,
    project=TEXT,
    version=TEXT,
    channel=TEXT,
    trigger=st.one_of(st.none(), TEXT),
    created=TIMES,
    packages=st.lists(packages, max_size=3, unique_by=lambda p: p.name).map(tuple),
)
deployments = st.builds(
    Deployment,
    environment=st.just("dev"),
    release=TEXT,
    at=TIMES,
    by=TEXT,
    automatic=st.booleans(),
    phase=st.one_of(st.none(), TEXT),
    verification=st.sampled_from([None, "verified", "failed"]),
    verified_at=st.one_of(st.none(), TIMES),
    verification_reason=TEXT,
)


@settings(max_examples=300, deadline=None)
@given(release=releases)
def test_a_written_release_is_remembered_as_parsing_reads_it(release):
    text = records.release_to_text(release)
    assert records._WRITTEN[text] == records.release_from_data(yamlio.load_one_fast(text))


@settings(max_examples=300, deadline=None)
@given(
    project=TEXT,
    channels=st.dictionaries(TEXT, TEXT, max_size=3),
    history=st.lists(deployments, max_size=3),
    blocks=st.dictionaries(TEXT, TEXT, max_size=2),
    recent=st.lists(
        st.builds(records.RecentRelease, version=TEXT, channel=TEXT, created=TIMES), max_size=3
    ),
)
def test_a_written_state_is_remembered_as_parsing_reads_it(
    project, channels, history, blocks, recent
):
    state = records.ProjectState(project, channels, {"dev": history} if history else {}, blocks,
                                 recent)  # fmt: skip
    text = records.state_to_text(state)
    assert records._WRITTEN[text] == records._parse_state(project, text)


def test_the_pass_after_a_write_reads_without_parsing(tmp_path: Path, monkeypatch):
    now = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    release = Release("shop", "1.0.1", "stable", "t", now, ())
    state = records.ProjectState("shop")
    state.remember(release)
    state.deploy(Deployment("dev", "1.0.1", now + timedelta(seconds=1)))
    for path, text in (
        (records.release_path("shop", "1.0.1"), records.release_to_text(release)),
        (records.state_path("shop"), records.state_to_text(state)),
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    expected_state = records._parse_state(
        "shop", (tmp_path / records.state_path("shop")).read_text()
    )
    monkeypatch.setattr(yamlio, "load_one_fast", pytest.fail)
    assert records.read_release(tmp_path, "shop", "1.0.1") == release.__class__(
        **{**release.__dict__, "created": now.replace(microsecond=0)}
    )
    assert records.read_state(tmp_path, "shop") == expected_state
    assert records.read_state(tmp_path, "other-project") == records.ProjectState("other-project")
