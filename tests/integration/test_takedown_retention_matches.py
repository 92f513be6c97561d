"""Match records that no ticket holds still have a retention limit."""

from __future__ import annotations

import uuid

import asyncpg

from hashguard.flows import DETECTOR_SCANS
from takedown import retention_store


async def _match(conn: asyncpg.Connection, days_ago: int) -> uuid.UUID:
    scan_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO scan_matches (scan_id, content_id, hash_entry_id, hashset, hashset_version, entry_id, tool,
                                     tool_version, distance, shadow, scanned_at)
           VALUES ($1, 'c', 1, 'trial', 1, 'e1', 'pdq', 'v', 3, true, now() - make_interval(days => $2))""",
        scan_id,
        days_ago,
    )
    return scan_id


async def test_unticketed_matches_older_than_the_retention_period_are_purged(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        old = await _match(conn, 400)
        recent = await _match(conn, 10)
        assert await retention_store.purge_unticketed_matches(conn, 365, DETECTOR_SCANS) == 1
        left = {r["scan_id"] for r in await conn.fetch("SELECT scan_id FROM scan_matches")}
        assert left == {recent}
        assert old not in left
        assert await retention_store.purge_unticketed_matches(conn, 5, DETECTOR_SCANS) == 1
        assert await conn.fetchval("SELECT count(*) FROM scan_matches") == 0
