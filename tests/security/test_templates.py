"""Issue 14 item 6: ``commitTemplate`` comes from the untrusted config repository, so it
is not a Python format string. Format specs that allocate gigabytes and attribute access
that walks objects are ``validate`` errors naming file, line and key; the renderer
knows neither. Item 7's summary: a huge pass's message body is bounded, its trailers
complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import templates
from reconciler.config import load_config
from reconciler.errors import ConfigError
from reconciler.model import COMMIT_VARIABLES
from reconciler.reconcile.report import BODY_LINES, summary
from reconciler.verify import template as expect
from tests.helpers.configrepo import AppSpec, config_files

KNOWN = "the variables are {body}, {subject}, {trailers}"
SHAPE = "only plain variable names are allowed (no attributes, indexes or format specs)"


def _load(tmp_path: Path, template: str) -> None:
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    files["reconciler.yaml"] += f"commitTemplate: '{template}'\n"
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    load_config(tmp_path)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{subject:>1500000000}", f"{{subject:>1500000000}}: {SHAPE}; {KNOWN}"),
        ("{subject.__class__.__mro__}", f"{{subject.__class__.__mro__}}: {SHAPE}; {KNOWN}"),
        ("{subject!r}", f"{{subject!r}}: {SHAPE}; {KNOWN}"),
        ("{subject[0]}", f"{{subject[0]}}: {SHAPE}; {KNOWN}"),
        ("{author}", f"{{author}}: unknown variable; {KNOWN}"),
        ("{body}{body}", "{body} appears more than once; each variable may appear once"),
        ("deploy {", "single '{' at character 8; write {{ for a literal brace"),
    ],
    ids=["format-spec", "attributes", "conversion", "index", "unknown", "twice", "lone-brace"],
)
def test_validate_refuses_a_hostile_or_broken_commit_template(
    tmp_path: Path, template: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, template)
    assert [str(p) for p in info.value.problems] == [
        f"reconciler.yaml:4: commitTemplate: {expected}"
    ]


def test_a_template_is_bounded_in_length() -> None:
    with pytest.raises(templates.TemplateError, match="at most 4096"):
        templates.parse("x" * 5000, COMMIT_VARIABLES)


def test_the_renderer_substitutes_only_names_and_literal_braces(tmp_path: Path) -> None:
    _load(tmp_path, "{{ci skip}} {subject}\n\n{body}\n")  # valid: loads
    template = templates.parse("{{ci skip}} {subject}\n\n{body}\n", COMMIT_VARIABLES)
    rendered = template.render({"subject": "{trailers}", "body": "b", "trailers": "t"})
    assert rendered == "{ci skip} {trailers}\n\nb\n"  # values are never templates


def test_a_huge_pass_is_summarised_in_a_bounded_body() -> None:
    body = []
    for n in range(800):
        body += [f"p{n}/dev: (none) -> 1.0.0 (phase dev, automatic)", "  api: (new) -> 1.0.0"]
    text = summary(body)
    lines = text.splitlines()
    assert len(lines) <= BODY_LINES + 1
    assert lines[-1] == "… and 700 more (every one is named in the trailers)"
    assert not lines[-2].startswith("p")  # cut after an entry's own lines, not inside one


def test_one_renderer_serves_the_http_check_expect_too() -> None:
    """Issue 16: ``expect`` renders through templates.parse; a dotted name is one key of a
    flat mapping (never attribute access), and it shares commitTemplate's errors."""
    assert expect.TemplateError is templates.TemplateError
    dotted = templates.parse("{a.b} {{x}}", frozenset({"a.b"}))
    assert dotted.render({"a.b": "v"}) == "v {x}"
    assert expect.render("{version}/{version}", "1.0.1", {}) == "1.0.1/1.0.1"
    with pytest.raises(templates.TemplateError, match="single '}' at character 10"):
        expect.render("{version}}", "1.0.1", {})


def test_a_projects_own_commit_template_is_validated_alike(tmp_path: Path) -> None:
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    files["projects/shop/project.yaml"] += "commitTemplate: '{subject.__class__}'\n"
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    [problem] = [str(p) for p in info.value.problems]
    assert problem.startswith("projects/shop/project.yaml:")
    assert problem.endswith(f": commitTemplate: {{subject.__class__}}: {SHAPE}; {KNOWN}")
