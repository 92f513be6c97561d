"""Keeping an upload's hashes for look-back (HASHGUARD_LOOKBACK_DAYS), the ``remember`` a ``ScanService`` calls.

The hashes are stored by the lists' context (hashsets re-checks them when a new list version adds
entries), so the store is a function passed in by the composition root.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from detector.scan import ScanContext

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

# One call's uploads: each one's hashes (tool name -> hash value) under its scan id and context.
Kept = Sequence[tuple[uuid.UUID, ScanContext, Mapping[str, bytes]]]

# Stores many uploads' hashes in one statement (a 1,000-item lookup batch is one COPY, not 1,000).
KeepHashes = Callable[["asyncpg.Connection", Kept], Awaitable[None]]


class Remember:
    def __init__(self, *, pool: asyncpg.Pool, keep: KeepHashes) -> None:
        self._pool = pool
        self._keep = keep

    async def __call__(self, uploads: Kept) -> None:
        """Keep every upload of one call (a scan, or a lookup batch) on one connection, in one statement."""
        if not uploads:
            return
        async with self._pool.acquire() as conn:
            await self._keep(conn, uploads)
