"""/metrics carries build info and the standard process metrics, and no _created series."""

from __future__ import annotations

import platform

from prometheus_client.parser import text_string_to_metric_families

from reconciler import __version__, metrics
from reconciler.metrics import Metrics


def _samples(m: Metrics) -> dict[str, list]:
    text = m.exposition()[0].decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_build_info_and_process_metrics_are_exposed():
    samples = _samples(Metrics())
    [info] = samples["reconciler_build_info"]
    assert info.value == 1
    assert info.labels == {"version": __version__, "python_version": platform.python_version()}
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
        "process_open_fds",
        "python_info",
        "python_gc_collections_total",
    ):
        assert name in samples, name


def test_no_created_series_even_after_counting():
    m = Metrics()
    m.passes.labels(outcome="ok").inc()
    m.pass_duration.observe(0.3)
    m.webhook_events.labels(source="github", outcome="accepted").inc()
    names = set(_samples(m))
    assert "reconciler_passes_total" in names
    assert not [name for name in names if name.endswith("_created")]


def test_two_metrics_objects_coexist():
    # Tests and the sidecar make several; the shared process collectors must not clash.
    first, second = Metrics(), Metrics()
    assert "process_cpu_seconds_total" in _samples(first)
    assert "process_cpu_seconds_total" in _samples(second)


def test_dead_outcome_tuples_are_gone():
    assert not hasattr(metrics, "PASS_OUTCOMES")
    assert not hasattr(metrics, "WEBHOOK_OUTCOMES")
