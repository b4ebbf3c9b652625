"""Issue 15 items 9-12: ``validate`` catches what every pass fails on, points at the
offending key's own line, reports one typo once, and explains YAML syntax errors in
words. Every message is asserted verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.errors import ConfigError
from tests.helpers.configrepo import AppSpec, config_files, write_files

FEED = "apiVersion: reconciler.dev/v1\nkind: Feed\nname: reg\ntype: oci\n"
PROJECT = "projects/shop/project.yaml"


def _files(**changes: str) -> dict[str, str]:
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    files.update(changes)
    return files


def _problems(tmp_path: Path, files: dict[str, str]) -> list[str]:
    write_files(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("feed", "expected"),
    [
        (
            FEED + "url: http://registry.example.com\n",
            "feeds/reg.yaml:5: url: 'http://registry.example.com' uses plain http; "
            "set insecure: true to allow it",
        ),
        (
            FEED + "url: localhost:5000\n",
            "feeds/reg.yaml:5: url: 'localhost:5000' has no scheme; write https://... "
            "(or http://... with insecure: true)",
        ),
        (
            FEED + "url: ftp://registry.example.com\n",
            "feeds/reg.yaml:5: url: 'ftp://registry.example.com': scheme 'ftp' is not "
            "supported (use https:// or oci://)",
        ),
        (
            FEED + "url: https:///acme\n",
            "feeds/reg.yaml:5: url: 'https:///acme' names no host",
        ),
    ],
    ids=["http-without-insecure", "no-scheme", "unsupported-scheme", "no-host"],
)
def test_feed_urls_every_pass_would_refuse_fail_validate(tmp_path, feed, expected):
    assert _problems(tmp_path, _files(**{"feeds/reg.yaml": feed})) == [expected]


def test_plain_http_with_insecure_and_oci_scheme_validate(tmp_path):
    files = _files(
        **{
            "feeds/reg.yaml": FEED + "url: http://127.0.0.1:5000\ninsecure: true\n",
            "feeds/charts.yaml": FEED.replace("reg", "charts").replace("oci\n", "helm\n")
            + "url: oci://ghcr.io/acme/charts\n",
        }
    )
    write_files(tmp_path, files)
    assert set(load_config(tmp_path).feeds) == {"reg", "charts"}


def _with_rule(rule: str) -> dict[str, str]:
    return _files(
        **{
            PROJECT: _files()[PROJECT].replace(
                '      - range: ">=1.0.0"\n        prerelease: "^$"\n', rule
            )
        }
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            '      - packages: [api]\n        prerelease: "^$"\n        range: ">=1.0.0 <<2"\n',
            "projects/shop/project.yaml:16: channels[0].rules[0].range: invalid range "
            "'>=1.0.0 <<2': '<2' is not a version",
        ),
        (
            '      - packages: [api]\n        strategy: regex\n        allow: "(unclosed"\n',
            "projects/shop/project.yaml:16: channels[0].rules[0].allow: invalid regular "
            "expression '(unclosed': missing ): (unclosed",
        ),
        (
            "      - packages: [api]\n        strategy: digest\n",
            "projects/shop/project.yaml:15: channels[0].rules[0].strategy: the digest "
            "strategy needs the tag to follow",
        ),
    ],
    ids=["range", "allow", "strategy"],
)
def test_errors_inside_a_rule_point_at_the_offending_keys_line(tmp_path, rule, expected):
    assert _problems(tmp_path, _with_rule(rule)) == [expected]


def test_a_typo_in_a_project_does_not_also_make_its_triggers_fail(tmp_path):
    project = _files()[PROJECT].replace(
        "lifecycle: standard\n", "lifecycle: standard\nlifecyle: x\n"
    )
    assert _problems(tmp_path, _files(**{PROJECT: project})) == [
        "projects/shop/project.yaml:5: lifecyle: unknown field 'lifecyle' (did you mean "
        "'lifecycle'?)"
    ]


def test_a_wrong_kind_is_reported_once_not_as_an_unknown_lifecycle(tmp_path):
    lifecycle = _files()["lifecycles/standard.yaml"].replace("kind: Lifecycle", "kind: Lifecyle")
    assert _problems(tmp_path, _files(**{"lifecycles/standard.yaml": lifecycle})) == [
        "lifecycles/standard.yaml:2: kind: unknown kind 'Lifecyle' (did you mean "
        "'Lifecycle'?); expected one of Feed, Lifecycle, Project, Settings, Trigger"
    ]


def test_a_wrong_api_version_is_reported_once_not_as_unknown_feeds(tmp_path):
    apps = [AppSpec(n, f"acme/{n}", f"r/{n}") for n in ("api", "web", "worker")]
    files = config_files("https://r.example.com", apps)
    files["feeds/reg.yaml"] = files["feeds/reg.yaml"].replace("reconciler.dev/v1", "reconciler/v1")
    assert _problems(tmp_path, files) == [
        "feeds/reg.yaml:1: apiVersion: must be 'reconciler.dev/v1'"
    ]


def test_a_reference_to_a_missing_name_is_still_reported(tmp_path):
    project = _files()[PROJECT].replace("lifecycle: standard\n", "lifecycle: standrd\n")
    assert _problems(tmp_path, _files(**{PROJECT: project})) == [
        "projects/shop/project.yaml:4: lifecycle: unknown lifecycle 'standrd' (did you mean "
        "'standard'?)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            FEED + "url: https://r.example.com\nlimits:\n    concurrency: 1\n"
            "  requestsPerSecond: 2\n",
            "feeds/reg.yaml:8: invalid YAML: this line is not aligned with the block around "
            "it (started on line 1): check its indentation",
        ),
        (
            FEED + "  url: https://r.example.com\n",
            "feeds/reg.yaml:5: invalid YAML: a 'key:' where no mapping can start: is this "
            "line indented deeper than the line above, or does a value contain ': ' (then "
            "quote the value)?",
        ),
        (
            FEED + "url: https://r.example.com\n\tinsecure: true\n",
            "feeds/reg.yaml:6: invalid YAML: a tab in the indentation: YAML indents with "
            "spaces only",
        ),
        (
            FEED + "url: https://r.example.com\ninsecure\ntimeout: 5s\n",
            "feeds/reg.yaml:6: invalid YAML: this line has no 'key:' although it is inside a "
            "mapping: add the ':' or fix its indentation",
        ),
        (
            FEED + "url: [https://r.example.com\ntimeout: 5s\n",
            "feeds/reg.yaml:6: invalid YAML: the '[' opened on line 5 is not closed with ']'",
        ),
        (
            FEED + 'url: "https://r.example.com\ntimeout: 5s\n',
            "feeds/reg.yaml:5: invalid YAML: the quoted text opened on line 5 is never closed",
        ),
        (
            FEED + "url: https://r.example.com\nnote: -_\n",
            "feeds/reg.yaml:6: invalid YAML: '-_' reads as a number but is not one; quote it "
            "to mean the text",
        ),
        (
            FEED + "url: https://r.example.com\nnote: 2026-02-30\n",
            "feeds/reg.yaml:6: invalid YAML: '2026-02-30' reads as a date but is not one (day "
            "is out of range for month); quote it to mean the text",
        ),
    ],
    ids=[
        "dedent",
        "indented-key",
        "tab",
        "missing-colon",
        "unclosed-flow",
        "unclosed-quote",
        "not-a-number",  # ruamel raised a bare ValueError/IndexError: a crash, not a problem
        "not-a-date",
    ],
)
def test_yaml_syntax_errors_are_explained_in_words_with_the_line(tmp_path, text, expected):
    assert _problems(tmp_path, _files(**{"feeds/reg.yaml": text})) == [expected]


def _with_marker_target(values: str) -> dict[str, str]:
    files = _files()
    files[PROJECT] = files[PROJECT].replace(
        "  prod:\n    overlay: deploy/shop/overlays/prod\n",
        "  prod:\n    overlay: deploy/shop/overlays/prod\n    targets:\n"
        "      - {kind: markers, file: deploy/shop/overlays/prod/values.yaml}\n",
    )
    files["deploy/shop/overlays/prod/values.yaml"] = values
    return files


def test_validate_names_a_markers_target_without_a_marker_of_the_project(tmp_path):
    """Every pass would fail to render it (the project stops there): validate says so
    first, at the target's own line. Passes load the config without reading manifests."""
    from reconciler.commands.validate import check

    write_files(tmp_path, _with_marker_target("image:\n  tag: 1.0.0  # set by hand\n"))
    load_config(tmp_path)  # a valid config: a pass still runs the other projects
    problems, _ = check(tmp_path)
    line = (
        _with_marker_target("")[PROJECT]
        .splitlines()
        .index("      - {kind: markers, file: deploy/shop/overlays/prod/values.yaml}")
    )
    assert [str(p) for p in problems] == [
        f"{PROJECT}:{line + 1}: environments.prod.targets[0].file: "
        "deploy/shop/overlays/prod/values.yaml has no marker for a package of "
        'project shop (such as # {"$reconciler": "shop:api"}), so nothing would be rendered'
    ]
    marked = 'image:\n  tag: 1.0.0  # {"$reconciler": "shop:api:tag"}\n'
    write_files(tmp_path, _with_marker_target(marked))
    assert check(tmp_path)[0] == []
