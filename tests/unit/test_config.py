"""Config validation: every message names file, line and key (asserted verbatim)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.config import load_config, parse_duration
from reconciler.errors import ConfigError
from reconciler.schema import full_schema, schema_json
from tests.helpers.configrepo import AppSpec, config_files

ROOT = Path(__file__).resolve().parents[2]


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _problems(tmp_path: Path, **changes: str) -> list[str]:
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    files.update(changes)
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, files))
    return [str(p) for p in info.value.problems]


def test_valid_config_loads(tmp_path):
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    config = load_config(_write(tmp_path, files))
    assert config.projects["shop"].packages[0].manifest_name == "r/api"
    assert config.triggers["shop-images"].channel == "stable"


def test_published_schema_copy_is_current():
    copy = ROOT / "reconciler" / "schema" / "reconciler.schema.json"
    assert copy.read_text() == schema_json(), "regenerate with `reconciler schema > ...`"
    assert json.loads(copy.read_text()) == full_schema()


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        (
            "feeds/x.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Feed\nname: x\ntype: oci\nurl: u\nlimts: {}\n",
            "feeds/x.yaml:6: limts: unknown field 'limts' (did you mean 'limits'?)",
        ),
        (
            "feeds/x.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Feed\nname: x\ntype: oci\nurl: u\nurl: v\n",
            'feeds/x.yaml:6: invalid YAML: found duplicate key "url" with '
            'value "v" (original value: "u")',
        ),
        (
            "feeds/x.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Feed\nname: ../x\ntype: oci\nurl: u\n",
            "feeds/x.yaml:3: name: '../x' is not a valid name (lower-case letters, "
            "digits, '.', '_', '-'; used in file paths)",
        ),
        (
            "feeds/x.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Feed\nname: x\ntype: oci\n"
            "url: u\ntimeout: soon\n",
            "feeds/x.yaml:6: timeout: 'soon' is not a duration (use e.g. 90s, 2m, 1h30m)",
        ),
        (
            "feeds/x.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Fed\nname: x\n",
            "feeds/x.yaml:2: kind: unknown kind 'Fed' (did you mean 'Feed'?); expected one of "
            "Feed, Lifecycle, Project, Settings, Trigger",
        ),
        (
            "triggers/t.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Trigger\nname: t\n"
            "project: shop\nchannel: stabel\nsources: [api]\n",
            "triggers/t.yaml:5: channel: unknown channel 'stabel' in project 'shop'",
        ),
        (
            "lifecycles/l.yaml",
            "apiVersion: reconciler.dev/v1\nkind: Lifecycle\nname: l\n"
            "phases:\n  - {name: a, environments: [dev, dev2], minimumEnvironments: 3}\n",
            "lifecycles/l.yaml:5: phases[0].minimumEnvironments: 3 is more than the phase's "
            "2 environments",
        ),
    ],
)
def test_problem_messages_are_exact(tmp_path, file, text, expected):
    assert expected in _problems(tmp_path, **{file: text})


def test_alias_bomb_and_huge_files_are_refused(tmp_path):
    bomb = (
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
            for i in range(8)
        )
        * 2
    )
    problems = _problems(tmp_path, **{"feeds/bomb.yaml": bomb})
    assert (
        "feeds/bomb.yaml:7: YAML aliases expand this document beyond 2000000 nodes and "
        "characters: refusing a possible alias bomb"
    ) in problems
    problems = _problems(tmp_path, **{"feeds/huge.yaml": "# x\n" * 300_000})
    assert "feeds/huge.yaml: file larger than 1000000 bytes" in problems


def test_deep_nesting_is_refused_with_its_line(tmp_path):
    text = "apiVersion: reconciler/v1\nkind: Feed\nname: deep\nurl:\n  " + "[" * 200 + "]" * 200
    problems = _problems(tmp_path, **{"feeds/deep.yaml": text})
    assert "feeds/deep.yaml:5: nesting deeper than 100 levels" in problems


def test_bad_rule_regex_is_a_config_error(tmp_path):
    files = config_files(
        "https://r.example.com",
        [AppSpec("api", "acme/api", "r/api")],
        rules='      - {prerelease: "(unclosed"}\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, files))
    assert any("channels[0].rules[0]" in str(p) for p in info.value.problems)


@pytest.mark.parametrize("extract", ["$ts", "${ts}", "$1"])
def test_every_documented_extract_form_loads(tmp_path, extract):
    files = config_files(
        "https://r.example.com",
        [AppSpec("api", "acme/api", "r/api")],
        rules=f'      - {{strategy: regex, allow: "^m-(?P<ts>[0-9]+)$", extract: "{extract}"}}\n',
    )
    config = load_config(_write(tmp_path, files))
    assert config.projects["shop"].channels[0].rules[0].extract == extract


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("2m", 120), ("1h30m", 5400), ("250ms", 0.25), (5, 5)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_cached_config_is_reused_until_anything_it_read_changes(tmp_path, monkeypatch):
    from reconciler.config import load_config_cached
    from reconciler.config import loading as config_module

    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    root = _write(tmp_path / "repo", files)
    cache = tmp_path / "work" / "config.pickle"
    loads = []
    real_load = config_module.load_config
    monkeypatch.setattr(config_module, "load_config", lambda r: loads.append(r) or real_load(r))

    first = load_config_cached(root, cache)
    assert load_config_cached(root, cache) == first and len(loads) == 1  # reused

    project = root / "projects/shop/project.yaml"
    project.write_text(project.read_text().replace("r/api", "r/api2"))
    changed = load_config_cached(root, cache)
    assert len(loads) == 2 and changed.projects["shop"].packages[0].manifest_name == "r/api2"

    overlay = next(root.glob("deploy/*/overlays/dev/kustomization.yaml"))
    overlay.unlink()  # outside the config folders, but validation depends on it
    with pytest.raises(ConfigError, match=r"has no kustomization\.yaml"):
        load_config_cached(root, cache)
    with pytest.raises(ConfigError):  # an invalid config is never cached
        load_config_cached(root, cache)

    overlay.write_text("resources: []\n")
    cache.write_bytes(b"not a pickle")  # damaged: ignored, rewritten
    assert load_config_cached(root, cache).projects["shop"].name == "shop"
    assert load_config_cached(root, cache).projects["shop"].name == "shop"
    assert len(loads) == 5  # the last call reused the rewritten cache


def test_duplicate_names_are_reported_with_both_places(tmp_path):
    feed = "apiVersion: reconciler.dev/v1\nkind: Feed\nname: reg\ntype: oci\nurl: https://u\n"
    problems = _problems(tmp_path, **{"feeds/again.yaml": feed})
    # files are read in sorted order: again.yaml first, so reg.yaml is the duplicate
    assert problems == [
        "feeds/reg.yaml:3: name: duplicate feed name 'reg' (first defined at feeds/again.yaml:3)"
    ]
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    project = files["projects/shop/project.yaml"]
    files["projects/shop/project.yaml"] = project.replace(
        "channels:\n", "channels:\n  - name: stable\n    rules: []\n", 1
    ).replace("packages:\n", "packages:\n  - {name: api, feed: reg, image: acme/api}\n", 1)
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path / "dups", files))
    messages = [str(p) for p in info.value.problems]
    assert any(m.endswith("packages[1].name: duplicate package name 'api'") for m in messages)
    assert any(m.endswith("channels[1].name: duplicate channel name 'stable'") for m in messages)
