"""PostgreSQL storage of match evidence (``scan_matches``): the detector's own table.

A stored evidence row is a ``Match`` plus the scan's context (scan id, content, caller's key).
Other contexts reach this table only through these functions: the look-back re-check
(hashsets) records what it finds here, and the flood check counts recent matches here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

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
    "transform",
    "query_share",
    "index_share",
    "matched_frames",
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
        match.transform,
        match.query_share,
        match.index_share,
        match.matched_frames,
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
    await record_many(conn, [(scan_id, context, matches)], found_on_recheck=found_on_recheck)


async def record_many(
    conn: asyncpg.Connection,
    scans: Sequence[tuple[uuid.UUID, ScanContext, Sequence[Match]]],
    *,
    found_on_recheck: bool = False,
) -> None:
    """Keep the evidence of many scans' matches with one COPY, in the caller's transaction."""
    records = [_row(scan_id, context, m, found_on_recheck) for scan_id, context, matches in scans for m in matches]
    if records:
        await conn.copy_records_to_table("scan_matches", records=records, columns=list(_COLUMNS))


@dataclass(frozen=True, kw_only=True, slots=True)
class Seen:
    """A match about to be recorded, as the flood count sees it: which entry, from which source, about what."""

    entry_row: int
    source: int  # the caller's tenant
    content_id: str


async def recent_match_counts(
    conn: asyncpg.Connection,
    entry_rows: Sequence[int],
    window_s: float,
    *,
    released: Mapping[int, datetime] | None = None,
    adding: Sequence[Seen] = (),
    cap: int | None = None,
) -> Mapping[int, int]:
    """How many distinct contents matched each of ``entry_rows`` within the last ``window_s`` seconds
    (after the entry's last release, where ``released`` has one), counting at most ``cap`` per source,
    the matches in ``adding`` included. Absent: none."""
    if not entry_rows:
        return {}
    released = released or {}
    rows = sorted(released)
    found = await conn.fetch(
        Q.recent_entry_matches,
        list(entry_rows),
        window_s,
        rows,
        [released[r] for r in rows],
        [s.entry_row for s in adding],
        [s.source for s in adding],
        [s.content_id for s in adding],
        cap,
    )
    return {r["hash_entry_id"]: r["n"] for r in found}


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
