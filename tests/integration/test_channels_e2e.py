"""Channels and selection strategies end to end: real registry, real Git, real passes.

Each test builds a config repo with ``config_files``, pushes images to the Debian
docker-registry and runs passes either as the CLI process (``reconciler once``) or
in process (``Reconciler``) when the clock or the feed client's request counters
matter. Release records are read back from the bare remote, so what is asserted is
what a GitOps controller would see.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler import yamlio
from reconciler.feeds.oci import MANIFEST_ACCEPT
from reconciler.reconcile import PassOptions, PassResult, PassSettings, Reconciler
from tests.helpers.configrepo import (
    DEV_ONLY,
    AppSpec,
    checkout,
    config_files,
    kustomize_images,
    result_json,
    run_cli,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _apps(*packages: str) -> list[AppSpec]:
    ns = f"ch{uuid.uuid4().hex[:8]}"
    return [AppSpec(p, f"{ns}/{p}", f"example.com/shop/{p}") for p in packages]


def _channels(*channels: tuple[str, str]) -> str:
    """channel name -> rules text (already indented under ``rules:``); the first is default."""
    out = ""
    for i, (name, rules) in enumerate(channels):
        out += f"  - name: {name}\n" + ("    default: true\n" if i == 0 else "")
        out += "    rules:\n" + textwrap.indent(textwrap.dedent(rules), "      ")
    return out


def _triggers(*triggers: tuple[str, str, list[str], str]) -> str:
    """(name, channel, sources, extra YAML lines) -> a multi-document triggers.yaml."""
    docs = []
    for name, channel, sources, extra in triggers:
        docs.append(
            "apiVersion: reconciler.dev/v1\nkind: Trigger\n"
            f"name: {name}\nproject: shop\nchannel: {channel}\n"
            f"sources: [{', '.join(sources)}]\n" + extra
        )
    return "---\n".join(docs)


def _dev_remote(registry: Any, bare_remote: Any, apps: list[AppSpec], rules: str) -> Any:
    """A bare remote holding a dev-only config repo whose channel has these rules."""
    files = config_files(registry.url, apps, rules=rules, lifecycle=DEV_ONLY, envs=("dev",))
    return bare_remote(seed=files)


def _once(remote: Any, work: Path) -> dict[str, Any]:
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return dict(result_json(proc))


def _record(remote: Any, version: str) -> dict[str, Any]:
    return dict(yamlio.load_one(remote.show(f"releases/shop/{version}.yaml")))


def _released(out: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(channel, version, {package: tag}) of each release a pass created."""
    return [
        (r["channel"], r["version"], {n: p["version"] for n, p in r["packages"].items()})
        for r in out["releases"]
    ]


class Clock:
    """An injected pass clock the test moves forward by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[Any]:
    """make(remote, clock=None) -> a Reconciler on its own work dir (closed afterwards)."""
    made: list[Reconciler] = []

    def make(remote: Any, clock: Clock | None = None) -> Reconciler:
        options = PassOptions(
            PassSettings(repo_url=remote.url, work_dir=tmp_path / f"w{len(made)}")
        )
        if clock is not None:
            options.injected.clock = clock
        made.append(Reconciler(options))
        return made[-1]

    yield make
    for reconciler in made:
        reconciler.close()


def _requests(reconciler: Reconciler, kind: str) -> int:
    """Requests of one kind the registry feed client has sent so far."""
    return int(reconciler._clients["reg"][1].requests_by_kind[kind])


# ----------------------------------------------------------------------------- channels


def test_stable_and_beta_channels_release_separately_and_never_share_a_version(
    registry, bare_remote, tmp_path
):
    apps = _apps("api")
    repo = apps[0].repository
    files = config_files(
        registry.url,
        apps,
        channels=_channels(("stable", '- prerelease: "^$"\n'), ("beta", '- prerelease: "^beta"\n')),
        triggers=_triggers(
            ("shop-stable", "stable", ["api"], ""), ("shop-beta", "beta", ["api"], "")
        ),
        lifecycle=DEV_ONLY,
        envs=("dev",),
    )
    remote = bare_remote(seed=files)
    work = tmp_path / "w"

    registry.push(repo, "1.0.0", content=b"1.0.0")
    out = _once(remote, work)
    assert _released(out) == [("stable", "1.0.0", {"api": "1.0.0"})]
    beta = next(t for t in out["triggers"] if t["trigger"] == "shop-beta")
    assert beta["release"] is None
    assert "stable version does not match ^beta" in beta["reason"]

    # A beta: only the beta channel fires. Its first release would be `initial`
    # (1.0.0), which stable already took: the version is bumped, never reused.
    registry.push(repo, "1.1.0-beta.1", content=b"beta.1")
    out = _once(remote, work)
    assert _released(out) == [("beta", "1.0.1", {"api": "1.1.0-beta.1"})]
    stable = next(t for t in out["triggers"] if t["trigger"] == "shop-stable")
    assert stable["reason"] == "no new version: api: 1.0.0 is not newer than 1.0.0"

    # The next beta is compared with the beta channel's previous release (beta.1),
    # not with the project's newest release of any channel.
    registry.push(repo, "1.1.0-beta.2", content=b"beta.2")
    out = _once(remote, work)
    assert _released(out) == [("beta", "1.0.2", {"api": "1.1.0-beta.2"})]

    # The stable 1.1.0 fires stable only (beta.2 is still beta's newest), and the
    # stable release version steps over the numbers beta took.
    registry.push(repo, "1.1.0", content=b"1.1.0")
    out = _once(remote, work)
    assert _released(out) == [("stable", "1.0.3", {"api": "1.1.0"})]
    beta = next(t for t in out["triggers"] if t["trigger"] == "shop-beta")
    assert beta["reason"] == "no new version: api: 1.1.0-beta.2 is not newer than 1.1.0-beta.2"

    # Both channels fire in one pass: two distinct versions, one commit.
    registry.push(repo, "1.2.0-beta.1", content=b"1.2.0-beta.1")
    registry.push(repo, "1.2.0", content=b"1.2.0")
    head = remote.head()
    out = _once(remote, work)
    assert sorted(_released(out)) == [
        ("beta", "1.0.4", {"api": "1.2.0-beta.1"}),
        ("stable", "1.0.5", {"api": "1.2.0"}),
    ]
    assert remote.log_format("%P")[0] == head  # exactly one new commit on top

    files_now = [f for f in remote.files() if f.startswith("releases/shop/")]
    assert sorted(files_now) == [f"releases/shop/1.0.{i}.yaml" for i in range(6)]
    channels = {v: _record(remote, v)["channel"] for v in [f"1.0.{i}" for i in range(6)]}
    assert channels == {
        "1.0.0": "stable",
        "1.0.1": "beta",
        "1.0.2": "beta",
        "1.0.3": "stable",
        "1.0.4": "beta",
        "1.0.5": "stable",
    }
    state = yamlio.load_one(remote.show("state/shop.yaml"))
    assert dict(state["channels"]) == {"stable": "1.0.5", "beta": "1.0.4"}

    # Nothing new for either channel: no commit.
    head = remote.head()
    out = _once(remote, work)
    assert out["releases"] == [] and out["commit"] is None and remote.head() == head


# ----------------------------------------------------------------------- newest-build


def test_a_channel_with_its_own_lifecycle_goes_straight_to_prod(registry, bare_remote, tmp_path):
    apps = _apps("api")
    repo = apps[0].repository
    lifecycles = (
        "apiVersion: reconciler.dev/v1\nkind: Lifecycle\nname: standard\nphases:\n"
        "  - {name: development, environments: [dev]}\n"
        "  - {name: production, environments: [prod], automatic: false}\n"
        "---\napiVersion: reconciler.dev/v1\nkind: Lifecycle\nname: hotfix\nphases:\n"
        "  - {name: production, environments: [prod]}\n"
    )
    channels = (
        '  - name: stable\n    default: true\n    rules:\n      - prerelease: "^$"\n'
        '  - name: hotfix\n    lifecycle: hotfix\n    rules:\n      - prerelease: "^hotfix"\n'
    )
    files = config_files(
        registry.url,
        apps,
        channels=channels,
        triggers=_triggers(
            ("shop-stable", "stable", ["api"], ""), ("shop-hotfix", "hotfix", ["api"], "")
        ),
        lifecycle=lifecycles,
        envs=("dev", "prod"),
    )
    remote = bare_remote(seed=files)
    work = tmp_path / "w"
    registry.push(repo, "1.0.0")
    out = _once(remote, work)
    assert _released(out) == [("stable", "1.0.0", {"api": "1.0.0"})]
    assert [(p["environment"], p["release"]) for p in out["promotions"]] == [("dev", "1.0.0")]
    assert _once(remote, work)["promotions"] == []  # prod is manual in `standard`

    registry.push(repo, "1.0.1-hotfix.1")
    out = _once(remote, work)
    assert _released(out) == [("hotfix", "1.0.1", {"api": "1.0.1-hotfix.1"})]
    # The hotfix lifecycle has prod only, automatic: no dev, no approval.
    assert [(p["environment"], p["release"]) for p in out["promotions"]] == [("prod", "1.0.1")]
    built = kustomize_images(checkout(remote.path, tmp_path / "co") / "deploy/shop/overlays/prod")
    assert built == {"api": "example.com/shop/api:1.0.1-hotfix.1"}
    assert "newTag: 1.0.0" in remote.show("deploy/shop/overlays/dev/kustomization.yaml")


def test_newest_build_picks_the_newest_created_image_not_the_highest_name(
    registry, bare_remote, in_process
):
    apps = _apps("api")
    repo = apps[0].repository
    created = {
        "build-a": T0 + timedelta(hours=1),
        "build-z": T0,
        "build-m": T0 + timedelta(hours=2),
    }
    for tag, when in created.items():
        registry.push(repo, tag, created=when)
    registry.push(repo, "latest", created=T0 + timedelta(hours=9))  # not a build: allow skips it
    remote = _dev_remote(
        registry, bare_remote, apps, '      - strategy: newest-build\n        allow: "^build-"\n'
    )
    reconciler = in_process(remote)

    result = reconciler.run_pass()
    assert [r.package("api").version for r in result.releases] == ["build-m"]
    selection = result.choices[("shop", "stable")]["api"].selection
    assert selection is not None and selection.accepted == ("build-m", "build-a", "build-z")
    assert "latest: does not match allow ^build-" in [str(c) for c in selection.rejected]
    # One config blob per candidate, not one for `latest`.
    assert _requests(reconciler, "blob") == 3

    # An older build pushed later is not newer; a newer one is, whatever its name.
    registry.push(repo, "build-b", created=T0 - timedelta(days=1))
    assert reconciler.run_pass().releases == []
    registry.push(repo, "build-c", created=T0 + timedelta(hours=3))
    result = reconciler.run_pass()
    assert [r.package("api").version for r in result.releases] == ["build-c"]


def test_newest_build_never_goes_back_when_the_newest_build_disappears(
    registry, bare_remote, in_process, tmp_path
):
    """The release record keeps the build time, so a vanished newest tag (or a fresh
    work dir) leaves an older build behind a different tag looking older, not new."""
    apps = _apps("api")
    repo = apps[0].repository
    registry.push(repo, "build-1", created=T0, content=b"one")
    remote = _dev_remote(
        registry, bare_remote, apps, '      - strategy: newest-build\n        allow: "^build-"\n'
    )
    assert [r.package("api").version for r in in_process(remote).run_pass().releases] == ["build-1"]
    newest = registry.push(repo, "build-2", created=T0 + timedelta(hours=1), content=b"two")
    [release] = in_process(remote).run_pass().releases
    assert release.package("api").version == "build-2"
    assert _record(remote, release.version)["packages"]["api"]["built"] == "2024-05-01T13:00:00Z"

    registry.delete(repo, newest)  # build-2 vanishes: build-1 is the newest left
    head = remote.head()
    result = in_process(remote).run_pass()  # a new work dir: nothing remembered locally
    assert result.releases == [] and remote.head() == head


def test_newest_build_creation_times_are_fetched_once_across_restarts(
    registry, bare_remote, tmp_path
):
    apps = _apps("api")
    repo = apps[0].repository
    for i in range(3):
        registry.push(repo, f"build-{i}", created=T0 + timedelta(hours=i))
    remote = _dev_remote(registry, bare_remote, apps, "      - strategy: newest-build\n")
    kinds = []
    for _ in range(2):  # two processes, one work dir
        reconciler = Reconciler(
            PassOptions(PassSettings(repo_url=remote.url, work_dir=tmp_path / "w"))
        )
        try:
            reconciler.run_pass()
            kinds.append(dict(reconciler._clients["reg"][1].requests_by_kind))
        finally:
            reconciler.close()
    assert kinds[0]["blob"] == 3  # one config blob per build, once
    assert kinds[1] == {"tags": 1}  # after a restart: the tag list and nothing else


def test_scan_limit_bounds_metadata_requests(registry, bare_remote, in_process):
    apps = _apps("api")
    repo = apps[0].repository
    # Eight builds; the newest by time (build-1) sorts lowest by name.
    for i in range(1, 9):
        registry.push(repo, f"build-{i}", created=T0 - timedelta(hours=i))
    remote = _dev_remote(
        registry, bare_remote, apps, "      - strategy: newest-build\n        scanLimit: 3\n"
    )
    reconciler = in_process(remote)
    result = reconciler.run_pass()

    # Only the three highest-looking tags had their metadata fetched: three config
    # blobs for eight tags, so the pick is the newest *of those*.
    assert _requests(reconciler, "blob") == 3
    selection = result.choices[("shop", "stable")]["api"].selection
    assert selection is not None and selection.accepted == ("build-6", "build-7", "build-8")
    reasons = {c.tag: c.reason for c in selection.rejected}
    assert reasons["build-1"] == "creation time not known (beyond scan_limit 3)"
    assert [r.package("api").version for r in result.releases] == ["build-6"]


def test_platform_filter_skips_tags_without_an_image_for_the_platform(
    registry, bare_remote, in_process
):
    """semver with `platform: linux/arm64`: the highest versions are amd64 only (an
    index without arm64, a single amd64 image), so 1.1.0 is the release."""
    apps = _apps("api")
    repo = apps[0].repository
    registry.push(repo, "1.1.0", platforms=("linux/amd64", "linux/arm64/v8"), platform_index=True)
    registry.push(repo, "1.2.0", platforms=("linux/amd64", "linux/s390x"), platform_index=True)
    registry.push(repo, "1.3.0", platforms=("linux/amd64",))
    remote = _dev_remote(
        registry, bare_remote, apps, '      - {range: ">=1.0.0", platform: linux/arm64}\n'
    )
    reconciler = in_process(remote)
    result = reconciler.run_pass()
    assert [r.package("api").version for r in result.releases] == ["1.1.0"]
    selection = result.choices[("shop", "stable")]["api"].selection
    assert selection is not None
    reasons = {c.tag: c.reason for c in selection.rejected}
    assert reasons["1.3.0"] == reasons["1.2.0"] == "no image for platform linux/arm64"

    # The answers are kept: an idle pass asks the registry for tags/list only.
    before = dict(reconciler._clients["reg"][1].requests_by_kind)
    assert reconciler.run_pass().releases == []
    after = reconciler._clients["reg"][1].requests_by_kind
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {
        "tags": 1
    }


def test_platform_filter_follows_a_moving_tag(registry, bare_remote, in_process):
    """The digest strategy's tag moves: whether it has the platform is asked anew."""
    apps = _apps("api")
    repo = apps[0].repository
    both = ("linux/amd64", "linux/arm64/v8")
    registry.push(repo, "latest", platforms=both, platform_index=True, content=b"one")
    remote = _dev_remote(
        registry,
        bare_remote,
        apps,
        "      - {strategy: digest, tag: latest, platform: linux/arm64}\n",
    )
    reconciler = in_process(remote)
    assert [r.version for r in reconciler.run_pass().releases] == ["1.0.0"]
    # `latest` now points at an amd64-only image: nothing for arm64 to release
    registry.push(repo, "latest", platforms=("linux/amd64",), content=b"two")
    result = reconciler.run_pass()
    assert result.releases == []
    selection = result.choices[("shop", "stable")]["api"].selection
    assert selection is not None and selection.chosen is None
    registry.push(repo, "latest", platforms=both, platform_index=True, content=b"three")
    assert [r.version for r in reconciler.run_pass().releases] == ["1.0.1"]


def test_newest_build_on_multi_arch_index_uses_the_chosen_platforms_created_time(
    registry, bare_remote, in_process
):
    apps = _apps("api")
    repo = apps[0].repository
    both = ("linux/amd64", "linux/arm64/v8")
    # build-x: amd64 image is the newest; build-y: arm64 image is the newest.
    registry.push(
        repo,
        "build-x",
        platforms=both,
        platform_created={"linux/amd64": T0 + timedelta(hours=5), "linux/arm64/v8": T0},
    )
    registry.push(
        repo,
        "build-y",
        platforms=both,
        platform_created={
            "linux/amd64": T0 + timedelta(hours=1),
            "linux/arm64/v8": T0 + timedelta(hours=6),
        },
    )
    files = config_files(
        registry.url,
        apps,
        channels=_channels(
            ("amd", "- strategy: newest-build\n  platform: linux/amd64\n"),
            ("arm", "- strategy: newest-build\n  platform: linux/arm64/v8\n"),
        ),
        triggers=_triggers(("shop-amd", "amd", ["api"], ""), ("shop-arm", "arm", ["api"], "")),
        lifecycle=DEV_ONLY,
        envs=("dev",),
    )
    remote = bare_remote(seed=files)
    result = in_process(remote).run_pass()
    picked = {r.channel: r.package("api").version for r in result.releases}
    assert picked == {"amd": "build-x", "arm": "build-y"}
    # The record pins the index digest (what `build-x` points at), not a platform's.
    amd = next(r for r in result.releases if r.channel == "amd")
    index_digest = registry.client.head(
        f"{registry.url}/v2/{repo}/manifests/build-x",
        headers={"Accept": MANIFEST_ACCEPT},
    ).headers["docker-content-digest"]
    assert amd.package("api").digest == index_digest


# ----------------------------------------------------------------------------- digest


def test_digest_strategy_releases_once_per_new_content_of_the_followed_tag(
    registry, bare_remote, tmp_path
):
    apps = _apps("api")
    repo = apps[0].repository
    first = registry.push(repo, "latest", content=b"first build")
    registry.push(repo, "1.0.0", content=b"a versioned tag the rule ignores")
    files = config_files(
        registry.url,
        apps,
        rules="      - strategy: digest\n        tag: latest\n",
        lifecycle=DEV_ONLY,
        envs=("dev",),
        project_extra="renderDigest: true\n",
    )
    remote = bare_remote(seed=files)
    work = tmp_path / "w"

    out = _once(remote, work)
    assert _released(out) == [("stable", "1.0.0", {"api": "latest"})]
    assert out["releases"][0]["packages"]["api"]["digest"] == first

    head = remote.head()
    out = _once(remote, work)
    assert out["releases"] == [] and remote.head() == head

    second = registry.push(repo, "latest", content=b"second build")
    assert second != first
    out = _once(remote, work)
    assert _released(out) == [("stable", "1.0.1", {"api": "latest"})]
    assert out["releases"][0]["packages"]["api"]["digest"] == second
    assert _record(remote, "1.0.1")["packages"]["api"]["digest"] == second
    # With renderDigest the overlay names the new content, so the cluster changes.
    built = kustomize_images(checkout(remote.path, tmp_path / "co") / "deploy/shop/overlays/dev")
    assert built == {"api": f"example.com/shop/api:latest@{second}"}

    head = remote.head()
    out = _once(remote, work)
    assert out["releases"] == [] and remote.head() == head


def test_one_digest_under_new_tags_is_released_at_most_once(registry, bare_remote, tmp_path):
    apps = _apps("api")
    repo = apps[0].repository
    first = registry.push(repo, "1.0.0", created=T0, content=b"build one")
    remote = bare_remote(seed=config_files(registry.url, apps, lifecycle=DEV_ONLY, envs=("dev",)))
    work = tmp_path / "w"
    assert _released(_once(remote, work)) == [("stable", "1.0.0", {"api": "1.0.0"})]

    # The same image tagged again (a promotion-by-retag in CI): same digest, no release.
    assert registry.push(repo, "1.0.1", created=T0, content=b"build one") == first
    head = remote.head()
    assert _once(remote, work)["releases"] == [] and remote.head() == head

    registry.push(repo, "1.0.2", created=T0, content=b"build two")  # new content: released
    assert _released(_once(remote, work)) == [("stable", "1.0.1", {"api": "1.0.2"})]


def test_digest_strategy_changes_the_overlay_even_without_render_digest(
    registry, bare_remote, tmp_path
):
    apps = _apps("api")
    repo = apps[0].repository
    registry.push(repo, "latest", content=b"first build")
    files = config_files(
        registry.url,
        apps,
        rules="      - strategy: digest\n        tag: latest\n",
        lifecycle=DEV_ONLY,
        envs=("dev",),
    )
    remote = bare_remote(seed=files)
    work = tmp_path / "w"
    _once(remote, work)
    before = remote.show("deploy/shop/overlays/dev/kustomization.yaml")
    second = registry.push(repo, "latest", content=b"second build")
    out = _once(remote, work)
    assert [p["release"] for p in out["promotions"]] == ["1.0.1"]  # dev "runs" 1.0.1 ...
    # ... so its overlay must say which content that is.
    assert remote.show("deploy/shop/overlays/dev/kustomization.yaml") != before
    assert second in remote.show("deploy/shop/overlays/dev/kustomization.yaml")


def test_overlay_without_the_implied_digest_is_not_drift(registry, bare_remote, tmp_path):
    """Overlays written before the digest strategy implied renderDigest say only
    ``newTag``: that is the same release, not a hand edit to pin."""
    apps = _apps("api")
    registry.push(apps[0].repository, "latest", content=b"first build")
    remote = _dev_remote(
        registry, bare_remote, apps, "      - strategy: digest\n        tag: latest\n"
    )
    _once(remote, tmp_path / "w")
    overlay = "deploy/shop/overlays/dev/kustomization.yaml"
    text = remote.show(overlay)
    assert "digest: sha256:" in text
    without = "".join(line for line in text.splitlines(True) if "digest:" not in line)
    remote.human_commit({overlay: without + "\n"}, "overlay as an older version wrote it")
    head = remote.head()

    out = _once(remote, tmp_path / "cold")  # no work-dir cache: everything is observed
    assert out["releases"] == [] and out["promotions"] == []
    assert remote.head() == head  # no pin, no revert: nothing to commit
    assert not any(f.startswith("pins/") for f in remote.files())


# ------------------------------------------------------------------------ regex, suffix


def test_regex_extracts_a_timestamp_and_orders_numerically(registry, bare_remote, tmp_path):
    apps = _apps("api")
    repo = apps[0].repository
    for tag in (
        "main-3f2a1c-1700000000",
        "main-9b8e7d-1700003600",
        "main-ffffff-999999999",  # alphabetically highest, numerically lowest
        "pr-12-1800000000",  # newest timestamp, but not main
        "main-0a1b2c-latest",  # matches nothing: $ts must be digits
        "latest",
    ):
        registry.push(repo, tag, content=tag.encode())
    rules = textwrap.indent(
        textwrap.dedent("""\
            - strategy: regex
              allow: "^main-[0-9a-f]+-(?<ts>[0-9]+)$"
              extract: $ts
            """),
        "      ",
    )
    remote = bare_remote(
        seed=config_files(registry.url, apps, rules=rules, lifecycle=DEV_ONLY, envs=("dev",))
    )
    work = tmp_path / "w"
    out = _once(remote, work)
    assert _released(out) == [("stable", "1.0.0", {"api": "main-9b8e7d-1700003600"})]

    registry.push(repo, "main-111111-1700007200", content=b"next")
    out = _once(remote, work)
    assert _released(out) == [("stable", "1.0.1", {"api": "main-111111-1700007200"})]
    built = kustomize_images(checkout(remote.path, tmp_path / "co") / "deploy/shop/overlays/dev")
    assert built == {"api": "example.com/shop/api:main-111111-1700007200"}

    # A rebuild of an older commit (lower timestamp) pushed later does not fire.
    registry.push(repo, "main-222222-1700000001", content=b"old rebuild")
    assert _once(remote, work)["releases"] == []


def test_suffix_keeps_the_variant(registry, bare_remote, tmp_path):
    apps = _apps("api")
    repo = apps[0].repository
    for tag in ("1.2-alpine", "1.3", "1.3-slim"):
        registry.push(repo, tag, content=tag.encode())
    rules = "      - strategy: suffix\n        suffix: alpine\n"
    remote = bare_remote(
        seed=config_files(registry.url, apps, rules=rules, lifecycle=DEV_ONLY, envs=("dev",))
    )
    work = tmp_path / "w"
    out = _once(remote, work)
    assert _released(out) == [("stable", "1.0.0", {"api": "1.2-alpine"})]

    registry.push(repo, "1.3-alpine", content=b"1.3-alpine")
    registry.push(repo, "1.4", content=b"1.4")
    out = _once(remote, work)
    assert _released(out) == [("stable", "1.0.1", {"api": "1.3-alpine"})]
    built = kustomize_images(checkout(remote.path, tmp_path / "co") / "deploy/shop/overlays/dev")
    assert built == {"api": "example.com/shop/api:1.3-alpine"}


def test_suffix_without_explicit_suffix_follows_the_deployed_tag(registry, bare_remote, tmp_path):
    apps = _apps("api")
    repo = apps[0].repository
    for tag in ("1.2-alpine", "1.3-alpine", "1.3", "1.4"):
        registry.push(repo, tag, content=tag.encode())
    files = config_files(
        registry.url, apps, rules="      - strategy: suffix\n", lifecycle=DEV_ONLY, envs=("dev",)
    )
    overlay = "deploy/shop/overlays/dev/kustomization.yaml"
    files[overlay] = files[overlay].replace("newTag: 0.0.0", "newTag: 1.2-alpine")
    remote = bare_remote(seed=files)
    out = _once(remote, tmp_path / "w")
    assert _released(out) == [("stable", "1.0.0", {"api": "1.3-alpine"})]


# ----------------------------------------------------------------------------- settle


def test_settle_window_collects_a_burst_of_pushes_into_one_release(
    registry, bare_remote, in_process
):
    apps = _apps("api", "web")
    for app in apps:
        registry.push(app.repository, "1.0.0", content=b"1.0.0")
    files = config_files(
        registry.url,
        apps,
        triggers=_triggers(("shop-images", "stable", ["api", "web"], "settle: 3s\nmaxWait: 5s\n")),
        lifecycle=DEV_ONLY,
        envs=("dev",),
    )
    remote = bare_remote(seed=files)
    clock = Clock(T0)
    reconciler = in_process(remote, clock)

    def step(seconds: float) -> PassResult:
        clock.advance(seconds)
        result = reconciler.run_pass()
        assert result.ok, result.to_json()
        return result

    # Even the first release waits for quiet.
    first = step(0)
    assert first.releases == [] and first.decisions[0].reason.startswith("settling")
    assert [r.version for r in step(3).releases] == ["1.0.0"]

    # A burst: api, web, api again, one second apart. No pass during it releases,
    # and none of those passes commits (settle state is local, not in Git).
    head = remote.head()
    for repo, tag in (
        (apps[0].repository, "1.1.0"),
        (apps[1].repository, "1.1.0"),
        (apps[0].repository, "1.2.0"),
    ):
        registry.push(repo, tag, content=f"{repo}:{tag}".encode())
        result = step(1)
        assert result.releases == [] and result.commit is None
        assert "waiting 3s more" in result.decisions[0].reason  # the burst restarts the wait
    assert step(2).releases == []  # 2 s of quiet: not yet
    assert remote.head() == head

    released = step(1).releases  # 3 s of quiet: one release with every new version
    assert [(r.version, {p.name: p.version for p in r.packages}) for r in released] == [
        ("1.0.1", {"api": "1.2.0", "web": "1.1.0"})
    ]
    assert [s for s in remote.subjects() if "release shop" in s] == [
        "reconciler: release shop 1.0.1; deploy shop 1.0.1 to dev",
        "reconciler: release shop 1.0.0; deploy shop 1.0.0 to dev",
    ]

    # maxWait bounds settling: pushes every 2 s never give 3 s of quiet, but the
    # release comes once 5 s have passed since the first new version was seen.
    outcomes = []
    for i, tag in enumerate(("1.3.0", "1.4.0", "1.5.0", "1.6.0")):
        registry.push(apps[0].repository, tag, content=tag.encode())
        outcomes.append([r.version for r in step(0 if i == 0 else 2).releases])
    assert outcomes == [[], [], [], ["1.0.2"]]
    record = _record(remote, "1.0.2")
    assert record["packages"]["api"]["version"] == "1.6.0"


# ------------------------------------------------------------------------ plan / explain


def _prerelease_repo(registry, bare_remote):
    apps = _apps("api")
    for tag in ("1.4.0", "1.5.0-rc.1", "nightly"):
        registry.push(apps[0].repository, tag, content=tag.encode())
    files = config_files(registry.url, apps, lifecycle=DEV_ONLY, envs=("dev",))
    return bare_remote(seed=files)


def test_plan_and_explain_give_reasons_and_never_commit(registry, bare_remote, tmp_path):
    remote = _prerelease_repo(registry, bare_remote)
    work = tmp_path / "w"
    head = remote.head()

    proc = run_cli("plan", "--repo", remote.url, "--work-dir", str(work), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["commit"] is None and [r["version"] for r in plan["releases"]] == ["1.0.0"]
    [trigger] = plan["triggers"]
    assert {k: trigger[k] for k in ("trigger", "channel", "release", "reason", "changes")} == {
        "trigger": "shop-images",
        "channel": "stable",
        "release": "1.0.0",
        "reason": "new version of api 1.4.0",
        "changes": [{"package": "api", "from": None, "to": "1.4.0"}],
    }

    proc = run_cli("explain", "shop", "--repo", remote.url, "--work-dir", str(work))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "channel stable" in lines
    assert "    accepted (best first): 1.4.0" in lines
    assert "    rejected 1.5.0-rc.1: pre-release 'rc.1' does not match ^$" in lines
    assert "    rejected nightly: not a version" in lines
    assert "trigger shop-images: new version of api 1.4.0" in lines
    assert remote.head() == head  # polling, planning and explaining write nothing to Git

    # After a real pass, explain shows the trigger's history (kept in the work dir).
    _once(remote, work)
    head = remote.head()
    proc = run_cli("explain", "shop", "--repo", remote.url, "--work-dir", str(work))
    assert "trigger shop-images: no new version: api: 1.4.0 is not newer than 1.4.0" in proc.stdout
    assert "new version of api 1.4.0" in proc.stdout  # the earlier decision, from history
    assert remote.head() == head
    history = json.loads((work / "cache" / "state.json").read_text())["history"]["shop-images"]
    assert {"release": "1.0.0", "found": {"api": "1.4.0"}} in [
        {k: h[k] for k in ("release", "found")} for h in history
    ]


def test_dry_run_does_not_disturb_the_settle_window(registry, bare_remote, in_process):
    apps = _apps("api")
    registry.push(apps[0].repository, "1.0.0")
    files = config_files(
        registry.url,
        apps,
        triggers=_triggers(("shop-images", "stable", ["api"], "settle: 3s\n")),
        lifecycle=DEV_ONLY,
        envs=("dev",),
    )
    clock = Clock(T0)
    reconciler = in_process(bare_remote(seed=files), clock)
    assert reconciler.run_pass().releases == []  # settling starts
    clock.advance(3)
    assert [r.version for r in reconciler.run_pass(dry_run=True).releases] == ["1.0.0"]
    # The plan only looked; the real pass at the same moment must release.
    assert [r.version for r in reconciler.run_pass().releases] == ["1.0.0"]


def test_plan_json_lists_rejected_candidates_with_reasons(registry, bare_remote, tmp_path):
    remote = _prerelease_repo(registry, bare_remote)
    proc = run_cli(
        "plan", "--repo", remote.url, "--work-dir", str(tmp_path / "w"), "--format", "json"
    )
    trigger = json.loads(proc.stdout)["triggers"][0]
    api = trigger["packages"]["api"]
    assert api["chosen"] == "1.4.0"
    assert {"tag": "1.5.0-rc.1", "reason": "pre-release 'rc.1' does not match ^$"} in api[
        "rejected"
    ]
