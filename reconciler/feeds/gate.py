"""The signature gate's verdicts, shared by its verifiers (cosign for images, Helm
provenance files for charts): whether a version may be selected, why not in words
(``explain``), and the kind of refusal from a small fixed vocabulary (a metric label and
half of the key that notifies a refusal once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["REFUSAL_KINDS", "RefusalKind", "Verdict"]

RefusalKind = Literal["unsigned", "invalid", "no-matching-key", "digest-mismatch"]
REFUSAL_KINDS: tuple[RefusalKind, ...] = (
    "unsigned",  # no signature at all (no .sig tag or referrer; no .prov file)
    "invalid",  # a signature that cannot be read, or does not verify with a known key
    "no-matching-key",  # signed, but by no configured key
    "digest-mismatch",  # a good signature over other content (another image or archive)
)


@dataclass(frozen=True)
class Verdict:
    """Whether a version is signed; ``kind`` says how it was refused (None: verified)."""

    verified: bool
    reason: str
    kind: RefusalKind | None = None

    @classmethod
    def refused(cls, kind: RefusalKind, reason: str) -> Verdict:
        return cls(False, reason, kind)
