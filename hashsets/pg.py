"""PostgreSQL storage of hash lists. The only module of this context that touches asyncpg."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

import asyncpg

from detector.db import Queries
from hashsets.errors import HashsetNotFound, ToolMismatch
from hashsets.parse import ListEntry

Q = Queries("hashsets")

# Entries go to PostgreSQL with COPY in batches of this many, so an import holds one batch in memory.
COPY_BATCH = 50_000


@dataclass(frozen=True, kw_only=True, slots=True)
class ImportResult:
    hashset: str
    version: int
    entries: int


@dataclass(frozen=True, kw_only=True, slots=True)
class HashsetSummary:
    name: str
    tool: str
    source: str
    status: str
    is_demo: bool
    version: int | None
    entry_count: int
    imported_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ActiveVersion:
    hashset_id: int
    name: str
    tool: str
    version_id: int
    version: int
    entry_count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryDescription:
    id: int
    hashset: str
    hashset_version: int
    entry_id: str
    category: str | None


def _batches(entries: Iterable[ListEntry], version_id: int) -> Iterator[list[tuple[int, str, bytes, str | None]]]:
    it = iter(entries)
    while batch := list(islice(it, COPY_BATCH)):
        yield [(version_id, e.entry_id, e.value, e.category) for e in batch]


async def import_entries(
    conn: asyncpg.Connection,
    *,
    name: str,
    tool: str,
    source: str,
    entries: Iterable[ListEntry],
    file_sha256: bytes,
    is_demo: bool = False,
) -> ImportResult:
    """Store ``entries`` as a new version of list ``name`` and make it current, all or nothing.

    ``entries`` may raise part-way (a bad line); the transaction then rolls back and nothing of
    the import is kept.
    """
    async with conn.transaction():
        row = await conn.fetchrow(Q.get_hashset, name)
        if row is None:
            hashset_id = await conn.fetchval(Q.insert_hashset, name, tool, source, is_demo)
        else:
            if row["tool"] != tool:
                raise ToolMismatch(f"the list {name!r} holds {row['tool']} hashes, not {tool}")
            hashset_id = row["id"]
        await conn.fetchval(Q.lock_hashset, hashset_id)  # serialise concurrent imports of one list
        version = await conn.fetchval(Q.next_version, hashset_id)
        version_id = await conn.fetchval(Q.insert_version, hashset_id, version, file_sha256)
        count = 0
        for batch in _batches(entries, version_id):
            await conn.copy_records_to_table(
                "hash_entries", records=batch, columns=["version_id", "entry_id", "hash", "category"]
            )
            count += len(batch)
        await conn.execute(Q.finish_version, version_id, count)
        await conn.execute(Q.set_current_version, hashset_id, version_id)
    return ImportResult(hashset=name, version=version, entries=count)


async def list_hashsets(conn: asyncpg.Connection) -> list[HashsetSummary]:
    return [
        HashsetSummary(
            name=r["name"],
            tool=r["tool"],
            source=r["source"],
            status=r["status"],
            is_demo=r["is_demo"],
            version=r["version"],
            entry_count=r["entry_count"] or 0,
            imported_at=r["imported_at"],
        )
        for r in await conn.fetch(Q.list_hashsets)
    ]


async def get_hashset(conn: asyncpg.Connection, name: str) -> HashsetSummary:
    for summary in await list_hashsets(conn):
        if summary.name == name:
            return summary
    raise HashsetNotFound(f"no hash list is named {name!r}")


async def active_versions(conn: asyncpg.Connection) -> list[ActiveVersion]:
    return [ActiveVersion(**dict(r)) for r in await conn.fetch(Q.active_versions)]


async def stream_entries(
    conn: asyncpg.Connection, version_id: int, chunk: int = 100_000
) -> AsyncIterator[list[tuple[int, bytes]]]:
    """Yield (row id, hash) chunks of one version. Must run inside a transaction (server-side cursor)."""
    buffer: list[tuple[int, bytes]] = []
    async for record in conn.cursor(Q.version_entries, version_id, prefetch=chunk):
        buffer.append((record["id"], record["hash"]))
        if len(buffer) >= chunk:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


async def describe_entries(conn: asyncpg.Connection, ids: list[int]) -> dict[int, EntryDescription]:
    return {r["id"]: EntryDescription(**dict(r)) for r in await conn.fetch(Q.describe_entries, ids)}
