"""Shared helpers for the benchmarks: a seeded registry, config repos, timed processes.

Everything runs on loopback: the Debian ``docker-registry`` on 127.0.0.1 port 0, bare
Git remotes over file://, and the reconciler CLI as a whole process (as users run it).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python3 bench/fleet.py` puts bench/ first, not the root
    sys.path.insert(0, str(REPO_ROOT))

from reconciler.feeds.oci import MANIFEST_ACCEPT  # noqa: E402
from tests.helpers.configrepo import AppSpec, config_files  # noqa: E402
from tests.helpers.registry import RegistryServer, start_registry  # noqa: E402

RESULTS_DIR = REPO_ROOT / "bench" / "results"
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def precompile() -> None:
    """Write the package's bytecode, as `pip install` does for a deployed copy; without
    it (editable installs under PYTHONDONTWRITEBYTECODE) every measured process would
    compile ~50 modules first."""
    import compileall

    compileall.compile_dir(str(REPO_ROOT / "reconciler"), quiet=1)


def log(message: str) -> None:
    sys.stdout.flush()  # keep the order of progress lines and the table when both go to a file
    print(message, file=sys.stderr, flush=True)


# -- registry --------------------------------------------------------------------


def open_registry(workdir: Path, tags: int = 100_000) -> RegistryServer:
    """The real docker-registry on 127.0.0.1 (port 0), as the integration tests use it.

    Its storage goes to memory (/dev/shm) when there is room: this machine's virtual
    disk is slow to create and delete a million small files, tmpfs is not. The registry
    reads tag lists from its page cache either way once seeded, and the floor asks the
    same server, so ratios do not depend on where it keeps them.
    """
    return start_registry(registry_storage(workdir, inodes_needed=tags + 100_000))


def registry_storage(workdir: Path, inodes_needed: int) -> Path:
    """A scratch directory in /dev/shm if it has ``inodes_needed`` free, else ``workdir``
    (a seeded tag takes one: a symlink; see ``seed_repository``). The caller removes it
    (``remove_registry_storage``)."""
    shm = Path("/dev/shm")  # memory-backed scratch, removed after the run
    try:
        stats = os.statvfs(shm)
        if stats.f_favail >= inodes_needed and os.access(shm, os.W_OK):
            return Path(tempfile.mkdtemp(prefix="bench-registry-", dir=shm))
    except OSError:
        pass
    return workdir


def remove_registry_storage(server: RegistryServer) -> None:
    if server.root.parent == Path("/dev/shm"):
        shutil.rmtree(server.root, ignore_errors=True)


def fleet_tags(index: int, count: int) -> list[str]:
    """``count`` realistic tags for repository ``index``: mostly stable semver, some
    release candidates, commit-sha and moving tags. Deterministic per index."""
    rng = random.Random(index)
    tags: list[str] = ["latest"]
    minor, patch = 0, 0
    while len(tags) < count:
        roll = rng.random()
        if roll < 0.70:
            patch += 1
            if rng.random() < 0.1:
                minor, patch = minor + 1, 0
            tags.append(f"1.{minor}.{patch}")
        elif roll < 0.85:
            tags.append(f"1.{minor}.{patch + 1}-rc.{rng.randint(1, 9)}")
        else:
            tags.append(f"sha-{rng.getrandbits(40):010x}")
    return list(dict.fromkeys(tags))[:count]


def newest_stable(tags: Iterable[str]) -> str:
    """What a `>=1.0.0, no prerelease` rule picks from ``fleet_tags`` output."""
    stable = [t for t in tags if t[:1].isdigit() and "-" not in t]
    return max(stable, key=lambda t: tuple(int(x) for x in t.split(".")))


def _storage_repo(server: RegistryServer, repo: str) -> Path:
    return server.root / "data" / "docker" / "registry" / "v2" / "repositories" / repo


def seed_repository(server: RegistryServer, repo: str, tags: Sequence[str]) -> str:
    """Push ``tags[0]`` over HTTP, then tag the same manifest as every other tag.

    Extra tags are written straight into the registry's filesystem storage. A manifest
    PUT writes ``_manifests/tags/<tag>/current/link`` (the manifest's digest) and an
    ``index/`` link that serves only deletes by digest, which the benchmarks never make;
    tags/list reads the names in ``_manifests/tags`` and a manifest GET/HEAD by tag reads
    ``current/link``. So each extra tag is one symlink ``_manifests/tags/<tag>`` to a
    directory holding ``current/link`` for the digest: the server follows it like any
    path, and a million tags cost a million inodes (tmpfs counts every inode, and
    /dev/shm has 3M here) and minutes instead of hours over HTTP. The server still
    answers every request itself (distribution keeps no tag cache unless configured
    to). Returns the digest.
    """
    digest = push_image(server, repo, tags[0])
    add_tags(server, repo, tags[1:], digest)
    return digest


def add_tags(server: RegistryServer, repo: str, tags: Iterable[str], digest: str) -> None:
    """Tag the stored manifest ``digest`` of ``repo`` as each of ``tags`` (see above)."""
    tags_dir = _storage_repo(server, repo) / "_manifests" / "tags"
    target = server.root / "seed-tags" / digest.replace(":", "-")  # outside the storage tree
    if not target.exists():
        (target / "current").mkdir(parents=True, exist_ok=True)
        (target / "current" / "link").write_text(digest)
    for tag in tags:
        os.symlink(target, tags_dir / tag, target_is_directory=True)


def push_image(server: RegistryServer, repo: str, tag: str, attempts: int = 3) -> str:
    """``server.push`` that survives a dropped connection (a loaded machine's loopback
    registry now and then closes one mid-upload); the push is idempotent."""
    for attempt in range(1, attempts + 1):
        try:
            return server.push(repo, tag)
        except httpx.TransportError:
            if attempt == attempts:
                raise
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def seed_fleet(
    server: RegistryServer, repos: dict[str, list[str]], workers: int = 8
) -> dict[str, str]:
    """Seed every repository; returns repository -> the digest all its tags point at."""
    with ThreadPoolExecutor(workers) as pool:
        digests = pool.map(lambda item: seed_repository(server, *item), repos.items())
        return dict(zip(repos, digests, strict=True))


# -- config repositories ---------------------------------------------------------


@dataclass
class Fleet:
    """A config repo of ``projects`` projects, each with images from ``repositories``."""

    feed_url: str
    projects: dict[str, list[AppSpec]] = field(default_factory=dict)
    concurrency: int = 8

    def files(self) -> dict[str, str]:
        files: dict[str, str] = {}
        feed_extra = f"insecure: true\nlimits:\n  concurrency: {self.concurrency}\n"
        for name, apps in self.projects.items():
            files.update(config_files(self.feed_url, apps, project=name, feed_extra=feed_extra))
        return files

    def repository_of(self, project: str, package: str) -> str:
        return next(a.repository for a in self.projects[project] if a.package == package)


def make_fleet(
    feed_url: str,
    repositories: Sequence[str],
    projects: int,
    images_per_project: int = 2,
    concurrency: int = 8,
) -> Fleet:
    """Projects ``p000..`` whose packages use the repositories round-robin."""
    fleet = Fleet(feed_url, concurrency=concurrency)
    slot = 0
    for p in range(projects):
        apps = []
        for i in range(images_per_project):
            repository = repositories[slot % len(repositories)]
            slot += 1
            apps.append(AppSpec(f"img{i}", repository, f"example.com/{repository}"))
        fleet.projects[f"p{p:03d}"] = apps
    return fleet


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def make_remote(path: Path, files: dict[str, str], scratch: Path) -> str:
    """A bare remote at ``path`` whose main branch holds ``files``; returns its file:// URL."""
    git("init", "--quiet", "--bare", "--initial-branch=main", str(path))
    seed = scratch / "seed"
    git("init", "--quiet", "--initial-branch=main", str(seed))
    write_files(seed, files)
    git("add", "--all", cwd=seed)
    git("commit", "--quiet", "-m", "seed", cwd=seed)
    git("push", "--quiet", str(path), "main", cwd=seed)
    shutil.rmtree(seed)
    return path.resolve().as_uri()


def remote_head(path: Path) -> str:
    return git("--git-dir", str(path), "rev-parse", "main").strip()


def commit_to_remote(remote: Path, files: dict[str, str], message: str, scratch: Path) -> None:
    """A person's commit: clone, write ``files``, commit, push, throw the clone away."""
    clone = Path(tempfile.mkdtemp(dir=scratch))
    git("clone", "--quiet", str(remote), str(clone))
    write_files(clone, files)
    git("add", "--all", cwd=clone)
    git("commit", "--quiet", "-m", message, cwd=clone)
    git("push", "--quiet", "origin", "main", cwd=clone)
    shutil.rmtree(clone)


# -- timing ----------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    maxrss_mb: float
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        start = self.stdout.find("{")
        if start < 0:
            raise RuntimeError(
                f"no JSON in output (exit {self.returncode}):\n{self.stderr[-2000:]}"
            )
        return json.loads(self.stdout[start:])


def run_process(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 900.0,
) -> Run:
    """Run a whole process; wall time and ITS peak RSS (os.wait4 gives per-child rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(args),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, **GIT_ENV, **(env or {})},
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not reap it again
        out.seek(0)
        err.seek(0)
        return Run(
            seconds=seconds,
            maxrss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def reconciler_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli", *args]


def median_of(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def timed(func: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Median wall time of ``func`` over ``repeat`` calls, and its last result."""
    samples = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = func()
        samples.append(time.perf_counter() - started)
    return median_of(samples), result


def python_startup(repeat: int = 5) -> float:
    """A bare interpreter start (site, .pth files): the part of any CLI run that is not work."""
    return median_of([run_process([sys.executable, "-c", "pass"]).seconds for _ in range(repeat)])


# -- the floor: the same network work with a plain client --------------------------


def _in_parallel(
    base_url: str,
    items: Sequence[Any],
    concurrency: int,
    request: Callable[[httpx.Client, Any], Any],
) -> list[Any]:
    """``request(client, item)`` for every item, ``concurrency`` at a time on one
    keep-alive client, as the reconciler polls. A dropped connection is retried once: on
    this loaded machine the pool now and then lost a socket mid-read (EBADF)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=base_url, limits=limits, timeout=30) as client:

        def one(item: Any) -> Any:
            try:
                return request(client, item)
            except httpx.TransportError:
                return request(client, item)

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, items))


def list_all_tags(base_url: str, repositories: Sequence[str], concurrency: int) -> dict[str, list]:
    """Every repository's tags/list with plain httpx at ``concurrency`` parallel requests."""

    def one(client: httpx.Client, repo: str) -> tuple[str, list]:
        response = client.get(f"/v2/{repo}/tags/list", headers={"Accept": "application/json"})
        response.raise_for_status()
        return repo, response.json().get("tags") or []

    return dict(_in_parallel(base_url, repositories, concurrency, one))


def head_manifests(base_url: str, refs: Sequence[tuple[str, str]], concurrency: int) -> int:
    """One manifest HEAD per (repository, tag), as digest resolution needs."""

    def one(client: httpx.Client, ref: tuple[str, str]) -> int:
        repo, tag = ref
        response = client.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
        response.raise_for_status()
        return 1

    return sum(_in_parallel(base_url, refs, concurrency, one))


def write_json_result(name: str, document: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- the sidecar: `reconciler run` as a long-running process ----------------------

_PASS_LINE = re.compile(
    r"^pass (?P<outcome>\w+) in [\d.]+s: (?P<releases>\d+) release\(s\), "
    r"(?P<promotions>\d+) promotion\(s\), (?P<errors>\d+) error\(s\)$"
)


@dataclass(frozen=True)
class PassSample:
    """One pass of a sidecar, as the process itself reported it."""

    seconds: float  # reconciler_pass_duration_seconds: the loop's own timing of the pass
    outcome: str  # ok / partial / failed / crashed
    releases: int
    promotions: int
    push_retries: float  # reconciler_git_push_retries_total during this pass
    rebases: int = 0  # of which: rebased over unrelated commits and pushed again (log)
    replans: int = 0  # of which: the remote moved under our files, the pass re-planned


def prometheus_totals(text: str) -> dict[str, float]:
    """metric name -> value, summed over label sets (``# HELP``/``# TYPE`` skipped)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


class Sidecar:
    """``reconciler run`` as a pod runs it, one pass at a time on the benchmark's cue.

    The interval is a day, so passes start only when the benchmark posts a GitLab push
    webhook: a full pass, the same as the interval's (sync, load, poll every project),
    and never overlapping the floor measured between passes. A pass's end is read from
    its log line (no polling of the process, which would compete with the pass for
    the GIL), its duration and push retries from the process's own /metrics.
    """

    SECRET = "bench-webhook-secret"  # a throwaway loopback secret

    def __init__(
        self,
        remote_url: str,
        work: Path,
        log_path: Path,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self._log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            reconciler_cli(
                "run",
                "--repo",
                remote_url,
                "--work-dir",
                str(work),
                "--interval",
                "86400",
                "--jitter",
                "0",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                "info",
                *extra,
            ),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={
                **os.environ,
                **GIT_ENV,
                "RECONCILER_WEBHOOK_SECRET_GITLAB": self.SECRET,
                **(env or {}),
            },
        )
        self._lines_read = 0
        self._pending: list[dict[str, Any]] = []  # log records read but not yet consumed
        self._totals: dict[str, float] = {}
        self.url = self._wait_for_url()
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _log_records(self) -> list[dict[str, Any]]:
        """Log records not read before (the process writes whole lines)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        complete = lines[self._lines_read :]
        if complete and not self.log_path.read_bytes().endswith(b"\n"):
            complete = complete[:-1]
        self._lines_read += len(complete)
        records = []
        for line in complete:
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"msg": line})
        return records

    def _wait_for_url(self, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self._log_records():
                match = re.match(r"serving on (\S+?),", record.get("msg", ""))
                if match:
                    return match.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"reconciler run did not start:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def metrics(self) -> dict[str, float]:
        response = self.client.get("/metrics")
        response.raise_for_status()
        return prometheus_totals(response.text)

    def trigger(self) -> None:
        """A GitLab push webhook: the loop runs one full pass."""
        body = {
            "object_kind": "push",
            "ref": "refs/heads/main",
            "after": os.urandom(20).hex(),
            "project": {"path_with_namespace": "bench/config"},
        }
        response = self.client.post(
            "/hooks/gitlab",
            json=body,
            headers={"X-Gitlab-Token": self.SECRET, "X-Gitlab-Event-UUID": os.urandom(16).hex()},
        )
        if response.status_code != 202:
            raise RuntimeError(f"webhook refused: {response.status_code} {response.text}")

    def wait_pass(self, timeout: float = 1800.0) -> PassSample:
        """The next pass's end (a pass in progress or queued counts)."""
        deadline = time.monotonic() + timeout
        rebases = replans = 0
        while time.monotonic() < deadline:
            self._pending += self._log_records()
            while self._pending:
                message = self._pending.pop(0).get("msg", "")
                if message.startswith("pass crashed"):
                    raise RuntimeError(f"the sidecar's pass crashed:\n{self.log_tail()}")
                # publish.py's two retries: rebased over unrelated commits, or re-planned
                rebases += message.startswith("push rejected by unrelated commits")
                replans += message.startswith("push rejected (remote moved)")
                match = _PASS_LINE.match(message)
                if match:
                    return self._sample(match, rebases, replans)
            if self.process.poll() is not None:
                raise RuntimeError(f"reconciler run exited:\n{self.log_tail()}")
            time.sleep(0.02)
        raise RuntimeError(f"no pass ended within {timeout:.0f} s:\n{self.log_tail()}")

    def _sample(self, match: re.Match[str], rebases: int, replans: int) -> PassSample:
        totals = self.metrics()

        def delta(name: str) -> float:
            return totals.get(name, 0.0) - self._totals.get(name, 0.0)

        sample = PassSample(
            seconds=delta("reconciler_pass_duration_seconds_sum"),
            outcome=match["outcome"],
            releases=int(match["releases"]),
            promotions=int(match["promotions"]),
            push_retries=delta("reconciler_git_push_retries_total"),
            rebases=rebases,
            replans=replans,
        )
        if delta("reconciler_pass_duration_seconds_count") != 1:
            raise RuntimeError("passes and log lines disagree: a pass ended unseen")
        self._totals = totals
        return sample

    def run_pass(self, timeout: float = 1800.0) -> PassSample:
        self.trigger()
        return self.wait_pass(timeout)

    def peak_rss_mb(self) -> float:
        """The process's peak resident set (VmHWM) so far."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else float("nan")

    def stop(self) -> None:
        """SIGTERM: the loop finishes a pass in progress and exits."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "client"):
            self.client.close()
        self._log_file.close()
