"""Flood quarantine (``hash_entry_quarantine``): entries matching far more often than usual, whose matches go
to review instead of automatic action. Deciding which entries flood is the detector's (``detector.resolve.flood_check``,
which counts its own evidence); this module only marks and releases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from hashsets.errors import EntryNotFound
from hashsets.events import record_event
from hashsets.lists import hashset_row
from kernel.db import Queries

Q = Queries("hashsets")


async def quarantine(conn: asyncpg.Connection, seen: Mapping[int, int]) -> int:
    """Quarantine these entry rows, each with the matches seen in the flood window; returns how many are new.

    A released entry is quarantined again: the flood rule counts only matches after its release
    (``released_at``), so one that floods again is a new flood a reviewer has not seen.
    """
    newly = 0
    for row, n in seen.items():
        if await conn.fetchval(Q.quarantine_entry, row, n) is not None:
            newly += 1
    return newly


async def quarantined_among(conn: asyncpg.Connection, entry_rows: Sequence[int]) -> set[int]:
    return {r["entry_row"] for r in await conn.fetch(Q.quarantined_among, list(entry_rows))}


async def released_at(conn: asyncpg.Connection, entry_rows: Sequence[int]) -> dict[int, datetime]:
    """When each of these entries was last released from quarantine (absent: never, or quarantined now)."""
    return {r["entry_row"]: r["released_at"] for r in await conn.fetch(Q.quarantine_released_at, list(entry_rows))}


async def count_quarantined(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(Q.count_quarantined))


async def release_quarantine(conn: asyncpg.Connection, name: str, entry_id: str, actor: str, reason: str) -> None:
    async with conn.transaction():
        hashset = await hashset_row(conn, name)
        if not await conn.fetch(Q.release_quarantine, hashset["id"], entry_id, actor):
            raise EntryNotFound(f"no entry of {name!r} with id {entry_id!r} is quarantined")
        await record_event(conn, actor, "release_quarantine", name, {"entry_id": entry_id, "reason": reason})


async def quarantined(conn: asyncpg.Connection, name: str) -> list[tuple[str, datetime, int]]:
    hashset = await hashset_row(conn, name)
    return [(r["entry_id"], r["since"], r["matches_seen"]) for r in await conn.fetch(Q.list_quarantine, hashset["id"])]
