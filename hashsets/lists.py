"""Hash lists and their versions (``hashsets``, ``hashset_versions``): import, rollback, status, threshold.

Versions and entries: an entry row is written once, by the import that added it
(``hash_entries.version_id``). A version's ``lineage`` holds its own id and those of the versions
it builds on back to the last full import; its entries are the rows added in the lineage minus
those retracted in the lineage. So a delta costs what it changes, and a rollback is one pointer
update. Every change that alters what is matched goes through ``hashsets`` or a table with the
same trigger, which bumps ``hashset_generation`` and NOTIFYs the replicas.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice, repeat
from typing import Any

import asyncpg

from hashsets.duplicates import DuplicateIds
from hashsets.errors import HashsetError, HashsetNotFound, InvalidListFile, ToolMismatch, VersionConflict
from hashsets.events import record_event
from hashsets.manifest import Kind, TrustedKey
from hashsets.parse import MAX_REPORTED_PROBLEMS, EntryBlock, ListEntry, Op
from kernel.db import Queries

Q = Queries("hashsets")

# Pools time commands out after a minute; one COPY of a 10M-entry list, or a query over all of
# it, may run longer on a busy machine and must not be cut off (the import is all or nothing).
BULK_TIMEOUT_S = 3600.0

_STATUSES = ("active", "shadow", "disabled")

# An import that adds or retracts at least this many rows refreshes the planner's statistics of the
# tables it changed once it commits. Without them the next import plans its joins on the stale
# figures of an empty table: the first 10,000-entry delta after a 10,000,000-entry COPY got a nested
# loop over the whole list and ran for 11 minutes. ANALYZE samples a fixed number of rows, about a
# second on a 10M-row table, so small deltas skip it: their rows change no estimate that matters.
ANALYZE_AFTER_ROWS = 10_000


@asynccontextmanager
async def bulk_join_plan(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Plan the joins between an import's new rows and a whole list without nested loops.

    A nested loop is right only when its outer side is tiny, and the rows an import just wrote are the
    one thing statistics never describe (they were COPY'd in this transaction, after the last
    ANALYZE). There is no index on ``entry_id`` (it would double the cost of every COPY'd row, see
    ``hashsets.duplicates``), so every nested loop here rescans the base version once per new row,
    which is quadratic; a hash or merge join reads each side once whatever the estimates say.
    Use it inside a transaction: the setting is transaction-local and restored on the way out.
    """
    previous = await conn.fetchval("SELECT current_setting('enable_nestloop')")
    await conn.execute("SET LOCAL enable_nestloop = off")
    yield
    # Not in a ``finally``: after a failed statement the transaction accepts no more commands, and
    # its rollback undoes the SET LOCAL anyway.
    await conn.fetchval("SELECT set_config('enable_nestloop', $1, true)", previous)


@dataclass(frozen=True, kw_only=True, slots=True)
class ImportResult:
    hashset: str
    version: int
    entries: int
    added: int = 0
    retracted: int = 0
    kind: str = "full"
    signature_status: str = "unsigned"
    lineage: tuple[int, ...] = ()
    replaced_lineage: tuple[int, ...] = ()  # the version that was current before; () for a new list


@dataclass(frozen=True, kw_only=True, slots=True)
class ImportRequest:
    """Where an import goes and what is known of its origin (all of it recorded on the version)."""

    name: str
    tool: str
    source: str
    kind: Kind = Kind.FULL
    actor: str = ""
    issuer_version: str | None = None
    base_issuer_version: str | None = None  # a delta's base, by the issuer's version label
    base_version: int | None = None  # ... or by hashguard's version number (unsigned deltas)
    issued_at: datetime | None = None
    signer: TrustedKey | None = None
    manifest: Mapping[str, Any] | None = None
    file_sha256: bytes = b""
    is_demo: bool = False


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
    threshold: int | None = None
    signature_status: str | None = None
    imported_by: str = ""
    issuer_version: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class VersionInfo:
    version: int
    kind: str
    base_version: int | None
    issuer: str
    issuer_version: str | None
    issued_at: datetime | None
    signature_status: str
    signer: str | None
    imported_by: str
    imported_at: datetime
    entry_count: int
    added_count: int
    retracted_count: int
    current: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class ActiveVersion:
    hashset_id: int
    name: str
    tool: str
    version_id: int
    version: int
    entry_count: int
    status: str = "active"
    threshold: int | None = None
    lineage: tuple[int, ...] = ()
    dihedral: bool = True  # mirrored and rotated copies match (detector.variants); off: the list holds them already


async def hashset_row(conn: asyncpg.Connection, name: str) -> asyncpg.Record:
    row = await conn.fetchrow(Q.get_hashset, name)
    if row is None:
        raise HashsetNotFound(f"no hash list is named {name!r}")
    return row


async def _base_version(conn: asyncpg.Connection, hashset: asyncpg.Record, request: ImportRequest) -> asyncpg.Record:
    if request.base_issuer_version is not None:
        base = await conn.fetchrow(Q.get_issuer_version, hashset["id"], request.base_issuer_version)
        if base is None:
            raise VersionConflict(
                f"the delta applies to version {request.base_issuer_version!r} of {request.name!r}, which was never imported;"
                " import that version (or a newer full list) first"
            )
        return base
    if request.base_version is not None:
        base = await conn.fetchrow(Q.get_version, hashset["id"], request.base_version)
        if base is None:
            raise VersionConflict(f"{request.name!r} has no version {request.base_version}")
        return base
    if hashset["current_version_id"] is None:
        raise VersionConflict(f"{request.name!r} has no version yet: a delta needs a base, import a full list first")
    base = await conn.fetchrow(Q.get_version_by_id, hashset["current_version_id"])
    assert base is not None
    return base


async def import_list(
    conn: asyncpg.Connection,
    request: ImportRequest,
    blocks: Iterable[EntryBlock],
    *,
    check: Callable[[int], None] | None = None,
    file_digest: Callable[[], bytes] | None = None,
) -> ImportResult:
    """Store ``entries`` as a new version of list ``request.name`` and make it current, all or nothing.

    Additions stream through one COPY (PostgreSQL ingests while the file is still being read);
    retractions, few by nature, are held until the end and resolved against the base version.
    ``blocks`` (from ``parse_blocks``) may raise part-way (a bad line); ``check`` runs after the last entry with the
    number of entry lines and raises if the file does not verify (checksum, count). Either way
    the transaction rolls back and nothing of the import is kept.
    """
    async with conn.transaction():
        row = await conn.fetchrow(Q.get_hashset, request.name)
        if row is None:
            if request.kind is Kind.DELTA:
                raise VersionConflict(f"no hash list is named {request.name!r}: a delta needs a base, import a full list first")
            hashset_id = await conn.fetchval(Q.insert_hashset, request.name, request.tool, request.source, request.is_demo)
        else:
            if row["tool"] != request.tool:
                raise ToolMismatch(f"the list {request.name!r} holds {row['tool']} hashes, not {request.tool}")
            hashset_id = row["id"]
        await conn.fetchval(Q.lock_hashset, hashset_id)  # serialise concurrent imports of one list
        hashset = await hashset_row(conn, request.name)
        if request.issuer_version is not None:
            seen = await conn.fetchrow(Q.get_issuer_version, hashset_id, request.issuer_version)
            if seen is not None:
                raise VersionConflict(
                    f"version {request.issuer_version!r} of {request.name!r} was already imported (as version {seen['version']});"
                    " to go back to it use: hashguard hashsets rollback"
                )
        current = (
            await conn.fetchrow(Q.get_version_by_id, hashset["current_version_id"]) if hashset["current_version_id"] else None
        )
        if (
            request.issued_at is not None
            and current is not None
            and current["issued_at"] is not None
            and request.issued_at < current["issued_at"]
            and request.kind is Kind.FULL
        ):
            # A replayed old signed list must not silently undo newer retractions.
            raise VersionConflict(
                f"this list was created {request.issued_at:%Y-%m-%d %H:%M}, before the current version"
                f" ({current['issued_at']:%Y-%m-%d %H:%M}); to go back use: hashguard hashsets rollback"
            )
        base = await _base_version(conn, hashset, request) if request.kind is Kind.DELTA else None
        version = await conn.fetchval(Q.next_version, hashset_id)
        version_id = await conn.fetchval(
            Q.insert_version,
            hashset_id,
            version,
            request.file_sha256,
            request.kind.value,
            base["id"] if base is not None else None,
            request.source,
            request.issuer_version,
            request.issued_at,
            "verified" if request.signer is not None else "unsigned",
            request.signer.id if request.signer is not None else None,
            json.dumps(dict(request.manifest)) if request.manifest is not None else None,
            request.actor,
        )
        lines = 0
        added = 0
        retractions: list[tuple[int, str, bytes | None]] = []
        ids = DuplicateIds()

        def rows() -> Iterator[tuple[int, str, bytes, str | None, str | None]]:
            nonlocal lines, added
            for block in blocks:
                lines += len(block)
                if block.ops is None:
                    added += len(block)
                    ids.add(block.entry_ids)
                    yield from zip(repeat(version_id), block.entry_ids, block.values, block.categories, block.schemes)
                    continue
                for entry in block.entries():
                    if entry.op is Op.RETRACT:
                        retractions.append((entry.line, entry.entry_id, entry.value or None))
                    else:
                        added += 1
                        ids.add([entry.entry_id])
                        yield (version_id, entry.entry_id, entry.value, entry.category, entry.scheme)

        await conn.copy_records_to_table(
            "hash_entries",
            records=rows(),
            columns=["version_id", "entry_id", "hash", "category", "scheme"],
            timeout=BULK_TIMEOUT_S,
        )
        if ids.likely() and (repeated := await conn.fetch(Q.duplicate_ids, version_id, timeout=BULK_TIMEOUT_S)):
            raise InvalidListFile([f"the id {r['entry_id']!r} appears {r['n']} times" for r in repeated], len(repeated))
        if check is not None:
            check(lines)
        if file_digest is not None:  # known only once the file has been read to its end
            await conn.execute(Q.set_file_sha256, version_id, file_digest())
        lineage = [*(base["lineage"] if base is not None else []), version_id]
        retracted = await _retract(conn, retractions, base_lineage=list(base["lineage"]) if base else [], version_id=version_id)
        if base is not None and added:
            async with bulk_join_plan(conn):
                conflicts = await conn.fetch(Q.add_conflicts, version_id, list(base["lineage"]), lineage, timeout=BULK_TIMEOUT_S)
            if conflicts:
                held = ", ".join(repr(r["entry_id"]) for r in conflicts)
                raise InvalidListFile(
                    [f"the delta adds ids the list already holds ({held}); retract them in the same delta to replace them"],
                    len(conflicts),
                )
        count = (base["entry_count"] if base is not None else 0) + added - retracted
        await conn.execute(Q.finish_version, version_id, count, added, retracted, lineage)
        await conn.execute(Q.set_current_version, hashset_id, version_id)
        await record_event(
            conn,
            request.actor,
            "import",
            request.name,
            {
                "version": version,
                "kind": request.kind.value,
                "issuer": request.source,
                "issuer_version": request.issuer_version,
                "base_version": base["version"] if base is not None else None,
                "signature": "verified" if request.signer is not None else "unsigned",
                "signer": request.signer.id if request.signer is not None else None,
                "added": added,
                "retracted": retracted,
                "entries": count,
                "file_sha256": (file_digest() if file_digest is not None else request.file_sha256).hex(),
            },
        )
    if added >= ANALYZE_AFTER_ROWS:
        await conn.execute("ANALYZE hash_entries", timeout=BULK_TIMEOUT_S)
    if retracted >= ANALYZE_AFTER_ROWS:
        await conn.execute("ANALYZE hash_retractions", timeout=BULK_TIMEOUT_S)
    return ImportResult(
        hashset=request.name,
        version=version,
        entries=count,
        added=added,
        retracted=retracted,
        kind=request.kind.value,
        signature_status="verified" if request.signer is not None else "unsigned",
        lineage=tuple(lineage),
        replaced_lineage=tuple(current["lineage"]) if current is not None else (),
    )


async def _retract(
    conn: asyncpg.Connection, retractions: list[tuple[int, str, bytes | None]], *, base_lineage: list[int], version_id: int
) -> int:
    if not retractions:
        return 0
    await conn.execute(Q.create_retraction_stage)
    await conn.copy_records_to_table("import_retractions", records=retractions, columns=["line", "entry_id", "hash"])
    await conn.execute("ANALYZE import_retractions")  # a temporary table autovacuum never sees
    async with bulk_join_plan(conn):
        resolved = [
            *await conn.fetch(Q.resolve_retractions_by_id, base_lineage, timeout=BULK_TIMEOUT_S),
            *await conn.fetch(Q.resolve_retractions_by_hash, base_lineage, timeout=BULK_TIMEOUT_S),
        ]
    problems = sorted(
        {
            (
                r["line"],
                "the hash differs from the entry with that id"
                if r["hash_differs"]
                else "retracts an entry the base version does not hold",
            )
            for r in resolved
            if r["entry_row"] is None or r["hash_differs"]
        }
    )
    if problems:
        raise InvalidListFile([f"line {line}: {message}" for line, message in problems[:MAX_REPORTED_PROBLEMS]], len(problems))
    rows = sorted({r["entry_row"] for r in resolved})
    await conn.execute(Q.insert_retractions, rows, version_id)
    return len(rows)


async def import_entries(
    conn: asyncpg.Connection,
    *,
    name: str,
    tool: str,
    source: str,
    entries: Iterable[ListEntry],
    file_sha256: bytes,
    is_demo: bool = False,
    actor: str = "",
) -> ImportResult:
    """An unsigned full import (demo lists, tests): ``import_list`` with no manifest."""
    request = ImportRequest(name=name, tool=tool, source=source, file_sha256=file_sha256, is_demo=is_demo, actor=actor)
    return await import_list(conn, request, _blocks(entries))


def _blocks(entries: Iterable[ListEntry], size: int = 10_000) -> Iterator[EntryBlock]:
    it = iter(entries)
    while batch := list(islice(it, size)):
        yield EntryBlock.of(batch)


def _summary(r: asyncpg.Record) -> HashsetSummary:
    return HashsetSummary(
        name=r["name"],
        tool=r["tool"],
        source=r["source"],
        status=r["status"],
        is_demo=r["is_demo"],
        version=r["version"],
        entry_count=r["entry_count"] or 0,
        imported_at=r["imported_at"],
        threshold=r["threshold"],
        signature_status=r["signature_status"],
        imported_by=r["imported_by"] or "",
        issuer_version=r["issuer_version"],
    )


async def list_hashsets(conn: asyncpg.Connection) -> list[HashsetSummary]:
    return [_summary(r) for r in await conn.fetch(Q.list_hashsets)]


async def get_hashset(conn: asyncpg.Connection, name: str) -> HashsetSummary:
    for summary in await list_hashsets(conn):
        if summary.name == name:
            return summary
    raise HashsetNotFound(f"no hash list is named {name!r}")


async def list_versions(conn: asyncpg.Connection, name: str) -> list[VersionInfo]:
    hashset = await hashset_row(conn, name)
    return [VersionInfo(**dict(r)) for r in await conn.fetch(Q.list_versions, hashset["id"])]


async def active_versions(conn: asyncpg.Connection) -> list[ActiveVersion]:
    """Current versions of every list that is not disabled (active and shadow lists)."""
    return [ActiveVersion(**{**dict(r), "lineage": tuple(r["lineage"])}) for r in await conn.fetch(Q.active_versions)]


async def generation(conn: asyncpg.Connection) -> int:
    """Bumped by every change to what is matched; replicas compare it with their snapshot's."""
    return int(await conn.fetchval(Q.generation))


async def rollback(conn: asyncpg.Connection, name: str, version: int, actor: str) -> int:
    """Make an earlier (or later) version current again; returns the version it replaced."""
    async with conn.transaction():
        hashset = await hashset_row(conn, name)
        await conn.fetchval(Q.lock_hashset, hashset["id"])
        target = await conn.fetchrow(Q.get_version, hashset["id"], version)
        if target is None:
            raise VersionConflict(f"{name!r} has no version {version}")
        previous = await conn.fetchrow(Q.get_version_by_id, hashset["current_version_id"])
        if previous is not None and previous["id"] == target["id"]:
            raise VersionConflict(f"version {version} is already the current version of {name!r}")
        await conn.execute(Q.set_current_version, hashset["id"], target["id"])
        await record_event(
            conn, actor, "rollback", name, {"from_version": previous["version"] if previous else None, "to_version": version}
        )
    return int(previous["version"]) if previous is not None else 0


async def set_status(conn: asyncpg.Connection, name: str, status: str, actor: str, reason: str) -> str:
    if status not in _STATUSES:
        raise HashsetError(f"the status must be one of {', '.join(_STATUSES)}")
    async with conn.transaction():
        hashset = await hashset_row(conn, name)
        await conn.execute(Q.set_status, hashset["id"], status)
        await record_event(conn, actor, "status", name, {"from": hashset["status"], "to": status, "reason": reason})
    return str(hashset["status"])


async def set_dihedral(conn: asyncpg.Connection, name: str, on: bool, actor: str, reason: str) -> bool:
    """Let (or stop) the dihedral query variants match this list's entries; returns the previous setting.

    Off is for a list whose issuer already added the mirrored and rotated hashes of every picture:
    searching them again would only add chances of a chance match.
    """
    async with conn.transaction():
        hashset = await hashset_row(conn, name)
        await conn.execute(Q.set_dihedral, hashset["id"], on)
        await record_event(conn, actor, "dihedral", name, {"from": hashset["dihedral"], "to": on, "reason": reason})
    return bool(hashset["dihedral"])


async def dihedral(conn: asyncpg.Connection, name: str) -> bool:
    """Whether mirrored and rotated copies match this list's entries."""
    return bool((await hashset_row(conn, name))["dihedral"])


async def set_threshold(conn: asyncpg.Connection, name: str, threshold: int | None, actor: str, reason: str) -> None:
    async with conn.transaction():
        hashset = await hashset_row(conn, name)
        await conn.execute(Q.set_threshold, hashset["id"], threshold)
        await record_event(conn, actor, "threshold", name, {"from": hashset["threshold"], "to": threshold, "reason": reason})
