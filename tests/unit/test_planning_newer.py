"""When does a package's candidate count as newer than the previous release's?"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.model import ReleasedPackage, VersionRule
from reconciler.planning import PackageChoice, _newer

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
NEWEST_BUILD = VersionRule(strategy="newest-build")
SEMVER = VersionRule(prerelease=".*")


def previous(tag: str, digest: str | None = D1, built: datetime | None = None) -> ReleasedPackage:
    return ReleasedPackage("api", "image", "example.com/api", tag, digest, built=built)


@pytest.mark.parametrize(
    ("rule", "choice", "prev", "newer"),
    [
        # newest-build: the record's build time decides, even if the old tag is gone
        (
            NEWEST_BUILD,
            PackageChoice("api", "b-1", D2, built=T),
            previous("b-2", built=T + timedelta(hours=1)),
            False,
        ),
        (
            NEWEST_BUILD,
            PackageChoice("api", "b-3", D2, built=T + timedelta(hours=2)),
            previous("b-2", built=T),
            True,
        ),
        # reproducible builds stamp one time on every image: other content is new ...
        (NEWEST_BUILD, PackageChoice("api", "b-3", D2, built=T), previous("b-2", built=T), True),
        # ... the same content under another tag is not
        (NEWEST_BUILD, PackageChoice("api", "b-3", D1, built=T), previous("b-2", built=T), False),
        # semver: one image under a higher version is not released twice ...
        (SEMVER, PackageChoice("api", "1.0.1", D1), previous("1.0.0"), False),
        (SEMVER, PackageChoice("api", "1.0.1", D2), previous("1.0.0"), True),
        # ... except a release candidate promoted to its final version by a retag
        (SEMVER, PackageChoice("api", "1.3.0", D1), previous("1.3.0-rc.1"), True),
        (SEMVER, PackageChoice("api", "1.4.0", D1), previous("1.3.0-rc.1"), False),
        # the same tag re-pushed with new content; charts without digests by version
        (SEMVER, PackageChoice("api", "1.0.0", D2), previous("1.0.0"), True),
        (SEMVER, PackageChoice("api", "1.0.0", D1), previous("1.0.0"), False),
        (SEMVER, PackageChoice("api", "0.2.0", None), previous("0.1.0", digest=None), True),
    ],
)
def test_newer(
    rule: VersionRule, choice: PackageChoice, prev: ReleasedPackage, newer: bool
) -> None:
    assert _newer(rule, choice, prev) is newer


@pytest.mark.parametrize("rule", [SEMVER, VersionRule(strategy="digest", tag="1.0.0")])
def test_a_tag_never_goes_back_to_content_an_earlier_release_replaced(rule: VersionRule) -> None:
    # 1.0.0 was released with D2, then re-pushed and released with D1 (the previous
    # release). A writer still holding the old answer D2 must not release it again.
    stale = PackageChoice("api", "1.0.0", D2)
    assert _newer(rule, stale, previous("1.0.0"), frozenset({D2})) is False
    # content never released before is a re-push, as ever
    assert _newer(rule, stale, previous("1.0.0"), frozenset({"sha256:" + "3" * 64})) is True
