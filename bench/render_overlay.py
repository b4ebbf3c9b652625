#!/usr/bin/env python3
"""Per-overlay cost of rendering and reading a kustomization (issue 22, item 2): the
event-located path (``rendering.located``) against the round-trip path it replaces,
both in this run, with a floor of one libyaml event parse of the same text (the least
any reader that looks at what is written can do). Overlays are the fleet benchmark's
(a comment, resources, 2 images with a trailing comment each) and a bigger one with 20
images, a patch block and a second document. A cProfile of the event-located render
shows what is left. Run: ``python3 bench/render_overlay.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from reconciler import yamlio  # noqa: E402
from reconciler.rendering import Artifact, located, read_kustomization  # noqa: E402
from reconciler.rendering.kustomize import render_kustomization  # noqa: E402


def overlay(images: int, extra: bool) -> str:
    text = "# dev overlay: newTag values are set by reconciler\nresources:\n  - ../../base\n"
    text += "images:\n" + "".join(
        f"  - name: example.com/acme/app{i}\n    newTag: 0.0.0  # keep this comment\n"
        for i in range(images)
    )
    if extra:
        text += "patches:\n  - patch: |-\n      - op: add\n        path: /x\n        value: y\n"
        text += "---\nkind: ConfigMap\ndata:\n  images: not-these\n"
    return text


def median_ms(call: Callable[[str], object], text: str, runs: int) -> float:
    """Median of ``call`` on ``runs`` different texts (``text`` under a numbered
    comment): a pass never renders the same text twice, and readers remember a few."""
    samples = []
    for run in range(runs):
        variant = f"# {run}\n{text}"
        started = time.perf_counter()
        call(variant)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def round_trip() -> Any:
    """The event reader switched off: every call takes the round-trip path."""
    return mock.patch.object(located, "read", return_value=None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    runs = parser.parse_args().runs
    rows = []
    for label, images, extra in (("fleet overlay, 2 images", 2, False), ("20 images", 20, True)):
        text = overlay(images, extra)
        artifacts = [Artifact(f"p{i}", "image", f"example.com/acme/app{i}", "1.2.3") for i in (0,)]

        def render(text: str, artifacts: list[Artifact] = artifacts) -> str:
            return render_kustomization(text, artifacts, digest=False, file="k")

        def read(text: str) -> object:
            return read_kustomization(text, file="k")

        floor = median_ms(lambda text: list(yamlio.events(text)), text, runs)
        fast_render, fast_read = median_ms(render, text, runs), median_ms(read, text, runs)
        with round_trip():
            slow_render, slow_read = median_ms(render, text, runs), median_ms(read, text, runs)
            expected = render(text)
        assert render(text) == expected  # the same bytes either way
        rows.append((label, floor, slow_render, fast_render, slow_read, fast_read))
    print(f"{'overlay':26} {'floor':>7} {'render rt':>10} {'render ev':>10} {'read rt':>8} "
          f"{'read ev':>8}   (ms, median of {runs})")  # fmt: skip
    for label, floor, *cells in rows:
        print(f"{label:26} {floor:7.3f} " + " ".join(f"{c:9.3f} " for c in cells))
        ratios = " ".join(f"{c / floor:5.1f}x" for c in cells)
        print(f"{'  / floor':26} {'':7} {ratios}")
    profile = cProfile.Profile()
    text = overlay(2, False)
    artifacts = [Artifact("p0", "image", "example.com/acme/app0", "1.2.3")]
    profile.enable()
    for run in range(200):
        render_kustomization(f"# {run}\n{text}", artifacts, digest=False, file="k")
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(12)
    print("\ncProfile, 200 event-located renders of the fleet overlay (cumulative):")
    print("\n".join([line for line in out.getvalue().splitlines() if line.strip()][:24]))
    speedup = rows[0][2] / rows[0][3]
    print(f"RESULT render_fleet_overlay_speedup={speedup:.2f} "
          f"render_ev_over_floor={rows[0][3] / rows[0][1]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
