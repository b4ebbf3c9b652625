"""Differential test: our npm range grammar against node-semver itself (issue 15 item 5).

Generated ranges (operators, x-ranges with numbers after a wildcard such as
``1.x.5``, hyphen ranges, ``||``, pre-releases) and versions are judged by
``semver`` from the npm registry, run with the machine's Node.js, and by
``reconciler.ranges.parse_range``: both must agree on which ranges are valid and,
for every valid range, on which versions it contains (npm's pre-release rule).

The npm package is pinned to 7.7.3, the line Renovate and most of npm's history
read ``1.x.5`` as ``1.x`` with; 7.8 refuses operator-less forms like ``1.x.5`` (its
``invalidXRangeOrder``) while still reading ``^1.x.5`` as ``^1.x``, and we keep the
lenient reading. The package is installed into a cache directory by the test
itself (``npm install``); the test is skipped only when Node.js or npm is missing
or the install fails (no registry), never silently passed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.ranges import parse_range
from reconciler.versions import parse_version

NODE_SEMVER = "7.7.3"

JUDGE = r"""
const semver = require('semver');
const {ranges, versions} = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = ranges.map((range) => {
  let parsed;
  try { parsed = new semver.Range(range); } catch (e) { return null; }
  return versions.map((v) => parsed.test(v));
});
process.stdout.write(JSON.stringify({version: require('semver/package.json').version, out}));
"""


@pytest.fixture(scope="module")
def node_semver() -> Path:
    """A directory whose node_modules holds semver@NODE_SEMVER (installed if needed)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are not installed")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    prefix = cache / "reconciler-tests" / f"node-semver-{NODE_SEMVER}"
    manifest = prefix / "node_modules" / "semver" / "package.json"
    if not manifest.is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--no-save",
                f"semver@{NODE_SEMVER}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not manifest.is_file():
            pytest.skip(f"npm could not install semver@{NODE_SEMVER}: {done.stderr[-300:]}")
    return prefix


def _judge(prefix: Path, ranges: list[str], versions: list[str]) -> list[list[bool] | None]:
    done = subprocess.run(
        ["node", "-e", JUDGE],
        input=json.dumps({"ranges": ranges, "versions": versions}),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=prefix,
        env={**os.environ, "NODE_PATH": str(prefix / "node_modules")},
    )
    answer = json.loads(done.stdout)
    assert answer["version"] == NODE_SEMVER
    return list(answer["out"])


def _part(rng: random.Random) -> str:
    return (
        rng.choice(["0", "1", "2", "3", "10", "x", "X", "*"])
        if rng.random() < 0.4
        else str(rng.randint(0, 3))
    )


def _partial(rng: random.Random) -> str:
    count = rng.choice([1, 2, 3, 3, 3])
    text = ".".join(_part(rng) for _ in range(count))
    if count == 3 and rng.random() < 0.3:
        text += "-" + rng.choice(["rc.1", "rc.2", "alpha", "0", "beta.1"])
    return ("v" if rng.random() < 0.05 else "") + text


def _comparator_set(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return f"{_partial(rng)} - {_partial(rng)}"
    ops = ["", "", "=", "<", "<=", ">", ">=", "~", "^", "~>"]
    return " ".join(rng.choice(ops) + _partial(rng) for _ in range(rng.choice([1, 1, 2])))


def _ranges(rng: random.Random, count: int) -> list[str]:
    fixed = ["1.x.5", "2.*.3", "4.*.0 <4.2.5", "^1.x.5", "~2.*.3", "1.2.x-rc.1", "1.x-rc.1"]
    generated = [
        " || ".join(_comparator_set(rng) for _ in range(rng.choice([1, 1, 1, 2])))
        for _ in range(count)
    ]
    return fixed + generated


def _versions(rng: random.Random) -> list[str]:
    out = {"1.5.0", "2.0.3", "4.2.4", "4.2.5", "1.2.0-rc.1", "0.0.0", "3.3.3"}
    while len(out) < 80:
        version = ".".join(str(rng.randint(0, 4)) for _ in range(3))
        if rng.random() < 0.35:
            version += "-" + rng.choice(["rc.0", "rc.1", "rc.2", "alpha", "0", "beta.1"])
        out.add(version)
    return sorted(out)


def _ours(text: str, versions: list[str]) -> list[bool] | None:
    try:
        parsed = parse_range(text)
    except ValueError:
        return None
    answers = []
    for version in versions:
        parsed_version = parse_version(version)
        assert parsed_version is not None
        answers.append(parsed.contains(parsed_version))
    return answers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_npm_ranges_read_as_node_semver_reads_them(node_semver: Path, seed: int) -> None:
    rng = random.Random(seed)
    ranges, versions = _ranges(rng, 400), _versions(rng)
    theirs = _judge(node_semver, ranges, versions)
    disagreements: list[Any] = []
    for text, expected in zip(ranges, theirs, strict=True):
        got = _ours(text, versions)
        if (got is None) != (expected is None):
            disagreements.append((text, "valid" if expected is not None else "invalid"))
        elif got is not None and expected is not None and got != expected:
            differ = [v for v, a, b in zip(versions, got, expected, strict=True) if a != b]
            disagreements.append((text, differ[:5]))
    assert disagreements == []


def test_numbers_after_a_wildcard_are_ignored_as_node_semver_does() -> None:
    def admits(text: str, version: str) -> bool:
        parsed = parse_version(version)
        assert parsed is not None
        return parse_range(text).contains(parsed)

    assert admits("1.x.5", "1.9.0") and not admits("1.x.5", "2.0.0")
    assert admits("2.*.3", "2.0.0") and not admits("2.*.3", "3.0.0")
    assert admits("4.*.0 <4.2.5", "4.2.4") and not admits("4.*.0 <4.2.5", "4.2.5")
