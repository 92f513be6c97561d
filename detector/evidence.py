"""PostgreSQL storage of match evidence (``scan_matches``): the detector's own table.

A stored evidence row is a ``Match`` plus the scan's context (scan id, content, caller's key).
Other contexts reach this table only through these functions: the look-back re-check
(hashsets) records what it finds here, and the flood check counts recent matches here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import asyncpg

from detector.match import Match
from detector.scan import ScanContext
from kernel.db import Queries

Q = Queries("detector")

_COLUMNS = (
    "scan_id",
    "content_id",
    "content_url",
    "api_key_id",
    "tenant_id",
    "found_on_recheck",
    "hash_entry_id",
    "hashset",
    "hashset_version",
    "entry_id",
    "tool",
    "tool_version",
    "distance",
    "shadow",
    "quarantined",
    "approval_id",
    "local_allowance_id",
    "approval_reason",
)


def _row(scan_id: uuid.UUID, context: ScanContext, match: Match, found_on_recheck: bool) -> tuple[object, ...]:
    return (
        scan_id,
        context.content_id,
        context.content_url,
        context.api_key_id,
        context.tenant_id,
        found_on_recheck,
        match.entry_row,
        match.hashset,
        match.hashset_version,
        match.entry_id,
        match.tool,
        match.tool_version,
        match.distance,
        match.shadow,
        match.quarantined,
        match.approval_id,
        match.local_allowance_id,
        match.approval_reason,
    )


async def record_matches(
    conn: asyncpg.Connection,
    scan_id: uuid.UUID,
    context: ScanContext,
    matches: Sequence[Match],
    *,
    found_on_recheck: bool = False,
) -> None:
    """Keep the evidence of one scan's matches (shadow ones too), in the caller's transaction."""
    if not matches:
        return
    await conn.copy_records_to_table(
        "scan_matches", records=[_row(scan_id, context, m, found_on_recheck) for m in matches], columns=list(_COLUMNS)
    )


async def recent_match_counts(conn: asyncpg.Connection, entry_rows: Sequence[int], window_s: float) -> Mapping[int, int]:
    """How often each of ``entry_rows`` matched within the last ``window_s`` seconds (absent: never)."""
    if not entry_rows:
        return {}
    return {r["hash_entry_id"]: r["n"] for r in await conn.fetch(Q.recent_entry_matches, list(entry_rows), window_s)}


# Takedown's retention clears the detector's copy of match evidence through these two (the
# composition root hands them to it, hashguard.flows.DETECTOR_SCANS): takedown never touches
# scan_matches itself.


async def scans_matched_before(conn: asyncpg.Connection, days: int) -> list[uuid.UUID]:
    """The scans with a match record older than ``days``."""
    return [r["scan_id"] for r in await conn.fetch(Q.scans_matched_before, days)]


async def forget_scans(conn: asyncpg.Connection, scan_ids: Sequence[uuid.UUID], older_than_days: int | None = None) -> int:
    """Delete the match records of these scans (only those older than ``older_than_days``, if given); return how many."""
    result = await conn.execute(Q.forget_scans, list(scan_ids), older_than_days)
    return int(result.split()[-1])
