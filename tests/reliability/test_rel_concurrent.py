"""Concurrent writers: three reconcilers and a human pushing to one remote at once.

Each round pushes new tags, then starts three ``reconciler once`` processes (own work
dirs) together while a thread keeps committing ``docs/*.md`` as a person would. A
``post-receive`` hook logs every accepted ref update, so a force-push (an update whose
old value is not an ancestor of its new one) cannot go unnoticed.
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reconciler import yamlio
from tests.helpers.configrepo import AppSpec, config_files
from tests.helpers.gitserver import BareRemote, run_git
from tests.reliability.support import (
    SOAK,
    once,
    release_trailers,
    remote_violations,
    scaled,
)

WRITERS = 3
ZERO = "0" * 40
HUMAN_PAUSE = float(os.environ.get("RECONCILER_TEST_HUMAN_PAUSE", "1.0"))


class Human:
    """Commits docs/human-N.md from its own clone until stopped; retries rejected pushes."""

    def __init__(self, remote: BareRemote, clone: Path) -> None:
        self.remote = remote
        self.clone = clone
        self.shas: list[str] = []
        self.rejections = 0
        self.stop = threading.Event()
        run_git("clone", "--quiet", str(remote.path), str(clone))

    def commit_once(self) -> None:
        n = len(self.shas)
        for _ in range(20):  # bounded: a push loses a race at most this often
            run_git("fetch", "--quiet", "origin", cwd=self.clone)
            run_git("reset", "--quiet", "--hard", "origin/main", cwd=self.clone)
            (self.clone / "docs").mkdir(exist_ok=True)
            (self.clone / "docs" / f"human-{n}.md").write_text(f"note {n}\n")
            run_git("add", "--all", cwd=self.clone)
            run_git("commit", "--quiet", "-m", f"docs: note {n}", cwd=self.clone)
            try:
                run_git("push", "--quiet", "origin", "HEAD:main", cwd=self.clone)
            except AssertionError:  # rejected: someone pushed first
                self.rejections += 1
                continue
            self.shas.append(run_git("rev-parse", "HEAD", cwd=self.clone))
            return
        raise AssertionError("human push rejected 20 times in a row")

    def run(self) -> None:
        while not self.stop.is_set():
            self.commit_once()
            # A busy teammate (a push a second), not a flood: a writer faster than
            # a pass's sync-commit-push cycle (~0.3 s) starves passes (docs/reliability.md).
            self.stop.wait(HUMAN_PAUSE)


def is_ancestor(remote: BareRemote, old: str, new: str) -> bool:
    try:
        run_git("--git-dir", str(remote.path), "merge-base", "--is-ancestor", old, new)
    except AssertionError:
        return False
    return True


def test_concurrent_writers(registry, bare_remote, tmp_path):
    ns = f"conc{uuid.uuid4().hex[:8]}"
    apps = [
        AppSpec("api", f"{ns}/api", "example.com/conc/api"),
        AppSpec("web", f"{ns}/web", "example.com/conc/web"),
    ]
    registry.push(apps[1].repository, "1.0.0")
    remote = bare_remote(seed=config_files(registry.url, apps))
    updates = tmp_path / "updates.log"
    # post-receive runs only for accepted updates: "<old> <new> <ref>" per line
    remote.install_hook("post-receive", f"cat >> '{updates}'")
    human = Human(remote, tmp_path / "human")
    rounds = scaled(6, 40)
    violations: list[str] = []
    attempts: list[int] = []
    exits: list[int] = []
    starved = 0
    latest = {"api": "", "web": "1.0.0"}

    thread = threading.Thread(target=human.run, daemon=True)
    thread.start()
    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            for r in range(1, rounds + 1):
                latest["api"] = f"1.{r}.0"
                registry.push(apps[0].repository, latest["api"])
                if r % 2 == 0:
                    latest["web"] = f"1.{r}.0"
                    registry.push(apps[1].repository, latest["web"])
                runs = list(
                    pool.map(
                        lambda w: once(remote.url, tmp_path / f"work{w}", "--json"),
                        range(WRITERS),
                    )
                )
                for run in runs:
                    exits.append(run.returncode)
                    if run.returncode == 4 and "push still rejected" in run.output:
                        starved += 1  # liveness, not safety: the next pass catches up
                        continue
                    if run.returncode != 0:
                        violations.append(f"round {r}: exit {run.returncode}: {run.output[-800:]}")
                        continue
                    text = run.stdout
                    attempts.append(int(text.split('"pushAttempts": ')[1].split(",")[0]))
                violations += [f"round {r}: {p}" for p in remote_violations(remote, "shop", apps)]
    finally:
        human.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()

    # a final quiet pass settles everything: the newest tags are released once
    final = once(remote.url, tmp_path / "work0", "--json")
    assert final.returncode == 0, final.output
    violations += remote_violations(remote, "shop", apps)
    trailers = release_trailers(remote)
    releases = sum(1 for k in trailers if k.startswith("shop "))
    # At most one release per round (one new api tag each); fewer only when every
    # writer of a round was starved and the next round released both tags at once.
    if releases > rounds or (not starved and releases != rounds):
        violations.append(f"{releases} releases for {rounds} rounds ({starved} starved passes)")
    state = yamlio.load_one(remote.show("state/shop.yaml"))
    newest = yamlio.load_one(remote.show(f"releases/shop/{state['channels']['stable']}.yaml"))
    held = {k: str(v["version"]) for k, v in newest["packages"].items()}
    if held != latest:  # nothing lost: the newest tags are released
        violations.append(f"newest release holds {held}, pushed {latest}")

    head = remote.head()
    assert head is not None
    lost = [sha for sha in human.shas if not is_ancestor(remote, sha, head)]
    violations += [f"human commit {sha} lost" for sha in lost]
    forced = 0
    lines = updates.read_text().splitlines()
    for line in lines:
        old, new, ref = line.split()
        if ref == "refs/heads/main" and old != ZERO and not is_ancestor(remote, old, new):
            forced += 1
            violations.append(f"force-push {old[:10]} -> {new[:10]}")

    retries = sum(a - 1 for a in attempts)
    print(
        f"concurrent-writers: rounds={rounds} writers={WRITERS} passes={len(exits)} "
        f"ref_updates={len(lines)} human_commits={len(human.shas)} "
        f"human_push_rejections={human.rejections} push_retries={retries} "
        f"max_push_attempts={max(attempts, default=0)} starved_passes={starved} "
        f"releases={releases} "
        f"forced_updates={forced} violations={len(violations)}" + (" (soak)" if SOAK else "")
    )
    assert violations == [], "\n".join(violations[:20])
    assert human.shas, "the human thread never committed"
