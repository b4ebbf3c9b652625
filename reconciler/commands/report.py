"""Human-readable rendering of a pass result (shared by plan, once and demo)."""

from __future__ import annotations

from typing import Any


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def describe(result: Any, *, dry_run: bool = False) -> str:
    """A summary of a PassResult for people; ``dry_run`` for ``plan``, which never
    commits or pushes."""
    parts: list[str] = []
    if result.config_error is not None:
        parts.append("config invalid:\n" + str(result.config_error))
    rows = [
        [d.project, d.trigger, d.channel, d.release.version if d.release else "-", d.reason]
        for d in result.decisions
    ]
    if rows:
        parts.append(table(rows, ["PROJECT", "TRIGGER", "CHANNEL", "RELEASE", "REASON"]))
    for release in result.releases:
        pkgs = ", ".join(f"{p.name} {p.version}" for p in release.packages)
        parts.append(f"new release {release.project} {release.version}: {pkgs}")
    for project, env, version in result.promotions:
        parts.append(f"deploy {project} {version} -> {env}")
    for project, env, reason in result.waiting:
        parts.append(f"waiting {project}/{env}: {reason}")
    for project, error in sorted(result.project_errors.items()):
        parts.append(f"project {project} skipped: {error}")
    for key, error in sorted(result.feed_errors.items()):
        parts.append(f"feed error {key}: {error}")
    if result.git_error:
        parts.append(f"git error: {result.git_error}")
    if result.commit:
        state = "pushed" if result.pushed else "not pushed"
        parts.append(f"commit {result.commit[:12]} ({state}, {result.push_attempts} attempt(s))")
    elif dry_run:
        parts.append("plan only: nothing was written, committed or pushed")
    elif not result.config_error and not result.git_error:
        parts.append("nothing to commit")
    return "\n".join(parts)
