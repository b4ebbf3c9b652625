"""Fuzzing: the config loader and the tag parser fail only in the documented ways.

Property for the loader: whatever the files hold, ``load_config`` returns a ``Config``
or raises ``ConfigError`` (every problem with a file and line), never anything else.
For tags: ``parse_version`` never raises, ``parse_range`` raises only ``ValueError``,
``select`` never raises and never chooses a tag outside the OCI grammar.
Bounded: 150 examples per property in CI, 3000 with RECONCILER_SOAK=1.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import model, yamlio
from reconciler.config import load_config
from reconciler.errors import ConfigError
from reconciler.ranges import parse_range
from reconciler.selection import is_valid_tag, select
from reconciler.versions import parse_version
from tests.helpers.configrepo import AppSpec, config_files
from tests.reliability.support import scaled

EXAMPLES = scaled(150, 3000)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,  # xdist-safe and reproducible from the seed alone
)
BASE = config_files(
    "http://127.0.0.1:9", [AppSpec("api", "a/api", "x/api"), AppSpec("web", "a/web", "x/web")]
)
COUNTS = {"loader": 0, "loaded": 0, "refused": 0}

KEYS = [
    "apiVersion",
    "kind",
    "name",
    "url",
    "type",
    "insecure",
    "timeout",
    "credentials",
    "passwordEnv",
    "lifecycle",
    "packages",
    "feed",
    "image",
    "chart",
    "manifestName",
    "channels",
    "rules",
    "range",
    "prerelease",
    "strategy",
    "allow",
    "environments",
    "overlay",
    "phases",
    "project",
    "channel",
    "sources",
    "releaseVersion",
    "initial",
    "template",
    "default",
    "automatic",
    "settle",
    "limits",
    "concurrency",
    "<<",
]
KINDS = ["Feed", "Project", "Lifecycle", "Trigger", "Settings", "Nope"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.sampled_from([*KINDS, "reconciler.dev/v1", "oci", "helm", "2s", "../x", "a/b", "*"]),
    st.text(max_size=30),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=25,
)
DOCUMENTS = st.fixed_dictionaries(
    {"apiVersion": st.sampled_from(["reconciler.dev/v1", "v2"]), "kind": st.sampled_from(KINDS)},
    optional={k: VALUES for k in KEYS[2:20]},
)
PLACES = [
    "feeds/f.yaml",
    "lifecycles/l.yaml",
    "projects/shop/project.yaml",
    "triggers/t.yaml",
    "reconciler.yaml",
    "projects/shop/triggers.yaml",
]


def _check(files: dict[str, str | bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "replace"))
        COUNTS["loader"] += 1
        try:
            load_config(root)
        except ConfigError as exc:
            COUNTS["refused"] += 1
            assert exc.problems, "a ConfigError without problems"
            for problem in exc.problems:
                text = str(problem)
                assert text and "Traceback" not in text
        else:
            COUNTS["loaded"] += 1


def _arbitrary_text() -> None:
    @FUZZ
    @given(place=st.sampled_from(PLACES), text=st.text(max_size=400))
    def run(place: str, text: str) -> None:
        _check({**BASE, place: text})

    run()


def _generated_documents() -> None:
    @FUZZ
    @given(place=st.sampled_from(PLACES), document=DOCUMENTS)
    def run(place: str, document: dict) -> None:
        try:
            text = yamlio.dump_new(document)
        except Exception:  # hypothesis made something YAML cannot write
            return
        _check({**BASE, place: text})

    run()


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "dup-line", "drop-line", "swap", "byte"]),
        st.integers(min_value=0, max_value=10_000),
        st.integers(min_value=0, max_value=10_000),
        st.text(alphabet=":-[]{}&*!|>'\"#%@` \t\n\x00\x85\ufeffabc019", max_size=6),
    ),
    min_size=1,
    max_size=4,
)


def mutate(text: str, mutations: list[tuple[str, int, int, str]]) -> str | bytes:
    data: str | bytes = text
    for kind, a, b, insert in mutations:
        lines = text.splitlines(keepends=True)
        i, j = (a % (len(text) + 1), b % (len(text) + 1))
        li, lj = a % max(1, len(lines)), b % max(1, len(lines))
        if kind == "delete":
            text = text[: min(i, j)] + text[max(i, j) :]
        elif kind == "insert":
            text = text[:i] + insert + text[i:]
        elif kind == "dup-line" and lines:
            lines.insert(li, lines[li])
            text = "".join(lines)
        elif kind == "drop-line" and lines:
            del lines[li]
            text = "".join(lines)
        elif kind == "swap" and lines:
            lines[li], lines[lj] = lines[lj], lines[li]
            text = "".join(lines)
        data = text
        if kind == "byte":  # invalid UTF-8 in the middle of the file
            raw = text.encode()
            data = raw[:i] + b"\xff\xfe" + raw[i:]
    return data


def _mutated_valid_files() -> None:
    @FUZZ
    @given(name=st.sampled_from(sorted(BASE)), mutations=MUTATIONS)
    def run(name: str, mutations: list[tuple[str, int, int, str]]) -> None:
        _check({**BASE, name: mutate(BASE[name], mutations)})

    run()


# 3,000 examples of each loader property take ~11 min alone on 2 cores: past the
# suite's 300 s timeout, which is meant for the CI size.
@pytest.mark.timeout(scaled(300, 3600))
def test_fuzz_config_loader():
    _arbitrary_text()
    _generated_documents()
    _mutated_valid_files()
    print(
        f"fuzz-config: examples={COUNTS['loader']} loaded={COUNTS['loaded']} "
        f"refused={COUNTS['refused']} other_exceptions=0"
    )
    assert COUNTS["refused"] > 0 and COUNTS["loaded"] > 0  # both outcomes were exercised


@FUZZ
@given(
    text=st.one_of(st.text(max_size=200), st.from_regex(r"v?[0-9.]{1,12}[-+_]?[a-z0-9.]{0,10}")),
    strict=st.booleans(),
)
def test_fuzz_tag_parser(text, strict):
    parse_version(text, strict=strict)  # documented: never raises
    try:
        parse_range(text)
    except ValueError:
        pass


@FUZZ
@given(
    tags=st.lists(st.text(max_size=140), max_size=20),
    strategy=st.sampled_from(["semver", "regex", "suffix", "newest-build"]),
)
def test_fuzz_select(tags, strategy):
    rule = model.VersionRule(
        strategy=strategy, allow=".*" if strategy == "regex" else None, order="alphabetical"
    )
    selection = select(rule, tags)
    if selection.chosen is not None:
        assert is_valid_tag(selection.chosen)
        assert selection.chosen in tags
    for candidate in selection.rejected:
        str(candidate)  # reasons print safely, hostile tags included
