"""The detector's metrics that follow the index: what the current snapshot holds and which tools may scan."""

from __future__ import annotations

from detector.matcher import MatchSnapshot
from kernel.metrics import Metrics


def observe_snapshot(metrics: Metrics, snapshot: MatchSnapshot, seconds: float) -> None:
    metrics.index_entries.clear()
    for v in snapshot.versions:
        metrics.index_entries.labels(hashset=v.hashset, tool=v.tool).set(v.entries)
    metrics.coverage_gap_entries.clear()
    for v in snapshot.coverage_gaps:
        metrics.coverage_gap_entries.labels(hashset=v.hashset, tool=v.tool).set(v.entries)
    metrics.index_loaded.set(snapshot.loaded_at.timestamp())
    metrics.tool_active.clear()
    for name, act in snapshot.activations.items():
        metrics.tool_active.labels(tool=name, reason=act.reason.value).set(1 if act.active else 0)
    metrics.index_load_seconds.set(seconds)
