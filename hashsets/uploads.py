"""Upload hashes kept for look-back (``scan_hashes``, only when HASHGUARD_LOOKBACK_DAYS > 0) and the re-check of them
against the entries a new list version adds. What the re-check finds is recorded as the detector's evidence
(``detector.evidence.record_matches``), never written to its table from here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import asyncpg

from detector import evidence
from detector.match import Match
from detector.scan import ScanContext
from hashsets.entries import describe_entries
from hashsets.events import record_event
from hashsets.lists import BULK_TIMEOUT_S, ImportResult
from kernel.db import Queries

Q = Queries("hashsets")


async def remember_scans(conn: asyncpg.Connection, uploads: Sequence[tuple[uuid.UUID, ScanContext, Mapping[str, bytes]]]) -> None:
    """Keep uploads' hashes for look-back (only when HASHGUARD_LOOKBACK_DAYS > 0; purged by age), in one COPY.

    Satisfies ``detector.remember.KeepHashes``."""
    await conn.copy_records_to_table(
        "scan_hashes",
        records=[
            (scan_id, context.content_id, context.content_url, context.api_key_id, context.tenant_id, tool, value)
            for scan_id, context, hashes in uploads
            for tool, value in hashes.items()
        ],
        columns=["scan_id", "content_id", "content_url", "api_key_id", "tenant_id", "tool", "hash"],
    )


async def purge_scan_hashes(conn: asyncpg.Connection, days: int) -> int:
    """Delete upload hashes older than ``days`` (0: all of them). Returns how many went."""
    status = await conn.execute(Q.purge_scan_hashes, days)
    return int(status.split()[-1])


async def recheck(
    conn: asyncpg.Connection,
    result: ImportResult,
    *,
    tool: str,
    tool_version: str,
    width: int,
    exact: bool,
    threshold: int,
    days: int,
) -> int:
    """Match uploads scanned in the last ``days`` against the hashes ``result``'s version added.

    What it finds is recorded as the detector's evidence, ``found_on_recheck``; returns how many.
    """
    from hashsets.lookback import find  # numba-compiled index: only loaded when look-back is on

    added = [
        (r["id"], r["hash"])
        for r in await conn.fetch(Q.added_entries, list(result.lineage), list(result.replaced_lineage), timeout=BULK_TIMEOUT_S)
    ]
    if not added:
        return 0
    stored = await conn.fetch(Q.recent_scan_hashes, tool, days, timeout=BULK_TIMEOUT_S)
    found = list(find(added, ((i, r["hash"]) for i, r in enumerate(stored)), width=width, threshold=threshold, exact=exact))
    async with conn.transaction():
        described = await describe_entries(conn, sorted({hit.row_id for hit in found}))
        by_scan: dict[int, list[Match]] = {}
        for hit in found:
            entry = described.get(hit.row_id)
            if entry is None:  # entries are never deleted; nothing to record without one
                continue
            match = Match(
                entry_row=hit.row_id,
                hashset=result.hashset,
                hashset_version=result.version,
                entry_id=entry.entry_id,
                tool=tool,
                tool_version=tool_version,
                distance=hit.distance,
            )
            by_scan.setdefault(hit.key, []).append(match)
        for key, matches in by_scan.items():
            scan = stored[key]
            context = ScanContext(
                content_id=scan["content_id"],
                content_url=scan["content_url"],
                api_key_id=scan["api_key_id"],
                tenant_id=scan["tenant_id"],
            )
            await evidence.record_matches(conn, scan["scan_id"], context, matches, found_on_recheck=True)
        await record_event(
            conn, "hashguard", "lookback", result.hashset, {"version": result.version, "days": days, "matches": len(found)}
        )
    return len(found)
