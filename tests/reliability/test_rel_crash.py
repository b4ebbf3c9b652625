"""Crash anywhere: a pass SIGKILLed at any step never loses, duplicates or half-writes a release.

Each iteration pushes new tags, runs ``reconciler once`` that dies (at a named step via
``RECONCILER_TEST_HOOK``, during a push by the remote's hooks, or SIGKILLed by the test
after a random delay, which also hits fetches, commits and pushes in flight), then
restarts it normally in the same work dir.
The restart must succeed and the remote must satisfy every invariant of
``support.remote_violations``; the newest pushed tags must be released (nothing lost).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter

from reconciler import yamlio
from tests.helpers.configrepo import AppSpec, config_files
from tests.reliability.support import once, remote_violations, scaled

HOOKS = (
    "after-sync",
    "after-poll",
    "after-write",
    "after-commit",
    "during-push-lost",
    "during-push-landed",
    "after-push",
)
# During a push: a hook of the remote SIGKILLs the whole process group of the
# reconciler (its git client included): pre-receive before the update (the push never
# lands), or post-receive after it (it lands, but the reconciler never hears so).
KILL_GROUP = """\
[ "$RECONCILER_TEST_PUSH_KILL" = {when} ] && kill -9 -"$(awk '{{print $5}}' /proc/$$/stat)"
exit 0"""


def test_crash_anywhere(registry, bare_remote, tmp_path):
    ns = f"crash{uuid.uuid4().hex[:8]}"
    apps = [
        AppSpec("api", f"{ns}/api", "example.com/crash/api"),
        AppSpec("web", f"{ns}/web", "example.com/crash/web"),
    ]
    for app in apps:
        registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=config_files(registry.url, apps))
    remote.install_hook("pre-receive", KILL_GROUP.format(when="lost"))
    remote.install_hook("post-receive", KILL_GROUP.format(when="landed"))
    work = tmp_path / "work"
    rng = random.Random(20240611)  # reproducible schedule; the kill timing still varies
    iterations = scaled(20, 300)
    violations: list[str] = []
    durations: list[float] = []
    hook_kills = random_kills = finished_before_kill = 0
    push_kills: Counter[tuple[str, bool]] = Counter()
    latest = {"api": "1.0.0", "web": "1.0.0"}

    for i in range(1, iterations + 1):
        latest["api"] = f"1.{i}.0"
        registry.push(apps[0].repository, latest["api"])
        if rng.random() < 0.4:  # sometimes a release changes two packages at once
            latest["web"] = f"1.{i}.0"
            registry.push(apps[1].repository, latest["web"])

        if i % 3:  # two thirds at a named step, one third at a random moment
            hook = HOOKS[i % len(HOOKS)]
            if hook.startswith("during-push-"):
                env = {"RECONCILER_TEST_PUSH_KILL": hook.removeprefix("during-push-")}
            else:
                env = {"RECONCILER_TEST_HOOK": hook}
            before = remote.head()
            crashed = once(remote.url, work, env=env)
            if hook.startswith("during-push-") and crashed.returncode == -9:
                # landed: the remote moved although the reconciler died in its push
                push_kills[hook, remote.head() != before] += 1
            if crashed.returncode != -9 and "push" not in hook:
                # push steps are skipped on a pass with nothing to push; others always run
                violations.append(f"iteration {i}: hook {hook} did not kill: {crashed.output}")
            hook_kills += crashed.returncode == -9
        else:
            # typical pass ~0.6-1 s here; kill anywhere within it
            delay = rng.uniform(0.05, max(durations[-5:] or [1.0]) * 1.1)
            crashed = once(remote.url, work, kill_after=delay)
            random_kills += crashed.killed
            finished_before_kill += not crashed.killed

        restart = once(remote.url, work, "--json")
        durations.append(restart.duration)
        if restart.returncode != 0:
            violations.append(f"iteration {i}: restart exit {restart.returncode}: {restart.output}")
            continue
        problems = remote_violations(remote, "shop", apps)
        violations += [f"iteration {i}: {p}" for p in problems]
        # nothing lost: the channel's newest release holds the newest tags
        state = yamlio.load_one(remote.show("state/shop.yaml"))
        newest = yamlio.load_one(remote.show(f"releases/shop/{state['channels']['stable']}.yaml"))
        held = {k: str(v["version"]) for k, v in newest["packages"].items()}
        if held != latest:
            violations.append(f"iteration {i}: newest release holds {held}, pushed {latest}")

    releases = len([f for f in remote.files() if f.startswith("releases/shop/")])
    print(
        f"crash-anywhere: iterations={iterations} hook_kills={hook_kills} "
        f"random_kills={random_kills} finished_before_kill={finished_before_kill} "
        f"push_kills_lost={push_kills['during-push-lost', False]} "
        f"push_kills_landed={push_kills['during-push-landed', True]} "
        f"releases={releases} violations={len(violations)}"
    )
    assert push_kills["during-push-lost", False] and push_kills["during-push-landed", True]
    assert not push_kills["during-push-lost", True]  # the kill came before the update
    assert violations == [], "\n".join(violations[:20])
    assert releases == iterations  # one release per iteration: none lost, none doubled
