"""What the detector reads of the lists, as the ports it declares: ``detector.snapshots.ListReader``
(building the index) and ``detector.resolve.ListCatalogue`` (resolving a hit). The composition
root hands these to the detector; the detector never imports this context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime

import asyncpg

from hashsets import allowlist, entries, lists, quarantine
from hashsets.entries import EntryDescription
from hashsets.lists import ActiveVersion


class SnapshotSource:
    """The stored lists for ``detector.snapshots.SnapshotLoader``; every read runs in the loader's transaction.

    ``dihedral_off``: the lists that refuse the dihedral query variants, as of the last ``active_versions``
    (read in the same transaction as the entries, so the composition root can put it in that snapshot).
    """

    def __init__(self) -> None:
        self.dihedral_off: frozenset[str] = frozenset()

    async def generation(self, conn: asyncpg.Connection) -> int:
        return await lists.generation(conn)

    async def active_versions(self, conn: asyncpg.Connection) -> list[ActiveVersion]:
        versions = await lists.active_versions(conn)
        self.dihedral_off = frozenset(v.name for v in versions if not v.dihedral)
        return versions

    def stream_entries(self, conn: asyncpg.Connection, version: ActiveVersion) -> AsyncIterator[list[tuple[int, bytes]]]:
        return entries.stream_entries(conn, version)

    def stream_added(
        self, conn: asyncpg.Connection, version: ActiveVersion, versions: Sequence[int]
    ) -> AsyncIterator[list[tuple[int, bytes, bool]]]:
        return entries.stream_added(conn, version.hashset_id, versions, version.lineage)

    async def retracted_rows(self, conn: asyncpg.Connection, versions: Sequence[int]) -> list[int]:
        return await entries.retracted_rows(conn, versions)

    async def disabled_rows(self, conn: asyncpg.Connection, version: ActiveVersion) -> list[int]:
        return await entries.disabled_rows(conn, version.hashset_id, version.lineage)

    async def database_identity(self, conn: asyncpg.Connection) -> str:
        return str(await conn.fetchval(entries.Q.database_identity))

    async def allowed_hashes(self, conn: asyncpg.Connection) -> list[tuple[int, str, bytes]]:
        return await allowlist.allowed_hashes(conn)

    async def count_quarantined(self, conn: asyncpg.Connection) -> int:
        return await quarantine.count_quarantined(conn)


class MatchCatalogue:
    """List details and flood quarantine for ``detector.resolve.Resolver``, in the scan's transaction."""

    async def describe(self, conn: asyncpg.Connection, entry_rows: Sequence[int]) -> dict[int, EntryDescription]:
        return await entries.describe_entries(conn, list(entry_rows))

    async def quarantine(self, conn: asyncpg.Connection, seen: Mapping[int, int]) -> int:
        return await quarantine.quarantine(conn, seen)

    async def quarantined_among(self, conn: asyncpg.Connection, entry_rows: Sequence[int]) -> set[int]:
        return await quarantine.quarantined_among(conn, entry_rows)

    async def released_at(self, conn: asyncpg.Connection, entry_rows: Sequence[int]) -> dict[int, datetime]:
        return await quarantine.released_at(conn, entry_rows)

    async def count_quarantined(self, conn: asyncpg.Connection) -> int:
        return await quarantine.count_quarantined(conn)
