"""PostgreSQL storage for the detector context: match evidence (``scan_matches``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchRecord:
    scan_id: uuid.UUID
    content_id: str
    content_url: str | None
    hash_entry_id: int
    hashset: str
    hashset_version: int
    entry_id: str
    tool: str
    tool_version: str
    distance: int
    api_key_id: int | None
    shadow: bool = False  # a shadow list's match: recorded, never answered or actioned
    quarantined: bool = False  # the entry is flood-quarantined: review, not automatic action
    # Provenance: the approval the tool ran under, or the local allowance, and the policy's reason.
    approval_id: int | None = None
    local_allowance_id: int | None = None
    approval_reason: str | None = None


async def record_matches(conn: asyncpg.Connection, records: Sequence[MatchRecord]) -> None:
    if not records:
        return
    columns = [
        "scan_id",
        "content_id",
        "content_url",
        "hash_entry_id",
        "hashset",
        "hashset_version",
        "entry_id",
        "tool",
        "tool_version",
        "distance",
        "api_key_id",
        "shadow",
        "quarantined",
        "approval_id",
        "local_allowance_id",
        "approval_reason",
    ]
    await conn.copy_records_to_table(
        "scan_matches", records=[tuple(getattr(r, c) for c in columns) for r in records], columns=columns
    )


# Takedown's retention clears the detector's copy of match evidence through these two (the
# composition root hands them to it): takedown never touches scan_matches itself.


async def scans_matched_before(conn: asyncpg.Connection, days: int) -> list[uuid.UUID]:
    """The scans with a match record older than ``days``."""
    rows = await conn.fetch(
        "SELECT DISTINCT scan_id FROM scan_matches WHERE scanned_at < now() - make_interval(days => $1)", days
    )
    return [r["scan_id"] for r in rows]


async def forget_scans(conn: asyncpg.Connection, scan_ids: Sequence[uuid.UUID], older_than_days: int | None = None) -> int:
    """Delete the match records of these scans (only those older than ``older_than_days``, if given); return how many."""
    result = await conn.execute(
        """DELETE FROM scan_matches
           WHERE scan_id = ANY($1::uuid[]) AND ($2::integer IS NULL OR scanned_at < now() - make_interval(days => $2))""",
        list(scan_ids),
        older_than_days,
    )
    return int(result.split()[-1])
