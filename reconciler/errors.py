"""The exception tree of reconciler, documented in one place.

    ReconcilerError                 base of everything raised on purpose
    ├── ConfigError                 the config repository is invalid; holds
    │                               a list of Problem(file, line, key_path, message)
    ├── FeedError                   one feed could not be read; holds the feed
    │   │                           name and a retry delay (seconds), so a pass
    │   │                           can record it and move on to other feeds
    │   ├── FeedAuthError           credentials rejected or missing (401/403)
    │   ├── FeedRateLimited         429; retry_after taken from Retry-After
    │   └── FeedNotFound            repository or tag unknown (404)
    │       └── PlatformNotFound    a multi-arch index has no image for the platform
    ├── GitError                    a git operation failed (unreachable remote,
    │   │                           auth rejected, hook refused); message is
    │   │                           scrubbed of credentials
    │   └── PushRejected            non-fast-forward: someone else pushed first;
    │                               the pass re-plans on the new head
    ├── PromotionRefused            a manual promote/rollback is not allowed now
    │                               (phase closed, blocked, frozen); holds the reason
    ├── PullRequestError            a Git host API call (pull-request mode) failed;
    │                               holds host, HTTP status and a retry delay
    ├── RenderError                 an overlay file cannot be edited (target not
    │                               found, result does not parse)
    └── WebhookRejected             a webhook delivery is refused; holds the HTTP
                                    status to answer with

CLI exit codes: :class:`ExitCode` is the one table (the README and ``reconciler
--help`` print it); :func:`exit_for` maps an error to its code and message, for
``cli.py`` and every command.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """What the ``reconciler`` command exits with."""

    OK = 0
    INVALID = 1  # config invalid, or an action refused
    USAGE = 2  # a bad command line (click's own message)
    FEED = 3  # a feed failed; other work was still done
    GIT = 4  # a git operation failed
    PROJECT = 5  # a project was skipped (one of its files cannot be read or edited)
    INTERNAL = 70  # a bug: set RECONCILER_DEBUG=1 for the traceback


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 config invalid or action refused; 2 usage error; "
    "3 a feed failed (other work was still done); 4 git failure; 5 a project was "
    "skipped (one of its files cannot be read or edited; the others were still done); "
    "70 internal error."
)


class ReconcilerError(Exception):
    """Base class of all errors raised on purpose by reconciler."""


@dataclass(frozen=True, order=True)
class Problem:
    """One config problem, printed as ``file:line: key.path: message``."""

    file: str
    line: int
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key_path}:" if self.key_path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(ReconcilerError):
    """The config repository is invalid. ``problems`` lists every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class FeedError(ReconcilerError):
    """A feed could not be read. ``retry_after`` is the suggested delay in seconds."""

    def __init__(self, feed: str, message: str, *, retry_after: float = 60.0) -> None:
        self.feed = feed
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"feed {feed}: {message}")


class FeedAuthError(FeedError):
    """The registry rejected our credentials, or demanded some we do not have."""


class FeedRateLimited(FeedError):
    """The registry answered 429; ``retry_after`` comes from its Retry-After header."""


class FeedNotFound(FeedError):
    """The repository, chart or tag does not exist in the feed."""


class PlatformNotFound(FeedNotFound):
    """A multi-arch index has no image for the platform asked for."""


class GitError(ReconcilerError):
    """A git operation failed. The message never contains credentials."""


class PushRejected(GitError):
    """The remote moved on (non-fast-forward); fetch, re-plan and retry."""


class PromotionRefused(ReconcilerError):
    """A manual promotion, rollback or pin is not allowed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RenderError(ReconcilerError):
    """An overlay or target file could not be edited safely."""

    def __init__(self, file: str, message: str) -> None:
        self.file = file
        super().__init__(f"{file}: {message}")


class UnsafePathError(ReconcilerError):
    """A path from the config repository would leave the work tree, enter ``.git`` or
    pass through a symlink; refused before anything is read or written."""

    def __init__(self, file: str, reason: str) -> None:
        self.file = file
        self.reason = reason
        super().__init__(f"{file}: {reason}")


class PullRequestError(ReconcilerError):
    """A Git host API call failed.

    ``host`` names the API (``"github api.github.com"``), ``status`` is the HTTP
    status (None for network failures and local problems such as a missing token),
    ``api_message`` the host's own explanation. ``retry_after`` is a delay in
    seconds when the failure is temporary (rate limit, server error, network),
    None when repeating the call unchanged cannot succeed.
    """

    def __init__(
        self,
        host: str,
        message: str,
        *,
        status: int | None = None,
        api_message: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.host = host
        self.message = message
        self.status = status
        self.api_message = api_message
        self.retry_after = retry_after
        super().__init__(f"{host}: {message}")


class WebhookRejected(ReconcilerError):
    """A delivery is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")


def exit_for(error: ReconcilerError) -> tuple[ExitCode, str]:
    """The exit code and the message a command prints for an error raised on purpose."""
    if isinstance(error, ConfigError):
        return ExitCode.INVALID, f"config invalid:\n{error}"
    if isinstance(error, PromotionRefused):
        return ExitCode.INVALID, f"refused: {error.reason}"
    if isinstance(error, GitError):
        return ExitCode.GIT, f"git error: {error}"
    return ExitCode.INVALID, f"error: {error}"
