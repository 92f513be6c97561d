"""Takedown's evidence names the matched list entry itself (migration 0025), without the detector's scan_matches."""

from __future__ import annotations

import uuid

import asyncpg

from detector.match import Match
from kernel.db import discover_migrations, migrate
from kernel.keys import DEFAULT_TENANT_ID
from takedown import matching, ticket_store
from takedown.config import TakedownConfig


async def test_migration_0025_backfills_the_entry_row_from_the_detector_copy(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, [m for m in discover_migrations() if m.number < 25])
        scan_id, ticket_id = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            """INSERT INTO scan_matches (scan_id, content_id, hash_entry_id, hashset, hashset_version, entry_id, tool,
                                         tool_version, distance)
               VALUES ($1, 'c', 42, 'list-a', 1, 'e-1', 'pdq', '1', 3), ($1, 'c', 43, 'list-a', 1, 'e-2', 'pdq', '1', 5)""",
            scan_id,
        )
        await conn.execute(
            """INSERT INTO tickets (id, content_id, source, priority, due_at, automated_detection)
               VALUES ($1, 'c', 'hash_match', 1, now(), true)""",
            ticket_id,
        )
        await conn.execute(
            """INSERT INTO ticket_evidence (ticket_id, scan_id, hashset, hashset_version, entry_id, tool, tool_version, distance)
               VALUES ($1, $2, 'list-a', 1, 'e-1', 'pdq', '1', 3), ($1, $2, 'list-a', 1, 'e-2', 'pdq', '1', 5)""",
            ticket_id,
            scan_id,
        )
        assert await migrate(conn) == [m.number for m in discover_migrations() if m.number >= 25]
        assert await ticket_store.evidence_entry_rows(conn, ticket_id) == [(42, scan_id), (43, scan_id)]
        assert [e.match.entry_row for e in await ticket_store.ticket_evidence(conn, ticket_id)] == [42, 43]
    finally:
        await conn.close()


async def test_wrong_match_feedback_finds_entries_from_takedown_evidence_alone(pool: asyncpg.Pool) -> None:
    def match(entry_row: int) -> Match:
        return Match(
            entry_row=entry_row,
            hashset="list-a",
            hashset_version=1,
            entry_id=f"e-{entry_row}",
            tool="pdq",
            tool_version="1",
            distance=0,
        )

    first, second = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn:
        opened = await matching.open_for_matches(
            conn,
            tenant_id=DEFAULT_TENANT_ID,
            scan_id=first,
            content_id="c",
            content_url=None,
            api_key_id=None,
            matches=[match(7), match(9)],
            config=TakedownConfig(),
        )
        again = await matching.open_for_matches(
            conn,
            tenant_id=DEFAULT_TENANT_ID,
            scan_id=second,
            content_id="c",
            content_url=None,
            api_key_id=None,
            matches=[match(7)],
            config=TakedownConfig(),
        )
        assert again.ticket_id == opened.ticket_id and not again.opened
        # No scan_matches rows exist for these scans: the entry rows come from takedown's own table.
        assert await conn.fetchval("SELECT count(*) FROM scan_matches") == 0
        assert await ticket_store.evidence_entry_rows(conn, opened.ticket_id) == sorted([(7, first), (9, first), (7, second)])
