"""Prometheus metrics. Each app gets its own registry so several apps (tests, workers) never collide.

With several worker processes (``hashguard serve --workers N``, hashguard/workers.py) a scrape reaches one
worker at random, so /metrics must speak for the replica: the parent sets PROMETHEUS_MULTIPROC_DIR for its
children, prometheus_client then keeps every value in a per-process file there, and ``Metrics(replica_dir=...)``
exposes the sum (counters, histograms) or the gauge mode of ``GAUGE_MODES`` over every worker's files.
One process (the default, tests, in-process apps) keeps the plain in-memory registry exactly as before.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client import values as _values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

# The *_created series double every counter's output and no dashboard of ours reads them.
disable_created_metrics()

# Upload-time latency buckets: tens of milliseconds matter, tens of seconds are a failure.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


# -- scale (issue 16)
# How a gauge is combined over a replica's workers (prometheus_client's multiprocess_mode). Every gauge must be
# listed (tests/unit/test_workers_metrics.py): "livesum" for amounts each worker holds (counted once per live
# worker), "livemostrecent" for what every worker observes of its own snapshot (a cleared label set is a
# tombstone, see ``Gauge.clear``), "livemin"/"livemax" where the replica is as stale or as slow as its worst
# worker, and "mostrecent" for the once-per-replica jobs' database figures (worker 0 sets them; a restarted
# worker 0's first refresh replaces the dead one's last value, and the series does not vanish meanwhile).
GAUGE_MODES: dict[str, str] = {
    "hashguard_quarantined_entries": "livemostrecent",
    "hashguard_coverage_gap_entries": "livemostrecent",
    "hashguard_index_entries": "livemostrecent",
    "hashguard_index_loaded_timestamp_seconds": "livemin",
    "hashguard_index_load_duration_seconds": "livemax",
    "hashguard_index_file_bytes": "livemax",  # the same shared file in every worker
    "hashguard_index_confirmed_timestamp_seconds": "livemin",
    "hashguard_tool_active": "livemostrecent",
    "hashguard_decode_memory_bytes": "livesum",
    "hashguard_outbox_pending": "mostrecent",
    "hashguard_outbox_failed": "mostrecent",
    "hashguard_outbox_oldest_pending_timestamp_seconds": "mostrecent",
    "hashguard_tickets": "mostrecent",
    "hashguard_tickets_overdue": "mostrecent",
    "hashguard_reports_open": "mostrecent",
    "hashguard_report_oldest_unfinished_timestamp_seconds": "mostrecent",
    "hashguard_dsa_statements_pending": "mostrecent",
    "hashguard_dsa_statements_failed": "mostrecent",
    "hashguard_dsa_oldest_pending_timestamp_seconds": "mostrecent",
    "hashguard_eu_detection_halted": "livemax",
    "hashguard_exchange_last_page_timestamp_seconds": "mostrecent",
    "hashguard_exchange_last_success_timestamp_seconds": "mostrecent",
    "hashguard_exchange_source_timestamp_seconds": "mostrecent",
    "hashguard_exchange_interval_seconds": "mostrecent",
    "hashguard_exchange_entries_fetched": "mostrecent",
    "hashguard_exchange_quarantined": "mostrecent",
}
_DEFAULT_GAUGE_MODE = "livemostrecent"


def multiprocess_values() -> bool:
    """Whether prometheus_client keeps values in per-process files (PROMETHEUS_MULTIPROC_DIR at its import)."""
    return _values.ValueClass is not _values.MutexValue


class Gauge(prometheus_client.Gauge):
    """A gauge combined over a replica's workers by its ``GAUGE_MODES`` entry; in one process, prometheus_client's."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (), **kwargs: Any) -> None:
        self._functions: list[Callable[[], float]] = []
        # A labelled gauge's children are built with the parent's keyword arguments, the mode among them.
        kwargs.setdefault("multiprocess_mode", GAUGE_MODES.get(name, _DEFAULT_GAUGE_MODE))
        super().__init__(name, documentation, labelnames, **kwargs)

    def set_function(self, f: Callable[[], float]) -> None:
        """In files a function is not read at scrape time: ``Metrics.refresh`` writes its value now and then."""
        if multiprocess_values():
            self._functions.append(f)
            self.set(float(f()))
        else:
            super().set_function(f)

    def refresh(self) -> None:
        for f in self._functions:
            self.set(float(f()))

    def clear(self) -> None:
        """In files a label set cannot be removed: it is set to NaN, a tombstone the replica's exposition leaves out."""
        if multiprocess_values():
            with self._lock:
                children: list[Gauge] = list(self._metrics.values())  # type: ignore[arg-type]  # children are Gauges
            for child in children:
                child.set(math.nan)
            with warnings.catch_warnings():  # prometheus_client warns that files keep label sets: handled here
                warnings.simplefilter("ignore", UserWarning)
                super().clear()
        else:
            super().clear()


class _ReplicaRegistry(CollectorRegistry):
    """The metrics registered here (names checked as ever), exposed as every worker's files combined."""

    def __init__(self, path: Path, before: Callable[[], None]) -> None:
        super().__init__(auto_describe=True)
        self._files = MultiProcessCollector(None, str(path))
        self._before = before
        self._lock_refresh = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self._lock_refresh:
            self._before()
        for metric in self._files.collect():
            if metric.type == "gauge":
                metric.samples = [s for s in metric.samples if not math.isnan(s.value)]
            yield metric


def replica_dir() -> Path | None:
    """The replica's metric file folder when this process is one of several workers."""
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(raw) if raw and multiprocess_values() else None


# -- end scale


@dataclass(slots=True)
class Metrics:
    """Every metric hashguard exports; names documented in the README (a test checks)."""

    registry: CollectorRegistry = field(default_factory=_registry)
    # -- scale (issue 16): set, this process is one worker of a replica and /metrics speaks for all of them.
    replica_dir: Path | None = None
    # -- end scale
    scans: Counter = field(init=False)
    scan_seconds: Histogram = field(init=False)
    errors: Counter = field(init=False)
    index_entries: Gauge = field(init=False)
    index_loaded: Gauge = field(init=False)
    index_load_seconds: Gauge = field(init=False)
    index_reload_failures: Counter = field(init=False)
    index_confirmed: Gauge = field(init=False)
    matches: Counter = field(init=False)
    shadow_matches: Counter = field(init=False)
    quarantined_entries: Gauge = field(init=False)
    coverage_gap_entries: Gauge = field(init=False)
    tool_active: Gauge = field(init=False)
    tickets_opened: Counter = field(init=False)
    ticket_decisions: Counter = field(init=False)
    webhook_deliveries: Counter = field(init=False)
    outbox_pending: Gauge = field(init=False)
    outbox_failed: Gauge = field(init=False)
    outbox_oldest_pending: Gauge = field(init=False)
    tickets: Gauge = field(init=False)
    tickets_overdue: Gauge = field(init=False)
    evidence_purged: Counter = field(init=False)
    decode_memory: Gauge = field(init=False)
    rate_limited: Counter = field(init=False)
    key_suspensions: Counter = field(init=False)
    # -- reports (issue 12: NCMEC, NCA, hotline exports)
    report_submissions: Counter = field(init=False)
    reports_open: Gauge = field(init=False)
    report_oldest_unfinished: Gauge = field(init=False)
    hotline_errors: Counter = field(init=False)
    # -- end reports
    # -- figures (issue 12: DSA database, transparency, monitoring)
    dsa_submissions: Counter = field(init=False)
    dsa_pending: Gauge = field(init=False)
    dsa_failed: Gauge = field(init=False)
    dsa_oldest_pending: Gauge = field(init=False)
    eu_detection_halted: Gauge = field(init=False)
    # -- end figures
    # -- console (issue 13)
    console_sign_ins: Counter = field(init=False)
    console_reveals: Counter = field(init=False)
    # -- end console
    # -- exchanges (issue 14)
    exchange_last_page: Gauge = field(init=False)
    exchange_last_success: Gauge = field(init=False)
    exchange_source_time: Gauge = field(init=False)
    exchange_interval: Gauge = field(init=False)
    exchange_entries_fetched: Gauge = field(init=False)
    exchange_quarantined: Gauge = field(init=False)
    exchange_errors: Counter = field(init=False)
    exchange_feedback: Counter = field(init=False)
    # -- end exchanges
    # -- video (issue 15)
    video_scans: Counter = field(init=False)
    video_refused: Counter = field(init=False)
    video_decode_seconds: Histogram = field(init=False)
    # -- end video
    # -- scale (issue 16)
    index_changes: Counter = field(init=False)
    index_delta_seconds: Histogram = field(init=False)
    index_file_refused: Counter = field(init=False)
    index_file_bytes: Gauge = field(init=False)
    # -- end scale
    # -- deploy (issue 16: deploy, backfill, batch lookups)
    # -- end deploy
    # -- evasion (issue 17)
    variant_matches: Counter = field(init=False)
    # -- end evasion

    def __post_init__(self) -> None:
        if self.replica_dir is not None:  # -- scale (issue 16)
            self.registry = _ReplicaRegistry(self.replica_dir, self.refresh)
        r = self.registry
        self.scans = Counter(
            "hashguard_scans", "Verdicts given, by endpoint (scan, lookup) and verdict.", ["endpoint", "verdict"], registry=r
        )
        self.scan_seconds = Histogram(
            "hashguard_scan_duration_seconds",
            "Time from request to verdict, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("hashguard_errors", "Error responses, by error code.", ["code"], registry=r)
        self.matches = Counter("hashguard_matches", "List entries matched, by list and tool.", ["hashset", "tool"], registry=r)
        self.shadow_matches = Counter(
            "hashguard_shadow_matches",
            "Matches against shadow lists (recorded, never answered or actioned), by list and tool.",
            ["hashset", "tool"],
            registry=r,
        )
        self.quarantined_entries = Gauge(
            "hashguard_quarantined_entries",
            "List entries in flood quarantine (matching far more often than usual; their matches go to review).",
            registry=r,
        )
        self.coverage_gap_entries = Gauge(
            "hashguard_coverage_gap_entries",
            "Entries of active lists in a hash type no enabled tool computes (not matched), by list and tool.",
            ["hashset", "tool"],
            registry=r,
        )
        self.index_entries = Gauge(
            "hashguard_index_entries", "Entries held in the in-memory index, by list and tool.", ["hashset", "tool"], registry=r
        )
        self.index_loaded = Gauge(
            "hashguard_index_loaded_timestamp_seconds", "When the current index snapshot was built (Unix time).", registry=r
        )
        self.index_load_seconds = Gauge(
            "hashguard_index_load_duration_seconds", "How long building the current index snapshot took.", registry=r
        )
        self.index_reload_failures = Counter(
            "hashguard_index_reload_failures",
            "Index reloads (or reload checks) that failed; the previous snapshot kept serving. Alert on any increase.",
            registry=r,
        )
        self.index_confirmed = Gauge(
            "hashguard_index_confirmed_timestamp_seconds",
            "When the snapshot served was last confirmed to match the database (Unix time); /readyz turns 503 once"
            " it is older than HASHGUARD_INDEX_STALE_S.",
            registry=r,
        )

        self.tool_active = Gauge(
            "hashguard_tool_active",
            "1 when the detection tool may scan, 0 when not, with the approval policy's reason.",
            ["tool", "reason"],
            registry=r,
        )
        self.decode_memory = Gauge(
            "hashguard_decode_memory_bytes",
            "Decode memory held by scans in flight, as estimated from their headers (HASHGUARD_DECODE_MEMORY_TOTAL_MB caps it).",
            registry=r,
        )
        self._takedown(r)

    def _takedown(self, r: CollectorRegistry) -> None:
        self.tickets_opened = Counter("hashguard_tickets_opened", "Takedown tickets opened, by source.", ["source"], registry=r)
        self.ticket_decisions = Counter(
            "hashguard_ticket_decisions",
            "Ticket decisions, by resulting state and whether the decision was automated.",
            ["state", "automated"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "hashguard_webhook_deliveries",
            "Platform webhook attempts, by action and result (delivered, retry, failed).",
            ["action", "result"],
            registry=r,
        )
        self.outbox_pending = Gauge("hashguard_outbox_pending", "Platform actions waiting to be delivered.", registry=r)
        self.outbox_failed = Gauge(
            "hashguard_outbox_failed", "Platform actions that ran out of attempts and need a retry.", registry=r
        )
        self.outbox_oldest_pending = Gauge(
            "hashguard_outbox_oldest_pending_timestamp_seconds",
            "When the oldest undelivered platform action was decided (Unix time; 0 when none).",
            registry=r,
        )
        self.tickets = Gauge("hashguard_tickets", "Tickets by state.", ["state"], registry=r)
        self.tickets_overdue = Gauge(
            "hashguard_tickets_overdue", "Tickets still awaiting a decision after their due time.", registry=r
        )
        self.evidence_purged = Counter(
            "hashguard_evidence_purged", "Tickets whose evidence was purged after its preservation deadline.", registry=r
        )
        self.rate_limited = Counter(
            "hashguard_rate_limited",
            "Calls refused with 429 because the key was over its rate limit, by role.",
            ["role"],
            registry=r,
        )
        self.key_suspensions = Counter(
            "hashguard_key_suspensions",
            "API keys suspended by the probing detector, by the rule that fired (alert on any increase).",
            ["rule"],
            registry=r,
        )
        # -- reports (issue 12: NCMEC, NCA, hotline exports)
        self.report_submissions = Counter(
            "hashguard_report_submissions",
            "Hotline report filing runs by hotline and outcome (finished, retry, failed, retracted).",
            ["hotline", "outcome"],
            registry=r,
        )
        self.reports_open = Gauge(
            "hashguard_reports_open", "Hotline reports queued or being filed, by hotline.", ["hotline"], registry=r
        )
        self.report_oldest_unfinished = Gauge(
            "hashguard_report_oldest_unfinished_timestamp_seconds",
            "When the oldest unfinished hotline report was requested (Unix time; 0 when none): alert when it is old.",
            ["hotline"],
            registry=r,
        )
        self.hotline_errors = Counter(
            "hashguard_hotline_errors",
            "Failed hotline calls by hotline and response code (or http_<status>, network).",
            ["hotline", "code"],
            registry=r,
        )
        # -- end reports
        # -- figures (issue 12: DSA database, transparency, monitoring)
        self.dsa_submissions = Counter(
            "hashguard_dsa_statements_submitted",
            "Statements of reasons sent to the DSA Transparency Database, by outcome (submitted, already_present,"
            " rejected, retry).",
            ["outcome"],
            registry=r,
        )
        self.dsa_pending = Gauge(
            "hashguard_dsa_statements_pending", "Statements of reasons not yet accepted by the Transparency Database.", registry=r
        )
        self.dsa_failed = Gauge(
            "hashguard_dsa_statements_failed",
            "Statements of reasons the Transparency Database (or our schema) rejected; they need a person.",
            registry=r,
        )
        self.dsa_oldest_pending = Gauge(
            "hashguard_dsa_oldest_pending_timestamp_seconds",
            "When the oldest statement of reasons still waiting for the Transparency Database was issued (Unix time; 0 when none).",
            registry=r,
        )
        self.eu_detection_halted = Gauge(
            "hashguard_eu_detection_halted",
            "1 when the deployment serves the EU and no EU legal basis for voluntary detection is recorded: no tool scans.",
            registry=r,
        )
        # -- end figures
        # -- console (issue 13)
        self.console_sign_ins = Counter(
            "hashguard_console_sign_ins",
            "Console sign-in attempts, by outcome (ok, wrong_password, locked, disabled, unknown).",
            ["outcome"],
            registry=r,
        )
        self.console_reveals = Counter(
            "hashguard_console_reveals",
            "Preview reveal steps taken in the console, by outcome (shown, limit, off).",
            ["outcome"],
            registry=r,
        )
        # -- end console
        # -- exchanges (issue 14)
        self.exchange_last_page = Gauge(
            "hashguard_exchange_last_page_timestamp_seconds",
            "When a page of the hash-sharing source was last applied (Unix time; 0: never), by source.",
            ["source"],
            registry=r,
        )
        self.exchange_last_success = Gauge(
            "hashguard_exchange_last_success_timestamp_seconds",
            "When a fetch of the source last read it to its end (Unix time; 0: never), by source.",
            ["source"],
            registry=r,
        )
        self.exchange_source_time = Gauge(
            "hashguard_exchange_source_timestamp_seconds",
            "How far into the source's history everything has been read (Unix time): lag is time() minus this.",
            ["source"],
            registry=r,
        )
        self.exchange_interval = Gauge(
            "hashguard_exchange_interval_seconds", "The source's fetch interval (for alert rules).", ["source"], registry=r
        )
        self.exchange_entries_fetched = Gauge(
            "hashguard_exchange_entries_fetched",
            "Entry updates fetched from the source since it was added.",
            ["source"],
            registry=r,
        )
        self.exchange_quarantined = Gauge(
            "hashguard_exchange_quarantined",
            "Pages and entries of the source quarantined (unreadable) and not yet resolved, by source.",
            ["source"],
            registry=r,
        )
        self.exchange_errors = Counter(
            "hashguard_exchange_errors",
            "Fetches that stopped on an error, by source and kind (unavailable, auth, protocol, settings, race, list_changed).",
            ["source", "kind"],
            registry=r,
        )
        self.exchange_feedback = Counter(
            "hashguard_exchange_feedback",
            "Reviewer verdicts sent back to a source, by source, vote and outcome (sent, retry).",
            ["source", "vote", "outcome"],
            registry=r,
        )
        # -- end exchanges
        # -- video (issue 15)
        self.video_scans = Counter(
            "hashguard_video_scans", "Videos decoded and hashed, by outcome (hashed, refused).", ["outcome"], registry=r
        )
        self.video_refused = Counter(
            "hashguard_video_refused",
            "Video uploads refused, by the limit or fault (bytes, duration, frame_size, frames, wall_time, memory, corrupt).",
            ["reason"],
            registry=r,
        )
        self.video_decode_seconds = Histogram(
            "hashguard_video_decode_seconds",
            "Wall time of one video's decode and hash in its worker process.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        # -- end video
        # -- scale (issue 16)
        self.index_changes = Counter(
            "hashguard_index_changes",
            "How each reload brought a tool's index up to date: delta (applied in place), rebuild (full"
            " read of that tool's lists), compaction (background rebuild of a grown delta), file (mapped"
            " from HASHGUARD_INDEX_DIR), catch-up (mapped, then deltas), unchanged.",
            ["tool", "kind"],
            registry=r,
        )
        self.index_delta_seconds = Histogram(
            "hashguard_index_delta_apply_seconds",
            "CPU time of applying one reload's changes to a tool's index (off the event loop).",
            ["tool"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.index_file_refused = Counter(
            "hashguard_index_file_refused",
            "Index files in HASHGUARD_INDEX_DIR refused at load (damaged, another format): the tool was rebuilt.",
            registry=r,
        )
        self.index_file_bytes = Gauge(
            "hashguard_index_file_bytes",
            "Bytes of the index files this process last wrote or mapped, by tool.",
            ["tool"],
            registry=r,
        )
        # -- end scale
        # -- deploy (issue 16: deploy, backfill, batch lookups)
        # -- end deploy
        # -- evasion (issue 17)
        self.variant_matches = Counter(
            "hashguard_variant_matches",
            "Scan matches found only under a query variant (HASHGUARD_QUERY_VARIANTS), by tool and transform.",
            ["tool", "transform"],
            registry=r,
        )
        # -- end evasion

    # -- scale (issue 16)
    def refresh(self) -> None:
        """Write the function gauges' values (decode memory in flight) to this worker's files."""
        for f in fields(self):
            metric = getattr(self, f.name, None)
            if isinstance(metric, Gauge):
                metric.refresh()

    # -- end scale


METRIC_NAMES: tuple[str, ...] = (
    "hashguard_scans_total",
    "hashguard_scan_duration_seconds",
    "hashguard_errors_total",
    "hashguard_matches_total",
    "hashguard_shadow_matches_total",
    "hashguard_quarantined_entries",
    "hashguard_coverage_gap_entries",
    "hashguard_index_entries",
    "hashguard_index_loaded_timestamp_seconds",
    "hashguard_index_load_duration_seconds",
    "hashguard_index_reload_failures_total",
    "hashguard_index_confirmed_timestamp_seconds",
    "hashguard_tool_active",
    "hashguard_tickets_opened_total",
    "hashguard_ticket_decisions_total",
    "hashguard_webhook_deliveries_total",
    "hashguard_outbox_pending",
    "hashguard_outbox_failed",
    "hashguard_outbox_oldest_pending_timestamp_seconds",
    "hashguard_tickets",
    "hashguard_tickets_overdue",
    "hashguard_evidence_purged_total",
    "hashguard_decode_memory_bytes",
    "hashguard_rate_limited_total",
    "hashguard_key_suspensions_total",
    # -- reports (issue 12: NCMEC, NCA, hotline exports)
    "hashguard_report_submissions_total",
    "hashguard_reports_open",
    "hashguard_report_oldest_unfinished_timestamp_seconds",
    "hashguard_hotline_errors_total",
    # -- end reports
    # -- figures (issue 12: DSA database, transparency, monitoring)
    "hashguard_dsa_statements_submitted_total",
    "hashguard_dsa_statements_pending",
    "hashguard_dsa_statements_failed",
    "hashguard_dsa_oldest_pending_timestamp_seconds",
    "hashguard_eu_detection_halted",
    # -- end figures
    # -- console (issue 13)
    "hashguard_console_sign_ins_total",
    "hashguard_console_reveals_total",
    # -- end console
    # -- exchanges (issue 14)
    "hashguard_exchange_last_page_timestamp_seconds",
    "hashguard_exchange_last_success_timestamp_seconds",
    "hashguard_exchange_source_timestamp_seconds",
    "hashguard_exchange_interval_seconds",
    "hashguard_exchange_entries_fetched",
    "hashguard_exchange_quarantined",
    "hashguard_exchange_errors_total",
    "hashguard_exchange_feedback_total",
    # -- end exchanges
    # -- video (issue 15)
    "hashguard_video_scans_total",
    "hashguard_video_refused_total",
    "hashguard_video_decode_seconds",
    # -- end video
    # -- scale (issue 16)
    "hashguard_index_changes_total",
    "hashguard_index_delta_apply_seconds",
    "hashguard_index_file_refused_total",
    "hashguard_index_file_bytes",
    # -- end scale
    # -- deploy (issue 16: deploy, backfill, batch lookups)
    # -- end deploy
    # -- evasion (issue 17)
    "hashguard_variant_matches_total",
    # -- end evasion
)
