"""Storage of the probing detector (``probe_queries``): the distinct hashes each key sent that matched
a list entry, within the detector's window. The rules are in ``detector.probing``; this module only
locks, forgets, fetches and stores, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from detector.probing import Query
from kernel.db import Queries

Q = Queries("detector")


async def lock_key(conn: asyncpg.Connection, key_id: int) -> bool:
    """Serialise one key's judged calls (the lock ends with the transaction); whether the key is suspended."""
    row = await conn.fetchrow(Q.probe_lock, key_id)
    return bool(row["suspended"])


async def previous(conn: asyncpg.Connection, key_id: int, entries: Sequence[tuple[str, int]], window_s: float) -> list[Query]:
    """What this key sent for these (tool, entry row) pairs within the window, oldest first; older rows are deleted."""
    rows = await conn.fetch(Q.probe_previous, key_id, [t for t, _ in entries], [e for _, e in entries], window_s)
    return [Query(tool=r["tool"], entry_row=r["entry_row"], value=bytes(r["query"]), distance=r["distance"]) for r in rows]


async def remember(conn: asyncpg.Connection, key_id: int, queries: Sequence[Query]) -> None:
    distinct = {(q.tool, q.entry_row, q.value): q for q in queries}
    if not distinct:
        return
    await conn.execute(
        Q.probe_remember,
        key_id,
        [q.tool for q in distinct.values()],
        [q.entry_row for q in distinct.values()],
        [q.value for q in distinct.values()],
        [q.distance for q in distinct.values()],
    )
