"""Keeping an upload's hashes for look-back (HASHGUARD_LOOKBACK_DAYS), the ``remember`` a ``ScanService`` calls.

The hashes are stored by the lists' context (hashsets re-checks them when a new list version adds
entries), so the store is a function passed in by the composition root.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from detector.scan import ScanContext

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

# Stores one upload's hashes (tool name -> hash value) under its scan id and context.
KeepHashes = Callable[["asyncpg.Connection", uuid.UUID, ScanContext, Mapping[str, bytes]], Awaitable[None]]


class Remember:
    def __init__(self, *, pool: asyncpg.Pool, keep: KeepHashes) -> None:
        self._pool = pool
        self._keep = keep

    async def __call__(self, scan_id: uuid.UUID, context: ScanContext, hashes: Mapping[str, bytes]) -> None:
        async with self._pool.acquire() as conn:
            await self._keep(conn, scan_id, context, hashes)
