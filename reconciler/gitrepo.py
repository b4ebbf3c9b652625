"""The reconciler's working clone of the config repository; the only GitPython user.

Everything goes through the git command line (via GitPython's ``Git.execute``),
because the CLI is what every Git host is tested against, and because its exit
codes and ``--porcelain`` output tell rejections apart reliably where GitPython's
own ``Remote.push`` silently returns flags (see pitfalls.md).

Rules this module keeps:

* The work tree belongs to one reconciler process. ``sync`` therefore treats any
  local state as disposable: lock files, a detached HEAD, uncommitted or half
  written files and a broken clone are all thrown away, and the branch is reset to
  the remote's. Callers must not run two ``WorkTree`` objects on one directory at
  the same time (the loop runs one pass at a time).
* The target branch is never force-pushed. ``push`` raises ``PushRejected`` when
  the remote moved on, and the caller syncs, re-plans and commits again.
* Credentials never reach ``.git/config``, argv, logs or exception messages: they
  are handed to each git process through its environment only (see gitauth.py,
  which reads them), and every message passes through ``scrub``.

Settings, read from ``env`` (default ``os.environ``) at every operation so that
rotated secrets are picked up without a restart (the credential settings,
``RECONCILER_GIT_USERNAME``/``_PASSWORD``/``_SSH_KEY_FILE``/``_CA_FILE``..., are
described in gitauth.py):

``RECONCILER_GIT_SIGNING_KEY_FILE`` (and ``_FORMAT``, ``_PASSPHRASE_FILE``)
    sign every commit with an SSH or OpenPGP key (see signing.py).
``RECONCILER_GIT_COMMITTER_NAME``, ``RECONCILER_GIT_COMMITTER_EMAIL``
    the committer, when it differs from the author (e.g. a bot account whose key
    signs, committing on behalf of the author named in reconciler.yaml).
``RECONCILER_GIT_SIGNOFF``
    ``true``: add a ``Signed-off-by`` trailer (the committer) to every commit, for
    repositories that require a DCO.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import git

from reconciler.errors import GitError, PushRejected
from reconciler.gitauth import GitCredentials
from reconciler.gitoutput import (
    LOG_FORMAT,
    LOST_REF_UPDATE_RACE,
    MISSING_REMOTE_BRANCH,
    RACE_REJECTION_MARKERS,
    REMOTE_FAILURE_MARKERS,
    SHA,
    CommitInfo,
    parse_commit,
)
from reconciler.logs import scrub
from reconciler.signing import Signer, signer_from_settings, stop_gpg_agent

__all__ = [
    "OWNED_BRANCH_PREFIXES",
    "CommitInfo",
    "WorkTree",
    "local_branch_files",
    "local_branch_head",
]

log = logging.getLogger(__name__)

#: Branches the reconciler creates and owns (pull-request mode). Only these may be
#: overwritten by ``WorkTree.push_branch``; nothing else is ever force-pushed.
OWNED_BRANCH_PREFIXES = ("promote/", "reconciler/")

_ENV_COMMITTER_NAME = "RECONCILER_GIT_COMMITTER_NAME"
_ENV_COMMITTER_EMAIL = "RECONCILER_GIT_COMMITTER_EMAIL"
_ENV_SIGNOFF = "RECONCILER_GIT_SIGNOFF"

# Settings for every git command, passed with ``-c`` so nothing is persisted:
# files are written byte-exact, and the operator's global config cannot make
# commits need a GPG agent or a terminal.
_COMMAND_CONFIG = (
    "core.autocrlf=false",
    "commit.gpgSign=false",
    "log.showSignature=false",
    "advice.detachedHead=false",
    "gc.autoDetach=false",
)


@dataclass(frozen=True)
class _GitResult:
    status: int
    stdout: str
    stderr: str


class _LocalDamage(Exception):
    """Internal: the local clone is unusable and must be re-created."""


class WorkTree:
    """A working clone of ``url`` at ``path`` following ``branch``.

    ``author`` is the (name, email) used as author of every commit, and as its
    committer unless ``committer`` (or the settings) name another.
    ``env`` is where the ``RECONCILER_GIT_*`` credential settings are read from
    (default ``os.environ``). ``timeout`` bounds each git process, in seconds: a hung
    server fails the operation instead of the reconciler.
    """

    def __init__(
        self,
        url: str,
        path: Path,
        branch: str,
        *,
        author: tuple[str, str],
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        committer: tuple[str, str] | None = None,
    ) -> None:
        self._settings = env if env is not None else os.environ
        self._credentials = GitCredentials(url, self._settings)
        self.url = self._credentials.url
        self.root = Path(path).absolute()
        self.branch = branch
        self._author = author
        self.committer = committer
        # Private GNUPGHOME for an OpenPGP signing key: in the work dir, outside the
        # work tree (git clean must not remove it, and it must never be committed).
        self._gnupg_home = self.root.parent / f"{self.root.name}.gnupg"
        self._signer: Signer | None = None
        self._timeout = timeout
        self._git = git.Git(str(self.root))
        self._check_branch_name(branch)

    @property
    def author(self) -> tuple[str, str]:
        """(name, email) of the author, and of the committer unless ``committer`` or
        the ``RECONCILER_GIT_COMMITTER_*`` settings name another; may change between
        operations (the config repository's settings name it, known after a sync)."""
        return self._author

    @author.setter
    def author(self, value: tuple[str, str]) -> None:
        self._author = value

    # -- context manager -----------------------------------------------------------

    def __enter__(self) -> WorkTree:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop GitPython's helper processes and delete the private askpass directory."""
        self._git.clear_cache()
        self._credentials.close()
        stop_gpg_agent(self._gnupg_home)

    # -- public operations ---------------------------------------------------------

    def sync(self, *, clean_at: str = "") -> str:
        """Make the work tree equal to the remote branch; return the HEAD sha.

        ``clean_at``: the caller knows that nothing wrote to the work tree, its index
        or its branch since a sync left it at that commit (a pass that changed and
        proposed nothing); when the fetch finds the remote still there, the checkout
        (and the scan for untracked files) is skipped: a sync is one git process.

        Clones when there is no usable clone of ``url`` (missing, corrupt, or cloned
        from another URL). Returns ``""`` when the remote has no such branch yet:
        the work tree is then an empty, unborn branch and the first commit creates it.
        Failures of the remote (unreachable, auth) raise ``GitError`` and keep the
        existing clone; failures of the local clone are repaired by re-cloning once.
        """
        self._remove_stale_state()
        if not self._is_clone_of_url():
            self._recreate("no clone of the remote yet")
            clean_at = ""
        try:
            self._update_from_remote(clean_at)
        except _LocalDamage as damage:
            self._recreate(str(damage))
            try:
                self._update_from_remote()
            except _LocalDamage as again:
                raise GitError(str(again)) from None
        return self._tracking_sha() or self.head()

    def head(self) -> str:
        """The sha of HEAD, or ``""`` on an unborn branch (empty remote)."""
        result = self._run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], check=False)
        return result.stdout.strip() if result.status == 0 else ""

    def commit(self, message: str) -> str | None:
        """Stage every change in the work tree and commit it; return the new sha.

        Returns ``None`` without committing when the staged tree equals HEAD: an
        empty commit would record a release or promotion that changed nothing.
        ``message`` is used as given (trailers included); only surrounding
        whitespace is cleaned, lines starting with ``#`` are kept.
        """
        if not message.strip():
            raise ValueError("commit message must not be empty")
        self._run(["add", "--all"])
        # Without a revision, diff compares the index with HEAD, or with the empty
        # tree on an unborn branch; exit status 1 means "there are differences".
        if self._run(["diff", "--cached", "--quiet"], check=False).status == 0:
            return None
        # The message goes through stdin, never argv: a pass over hundreds of
        # projects writes one far larger than the kernel's argument limit.
        signoff = self._settings.get(_ENV_SIGNOFF, "").lower() in ("1", "true", "yes")
        self._run(
            ["commit", "--quiet", "--no-verify", "--cleanup=whitespace", "--file=-"]
            + (["--signoff"] if signoff else []),
            stdin=message.encode("utf-8"),
            sign=True,
        )
        sha = self.head()
        if not sha:  # e.g. a pass wrote into .git: never report a commit that is not there
            raise GitError(f"git commit made no commit ({self.url}): HEAD is not a commit")
        return sha

    def push(self) -> None:
        """Push HEAD to ``origin/<branch>`` as a fast-forward; never forced.

        Raises ``PushRejected`` when the remote branch moved on (another writer was
        first: sync, re-plan, commit, push again) and ``GitError`` for everything
        else (hook refusal, auth, unreachable), with the server's message.
        """
        if not self.head():
            return  # unborn branch: nothing was committed, nothing to push
        self._push(f"HEAD:refs/heads/{self.branch}", lease=None)

    def rebase_if_unrelated(self, guarded: Callable[[str], bool]) -> bool:
        """After a rejected push: move our one new commit onto the remote's new head
        when none of the files the remote changed meanwhile is ``guarded``.

        Returns False (and leaves HEAD alone) when a guarded file changed, the remote
        was rewritten, or anything fails: the caller must then sync and plan again.
        Guarded files are the ones a pass reads or writes (config, records, state,
        overlays); commits that only touch docs or CI files need no re-plan, which
        keeps a pass from starving next to a busy writer.
        """
        tracking = f"refs/remotes/origin/{self.branch}"
        fetch = self._run(
            ["fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{self.branch}:{tracking}"],
            check=False,
            remote=True,
        )
        base = self._run(["rev-parse", "--verify", "--quiet", "HEAD~1^{commit}"], check=False)
        if fetch.status != 0 or base.status != 0:
            return False
        parent = base.stdout.strip()
        if self._run(["merge-base", "--is-ancestor", parent, tracking], check=False).status:
            return False  # the remote no longer contains our starting point
        # --no-renames: a rename out of a guarded folder must count as a change there
        # (with rename detection only the new path would be listed).
        diff = self._run(
            ["diff", "--no-renames", "--name-only", "-z", parent, tracking], check=False
        )
        if diff.status != 0:
            return False
        if any(guarded(path) for path in diff.stdout.split("\0") if path):
            return False
        rebase = self._run(
            ["rebase", "--quiet", "--onto", tracking, parent], check=False, sign=True
        )
        if rebase.status != 0:
            self._run(["rebase", "--abort"], check=False)
            return False
        return True

    def push_branch(self, branch: str) -> None:
        """Push HEAD to ``refs/heads/<branch>``, replacing what is there (pull-request mode).

        Only for branches the reconciler owns (``OWNED_BRANCH_PREFIXES``): their
        content is recomputed from the target branch on every pass, so replacing it
        is intended. The replacement uses a lease on the value just read from the
        remote, so two writers cannot interleave; losing that race raises
        ``PushRejected``. The target branch itself can never be pushed this way.
        """
        self._check_branch_name(branch)
        if branch == self.branch or not branch.startswith(OWNED_BRANCH_PREFIXES):
            raise ValueError(
                f"refusing to overwrite branch {branch!r}: only branches starting with "
                f"{', '.join(OWNED_BRANCH_PREFIXES)} are owned by the reconciler"
            )
        if not self.head():
            raise GitError(f"cannot push {branch}: nothing committed yet")
        ref = f"refs/heads/{branch}"
        listed = self._run(["ls-remote", "origin", ref], remote=True)
        current = listed.stdout.split("\t", 1)[0].strip() if listed.stdout.strip() else ""
        self._push(f"HEAD:{ref}", lease=(ref, current))

    def log(
        self,
        paths: Sequence[str] = (),
        max_count: int | None = None,
        grep: str | None = None,
    ) -> list[CommitInfo]:
        """Commits reachable from HEAD, newest first.

        ``paths`` limits to commits touching them; ``grep`` keeps commits whose
        message contains that text (a fixed string, not a pattern).
        """
        if not self.head():
            return []
        args = ["log", "-z", "--no-color", f"--format={LOG_FORMAT}"]
        if max_count is not None:
            args.append(f"--max-count={max_count}")
        if grep is not None:
            args += ["--fixed-strings", f"--grep={grep}"]
        args += ["HEAD", "--", *paths]
        output = self._run(args).stdout
        return [parse_commit(record) for record in output.split("\0") if record.strip()]

    def changed_paths(self, old: str, new: str) -> list[str] | None:
        """The paths that differ between commits ``old`` and ``new`` (no rename
        detection: a rename lists both paths); None when git cannot tell (an unknown
        or pruned commit), which callers must treat as "anything may have changed"."""
        if old == new:
            return []
        if not (SHA.fullmatch(old) and SHA.fullmatch(new)):
            return None
        diff = self._run(["diff", "--no-renames", "--name-only", "-z", old, new], check=False)
        if diff.status != 0:
            return None
        return [path for path in diff.stdout.split("\0") if path]

    def last_commit_time(self, path: str) -> datetime | None:
        """When ``path`` was last changed on this branch (committer date), or None."""
        commits = self.log(paths=[path], max_count=1)
        return commits[0].when if commits else None

    # -- sync internals ------------------------------------------------------------

    def _remove_stale_state(self) -> None:
        """Delete what a killed git process leaves behind in ``.git``.

        Lock files are removed unconditionally: the work tree belongs to this
        process and passes never overlap, so no live git process can hold them.
        """
        git_dir = self.root / ".git"
        if not git_dir.is_dir():
            return
        for lock in [*git_dir.glob("*.lock"), *git_dir.glob("refs/**/*.lock")]:
            log.warning("removing stale git lock %s", lock)
            lock.unlink(missing_ok=True)
        for state in ("rebase-merge", "rebase-apply"):
            shutil.rmtree(git_dir / state, ignore_errors=True)

    def _is_clone_of_url(self) -> bool:
        """Read from ``.git/config`` without a git process. (An enclosing repository
        is never found instead of a damaged one: every git process runs with
        ``GIT_CEILING_DIRECTORIES`` set to the work tree's parent.)"""
        git_dir = self.root / ".git"
        if not git_dir.is_dir() or git_dir.is_symlink():
            return False
        try:
            reader = git.GitConfigParser(str(git_dir / "config"), read_only=True)
            origin = reader.get_value('remote "origin"', "url", default="")
        except Exception:  # any damage to the config means "re-clone"
            return False
        return str(origin) == self.url

    def _tracking_sha(self) -> str:
        """The fetched commit (what HEAD is after a sync), read from the ref files;
        "" when it cannot be read that way."""
        return self._ref_sha(f"refs/remotes/origin/{self.branch}")

    def _on_branch_at(self, sha: str) -> bool:
        """Whether HEAD is the branch and the branch is at ``sha`` (from the files)."""
        try:
            head = (self.root / ".git" / "HEAD").read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            return False
        return (
            head == f"ref: refs/heads/{self.branch}\n"
            and self._ref_sha(f"refs/heads/{self.branch}") == sha
        )

    def _ref_sha(self, ref: str) -> str:
        """The sha of ``ref`` from the loose ref file or packed-refs; "" if unreadable."""
        git_dir = self.root / ".git"
        try:
            loose = (git_dir / ref).read_text(encoding="ascii").strip()
            if SHA.fullmatch(loose):
                return loose
        except (OSError, UnicodeDecodeError):
            pass
        try:
            packed = (git_dir / "packed-refs").read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            return ""
        for line in packed.splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and SHA.fullmatch(sha):
                return sha
        return ""

    def _has_untracked(self) -> bool:
        """After ``checkout --force`` every index entry is in the work tree, so the
        tree holds untracked files exactly when it has more entries than the index
        (whose header counts them). Saves a ``git clean`` process on a clean tree;
        any doubt (unreadable index, split index, submodules) answers True."""
        try:
            with open(self.root / ".git" / "index", "rb") as index:
                header = index.read(12)
        except OSError:
            return True
        if len(header) < 12 or header[:4] != b"DIRC":
            return True
        tracked = int.from_bytes(header[8:12], "big")
        found = 0
        for here, dirs, files in os.walk(self.root):
            if here == str(self.root):
                dirs[:] = [d for d in dirs if d != ".git"]
            links = [d for d in dirs if os.path.islink(os.path.join(here, d))]
            found += len(files) + len(links)
            if found > tracked:
                return True
        return found != tracked

    def _recreate(self, reason: str) -> None:
        """Empty ``root`` (kept itself: it may be a mount point) and init a fresh repo."""
        log.info("creating a fresh clone of %s in %s: %s", scrub(self.url), self.root, reason)
        self._git.clear_cache()
        self.root.mkdir(parents=True, exist_ok=True)
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        self._run(["init", "--quiet", f"--initial-branch={self.branch}", str(self.root)])
        self._run(["remote", "add", "-t", self.branch, "origin", self.url])

    def _update_from_remote(self, clean_at: str = "") -> None:
        tracking = f"refs/remotes/origin/{self.branch}"
        fetch = self._run(
            ["fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{self.branch}:{tracking}"],
            check=False,
            remote=True,
        )
        if fetch.status != 0:
            message = fetch.stderr.strip()
            if MISSING_REMOTE_BRANCH in message:
                self._start_unborn_branch(tracking)
                return
            error = self._error("fetch", message)
            if any(marker in message.lower() for marker in REMOTE_FAILURE_MARKERS):
                raise error
            raise _LocalDamage(str(error))
        if clean_at and self._tracking_sha() == clean_at and self._on_branch_at(clean_at):
            return  # the remote did not move and nothing touched the tree (see sync)
        # checkout --force -B already resets the branch, index and tracked files to the
        # remote (a separate reset --hard would scan the whole tree again); clean
        # removes what a killed pass left untracked, and runs only when there is any:
        # a steady sync is two git processes, fetch and checkout.
        checkout = ["checkout", "--quiet", "--force", "--no-track", "-B", self.branch, tracking]
        result = self._run(checkout, check=False)
        if result.status != 0:
            raise _LocalDamage(str(self._error("checkout", result.stderr)))
        if self._has_untracked():
            result = self._run(["clean", "-ffdxq"], check=False)
            if result.status != 0:
                raise _LocalDamage(str(self._error("clean", result.stderr)))

    def _start_unborn_branch(self, tracking: str) -> None:
        """The remote has no such branch: make an empty branch whose first commit creates it."""
        steps = (
            ["update-ref", "-d", tracking],
            ["symbolic-ref", "HEAD", f"refs/heads/{self.branch}"],
            ["update-ref", "-d", f"refs/heads/{self.branch}"],
            ["read-tree", "--empty"],
            ["clean", "-ffdxq"],
        )
        for step in steps:
            result = self._run(step, check=False)
            if result.status != 0:
                raise _LocalDamage(str(self._error(step[0], result.stderr)))

    # -- push internals ------------------------------------------------------------

    def _push(self, refspec: str, lease: tuple[str, str] | None) -> None:
        args = ["push", "--porcelain", "--no-verify"]
        if lease is not None:
            ref, expected = lease
            args.append(f"--force-with-lease={ref}:{expected}")
        result = self._run([*args, "origin", refspec], check=False, remote=True)
        rejected = [
            line.split("\t")[-1] for line in result.stdout.splitlines() if line.startswith("!\t")
        ]
        if result.status == 0 and not rejected:
            return
        summary = "; ".join(rejected)
        if any(
            marker in summary.lower() for marker in RACE_REJECTION_MARKERS
        ) or LOST_REF_UPDATE_RACE.search(result.stderr):
            raise PushRejected(
                self._scrub(f"push to {refspec.split(':', 1)[1]} rejected: {summary}")
            )
        details = "\n".join(part for part in (summary, result.stderr.strip()) if part)
        raise self._error("push", details)

    # -- running git ---------------------------------------------------------------

    def _run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        remote: bool = False,
        stdin: bytes | None = None,
        sign: bool = False,
    ) -> _GitResult:
        """Run ``git <args>`` in ``root``; raise ``GitError`` on failure when ``check``.

        ``remote`` marks commands that talk to the remote and so need credentials;
        ``stdin`` is fed to the process (from an unnamed temporary file, so any size
        works without a pipe deadlock); ``sign`` marks commands that make commits.
        """
        env, config, secrets = self._environment(remote)
        settings = list(_COMMAND_CONFIG)
        signer = self._signing() if sign else None
        if signer is not None:
            settings = [s for s in settings if not s.startswith("commit.gpgSign")]
            settings += signer.settings
            env.update(signer.env)
        settings += config
        command = ["git"]
        for setting in settings:
            command += ["-c", setting]
        command += args
        try:
            if stdin is None:
                status, stdout, stderr = self._execute(command, env, None)
            else:
                with tempfile.TemporaryFile() as feed:
                    feed.write(stdin)
                    feed.seek(0)
                    status, stdout, stderr = self._execute(command, env, feed)
        except git.GitCommandNotFound as err:
            raise GitError("the git executable was not found") from err
        result = _GitResult(int(status), str(stdout), str(stderr))
        if check and result.status != 0:
            raise self._error(args[0], result.stderr, secrets)
        return result

    def _execute(
        self, command: list[str], env: dict[str, str], stdin: BinaryIO | None
    ) -> tuple[int, str, str]:
        status, stdout, stderr = self._git.execute(
            command,
            istream=stdin,
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=self._timeout,
            env=env,
        )
        return int(status), str(stdout), str(stderr)

    def _signing(self) -> Signer | None:
        """The commit signer from the settings (read now: keys rotate)."""
        self._signer = signer_from_settings(self._settings, self._gnupg_home, self._signer)
        return self._signer

    def _committer(self) -> tuple[str, str]:
        name = self._settings.get(_ENV_COMMITTER_NAME)
        email = self._settings.get(_ENV_COMMITTER_EMAIL)
        if name and email:
            return name, email
        return self.committer or self._author

    def _environment(self, remote: bool) -> tuple[dict[str, str], list[str], list[str]]:
        """The extra environment of one git process, its extra ``-c`` settings, and
        the secrets it carries."""
        name, email = self._author
        committer_name, committer_email = self._committer()
        # Without credentials of our own, the operator's credential helper or askpass
        # (if any) is used; GIT_TERMINAL_PROMPT=0 makes a missing credential fail
        # at once instead of waiting for a terminal that a daemon does not have.
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            # Never find an enclosing repository when ours is damaged (and reset that).
            "GIT_CEILING_DIRECTORIES": str(self.root.parent),
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": committer_name,
            "GIT_COMMITTER_EMAIL": committer_email,
        }
        if not remote:
            return env, [], []
        auth = self._credentials.for_remote()
        env.update(auth.env)
        return env, auth.config, auth.secrets

    # -- messages ------------------------------------------------------------------

    def _scrub(self, text: str, secrets: Iterable[str] = ()) -> str:
        return scrub(text, [*secrets, *self._credentials.secrets])

    def _error(self, operation: str, stderr: str, secrets: Iterable[str] = ()) -> GitError:
        message = stderr.strip() or "no output"
        return GitError(self._scrub(f"git {operation} failed ({self.url}): {message}", secrets))

    def _check_branch_name(self, branch: str) -> None:
        result = self._run(["check-ref-format", "--branch", branch], check=False)
        if result.status != 0 or branch.startswith("-"):
            raise ValueError(f"not a valid branch name: {branch!r}")


def _local_git_dir(url: str) -> Path | None:
    """The git dir of a repository on this machine (a path or file:// URL), else None."""
    if "://" in url and not url.startswith("file://"):
        return None
    path = Path(url.removeprefix("file://"))
    git_dir = path / ".git" if (path / ".git").is_dir() else path
    if not (git_dir / "HEAD").is_file() or not (git_dir / "refs" / "heads").is_dir():
        return None
    return git_dir


def local_branch_files(url: str, branch: str) -> list[str]:
    """For a repository on this machine (e.g. a mounted volume): the files git rewrites
    when ``branch`` moves, to be watched. Empty for remote URLs."""
    git_dir = _local_git_dir(url)
    if git_dir is None:
        return []
    return [str(git_dir / "refs" / "heads" / branch), str(git_dir / "packed-refs")]


def local_branch_head(url: str, branch: str) -> str:
    """The sha ``branch`` points at in a repository on this machine; "" if unknown."""
    git_dir = _local_git_dir(url)
    if git_dir is None:
        return ""
    try:
        sha = git.Git().execute(
            [
                "git",
                "--git-dir",
                str(git_dir),
                "rev-parse",
                "--verify",
                "-q",
                f"refs/heads/{branch}",
            ]
        )
    except git.GitCommandError:
        return ""
    return str(sha).strip()
