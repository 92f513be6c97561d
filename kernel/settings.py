"""Configuration: one frozen ``Settings`` read from ``HASHGUARD_*`` environment variables.

Every setting is declared once, as a ``Settings`` field with its variable, parser, default and
help text, so the README table is generated from the same place (``python -m kernel.docs_tables``,
from ``documented_settings()``) and a test checks the README holds exactly that table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from kernel.query_variants import VARIANTS, parse_variants


class SettingsError(ValueError):
    """A HASHGUARD_* environment variable has a value that cannot be used."""


def _int(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.replace("_", ""))
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _float(minimum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _optional_str(raw: str) -> str | None:
    return raw or None


def _names(raw: str) -> tuple[str, ...]:
    return tuple(sorted({part.strip() for part in raw.split(",") if part.strip()}))


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw.lower()

    return parse


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _setting(env: str, parse: Callable[[str], Any], default: Any, help: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "help": help})


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """The whole configuration of one hashguard process. Build it with ``Settings.from_env()``."""

    database_url: str | None = _setting(
        "HASHGUARD_DATABASE_URL",
        _optional_str,
        None,
        "PostgreSQL URL (postgresql://user:pass@host/db). Unset: an embedded PostgreSQL in HASHGUARD_DATA_DIR.",
    )
    data_dir: Path = _setting(
        "HASHGUARD_DATA_DIR",
        Path,
        Path(user_data_dir("hashguard")),
        "Folder for the embedded PostgreSQL cluster (postgres/, used only when HASHGUARD_DATABASE_URL is unset) and the demo files.",
    )
    max_upload_bytes: int = _setting(
        "HASHGUARD_MAX_UPLOAD_BYTES",
        _int(1),
        50_000_000,
        "Largest accepted /v1/scan body in bytes; larger uploads get 413 payload_too_large.",
    )
    max_pixels: int = _setting(
        "HASHGUARD_MAX_PIXELS",
        _int(1),
        100_000_000,
        "Largest accepted image in pixels (width x height), checked from the header before decoding;"
        " larger images (decompression bombs) get 422 image_too_large.",
    )
    decode_memory_mb: int = _setting(
        "HASHGUARD_DECODE_MEMORY_MB",
        _int(16),
        512,
        "Most memory one image's decode may take, in MiB, estimated from its header before decoding (pixels,"
        " line pointers, conversions); larger images get 422 image_too_large. At the default a 100-megapixel RGB PNG"
        " or any JPEG within HASHGUARD_MAX_PIXELS decodes (fast path; the reference path needs about 31 bytes per pixel).",
    )
    decode_memory_total_mb: int = _setting(
        "HASHGUARD_DECODE_MEMORY_TOTAL_MB",
        _int(16),
        1024,
        "Most decode memory, in MiB, all concurrent scans may hold by the same estimate; a large decode waits for room"
        " (503 scan_timeout after HASHGUARD_SCAN_TIMEOUT_S), while decodes below 1/16 of HASHGUARD_DECODE_MEMORY_MB"
        " (ordinary photos) never wait.",
    )
    hash_workers: int = _setting(
        "HASHGUARD_HASH_WORKERS",
        _int(1),
        _default_workers(),
        "How many decode-and-hash jobs run at once, off the event loop (default: the CPUs this process may use).",
    )
    scan_timeout_s: float = _setting(
        "HASHGUARD_SCAN_TIMEOUT_S",
        _float(0.1),
        30.0,
        "How long a scan may wait for a hashing slot and run before it answers 503 scan_timeout.",
    )
    max_form_parts: int = _setting(
        "HASHGUARD_MAX_FORM_PARTS",
        _int(1),
        8,
        "Most parts a multipart/form-data /v1/scan body may hold (media, content_id, content_url and a few"
        " more); one more is refused at once with 400, before it is read.",
    )
    max_form_field_bytes: int = _setting(
        "HASHGUARD_MAX_FORM_FIELD_BYTES",
        _int(64),
        4096,
        "Largest multipart form field other than the media, in bytes; larger fields get 413 payload_too_large.",
    )
    body_timeout_s: float = _setting(
        "HASHGUARD_BODY_TIMEOUT_S",
        _float(0.1),
        60.0,
        "How long reading a request body may take from its first read; a slower or stalled upload gets 408"
        " request_timeout (counted in hashguard_errors_total) and never holds a hashing slot.",
    )
    keepalive_timeout_s: float = _setting(
        "HASHGUARD_KEEPALIVE_TIMEOUT_S",
        _float(0.1),
        75.0,
        "A connection that has not sent a complete request header within this many seconds of opening or of its"
        " last answer is closed: the idle keep-alive limit and the header read timeout. Keep it longer than a"
        " reverse proxy's upstream keep-alive.",
    )
    hashing: str = _setting(
        "HASHGUARD_HASHING",
        _choice("fast", "reference"),
        "fast",
        "How perceptual hashes are computed: 'fast' decodes large JPEGs at reduced size and replays the reference"
        " filtering (about 30x faster on 12-megapixel JPEGs in benchmarks/results/hashing.md, within a few bits of the"
        " reference); 'reference' runs the reference implementations on the full-size decode.",
    )
    hash_pool: str = _setting(
        "HASHGUARD_HASH_POOL",
        _choice("threads", "processes"),
        "threads",
        "Where decode-and-hash jobs run: 'threads' (measured fastest for the fast path, whose decode and numpy work"
        " release the GIL) or 'processes' (each job in a worker process: a decoder crash or runaway memory takes down"
        " a worker, not the service, and GIL-bound tools such as the reference pdqhash can use every CPU).",
    )
    tools: tuple[str, ...] = _setting(
        "HASHGUARD_TOOLS",
        _names,
        (),
        "Comma-separated detection tools to use (default: every installed tool).",
    )
    jurisdictions: tuple[str, ...] = _setting(
        "HASHGUARD_JURISDICTIONS",
        lambda raw: tuple(sorted({part.strip().upper() for part in raw.split(",") if part.strip()})),
        (),
        "Comma-separated jurisdictions this deployment serves (e.g. GB,AU,EU); a tool scans only while an approval"
        " recorded for one of them covers it, or an admin allowed it locally (hashguard tools allow-local).",
    )
    db_pool_size: int = _setting(
        "HASHGUARD_DB_POOL_SIZE",
        _int(1),
        10,
        "Largest number of PostgreSQL connections this process holds.",
    )
    key_cache_s: float = _setting(
        "HASHGUARD_KEY_CACHE_S",
        _float(0.0),
        5.0,
        "Seconds a verified API key is cached in memory; a revoked key stops working within this time.",
    )
    rate_per_s: float = _setting(
        "HASHGUARD_RATE_PER_S",
        _float(0.0),
        200.0,
        "Default rate limit of every API key, in tokens a second (a request costs one token, a lookup batch one per"
        " item); over it a call answers 429 rate_limited with Retry-After. A key can have its own"
        " (hashguard keys limit). 0 turns the default limit off.",
    )
    rate_burst: int = _setting(
        "HASHGUARD_RATE_BURST",
        _int(1),
        2000,
        "Default bucket size of every API key's rate limit: how many tokens a key may spend at once after being idle."
        " Keep it at least the largest lookup batch (1000 items).",
    )
    rate_replicas: int = _setting(
        "HASHGUARD_RATE_REPLICAS",
        _int(1),
        1,
        "How many replicas serve the same database. Rate limits are kept in each replica's memory (no database"
        " round trip per request), so each replica enforces rate and burst divided by this number.",
    )
    reload_interval_s: float = _setting(
        "HASHGUARD_RELOAD_INTERVAL_S",
        _float(0.5),
        5.0,
        "Fallback check for changed hash lists, in seconds; changes normally arrive at once through PostgreSQL NOTIFY.",
    )
    index_stale_s: float = _setting(
        "HASHGUARD_INDEX_STALE_S",
        _float(1.0),
        60.0,
        "/readyz answers 503 once the index served has not been confirmed against the database (by a successful"
        " reload or reload check) for this many seconds; failing reloads keep the last good index meanwhile.",
    )
    flood_max_matches: int = _setting(
        "HASHGUARD_FLOOD_MAX_MATCHES",
        _int(0),
        100,
        "Flood quarantine: a list entry matched by more than this many distinct contents within"
        " HASHGUARD_FLOOD_WINDOW_S (see HASHGUARD_FLOOD_MIN_SOURCES) is quarantined (still answered as a match, but"
        " its matches go to review instead of automatic action, and hashguard_quarantined_entries rises); after a"
        " release only later matches count. 0 turns the check off.",
    )
    flood_window_s: float = _setting(
        "HASHGUARD_FLOOD_WINDOW_S",
        _float(1.0),
        3600.0,
        "The window, in seconds, over which HASHGUARD_FLOOD_MAX_MATCHES is counted.",
    )
    flood_min_sources: int = _setting(
        "HASHGUARD_FLOOD_MIN_SOURCES",
        _int(1),
        2,
        "Flood quarantine counts distinct contents, and at most (HASHGUARD_FLOOD_MAX_MATCHES + 1) / this many from"
        " any one tenant: with 2, no single key or tenant can trigger it alone. Never more sources are required than"
        " tenants hold platform keys, so an install serving one platform keeps the check (there its own keys can"
        " trigger it, and only its own automated action waits).",
    )
    probe_window_s: float = _setting(
        "HASHGUARD_PROBE_WINDOW_S",
        _float(1.0),
        3600.0,
        "Probing detector: the window, in seconds, over which one key's distinct queries matching one list entry are"
        " judged. A key judged to be reading an entry back is suspended (403 key_suspended) until released.",
    )
    probe_off_weight: int = _setting(
        "HASHGUARD_PROBE_OFF_WEIGHT",
        _int(0),
        8,
        "Probing detector: suspend a key after this many distinct matching queries for one entry with a weight no"
        " computed PDQ or pHash has (a picture's hash has exactly half its bits set; an edited one rarely does). 0: off.",
    )
    probe_spread: float = _setting(
        "HASHGUARD_PROBE_SPREAD",
        _float(0.0),
        0.25,
        "Probing detector: suspend a key whose distinct matching queries for one entry differ from one another in this"
        " fraction of the hash's bits (re-encodings of a picture vary in at most 39 of 256 measured). 0: off.",
    )
    probe_boundary: int = _setting(
        "HASHGUARD_PROBE_BOUNDARY",
        _int(0),
        8,
        "Probing detector: suspend a key after this many distinct matching queries for one entry within 2 of the"
        " tool's distance threshold (where a yes/no walker reads one bit per call). 0: off.",
    )
    lookback_days: int = _setting(
        "HASHGUARD_LOOKBACK_DAYS",
        _int(0),
        0,
        "Re-check content scanned in the last N days against hashes a new list version adds. Needs keeping the"
        " hashes of every upload, innocent ones included, for N days: personal data. 0 (default) keeps none.",
    )
    webhook_url: str | None = _setting(
        "HASHGUARD_WEBHOOK_URL",
        _optional_str,
        None,
        "The platform's webhook for takedown actions (remove, block, restrict, reinstate). Unset: actions wait in the outbox.",
    )
    webhook_secret: str | None = _setting(
        "HASHGUARD_WEBHOOK_SECRET",
        _optional_str,
        None,
        "HMAC-SHA256 key signing each webhook (timestamp + '.' + body); required with HASHGUARD_WEBHOOK_URL.",
    )
    webhook_timeout_s: float = _setting(
        "HASHGUARD_WEBHOOK_TIMEOUT_S", _float(0.1), 10.0, "How long one webhook call may take before it counts as failed."
    )
    webhook_max_attempts: int = _setting(
        "HASHGUARD_WEBHOOK_MAX_ATTEMPTS",
        _int(1),
        20,
        "Attempts per action before it is marked failed (shown on the ticket and in /metrics; a lead can retry it).",
    )
    webhook_backoff_s: float = _setting(
        "HASHGUARD_WEBHOOK_BACKOFF_S",
        _float(0.01),
        2.0,
        "First retry delay; it doubles per attempt (with jitter) up to HASHGUARD_WEBHOOK_BACKOFF_MAX_S.",
    )
    webhook_backoff_max_s: float = _setting(
        "HASHGUARD_WEBHOOK_BACKOFF_MAX_S", _float(0.01), 900.0, "Longest delay between two attempts of one action."
    )
    outbox_poll_s: float = _setting(
        "HASHGUARD_OUTBOX_POLL_S", _float(0.05), 1.0, "How often the outbox is checked for due actions when idle."
    )
    due_hash_match_h: float = _setting(
        "HASHGUARD_DUE_HASH_MATCH_H", _float(0.01), 1.0, "Hours to decide a ticket opened by a hash match."
    )
    due_authority_order_h: float = _setting(
        "HASHGUARD_DUE_AUTHORITY_ORDER_H",
        _float(0.01),
        24.0,
        "Hours to decide an authority order (e.g. an eSafety removal notice: 24 h); an earlier legal deadline in the order wins.",
    )
    due_hotline_h: float = _setting("HASHGUARD_DUE_HOTLINE_H", _float(0.01), 24.0, "Hours to decide a hotline notice.")
    due_trusted_flagger_h: float = _setting(
        "HASHGUARD_DUE_TRUSTED_FLAGGER_H", _float(0.01), 24.0, "Hours to decide a trusted flagger's notice."
    )
    due_user_report_h: float = _setting("HASHGUARD_DUE_USER_REPORT_H", _float(0.01), 72.0, "Hours to decide a user's notice.")
    lease_s: float = _setting(
        "HASHGUARD_LEASE_S",
        _float(1.0),
        900.0,
        "How long a claimed ticket stays with its reviewer before it returns to the queue.",
    )
    appeal_window_days: int = _setting(
        "HASHGUARD_APPEAL_WINDOW_DAYS",
        _int(1),
        183,
        "Days after a decision during which the uploader may appeal it (DSA Art 20: at least 6 months).",
    )
    retention_days: int = _setting(
        "HASHGUARD_RETENTION_DAYS",
        _int(1),
        365,
        "Days evidence is preserved after a ticket's last decision or report, then purged (unless on legal hold).",
    )
    retention_interval_s: float = _setting(
        "HASHGUARD_RETENTION_INTERVAL_S", _float(1.0), 3600.0, "How often the evidence purge runs."
    )
    log_level: str = _setting(
        "HASHGUARD_LOG_LEVEL",
        str.upper,
        "INFO",
        "Python logging level (DEBUG, INFO, WARNING, ERROR).",
    )

    # -- reports (issue 12: NCMEC, NCA, hotline exports)
    ncmec_url: str | None = _setting(
        "HASHGUARD_NCMEC_URL",
        _optional_str,
        None,
        "CyberTipline Reporting API base URL (NCMEC's test service is https://exttest.cybertip.org/ispws). Unset: hashguard files no NCMEC reports.",
    )
    ncmec_username: str | None = _setting("HASHGUARD_NCMEC_USERNAME", _optional_str, None, "The NCMEC-issued reporting username.")
    ncmec_password: str | None = _setting(
        "HASHGUARD_NCMEC_PASSWORD", _optional_str, None, "The NCMEC-issued reporting password (never logged or audited)."
    )
    ncmec_mou_signed: bool = _setting(
        "HASHGUARD_NCMEC_MOU_SIGNED",
        lambda raw: raw.lower() in ("1", "true", "yes", "on"),
        False,
        "This company signed NCMEC's industry hash-sharing MOU: only then do reports carry industryClassification (A1-B2).",
    )
    ncmec_timeout_s: float = _setting(
        "HASHGUARD_NCMEC_TIMEOUT_S", _float(0.1), 60.0, "Seconds to wait for one CyberTipline call."
    )
    ncmec_max_attempts: int = _setting(
        "HASHGUARD_NCMEC_MAX_ATTEMPTS", _int(1), 12, "Runs of a report's filing before a retryable failure becomes terminal."
    )
    ncmec_backoff_s: float = _setting(
        "HASHGUARD_NCMEC_BACKOFF_S",
        _float(0.0),
        30.0,
        "First retry delay of a report's filing (doubling, jittered, capped at 15 min).",
    )
    report_lease_s: float = _setting(
        "HASHGUARD_REPORT_LEASE_S",
        _float(1.0),
        600.0,
        "How long a replica holds a report it is filing; a report whose holder died is taken up (retract first) after this.",
    )
    reporter_email: str | None = _setting(
        "HASHGUARD_REPORTER_EMAIL", _optional_str, None, "The reporting person's email, required to file a hotline report."
    )
    reporter_first_name: str | None = _setting(
        "HASHGUARD_REPORTER_FIRST_NAME", _optional_str, None, "The reporting person's first name."
    )
    reporter_last_name: str | None = _setting(
        "HASHGUARD_REPORTER_LAST_NAME", _optional_str, None, "The reporting person's last name."
    )
    reporter_phone: str | None = _setting("HASHGUARD_REPORTER_PHONE", _optional_str, None, "The reporting person's phone number.")
    reporter_company: str | None = _setting(
        "HASHGUARD_REPORTER_COMPANY", _optional_str, None, "The companyTemplate name NCMEC agreed with the company, if any."
    )
    reporter_tos_url: str | None = _setting(
        "HASHGUARD_REPORTER_TOS_URL", _optional_str, None, "The platform's terms of service (sent as termsOfService)."
    )
    reporter_legal_url: str | None = _setting(
        "HASHGUARD_REPORTER_LEGAL_URL", _optional_str, None, "Where law enforcement sends legal process (sent as legalURL)."
    )
    evidence_hosts: tuple[str, ...] = _setting(
        "HASHGUARD_EVIDENCE_HOSTS",
        _names,
        (),
        "Comma-separated platform host names a report's file is fetched from (signed, checked against the scan's hash, streamed to"
        " the hotline, not kept); port not matched; https only, plain http only for loopback. Others: hash-only reports.",
    )
    nca_uk_provider: bool = _setting(
        "HASHGUARD_NCA_UK_PROVIDER",
        lambda raw: raw.lower() in ("1", "true", "yes", "on"),
        False,
        "This provider is a UK provider (OSA s.66): NCA reports for all detected content; otherwise only for UK-linked content.",
    )
    # -- end reports
    # -- figures (issue 12: DSA database, transparency, monitoring)
    dsa_db_url: str | None = _setting(
        "HASHGUARD_DSA_DB_URL",
        _optional_str,
        None,
        "Base URL of the DSA Transparency Database (sandbox first, then production; Art 24(5)). Unset: statements of"
        " reasons are queued for it but not sent.",
    )
    dsa_db_token: str | None = _setting(
        "HASHGUARD_DSA_DB_TOKEN",
        _optional_str,
        None,
        "The Transparency Database API token (Bearer); required with HASHGUARD_DSA_DB_URL. Regenerating it there"
        " invalidates the old one.",
    )
    dsa_db_timeout_s: float = _setting(
        "HASHGUARD_DSA_DB_TIMEOUT_S", _float(0.1), 30.0, "How long one call to the Transparency Database may take."
    )
    dsa_db_rate_per_s: float = _setting(
        "HASHGUARD_DSA_DB_RATE_PER_S",
        _float(0.1),
        200.0,
        "Calls per second this process makes to the Transparency Database (its limit: 200/s per user; share it"
        " between replicas).",
    )
    dsa_db_rate_per_min: float = _setting(
        "HASHGUARD_DSA_DB_RATE_PER_MIN",
        _float(1.0),
        12000.0,
        "Calls per minute this process makes to the Transparency Database (its limit: 12,000/min per user).",
    )
    dsa_db_backoff_s: float = _setting(
        "HASHGUARD_DSA_DB_BACKOFF_S", _float(0.01), 2.0, "First retry delay after a failed submission (doubles each time)."
    )
    dsa_db_backoff_max_s: float = _setting(
        "HASHGUARD_DSA_DB_BACKOFF_MAX_S", _float(0.01), 900.0, "Longest delay between submission retries."
    )
    dsa_db_poll_s: float = _setting(
        "HASHGUARD_DSA_DB_POLL_S", _float(0.01), 5.0, "How often the submitter looks for statements to send."
    )
    dsa_territorial_scope: tuple[str, ...] = _setting(
        "HASHGUARD_DSA_TERRITORIAL_SCOPE",
        lambda raw: tuple(sorted({part.strip().upper() for part in raw.split(",") if part.strip()})),
        tuple(
            [
                "AT",
                "BE",
                "BG",
                "CY",
                "CZ",
                "DE",
                "DK",
                "EE",
                "ES",
                "FI",
                "FR",
                "GR",
                "HR",
                "HU",
                "IE",
                "IS",
                "IT",
                "LI",
                "LT",
                "LU",
                "LV",
                "MT",
                "NL",
                "NO",
                "PL",
                "PT",
                "RO",
                "SE",
                "SI",
                "SK",
            ]
        ),
        "EU/EEA countries a restriction applies in, as sent to the Transparency Database (default: all 30).",
    )
    eu_voluntary_detection_basis: str | None = _setting(
        "HASHGUARD_EU_VOLUNTARY_DETECTION_BASIS",
        _optional_str,
        None,
        "The EU legal basis for voluntary detection this deployment relies on (Reg. 2021/1232 lapsed on 3 April 2026)."
        " Unset while HASHGUARD_JURISDICTIONS names the EU or a member state: no tool scans (fail closed), and the"
        " figures say so.",
    )
    # -- end figures
    # -- console (issue 13)
    console_idle_min: float = _setting(
        "HASHGUARD_CONSOLE_IDLE_MIN",
        _float(1.0),
        30.0,
        "Minutes without a request after which a console session ends (the person signs in again).",
    )
    console_session_h: float = _setting(
        "HASHGUARD_CONSOLE_SESSION_H",
        _float(0.1),
        10.0,
        "Hours after sign-in after which a console session ends however active it is.",
    )
    console_lockout_failures: int = _setting(
        "HASHGUARD_CONSOLE_LOCKOUT_FAILURES",
        _int(1),
        5,
        "Wrong passwords in a row after which a console account is locked for HASHGUARD_CONSOLE_LOCKOUT_MIN.",
    )
    console_lockout_min: float = _setting(
        "HASHGUARD_CONSOLE_LOCKOUT_MIN", _float(0.1), 15.0, "Minutes a console account stays locked after too many failures."
    )
    exposure_limit: int = _setting(
        "HASHGUARD_EXPOSURE_LIMIT",
        _int(0),
        10,
        "Previews one person may reveal in the console per day (UTC); a lead may grant more, recorded. 0: none.",
    )
    console_break_min: float = _setting(
        "HASHGUARD_CONSOLE_BREAK_MIN",
        _float(1.0),
        50.0,
        "Minutes of continuous review after which the console suggests a break.",
    )
    # -- end console
    # -- exchanges (issue 14)
    exchanges: str = _setting(
        "HASHGUARD_EXCHANGES",
        _choice("on", "off"),
        "on",
        "on: this process fetches the hash-sharing sources added with `hashguard exchanges add` (one fetch per source"
        " across replicas); off: leave it to other replicas.",
    )
    exchanges_poll_s: float = _setting(
        "HASHGUARD_EXCHANGES_POLL_S", _float(0.05), 5.0, "How often the service looks for due sources and feedback to send."
    )
    exchanges_batch_entries: int = _setting(
        "HASHGUARD_EXCHANGES_BATCH_ENTRIES",
        _int(1),
        10_000,
        "Fetched entries per list version and transaction: pages are grouped up to this, each group committed with its checkpoint.",
    )
    # -- end exchanges
    # -- video (issue 15)
    video_max_bytes: int = _setting(
        "HASHGUARD_VIDEO_MAX_BYTES",
        _int(1),
        512 * 1024 * 1024,
        "Largest accepted video upload in bytes (streamed to a private temporary file, never held in memory);"
        " larger ones get 413 video_limit_exceeded.",
    )
    video_max_seconds: float = _setting(
        "HASHGUARD_VIDEO_MAX_SECONDS",
        _float(1),
        3 * 3600.0,
        "Longest accepted video in seconds, declared or decoded; longer ones get 422 video_limit_exceeded.",
    )
    video_max_frame_pixels: int = _setting(
        "HASHGUARD_VIDEO_MAX_FRAME_PIXELS",
        _int(1),
        3840 * 2160,
        "Largest accepted video frame in pixels (width x height), declared or decoded; 422 video_limit_exceeded.",
    )
    video_max_frames: int = _setting(
        "HASHGUARD_VIDEO_MAX_FRAMES",
        _int(1),
        20_000,
        "Most frames hashed from one video (one a HASHGUARD_VPDQ_SECONDS_PER_HASH); more get 422 video_limit_exceeded.",
    )
    video_wall_s: float = _setting(
        "HASHGUARD_VIDEO_WALL_S",
        _float(0.01),
        120.0,
        "Longest one video's decode may take, in seconds of wall time (its worker process is killed after it);"
        " 422 video_limit_exceeded. Keep it below the proxy's request timeout.",
    )
    video_memory_mb: int = _setting(
        "HASHGUARD_VIDEO_MEMORY_MB",
        _int(256),
        2048,
        "Address-space limit (RLIMIT_AS) of each video decoding process, in MB; a decode that needs more is a 422.",
    )
    video_tmp_dir: str | None = _setting(
        "HASHGUARD_VIDEO_TMP_DIR",
        _optional_str,
        None,
        "Folder for video uploads while they are hashed (private files, deleted when hashing ends); unset: the system's"
        " temporary folder (TMPDIR).",
    )
    video_workers: int = _setting(
        "HASHGUARD_VIDEO_WORKERS",
        _int(1),
        _default_workers(),
        "Videos decoded at once, each in its own worker process; further video scans wait (then 503 scan_timeout).",
    )
    vpdq_seconds_per_hash: float = _setting(
        "HASHGUARD_VPDQ_SECONDS_PER_HASH",
        _float(0),
        1.0,
        "vPDQ sampling: one frame hashed every this many seconds of video (the reference's default, 1); 0 hashes every frame.",
    )
    vpdq_distance: int = _setting(
        "HASHGUARD_VPDQ_DISTANCE",
        _int(0),
        31,
        "vPDQ: largest PDQ distance at which two frames match (a list's own threshold overrides it for that list).",
    )
    vpdq_quality: int = _setting(
        "HASHGUARD_VPDQ_QUALITY",
        _int(0),
        50,
        "vPDQ: frames of lower PDQ quality are left out of matching, on both sides.",
    )
    vpdq_query_share: float = _setting(
        "HASHGUARD_VPDQ_QUERY_SHARE",
        _float(0),
        80.0,
        "vPDQ: percent of the upload's frames that must match a listed video for a match.",
    )
    vpdq_index_share: float = _setting(
        "HASHGUARD_VPDQ_INDEX_SHARE",
        _float(0),
        0.0,
        "vPDQ: percent of the listed video's frames that must be matched for a match.",
    )
    # -- end video
    # -- scale (issue 16)
    index_dir: Path | None = _setting(
        "HASHGUARD_INDEX_DIR",
        Path,
        None,
        "Folder for the built index files (detector.index_store): one per tool and list versions, memory-mapped"
        " at start and shared by the worker processes of a replica. Unset: HASHGUARD_DATA_DIR/index.",
    )
    workers: int = _setting(
        "HASHGUARD_WORKERS",
        _int(0),
        0,
        "Worker processes `hashguard serve` runs on its one port (hashguard/workers.py; `--workers` wins); 0: one per"
        " CPU this process may use. Each worker holds its own database pool, hashing threads and index snapshot.",
    )
    metrics_dir: Path | None = _setting(
        "HASHGUARD_METRICS_DIR",
        lambda raw: Path(raw) if raw else None,
        None,
        "Folder in which a replica of several workers keeps its per-process metric files (a fresh subfolder per start,"
        " removed at exit; best on a tmpfs); unset: the system temporary folder.",
    )
    # -- end scale
    # -- deploy (issue 16: deploy, backfill, batch lookups)
    # -- end deploy
    # -- evasion (issue 17)
    query_variants: tuple[str, ...] = _setting(
        "HASHGUARD_QUERY_VARIANTS",
        parse_variants,
        VARIANTS,
        "Comma-separated extra queries a scan makes (docs/evasion.md): rot90, rot180, rot270, mirror_h, mirror_v,"
        " transpose, transverse (or the group dihedral), trimmed, compat_cmyk, compat_palette, compat_grey16 (or"
        " compat); all (default) or none. A match records the one that found it as its transform.",
    )
    # -- end evasion

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every HASHGUARD_* variable; ``overrides`` (e.g. from command-line flags) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = env.get(name)
            if raw is None:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw.strip())
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r} is not valid: {exc}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def documented_settings() -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting, in declaration order — the docs' source."""
    rows = []
    for f in fields(Settings):
        default = f.default
        shown = "(unset)" if default is None else ",".join(default) if isinstance(default, tuple) else str(default)
        if f.name == "data_dir":
            shown = "the user data folder + /hashguard"
        if f.name == "hash_workers":
            shown = "CPUs available"
        if f.name == "tools" and not default:
            shown = "(all installed)"
        if f.name == "jurisdictions" and not default:
            shown = "(none: only local allowances)"
        rows.append((f.metadata["env"], shown, f.metadata["help"]))
    return rows
