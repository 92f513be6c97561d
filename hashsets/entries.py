"""A list version's entries (``hash_entries``, ``hash_entry_disables``): streaming them to the index, describing a
matched one, the admin-only export, and disabling single entries.

Hash values leave this module only through ``stream_entries`` (to the index) and ``export_entries`` (admin).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hashsets.errors import EntryNotFound, HashsetError
from hashsets.events import record_event
from hashsets.lists import ActiveVersion, hashset_row
from kernel.db import Queries

Q = Queries("hashsets")


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryDescription:
    id: int
    hashset: str
    hashset_version: int
    entry_id: str
    category: str | None


async def stream_entries(
    conn: asyncpg.Connection, version: ActiveVersion, chunk: int = 100_000
) -> AsyncIterator[list[tuple[int, bytes]]]:
    """Yield (row id, hash) chunks of one version's matchable entries (in no particular order).

    Must run inside a transaction (server-side cursor).
    """
    buffer: list[tuple[int, bytes]] = []
    async for record in conn.cursor(Q.version_entries, list(version.lineage), version.hashset_id, prefetch=chunk):
        buffer.append((record["id"], record["hash"]))
        if len(buffer) >= chunk:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


async def stream_added(
    conn: asyncpg.Connection,
    hashset_id: int,
    versions: Sequence[int],
    lineage: Sequence[int],
    chunk: int = 10_000,
) -> AsyncIterator[list[tuple[int, bytes, bool]]]:
    """(row id, hash, disabled) chunks of the entries ``versions`` add that ``lineage`` does not retract.

    The index's base keeps disabled rows (flagged) so a re-enable needs no read. Inside a transaction.
    Small chunks: each is decoded on the event loop, and 10,000 rows take a few milliseconds (issue 16:
    loading never stalls the loop by more than 20 ms).
    """
    buffer: list[tuple[int, bytes, bool]] = []
    async for record in conn.cursor(Q.lineage_entries, list(versions), list(lineage), hashset_id, prefetch=chunk):
        buffer.append((record["id"], record["hash"], record["disabled"]))
        if len(buffer) >= chunk:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


async def retracted_rows(conn: asyncpg.Connection, versions: Sequence[int]) -> list[int]:
    """Rows that ``versions`` retract (a delta's removals)."""
    return [r["entry_row"] for r in await conn.fetch(Q.retracted_rows, list(versions))]


async def disabled_rows(conn: asyncpg.Connection, hashset_id: int, lineage: Sequence[int]) -> list[int]:
    """Rows of ``lineage`` the list's disables stop matching now."""
    return [r["id"] for r in await conn.fetch(Q.disabled_rows, list(lineage), hashset_id)]


async def export_entries(conn: asyncpg.Connection, name: str) -> AsyncIterator[tuple[str, bytes, str | None, str | None]]:
    """(entry id, hash, category, scheme) of the current version. Admin-only; the caller checks the role."""
    hashset = await hashset_row(conn, name)
    if hashset["current_version_id"] is None:
        return
    current = await conn.fetchrow(Q.get_version_by_id, hashset["current_version_id"])
    async for r in conn.cursor(Q.version_entry_details, list(current["lineage"])):
        yield r["entry_id"], r["hash"], r["category"], r["scheme"]


async def describe_entries(conn: asyncpg.Connection, ids: list[int]) -> dict[int, EntryDescription]:
    return {r["id"]: EntryDescription(**dict(r)) for r in await conn.fetch(Q.describe_entries, ids)}


async def disable_entry(conn: asyncpg.Connection, name: str, entry_id: str, reason: str, actor: str) -> None:
    """Stop matching one entry (its id and hash in this list, in every version) and say why."""
    if not reason.strip():
        raise HashsetError("say why the entry is disabled (--reason)")
    async with conn.transaction():
        hashset = await hashset_row(conn, name)
        current = (
            await conn.fetchrow(Q.get_version_by_id, hashset["current_version_id"]) if hashset["current_version_id"] else None
        )
        row = await conn.fetchrow(Q.alive_entry_by_id, list(current["lineage"]) if current else [], entry_id)
        if row is None:
            raise EntryNotFound(f"the current version of {name!r} has no entry with id {entry_id!r}")
        await conn.execute(Q.insert_disable, hashset["id"], entry_id, row["id"], reason.strip(), actor)
        await record_event(conn, actor, "disable_entry", name, {"entry_id": entry_id, "reason": reason.strip()})


async def enable_entry(conn: asyncpg.Connection, name: str, entry_id: str, reason: str, actor: str) -> None:
    async with conn.transaction():
        hashset = await hashset_row(conn, name)
        if not await conn.fetch(Q.delete_disables, hashset["id"], entry_id):
            raise EntryNotFound(f"no entry of {name!r} with id {entry_id!r} is disabled")
        await record_event(conn, actor, "enable_entry", name, {"entry_id": entry_id, "reason": reason})


async def list_disabled(conn: asyncpg.Connection, name: str) -> list[tuple[str, str, str, datetime]]:
    hashset = await hashset_row(conn, name)
    return [(r["entry_id"], r["reason"], r["actor"], r["disabled_at"]) for r in await conn.fetch(Q.list_disables, hashset["id"])]


async def entry_classifications(
    conn: asyncpg.Connection, entry_rows: Sequence[int]
) -> Mapping[int, tuple[str | None, str | None, str | None]]:
    """(category, scheme, issuer) of these entry rows, for hotline reports (the root hands this to
    takedown): how the list classified what matched, and who issued it. Never a hash value."""
    rows = await conn.fetch(Q.entry_classifications, list(entry_rows))
    return {r["id"]: (r["category"], r["scheme"], r["issuer"]) for r in rows}
