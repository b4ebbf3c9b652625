"""Hostile input: config files and registry data written to break the reconciler.

Config: every case must make ``reconciler validate`` and ``reconciler once`` exit 1
with a ``file:line:`` message, print no traceback, and commit nothing.
Registry data: odd-but-legal tags travel through the real registry into release
records and overlays that still parse and build; hostile strings handed to
selection and rendering are rejected or quoted, never spliced into YAML raw.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from reconciler import model, yamlio
from reconciler.errors import FeedError, RenderError
from reconciler.feeds.oci import RegistryClient
from reconciler.rendering import Artifact, render_kustomization
from reconciler.selection import is_valid_tag, select
from tests.helpers.configrepo import (
    AppSpec,
    checkout,
    config_files,
    kustomize_images,
    run_cli,
)
from tests.reliability.support import once

APP = AppSpec("api", "hostile/api", "example.com/h/api")
FEED = "apiVersion: reconciler.dev/v1\nkind: Feed\nname: reg\ntype: oci\n"
# whole-file problems (size, NUL bytes) have no line: "file: message"
LOCATION = re.compile(r"^[\w./-]+\.yaml(:\d+)?: ", re.MULTILINE)


def _bomb(levels: int) -> str:
    # billion laughs: `levels` levels of 10 aliases = 10^levels nodes if expanded
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return FEED + "url: http://x\n" + "\n".join(lines) + "\n"


def _project_with(old: str, new: str):
    return lambda files: files["projects/shop/project.yaml"].replace(old, new, 1)


# (case id, file, text or function of the base files -> text, extra expected text)
CONFIG_CASES = [
    ("malformed-yaml", "feeds/reg.yaml", FEED + "url: http://x\n  insecure: [\n", ""),
    ("billion-laughs", "feeds/bomb.yaml", _bomb(12), "alias"),  # 120 aliases: over the cap
    ("alias-bomb-under-cap", "feeds/bomb.yaml", _bomb(9), ""),  # 90: must not be expanded
    ("huge-file", "feeds/huge.yaml", FEED + "url: http://x\n" + "# padding\n" * 120_000, ""),
    (
        "duplicate-keys",
        "feeds/dup.yaml",
        FEED.replace("name: reg", "name: d1\nname: d2") + "url: http://x\n",
        "",
    ),
    (
        "wrong-type",
        "feeds/wrong.yaml",
        FEED.replace("name: reg", "name: w") + "url: [1, 2]\ntimeout: {a: 1}\n",
        "",
    ),
    (
        "unknown-field",
        "feeds/typo.yaml",
        FEED.replace("name: reg", "name: t") + "url: http://x\ninsecur: true\n",
        "did you mean",
    ),
    ("name-dotdot", "projects/shop/project.yaml", _project_with("name: shop", "name: ../shop"), ""),
    (
        "name-slash",
        "feeds/slash.yaml",
        FEED.replace("name: reg", "name: a/b") + "url: http://x\n",
        "",
    ),
    (
        "name-nul-escape",
        "feeds/nul.yaml",
        FEED.replace("name: reg", 'name: "r\\0g"') + "url: http://x\n",
        "",
    ),
    (
        "name-newline",
        "feeds/nl.yaml",
        FEED.replace("name: reg", 'name: "r\\neg"') + "url: http://x\n",
        "",
    ),
    (
        "raw-nul-byte",
        "feeds/raw.yaml",
        FEED.replace("name: reg", "name: r\x00g") + "url: http://x\n",
        "",
    ),
    (
        "package-dotdot",
        "projects/shop/project.yaml",
        _project_with("- name: api", "- name: ../x"),
        "",
    ),
    (
        "overlay-escapes-repo",
        "projects/shop/project.yaml",
        _project_with("overlay: deploy/shop/overlays/dev", "overlay: ../../../../tmp"),
        "",
    ),
    (
        "deep-nesting",
        "feeds/deep.yaml",
        FEED + "url: " + "[" * 5000 + "]" * 5000 + "\n",
        "",
    ),
    ("python-tag", "feeds/tag.yaml", FEED + 'url: !!python/object/apply:os.system ["false"]\n', ""),
    ("not-a-mapping", "lifecycles/list.yaml", "- just\n- a list\n", ""),
]


def _files(case_file: str, text) -> dict[str, str]:
    files = config_files("http://127.0.0.1:9", [APP])
    files[case_file] = text(files) if callable(text) else text
    return files


@pytest.mark.parametrize(
    ("case", "path", "text", "expected"),
    CONFIG_CASES,
    ids=[getattr(c, "values", c)[0] for c in CONFIG_CASES],
)
def test_hostile_config_is_refused_with_location(bare_remote, tmp_path, case, path, text, expected):
    files = _files(path, text)
    tree = tmp_path / "tree"
    for name, content in files.items():
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode("utf-8", "surrogateescape"))
    validate = run_cli("validate", str(tree), timeout=60)
    remote = bare_remote(seed=files)
    head = remote.head()
    run = once(remote.url, tmp_path / "work", timeout=60)

    for what, code, output in (
        ("validate", validate.returncode, validate.stdout + validate.stderr),
        ("once", run.returncode, run.output),
    ):
        assert code == 1, f"{what}: exit {code}\n{output}"
        assert "Traceback" not in output, f"{what}:\n{output}"
        assert LOCATION.search(output), f"{what}: no file:line: message\n{output}"
        assert expected in output, f"{what}:\n{output}"
    assert remote.head() == head
    first = next(line for line in validate.stderr.splitlines() if LOCATION.match(line))
    print(f"hostile-config {case}: exit=1 message={first[:140]!r} violations=0")


# -- registry data -------------------------------------------------------------------

# Ascending in ASCII, so each is "newer" than the last under alphabetical order.
# (Type-confusable tags such as null, 1e3, 0x1F are covered at unit level below.)
ODD_TAGS = ["1.10", "1.2.3__x", "9.-._-", "_x.-", "z" + "9" * 127]


def test_odd_legal_tags_render_and_build(registry, bare_remote, tmp_path):
    repository = f"odd{uuid.uuid4().hex[:8]}/api"
    app = AppSpec("api", repository, "example.com/h/api")
    for tag in ODD_TAGS:
        registry.push(repository, tag)
    remote = bare_remote(seed=config_files(registry.url, [app], rules=_exact_rule(ODD_TAGS[0])))
    work = tmp_path / "work"
    for n, tag in enumerate(ODD_TAGS):
        if n:  # follow exactly this tag next: the channel rule changes, by a person
            text = remote.show("projects/shop/project.yaml") + "\n"
            text = re.sub(r"allow: '.*'", f"allow: '^{re.escape(tag)}$'", text)
            remote.human_commit({"projects/shop/project.yaml": text}, f"follow {tag}")
        run = once(remote.url, work, "--json")
        assert run.returncode == 0, run.output
        overlay = remote.show("deploy/shop/overlays/dev/kustomization.yaml")
        images = yamlio.load_one(overlay)["images"]
        assert images[0]["newTag"] == tag and isinstance(images[0]["newTag"], str), overlay
        record = yamlio.load_one(remote.show(f"releases/shop/1.0.{n}.yaml"))
        assert record["packages"]["api"]["version"] == tag
        tree = checkout(remote.path, tmp_path / f"co{n}")
        built = kustomize_images(tree / "deploy/shop/overlays/dev")
        assert built["api"] == f"example.com/h/api:{tag}"
    print(f"hostile-tags registry: tags={len(ODD_TAGS)} built={len(ODD_TAGS)} violations=0")


def _exact_rule(tag: str) -> str:
    return (
        "      - strategy: regex\n"
        f"        allow: '^{re.escape(tag)}$'\n"
        "        order: alphabetical\n"
    )


HOSTILE_TAGS = [
    "1.0.0\nimages: []",
    "1.0.0\n  - name: evil",
    "1.0.0 # comment",
    "1.0.0: x",
    "'1.0.0'",
    '"1.0.0"',
    "&anchor",
    "*alias",
    "{a: 1}",
    "[1]",
    "!!python/object:os.system",
    "-1.0.0",
    ".1.0",
    "",
    " 1.0.0",
    "1.0.0\t",
    "1.0.0\r",
    "1.0.0\x00",
    "1.0.0\u2028",
    "v1.0.0/../../x",
    "a" * 129,
    "1.0.0+build",  # legal for charts only
    "null",
    "~",
    "true",
    "1e3",
    "1.10",
    "0o17",
    "2024-01-01",
    "2024-1-1",
]

OVERLAY = "resources:\n  - ../../base\nimages:\n  - name: example.com/h/api\n    newTag: 0.0.0\n"


@pytest.mark.parametrize(
    "tag", HOSTILE_TAGS, ids=[repr(getattr(t, "values", [t])[0])[:30] for t in HOSTILE_TAGS]
)
def test_hostile_tag_never_corrupts_yaml(tag):
    rule = model.VersionRule(strategy="regex", allow=".*", order="alphabetical")
    chosen = select(rule, [tag, "0.0.1"]).chosen
    assert chosen in (tag, "0.0.1")
    assert chosen != tag or is_valid_tag(tag), "an invalid tag was selected"
    try:
        text = render_kustomization(
            OVERLAY,
            [Artifact("api", "image", "example.com/h/api", tag)],
            digest=False,
            file="k.yaml",
        )
    except RenderError:
        assert not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", tag)
        return
    data = yamlio.load_one(text)
    assert list(data) == ["resources", "images"]
    assert data["images"] == [{"name": "example.com/h/api", "newTag": tag}]
    assert isinstance(data["images"][0]["newTag"], str)


@pytest.mark.parametrize(
    "header",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "0" * 63,
        "md5:" + "0" * 32,
        "sha256:" + "0" * 64 + "x",
        "sha256:../../etc",
        "<html>",
    ],
)
def test_bad_docker_content_digest_is_a_feed_error(header):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Docker-Content-Digest": header})

    feed = model.Feed(name="mock", type="oci", url="https://registry.test", timeout=2.0)
    client = RegistryClient(feed, transport=httpx.MockTransport(handler), env={})
    try:
        with pytest.raises(FeedError):
            client.digest("app", "1.0.0")
    finally:
        client.close()
