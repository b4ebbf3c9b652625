"""The signature gate in a pass: a package with ``verify`` is released only at a version
whose signature verifies (cosign for images, by keys or keyless; a Helm provenance file for charts).

Candidates are judged best first (at most the rule's ``scanLimit``) and the first that
verifies wins; the others are rejected with the verifier's reason, which ``explain``
shows, and returned as refusals for the metric and the notification. A verified verdict
is kept in the work dir's ``signatures`` table for good (a digest is immutable) under
the key set it was verified with; a refusal is judged again each pass, since a
signature may be published later for the same content.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from reconciler.errors import FeedError
from reconciler.feeds.auth import granted_file_problem
from reconciler.feeds.gate import Verdict
from reconciler.feeds.secretfiles import read_small_file
from reconciler.grants import policy_from_env
from reconciler.model import KeylessPolicy, Package, VersionRule
from reconciler.planning import Refusal
from reconciler.selection import Candidate, Selection

if TYPE_CHECKING:
    from reconciler.feeds.helm import HelmRepoClient
    from reconciler.feeds.oci import RegistryClient

__all__ = [
    "Judge",
    "chart_judge",
    "gate",
    "granted_bytes",
    "image_judge",
    "keyless_key_set",
    "keyless_verify",
]

Judge = Callable[[str], tuple[str, Verdict]]
"""tag -> (the digest judged, or "" when there is none; the verdict)."""

Kept = dict[str, list[Any]]
"""The work dir's ``signatures`` table: feed|repository|digest|key set -> [reason, at]."""


def gate(
    selection: Selection, rule: VersionRule, judge: Judge, label: str
) -> tuple[Selection, tuple[Refusal, ...]]:
    """``selection`` narrowed to the best candidate that ``judge`` verifies, and the
    better ones it refused (their reasons prefixed with ``label``)."""
    judged: dict[str, tuple[str, Verdict]] = {}  # the best tag is judged once, not twice

    def verdict(tag: str) -> tuple[str, Verdict]:
        if tag not in judged:
            judged[tag] = judge(tag)
        return judged[tag]

    if selection.chosen is not None and verdict(selection.chosen)[1].verified:
        return selection, ()  # the usual case: the best tag is signed
    refused: list[Refusal] = []
    for tag in selection.accepted[: max(1, rule.scan_limit)]:
        digest, found = verdict(tag)
        if found.verified:
            return _narrowed(selection, tag, refused), tuple(refused)
        refused.append(Refusal(tag, digest, found.kind or "invalid", f"{label}: {found.reason}"))
    return _narrowed(selection, None, refused), tuple(refused)


def _narrowed(selection: Selection, chosen: str | None, refused: list[Refusal]) -> Selection:
    """``selection`` with ``chosen`` instead (None: no tag is left) and the ``refused``
    tags moved to the rejected ones, with their reasons."""
    gone = {r.tag for r in refused}
    rejected = (*(Candidate(r.tag, r.reason) for r in refused), *selection.rejected)
    if chosen is None:
        return Selection(None, (), rejected)
    return Selection(chosen, tuple(t for t in selection.accepted if t not in gone), rejected)


def granted_bytes(
    pkg: Package, files: tuple[str, ...], host: str, env: Mapping[str, str] | None, what: str
) -> tuple[list[bytes], str]:
    """The contents of a package's key files, read only when granted to the feed's
    host (their resolved paths checked too: validation judged only the text), and a
    name for the key set (a hash of their bytes) that kept verdicts are filed under."""
    policy = policy_from_env(env if env is not None else os.environ)
    contents: list[bytes] = []
    digest = hashlib.sha256()
    for file in files:
        problem = granted_file_problem(policy, file, host)
        if problem is not None:
            raise FeedError(pkg.feed, f"{what} not granted: {problem}")
        try:
            data = read_small_file(file)
        except OSError as exc:
            raise FeedError(pkg.feed, f"{what} {file}: {exc.strerror or exc}") from exc
        contents.append(data)
        digest.update(hashlib.sha256(data).digest())
    return contents, digest.hexdigest()[:24]


def _kept_verdict(
    kept: Kept, at: str, wall: Callable[[], float], verify: Callable[[], Verdict]
) -> Verdict:
    """A verified verdict kept under ``at``, else ``verify()`` (kept when verified)."""
    if at in kept:
        return Verdict(True, str(kept[at][0]))
    found = verify()
    if found.verified:
        kept[at] = [found.reason, wall()]
    return found


def image_judge(
    pkg: Package,
    key_set: str,
    digest_of: Callable[[str], str | None],
    verify: Callable[[str], Verdict],
    kept: Kept,
    wall: Callable[[], float],
) -> Judge:
    """Judges a tag by the cosign signatures over its digest (``digest_of``: the
    poller's kept tag -> digest answers; ``verify``: digest -> verdict, by keys or
    keyless)."""

    def judge(tag: str) -> tuple[str, Verdict]:
        digest = digest_of(tag)
        if digest is None:
            return "", Verdict.refused("invalid", "the registry gave no digest for this tag")
        at = f"{pkg.feed}|{pkg.repository}|{digest}|{key_set}"
        return digest, _kept_verdict(kept, at, wall, lambda: verify(digest))

    return judge


def keyless_key_set(policy: KeylessPolicy, root_set: str) -> str:
    """The name kept keyless verdicts are filed under: the trusted root's bytes and
    the identity policy (a verdict for one signer says nothing of another)."""
    text = "|".join((root_set, policy.issuer, policy.identity or "", policy.identity_regexp or ""))
    return "keyless-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def keyless_verify(
    client: RegistryClient, pkg: Package, trusted_root: bytes
) -> Callable[[str], Verdict]:
    """digest -> the keyless verdict for ``pkg`` (feeds/keyless.py). sigstore-python
    loads at the first digest judged, so a pass whose verdicts are all kept skips it."""
    from reconciler.feeds import keyless
    from reconciler.userregex import UnsupportedRegex, compile_user_regex

    policy = pkg.keyless
    assert policy is not None
    try:
        pattern = policy.identity_regexp
        signer = keyless.Signer(
            policy.issuer, policy.identity, None if pattern is None else compile_user_regex(pattern)
        )
    except UnsupportedRegex as exc:
        raise FeedError(pkg.feed, f"verify.cosign.keyless.identityRegexp: {exc}") from exc
    verifiers: list[Any] = []

    def verify(digest: str) -> Verdict:
        if not verifiers:
            try:
                verifiers.append(keyless.load_verifier(trusted_root))
            except ImportError as exc:
                raise FeedError(pkg.feed, keyless.KEYLESS_NOT_INSTALLED) from exc
            except ValueError as exc:
                raise FeedError(pkg.feed, f"trusted root {policy.trusted_root}: {exc}") from exc
        return keyless.verify_image_keyless(client, pkg.repository, digest, verifiers[0], signer)

    return verify


def chart_judge(
    client: HelmRepoClient,
    pkg: Package,
    keyring: bytes,
    key_set: str,
    kept: Kept,
    wall: Callable[[], float],
) -> Judge:
    """Judges a chart version by its provenance file. A verified verdict is kept under
    the index's digest, which verification proved is the archive's: while the index
    says the same, an idle pass downloads nothing."""
    from reconciler.feeds import provenance

    def judge(tag: str) -> tuple[str, Verdict]:
        claimed = client.digest(pkg.repository, tag)
        at = f"{pkg.feed}|{pkg.repository}|{claimed}|{key_set}"
        if claimed is not None and at in kept:
            return claimed, Verdict(True, str(kept[at][0]))
        files = client.chart_files(pkg.repository, tag)
        try:
            found = provenance.judge_chart(files, keyring)
        except provenance.GpgvMissing as exc:
            raise FeedError(pkg.feed, f"Helm provenance: {exc}") from exc
        if found.verified and claimed is not None:
            kept[at] = [found.reason, wall()]
        return (f"sha256:{files.sha256}" if files.sha256 else claimed or ""), found

    return judge
